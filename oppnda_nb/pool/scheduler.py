"""The scheduler thread of a job: workers, the admission loop, outcomes, faults, the end.

A mix-in of :class:`~oppnda_nb.pool.Job` (which holds the state, events and memory readings);
the rule itself lives in :mod:`.admission` as pure functions.
"""
from __future__ import annotations

import bisect
import contextlib
import functools
import gc
import heapq
import inspect
import logging
import math
import multiprocessing.connection as mpc
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..memory_model import helpers_allowance, plan_peak, worker_adjustment
from ..resource_manager import DynamicSemaphore
from ..system import MB
from . import admission as adm
from .monitor import MemoryMonitor, samples_frame
from .processes import Helpers, sigint_blocked, signal_name, terminate, without_main
from .records import Event, EventKind, FileOutcome, JobResult, Status, bounded as bounded_msg
from .worker import worker_main

#: in-process runs record outcomes and send their events this often (seconds), and read the budget
#: and the kernel's memory again this often (reading the kernel's PSS costs milliseconds)
IN_PROCESS_BATCH_S = 0.05
IN_PROCESS_ADMISSION_S = 0.5

log = logging.getLogger("oppnda_nb.pool")


@dataclass
class Task:
    """One input file in the queue (the job's own record; admission sees size/estimate/alone/...)."""

    index: int
    path: str
    size: int
    kind: str
    estimate: float = 0.0  # bytes, the latest estimate (refreshed at admission)
    attempts: int = 0
    overtaken: int = 0
    alone: bool = False  # must run alone (a retry)
    lean: bool = False
    warned: bool = False
    watchdog_retried: bool = False
    skip_reason: str | None = None
    #: why it was run again; a tuple until the first retry (no list per file: thousands of tasks of
    #: tiny files each holding one empty list make every full garbage collection longer)
    retries: list[str] | tuple[str, ...] = ()

    @property
    def key(self) -> tuple:
        return (-self.size, self.index)


@dataclass
class WorkerHandle:
    """The parent's view of one worker process."""

    proc: Any
    conn: Any
    pid: int
    current: Any  # shared int: the task id it runs (-1: none)
    started: Any  # shared float: time.monotonic() when that member started
    tasks: list = field(default_factory=list)  # unfinished members of its batch, in run order
    alone: bool = False
    base_mem: float | None = None
    ready: bool = False
    over: bool = False  # measured above its estimate by the watchdog's margin
    retiring: bool = False  # said it exits after its batch (its memory crept up): replaced, no penalty

    @property
    def task(self) -> Task | None:
        return self.tasks[0] if self.tasks else None

    @property
    def estimate(self) -> float:
        return max((t.estimate for t in self.tasks), default=0.0)

    def running_member(self) -> int:
        """Position in ``tasks`` of the member it runs (the shared id), else 0 (the first)."""
        cur = self.current.value
        for j, t in enumerate(self.tasks):
            if t.index == cur:
                return j
        return 0


@contextlib.contextmanager
def older_objects_frozen():
    """The cyclic garbage collector leaves the objects that exist now alone until the block ends
    (``gc.freeze``, undone by ``gc.unfreeze``): a run that makes thousands of small summaries
    otherwise has every full collection walk the whole interpreter's objects (the modules, numpy,
    the summaries so far), about a tenth of a run of tiny files. New objects are still collected.
    Nothing is done when the collector is off or something else froze objects (a pre-fork server)."""
    if not gc.isenabled() or gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _retries(task: "Task") -> list[str] | tuple[()]:
    """A task's retry reasons for its outcome: a list of its own, or the empty tuple (no list per file)."""
    return list(task.retries) if task.retries else ()


def accepts_lean(work: Callable) -> bool:
    """Does ``work`` take a ``lean`` keyword (or ``**kwargs``)?"""
    try:
        params = inspect.signature(work).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "lean" or p.kind is p.VAR_KEYWORD for p in params)


class Scheduler:
    """The scheduler thread's methods (mixed into Job)."""

    # -- workers ------------------------------------------------------------------------
    def _spawn_worker(self) -> WorkerHandle:
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        method = self._monitor.reader.method if self._monitor is not None else "rss"
        current = self._ctx.RawValue("q", -1)
        started = self._ctx.RawValue("d", 0.0)
        proc = self._ctx.Process(target=worker_main, name="oppnda-worker", daemon=True,
                                 args=(child_conn, self.work, self.work_args, method, self.options.warmup,
                                       current, started, self.preload))
        with self._fork_lock, without_main(), sigint_blocked():
            proc.start()
        child_conn.close()
        if self._monitor is not None:
            # a fork shares the kernel's pages: its PSS drops now, so read it in full next time
            # instead of carrying the old value forward (which would count the shared pages twice)
            self._monitor.reader.forget(self._monitor.kernel_pid)
        w = WorkerHandle(proc, parent_conn, proc.pid, current, started)
        self._pool.append(w)
        return w

    def _close_worker(self, w: WorkerHandle) -> None:
        for close in (w.conn.close, w.proc.close):
            try:
                close()
            except (OSError, ValueError):
                log.debug("closing worker %s", w.pid, exc_info=True)
        if self._monitor is not None:
            self._monitor.reader.forget(w.pid)

    def _terminate_all(self) -> None:
        """SIGTERM every worker, SIGKILL those still alive after 1 s, reap all."""
        workers, self._pool = list(self._pool), []
        terminate([w.proc for w in workers], grace=1.0)
        for w in workers:
            self._close_worker(w)

    def _shutdown_workers(self) -> None:
        """Ask idle workers to exit (None), then terminate whatever is left."""
        for w in self._pool:
            try:
                w.conn.send(None)
            except (OSError, ValueError):
                log.debug("worker %s gone before shutdown", w.pid)
        deadline = time.monotonic() + 2.0
        for w in self._pool:
            w.proc.join(max(0.0, deadline - time.monotonic()))
        self._terminate_all()

    # -- the loop -----------------------------------------------------------------------
    def _main(self) -> None:
        status = "finished"
        try:
            self._helpers = Helpers(self._ctx, self.preload)
            if self.options.monitor:
                self._monitor = MemoryMonitor(
                    lambda: [w.pid for w in self._pool], interval=self.sample_interval,
                    context=self._monitor_context, system=self._system_reading,
                    on_sample=lambda s: self._emit(EventKind.MEMORY, s.row()),
                    method=self.options.memory_method, lock=self._fork_lock, helpers=self._helpers.pids)
                self._monitor.sample()  # the kernel's baseline before any worker exists
            self._plan()
            make = getattr(self.manager, "make_semaphore", None)
            self._sem = make(self.workers) if make is not None else DynamicSemaphore(
                self.workers, eta=self.manager.eta, safety_enabled=self.manager.safety_enabled)
            if self.options.in_process:
                status = self._run_in_process()
                return
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
                self._watch()
                self._schedule()
                with self._lock:
                    busy = any(w.task is not None for w in self._pool)
                if not busy and not self._pending:
                    break
                self._poll(0.05)
        except BaseException as exc:  # noqa: BLE001 - turn any internal error into a failed result
            status = "failed"
            log.exception("internal error of the pool")
            self._warn(f"internal error of the pool: {type(exc).__name__}: {exc}")
        finally:
            try:
                self._finish(status)
            finally:
                self._events.put(None)

    def _plan(self) -> None:
        """The budget now and the predicted peak (:func:`memory_model.plan_peak`)."""
        s = self._monitor.latest if self._monitor is not None else None
        budget = self._budget_for(s)
        self.budget_mb = budget / MB
        kernel = s.kernel if s is not None else float(self.manager.base_bytes())
        estimate = self.estimate
        try:        # (one call per file: thousands of tiny files each pay only the estimate itself)
            ests = [float(estimate(t.path, t.size, False)) for t in self._pending]
        except Exception:  # noqa: BLE001 - _call_estimate logs the file's failure and falls back
            ests = [self._call_estimate(t, False) for t in self._pending]
        for t, e in zip(self._pending, ests):
            t.estimate = e
        method = self._ctx.get_start_method()
        if self.options.in_process:
            helpers, adjust = 0.0, 0.0  # no worker processes, no forkserver
        elif s is not None and s.helpers > 0:  # measured: each estimate carries its share of the pages
            helpers, adjust = s.helpers, 0.0
        else:
            helpers, adjust = helpers_allowance(ests, method), worker_adjustment(method, min(self.workers, len(ests)))
        pool_peak = plan_peak(kernel, ests, 1 if self.options.in_process else self.workers, budget,
                              idle_bytes=self.manager.overhead_mb * MB, helpers_bytes=helpers, per_worker_bytes=adjust)
        self.predicted_peak_mb = adm.capped_peak(pool_peak, budget, self.options.planned_peak_bytes) / MB
        top = heapq.nlargest(2, ests)
        if len(top) == 2 and self.workers > 1 and kernel + top[0] + top[1] > budget:
            self._warn(f"the largest file(s) need most of the {budget / MB:.0f} MB budget: large files will run "
                       "one at a time")

    def _schedule(self) -> None:
        """Start as many files as the rule allows (:mod:`.admission`)."""
        with self._lock:
            while self._pending and not self._stop_flag.is_set():
                idle = [w for w in self._pool if w.task is None and not w.retiring]
                if not idle:
                    return
                busy = [w for w in self._pool if w.task is not None]
                if any(w.alone for w in busy):
                    return  # a file running alone: nothing starts next to it
                if any(w.over for w in busy):
                    return  # the watchdog: a worker is above its estimate; wait until it ends
                if not self._sem.acquire(blocking=False):
                    return
                budget, committed, kernel, measured = self._admission_state()
                w = min(idle, key=lambda x: measured.get(x.pid, 0.0))
                m_w = measured.get(w.pid, 0.0)
                choice = adm.choose(self._pending, budget=budget, committed=committed, m_w=m_w,
                                    running=len(busy), kernel=kernel, max_overtakes=self.options.max_overtakes,
                                    estimate=lambda t: self._admission_estimate(t, kernel, budget))
                t = self._pending[choice.index] if choice is not None else None
                dropped = bool(self._to_skip)
                self._drop_oversize()
                if t is None:
                    self._sem.release()
                    if dropped:
                        continue  # the queue changed: look again
                    return
                if choice.overtook and self._pending and self._pending[0] is not t:
                    self._pending[0].overtaken += 1
                self._pending.remove(t)
                batch = [t]
                o = self.options
                if not choice.alone and adm.batchable(t, t.estimate, enabled=o.batch, batch_file_bytes=o.batch_file_bytes,
                                                      workers=self._target, budget=budget, kernel=kernel):
                    n = adm.batch_size(adm.small_pending(self._pending, o.batch_file_bytes), self._target,
                                       max(1, o.batch_max_files))
                    if n > 1:
                        take = adm.take_small(self._pending, t.size, t.estimate, n, batch_file_bytes=o.batch_file_bytes,
                                              batch_max_bytes=o.batch_max_bytes, estimate=self._fresh_estimate)
                        batch += [self._pending[j] for j in take]
                        for j in take:  # descending positions near the end: cheap deletes
                            del self._pending[j]
                self._assign(w, batch, choice.alone, choice.over_budget)

    def _fresh_estimate(self, t) -> float:
        """A batch member's estimate now (the model may have learned since the plan), kept on the task."""
        t.estimate = self._call_estimate(t, False)
        return t.estimate

    def _drop_oversize(self) -> None:
        """Take the files the oversize policy skips out of the queue (outcome: skipped + reason)."""
        drop, self._to_skip = self._to_skip, []
        for t in drop:
            if t not in self._pending:
                continue
            self._pending.remove(t)
            self._outcomes[t.index] = FileOutcome(t.path, t.size, Status.SKIPPED, t.skip_reason,
                                                  report_type=t.kind, estimate_mb=t.estimate / MB)
            self._bytes_done += t.size
            self._warn(t.skip_reason)

    def _assign(self, w: WorkerHandle, tasks: list[Task], alone: bool, over_budget: bool) -> None:
        """Hand ``tasks`` (one file, or a batch run one after another) to the idle worker ``w``."""
        t = tasks[0]
        for x in tasks:
            x.attempts += 1
        w.tasks, w.alone, w.over = list(tasks), alone, False
        if len(tasks) > 1:
            self._batches += 1
        if over_budget and not alone:
            self._warn(f"{os.path.basename(t.path)} started above the budget because nothing else was running")
        lean_ok = self._accepts_lean
        try:
            w.conn.send([(x.index, x.path, bool(x.lean and lean_ok)) for x in tasks])
        except (OSError, BrokenPipeError):
            log.debug("worker %s is gone; _poll retries its files", w.pid)
        if self._monitor is not None:
            self._monitor.begin_file(t.index, w.pid)
        self._emit_many([Event(EventKind.FILE_STARTED, FileOutcome(
            x.path, x.size, Status.RUNNING, attempts=x.attempts, report_type=x.kind, estimate_mb=x.estimate / MB,
            worker_pid=w.pid, retries=_retries(x), lean=bool(x.lean and lean_ok))) for x in tasks])

    # -- messages from workers ----------------------------------------------------------
    def _poll(self, timeout: float) -> None:
        with self._lock:
            conns = {w.conn: w for w in self._pool}
            sentinels = {w.proc.sentinel: w for w in self._pool}
        if not conns:
            time.sleep(timeout)
            return
        ready = mpc.wait(list(conns) + list(sentinels), timeout)
        dead: list[WorkerHandle] = []
        for r in ready:
            w = conns.get(r) or sentinels.get(r)
            if w is None or w in dead:
                continue
            if not self._drain(w) or (r in sentinels and not w.proc.is_alive()):
                dead.append(w)
        for w in dead:
            self._worker_died(w)
        self._maybe_progress()

    def _drain(self, w: WorkerHandle) -> bool:
        """Handle every message waiting from ``w``; False when its pipe is broken."""
        try:
            while w.conn.poll():
                self._handle(w, w.conn.recv())
        except (EOFError, OSError):
            return False
        except Exception as exc:  # a garbled message: treat as a dead worker
            log.debug("bad message from worker %s", w.pid, exc_info=True)
            self._warn(bounded_msg(f"bad message from worker {w.pid}: {type(exc).__name__}: {exc}"))
            return False
        return True

    def _handle(self, w: WorkerHandle, msg: tuple) -> None:
        if msg[0] == "ready":
            w.base_mem, w.ready = msg[2], True
            self._startup_failures = 0
            return
        events = []
        with self._lock:
            if len(msg) > 2 and msg[2]:
                w.retiring = True  # it exits after these outcomes: nothing more is sent to it
            if w.task is None:
                return  # stale (nothing is assigned to it)
            for rec in msg[1]:
                out = self._outcome(w, *rec)
                if out is not None:
                    kind = EventKind.FILE_FINISHED if out.status == Status.PROCESSED else EventKind.FILE_FAILED
                    events.append(Event(kind, out))
            if w.task is None:
                w.alone = w.over = False
                self._sem.release()
            elif self._monitor is not None:
                self._monitor.begin_file(w.task.index, w.pid)  # the member it runs now
        self._emit_many(events)

    def _outcome(self, w: WorkerHandle, task_id: int, ok: bool, payload: Any, seconds: float,
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
            t.path, t.size, Status.PROCESSED if ok else Status.FAILED,
            reason=None if ok else str(payload), result=payload if ok else None, seconds=float(seconds),
            peak_mb=None if peak is None else peak / MB, attempts=t.attempts, report_type=t.kind,
            baseline_mb=None if baseline is None else baseline / MB,
            peak_delta_mb=None if peak_delta is None else peak_delta / MB,
            estimate_mb=t.estimate / MB, worker_pid=w.pid, retries=_retries(t),
            lean=bool(t.lean and self._accepts_lean))
        self._outcomes[t.index] = out
        self._bytes_done += t.size
        return out

    def _run_in_process(self) -> str:
        """Every pending file in this thread, in queue order, under the same admission: a file
        whose estimate does not fit next to the kernel is handled by the oversize policy.
        Outcomes are recorded and their events sent every :data:`IN_PROCESS_BATCH_S`, so thousands of
        tiny files do not each pay for the lock, the event queue and a thread switch."""
        if self._monitor is not None:
            self._monitor.start()
        self._maybe_progress(force=True)
        self._pending.reverse()                    # pop() from the end takes the queue's first file
        done: list[tuple[Task, FileOutcome]] = []
        record = admit = 0.0
        budget = kernel = math.nan
        processed, failed = Status.PROCESSED, Status.FAILED
        pid = os.getpid()
        with older_objects_frozen():
            try:
                while self._pending:
                    if self._stop_flag.is_set():
                        return "cancelled"
                    now = time.monotonic()
                    if now >= record:                  # record, tell the listeners
                        self._record_in_process(done)
                        record = now + IN_PROCESS_BATCH_S
                    if now >= admit:                   # read the budget again
                        budget, _, kernel, _ = self._admission_state()
                        admit = now + IN_PROCESS_ADMISSION_S
                    t = self._pending[-1]
                    if math.isnan(self._admission_estimate(t, kernel, budget)):
                        self._drop_oversize()
                        continue
                    self._pending.pop()
                    t.attempts += 1
                    t0 = time.perf_counter()
                    try:
                        result, ok = self.work(t.path, *self.work_args), True
                    except Exception as exc:  # noqa: BLE001 - any failure of the work fails the file
                        result, ok = bounded_msg(f"{type(exc).__name__}: {exc}"), False
                    done.append((t, FileOutcome(t.path, t.size, processed if ok else failed,
                                                reason=None if ok else str(result), result=result if ok else None,
                                                seconds=time.perf_counter() - t0, attempts=t.attempts,
                                                report_type=t.kind, estimate_mb=t.estimate / MB,
                                                worker_pid=pid)))
                return "finished"
            finally:
                self._record_in_process(done)

    def _record_in_process(self, done: list[tuple[Task, FileOutcome]]) -> None:
        """Record the outcomes of ``done`` (emptied) and send their events at once."""
        if not done:
            return
        with self._lock:
            for t, out in done:
                self._outcomes[t.index] = out
                self._bytes_done += t.size
        finished, failed = EventKind.FILE_FINISHED, EventKind.FILE_FAILED
        self._emit_many([Event(finished if out.status is Status.PROCESSED else failed, out) for _, out in done])
        done.clear()
        self._maybe_progress()

    # -- time limits and the watchdog ---------------------------------------------------
    def _watch(self) -> None:
        """Stop a worker whose file passed its time limit, or the watchdog's victim."""
        o = self.options
        now = time.monotonic()
        victims: list[tuple[WorkerHandle, str, str]] = []
        with self._lock:
            busy = [w for w in self._pool if w.task is not None]
            for w in busy:
                t = w.tasks[w.running_member()]
                limit = adm.time_limit(t.size, o.file_timeout, o.file_timeout_per_mb)
                st = w.started.value
                if limit is not None and w.current.value == t.index and st > 0 and now - st > limit:
                    victims.append((w, "timeout", f"took longer than its time limit of {limit:.0f} s; its worker "
                                                  "was stopped"))
            s = self._monitor.latest if self._monitor is not None else None
            if o.watchdog and s is not None and s.t != self._watchdog_seen and not victims:
                self._watchdog_seen = s.t
                margin_b = o.watchdog_margin_mb * MB
                rows = []
                for w in busy:
                    m = s.workers.get(w.pid)
                    w.over = m is not None and adm.over_estimate(m, w.estimate, o.watchdog_margin, margin_b)
                    exempt = o.oversize == "run-alone" and (w.task.warned or w.task.watchdog_retried)
                    if m is not None and not exempt:
                        rows.append((w.pid, w.estimate, m))
                budget = self._budget_cache[1]
                pid = adm.watchdog_victim(rows, s.total, budget, o.watchdog_margin, margin_b)
                if pid is not None:
                    w = next(x for x in busy if x.pid == pid)
                    victims.append((w, "watchdog", (
                        f"the watchdog stopped its worker: it used {s.workers[pid] / MB:.0f} MB for an estimate of "
                        f"{w.estimate / MB:.0f} MB and the pool used {s.total / MB:.0f} MB of its "
                        f"{budget / MB:.0f} MB budget")))
        for w, fate, why in victims:
            self._stop_worker(w, fate, why)

    def _take_back(self, w: WorkerHandle) -> tuple[Task | None, list[Task]]:
        """Remove ``w`` from the pool: (the member it was running, the others back in the queue)."""
        self._pool.remove(w)
        tasks, k = w.tasks, w.running_member()
        w.tasks = []
        t = tasks[k] if tasks else None
        rest = tasks[:k] + tasks[k + 1:]
        if tasks:
            self._sem.release()
            if self._monitor is not None:
                self._monitor.end_file(tasks[0].index)
        for x in rest:  # not started, or done but not reported: back to the queue, no attempt counted
            x.attempts -= 1
            self._requeue(x)
        return t, rest

    def _fail(self, t: Task, reason: str, pid: int | None) -> None:
        out = FileOutcome(t.path, t.size, Status.FAILED, reason, attempts=t.attempts, report_type=t.kind,
                          estimate_mb=t.estimate / MB, worker_pid=pid, retries=_retries(t), lean=t.lean)
        self._outcomes[t.index] = out
        self._bytes_done += t.size
        self._emit(EventKind.FILE_FAILED, out)

    def _stop_worker(self, w: WorkerHandle, fate: str, why: str) -> None:
        """Kill ``w`` now (timeout or watchdog), settle its file, start a replacement."""
        with self._lock:
            if w not in self._pool:
                return
            try:
                w.proc.kill()
                w.proc.join(1.0)
            except (OSError, ValueError):
                log.debug("killing worker %s", w.pid, exc_info=True)
            t, rest = self._take_back(w)
            self._close_worker(w)
            msg = f"worker {w.pid}: "
            if t is not None:
                name = os.path.basename(t.path)
                if fate == "timeout" or (fate == "watchdog" and t.watchdog_retried):
                    reason = why if fate == "timeout" else why + " (already on its retry alone)"
                    self._fail(t, reason, w.pid)
                    msg += f"{name} {why}; it failed"
                else:
                    t.retries = [*t.retries, bounded_msg(why)]
                    t.alone = t.watchdog_retried = True
                    t.lean = self._accepts_lean
                    self._requeue(t)
                    msg += f"{name}: {why}; retrying it alone" + (" in lean mode" if t.lean else "")
            if rest:
                msg += f"; {len(rest)} other file(s) of its batch go back to the queue"
            if self._pending and not self._stop_flag.is_set():
                self._spawn_worker()
        self._warn(msg)

    def _worker_died(self, w: WorkerHandle) -> None:
        with self._lock:
            if w not in self._pool:
                return
            w.proc.join(0.5)
            code = w.proc.exitcode
            how = signal_name(code)
            t, rest = self._take_back(w)
            self._close_worker(w)
            if w.retiring and code == 0:
                if t is not None:  # (defensive) never sent work: back to the queue, no attempt counted
                    t.attempts -= 1
                    self._requeue(t)
                if self._pending and not self._stop_flag.is_set():
                    self._spawn_worker()  # a fresh worker in its place
                return
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
                t.retries = [*t.retries, f"worker died ({how})"]
                if t.attempts <= self.options.max_retries:
                    t.alone = True
                    self._requeue(t)
                    msg += f" while processing {os.path.basename(t.path)}; retrying it alone (attempt {t.attempts + 1})"
                else:
                    reason = (f"worker died ({how}) on each of {t.attempts} attempts"
                              + (" - possibly out of memory" if code == -signal.SIGKILL else ""))
                    self._fail(t, reason, w.pid)
                    msg += f" while processing {os.path.basename(t.path)}; giving up on it after {t.attempts} attempts"
            if rest:
                msg += f"; {len(rest)} other file(s) of its batch go back to the queue"
            msg += f"; the pool continues with {self._target} worker(s)"
            while len(self._pool) < self._target and self._pending and not self._stop_flag.is_set():
                self._spawn_worker()
        self._warn(msg)

    def _requeue(self, t: Task) -> None:
        """Put ``t`` back into the queue at its place (size order)."""
        keys = [x.key for x in self._pending]
        self._pending.insert(bisect.bisect(keys, t.key), t)

    # -- the end ------------------------------------------------------------------------
    def _finish(self, status: str) -> None:
        with self._lock:
            running = [w for w in self._pool if w.task is not None]
        if status != "finished":
            self._terminate_all()
        else:
            self._shutdown_workers()
        if self._helpers is not None:
            self._helpers.release()
        with self._lock:
            reason = "stopped by the user" if status == "cancelled" else "the pool failed"
            if self._interrupted:
                reason = f"interrupted ({self._interrupted})"
            # a pool that cannot start workers fails the files it could not run; a stopped pool cancels them
            left = Status.FAILED if self._fatal is not None else Status.CANCELLED
            if self._fatal is not None:
                reason = self._fatal
            for w in running:
                for j, t in enumerate(w.tasks):  # the running file, then the batch members not started
                    if t.index not in self._outcomes:
                        why = reason + " (while running)" if j == 0 else reason
                        self._outcomes[t.index] = FileOutcome(t.path, t.size, left, why, report_type=t.kind,
                                                              attempts=t.attempts if j == 0 else t.attempts - 1,
                                                              retries=_retries(t))
            for t in self._pending:
                if t.index not in self._outcomes:
                    self._outcomes[t.index] = FileOutcome(t.path, t.size, left, reason, attempts=t.attempts,
                                                          report_type=t.kind, retries=_retries(t))
            for t in self._tasks:  # defensive: nothing may be lost
                if t.index not in self._outcomes:
                    log.error("the pool lost %s (bug)", t.path)
                    self._outcomes[t.index] = FileOutcome(
                        t.path, t.size, Status.CANCELLED if status != "finished" else Status.FAILED,
                        "lost by the pool (bug)", attempts=t.attempts, report_type=t.kind)
            self._pending = []
            self._tasks = []   # every outcome is recorded: the queue's records are not needed any more
        if self._monitor is not None:
            self._monitor.stop()
            self.warnings.extend(f"monitor: {e}" for e in self._monitor.errors)
        self._t_end = time.monotonic()
        total_inputs = len(self.inputs)
        if self._interrupted:
            self.warnings.append(f"interrupted by {self._interrupted}: unfinished files are cancelled")
        self.result = JobResult(
            outcomes=[self._outcomes[i] for i in range(total_inputs)],
            # a DataFrame when first read (from the monitor, not the job: a finished job nobody refers
            # to is freed at once, no reference cycle)
            memory=self._monitor.frame if self._monitor is not None else functools.partial(samples_frame, []),
            warnings=list(self.warnings),
            workers=self.workers,
            budget_mb=self.budget_mb,
            predicted_peak_mb=self.predicted_peak_mb,
            measured_peak_mb=self._monitor.peak_total / MB if self._monitor is not None else math.nan,
            elapsed_s=self._t_end - (self._t0 or self._t_end),
            status=status,
            inputs=list(self.inputs),
            memory_method=self._monitor.reader.method if self._monitor is not None else "",
            workers_final=self._target,
        )
        self._maybe_progress(force=True)
        self._emit(EventKind.DONE, self.result)
