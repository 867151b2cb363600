"""The same job on Dask: a real scheduler and two real workers (subprocesses on 127.0.0.1) for the
large run, a killed worker and a stop; an in-process LocalCluster for the fast checks."""
from __future__ import annotations

import gzip
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")

from oppnda_nb import averaging, dask_backend, job  # noqa: E402
from oppnda_nb.errors import OppndaError  # noqa: E402
from oppnda_nb.pool import COLUMNS, EventKind  # noqa: E402
from oppnda_nb.resource_manager import ResourceManager  # noqa: E402
from oppnda_nb.system import MB  # noqa: E402
from shared_data import ONE_REPORTS  # noqa: E402

import workfns  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LARGE = ONE_REPORTS / "large-run"
ETA = 0.75
LIMIT_MB = 400
CAPACITY_MB = int(ETA * LIMIT_MB)
#: what the Dask logs say when a worker is paused, restarted or killed for memory (or dies)
MEMORY_TROUBLE = re.compile(r"Pausing worker|exceeded \d+% memory|memory budget|Restarting worker|"
                            r"KilledWorker|was killed|Remove worker|Worker process \d+ (was|exited)", re.I)


# ---------------------------------------------------------------------------------- fixtures

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """``dask scheduler`` + two ``dask worker`` processes with the MEMORY resource; logs in files."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.port = _free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]))
        self.procs: list[subprocess.Popen] = []
        self.logs: list[Path] = []

    def _spawn(self, name: str, *args: str) -> None:
        log = self.tmp / f"{name}.log"
        self.logs.append(log)
        with open(log, "wb") as fh:
            self.procs.append(subprocess.Popen([sys.executable, "-m", "dask", *args], stdout=fh, stderr=subprocess.STDOUT,
                                               env=self.env, cwd=self.tmp, start_new_session=True))

    def start(self) -> "Cluster":
        self._spawn("scheduler", "scheduler", "--host", "127.0.0.1", "--port", str(self.port), "--no-dashboard")
        for n in (1, 2):
            self._spawn(f"worker{n}", "worker", self.address, "--host", "127.0.0.1", "--name", f"w{n}",
                        "--nthreads", "1", "--memory-limit", f"{LIMIT_MB}MiB", "--resources",
                        f"MEMORY={CAPACITY_MB}", "--no-dashboard")
        with distributed.Client(self.address, timeout=30) as c:
            c.wait_for_workers(2, timeout=60)
        return self

    def log_offsets(self) -> dict[Path, int]:
        return {p: p.stat().st_size for p in self.logs}

    def log_since(self, offsets: dict[Path, int]) -> str:
        return "".join(p.read_bytes()[offsets.get(p, 0):].decode(errors="replace") for p in self.logs)

    def stop(self) -> None:
        for p in self.procs:  # each in its own session: the nanny's worker goes with it
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("dask-cluster"))
    try:
        yield c.start()
    finally:
        c.stop()


@pytest.fixture(scope="module")
def inproc():
    """Two in-process workers with the MEMORY resource (fast checks)."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0",
                                  resources={"MEMORY": CAPACITY_MB}) as c, distributed.Client(c) as cl:
        yield cl


def _files(folder: Path, n: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        p = folder / f"f{i:02d}.txt"
        p.write_text("x" * (100 + i))
        out.append(str(p))
    return out


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "run.json"}


# ---------------------------------------------------------------------------------- real cluster

@pytest.mark.skipif(not LARGE.is_dir(), reason="shared large-run data not present")
def test_large_run_on_a_real_cluster_matches_the_local_pool(cluster, tmp_path):
    folder = tmp_path / "large"
    folder.mkdir()
    for gz in sorted(LARGE.glob("*.gz")):
        with gzip.open(gz, "rb") as src, open(folder / gz.name[:-3], "wb") as dst:
            shutil.copyfileobj(src, dst, 4 * MB)
    local = job.Run(folder, output=tmp_path / "local", cache=False).run()
    offsets = cluster.log_offsets()
    events = []
    run = job.Run(folder, output=tmp_path / "dask", cache=False, scheduler=cluster.address,
                  manager=ResourceManager(eta=ETA))
    run.add_listener(events.append)
    remote = run.run()
    assert remote.job.accounting_ok and remote.job.counts["processed"] == 12 == local.job.counts["processed"]
    assert remote.exit_code == 0 and remote.job.status == "finished"
    local_tree, remote_tree = _tree(tmp_path / "local"), _tree(tmp_path / "dask")
    assert local_tree and any(k.startswith("csv") for k in local_tree)
    assert remote_tree.keys() == local_tree.keys()
    for name, data in local_tree.items():
        assert remote_tree[name] == data, name
    # every file measured on its worker (the job learns from these), two worker columns on the plot
    finished = [e.data for e in events if e.kind == EventKind.FILE_FINISHED]
    assert len(finished) == 12 and all(o.peak_mb and o.peak_mb > 0 for o in finished)
    frame = remote.job.memory
    workers = [c for c in frame.columns if c.startswith("worker_")]
    assert list(frame.columns[:len(COLUMNS)]) == list(COLUMNS) and len(workers) == 2
    assert frame["budget_mb"].max() == pytest.approx(2 * CAPACITY_MB)
    assert (frame[workers].max() > 0).all()
    assert any(e.kind == EventKind.MEMORY for e in events)
    logs = cluster.log_since(offsets)
    assert not MEMORY_TROUBLE.search(logs), MEMORY_TROUBLE.search(logs).group(0)


def test_a_killed_worker_s_file_is_run_again(cluster, tmp_path):
    files = _files(tmp_path / "in", 6)
    victim = files[-1]  # the largest: submitted first
    dj = dask_backend.DaskJob(files, workfns.sleep_work, (1.5,), ResourceManager(eta=ETA), client=cluster.address,
                              sample_interval=0.1, estimate=lambda p, s, lean: 50 * MB)
    client = distributed.Client(cluster.address, timeout=10)
    try:
        dj.start()
        key = None
        deadline = time.monotonic() + 30
        while key is None and time.monotonic() < deadline:  # the worker executing it (not one it waits on)
            for addr, keys in client.run(workfns.executing_keys).items():
                if dj.key_of(victim) in keys:
                    key = (addr, dj.key_of(victim))
            time.sleep(0.05)
        assert key is not None, "the victim's task never started"
        time.sleep(0.4)  # a memory sample sees the file on that worker
        pid = client.run(os.getpid, workers=[key[0]])[key[0]]
        os.kill(pid, signal.SIGKILL)
        result = dj.wait(timeout=90)
    finally:
        client.close()
    assert result.accounting_ok and result.counts["processed"] == 6, result.summary()
    o = next(o for o in result.outcomes if o.path == victim)
    assert o.status == "processed" and o.attempts >= 2 and o.retries, o
    assert any("lost" in w for w in result.warnings)


def test_stop_mid_run_cancels_the_rest(cluster, tmp_path):
    files = _files(tmp_path / "in", 16)
    dj = dask_backend.DaskJob(files, workfns.sleep_work, (0.5,), ResourceManager(eta=ETA), client=cluster.address,
                              estimate=lambda p, s, lean: 50 * MB)
    first = []
    dj.add_listener(lambda e: first.append(e) if e.kind == EventKind.FILE_FINISHED else None)
    dj.start()
    deadline = time.monotonic() + 30
    while not first and time.monotonic() < deadline:
        time.sleep(0.02)
    t0 = time.monotonic()
    dj.stop(wait=False)
    result = dj.wait(timeout=30)
    took = time.monotonic() - t0
    print(f"stop() -> wait() returned in {took:.2f} s")
    assert result.status == "cancelled" and result.accounting_ok
    assert result.counts["cancelled"] >= 1 and result.counts["processed"] >= 1
    assert all(o.reason for o in result.outcomes if o.status == "cancelled")


# ---------------------------------------------------------------------------------- in-process

def test_oversize_file_is_skipped_with_the_reason(inproc, tmp_path):
    files = _files(tmp_path / "in", 3)
    big = files[1]
    est = {big: 10 * 1024 * MB}
    dj = dask_backend.DaskJob(files, workfns.file_size, (), ResourceManager(eta=ETA), client=inproc,
                              estimate=lambda p, s, lean: est.get(p, 20 * MB))
    result = dj.run()
    assert result.accounting_ok and result.counts["processed"] == 2 and result.counts["skipped"] == 1
    o = next(o for o in result.outcomes if o.path == big)
    assert o.status == "skipped" and "f01.txt" in o.reason and "10240 MB" in o.reason and f"{CAPACITY_MB} MB" in o.reason
    assert dj.resource_mode and dj.budget_mb == pytest.approx(2 * CAPACITY_MB)


def test_work_errors_and_missing_files_fail_only_that_file(inproc, tmp_path):
    files = _files(tmp_path / "in", 3)
    bad = str(tmp_path / "in" / "bad.txt")
    Path(bad).write_text("x")
    gone = str(tmp_path / "gone.txt")
    dj = dask_backend.DaskJob(files + [bad, gone], workfns.raise_on, ("bad",), client=inproc,
                              skipped=[(str(tmp_path / "s.txt"), "not a report")])
    result = dj.run()
    assert result.accounting_ok and result.counts == {"processed": 3, "skipped": 1, "failed": 2, "cancelled": 0,
                                                      "total": 6, "cached": 0}
    reasons = {os.path.basename(o.path): o.reason for o in result.failed}
    assert reasons["bad.txt"].startswith("ValueError") and "FileNotFoundError" in reasons["gone.txt"]


def test_sample_on_dask_matches_the_local_pool_and_uses_the_cache(inproc, tmp_path):
    folder = tmp_path / "in"
    shutil.copytree(averaging.sample_folder(), folder)
    (folder / "TEST_EpidemicRouter_9_60_2M_MessageStatsReport.txt").write_bytes(b"")  # a bad file
    local = job.Run(folder, output=tmp_path / "local", cache=False).run()
    events = []
    run = job.Run(folder, output=tmp_path / "dask", cache=tmp_path / "cache", scheduler=inproc)
    run.add_listener(events.append)
    remote = run.run()
    assert remote.job.counts == local.job.counts and remote.job.counts["failed"] == 1
    assert _tree(tmp_path / "dask") == _tree(tmp_path / "local")
    kinds = {str(e.kind) for e in events}
    assert {"progress", "file_finished", "file_failed", "memory", "done", job.RUN_DONE} <= kinds
    pool_done = [e for e in events if e.kind == EventKind.DONE]
    assert len(pool_done) == 1 and pool_done[0].data is remote.job
    assert [str(e.kind) for e in events[events.index(pool_done[0]):]] == ["done", job.PHASE, job.PHASE, job.RUN_DONE]
    # a re-run takes every good file from the cache: processed "cached", no task
    again = job.Run(folder, output=tmp_path / "dask2", cache=tmp_path / "cache", scheduler=inproc).run()
    assert again.job.counts["cached"] == again.job.counts["processed"] == local.job.counts["processed"]
    assert _tree(tmp_path / "dask2") == _tree(tmp_path / "local")


def test_workers_without_the_resource_run_one_file_per_thread_with_a_warning(tmp_path):
    files = _files(tmp_path / "in", 4)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0",
                                  memory_limit="400MiB") as c, distributed.Client(c) as cl:
        dj = dask_backend.DaskJob(files, workfns.file_size, (), ResourceManager(eta=ETA), client=cl)
        result = dj.run()
    assert not dj.resource_mode and result.counts["processed"] == 4
    assert result.budget_mb == pytest.approx(ETA * LIMIT_MB)
    assert any("--resources MEMORY=" in w for w in result.warnings)


def test_local_cluster_gives_each_worker_eta_of_its_limit():
    rm = ResourceManager(memory_reader=lambda: (0.0, 2048.0 * MB), base_reader=lambda: 0.0)  # budget 1536 MB
    with dask_backend.local_cluster(rm, n_workers=2, processes=False) as cluster:
        limits = [w.memory_manager.memory_limit for w in cluster.workers.values()]
        caps = [w.state.total_resources["MEMORY"] for w in cluster.workers.values()]
    assert caps == [768, 768]  # Σ capacities = the machine's budget η·M_RAM − M_others
    assert limits == [1024 * MB, 1024 * MB]  # each limit plays M_RAM: η of it is the capacity


def test_connect_says_what_to_do(monkeypatch):
    monkeypatch.setattr(dask_backend, "CONNECT_TIMEOUT", 1.0)
    with pytest.raises(OppndaError, match="dask scheduler"):
        dask_backend.connect(f"tcp://127.0.0.1:{_free_port()}")
    with pytest.raises(OppndaError, match="scheduler must be"):
        dask_backend.connect(3.5)
    with pytest.raises(OppndaError, match="client="):
        dask_backend.DaskJob(["a"], workfns.file_size)


def test_int_scheduler_starts_and_closes_a_local_cluster(tmp_path):
    files = _files(tmp_path / "in", 2)
    dj = dask_backend.DaskJob(files, workfns.file_size, (), ResourceManager(total_ram_mb=2048), client=1,
                              estimate=lambda p, s, lean: 10 * MB)
    assert dj.owned and dj.resource_mode and dj.workers == 1
    result = dj.run()
    assert result.counts["processed"] == 2 and not dj.owned
    assert dj.client.status == "closed"
    assert math.isfinite(result.predicted_peak_mb)
