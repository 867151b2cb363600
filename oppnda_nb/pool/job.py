"""The job: runs ``work(path, *work_args)`` on every file in its own worker processes.

Not ``multiprocessing.Pool``: the scheduler must know which worker holds which file, measure
each worker and be able to stop one. One scheduler thread hands files to idle workers through
each worker's own Pipe (the rule: :mod:`.admission`), a :class:`.monitor.MemoryMonitor`
samples memory, listeners get :class:`.records.Event` objects from a dispatcher thread.

Faults: an exception in ``work`` fails that file ("Type: message") and the run goes on. A
worker that dies (signal, ``os._exit``, OOM killer) is removed and the pool goes on with one
worker fewer (never below 1); its file is retried alone up to ``max_retries`` times, then
failed. A file past its time limit fails and its worker is replaced. The watchdog's victim is
replaced and its file retried alone in lean mode. ``stop()`` (and Ctrl-C or SIGTERM during
``run()``) starts nothing new, terminates every worker (SIGTERM, SIGKILL after 1 s) and marks
unfinished files cancelled; ``run()`` then returns the cancelled result. Every input ends in
exactly one of processed, skipped, failed, cancelled.

The pool knows no report type: ``estimate(path, size, lean)`` gives a worker's peak for a file
(called at admission, so a model that learns during the run is used at once), ``kind_of(path)``
a label for accounting. A work function used with lean mode (oversize files, the watchdog's
retries) accepts a ``lean`` keyword; one that does not is simply never called with it.
"""
from __future__ import annotations

import heapq
import logging
import math
import multiprocessing as mp
import os
import signal
import threading
import time
from typing import Any, Callable, Iterable, Sequence

from ..errors import OppndaError
from ..memory_model import plan_peak
from ..resource_manager import DynamicSemaphore, ResourceManager
from ..system import MB, process_memory_bytes
from . import admission as adm
from .monitor import MemoryMonitor, MemorySample, samples_frame
from .events import EventedJob
from .options import PoolOptions
from .processes import Helpers, default_start_method
from .records import EventKind, JobResult, Progress, known_outcomes
from .scheduler import Scheduler, Task, accepts_lean, older_objects_frozen

log = logging.getLogger("oppnda_nb.pool")

#: the samples' predicted peak looks for the largest queued estimates again at most this often (s)
PENDING_TOP_EVERY_S = 1.0


def _task_key(t: Task) -> tuple:
    return (-t.size, t.index)


class Job(Scheduler, EventedJob):
    """Runs ``work(path, *work_args)`` over ``files`` in a memory-aware process pool.

    ``estimate(path, size, lean) -> bytes`` (default ``manager.estimator.estimate_file_memory(size)``),
    ``kind_of(path) -> str`` (default "file"), ``preload``: modules the forkserver imports
    (default ``[work.__module__]``). Settings: ``options`` (:class:`PoolOptions`) and/or its field
    names as keywords (``workers=2, start_method="spawn"``...). ``done``: ``(path, result)`` or
    ``(path, result, size)`` of files the caller knows already (its cache): processed, no work.
    ``sizes``: ``{path: size}`` the caller has stat-ed already (not stat-ed again).
    """

    _thread_name = "oppnda-scheduler"

    def __init__(self, files: Iterable[str | os.PathLike], work: Callable, work_args: Sequence = (),
                 manager=None, *, skipped: Iterable[tuple[str, str]] = (), done: Iterable[tuple[str, Any]] = (),
                 estimate: Callable[[str, int, bool], float] | None = None,
                 kind_of: Callable[[str], str] | None = None, preload: Sequence[str] | None = None,
                 sizes: dict[str, int] | None = None, options: PoolOptions | None = None, **option_overrides):
        self.options = (options or PoolOptions()).with_overrides(**option_overrides).validate()
        if not callable(work):
            raise OppndaError(f"work must be a function, got {work!r}")
        if getattr(work, "__name__", "<lambda>") == "<lambda>" or "<locals>" in getattr(work, "__qualname__", ""):
            raise OppndaError("work must be a top-level function of an importable module (worker processes "
                              f"import it); got {getattr(work, '__qualname__', work)!r}")
        self._ctx = mp.get_context(self.options.start_method or default_start_method())
        if self._ctx.get_start_method() != "fork" and getattr(work, "__module__", None) == "__main__":
            raise OppndaError(f"work {work.__qualname__!r} is defined in __main__; workers never import the main "
                              "script, so put it in a module of its own and import it from there")
        self.manager = manager if manager is not None else ResourceManager()
        self.files = [os.fspath(f) for f in files]
        self.skipped = [(os.fspath(p), str(r)) for p, r in skipped]
        self.work, self.work_args = work, tuple(work_args)
        self.estimate = estimate or (lambda path, size, lean: self.manager.estimator.estimate_file_memory(size))
        self.kind_of = kind_of or (lambda path: "file")
        self.preload = list(preload) if preload is not None else [work.__module__]
        self._accepts_lean = accepts_lean(work)
        self.sample_interval = self.options.sample_interval
        self._init_events()
        self._lock = threading.RLock()
        self._fork_lock = threading.Lock()
        self._stop_flag = threading.Event()
        self._interrupted: str | None = None
        self.result: JobResult | None = None
        self.warnings: list[str] = []
        self._batches = 0

        #: inputs: every input path, in outcome order: files, then skipped, then done (the caller's cache)
        with older_objects_frozen():   # (thousands of new records: no full collection walks the old objects)
            self._outcomes, self._tasks, self.inputs = known_outcomes(self.files, self.skipped, done, self._kind,
                                                                      Task, sizes)
        self._pending: list[Task] = sorted(self._tasks, key=_task_key)
        sizes = [t.size for t in self._tasks]
        if self.options.workers is not None:
            self.workers = int(self.options.workers)
        else:
            self.workers = int(self.manager.get_optimal_workers(file_sizes=sizes)) if sizes else 1
            self.warnings.extend(getattr(self.manager, "warnings", []) or [])
        self.workers = max(1, min(self.workers, max(1, len(self._tasks))))
        self._target = self.workers
        self._pool: list = []
        self._monitor: MemoryMonitor | None = None
        self._helpers: Helpers | None = None
        self._sem: DynamicSemaphore | None = None
        self._t0: float | None = None
        self._t_end: float | None = None
        self._bytes_total, self._bytes_done = sum(sizes), 0
        self._budget_cache: tuple[float, float] = (-1.0, math.inf)
        self._last_reading: tuple[float, float, float] | None = None
        self._last_progress = 0.0
        self._watchdog_seen = -1.0
        self._to_skip: list[Task] = []
        self._pending_top: tuple[tuple[int, bool], float, list[float]] | None = None
        self.predicted_peak_mb = math.nan
        self.budget_mb = math.nan
        self._startup_failures = 0
        self._fatal: str | None = None

    @property
    def batches_sent(self) -> int:
        """How many batches (messages with more than one file) were sent to workers."""
        return self._batches

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def monitor(self) -> MemoryMonitor | None:
        """The memory monitor of the run (None before start or with ``monitor=False``)."""
        return self._monitor

    def run(self) -> JobResult:
        """Run to the end (blocking). Ctrl-C (and SIGTERM, from the main thread) stops the job and
        returns the cancelled result; after a SIGTERM the process then ends as it would have."""
        terminated = []
        old = None
        if threading.current_thread() is threading.main_thread():
            def on_term(signum, frame):
                terminated.append(signum)
                self._interrupted = "SIGTERM"
                self._stop_flag.set()

            try:
                old = signal.signal(signal.SIGTERM, on_term)
            except (ValueError, OSError):
                old = None
        self.start()
        try:
            while self._thread.is_alive():
                self._thread.join(0.1)
        except KeyboardInterrupt:
            self._interrupted = "KeyboardInterrupt"
            self.stop()
        finally:
            if old is not None:
                signal.signal(signal.SIGTERM, old)
        result = self.wait()
        if terminated:
            Helpers.remove_own_tempdir()
            os.kill(os.getpid(), signal.SIGTERM)  # the previous handler (default: end the process)
        return result

    def stop(self, wait: bool = True) -> None:
        """Start no new file, terminate the workers, mark unfinished files cancelled.

        With ``wait`` (and not called from a listener) returns when every worker is gone.
        """
        self._stop_flag.set()
        if wait and self._thread is not None and threading.current_thread() not in (self._thread, self._dispatcher):
            self._thread.join(timeout=30)

    def wait(self, timeout: float | None = None) -> JobResult:
        """Wait for the end of the job and return its result (TimeoutError on timeout)."""
        if self._thread is None:
            raise OppndaError("the job was not started; call start() or run()")
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"the job is still running after {timeout} s")
        if self._dispatcher is not None and threading.current_thread() is not self._dispatcher:
            self._dispatcher.join(timeout=10)
        assert self.result is not None
        return self.result

    def memory_frame(self):
        """The memory samples so far (DataFrame)."""
        return self._monitor.frame() if self._monitor is not None else samples_frame([])

    def memory_end(self) -> float:
        """The time (s, the samples' ``t``) of the last memory sample, 0 if none."""
        rows = self._monitor.rows if self._monitor is not None else []
        return float(rows[-1]["t"]) if rows else 0.0

    def _warn(self, msg: str) -> None:
        log.warning("%s", msg)
        self.warnings.append(msg)
        self._emit(EventKind.WARNING, msg)

    # -- estimates ----------------------------------------------------------------------
    def _kind(self, path: str) -> str:
        try:
            return str(self.kind_of(path))
        except Exception:
            log.warning("kind_of(%r) failed; using 'file'", path, exc_info=True)
            return "file"

    def _call_estimate(self, t: Task, lean: bool) -> float:
        try:
            return float(self.estimate(t.path, t.size, lean))
        except Exception:
            log.warning("estimate(%r) failed; using the manager's estimator", t.path, exc_info=True)
            return float(self.manager.estimator.estimate_file_memory(t.size))

    def _admission_estimate(self, t: Task, kernel: float, budget: float) -> float:
        """The file's estimate now, with the oversize policy applied (NaN: skip it)."""
        e = t.estimate = self._call_estimate(t, t.lean)
        if t.attempts or t.alone or adm.fits_alone(kernel, e, budget):
            return e
        lean = self._call_estimate(t, True) if self._accepts_lean and not t.lean else None
        d = adm.oversize_decision(kernel, e, budget, self.options.oversize, lean)
        name = os.path.basename(t.path)
        if d is adm.Oversize.LEAN:
            t.lean, e = True, lean
            t.estimate = e
            self._warn(f"{name}: its estimate does not fit the budget of {budget / MB:.0f} MB; it runs in lean mode "
                       f"(estimated {e / MB:.0f} MB)")
        elif d is adm.Oversize.SKIP:
            t.skip_reason = adm.oversize_reason(name, e, budget, kernel)
            self._to_skip.append(t)
            return math.nan
        elif not t.warned:
            t.warned = True
            self._warn(f"{name}: estimated {e / MB:.0f} MB does not fit the budget of {budget / MB:.0f} MB next to "
                       f"the kernel ({kernel / MB:.0f} MB); it runs alone")
        return e

    # -- progress -----------------------------------------------------------------------
    def _progress(self) -> Progress:
        c = self._outcomes.by_status
        elapsed = (self._t_end or time.monotonic()) - self._t0 if self._t0 is not None else 0.0
        rate = self._bytes_done / MB / elapsed if elapsed > 0 else 0.0
        left = self._bytes_total - self._bytes_done
        eta = (left / MB / rate) if rate > 0 else (0.0 if left <= 0 else None)
        return Progress(files_done=len(self._outcomes), files_total=len(self.inputs),
                        bytes_done=self._bytes_done, bytes_total=self._bytes_total, mb_per_s=rate, eta_s=eta,
                        elapsed_s=elapsed, running=sum(1 for w in self._pool if w.task is not None),
                        workers=len(self._pool), permits=self._sem.current_permits if self._sem is not None else 0,
                        processed=c.get("processed", 0), failed=c.get("failed", 0), skipped=c.get("skipped", 0),
                        cancelled=c.get("cancelled", 0), in_process=bool(self.options.in_process))

    def _maybe_progress(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_progress >= 0.2:
            self._last_progress = now
            self._emit(EventKind.PROGRESS, self._progress())

    # -- memory -------------------------------------------------------------------------
    def _system_reading(self) -> tuple[float, float]:
        """(used, available) of the machine as the manager sees it; used never above its total."""
        try:
            used, total = self.manager.memory_reader()
            used = min(float(used), float(total)) if total and total > 0 else float(used)
            self._last_reading = (time.monotonic(), used, float(total))
            return used, float(max(0.0, total - used))
        except Exception:
            log.debug("memory reading failed", exc_info=True)
            return math.nan, math.nan

    def _budget_for(self, s: MemorySample | None) -> float:
        """η·M_RAM − M_others, M_others = used − (kernel + helpers + workers) ≥ 0."""
        m = self.manager
        if not getattr(m, "safety_enabled", True):
            return math.inf
        try:
            reading = self._last_reading
            if reading is None or time.monotonic() - reading[0] > 0.05:
                used, total = m.memory_reader()
            else:
                _, used, total = reading
        except Exception:
            log.debug("memory reading failed", exc_info=True)
            return math.inf
        if not total or total <= 0:
            return math.inf
        own = s.total if s is not None else float(m.base_bytes()) + self._helpers_bytes()
        return m.eta * total - max(0.0, used - own)

    def _helpers_bytes(self) -> float:
        if self._helpers is None:
            return 0.0
        return sum(process_memory_bytes(p, method="pss") for p in self._helpers.pids())

    def _monitor_context(self, s: MemorySample) -> tuple[float, float, int]:
        budget = self._budget_for(s)
        with self._lock:
            self._budget_cache = (time.monotonic(), budget)
            running = [w for w in self._pool if w.task is not None]
            ests = [w.estimate for w in running]
            ests += self._largest_pending(max(0, self._target - len(ests)))
            predicted = adm.capped_peak(plan_peak(s.kernel + s.helpers, ests, self._target, budget,
                                                  idle_bytes=self.manager.overhead_mb * MB),
                                        budget, self.options.planned_peak_bytes)
        return budget, predicted, len(running)

    def _largest_pending(self, k: int) -> list[float]:
        """The ``k`` largest estimates of the queue, for the samples' predicted peak: found again at
        most every :data:`PENDING_TOP_EVERY_S` (a walk over thousands of queued files at every sample
        holds the GIL from the work), or at once when ``k`` or the emptiness of the queue changes."""
        now = time.monotonic()
        key = (k, bool(self._pending))
        cached = self._pending_top
        if cached is None or cached[0] != key or now - cached[1] >= PENDING_TOP_EVERY_S:
            cached = self._pending_top = (key, now, heapq.nlargest(k, (t.estimate for t in self._pending)))
        return list(cached[2])

    def _admission_state(self) -> tuple[float, float, float, dict[int, float]]:
        """(budget, committed, kernel + helpers, measured memory per worker pid)."""
        s = self._monitor.latest if self._monitor is not None else None
        t, budget = self._budget_cache
        now = time.monotonic()
        if now - t > max(0.5, 3 * self.sample_interval):  # the monitor refreshes it every sample
            budget = self._budget_for(s)
            self._budget_cache = (now, budget)
        kernel = max(s.kernel if s is not None else float(self.manager.base_bytes()), self.options.kernel_reserve_bytes)
        kernel += s.helpers if s is not None else 0.0
        measured = dict(s.workers) if s is not None else {}
        committed = adm.committed_bytes(kernel, [(w.estimate, measured.get(w.pid, 0.0)) for w in self._pool if w.task],
                                        [measured.get(w.pid, 0.0) for w in self._pool if not w.task])
        return budget, committed, kernel, measured
