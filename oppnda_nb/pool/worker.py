"""The worker process: its main loop and the per-file peak measurement.

A worker receives a batch ``[(task_id, path, lean), ...]`` (one file or more) through its own
Pipe, runs ``work(path, *work_args)`` on each member in order (``work(path, *work_args,
lean=True)`` for a lean attempt) and sends the outcomes back: at the end of the batch, and at
least every FLUSH_S seconds while it runs (so progress moves). Two shared numbers tell the
parent which member runs and since when (for a worker that dies or passes its time limit).
"""
from __future__ import annotations

import ctypes
import gc
import importlib
import logging
import os
import signal
import time
from multiprocessing.reduction import ForkingPickler
from typing import Any, Callable, Sequence

from ..system import MB, ProcessMemoryReader
from .records import bounded

log = logging.getLogger("oppnda_nb.pool")

#: A worker running a batch sends the outcomes gathered so far at least this often (seconds).
FLUSH_S = 0.05


def _read_status_kb(key: bytes) -> int | None:
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


class Probe:
    """The worker's own RSS and peak-RSS mark through /proc/self files kept open (pread): ~10 µs
    per file instead of ~40 µs for open+read+close, which matters for thousands of 30 µs files.
    Opened in the worker itself (a forked copy of the parent's fds would read the parent)."""

    def __init__(self):
        self.page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self.statm = self._open("/proc/self/statm", os.O_RDONLY)
        self.status = self._open("/proc/self/status", os.O_RDONLY)
        self.clear = self._open("/proc/self/clear_refs", os.O_WRONLY)

    @staticmethod
    def _open(path: str, flags: int) -> int | None:
        try:
            return os.open(path, flags)
        except (OSError, AttributeError):
            return None

    def rss(self) -> int | None:
        if self.statm is None:
            return None
        try:
            return int(os.pread(self.statm, 256, 0).split()[1]) * self.page
        except (OSError, ValueError, IndexError):
            return None

    def reset_hwm(self) -> bool:
        """Reset the peak-RSS mark (Linux: write 5 to /proc/self/clear_refs)."""
        if self.clear is None:
            return False
        try:
            os.write(self.clear, b"5")
            return True
        except OSError:
            return False

    def hwm(self) -> int | None:
        if self.status is None:
            return _read_status_kb(b"VmHWM:")
        try:
            b = os.pread(self.status, 16384, 0)
            i = b.find(b"VmHWM:")
            if i < 0:
                return None
            return int(b[i + 6:b.find(b"\n", i)].split()[0]) * 1024
        except (OSError, ValueError, IndexError):
            return _read_status_kb(b"VmHWM:")


def trim_memory() -> None:
    """Give freed heap back to the OS (glibc), so an idle worker's memory is what it holds."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        log.debug("malloc_trim is not available here")


def send_outcomes(conn, records: list, retire: bool = False) -> bool:
    """Send ("done", records, retire) to the parent; a record whose result cannot be pickled fails
    that file only. ``retire``: this worker exits after these outcomes. False when the parent is gone."""
    try:
        conn.send(("done", records, retire))
        return True
    except (EOFError, OSError, BrokenPipeError):
        return False
    except Exception:  # some result could not be pickled: find it, fail that file only
        fixed = []
        for rec in records:
            try:
                ForkingPickler.dumps(rec)
                fixed.append(rec)
            except Exception as exc:
                reason = bounded(f"result could not be sent to the parent ({type(exc).__name__}: {exc})")
                fixed.append((rec[0], False, reason) + tuple(rec[3:]))
        try:
            conn.send(("done", fixed, retire))
            return True
        except (EOFError, OSError, BrokenPipeError):
            return False
        except Exception:
            log.warning("a worker could not send its outcomes", exc_info=True)
            return False


class _Meter:
    """The worker's own memory: the baseline before a file (USS, else RSS, through the one
    :class:`~oppnda_nb.system.ProcessMemoryReader`, RSS-carried between full reads) and the
    peak above it (peak-RSS mark reset before the file, read after it)."""

    def __init__(self, method: str):
        # the baseline is read the way the monitor reads workers (PSS by default), so a learned
        # per-file peak and the monitor's per-worker memory are on one scale; with fork a worker's
        # PSS holds a share of the kernel's pages, so "uss" is the method there (see PoolOptions)
        self.reader = ProcessMemoryReader(method if method in ("pss", "uss") else "rss", full_every=1.0)
        self.probe = Probe()

    def baseline(self) -> tuple[float | None, int | None]:
        rss = self.probe.rss()
        m = self.reader.read(os.getpid(), rss=rss)
        return (None if m is None else m.mem), rss

    def start(self) -> bool:
        return self.probe.reset_hwm()

    def peak_delta(self, hwm_ok: bool, rss_before: int | None) -> float | None:
        if not hwm_ok or rss_before is None:
            return None
        hwm = self.probe.hwm()
        return None if hwm is None else float(max(0, hwm - rss_before))


def run_one(work: Callable, work_args: tuple, path: str, lean: bool, meter: _Meter) -> tuple:
    """Run one file: (ok, result or reason, seconds, baseline, peak_delta)."""
    baseline, rss_before = meter.baseline()
    hwm_ok = meter.start()
    t0 = time.perf_counter()
    try:
        result = work(path, *work_args, lean=True) if lean else work(path, *work_args)
        ok = True
    except BaseException as exc:  # noqa: BLE001 - any failure of the work fails the file
        result, ok = bounded(f"{type(exc).__name__}: {exc}"), False
    seconds = time.perf_counter() - t0
    peak_delta = meter.peak_delta(hwm_ok, rss_before)
    if peak_delta is not None and peak_delta > 16 * MB:
        trim_memory()  # (a big result is kept until it is sent: the trim frees the parser's garbage)
    return ok, result, seconds, baseline, peak_delta


#: a worker whose own memory grew by more than this since it started retires after its batch
RETIRE_GROWTH = 8 * MB


def worker_main(conn, work: Callable, work_args: tuple, method: str, warmup: str | None = None,
                current: Any = None, started: Any = None, preload: Sequence[str] = ()) -> None:
    """Loop of one worker (see the module docstring). ``current`` (a shared integer) holds the
    task id of the member it runs, -1 between batches; ``started`` (a shared float) the
    ``time.monotonic()`` when that member started. ``preload``: modules imported before anything is
    measured (the forkserver imported them already; a spawned worker imports them here, so its first
    file's rise above the baseline is the file's, not the imports').

    Ignores SIGINT (the parent handles Ctrl-C). Exits on None, on EOF, or when its parent is gone.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):  # blocked by the parent while it forked us (processes.sigint_blocked)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    ppid = os.getppid()
    for name in preload:
        try:
            importlib.import_module(name)
        except Exception:  # the work itself will say what is missing, as a file failure
            log.debug("preloading %s failed", name, exc_info=True)
    if warmup is not None:  # pay for lazy imports now, so the baseline includes them
        try:
            work(warmup, *work_args)
        except BaseException:  # noqa: BLE001 - a warm-up failure is not a file failure
            log.debug("warm-up on %s failed", warmup, exc_info=True)
        trim_memory()
    meter = _Meter(method)
    base_mem, _ = meter.baseline()
    conn.send(("ready", os.getpid(), base_mem))
    while True:
        try:
            if not conn.poll(1.0):
                if os.getppid() != ppid:
                    return
                continue
            msg = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if msg is None:
            return
        records: list = []
        last = time.monotonic()
        for task_id, path, lean in msg:
            if current is not None:
                current.value = task_id
            if started is not None:
                started.value = time.monotonic()
            rec = run_one(work, work_args, path, lean, meter)
            records.append((task_id,) + rec)
            now = time.monotonic()
            if now - last >= FLUSH_S:
                if not send_outcomes(conn, records):
                    return
                records, last = [], now
        now_mem, _ = meter.baseline()
        # what the files left behind (allocator arenas, caches) would count against every later
        # file's estimate: a worker that grew hands over to a fresh one after this batch
        retire = base_mem is not None and now_mem is not None and now_mem - base_mem > RETIRE_GROWTH
        if current is not None:
            current.value = -1
        if (records or retire) and not send_outcomes(conn, records, retire):
            return
        if retire:
            return
