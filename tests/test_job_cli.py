"""The command line over job.Run: options, exit codes, outputs, SIGTERM (real subprocesses)."""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
from IPython.core.error import UsageError

from conftest import cli, cli_env, many_folder
from shared_data import REFERENCE

from oppnda_nb import cli as cli_mod, options
from oppnda_nb.averaging import sample_folder


# ------------------------------------------------------------------------------ options

BAD = [("--eta", "0"), ("--eta", "1.5"), ("--eta", "x"), ("--gamma", "0"), ("--overhead-mb", "-1"),
       ("--workers", "0"), ("--workers", "1.5"), ("--total-ram-mb", "0"), ("--oversize", "maybe"),
       ("--file-timeout", "-3"), ("--file-timeout", "nan")]


@pytest.mark.parametrize("flag,value", BAD)
def test_bad_values_are_refused_the_same_by_the_cli_and_the_magic(flag, value, ip, capsys):
    parser = cli_mod.build_parser()
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["run", flag, value])
    assert exc.value.code == 2
    cli_err = capsys.readouterr().err.strip().splitlines()[-1]
    with pytest.raises(UsageError) as uexc:
        ip.run_line_magic("oppnda", f"run {flag} {value}")
    # the same check wrote the same message
    assert cli_err.split(f"argument {flag}: ")[1] in str(uexc.value)


def test_every_option_is_declared_once_with_the_same_dest_everywhere():
    parser = cli_mod.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for command, p in sub.choices.items():
        dests = {a.dest for a in p._actions if a.option_strings and a.dest != "help"}
        assert dests == set(options.COMMANDS[command]), command
    assert options.OPTIONS["oversize"].choices == ("skip", "run-alone")
    assert options.check_value("eta", "0.5") == 0.5
    with pytest.raises(ValueError, match="--eta must be > 0 and <= 1"):
        options.check_value("eta", 2)


# ------------------------------------------------------------------------------ commands

def test_run_writes_outputs_summary_json_and_memory_log(tiny_folder, tmp_path):
    summary = tmp_path / "reports" / "summary.json"
    r = cli("run", tiny_folder, "--output", tmp_path / "out", "--summary-json", summary,
            "--memory-log", tmp_path / "mem.csv", "--no-learn", "--oversize", "run-alone", "--file-timeout", "60")
    assert r.returncode == 0, r.stderr
    assert "Job finished: 24 processed" in r.stdout and "Traceback" not in r.stderr
    data = json.loads(summary.read_text())
    assert data["status"] == "finished" and data["exit_code"] == 0 and data["counts"]["processed"] == 24
    assert data == json.loads((tmp_path / "out" / "run.json").read_text()) | {"output_dir": data["output_dir"]}
    assert not [p for p in summary.parent.iterdir() if p.name != "summary.json"]  # no temporary file left
    assert (tmp_path / "mem.csv").read_text().startswith("t,")
    assert (tmp_path / "out" / "MessageStatsReport_EpidemicRouter_180_ttl_average.txt").is_file()


def test_nothing_matched_is_a_usage_error_and_creates_no_output(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "notes.txt").write_text("hello")
    r = cli("run", tmp_path / "in", "--output", tmp_path / "out")
    assert r.returncode == 2 and r.stderr.startswith("error: No matching report files")
    assert "Traceback" not in r.stderr and not (tmp_path / "out").exists()
    r = cli("average", "--folder", tmp_path / "in", "--output", tmp_path / "out2")
    assert r.returncode == 2 and not (tmp_path / "out2").exists()
    r = cli("status", tmp_path / "in")
    assert r.returncode == 2 and "No matching report files" in r.stderr


@pytest.mark.parametrize("args,fragment", [
    (["run", "/no/such/folder"], "Input folder not found"),
    (["run", "--min-workers", "4", "--max-workers", "2"], "min_workers"),
    (["average", "/no/such/config.json"], "config"),
])
def test_user_errors_exit_2_without_traceback(args, fragment, tmp_path):
    r = cli(*args, cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.startswith("error: ") and fragment in r.stderr and "Traceback" not in r.stderr


def _python(code: str, *args) -> str:
    """Run ``python -c code args...`` as the CLI tests' environment does; its stdout (it must succeed)."""
    r = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=cli_env())
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_status_plans_the_same_selection_as_run_and_stays_light(tiny_folder):
    (tiny_folder / "sub").mkdir()  # not recursive: a report in a sub-folder is not counted
    os.link(next(tiny_folder.glob("*.txt")), tiny_folder / "sub" / "TEST_EpidemicRouter_9_180_10M_MessageStatsReport.txt")
    code = ("import sys, runpy; sys.argv=['x','status',sys.argv[1]]\n"
            "try:\n    runpy.run_module('oppnda_nb', run_name='__main__')\nexcept SystemExit as e: rc=e.code\n"
            "print('HEAVY', sorted(m for m in ('ipywidgets', 'matplotlib', 'IPython', 'pandas') if m in sys.modules))\n"
            "sys.exit(rc)")
    out = _python(code, tiny_folder)
    assert "24 files (0 skipped): recommended workers" in out
    heavy = eval(out.split("HEAVY ")[1])
    assert "ipywidgets" not in heavy and "matplotlib" not in heavy and "IPython" not in heavy


def test_status_does_not_import_pandas(tiny_folder):
    code = ("import sys; from oppnda_nb.cli import main; main(['status', sys.argv[1]]); "
            "print('pandas' in sys.modules)")
    assert _python(code, tiny_folder).strip().endswith("False")


def test_key_value_reports_are_read_and_averaged_without_pandas(tiny_folder, tmp_path):
    # MessageStatsReport sweeps: parse, group, average and write OppNDA's files, pandas never imported
    code = ("import sys, glob\n"
            "from oppnda_nb import averaging\n"
            "from oppnda_nb.averaging.summarize import summarize_file\n"
            "cfg = averaging.prepare_config(None, None, None)\n"
            "files = sorted(glob.glob(sys.argv[1] + '/*MessageStatsReport.txt'))\n"
            "sums = [summarize_file(p, cfg.settings()) for p in files]\n"
            "res = averaging.aggregate(sums, cfg)\n"
            "print('WROTE', len(res.write_oppnda(sys.argv[2])), 'pandas' in sys.modules)")
    wrote, pandas = _python(code, tiny_folder, tmp_path / "out").split("WROTE ")[1].split()
    assert int(wrote) > 0 and pandas == "False"


def test_a_key_value_run_imports_pandas_only_when_its_memory_samples_are_read(tiny_folder, tmp_path):
    for p in tiny_folder.iterdir():
        if not p.name.endswith("MessageStatsReport.txt"):
            p.unlink()
    code = ("import sys\n"
            "from oppnda_nb.job import Run\n"
            "r = Run(sys.argv[1], output=sys.argv[2], cache=False, csv=False).run()\n"
            "print('RUN', r.status, r.job.counts['processed'], 'pandas' in sys.modules)\n"
            "m = r.memory\n"
            "print('READ', type(m).__name__, len(m) > 0, 'pandas' in sys.modules, r.job.memory is r.job.memory)")
    out = _python(code, tiny_folder, tmp_path / "out")
    assert out.split("RUN ")[1].split("\n")[0].split() == ["finished", "4", "False"]
    assert out.split("READ ")[1].split() == ["DataFrame", "True", "True", "True"]


def test_demo_and_calibrate(tmp_path):
    r = cli("demo", "--output", tmp_path / "demo", "--quiet")
    assert r.returncode == 0, r.stderr
    names = {p.name for p in (tmp_path / "demo").iterdir()}
    assert {"averaged", "memory.csv", "memory.png", "files.csv", "delivery_prob_by_ttl.png"} <= names
    r = cli("calibrate")
    assert r.returncode == 0, r.stderr
    assert "calibration on 6 file(s)" in r.stdout


def test_average_reproduces_oppnda_byte_for_byte(tmp_path):
    if not (REFERENCE / "expected").is_dir():
        pytest.skip("the OppNDA reference data is not available")
    r = cli("average", REFERENCE / "averager_config.json", "--output", tmp_path / "out", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "ttl_average: group by router, ttl" in r.stdout
    expected = sorted(p.name for p in (REFERENCE / "expected").iterdir())
    assert sorted(p.name for p in (tmp_path / "out").glob("*.txt")) == expected
    for name in expected:
        assert (tmp_path / "out" / name).read_bytes() == (REFERENCE / "expected" / name).read_bytes(), name


def test_sigterm_stops_the_run_writes_partial_results_and_leaves_no_process(tmp_path):
    folder = many_folder(tmp_path, 300)  # 16,200 files on one worker: about 10 s
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "oppnda_nb", "run", str(folder), "--output", str(out),
                             "--workers", "1", "--summary-json", str(tmp_path / "s.json")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(),
                            start_new_session=True)
    sid = proc.pid
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _children_cpu(proc.pid) < 1.0:
        time.sleep(0.1)  # wait until the workers have processed files for a while
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1, stderr
    assert "Traceback" not in stderr
    run_json = json.loads((out / "run.json").read_text())
    assert run_json["status"] == "cancelled" and run_json["exit_code"] == 1
    assert run_json["counts"]["processed"] > 0 and run_json["counts"]["cancelled"] > 0
    assert json.loads((tmp_path / "s.json").read_text())["status"] == "cancelled"
    assert "partial results" in stdout
    time.sleep(0.5)
    left = [p for p in psutil.process_iter(["pid", "status"])  # zombies are dead: only the reaper is late
            if _sid(p.pid) == sid and p.info["status"] != psutil.STATUS_ZOMBIE]
    assert not left, left


def _children_cpu(pid: int) -> float:
    total = 0.0
    for child in psutil.Process(pid).children(recursive=True):
        try:
            t = child.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def _sid(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:
        return None


def test_cache_and_plots_commands(tmp_path):
    out = tmp_path / "oppnda-output"
    env_cache = tmp_path / "c"
    r = cli("average", "--folder", sample_folder(), "--output", out, "--cache-dir", env_cache, "-q")
    assert r.returncode == 0, r.stderr
    r = cli("cache", "--cache-dir", env_cache)
    assert r.returncode == 0 and "240 file summaries" in r.stdout
    victim = tmp_path / "gone" / "TEST_EpidemicRouter_1_60_2M_MessageStatsReport.txt"
    victim.parent.mkdir()
    victim.write_text("delivery_prob: 0.5\n")
    os.utime(victim, (time.time() - 60, time.time() - 60))
    cli("average", "--folder", victim.parent, "--output", tmp_path / "o2", "--cache-dir", env_cache, "-q")
    victim.unlink()
    r = cli("cache", "prune", "--cache-dir", env_cache)
    assert r.returncode == 0 and "dropped 1 summaries" in r.stdout, r.stdout + r.stderr
    r = cli("cache", "clear", "--cache-dir", env_cache)
    assert r.returncode == 0 and "removed" in r.stdout and not (env_cache / "summaries.sqlite").exists()
    r = subprocess.run([sys.executable, "-m", "oppnda_nb", "plots", "--format", "png"], cwd=tmp_path,
                       capture_output=True, text=True, env=cli_env())
    assert r.returncode == 0, r.stderr
    assert "0 failed" in r.stdout and (tmp_path / "oppnda-plots" / "delivery_prob_ttl_line.png").is_file()
