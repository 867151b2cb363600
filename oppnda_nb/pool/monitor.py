"""The memory sampler of a pool: the kernel, each worker process, the budget, the prediction.

A :class:`MemoryMonitor` runs a daemon thread that takes one :class:`MemorySample` every
``interval`` seconds (100–250 ms is the useful range) and hands it to a callback, so the
pool can use the latest measurement for admission control and send it to listeners.

What is measured, and why:

* per process, **PSS** where the OS gives it (Linux), USS otherwise (macOS/Windows), RSS as the
  last resort. PSS splits a page shared by n processes into n parts, so the sum over the kernel
  and its workers is the real memory of the pool, also with ``fork`` (RSS would count the
  kernel's pages once per forked worker). ``memory_full_info`` costs ~1 ms per process on
  Linux (it walks the page tables), ``memory_info`` ~20 µs; ``method="rss"`` trades accuracy for
  speed (see ``benchmarks/bench_monitor.py`` for the overhead of either).
* each worker's peak per file: :meth:`MemoryMonitor.begin_file` / :meth:`end_file` bracket the
  time a worker holds a file; the largest sample in between is that file's sampled peak (the
  worker also reports its exact high-water mark itself; see ``pool``).
"""
from __future__ import annotations

import logging
import math
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..system import MB, ProcessMemory, ProcessMemoryReader, psutil, shared_reader

log = logging.getLogger("oppnda_nb.pool")

__all__ = ["COLUMNS", "MB", "MemoryMonitor", "MemorySample", "ProcessMemory", "ProcessMemoryReader",
           "samples_frame"]

#: Fixed columns of the memory DataFrame (MB unless noted), then one ``worker_<pid>`` per worker.
#: ``helpers_mb``: multiprocessing's own helper processes (forkserver, resource tracker): the
#: job's memory too, never "other programs".
COLUMNS = (
    "t",
    "system_used_mb",
    "system_available_mb",
    "kernel_mb",
    "workers_mb",
    "budget_mb",
    "predicted_peak_mb",
    "running",
    "helpers_mb",
)


@dataclass
class MemorySample:
    """One sample (bytes, except ``t`` in seconds since the monitor started)."""

    t: float
    system_used: float
    system_available: float
    kernel: float
    workers: dict[int, float] = field(default_factory=dict)  # pid -> mem (alive workers only)
    budget: float = math.nan
    predicted_peak: float = math.nan
    running: int = 0
    helpers: float = 0.0  # multiprocessing's forkserver and resource tracker

    @property
    def workers_total(self) -> float:
        return float(sum(self.workers.values()))

    @property
    def total(self) -> float:
        """Kernel, helpers and workers: the pool's memory."""
        return self.kernel + self.helpers + self.workers_total

    def row(self) -> dict:
        """The sample as one row of the memory DataFrame (MB)."""
        r = {
            "t": self.t,
            "system_used_mb": self.system_used / MB,
            "system_available_mb": self.system_available / MB,
            "kernel_mb": self.kernel / MB,
            "workers_mb": self.workers_total / MB,
            "budget_mb": self.budget / MB,
            "predicted_peak_mb": self.predicted_peak / MB,
            "running": int(self.running),
            "helpers_mb": self.helpers / MB,
        }
        for pid, mem in self.workers.items():
            r[f"worker_{pid}"] = mem / MB
        return r


def samples_frame(rows: list[dict]):
    """Rows of :meth:`MemorySample.row` as the memory DataFrame (NaN where a worker is not alive)."""
    import pandas as pd

    worker_cols: list[str] = []
    seen = set()
    for r in rows:
        for k in r:
            if k.startswith("worker_") and k not in seen:
                seen.add(k)
                worker_cols.append(k)
    frame = pd.DataFrame(rows, columns=list(COLUMNS) + worker_cols)
    if len(frame):
        frame["running"] = frame["running"].astype("int64")
    return frame


class MemoryMonitor:
    """Samples memory every ``interval`` seconds on a daemon thread.

    ``workers()`` returns the pids of the live workers; ``context()`` returns
    ``(budget_bytes, predicted_peak_bytes, running)`` for the sample given the measurement
    (called with the sample so the budget can use the fresh numbers), ``system()`` returns
    ``(used, available)`` bytes; ``helpers()`` the pids of helper processes that belong to the
    job (multiprocessing's forkserver and resource tracker). ``on_sample`` gets every sample. All callables are called
    from the monitor thread. ``lock`` (optional) is held while sampling (the pool holds it
    while forking a worker, so a fork never happens in the middle of a psutil read).
    """

    def __init__(
        self,
        workers: Callable[[], list[int]],
        *,
        interval: float = 0.2,
        context: Callable[[MemorySample], tuple[float, float, int]] | None = None,
        system: Callable[[], tuple[float, float]] | None = None,
        on_sample: Callable[[MemorySample], None] | None = None,
        method: str = "auto",
        kernel_pid: int | None = None,
        lock: threading.Lock | None = None,
        helpers: Callable[[], list[int]] | None = None,
    ):
        if not 0.01 <= interval <= 10:
            raise ValueError(f"interval must be between 0.01 and 10 s, got {interval}")
        self.interval = float(interval)
        self._workers = workers
        self._context = context
        self._system = system or _system_memory
        self._on_sample = on_sample
        self._helpers = helpers
        self.reader = shared_reader(method)
        self.kernel_pid = os.getpid() if kernel_pid is None else kernel_pid
        self._lock = lock or threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._t0 = time.monotonic()
        self.rows: list[dict] = []
        self._frame: Any = None  # the rows framed so far (frame() adds only the new ones)
        self.latest: MemorySample | None = None
        self.peak_total = 0.0
        self.sample_seconds = 0.0  # CPU time of the sampling thread (for the overhead benchmark)
        self._file_peaks: dict[object, float] = {}  # key -> peak bytes while the file runs
        self._file_pid: dict[object, int] = {}
        self.errors: list[str] = []

    # -- per-file peaks -------------------------------------------------------------------
    def begin_file(self, key: object, pid: int) -> None:
        """Start tracking the peak of worker ``pid`` while it holds file ``key``."""
        with self._lock:
            self._file_pid[key] = pid
            self._file_peaks[key] = 0.0

    def end_file(self, key: object) -> float | None:
        """Stop tracking ``key``; its sampled peak in bytes (None when never sampled)."""
        with self._lock:
            self._file_pid.pop(key, None)
            peak = self._file_peaks.pop(key, 0.0)
        return peak or None

    # -- sampling -------------------------------------------------------------------------
    def sample(self) -> MemorySample:
        """Take one sample now (also records it, updates peaks and calls ``on_sample``)."""
        t_start = time.thread_time()
        with self._lock:
            pids = list(self._workers())
            kernel = self.reader.read(self.kernel_pid) or ProcessMemory(0.0, 0.0)
            workers: dict[int, float] = {}
            for pid in pids:
                m = self.reader.read(pid)
                if m is not None:
                    workers[pid] = m.mem
            helpers = 0.0
            for pid in (self._helpers() if self._helpers is not None else ()):
                m = self.reader.read(pid)
                if m is not None:
                    helpers += m.mem
            used, available = self._system()
            s = MemorySample(
                t=time.monotonic() - self._t0,
                system_used=used,
                system_available=available,
                kernel=kernel.mem,
                workers=workers,
                helpers=helpers,
            )
            for key, pid in self._file_pid.items():
                mem = workers.get(pid)
                if mem is not None and mem > self._file_peaks.get(key, 0.0):
                    self._file_peaks[key] = mem
        if self._context is not None:
            try:
                s.budget, s.predicted_peak, s.running = self._context(s)
            except Exception as exc:  # never let a bad context kill the sampler
                self._note_error(f"context: {type(exc).__name__}: {exc}")
        self.latest = s
        self.peak_total = max(self.peak_total, s.total)
        self.rows.append(s.row())
        self.sample_seconds += time.thread_time() - t_start
        if self._on_sample is not None:
            try:
                self._on_sample(s)
            except Exception as exc:
                self._note_error(f"on_sample: {type(exc).__name__}: {exc}")
        return s

    def _note_error(self, msg: str) -> None:
        log.debug("monitor: %s", msg)
        if len(self.errors) < 20:
            self.errors.append(msg)

    def _loop(self) -> None:
        next_t = time.monotonic()
        while not self._stop.is_set():
            try:
                self.sample()
            except Exception as exc:  # pragma: no cover - defensive
                log.debug("memory sample failed", exc_info=True)
                self._note_error(f"sample: {type(exc).__name__}: {exc}")
            next_t += self.interval
            delay = next_t - time.monotonic()
            if delay < 0:  # fell behind (slow sampling): do not try to catch up
                next_t = time.monotonic()
                delay = 0.0
            self._stop.wait(delay)

    def start(self, t0: float | None = None) -> "MemoryMonitor":
        """Start the sampling thread (the first sample is taken immediately).

        ``t0`` (a ``time.monotonic()`` value) is the origin of the samples' ``t``: default now;
        an earlier one continues the time axis of an earlier monitor.
        """
        if self._thread is None:
            self._t0 = time.monotonic() if t0 is None else float(t0)
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="oppnda-monitor", daemon=True)
            self._thread.start()
        return self

    def stop(self, final_sample: bool = True) -> None:
        """Stop the thread (and take one last sample so the frame ends at the end of the run). A
        stopped monitor keeps its samples, not the caller's functions (they are usually the job's
        methods: a finished job is then freed without the cyclic collector)."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=5)
            self._thread = None
            if final_sample:
                try:
                    self.sample()
                except Exception as exc:  # pragma: no cover - defensive
                    log.debug("final memory sample failed", exc_info=True)
                    self._note_error(f"final sample: {type(exc).__name__}: {exc}")
            self._context = self._on_sample = self._helpers = None
            self._workers, self._system = tuple, _system_memory  # (no pids; the machine's own reading)

    @property
    def running(self) -> bool:
        return self._thread is not None

    def frame(self):
        """The samples so far as the memory DataFrame (do not modify it: the next call extends it
        with the new samples instead of framing them all again, which a live plot does a few times
        a second)."""
        rows = list(self.rows)
        done = 0 if self._frame is None else len(self._frame)
        if self._frame is None or len(rows) < done:
            self._frame = samples_frame(rows)
        elif len(rows) > done:
            import pandas as pd

            new = samples_frame(rows[done:])
            frame = pd.concat([self._frame, new], ignore_index=True) if done else new
            frame["running"] = frame["running"].astype("int64")
            self._frame = frame
        return self._frame


def _system_memory() -> tuple[float, float]:
    if psutil is None:
        return math.nan, math.nan
    vm = psutil.virtual_memory()
    return float(vm.total - vm.available), float(vm.available)
