"""Run: folder → pool → averages → files, and the command line over it (run, demo, status)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import psutil
import pytest

from oppnda_nb import runner
from oppnda_nb.errors import OppndaError
from oppnda_nb.runner import Run

SAMPLE = runner.sample_folder()


def _many(tmp_path: Path, copies: int) -> Path:
    """The sample's MessageStatsReports again under many seeds (symlinks: instant)."""
    d = tmp_path / "many"
    d.mkdir()
    for f in sorted(SAMPLE.glob("*_MessageStatsReport.txt")):
        parts = f.name.split("_")
        for k in range(copies):
            parts[2] = f"{k}{parts[2]}"
            os.symlink(f, d / "_".join(parts))
    return d


def test_run_on_the_sample_writes_everything(tmp_path):
    result = Run(output=tmp_path / "out").run()
    assert result.status == "finished" and result.job.accounting_ok
    assert result.job.counts["processed"] == len(list(SAMPLE.glob("*.txt")))
    table = result.averaged.table("ttl_average", "MessageStatsReport")
    assert set(table["router"]) == {"EpidemicRouter", "SprayAndWaitRouter", "FirstContactRouter"}
    assert (table["delivery_prob_n"] == 6).all()  # 2 seeds x 3 buffers per router and TTL
    names = {p.name for p in (tmp_path / "out").glob("*.txt")}
    assert "MessageStatsReport_EpidemicRouter_180_ttl_average.txt" in names
    assert (tmp_path / "out" / "csv" / "ttl_average.csv").is_file()
    # the memory frame goes on past the pool, through the averaging in the kernel
    assert result.memory["t"].max() > result.job.memory["t"].max()
    assert result.memory["kernel_mb"].notna().all()
    assert runner.current_run().result is result


def test_default_output_of_the_sample_is_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert runner.default_output(SAMPLE) == tmp_path / "oppnda-output"
    assert runner.default_output(tmp_path / "x") == (tmp_path / "x").resolve() / "averaged"


def test_user_mistakes_raise_oppnda_error(tmp_path):
    with pytest.raises(OppndaError, match="not found"):
        Run(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(OppndaError, match="No matching report files"):
        Run(tmp_path)


def test_stop_keeps_what_was_processed_and_leaves_no_worker(tmp_path):
    folder = _many(tmp_path, 60)  # 3,240 files, one spawned worker: several seconds
    run = Run(folder, output=tmp_path / "out", workers=1, start_method="spawn")
    started = threading.Event()
    seen = []

    def on(event):
        if event.kind == "file_finished" and len(seen) < 50:
            seen.append(event.data.path)
            if len(seen) == 50:
                started.set()

    run.add_listener(on)
    run.start()
    with pytest.raises(OppndaError, match="in progress"):
        Run(folder, output=tmp_path / "other").start()
    assert started.wait(60)
    run.stop()
    result = run.wait(60)
    counts = result.job.counts
    assert result.status == "cancelled" and result.job.accounting_ok
    assert counts["processed"] >= 50 and counts["cancelled"] > 0
    assert counts["processed"] + counts["cancelled"] == 3240
    assert any("partial results" in w for w in result.averaged.warnings)
    assert list((tmp_path / "out").glob("*.txt")), "the processed part is averaged and written"
    workers = {int(c.split("_")[1]) for c in result.memory.columns if c.startswith("worker_")}
    assert workers and not [p for p in workers if psutil.pid_exists(p)
                            and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    from test_pool import helper_pids  # multiprocessing's own forkserver / resource tracker may stay

    assert not {c.pid for c in psutil.Process().children(recursive=True)} - helper_pids()


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "oppnda_nb", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_cli_run_writes_summary_json_and_memory_log(tmp_path):
    (tmp_path / "in").mkdir()
    for f in sorted(SAMPLE.glob("*_MessageStatsReport.txt")):
        (tmp_path / "in" / f.name).write_bytes(f.read_bytes())
    (tmp_path / "in" / "TEST_EpidemicRouter_9_60_2M_MessageStatsReport.txt").write_bytes(b"\x00\x01garbage")
    (tmp_path / "in" / "README").write_text("not a report")
    r = _cli("run", "in", "--total-ram-mb", "4000", "--summary-json", "s.json", "--memory-log", "m.csv",
             "--output", "out", cwd=tmp_path)
    assert r.returncode == 1, r.stderr  # one file failed: the exit code says so
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["counts"] == {"processed": 54, "skipped": 1, "failed": 1, "cancelled": 0, "total": 56}
    assert summary["skipped"][0]["path"].endswith("README")
    assert summary["accounting_ok"] and summary["failed"][0]["path"].endswith("_9_60_2M_MessageStatsReport.txt")
    assert summary["budget_mb"] <= 0.75 * 4000
    memory = pd.read_csv(tmp_path / "m.csv")
    assert {"t", "kernel_mb", "workers_mb", "budget_mb", "predicted_peak_mb"} <= set(memory.columns)
    assert "accounting OK" in r.stdout and "56 files" in r.stdout


def test_cli_errors_are_one_line(tmp_path):
    r = _cli("run", "nowhere", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("error:") and "Traceback" not in r.stderr
    r = _cli("run", "--eta", "3", cwd=tmp_path)
    assert r.returncode == 2 and "eta" in r.stderr and "Traceback" not in r.stderr


def test_cli_status_and_demo(tmp_path):
    r = _cli("status", "--total-ram-mb", "2048", cwd=tmp_path)
    assert r.returncode == 0 and "override (total_ram_mb)" in r.stdout and "recommended workers" in r.stdout
    r = _cli("demo", "--output", "demo", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "demo"
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert "memory.png" in pngs and "delivery_prob_by_ttl.png" in pngs
    assert all((out / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert (out / "averaged" / "csv" / "ttl_average.csv").is_file() and (out / "memory.csv").is_file()
    assert str(out) in r.stdout
