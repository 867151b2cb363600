"""The memory sampler: per-process readings, per-file peaks, the DataFrame."""
from __future__ import annotations

import math
import multiprocessing as mp
import os
import time

import pytest

import workfns as tw
from oppnda_nb.pool.monitor import COLUMNS, MemoryMonitor, MemorySample, samples_frame
from oppnda_nb.system import ProcessMemoryReader

MB = 1024 * 1024


def test_reader_measures_this_process_and_forgets_dead_ones():
    r = ProcessMemoryReader()
    assert r.method in ("pss", "uss", "rss")
    m = r.read(os.getpid())
    assert m is not None and 0 < m.mem <= m.rss * 1.01
    p = mp.get_context("fork").Process(target=time.sleep, args=(0,))
    p.start()
    p.join()
    assert r.read(p.pid) is None
    with pytest.raises(ValueError):
        ProcessMemoryReader("vss")


def test_rss_method_equals_rss():
    m = ProcessMemoryReader("rss").read(os.getpid())
    assert m.mem == m.rss


def _hold(path, conn):
    tw.hold_alloc(path, 3.0, 0.0)  # warm up imports
    data = b"\x01" * (80 * MB)
    conn.send("ready")
    conn.recv()
    del data


def test_monitor_sees_a_worker_and_its_file_peak(tmp_path):
    ctx = mp.get_context("fork")
    a, b = ctx.Pipe()
    f = tmp_path / "x"
    f.write_bytes(b"1")
    proc = ctx.Process(target=_hold, args=(str(f), b))
    got = []
    mon = MemoryMonitor(lambda: [proc.pid] if proc.pid else [], interval=0.02, on_sample=got.append,
                        context=lambda s: (1000.0 * MB, s.kernel + 5 * MB, 1))
    proc.start()
    mon.begin_file("file-1", proc.pid)
    mon.start()
    assert a.recv() == "ready"
    deadline = time.monotonic() + 30
    while not any(proc.pid in s.workers and s.workers[proc.pid] > 70 * MB for s in got):
        assert time.monotonic() < deadline, "the monitor never saw the worker's 80 MB"
        time.sleep(0.02)
    a.send("go")
    proc.join()
    peak = mon.end_file("file-1")
    mon.stop()
    assert peak is not None and peak > 70 * MB
    frame = mon.frame()
    assert list(frame.columns[: len(COLUMNS)]) == list(COLUMNS)
    col = f"worker_{proc.pid}"
    assert col in frame.columns
    assert frame[col].max() > 70
    assert math.isnan(frame[col].iloc[-1])  # the final sample: the process is gone -> NaN
    assert (frame["budget_mb"] == 1000.0).all() and (frame["running"] == 1).all()
    assert (frame["workers_mb"] >= 0).all() and (frame["kernel_mb"] > 0).all()
    assert mon.peak_total >= peak


def test_a_failing_context_does_not_kill_the_sampler():
    def bad(s):
        raise RuntimeError("nope")

    mon = MemoryMonitor(lambda: [], interval=0.02, context=bad).start()
    time.sleep(0.15)
    mon.stop()
    assert len(mon.rows) >= 3 and any("nope" in e for e in mon.errors)
    assert math.isnan(mon.rows[0]["budget_mb"])


def test_samples_frame_fills_missing_workers_with_nan():
    s1 = MemorySample(0.0, 1 * MB, 2 * MB, 3 * MB, {11: 4 * MB}, 10 * MB, 9 * MB, 1)
    s2 = MemorySample(0.2, 1 * MB, 2 * MB, 3 * MB, {12: 5 * MB}, 10 * MB, 9 * MB, 1)
    frame = samples_frame([s1.row(), s2.row()])
    assert list(frame.columns) == list(COLUMNS) + ["worker_11", "worker_12"]
    assert frame["worker_11"].tolist()[0] == 4.0 and math.isnan(frame["worker_11"].tolist()[1])
    assert frame["workers_mb"].tolist() == [4.0, 5.0]
    assert samples_frame([]).empty


def test_the_frame_grows_by_the_new_samples_as_if_framed_whole():
    mon = MemoryMonitor(lambda: [], interval=1.0)
    workers = [{11: 4 * MB}, {11: 5 * MB}, {11: 5 * MB, 12: 6 * MB}, {12: 2 * MB}, {}, {13: 1 * MB}]
    for i, w in enumerate(workers):
        mon.rows.append(MemorySample(0.2 * i, 1 * MB, 2 * MB, 3 * MB, w, 10 * MB, 9 * MB, len(w)).row())
        grown = mon.frame()
        whole = samples_frame(list(mon.rows))
        assert list(grown.columns) == list(whole.columns) and grown.equals(whole)
    assert mon.frame() is grown  # nothing new: the same frame, not framed again


def test_interval_is_validated():
    with pytest.raises(ValueError):
        MemoryMonitor(lambda: [], interval=0)


def test_reader_carries_pss_forward_with_rss_between_full_reads():
    r = ProcessMemoryReader(full_every=60.0)
    if r.method not in ("pss", "uss"):
        pytest.skip("this OS gives neither PSS nor USS")
    first = r.read(os.getpid())
    block = bytearray(64 * MB)  # written (zeroed) pages: private memory of this process
    for i in range(0, len(block), 4096):
        block[i] = 1
    carried = r.read(os.getpid())  # within full_every: RSS delta on top of the last full reading
    assert carried.mem - first.mem == pytest.approx(carried.rss - first.rss)
    assert carried.mem - first.mem > 0.9 * 64 * MB
    exact = ProcessMemoryReader(r.method, full_every=0.0).read(os.getpid())
    assert carried.mem == pytest.approx(exact.mem, rel=0.1)
    del block
