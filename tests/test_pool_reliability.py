"""Reliability of the pool: no __main__ re-import, time limits, no helpers or temp folders left,
the watchdog, the oversize policy, bounded reasons, the budget counting multiprocessing's helpers."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import psutil
import pytest

import workfns as tw
from conftest import big_manager, make_files
from oppnda_nb.pool import Job
from oppnda_nb.resource_manager import ResourceManager
from oppnda_nb.system import MB, ProcessMemoryReader

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent


def run_script(tmp_path, body: str, *, stdin: bool = False, timeout: float = 120):
    """Run ``body`` as a script (or from stdin) with its own TMPDIR; (process, tmpdir)."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{TESTS}", TMPDIR=str(tmp))
    code = textwrap.dedent(body)
    if stdin:
        proc = subprocess.run([sys.executable, "-"], input=code, text=True, capture_output=True, env=env,
                              timeout=timeout, cwd=tmp_path)
    else:
        script = tmp_path / "script.py"
        script.write_text(code)
        proc = subprocess.run([sys.executable, str(script)], text=True, capture_output=True, env=env,
                              timeout=timeout, cwd=tmp_path)
    return proc, tmp


SCRIPT = """
import os, psutil
with open({log!r}, "a") as f:
    f.write("ran\\n")                        # no main guard: this line runs in every importer
from oppnda_nb.pool import Job
from oppnda_nb.resource_manager import ResourceManager
import workfns
files = [{a!r}, {b!r}]
for method in ("spawn", "forkserver"):
    r = Job(files, workfns.read_size, manager=ResourceManager(memory_reader=lambda: (0.0, 1e12)),
            workers=2, start_method=method).run()
    assert r.results == [3, 4], r.summary()
print("children", len(psutil.Process().children(recursive=True)))
"""


@pytest.mark.parametrize("stdin", [False, True])
def test_workers_never_import_the_main_script(tmp_path, stdin):
    a, b = make_files(tmp_path, [("a.txt", 3), ("b.txt", 4)])
    log = tmp_path / "ran.log"
    proc, tmp = run_script(tmp_path, SCRIPT.format(log=str(log), a=a, b=b), stdin=stdin)
    assert proc.returncode == 0, proc.stderr
    assert log.read_text().splitlines() == ["ran"], "the main script ran again in a worker"
    # no worker, forkserver or resource tracker left once the jobs are over; no pymp-* folder after exit
    assert "children 0" in proc.stdout
    assert list(tmp.glob("pymp-*")) == []


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_a_main_namespace_without_spec_as_ipythons_run_makes(tmp_path, monkeypatch, method):
    """``%run script.py`` in IPython runs the script in a namespace object with no ``__spec__``:
    multiprocessing reads it when it starts a worker (it failed with an AttributeError)."""
    class DummyMain:  # what IPython puts in sys.modules["__main__"] during %run
        __name__ = "__main__"

    monkeypatch.setitem(sys.modules, "__main__", DummyMain())
    files = make_files(tmp_path, [("a.txt", 3), ("b.txt", 4)])
    result = Job(files, tw.file_size, (), big_manager(), workers=2, start_method=method).run()
    assert result.status == "finished" and result.counts["processed"] == 2, result.summary()


def test_sigterm_during_run_leaves_no_process_and_no_temp_folder(tmp_path):
    files = make_files(tmp_path, [(f"f{i}.txt", 10) for i in range(4)])
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    code = textwrap.dedent(f"""
        import sys, workfns
        from oppnda_nb.pool import Job
        from oppnda_nb.resource_manager import ResourceManager
        job = Job({files!r}, workfns.sleep_work, (60.0,), ResourceManager(memory_reader=lambda: (0.0, 1e12)),
                  workers=2, start_method="forkserver")
        job.add_listener(lambda ev: ev.kind == "file_started" and print("started", flush=True))
        job.run()
        print("not reached")
    """)
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{TESTS}", TMPDIR=str(tmp))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "started"
        kids = psutil.Process(proc.pid).children(recursive=True)
        assert len(kids) >= 3  # forkserver, workers (and the resource tracker)
        assert list(tmp.glob("pymp-*")), "the forkserver's socket folder exists while it runs"
        proc.send_signal(signal.SIGTERM)
        rest = proc.stdout.read()
        assert proc.wait(30) == -signal.SIGTERM
    finally:
        proc.kill()
    assert "not reached" not in rest
    _, alive = psutil.wait_procs(kids, timeout=5)
    assert alive == [], f"left behind: {alive}"
    assert list(tmp.glob("pymp-*")) == []


def test_a_file_past_its_time_limit_fails_and_its_worker_is_replaced(tmp_path):
    fifo = tmp_path / "stuck.fifo"
    os.mkfifo(fifo)  # nobody writes: the worker blocks in open()
    files = [str(fifo)] + make_files(tmp_path, [(f"ok{i}.txt", 10 + i) for i in range(4)])
    job = Job(files, tw.read_all, manager=big_manager(), workers=2, start_method="fork", file_timeout=1.0,
              batch=False)
    warnings = []
    job.add_listener(lambda ev: ev.kind == "warning" and warnings.append(ev.data))
    r = job.run()
    stuck = r.outcomes[0]
    assert stuck.status == "failed" and "time limit of 1 s" in stuck.reason and stuck.attempts == 1
    assert [o.result for o in r.outcomes[1:]] == [10, 11, 12, 13]
    assert r.accounting_ok and r.workers_final == 2  # replaced, not one fewer
    assert any("stuck.fifo" in w and "time limit" in w for w in warnings)


def test_stop_ends_workers_and_helpers(tmp_path):
    files = make_files(tmp_path, [(f"f{i}.txt", 100 + i) for i in range(6)])
    started = threading.Event()
    pids = set()

    def on(ev):
        if ev.kind == "file_started":
            pids.add(ev.data.worker_pid)
            if len(pids) >= 2:
                started.set()

    job = Job(files, tw.ignore_term_sleep, (60.0,), manager=big_manager(), workers=2, start_method="spawn")
    job.add_listener(on)
    job.start()
    assert started.wait(60)
    job.stop()
    r = job.wait()
    assert r.status == "cancelled" and r.accounting_ok
    assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


def test_failure_reasons_are_bounded(tmp_path):
    files = make_files(tmp_path, [("a.txt", 5)])
    r = Job(files, tw.raise_long, manager=big_manager(), start_method="fork").run()
    o = r.outcomes[0]
    assert o.status == "failed" and o.reason.startswith("ValueError: xxx") and len(o.reason) == 300


def test_estimate_and_kind_come_from_the_caller_and_oversize_files_go_lean_or_are_skipped(tmp_path):
    files = make_files(tmp_path, [("huge_lean.txt", 3000), ("huge.txt", 2000), ("small.txt", 10)])
    seen = []

    def estimate(path, size, lean):
        seen.append((os.path.basename(path), size, lean))
        name = os.path.basename(path)
        if name == "small.txt":
            return 10 * MB
        if name == "huge_lean.txt" and lean:
            return 20 * MB
        return 10 ** 9 * MB  # does not fit any budget

    r = Job(files, tw.lean_flag, manager=big_manager(), workers=2, start_method="fork", estimate=estimate,
            kind_of=lambda p: "K" + os.path.basename(p)[0]).run()
    by = {os.path.basename(o.path): o for o in r.outcomes}
    assert r.accounting_ok
    assert by["small.txt"].status == "processed" and by["small.txt"].result is False
    assert by["huge_lean.txt"].status == "processed" and by["huge_lean.txt"].result is True
    assert by["huge_lean.txt"].lean and by["huge_lean.txt"].estimate_mb == 20
    skipped = by["huge.txt"]
    assert skipped.status == "skipped" and "huge.txt" in skipped.reason and "budget" in skipped.reason
    assert {o.report_type for o in r.outcomes} == {"Kh", "Ks"}
    assert ("huge_lean.txt", 3000, True) in seen and ("small.txt", 10, False) in seen
    assert any("lean mode" in w for w in r.warnings)


def _tight_manager(headroom_mb: float):
    kernel = ProcessMemoryReader().read(os.getpid()).mem
    eta = 0.75
    return ResourceManager(eta=eta, gamma=1.0, overhead_mb=0,
                           memory_reader=lambda: (0.0, (kernel + headroom_mb * MB) / eta))


def test_watchdog_stops_a_worker_far_above_its_estimate_and_retries_the_file_alone_lean(tmp_path):
    files = make_files(tmp_path, [("greedy.txt", 1000)])
    events = []
    job = Job(files, tw.alloc_unless_lean, (400, 20.0), _tight_manager(200), workers=1, start_method="fork",
              sample_interval=0.05)
    job.add_listener(events.append)
    r = job.run()
    o = r.outcomes[0]
    assert o.status == "processed" and o.result == "lean" and o.lean and o.attempts == 2
    assert len(o.retries) == 1 and "watchdog" in o.retries[0]
    assert any(e.kind == "warning" and "watchdog" in e.data and "alone in lean mode" in e.data for e in events)
    assert r.elapsed_s < 20.0  # it did not wait for the 20 s hold of the full attempt: the watchdog stopped it


def test_budget_counts_multiprocessings_helpers_as_the_jobs_own(tmp_path):
    files = make_files(tmp_path, [(f"f{i}.txt", 10) for i in range(6)])
    kernel = ProcessMemoryReader().read(os.getpid()).mem
    total_mb = (kernel / MB + 600) / 0.75
    m = ResourceManager(total_ram_mb=total_mb, eta=0.75)
    # a forkserver that imports the heavy modules (as a real run's does): ~30 MB of helpers
    r = Job(files, tw.sleep_work, (0.3,), m, workers=2, start_method="forkserver", sample_interval=0.05,
            preload=["workfns", "oppnda_nb.reports.api", "oppnda_nb.averaging.summarize"]).run()
    f = r.memory
    running = f[f["running"] > 0]
    assert len(running) and (running["helpers_mb"] > 0).all()  # the forkserver is counted ...
    # ... as the job's own: the budget does not drop while workers run (others ≈ 0 on this virtual machine)
    first = float(f["budget_mb"].iloc[0])
    assert running["helpers_mb"].mean() > 25
    assert running["budget_mb"].min() > first - 20
    assert (f["system_used_mb"] <= total_mb + 1e-6).all()
