"""What runs on the Dask workers: one file or a batch of files, with the worker's peak measured
around each (as the local pool's workers do), and a readiness check. Top-level functions of an
importable module, so workers import them by name."""
from __future__ import annotations

import os
import threading
import time
from typing import Callable, Sequence

from ..pool.records import bounded
from ..pool.worker import Probe, trim_memory
from ..system import MB, ProcessMemoryReader
from .cluster import _distributed


_meter_lock = threading.Lock()
_meter: tuple[Probe, ProcessMemoryReader] | None = None


def _worker_meter() -> tuple[Probe, ProcessMemoryReader]:
    global _meter
    with _meter_lock:
        if _meter is None:
            _meter = (Probe(), ProcessMemoryReader("pss", full_every=1.0))
        return _meter


def _worker_threads() -> int:
    try:
        return int(_distributed().get_worker().state.nthreads)
    except Exception:  # not inside a worker (a direct call): one thread
        return 1


def run_file(work: Callable, work_args: tuple, path: str, lean: bool) -> tuple:
    """Run ``work(path, *work_args)`` on a Dask worker and measure its process (TOP-LEVEL task).

    Returns ``(ok, result or reason, seconds, baseline_bytes, peak_delta_bytes, pid)``: the worker
    process's memory before the file and its peak-RSS rise while the file ran (peak mark reset
    first, as the local pool's workers do; with several threads per worker the mark is not reset,
    so the peak is the process's high-water mark: never lower than the truth).
    """
    probe, reader = _worker_meter()
    rss_before = probe.rss()
    m = reader.read(os.getpid(), rss=rss_before)
    baseline = None if m is None else m.mem
    hwm_ok = probe.reset_hwm() if _worker_threads() == 1 else probe.hwm() is not None
    t0 = time.perf_counter()
    try:
        result = work(path, *work_args, lean=True) if lean else work(path, *work_args)
        ok = True
    except Exception as exc:  # any failure of the work fails the file, not the task
        result, ok = bounded(f"{type(exc).__name__}: {exc}"), False
    seconds = time.perf_counter() - t0
    peak_delta = None
    if hwm_ok and rss_before is not None:
        hwm = probe.hwm()
        peak_delta = None if hwm is None else float(max(0, hwm - rss_before))
    if peak_delta is not None and peak_delta > 16 * MB:
        trim_memory()
    return ok, result, seconds, baseline, peak_delta, os.getpid()


def run_files(work: Callable, work_args: tuple, members: Sequence[tuple[str, bool]]) -> list[tuple]:
    """:func:`run_file` on each ``(path, lean)`` in turn (a batch of small files: one task, one round trip)."""
    return [run_file(work, work_args, path, lean) for path, lean in members]


def worker_info(modules: Sequence[str], probe_path: str | None) -> dict:
    """Import ``modules`` on a worker (the pool's preload) and say whether ``probe_path`` is readable there."""
    import importlib

    errors = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:
            errors.append(f"{name}: {type(exc).__name__}: {exc}")
    readable = None if probe_path is None else os.access(probe_path, os.R_OK)
    return {"pid": os.getpid(), "errors": errors, "readable": readable}


