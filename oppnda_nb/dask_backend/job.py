"""DaskJob: the local pool's interface over a Dask cluster (see the package docstring)."""
from __future__ import annotations

import heapq
import logging
import math
import os
import queue
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from ..background import Background
from ..errors import OppndaError
from ..memory_model import WORKER_BASELINE_BYTES, plan_peak
from ..pool import EventKind, FileOutcome, JobResult, Progress, Status, samples_frame
from ..pool.admission import OVERSIZE_POLICIES
from ..pool.events import EventedJob
from ..pool.records import bounded, known_outcomes
from ..pool.scheduler import accepts_lean
from ..resource_manager import ResourceManager
from .cluster import CONNECT_TIMEOUT, RESOURCE, _distributed, close_owned, connect
from .tasks import run_file, run_files, worker_info
from ..system import MB, process_tree_bytes, shared_reader

log = logging.getLogger("oppnda_nb.dask")

#: files submitted ahead per worker thread (and at least): enough to hide the round trip to the
#: scheduler, few enough that files submitted later use what the memory model learned meanwhile
WINDOW_PER_THREAD = 8
WINDOW_MIN = 8
#: files smaller than this go to the workers in batches (one task holds several files, run in turn)
BATCH_FILE_BYTES = 256 * 1024
BATCH_MAX_FILES = 64
#: retries of a file whose Dask task failed for a reason of the cluster (not of the work)
MAX_RETRIES = 2


@dataclass
class _Task:
    index: int
    path: str
    size: int
    kind: str
    estimate: float = math.nan
    lean: bool = False
    attempts: int = 0
    retries: list | None = None
    key: str | None = None
    started: float = 0.0


@dataclass
class _Worker:
    address: str
    column: str  # worker_<id>: the memory frame's column
    capacity: float  # bytes: the MEMORY resource, or η·memory_limit without it
    nthreads: int
    memory_limit: float
    has_resource: bool


#: what a Dask worker keeps between tasks (results not gathered yet, memory Python does not give
#: back; unlike a pool worker it is not retired): measured +27 MB per worker over the bundled
#: sample's 240 files, with the kernel's own growth (benchmarks/dask_vs_pool.py)
DASK_WORKER_GROWTH_BYTES = 24 * MB


class DaskJob(EventedJob, Background):
    """The pool's interface (start/stop/wait/listeners/progress/memory) over a Dask cluster.

    ``client``: a ``distributed.Client``, an address ``tcp://HOST:PORT``, a cluster or an int
    (see :func:`connect`; what it opens is closed at the end). The other arguments are those of
    :class:`oppnda_nb.pool.Job`; ``workers``, ``start_method`` and ``in_process`` belong to the
    local pool and are ignored (the cluster has its own workers); ``file_timeout`` cannot be enforced (Dask
    cannot stop a running task) and only warns. ``max_retries``: resubmissions of a file whose
    task Dask gave up on (KilledWorker after its workers died, a lost connection); Dask itself
    already re-runs a lost worker's tasks up to ``distributed.scheduler.allowed-failures``.
    """

    _thread_name = "oppnda-dask"

    def __init__(self, files: Iterable[str | os.PathLike], work: Callable, work_args: Sequence = (),
                 manager: ResourceManager | None = None, *, skipped: Iterable[tuple[str, str]] = (),
                 done: Iterable[tuple[str, Any]] = (), estimate: Callable[[str, int, bool], float] | None = None,
                 kind_of: Callable[[str], str] | None = None, preload: Sequence[str] | None = None,
                 workers: int | None = None, start_method: str | None = None, sample_interval: float = 0.2,
                 oversize: str = "skip", file_timeout: float | None = None, max_retries: int = MAX_RETRIES,
                 in_process: bool = False, planned_peak_bytes: float = 0.0, client: Any = None,
                 sizes: dict[str, int] | None = None):
        if client is None:
            raise OppndaError("DaskJob needs client=: a Dask Client, a scheduler address tcp://HOST:PORT, a cluster "
                              "or a number of local workers")
        if oversize not in OVERSIZE_POLICIES:
            raise OppndaError(f"oversize must be one of {OVERSIZE_POLICIES}, got {oversize!r}")
        if not 0.05 <= float(sample_interval) <= 10:
            raise OppndaError(f"sample_interval must be between 0.05 and 10 s, got {sample_interval}")
        if getattr(work, "__module__", None) == "__main__" or "<locals>" in getattr(work, "__qualname__", "<locals>"):
            raise OppndaError("work must be a top-level function of an importable module (Dask workers import it); "
                              f"got {getattr(work, '__qualname__', work)!r}")
        self.manager = manager if manager is not None else ResourceManager()
        self.files = [os.fspath(f) for f in files]
        self.skipped = [(os.fspath(p), str(r)) for p, r in skipped]
        self.done = list(done)  # the caller's cache: (path, result[, size])
        self._sizes = sizes  # the caller's stat of the files
        self.work, self.work_args = work, tuple(work_args)
        self.estimate = estimate or (lambda path, size, lean: self.manager.estimator.estimate_file_memory(size))
        self.kind_of = kind_of or (lambda path: "file")
        self.preload = list(preload) if preload is not None else [work.__module__]
        self.sample_interval = float(sample_interval)
        self.oversize = oversize
        self.max_retries = int(max_retries)
        self._accepts_lean = accepts_lean(work)
        self.warnings: list[str] = []
        self._init_events()
        self._lock = threading.RLock()
        self._stop_flag = threading.Event()
        self._done = threading.Event()
        self._sampler: threading.Thread | None = None
        self.result: JobResult | None = None
        self._rows: list[dict] = []
        self._t0: float | None = None
        self._t_end: float | None = None
        self._last_progress = 0.0
        if file_timeout is not None:
            self._note(f"file_timeout={file_timeout} is not enforced on Dask (a running task cannot be stopped)")

        self._workers: dict[str, _Worker] = {}
        self._known: dict[str, _Worker] = {}
        self._last_processing: dict[str, list[str]] = {}
        self._running_now = 0
        self._sample_stop = threading.Event()
        self.client, self.owned = connect(client, self.manager, self.files)
        try:
            self._setup_outcomes()
            self._workers = self._read_workers(wait=True)
        except BaseException:
            self.close()
            raise
        self.workers = len(self._usable())
        self.budget_mb = sum(w.capacity for w in self._usable()) / MB
        self.predicted_peak_mb = math.nan
        self._idle_bytes = 0.0
        self._planned_bytes = float(planned_peak_bytes)  # as PoolOptions.planned_peak_bytes
        self._kernel_reader = shared_reader("auto")

    # -- setup -------------------------------------------------------------------------------
    def _kind(self, path: str) -> str:
        try:
            return str(self.kind_of(path))
        except Exception:
            log.warning("kind_of(%r) failed; using 'file'", path, exc_info=True)
            return "file"

    def _setup_outcomes(self) -> None:
        """Outcomes known before any work (unreadable files, skipped, cached) and the queue."""
        self._outcomes, self._tasks, self.inputs = known_outcomes(
            self.files, self.skipped, self.done, self._kind, lambda i, p, size, kind: _Task(i, p, size, kind, retries=[]),
            self._sizes)
        self._pending = sorted(self._tasks, key=lambda t: (-t.size, t.index))  # largest first (LPT)
        self._running: dict[str, list[_Task]] = {}  # key -> the task's files (several: a batch)
        self._futures: dict[str, Any] = {}
        self._bytes_total = sum(t.size for t in self._tasks)
        self._bytes_done = 0

    def _read_workers(self, wait: bool = False) -> dict[str, _Worker]:
        """The cluster's workers with their capacities (from the scheduler)."""
        if wait:
            try:
                self.client.wait_for_workers(1, timeout=CONNECT_TIMEOUT)
            except Exception as exc:
                raise OppndaError(f"The Dask cluster has no workers after {CONNECT_TIMEOUT:.0f} s ({exc}); start some "
                                  f"with `dask worker {self.client.scheduler.address} --nthreads 1 --memory-limit 4GiB "
                                  f"--resources {RESOURCE}=3072`") from None
        return self._read_workers_from(self.client.scheduler_info(n_workers=-1)["workers"])

    def _usable(self, workers: dict[str, _Worker] | None = None) -> list[_Worker]:
        """The workers that run files: those with the MEMORY resource if any has it, else all."""
        ws = list((workers if workers is not None else self._workers).values())
        with_res = [w for w in ws if w.has_resource]
        return with_res or ws

    @property
    def resource_mode(self) -> bool:
        """True when tasks carry ``resources={"MEMORY": MB}`` (some worker declares the resource)."""
        return any(w.has_resource for w in self._workers.values())

    def close(self) -> None:
        """Close the client (and local cluster) this job opened itself; a given Client is left open."""
        if self.owned and self.client is not None:
            close_owned(self.client)
            self.owned = False

    @property
    def running(self) -> bool:
        return self._thread is not None and not self._done.is_set()

    def stop(self, wait: bool = True) -> None:
        """Submit nothing new, cancel every future, mark unfinished files cancelled."""
        self._stop_flag.set()
        if wait and self._thread is not None and threading.current_thread() not in (self._thread, self._dispatcher):
            self._done.wait(30)

    def _after_done(self) -> None:
        if self._dispatcher is not None and threading.current_thread() is not self._dispatcher:
            self._dispatcher.join(timeout=10)  # the last events (done) reach the listeners first

    def memory_end(self) -> float:
        """The time (s, the samples' ``t``) of the last memory sample, 0 if none."""
        return float(self._rows[-1]["t"]) if self._rows else 0.0

    def memory_frame(self):
        """The memory samples so far (the pool monitor's columns, ``worker_<id>`` per Dask worker)."""
        return samples_frame(list(self._rows))

    def key_of(self, path: str) -> str | None:
        """The Dask key of the task that runs ``path`` now (None: not submitted or finished)."""
        with self._lock:
            return next((k for k, ts in self._running.items() if any(t.path == os.fspath(path) for t in ts)), None)

    @property
    def worker_columns(self) -> dict[str, str]:
        """``worker_<id>`` column -> the Dask worker's address."""
        return {w.column: w.address for w in self._workers.values()}

    def _note(self, msg: str) -> None:
        log.warning("%s", msg)
        self.warnings.append(msg)

    def _warn(self, msg: str) -> None:
        self._note(msg)
        self._emit(EventKind.WARNING, msg)

    def _progress(self) -> Progress:
        counts = self._outcomes.by_status
        elapsed = (self._t_end or time.monotonic()) - self._t0 if self._t0 is not None else 0.0
        rate = self._bytes_done / MB / elapsed if elapsed > 0 else 0.0
        left = self._bytes_total - self._bytes_done
        eta = (left / MB / rate) if rate > 0 else (0.0 if left <= 0 else None)
        slots = sum(w.nthreads for w in self._usable())
        return Progress(files_done=len(self._outcomes), files_total=len(self.inputs), bytes_done=self._bytes_done,
                        bytes_total=self._bytes_total, mb_per_s=rate, eta_s=eta, elapsed_s=elapsed,
                        running=self._running_now, workers=len(self._usable()), permits=slots,
                        processed=counts.get("processed", 0), failed=counts.get("failed", 0),
                        skipped=counts.get("skipped", 0), cancelled=counts.get("cancelled", 0))

    def _maybe_progress(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_progress >= 0.2:
            self._last_progress = now
            self._emit(EventKind.PROGRESS, self._progress())

    # -- the estimate and the oversize rule -------------------------------------------------
    def _call_estimate(self, t: _Task, lean: bool) -> float:
        try:
            return float(self.estimate(t.path, t.size, lean))
        except Exception:
            log.warning("estimate(%r) failed; using the manager's estimator", t.path, exc_info=True)
            return float(self.manager.estimator.estimate_file_memory(t.size))

    def _demand(self, t: _Task, largest: float) -> float | None:
        """The file's estimate now (bytes), lean if only that fits; None: skip it (reason recorded)."""
        e = t.estimate = self._call_estimate(t, t.lean)
        if e <= largest:
            return e
        name = os.path.basename(t.path)
        if self._accepts_lean and not t.lean:
            lean = self._call_estimate(t, True)
            if lean <= largest:
                t.lean, t.estimate = True, lean
                self._warn(f"{name}: its estimate {e / MB:.0f} MB does not fit the largest Dask worker capacity of "
                           f"{largest / MB:.0f} MB; it runs in lean mode (estimated {lean / MB:.0f} MB)")
                return lean
        if self.oversize == "run-alone":
            self._warn(f"{name}: estimated {e / MB:.0f} MB does not fit the largest Dask worker capacity of "
                       f"{largest / MB:.0f} MB; it runs alone on that worker (oversize='run-alone')")
            return largest
        reason = (f"{name}: estimated {e / MB:.0f} MB does not fit the largest Dask worker memory capacity of "
                  f"{largest / MB:.0f} MB ({RESOURCE} resource, or η·memory limit); skipped. Start workers with a "
                  f"larger --memory-limit and --resources {RESOURCE}=<MB>, or use oversize='run-alone'")
        self._finish(t, FileOutcome(t.path, t.size, Status.SKIPPED, reason, report_type=t.kind,
                                    estimate_mb=e / MB, attempts=t.attempts))
        return None

    # -- the main loop ------------------------------------------------------------------------
    def _check_workers(self) -> None:
        """Warn once about workers that cannot take files, or that cannot read them."""
        ws = list(self._workers.values())
        without = [w.address for w in ws if not w.has_resource]
        cmd = (f"dask worker {self.client.scheduler.address} --nthreads 1 --memory-limit <LIMIT> "
               f"--resources {RESOURCE}=<η·LIMIT in MB>")
        if without and len(without) == len(ws):
            self._warn(f"the Dask workers have no {RESOURCE} resource, so Dask cannot keep their files within a "
                       f"memory budget: running one file per worker thread. Start workers with `{cmd}`")
        elif without:
            self._warn(f"{len(without)} Dask worker(s) without the {RESOURCE} resource get no files "
                       f"({', '.join(without[:3])}); start them with `{cmd}`")
        probe = self._tasks[0].path if self._tasks else None
        try:
            infos = self.client.run(worker_info, self.preload, probe,
                                    workers=[w.address for w in self._usable()])
        except Exception as exc:
            self._warn(f"could not ask the Dask workers to import {self.preload}: {type(exc).__name__}: {exc}")
            return
        for addr, info in infos.items():
            if info["errors"]:
                self._warn(f"Dask worker {addr} cannot import the work's modules ({'; '.join(info['errors'])}): "
                           "install oppnda_nb where the workers run")
            if info["readable"] is False:
                self._warn(f"Dask worker {addr} cannot read {probe}: the files must be readable where the workers "
                           "run (a shared file system, same path)")

    def _main(self) -> None:
        distributed = _distributed()
        status = "finished"
        try:
            self._check_workers()
            usable = self._usable()
            largest = max((w.capacity for w in usable), default=math.inf)
            for t in self._pending:
                t.estimate = self._call_estimate(t, False)
            slots = sum(w.nthreads for w in usable)
            kernel = self._kernel_bytes()
            self._idle_bytes = self._workers_memory()
            self.predicted_peak_mb = self._prediction(kernel, [min(t.estimate, largest) for t in self._pending],
                                                      slots, self.budget_mb * MB) / MB
            self._sampler = threading.Thread(target=self._sample_loop, name="oppnda-dask-monitor", daemon=True)
            self._sampler.start()
            self._maybe_progress(force=True)
            done_q: queue.Queue = queue.Queue()
            token = uuid.uuid4().hex[:8]
            seq = 0
            while True:
                if self._stop_flag.is_set():
                    status = "cancelled"
                    break
                if self.client.status not in ("running", "connecting"):
                    raise OppndaError(f"the Dask client lost its scheduler (status {self.client.status})")
                window = max(WINDOW_MIN, WINDOW_PER_THREAD * sum(w.nthreads for w in self._usable()))
                while self._pending and len(self._running) < window and not self._stop_flag.is_set():
                    t = self._pending.pop(0)
                    demand = self._demand(t, largest)
                    if demand is None:
                        continue
                    batch = [t] + self._take_small(t, largest, window)
                    demand = max([demand] + [m.estimate for m in batch[1:]])  # run in turn: the largest counts
                    seq += 1
                    for m in batch:
                        m.attempts += 1
                    key = f"oppnda-{token}-{t.index}-{t.attempts}"
                    kw = {"resources": {RESOURCE: max(1e-3, demand / MB)}} if self.resource_mode else {}
                    if len(batch) == 1:
                        fut = self.client.submit(run_file, self.work, self.work_args, t.path, t.lean, key=key,
                                                 pure=False, priority=-seq, **kw)
                    else:
                        fut = self.client.submit(run_files, self.work, self.work_args, [(m.path, m.lean) for m in batch],
                                                 key=key, pure=False, priority=-seq, **kw)
                    with self._lock:
                        self._running[key] = batch
                        self._futures[key] = fut
                    fut.add_done_callback(done_q.put)
                if not self._pending and not self._running:
                    break
                try:
                    fut = done_q.get(timeout=0.1)
                except queue.Empty:
                    self._maybe_progress()
                    continue
                done = [fut]
                while len(done) < 256:  # everything finished meanwhile: fetched in one round trip
                    try:
                        done.append(done_q.get_nowait())
                    except queue.Empty:
                        break
                self._collect_many(done, distributed)
                self._maybe_progress()
        except Exception as exc:
            log.exception("the Dask job failed")
            self._note(f"the Dask job failed: {type(exc).__name__}: {exc}")
            status = "failed"
        finally:
            self._finish_all(status)

    def _take_small(self, lead: _Task, largest: float, window: int) -> list[_Task]:
        """Small fresh files to run in one task after ``lead`` (from the small end of the queue), each
        estimated at most the lead's, so the lead's demand holds for the batch; none when few are left."""
        if lead.size >= BATCH_FILE_BYTES or lead.attempts or not self._pending:
            return []
        small = sum(1 for x in self._pending if x.size < BATCH_FILE_BYTES)
        n = min(BATCH_MAX_FILES, small // max(1, window)) - 1  # keep every slot busy to the end
        out: list[_Task] = []
        while n > 0 and self._pending and self._pending[-1].size < BATCH_FILE_BYTES and not self._pending[-1].attempts:
            t = self._pending[-1]
            e = self._call_estimate(t, False)
            if e > lead.estimate or e > largest:
                break
            t.estimate = e
            out.append(self._pending.pop())
            n -= 1
        return out

    def _collect_many(self, futures: list, distributed: Any) -> None:
        """Futures that are done: the finished ones' results gathered at once, then each outcome."""
        finished = [f for f in futures if f.status == "finished" and f.key in self._running]
        values: dict[str, Any] = {}
        if len(finished) > 1:
            try:
                values = dict(zip((f.key for f in finished), self.client.gather(finished)))
            except Exception:  # some result could not be fetched: each on its own below
                log.debug("gathering %d results failed", len(finished), exc_info=True)
        for f in futures:
            self._collect(f, distributed, values.get(f.key))

    def _collect(self, fut: Any, distributed: Any, value: Any = None) -> None:
        """One future is done: its file's outcome (or a resubmission after a cluster failure)."""
        with self._lock:
            batch = self._running.pop(fut.key, None)
            self._futures.pop(fut.key, None)
        if batch is None:  # cancelled by stop() and already accounted
            return
        if fut.status == "finished":
            try:
                records = value if value is not None else fut.result()
                records = [records] if len(batch) == 1 else list(records)
            except Exception as exc:  # the result could not be fetched from the worker
                records = [(False, f"{type(exc).__name__}: {exc}", 0.0, None, None, None)] * len(batch)
            finally:
                fut.release()
            for t, rec in zip(batch, records):
                self._record(t, rec)
            return
        self._failed_task(fut, batch, distributed)

    def _record(self, t: _Task, rec: tuple) -> None:
        """A file's outcome from its task's record."""
        ok, value, seconds, baseline, peak_delta, pid = rec
        peak = (baseline + peak_delta) if baseline is not None and peak_delta is not None else None
        status = Status.PROCESSED if ok else Status.FAILED
        self._finish(t, FileOutcome(
            t.path, t.size, status, None if ok else value, result=value if ok else None, seconds=seconds,
            peak_mb=None if peak is None else peak / MB, attempts=t.attempts, report_type=t.kind,
            baseline_mb=None if baseline is None else baseline / MB,
            peak_delta_mb=None if peak_delta is None else peak_delta / MB, estimate_mb=t.estimate / MB,
            worker_pid=pid, retries=list(t.retries or []), lean=t.lean))

    def _failed_task(self, fut: Any, batch: list[_Task], distributed: Any) -> None:
        """A task that Dask could not finish: each of its files is submitted again (up to max_retries), else failed."""
        exc = None
        try:
            exc = fut.exception(timeout=1) if fut.status == "error" else None
        except Exception as e:  # cancelled futures raise here
            exc = e
        fut.release()
        why = f"{type(exc).__name__}: {exc}" if exc is not None else f"task {fut.status}"
        if isinstance(exc, distributed.KilledWorker):
            why = f"the Dask workers running it died ({why})"
        for t in batch:
            if t.attempts <= self.max_retries and not self._stop_flag.is_set():
                t.retries.append(bounded(why, 120))
                self._warn(f"{os.path.basename(t.path)}: {why}; submitted again (attempt {t.attempts + 1})")
                with self._lock:
                    self._pending.insert(0, t)
                continue
            self._finish(t, FileOutcome(t.path, t.size, Status.FAILED, why, attempts=t.attempts, report_type=t.kind,
                                        estimate_mb=t.estimate / MB, retries=list(t.retries or []), lean=t.lean))

    def _finish(self, t: _Task, outcome: FileOutcome) -> None:
        with self._lock:
            if t.index in self._outcomes:
                return
            self._outcomes[t.index] = outcome
            if outcome.status in (Status.PROCESSED, Status.FAILED):
                self._bytes_done += t.size
        if outcome.status == Status.PROCESSED:
            self._emit(EventKind.FILE_FINISHED, outcome)
        elif outcome.status == Status.FAILED:
            self._emit(EventKind.FILE_FAILED, outcome)
        else:
            self._emit(EventKind.WARNING, outcome.reason)

    def _finish_all(self, status: str) -> None:
        """Cancel what is left, build the result, send DONE, close what this job opened."""
        with self._lock:
            futures = list(self._futures.values())
            left = [t for batch in self._running.values() for t in batch] + list(self._pending)
            self._running.clear()
            self._futures.clear()
            self._pending = []
        if futures:
            try:
                self.client.cancel(futures, force=True)
            except Exception:
                log.warning("cancelling the Dask futures failed", exc_info=True)
        reason = "stopped before it finished" if status == "cancelled" else f"the job {status} before this file ran"
        for t in left:
            self._finish(t, FileOutcome(t.path, t.size, Status.CANCELLED, reason, attempts=t.attempts,
                                        report_type=t.kind, retries=list(t.retries or [])))
        self._t_end = time.monotonic()
        self._sample_stop.set()
        if self._sampler is not None:
            self._sampler.join(timeout=5)
        try:
            self._sample()
        except Exception:
            log.debug("the last memory sample failed", exc_info=True)
        frame = self.memory_frame()
        measured = math.nan
        if len(frame):
            measured = float((frame["kernel_mb"] + frame["workers_mb"]).max())
        with self._lock:
            outcomes = [self._outcomes[i] for i in sorted(self._outcomes)]
        self.result = JobResult(outcomes=outcomes, memory=frame, warnings=list(self.warnings),
                                workers=self.workers, budget_mb=self.budget_mb,
                                predicted_peak_mb=self.predicted_peak_mb, measured_peak_mb=measured,
                                elapsed_s=self._t_end - (self._t0 or self._t_end), status=status,
                                inputs=list(self.inputs), memory_method="dask worker metrics (RSS), kernel own",
                                workers_final=len(self._usable()))
        self._running_now = 0
        self._maybe_progress(force=True)
        self.close()  # before DONE: a caller that exits right after leaves no worker behind
        self._emit(EventKind.DONE, self.result)
        self._events.put(None)
        self._done.set()

    # -- memory --------------------------------------------------------------------------------
    def _workers_memory(self) -> float:
        """The Dask workers' memory now, before any task of this job: the scheduler's metrics (workers
        anywhere), or, for a cluster started here, every process under this one (workers and their
        nannies, PSS) if that is more."""
        try:
            info = self.client.scheduler_info(n_workers=-1)["workers"]
            reported = float(sum((w.get("metrics") or {}).get("memory") or 0.0 for w in info.values()))
        except Exception:
            log.debug("could not read the Dask workers' memory", exc_info=True)
            reported = 0.0
        local = process_tree_bytes(os.getpid()) - self._kernel_bytes()
        return max(reported, local)

    def _prediction(self, kernel: float, estimates: list[float], slots: int, budget: float) -> float:
        """The peak: the kernel, the workers' memory before the job (a Dask
        worker carries its own imports) plus each running file's cost above a pool worker's baseline
        (which the estimates include) and what a Dask worker keeps between tasks; never below the
        caller's plan (``planned_peak_bytes``)."""
        extra = [max(0.0, e - WORKER_BASELINE_BYTES) + DASK_WORKER_GROWTH_BYTES for e in estimates]
        return max(kernel + self._idle_bytes + plan_peak(0.0, extra, slots, budget), self._planned_bytes)

    def _kernel_bytes(self) -> float:
        m = self._kernel_reader.read(os.getpid())
        return m.mem if m is not None else 0.0

    def _sample_loop(self) -> None:
        next_t = time.monotonic()
        while not self._sample_stop.is_set():
            try:
                self._sample()
            except Exception:
                log.debug("a Dask memory sample failed", exc_info=True)
            next_t += self.sample_interval
            delay = next_t - time.monotonic()
            if delay < 0:
                next_t, delay = time.monotonic(), 0.0
            self._sample_stop.wait(delay)

    def _sample(self) -> dict:
        """One row: the kernel, each Dask worker (the scheduler's metrics), Σ capacities, the prediction."""
        info = self.client.scheduler_info(n_workers=-1)["workers"]
        processing = self.client.processing()
        with self._lock:
            workers = self._read_workers_from(info)
            lost = [a for a in self._last_processing if a not in workers]
            for addr in lost:  # a worker left: its files are run again by Dask
                for key in self._last_processing[addr]:
                    for t in self._running.get(key, ()):
                        t.retries.append(f"Dask worker {addr} was lost")
                        t.attempts += 1
            mine = {a: [k for k in keys if k in self._running] for a, keys in processing.items()}
            self._last_processing = mine
            self._running_now = sum(len(v) for v in mine.values())
            running_est = [max(t.estimate for t in self._running[k]) for keys in mine.values() for k in keys]
            usable = self._usable(workers)
            slots = sum(w.nthreads for w in usable)
            budget = sum(w.capacity for w in usable)
            ests = running_est + heapq.nlargest(max(0, slots - len(running_est)), (t.estimate for t in self._pending
                                                                                    if math.isfinite(t.estimate)))
        if lost:
            self._warn(f"Dask worker(s) lost: {', '.join(lost)}; their files are run again")
        kernel = self._kernel_bytes()
        per = {w.column: float((info[a].get("metrics") or {}).get("memory") or 0.0) for a, w in workers.items()}
        total = sum(per.values())
        limits = sum(w.memory_limit for w in workers.values())
        row = {
            "t": time.monotonic() - (self._t0 or time.monotonic()),
            "system_used_mb": (total + kernel) / MB,
            "system_available_mb": max(0.0, limits - total) / MB if limits else math.nan,
            "kernel_mb": kernel / MB,
            "workers_mb": total / MB,
            "budget_mb": budget / MB,
            "predicted_peak_mb": self._prediction(kernel, ests, slots, budget) / MB,
            "running": sum(len(v) for v in mine.values()),
            "helpers_mb": 0.0,
        }
        row.update({c: v / MB for c, v in per.items()})
        self._rows.append(row)
        self._emit(EventKind.MEMORY, row)
        return row

    def _read_workers_from(self, info: dict) -> dict[str, _Worker]:
        """Update the worker table from a scheduler_info answer (new workers get a column)."""
        known = self._known
        for addr, w in info.items():
            if addr in known:
                continue
            res = (w.get("resources") or {}).get(RESOURCE)
            limit = float(w.get("memory_limit") or 0)
            cap = float(res) * MB if res is not None else (self.manager.eta * limit if limit > 0 else math.inf)
            wid = w.get("id")
            column = f"worker_{wid}" if isinstance(wid, int) else f"worker_{len(known) + 1}"
            known[addr] = _Worker(addr, column, cap, int(w.get("nthreads") or 1), limit, res is not None)
        current = {a: known[a] for a in info}
        self._workers = current if current else self._workers
        return current
