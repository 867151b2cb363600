"""Memory safety on a small virtual machine: the pool stays under η·M_RAM, a plain Pool does not.

The machine is virtual (``ResourceManager(total_ram_mb=...)``: "used" is this process tree),
sized so that the budget is the test process's memory + 700 MB. The files are sparse (made
instantly) and the work really holds 3 × size in memory (``_testwork.hold_alloc``: the read
bytes plus 2 × size of written pages) for 0.5 s. The two largest files (150 + 140 MB → 870 MB)
do not fit the budget together; each fits alone.

The test's own measuring thread sums **PSS** over this process and all its descendants every
20 ms (PSS splits shared pages, so the sum is the real memory of the tree, also with fork).
Tolerance: 5 % of the budget (sampling noise, allocator slack, pages of the pipes).
Each pool run happens in a freshly spawned parent process (see ``_scenario``), so the result
does not depend on how big the pytest process has grown by the time this test runs.
"""
from __future__ import annotations

import multiprocessing as mp
import threading
import time

import psutil
import pytest

import workfns as tw
from oppnda_nb.system import ProcessMemoryReader
from oppnda_nb.pool import Job
from oppnda_nb.resource_manager import ResourceManager

MB = 1024 * 1024
SIZES_MB = [150, 140, 110, 60, 40, 30, 20, 20, 10]
GAMMA = 3.0
HEADROOM_MB = 700
TOLERANCE = 0.05

pytestmark = pytest.mark.slow


def tree_pss() -> float:
    me = psutil.Process()
    total = 0.0
    for p in [me] + me.children(recursive=True):
        try:
            total += p.memory_full_info().pss
        except psutil.Error:
            pass
    return total


class TreeSampler:
    """Samples the PSS of the whole process tree on a thread of the test's own."""

    def __init__(self, interval=0.02):
        self.peak = 0.0
        self.n = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, args=(interval,), daemon=True)

    def _run(self, interval):
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_pss())
            self.n += 1
            self._stop.wait(interval)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


@pytest.fixture(scope="module")
def big_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("big")
    paths = []
    for i, s in enumerate(SIZES_MB):
        p = d / f"TEST_run_{i}_{s}M_BigReport.txt"
        with open(p, "wb") as f:
            f.truncate(s * MB)  # sparse: instant, and reading it yields real bytes in memory
        paths.append(str(p))
    return paths


def virtual_manager():
    kernel = ProcessMemoryReader().read(psutil.Process().pid).mem
    eta = 0.75
    total_mb = (kernel / MB + HEADROOM_MB) / eta
    return ResourceManager(total_ram_mb=total_mb, eta=eta, gamma=GAMMA, overhead_mb=50), eta * total_mb


def _scenario(method, paths, queue):
    """Run the pool on the big files and measure the tree, in a fresh (spawned) parent process.

    A fresh parent, like a kernel that has just imported oppnda_nb: with ``fork``, workers share
    the parent's pages and copy those they touch, so a parent that already holds hundreds of MB
    (the whole pytest session here) makes every forked worker grow by an amount no estimate of
    the *file* can predict. That is why the pool's default start method is forkserver.
    """
    manager, budget_mb = virtual_manager()
    running, together = set(), []

    def on(ev):
        if ev.kind == "file_started":
            running.add(ev.data.path)
            together.append(sorted(running))
        elif ev.kind in ("file_finished", "file_failed"):
            running.discard(ev.data.path)

    job = Job(paths, tw.hold_alloc, (GAMMA, 0.5), manager, workers=2, start_method=method, sample_interval=0.1)
    job.add_listener(on)
    with TreeSampler() as s:
        result = job.run()
    frame = result.memory
    queue.put({
        "status": result.status, "accounting_ok": result.accounting_ok, "processed": result.counts["processed"],
        "samples": s.n, "peak_mb": s.peak / MB, "budget_mb": budget_mb,
        "measured_peak_mb": result.measured_peak_mb, "predicted_peak_mb": result.predicted_peak_mb,
        "max_delta_mb": max(o.peak_delta_mb for o in result.outcomes),
        "pool_samples_max_mb": float((frame["kernel_mb"] + frame["workers_mb"]).max()),
        "together": together,
    })


@pytest.mark.parametrize("method", ["forkserver", "fork", "spawn"])
def test_pool_stays_under_the_budget(big_files, method):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_scenario, args=(method, big_files, queue))
    proc.start()
    try:
        r = queue.get(timeout=120)
    finally:
        proc.join(30)
    assert r["status"] == "finished" and r["accounting_ok"] and r["processed"] == len(SIZES_MB)
    assert r["samples"] > 50
    print(f"{method}: budget {r['budget_mb']:.0f} MB, tree PSS peak {r['peak_mb']:.0f} MB, pool's own peak "
          f"{r['measured_peak_mb']:.0f} MB, predicted {r['predicted_peak_mb']:.0f} MB")
    # not vacuous: the largest file really held ~3 × 150 MB
    assert r["max_delta_mb"] > 0.9 * GAMMA * 150
    limit = r["budget_mb"] * (1 + TOLERANCE)
    assert r["peak_mb"] <= limit, f"pool exceeded the budget: {r['peak_mb']:.0f} > {r['budget_mb']:.0f} MB"
    assert r["pool_samples_max_mb"] <= limit  # the pool's own samples agree
    # the two largest files never ran together, but small files did run two at a time
    assert not any({big_files[0], big_files[1]} <= set(group) for group in r["together"])
    assert any(len(group) == 2 for group in r["together"]), "small files still ran two at a time"


def test_plain_pool_exceeds_the_same_budget(big_files):
    manager, budget_mb = virtual_manager()
    ctx = mp.get_context("fork")
    with TreeSampler() as s:
        with ctx.Pool(2) as pool:  # as many workers as CPUs here; the two largest files run together
            out = pool.starmap(tw.hold_alloc, [(p, GAMMA, 0.5) for p in big_files], chunksize=1)
        time.sleep(0.05)
    assert sum(out) > 0
    peak_mb = s.peak / MB
    print(f"plain Pool: budget {budget_mb:.0f} MB, tree PSS peak {peak_mb:.0f} MB")
    assert peak_mb > budget_mb * (1 + TOLERANCE)
