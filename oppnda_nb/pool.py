"""The memory-aware pooled runner: a process pool that keeps the machine under η of its RAM.

A :class:`Job` runs ``work(path, *work_args)`` on every file in its own worker processes
(not ``multiprocessing.Pool``: the scheduler must know which worker holds which file, measure
each worker and be able to terminate one). One scheduler thread hands a file to an idle
worker through that worker's own Pipe; a :class:`~oppnda_nb.monitor.MemoryMonitor` samples
memory; listeners get :class:`Event` objects from a dispatcher thread.

Admission rule (when does a file start?) — all of:

1. the :class:`~oppnda_nb.resource_manager.DynamicSemaphore` gives a permit (it shrinks under
   memory pressure, so the effective concurrency follows the pressure);
2. memory: ``committed − m_w + max(E_f, m_w) ≤ budget`` where ``E_f = γ·size + M_overhead`` is the
   file's estimate (a whole worker's peak), ``m_w`` the measured memory of the idle worker that
   would take it, and ``committed = kernel + Σ_running max(E_i, m_i) + Σ_idle m_j``. Counting a
   running file as max(its estimate, its worker's measured memory) never double counts a
   worker's memory and its estimate, and catches a file that grows beyond its estimate.
   ``budget = η·M_RAM − M_others`` with M_others = machine used − (kernel + workers) ≥ 0, from the
   manager's memory reading, so the pool's own workers are never counted as "others";
3. ordering: files wait largest first (LPT order: big files start early, the run ends evenly).
   When the head of the queue does not fit, smaller files that fit may overtake it, but at most
   ``max_overtakes`` times; after that nothing starts until the head fits, so a large file is
   never starved by a stream of small ones;
4. a file whose estimate alone does not fit (kernel + E_f > budget), and a file being retried
   after its worker died, runs ALONE: it waits at the head until nothing else runs, nothing
   starts next to it, and the result carries a warning. If nothing runs at all, the head
   always starts (progress is guaranteed).

Batches of small files: sending one file per message costs a parent↔worker round trip per
file, which dominates for thousands of tiny reports (~30 µs of work each). So when the file
chosen by the rule above is small (``batch_file_bytes``, 256 KiB), fresh (not a retry, not
alone) and comfortably inside the budget (kernel + workers·E_f ≤ budget), the worker gets a
batch: that file plus up to n−1 further small fresh files from the small end of the queue,
n = clamp(small files left / (workers·4), 1, ``batch_max_files``), at most
``batch_max_bytes`` in all, each member's estimate ≤ the lead's. The batch holds one permit and
is admitted with its largest estimate (the lead's): its members run one after another in the
same worker. The worker sends each member's outcome as soon as it is done, so there is one
FileOutcome and one file_started/file_finished|file_failed event per file, progress moves per
file, the per-file peak (VmHWM reset before each member) is measured per member, and the parent
always knows which member is running: the first whose outcome has not arrived. If the worker
dies, that member is the one it died on (an attempt counted, retried alone as below); the
members it had not started go back to the queue unpenalised. ``stop()`` cancels them all.
``batch=False`` sends one file per message (for comparison).

Faults: an exception in ``work`` fails that file (reason "Type: message") and the run goes on.
A worker that dies (signal, ``os._exit``, OOM killer) is removed and the pool continues with one
worker fewer (never below 1); the file it held is retried alone up to ``max_retries`` times,
then failed. ``stop()`` (and Ctrl-C during ``run()``) starts nothing new, terminates every
worker (SIGTERM, then SIGKILL after 1 s) and marks unfinished files cancelled; ``run()`` then
*returns* the cancelled result instead of re-raising KeyboardInterrupt, so the partial results
are kept. Every input file ends in exactly one of processed, skipped, failed, cancelled.
"""
from __future__ import annotations

import bisect
import gc
import json
import math
import multiprocessing as mp
import multiprocessing.connection as mpc
import os
import queue
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from .errors import OppndaError
from .monitor import MB, MemoryMonitor, MemorySample, samples_frame  # noqa: F401 (MemoryMonitor re-exported)

STATUSES = ("processed", "skipped", "failed", "cancelled")


class EventKind:  # transitional: the pool package gives the Enum
    FILE_STARTED, FILE_FINISHED, FILE_FAILED, PROGRESS, MEMORY, WARNING, DONE = (
        "file_started", "file_finished", "file_failed", "progress", "memory", "warning", "done")
EVENT_KINDS = ("file_started", "file_finished", "file_failed", "progress", "memory", "warning", "done")


# ---------------------------------------------------------------------------------------
# records
# ---------------------------------------------------------------------------------------
@dataclass
class FileOutcome:
    """What happened to one input file (exactly one per input)."""

    path: str
    size: int
    status: str  # "processed" | "skipped" | "failed" | "cancelled"
    reason: str | None = None
    result: Any = None
    seconds: float = 0.0
    peak_mb: float | None = None  # the worker's own peak (USS + peak above it) while it held this file
    attempts: int = 0
    report_type: str | None = None
    baseline_mb: float | None = None  # the worker's own memory (USS, else RSS) just before the file
    peak_delta_mb: float | None = None  # peak above that baseline (what calibration fits)
    estimate_mb: float | None = None  # γ·size + overhead when the file was admitted
    worker_pid: int | None = None


@dataclass
class Progress:
    """A snapshot of a job's progress (files_done counts every terminal state, skipped included)."""

    files_done: int = 0
    files_total: int = 0
    bytes_done: int = 0
    bytes_total: int = 0
    mb_per_s: float = 0.0
    eta_s: float | None = None
    elapsed_s: float = 0.0
    running: int = 0
    workers: int = 0
    permits: int = 0
    processed: int = 0
    failed: int = 0
    skipped: int = 0
    cancelled: int = 0


@dataclass
class Event:
    """One notification to listeners. ``kind`` is one of EVENT_KINDS.

    data: file_* -> FileOutcome (file_started: status "running"); progress -> Progress;
    memory -> dict (one row of the memory DataFrame); warning -> str; done -> JobResult.
    """

    kind: str
    data: Any


@dataclass
class JobResult:
    """The outcome of a job: one FileOutcome per input, the memory samples, the verdict."""

    outcomes: list[FileOutcome]
    memory: Any  # pandas.DataFrame, columns per monitor.COLUMNS + worker_<pid>
    warnings: list[str]
    workers: int
    budget_mb: float
    predicted_peak_mb: float
    measured_peak_mb: float
    elapsed_s: float
    status: str  # "finished" | "cancelled" | "failed"
    calibration: Any = None  # calibration.Calibration | None
    inputs: list[str] = field(default_factory=list)  # every input path, files then skipped
    memory_method: str = ""
    workers_final: int = 0

    @property
    def counts(self) -> dict[str, int]:
        c = Counter(o.status for o in self.outcomes)
        out = {s: int(c.get(s, 0)) for s in STATUSES}
        out["total"] = len(self.outcomes)
        return out

    @property
    def accounting_ok(self) -> bool:
        """Every input has exactly one outcome with a valid status, and the counts add up."""
        if any(o.status not in STATUSES for o in self.outcomes):
            return False
        c = self.counts
        if sum(c[s] for s in STATUSES) != len(self.inputs):
            return False
        return Counter(o.path for o in self.outcomes) == Counter(self.inputs)

    @property
    def results(self) -> list:
        """The results of the processed files, in input order."""
        return [o.result for o in self.outcomes if o.status == "processed"]

    @property
    def failed(self) -> list[FileOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    def summary(self) -> str:
        c = self.counts
        lines = [
            f"Job {self.status}: {c['processed']} processed, {c['skipped']} skipped, {c['failed']} failed, "
            f"{c['cancelled']} cancelled of {len(self.inputs)} files "
            f"(accounting {'OK' if self.accounting_ok else 'MISMATCH'}) in {self.elapsed_s:.1f} s",
            f"workers {self.workers} (at the end {self.workers_final}); budget {self.budget_mb:.0f} MB; "
            f"peak predicted {self.predicted_peak_mb:.0f} MB, measured {self.measured_peak_mb:.0f} MB "
            f"({self.memory_method or 'n/a'})",
        ]
        for o in self.failed[:10]:
            lines.append(f"  failed: {os.path.basename(o.path)}: {o.reason}")
        if len(self.failed) > 10:
            lines.append(f"  ... and {len(self.failed) - 10} more failed files")
        for w in self.warnings[:10]:
            lines.append(f"  warning: {w}")
        if len(self.warnings) > 10:
            lines.append(f"  ... and {len(self.warnings) - 10} more warnings")
        return "\n".join(lines)

    def to_summary_dict(self) -> dict:
        """A JSON-able summary (no results, no DataFrame)."""

        def num(x):
            return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else x

        d = {
            "status": self.status,
            "counts": self.counts,
            "accounting_ok": self.accounting_ok,
            "workers": self.workers,
            "workers_final": self.workers_final,
            "budget_mb": num(self.budget_mb),
            "predicted_peak_mb": num(self.predicted_peak_mb),
            "measured_peak_mb": num(self.measured_peak_mb),
            "elapsed_s": num(self.elapsed_s),
            "memory_method": self.memory_method,
            "warnings": list(self.warnings),
            "failed": [{"path": o.path, "reason": o.reason, "attempts": o.attempts} for o in self.failed],
        }
        if self.calibration is not None and hasattr(self.calibration, "to_dict"):
            d["calibration"] = self.calibration.to_dict()
        json.dumps(d)  # fail here, not in the caller, if something is not JSON-able
        return d


# ---------------------------------------------------------------------------------------
# the worker process
# ---------------------------------------------------------------------------------------
def _read_status_kb(key: bytes) -> int | None:
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _reset_hwm() -> bool:
    """Reset this process's peak-RSS mark (Linux: write 5 to /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _rss_now() -> int | None:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


class _Probe:
    """The worker's own memory counters through /proc/self files kept open (re-read with pread):
    ~10 µs per file instead of ~40 µs for open+read+close of each, which matters for thousands
    of 30 µs files. Opened in the worker process itself (a forked copy of the parent's fds would
    read the parent). Falls back to the open-each-time functions."""

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
            return _rss_now()
        try:
            return int(os.pread(self.statm, 256, 0).split()[1]) * self.page
        except (OSError, ValueError, IndexError):
            return _rss_now()

    def reset_hwm(self) -> bool:
        if self.clear is None:
            return _reset_hwm()
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


def _own_mem(method: str) -> float | None:
    try:
        import psutil

        p = psutil.Process()
        if method in ("pss", "uss"):
            return float(getattr(p.memory_full_info(), method))
        return float(p.memory_info().rss)
    except Exception:
        return None


def _trim_memory() -> None:
    """Give freed heap back to the OS (glibc), so an idle worker's memory is what it holds."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except Exception:
        pass


#: A worker running a batch sends the outcomes gathered so far at least this often (seconds).
FLUSH_S = 0.05


def _send_outcomes(conn, records: list) -> bool:
    """Send ("done", records) to the parent; a record whose result cannot be pickled fails
    that file only. False when the parent is gone."""
    try:
        conn.send(("done", records))
        return True
    except (EOFError, OSError, BrokenPipeError):
        return False
    except Exception:  # some result could not be pickled: find it, fail that file only
        from multiprocessing.reduction import ForkingPickler

        fixed = []
        for rec in records:
            try:
                ForkingPickler.dumps(rec)
                fixed.append(rec)
            except Exception as exc:
                reason = f"result could not be sent to the parent ({type(exc).__name__}: {exc})"
                fixed.append((rec[0], False, reason) + tuple(rec[3:]))
        try:
            conn.send(("done", fixed))
            return True
        except Exception:
            return False


def _worker_main(conn, work: Callable, work_args: tuple, method: str, warmup: str | None = None,
                 current=None) -> None:
    """Loop of one worker: receive a batch [(task_id, path), ...] (one file or more), run work
    on each member in order and send the outcomes back: at the end of the batch, and at least
    every FLUSH_S seconds while it runs (so progress moves). ``current`` (a shared integer)
    holds the task id of the member it is running, -1 between batches: if the worker dies, the
    parent reads there which member it died on.

    Ignores SIGINT (the parent handles Ctrl-C). Exits on None, on EOF, or when its parent is
    gone. Measures its own peak per file: peak RSS mark reset before the file (Linux), read
    after it; the baseline in the monitor's unit (PSS/USS) is re-read at most once a second and
    carried forward with the RSS change in between (cheap for thousands of small files).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ppid = os.getppid()
    # the baseline is the worker's *own* memory (USS): with fork, its PSS also holds a share of
    # the kernel's pages, which the kernel's own reading already counts
    method = "uss" if method in ("pss", "uss") else "rss"
    if warmup is not None:  # pay for lazy imports now, so the baseline includes them
        try:
            work(warmup, *work_args)
        except BaseException:  # noqa: BLE001 - a warm-up failure is not a file failure
            pass
        _trim_memory()
    probe = _Probe()
    base_mem = _own_mem(method)
    state = [base_mem, probe.rss(), time.monotonic(), probe]
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
        if isinstance(msg, tuple):  # a single (task_id, path)
            msg = [msg]
        records: list = []
        last = time.monotonic()
        for task_id, path in msg:
            if current is not None:
                current.value = task_id
            rec = _run_one(work, work_args, path, method, state)
            records.append((task_id,) + rec)
            now = time.monotonic()
            if now - last >= FLUSH_S:
                if not _send_outcomes(conn, records):
                    return
                records, last = [], now
        if records and not _send_outcomes(conn, records):
            return
        if current is not None:
            current.value = -1


def _run_one(work: Callable, work_args: tuple, path: str, method: str, state: list) -> tuple:
    """Run one file: (ok, result or reason, seconds, baseline, peak_delta).

    ``state`` is [base_mem, base_rss, base_t, probe] of the worker, updated in place.
    """
    base_mem, base_rss, base_t, probe = state
    rss_before = probe.rss()
    if time.monotonic() - base_t > 1.0 or base_mem is None:
        base_mem, base_rss, base_t = _own_mem(method), rss_before, time.monotonic()
        state[:3] = [base_mem, base_rss, base_t]
    baseline = None
    if base_mem is not None:
        baseline = base_mem + ((rss_before - base_rss) if rss_before is not None and base_rss is not None else 0)
    hwm_ok = probe.reset_hwm()
    t0 = time.perf_counter()
    try:
        result = work(path, *work_args)
        ok = True
    except BaseException as exc:  # noqa: BLE001 - any failure of the work fails the file
        result, ok = f"{type(exc).__name__}: {exc}", False
    seconds = time.perf_counter() - t0
    peak_delta = None
    if hwm_ok and rss_before is not None:
        hwm = probe.hwm()
        if hwm is not None:
            peak_delta = max(0, hwm - rss_before)
    if peak_delta is not None and peak_delta > 16 * MB:
        _trim_memory()  # (a big result is kept until it is sent: the trim frees the parser's garbage)
    return ok, result, seconds, baseline, peak_delta


# ---------------------------------------------------------------------------------------
# the job
# ---------------------------------------------------------------------------------------
@dataclass
class _Task:
    index: int
    path: str
    size: int
    estimate: float
    report_type: str
    attempts: int = 0
    overtaken: int = 0
    alone: bool = False  # forced alone (a retry after a worker died)
    warned_oversize: bool = False
    last_error: str | None = None

    @property
    def key(self) -> tuple:
        return (-self.size, self.index)


@dataclass
class _Worker:
    proc: Any
    conn: Any
    pid: int
    tasks: list = field(default_factory=list)  # the unfinished members of its batch, in run order
    started_at: float = 0.0
    alone: bool = False
    base_mem: float | None = None
    ready: bool = False
    current: Any = None  # shared int: the task id the worker is running (-1: none)

    @property
    def task(self) -> _Task | None:
        """The file it is running now (the first unfinished member), None when idle."""
        return self.tasks[0] if self.tasks else None

    @property
    def estimate(self) -> float:
        """What it may still need: the largest estimate of its unfinished members."""
        return max((t.estimate for t in self.tasks), default=0.0)


def _signal_name(code: int | None) -> str:
    if code is None:
        return "unknown exit"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _report_type_of(path: str) -> str:
    """The report type from a ONE file name (ONE appends the report class), else "generic"."""
    stem = os.path.splitext(os.path.basename(path))[0]
    last = stem.rsplit("_", 1)[-1]
    return last if last.endswith(("Report", "Reporter")) else "generic"


def estimate_file_bytes(manager, path: str, size: float) -> float:
    """γ·size + overhead for this file: the calibrated model of its report type when the
    manager carries one (``manager.type_models``, set by ``calibration.apply``), else the
    manager's own estimator."""
    models = getattr(manager, "type_models", None) or {}
    model = models.get(_report_type_of(path))
    if model is not None:
        gamma, overhead_mb = model
        return float(gamma) * float(size) + float(overhead_mb) * MB
    return float(manager.estimator.estimate_file_memory(size))


def default_start_method() -> str:
    """forkserver where the platform has it (Linux), else the platform's default (spawn).

    Not fork: a forked worker shares the kernel's pages and copies those it touches, so a
    notebook kernel holding gigabytes makes every worker grow by an amount no estimate of the
    file can predict; and forking a multi-threaded process (a Jupyter kernel) can deadlock.
    forkserver workers start from a small clean process that has imported the work's module
    once, so they are cheap to start and their memory is their own. (Python 3.14 made the same
    choice for Linux.)
    """
    return "forkserver" if "forkserver" in mp.get_all_start_methods() else mp.get_start_method()


class Job:
    """Runs ``work(path, *work_args)`` over ``files`` in a memory-aware process pool.

    ``start_method``: "fork", "forkserver" or "spawn" (None:
    :func:`default_start_method`, forkserver on Linux). ``workers``: explicit worker count (default ``manager.get_optimal_workers``).
    ``sample_interval``: seconds between memory samples. ``max_retries``: how often a file is
    retried after its worker died. ``max_overtakes``: how often smaller files may overtake a
    waiting larger one. ``monitor=False`` turns the sampler off (admission then uses the
    estimates only; for the overhead benchmark). ``memory_method``: "auto" (PSS, else USS, else
    RSS), "pss", "uss" or "rss". ``warmup``: a (small) file each worker processes once when it
    starts, result discarded, so lazy imports are paid before the first measured file (used by
    calibration: otherwise the first file of each worker looks bigger than it is). ``learn``:
    after a finished run, fit γ/overhead from its measured peaks, apply them to the manager and
    put the ``Calibration`` in ``result.calibration``. ``batch``: send small files in batches
    (see the module docstring; ``batch_file_bytes`` = "small", ``batch_max_files`` and
    ``batch_max_bytes`` bound a batch); ``batch=False`` sends one file per message.
    """

    def __init__(
        self,
        files: Iterable[str | os.PathLike],
        work: Callable,
        work_args: Sequence = (),
        manager=None,
        *,
        skipped: Iterable[tuple[str, str]] = (),
        start_method: str | None = None,
        sample_interval: float = 0.2,
        max_retries: int = 2,
        workers: int | None = None,
        max_overtakes: int = 4,
        monitor: bool = True,
        memory_method: str = "auto",
        warmup: str | os.PathLike | None = None,
        learn: bool = False,
        batch: bool = True,
        batch_file_bytes: int = 256 * 1024,
        batch_max_files: int = 64,
        batch_max_bytes: int = 4 * 1024 * 1024,
        estimate: Callable | None = None,
        kind_of: Callable | None = None,
        preload: Sequence[str] = (),
        oversize: str = "run-alone",
        file_timeout: float | None = None,
    ):
        if not callable(work):
            raise OppndaError(f"work must be a function, got {work!r}")
        if getattr(work, "__name__", "<lambda>") == "<lambda>" or "<locals>" in getattr(work, "__qualname__", ""):
            raise OppndaError(
                "work must be a top-level function of an importable module (worker processes import it); "
                f"got {getattr(work, '__qualname__', work)!r}"
            )
        if workers is not None and int(workers) < 1:
            raise OppndaError(f"workers must be >= 1, got {workers}")
        if start_method is not None and start_method not in mp.get_all_start_methods():
            raise OppndaError(
                f"start_method {start_method!r} is not available here; use one of {mp.get_all_start_methods()}"
            )
        if max_retries < 0:
            raise OppndaError("max_retries must be >= 0")
        if manager is None:
            from .resource_manager import ResourceManager

            manager = ResourceManager()
        self.manager = manager
        self.files = [os.fspath(f) for f in files]
        self.skipped = [(os.fspath(p), str(r)) for p, r in skipped]
        self.work = work
        self.work_args = tuple(work_args)
        self.start_method = start_method
        self.sample_interval = float(sample_interval)
        self.max_retries = int(max_retries)
        self.max_overtakes = int(max_overtakes)
        self.use_monitor = bool(monitor)
        self.memory_method = memory_method
        self.warmup = None if warmup is None else os.fspath(warmup)
        self.learn = bool(learn)
        self.batch = bool(batch)
        self.batch_file_bytes = int(batch_file_bytes)
        self.batch_max_files = max(1, int(batch_max_files))
        self.batch_max_bytes = int(batch_max_bytes)
        self._batches = 0
        self._ctx = mp.get_context(start_method or default_start_method())
        if self._ctx.get_start_method() == "forkserver":
            # The server imports the parsers and the work's module once; each worker is then a
            # cheap fork of it. (Only the first job of a process starts the server, so the same
            # heavy modules are always named: worker memory does not depend on which job came first.)
            self._ctx.set_forkserver_preload(["oppnda_nb.reports", "oppnda_nb.averaging", work.__module__])

        self._listeners: list[Callable[[Event], None]] = []
        self._lock = threading.RLock()
        self._fork_lock = threading.Lock()
        self._stop_flag = threading.Event()
        self._interrupted = False
        self._thread: threading.Thread | None = None
        self._dispatcher: threading.Thread | None = None
        self._events: queue.Queue = queue.Queue()
        self.result: JobResult | None = None
        self.warnings: list[str] = []

        # sizes and immediate outcomes
        self._outcomes: dict[int, FileOutcome] = {}
        self._tasks: list[_Task] = []
        for i, p in enumerate(self.files):
            try:
                size = os.path.getsize(p)
            except OSError as exc:
                self._outcomes[i] = FileOutcome(p, 0, "failed", f"{type(exc).__name__}: {exc.strerror or exc}",
                                                report_type=_report_type_of(p))
                continue
            est = estimate(p, size, False) if estimate is not None else estimate_file_bytes(manager, p, size)
            self._tasks.append(_Task(i, p, size, est, kind_of(p) if kind_of else _report_type_of(p)))
        n = len(self.files)
        for j, (p, reason) in enumerate(self.skipped):
            try:
                size = os.path.getsize(p)
            except OSError:
                size = 0
            self._outcomes[n + j] = FileOutcome(p, size, "skipped", reason, report_type=_report_type_of(p))
        self._pending: list[_Task] = sorted(self._tasks, key=lambda t: t.key)
        sizes = [t.size for t in self._tasks]
        if workers is not None:
            self.workers = int(workers)
        else:
            self.workers = int(manager.get_optimal_workers(file_sizes=sizes)) if sizes else 1
            for w in getattr(manager, "warnings", []) or []:
                self.warnings.append(w)
        self.workers = max(1, min(self.workers, max(1, len(self._tasks))))
        self._target = self.workers
        self._pool: list[_Worker] = []
        self._monitor: MemoryMonitor | None = None
        self._sem = None
        self._t0: float | None = None
        self._t_end: float | None = None
        self._bytes_total = sum(sizes)
        self._bytes_done = 0
        self._budget_cache: tuple[float, float] = (-1.0, math.inf)
        self._last_progress = 0.0
        self.predicted_peak_mb = math.nan
        self.budget_mb = math.nan
        self._startup_failures = 0
        self._fatal: str | None = None
        self._kernel_cache = 0.0
        self._last_reading: tuple[float, float, float] | None = None

    # -- public API ---------------------------------------------------------------------
    def add_listener(self, callback: Callable[[Event], None]) -> None:
        """Call ``callback(event)`` for every event (from a background thread)."""
        self._listeners.append(callback)

    @property
    def batches_sent(self) -> int:
        """How many batches (messages with more than one file) were sent to workers."""
        return self._batches

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> "Job":
        """Start the job in background threads; returns at once."""
        if self._thread is not None:
            raise OppndaError("this job was already started; create a new Job to run again")
        self._t0 = time.monotonic()
        self._dispatcher = threading.Thread(target=self._dispatch_loop, name="oppnda-events", daemon=True)
        self._dispatcher.start()
        self._thread = threading.Thread(target=self._main, name="oppnda-scheduler", daemon=True)
        self._thread.start()
        return self

    def run(self) -> JobResult:
        """Run to the end (blocking). Ctrl-C stops the job and returns the cancelled result."""
        self.start()
        try:
            while self._thread.is_alive():
                self._thread.join(0.1)
        except KeyboardInterrupt:
            self._interrupted = True
            self.stop()
        return self.wait()

    def stop(self, wait: bool = True) -> None:
        """Start no new file, terminate the workers, mark unfinished files cancelled.

        With ``wait`` (and not called from a listener) returns when every worker is gone.
        """
        self._stop_flag.set()
        me = threading.current_thread()
        if wait and self._thread is not None and me not in (self._thread, self._dispatcher):
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

    @property
    def progress(self) -> Progress:
        with self._lock:
            return self._progress()

    def memory_frame(self):
        """The memory samples so far (DataFrame)."""
        if self._monitor is None:
            return samples_frame([])
        return self._monitor.frame()

    # -- events -------------------------------------------------------------------------
    def _emit(self, kind: str, data: Any) -> None:
        self._events.put(Event(kind, data))

    def _emit_many(self, events: list[Event]) -> None:
        """Queue several events at once (one queue operation for a batch's files)."""
        if events:
            self._events.put(events)

    def _dispatch_loop(self) -> None:
        errors = 0
        while True:
            item = self._events.get()
            if item is None:
                return
            for ev in (item if isinstance(item, list) else (item,)):
                for cb in list(self._listeners):
                    try:
                        cb(ev)
                    except Exception as exc:  # a broken listener must not break the run
                        errors += 1
                        if errors <= 3:
                            self.warnings.append(f"listener {cb!r} raised {type(exc).__name__}: {exc}")

    def _warn(self, msg: str) -> None:
        self.warnings.append(msg)
        self._emit("warning", msg)

    # -- progress -----------------------------------------------------------------------
    def _progress(self) -> Progress:
        c = Counter(o.status for o in self._outcomes.values())
        elapsed = (self._t_end or time.monotonic()) - self._t0 if self._t0 is not None else 0.0
        rate = self._bytes_done / MB / elapsed if elapsed > 0 else 0.0
        left = self._bytes_total - self._bytes_done
        eta = (left / MB / rate) if rate > 0 else (0.0 if left <= 0 else None)
        return Progress(
            files_done=len(self._outcomes),
            files_total=len(self.files) + len(self.skipped),
            bytes_done=self._bytes_done,
            bytes_total=self._bytes_total,
            mb_per_s=rate,
            eta_s=eta,
            elapsed_s=elapsed,
            running=sum(1 for w in self._pool if w.task is not None),
            workers=len(self._pool),
            permits=self._sem.current_permits if self._sem is not None else 0,
            processed=c.get("processed", 0),
            failed=c.get("failed", 0),
            skipped=c.get("skipped", 0),
            cancelled=c.get("cancelled", 0),
        )

    def _maybe_progress(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_progress >= 0.2:
            self._last_progress = now
            self._emit("progress", self._progress())

    # -- memory -------------------------------------------------------------------------
    def _budget_for(self, s: MemorySample | None) -> float:
        """η·M_RAM − M_others, M_others = used − (kernel + workers) ≥ 0 (in the reader's unit)."""
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
            return math.inf
        if not total or total <= 0:
            return math.inf
        own = s.total if s is not None else float(m.base_bytes())
        return m.eta * total - max(0.0, used - own)

    def _monitor_context(self, s: MemorySample) -> tuple[float, float, int]:
        budget = self._budget_for(s)
        with self._lock:
            self._budget_cache = (time.monotonic(), budget)
            predicted = s.kernel
            running = 0
            for w in self._pool:
                if w.task is not None:
                    predicted += w.estimate
                    running += 1
                else:
                    predicted += s.workers.get(w.pid, 0.0)
        return budget, predicted, running

    def _on_sample(self, s: MemorySample) -> None:
        self._emit("memory", s.row())

    def _admission_state(self) -> tuple[float, float, float, dict[int, float]]:
        """(budget, committed, kernel, measured memory per worker pid) for the admission rule."""
        s = self._monitor.latest if self._monitor is not None else None
        t, budget = self._budget_cache
        now = time.monotonic()
        if now - t > max(0.5, 3 * self.sample_interval):  # the monitor refreshes it every sample
            budget = self._budget_for(s)
            self._budget_cache = (now, budget)
            if s is None:
                self._kernel_cache = float(self.manager.base_bytes())
        kernel = s.kernel if s is not None else self._kernel_cache
        measured = dict(s.workers) if s is not None else {}
        committed = kernel
        for w in self._pool:
            m = measured.get(w.pid, 0.0)
            committed += max(w.estimate, m) if w.task is not None else m
        return budget, committed, kernel, measured

    # -- workers ------------------------------------------------------------------------
    def _spawn_worker(self) -> _Worker:
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        method = self._monitor.reader.method if self._monitor is not None else "rss"
        current = self._ctx.RawValue("q", -1)
        proc = self._ctx.Process(
            target=_worker_main,
            args=(child_conn, self.work, self.work_args, method, self.warmup, current),
            name="oppnda-worker",
            daemon=True,
        )
        with self._fork_lock:
            proc.start()
        child_conn.close()
        w = _Worker(proc, parent_conn, proc.pid, current=current)
        self._pool.append(w)
        return w

    def _terminate_all(self) -> None:
        """SIGTERM every worker, SIGKILL those still alive after 1 s, reap all (≤ ~1.5 s)."""
        workers, self._pool = list(self._pool), []
        for w in workers:
            try:
                if w.proc.is_alive():
                    w.proc.terminate()
            except Exception:
                pass
        deadline = time.monotonic() + 1.0
        for w in workers:
            w.proc.join(max(0.0, deadline - time.monotonic()))
        for w in workers:
            if w.proc.is_alive():
                try:
                    w.proc.kill()
                except Exception:
                    pass
                w.proc.join(0.5)
            self._close_worker(w)

    def _close_worker(self, w: _Worker) -> None:
        try:
            w.conn.close()
        except Exception:
            pass
        try:
            w.proc.close()
        except Exception:
            pass
        if self._monitor is not None:
            self._monitor.reader.forget(w.pid)

    def _shutdown_workers(self) -> None:
        """Ask idle workers to exit (None), then terminate whatever is left."""
        for w in self._pool:
            try:
                w.conn.send(None)
            except Exception:
                pass
        deadline = time.monotonic() + 2.0
        for w in self._pool:
            w.proc.join(max(0.0, deadline - time.monotonic()))
        self._terminate_all()

    # -- the scheduler ------------------------------------------------------------------
    def _main(self) -> None:
        status = "finished"
        try:
            if self.use_monitor:
                self._monitor = MemoryMonitor(
                    lambda: [w.pid for w in self._pool],
                    interval=self.sample_interval,
                    context=self._monitor_context,
                    system=self._system_reading,
                    on_sample=self._on_sample,
                    method=self.memory_method,
                    lock=self._fork_lock,
                )
                self._monitor.sample()  # the kernel's baseline before any worker exists
            self._plan()
            make = getattr(self.manager, "make_semaphore", None)
            if make is not None:
                self._sem = make(self.workers)
            else:
                from .resource_manager import DynamicSemaphore

                self._sem = DynamicSemaphore(self.workers, eta=self.manager.eta,
                                             safety_enabled=self.manager.safety_enabled)
            for _ in range(min(self.workers, len(self._pending))):
                self._spawn_worker()
            if self._monitor is not None:
                self._monitor.start()
            self._maybe_progress(force=True)
            while True:
                if self._stop_flag.is_set():
                    status = "cancelled"
                    break
                if self._fatal is not None:
                    status = "failed"
                    self._warn(self._fatal)
                    break
                self._schedule()
                with self._lock:
                    busy = any(w.task is not None for w in self._pool)
                if not busy and not self._pending:
                    break
                self._poll(0.05)
        except BaseException as exc:  # noqa: BLE001 - turn any internal error into a failed result
            status = "failed"
            self._warn(f"internal error of the pool: {type(exc).__name__}: {exc}")
        finally:
            try:
                self._finish(status)
            finally:
                self._events.put(None)

    def _system_reading(self) -> tuple[float, float]:
        try:
            used, total = self.manager.memory_reader()
            self._last_reading = (time.monotonic(), float(used), float(total))  # reused by _budget_for
            return float(used), float(max(0.0, total - used))
        except Exception:
            return math.nan, math.nan

    def _plan(self) -> None:
        """The budget now and the predicted peak: kernel + the largest files that fit together."""
        s = self._monitor.latest if self._monitor is not None else None
        budget = self._budget_for(s)
        self.budget_mb = budget / MB
        kernel = s.kernel if s is not None else float(self.manager.base_bytes())
        total, k = kernel, 0
        for t in self._pending[: self.workers]:  # largest first
            if k > 0 and total + t.estimate > budget:
                break
            total += t.estimate
            k += 1
        idle = max(0, min(self.workers, len(self._pending)) - k)
        total += idle * self.manager.overhead_mb * MB
        self.predicted_peak_mb = total / MB
        if k == 1 and len(self._pending) > 1 and self.workers > 1:
            self._warn(
                f"the largest file(s) need most of the {budget / MB:.0f} MB budget: large files will run "
                "one at a time"
            )

    def _schedule(self) -> None:
        """Start as many files as the rule allows (see the module docstring)."""
        with self._lock:
            while self._pending and not self._stop_flag.is_set():
                idle = [w for w in self._pool if w.task is None]
                if not idle:
                    return
                if any(w.alone for w in self._pool if w.task is not None):
                    return  # a file running alone: nothing starts next to it
                if not self._sem.acquire(blocking=False):
                    return
                budget, committed, kernel, measured = self._admission_state()
                w = min(idle, key=lambda x: measured.get(x.pid, 0.0))
                m_w = measured.get(w.pid, 0.0)
                running = sum(1 for x in self._pool if x.task is not None)
                choice, alone = self._choose(budget, committed, m_w, running, kernel)
                if choice is None:
                    self._sem.release()
                    return
                self._pending.remove(choice)
                batch = [choice]
                if not alone and self._batchable(choice, budget, kernel):
                    batch += self._take_small(choice)
                self._assign(w, batch, alone, over_budget=(committed - m_w + max(choice.estimate, m_w) > budget))

    def _batchable(self, t: _Task, budget: float, kernel: float) -> bool:
        """May ``t`` lead a batch? Small, fresh, not alone, and comfortably inside the budget
        (a full pool of files like it would fit next to the kernel)."""
        return (self.batch and t.size < self.batch_file_bytes and t.attempts == 0 and not t.alone
                and kernel + max(1, self._target) * t.estimate <= budget)

    def _small_pending(self) -> int:
        """How many pending files are below ``batch_file_bytes`` (the queue is sorted by size, descending)."""
        p, thr = self._pending, self.batch_file_bytes
        lo, hi = 0, len(p)
        while lo < hi:
            mid = (lo + hi) // 2
            if p[mid].size >= thr:
                lo = mid + 1
            else:
                hi = mid
        return len(p) - lo

    def _take_small(self, lead: _Task) -> list[_Task]:
        """Further members for a batch led by ``lead``, from the small end of the queue.

        n = clamp(small files left / (workers·4), 1, batch_max_files): batches shrink towards
        the end so every worker stays busy and progress stays smooth. Members are fresh small
        files whose estimate is at most the lead's (so the batch's admission, which used the
        lead's estimate, holds for every member) and the batch stays under batch_max_bytes.
        """
        n = min(self.batch_max_files, max(1, (self._small_pending() + 1) // (max(1, self._target) * 4)))
        if n <= 1:
            return []
        members: list[_Task] = []
        take: list[int] = []
        nbytes = lead.size
        i = len(self._pending) - 1
        while i >= 0 and len(members) < n - 1:
            t = self._pending[i]
            if t.size >= self.batch_file_bytes:
                break
            if not t.alone and t.attempts == 0 and t.estimate <= lead.estimate:
                if nbytes + t.size > self.batch_max_bytes:
                    break
                members.append(t)
                take.append(i)
                nbytes += t.size
            i -= 1
        for j in take:  # descending indices near the end of the list: cheap deletes
            del self._pending[j]
        return members

    def _choose(self, budget: float, committed: float, m_w: float, running: int, kernel: float):
        head = self._pending[0]
        for i, t in enumerate(self._pending):
            oversize = kernel + t.estimate > budget
            if oversize and not t.warned_oversize:
                t.warned_oversize = True
                self._warn(
                    f"{os.path.basename(t.path)}: estimated {t.estimate / MB:.0f} MB (γ·size + overhead) does not "
                    f"fit the budget of {budget / MB:.0f} MB next to the kernel ({kernel / MB:.0f} MB); "
                    "it runs alone"
                )
            if oversize or t.alone:
                if running == 0:
                    return t, True
                if i == 0:
                    return None, False  # waits for the pool to drain; nothing overtakes it
                continue
            need = committed - m_w + max(t.estimate, m_w)
            if need <= budget or running == 0:
                if i > 0:
                    head.overtaken += 1
                return t, False
            if i == 0 and head.overtaken >= self.max_overtakes:
                return None, False
        return None, False

    def _assign(self, w: _Worker, tasks: list[_Task], alone: bool, over_budget: bool) -> None:
        """Hand ``tasks`` (one file, or a batch run one after another) to the idle worker ``w``."""
        t = tasks[0]
        for x in tasks:
            x.attempts += 1
        w.tasks, w.alone, w.started_at = list(tasks), alone, time.monotonic()
        if len(tasks) > 1:
            self._batches += 1
        if over_budget and not alone:
            self._warn(f"{os.path.basename(t.path)} started above the budget because nothing else was running")
        try:
            w.conn.send([(x.index, x.path) for x in tasks])
        except (OSError, BrokenPipeError):
            pass  # the worker is dead; _poll will notice and retry the files
        if self._monitor is not None:
            self._monitor.begin_file(t.index, w.pid)
        # every member is in the worker's hands now (it runs them in this order)
        self._emit_many([Event("file_started", FileOutcome(x.path, x.size, "running", attempts=x.attempts,
                                                           report_type=x.report_type,
                                                           estimate_mb=x.estimate / MB, worker_pid=w.pid))
                         for x in tasks])

    def _poll(self, timeout: float) -> None:
        with self._lock:
            conns = {w.conn: w for w in self._pool}
            sentinels = {w.proc.sentinel: w for w in self._pool}
        if not conns:
            time.sleep(timeout)
            return
        ready = mpc.wait(list(conns) + list(sentinels), timeout)
        dead: list[_Worker] = []
        for r in ready:
            w = conns.get(r) or sentinels.get(r)
            if w is None or w in dead:
                continue
            if not self._drain(w) or (r in sentinels and not w.proc.is_alive()):
                dead.append(w)
        for w in dead:
            self._worker_died(w)
        self._maybe_progress()

    def _drain(self, w: _Worker) -> bool:
        """Handle every message waiting from ``w``; False when its pipe is broken."""
        try:
            while w.conn.poll():
                self._handle(w, w.conn.recv())
        except (EOFError, OSError):
            return False
        except Exception as exc:  # a garbled message: treat as a dead worker
            self._warn(f"bad message from worker {w.pid}: {type(exc).__name__}: {exc}")
            return False
        return True

    def _handle(self, w: _Worker, msg: tuple) -> None:
        if msg[0] == "ready":
            w.base_mem, w.ready = msg[2], True
            self._startup_failures = 0
            return
        events = []
        with self._lock:
            if w.task is None:
                return  # stale (nothing is assigned to it)
            for rec in msg[1]:
                out = self._outcome(w, *rec)
                if out is not None:
                    events.append(Event("file_finished" if out.status == "processed" else "file_failed", out))
            if w.task is None:
                w.alone = False
                self._sem.release()
            elif self._monitor is not None:
                self._monitor.begin_file(w.task.index, w.pid)  # the member it runs now
        self._emit_many(events)

    def _outcome(self, w: _Worker, task_id: int, ok: bool, payload: Any, seconds: float,
                 baseline: float | None, peak_delta: float | None) -> FileOutcome | None:
        """The FileOutcome of the member ``task_id`` of ``w``'s batch (which must be its first)."""
        t = w.task
        if t is None or t.index != task_id:
            return None
        w.tasks.pop(0)
        sampled = self._monitor.end_file(t.index) if self._monitor is not None else None
        if baseline is None:
            baseline = w.base_mem
        if peak_delta is None and sampled is not None and baseline is not None:
            peak_delta = max(0.0, sampled - baseline)
        peak = (baseline + peak_delta) if (baseline is not None and peak_delta is not None) else sampled
        out = FileOutcome(
            t.path, t.size, "processed" if ok else "failed",
            reason=None if ok else str(payload),
            result=payload if ok else None,
            seconds=float(seconds),
            peak_mb=None if peak is None else peak / MB,
            attempts=t.attempts,
            report_type=t.report_type,
            baseline_mb=None if baseline is None else baseline / MB,
            peak_delta_mb=None if peak_delta is None else peak_delta / MB,
            estimate_mb=t.estimate / MB,
            worker_pid=w.pid,
        )
        self._outcomes[t.index] = out
        self._bytes_done += t.size
        return out

    def _worker_died(self, w: _Worker) -> None:
        with self._lock:
            if w not in self._pool:
                return
            w.proc.join(0.5)
            code = w.proc.exitcode
            how = _signal_name(code)
            self._pool.remove(w)
            self._close_worker(w)
            tasks, w.tasks = w.tasks, []
            # the member it was running: the shared "current" id (if it is one of the batch),
            # else the first (it died before starting the batch: the file it held is blamed, as
            # for a single file). The other members (not started, or done but their outcome
            # not sent yet) go back to the queue, no attempt counted.
            k = 0
            cur = w.current.value if w.current is not None else -1
            for j, x in enumerate(tasks):
                if x.index == cur:
                    k = j
                    break
            t = tasks[k] if tasks else None
            rest = tasks[:k] + tasks[k + 1:]
            if tasks:
                self._sem.release()
                if self._monitor is not None:
                    self._monitor.end_file(tasks[0].index)
            for x in rest:
                x.attempts -= 1
                self._requeue(x)
            if not w.ready and (code is None or code >= 0):
                # exited on its own while starting: the work cannot be imported / the setup is broken
                self._startup_failures += 1
                if t is not None:
                    t.attempts -= 1
                    self._requeue(t)
                if self._startup_failures >= 3:
                    self._fatal = (f"worker processes cannot start ({how}); check that the work function "
                                   f"{getattr(self.work, '__module__', '?')}.{getattr(self.work, '__qualname__', '?')} "
                                   "is importable in a fresh interpreter (spawn/forkserver import it by name)")
                    return
                self._spawn_worker()
                return
            self._target = max(1, self._target - 1)
            msg = f"worker {w.pid} died ({how})"
            if t is not None:
                t.last_error = f"worker died ({how}) while processing the file"
                if t.attempts <= self.max_retries:
                    t.alone = True
                    self._requeue(t)
                    msg += f" while processing {os.path.basename(t.path)}; retrying it alone (attempt {t.attempts + 1})"
                else:
                    reason = (f"worker died ({how}) on each of {t.attempts} attempts"
                              + (" - possibly out of memory" if code == -signal.SIGKILL else ""))
                    out = FileOutcome(t.path, t.size, "failed", reason, attempts=t.attempts,
                                      report_type=t.report_type, estimate_mb=t.estimate / MB, worker_pid=w.pid)
                    self._outcomes[t.index] = out
                    self._bytes_done += t.size
                    self._emit("file_failed", out)
                    msg += f" while processing {os.path.basename(t.path)}; giving up on it after {t.attempts} attempts"
            if rest:
                msg += f"; {len(rest)} other file(s) of its batch go back to the queue"
            msg += f"; the pool continues with {self._target} worker(s)"
            while len(self._pool) < self._target and self._pending and not self._stop_flag.is_set():
                self._spawn_worker()
        self._warn(msg)

    def _requeue(self, t: _Task) -> None:
        """Put ``t`` back into the queue at its place (size order)."""
        keys = [x.key for x in self._pending]
        self._pending.insert(bisect.bisect(keys, t.key), t)

    def _finish(self, status: str) -> None:
        with self._lock:
            running = [w for w in self._pool if w.task is not None]
        if status != "finished":
            self._terminate_all()
        else:
            self._shutdown_workers()
        with self._lock:
            reason = "stopped by the user" if status == "cancelled" else "the pool failed"
            if self._interrupted:
                reason = "interrupted (KeyboardInterrupt)"
            # a pool that cannot start workers fails the files it could not run (with the reason);
            # a stopped pool cancels them
            left = "failed" if self._fatal is not None else "cancelled"
            if self._fatal is not None:
                reason = self._fatal
            for w in running:
                for j, t in enumerate(w.tasks):  # the running file, then the batch members not started
                    if t.index not in self._outcomes:
                        why = reason + " (while running)" if j == 0 else reason
                        self._outcomes[t.index] = FileOutcome(t.path, t.size, left, why,
                                                              attempts=t.attempts if j == 0 else t.attempts - 1,
                                                              report_type=t.report_type)
            for t in self._pending:
                if t.index not in self._outcomes:
                    self._outcomes[t.index] = FileOutcome(t.path, t.size, left, reason,
                                                          attempts=t.attempts, report_type=t.report_type)
            for t in self._tasks:  # defensive: nothing may be lost
                if t.index not in self._outcomes:
                    self._outcomes[t.index] = FileOutcome(t.path, t.size, "cancelled" if status != "finished"
                                                          else "failed", "lost by the pool (bug)",
                                                          attempts=t.attempts, report_type=t.report_type)
            self._pending = []
        if self._monitor is not None:
            self._monitor.stop()
            for e in self._monitor.errors:
                self.warnings.append(f"monitor: {e}")
        self._t_end = time.monotonic()
        total_inputs = len(self.files) + len(self.skipped)
        outcomes = [self._outcomes[i] for i in range(total_inputs)]
        memory = self.memory_frame()
        measured = self._monitor.peak_total / MB if self._monitor is not None else math.nan
        if self._interrupted:
            self.warnings.append("interrupted by KeyboardInterrupt: unfinished files are cancelled")
        self.result = JobResult(
            outcomes=outcomes,
            memory=memory,
            warnings=list(self.warnings),
            workers=self.workers,
            budget_mb=self.budget_mb,
            predicted_peak_mb=self.predicted_peak_mb,
            measured_peak_mb=measured,
            elapsed_s=self._t_end - (self._t0 or self._t_end),
            status=status,
            inputs=list(self.files) + [p for p, _ in self.skipped],
            memory_method=self._monitor.reader.method if self._monitor is not None else "",
            workers_final=self._target,
        )
        if self.learn and status == "finished":
            from .calibration import calibrate

            try:
                self.result.calibration = calibrate(self.manager, self.result)
            except OppndaError as exc:
                self.result.warnings.append(f"no calibration: {exc}")
        self._maybe_progress(force=True)
        self._emit("done", self.result)


def run_files(files, work, work_args=(), manager=None, **kw) -> JobResult:
    """Convenience: ``Job(files, work, work_args, manager, **kw).run()``."""
    return Job(files, work, work_args, manager, **kw).run()
