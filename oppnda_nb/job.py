"""The one pipeline: select → plan → schedule → summarise → aggregate → write.

A :class:`Run` is what every face drives: ``python -m oppnda_nb run|average|demo``, the magic,
the panel, and the Dask backend (which only swaps the scheduler). It selects the files
(OppNDA's rules, name pattern), plans with the one memory model (per report type, learned),
schedules :func:`averaging.summarize_file` on each in the memory-aware pool, then groups and
averages the summaries and writes the outputs. Whatever happens, the processed files are kept:
a stopped or partly failed run still averages and writes what was done, says so in its summary
and in ``run.json`` in the output folder, and :attr:`RunResult.exit_code` says it the same way on
every path (0 all processed, 1 some failed or cancelled; usage errors raise OppndaError = 2).

Only one run is active at a time per kernel (:func:`current_run`), so a run started from the
magic is visible in the panel and the other way round.
"""
from __future__ import annotations

import functools
import itertools
import logging
import math
import os
import sys
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from . import __version__, averaging, memory_model, pool, reports
from .averaging import sample_folder
from .errors import OppndaError
from .lazy import OnFirstRead
from .memory_model import (WORKER_REFERENCE_BYTES, MemoryModel, TypeModel, helpers_allowance,
                           kernel_sharing_allowance, plan_peak, worker_adjustment)
from .averaging.writers import OutputFolder
from .background import Background
from .cache import FILENAME, RecentSummaries, SummaryCache, run_key, settled_limit, stat_keys, version_key
from .pool import Event, EventKind, JobResult
from .pool.scheduler import older_objects_frozen
from .resource_manager import ResourceManager
from .system import MB

log = logging.getLogger("oppnda_nb.job")

#: learned memory models are kept per parser version and model shape (a new one invalidates them)
_STORE_KEY = f"oppnda_nb-{__version__}-fastpaths3"  # bumped when the readers' memory changes
#: a run stores the summaries it parsed in the cache as they come: every this many files ...
STORE_BATCH = 16384
#: ... or every this many seconds, whichever comes first (and the rest when the pool is done)
STORE_EVERY_S = 2.0
#: the in-process path: key:value files up to this size each, this much in all
IN_PROCESS_FILE_BYTES = 256 * 1024
IN_PROCESS_TOTAL_BYTES = 32 * MB
#: kernel memory per file summary held until averaging: a summary of numbers is under 1 KB pickled, a
#: snapshot report's (one point per snapshot) under 30 KB; a histogram's or a time series' is a
#: DataFrame (~24 KB even when tiny: the kernel grew 35 MB holding the 1,584 curve summaries of the
#: sample 12x) that grows with its file: 0.9-1.1x the file's size pickled on the shared corpora
#: (a 0.6 MB MessageDeliveryReport -> 0.7 MB), up to 2x in memory
RESULT_BYTES = 4 * 1024
SNAPSHOT_RESULT_BYTES = 64 * 1024
CURVE_BASE_BYTES = 24 * 1024
CURVE_HELD_FACTOR = 2.0
CURVE_KINDS = frozenset({"histogram", "timeseries"})
#: averaging the curves (union of bins, common grids, averaged frames) needs up to this many times the
#: held curves on top (measured: sweep +31 MB for 15 MB of summaries; the sample 12x: +20 MB for 32 MB)
AVERAGING_FACTOR = 2.0
#: what importing pandas adds to the kernel, if it has not imported it yet (a run imports it to read
#: the summaries and to average): PSS +45 MB measured alone; next to a pool, whose processes map the
#: same libraries (PSS splits shared pages among them), the whole tree's PSS grows +30.6 to +30.9 MB
#: when a curve summary arrives (a forkserver and 1 or 2 idle workers)
PANDAS_BYTES = 48 * MB
PANDAS_NEXT_TO_POOL_BYTES = 33 * MB
#: what each worker imports once (in the forkserver): the per-file work, the parsers and pandas
WORKER_MODULES = ["oppnda_nb.averaging.summarize", "oppnda_nb.reports.registry", "oppnda_nb.reports.api"]
#: the largest averages an unchanged re-run reuses (kept in the summary cache; above this they are
#: computed again from the cached per-file summaries: the shared sweep's are 29 MB pickled)
REUSE_MAX_BYTES = 8 * MB
#: the event a Run sends its listeners when everything is written (after the pool's own events)
RUN_DONE = "run_done"
#: the event a Run sends when its phase changes after the pool's (data: "averaging" or "writing")
PHASE = "phase"

_current: "Run | None" = None
_current_lock = threading.Lock()
#: the summaries of the last run that used the cache, while its result lives (cache.RecentSummaries)
_recent: Callable[[], "RecentSummaries | None"] = lambda: None

#: exit codes of every command (README "Exit codes")
EXIT_OK, EXIT_INCOMPLETE, EXIT_USAGE = 0, 1, 2


def current_run() -> "Run | None":
    """The run that is active, or the last one started in this process."""
    return _current


def default_output(folder: Path) -> Path:
    """``<folder>/averaged`` — or ``./oppnda-output`` for the bundled sample (inside the package)."""
    folder = Path(folder).resolve()
    if folder == sample_folder().resolve():
        return Path.cwd() / "oppnda-output"
    return folder / "averaged"


@functools.lru_cache(maxsize=1 << 16)
def kind_of(path: str) -> str:
    """The report type of a file from its name (the memory model's key), "unknown" if not given.
    (Asked several times per file by the plan, the pool and the outputs: remembered.)"""
    return reports.report_type_from_name(path) or reports.UNKNOWN


def observed_peak(outcome) -> float | None:
    """What a finished file teaches the memory model, in bytes: a reference worker
    (:data:`memory_model.WORKER_REFERENCE_BYTES`) plus the file's own rise above its worker's
    baseline, so it does not depend on the start method or on how many workers share pages; the
    worker's whole peak when no baseline was measured; None when nothing was measured."""
    if outcome.peak_delta_mb is not None and math.isfinite(outcome.peak_delta_mb):
        return WORKER_REFERENCE_BYTES + max(0.0, outcome.peak_delta_mb) * MB
    if outcome.peak_mb is not None and math.isfinite(outcome.peak_mb):
        return outcome.peak_mb * MB
    return None


def install_priors(manager: ResourceManager) -> MemoryModel:
    """Give the manager's memory model the measured per-type priors (once) and the learned store."""
    model = manager.model
    if not model.priors:
        model.priors = {t: TypeModel(g, o, "prior", chunk, ramp)
                        for t, (g, o, chunk, ramp) in reports.memory_priors().items()}
    return model


# ---------------------------------------------------------------------------------- plan

@dataclass
class Plan:
    """What a run would do with these files: estimates per file, workers, budget, predicted peak."""

    files: list[str]
    skipped: list[tuple[str, str]]
    sizes: list[int]
    kinds: list[str]
    estimates: list[float]  # bytes, one worker's peak per file (the memory model)
    workers: int
    budget_bytes: float
    kernel_bytes: float
    predicted_peak_bytes: float
    warnings: list[str] = field(default_factory=list)
    after_pool_bytes: float = 0.0  # the part of the prediction after the pool: averaging the summaries
    held_bytes: float = 0.0  # what the kernel comes to hold while the pool runs (summaries, pandas)
    kernel_shared_bytes: float = 0.0  # what the kernel's PSS falls by while the pool's processes run

    @property
    def largest_bytes(self) -> int:
        return max(self.sizes, default=0)

    def text(self) -> str:
        """The one-line recommendation the panel and ``status`` show."""
        return (f"recommended workers {self.workers} · budget {self.budget_bytes / MB:,.0f} MB · largest file "
                f"{self.largest_bytes / MB:,.1f} MB · predicted peak {self.predicted_peak_bytes / MB:,.0f} MB")


def _sizes(files: Sequence[str]) -> list[int]:
    out = []
    for p in files:
        try:
            out.append(os.stat(p).st_size)
        except OSError:
            out.append(0)  # a vanished file is reported by the pool
    return out


def in_process_pays(files: Sequence[str], stat: dict[str, tuple[int, int]]) -> bool:
    """Is the work so small that worker processes cost more than they save? Only key:value
    reports (no pandas needed to parse them), each at most IN_PROCESS_FILE_BYTES, together at
    most IN_PROCESS_TOTAL_BYTES: parsing them here takes about a second, memory-safe by
    construction (one tiny file at a time next to the kernel)."""
    total = 0
    for p in files:
        size = stat.get(p, (IN_PROCESS_FILE_BYTES + 1,))[0]
        if size > IN_PROCESS_FILE_BYTES or reports.KIND_OF.get(kind_of(p)) != "keyvalue":
            return False
        total += size
    return total <= IN_PROCESS_TOTAL_BYTES


def plan(files: Sequence[str], manager: ResourceManager, *, skipped: Sequence[tuple[str, str]] = (),
         sizes: Sequence[int] | None = None, kinds: Sequence[str] | None = None,
         workers: int | None = None, in_process: bool = False, start_method: str | None = None,
         cached: Sequence[tuple[int, str]] = (), local_pool: bool = False) -> Plan:
    """P_opt and the predicted peak of the spec, with the one memory model's per-file estimates.

    ``sizes``/``kinds`` may be given when already known (the panel keeps a folder's scan and
    re-plans on every slider move without touching the disk). ``cached``: (size, kind) of the files
    whose summaries come from the cache (no work, but the kernel holds and averages them too).
    ``local_pool``: the files run on a :class:`Run`'s local pool, whose admission reserves the kernel's
    planned growth from the start, next to a kernel where nothing imports pandas before the first
    curve summary arrives (a face that draws while the pool runs imports it before: see
    ``Run._replan_if_pandas_arrived``).
    """
    model = install_priors(manager)
    files = list(files)
    sizes = list(sizes) if sizes is not None else _sizes(files)
    kinds = list(kinds) if kinds is not None else [kind_of(p) for p in files]
    estimates = [model.estimate(k, s) for k, s in zip(kinds, sizes)]
    p_opt = manager.get_optimal_workers(file_paths=files, file_sizes=sizes, estimates=estimates) if files else 1
    warnings = list(manager.warnings)
    if workers is not None:
        p_opt = max(1, int(workers))
    kernel = manager.base_bytes()
    budget = manager.budget_bytes(kernel)
    # the kernel keeps every file's summary until it averages (and imports pandas for them, if it has
    # not yet); then averaging the curves needs up to AVERAGING_FACTOR times their size on top
    all_sizes = sizes + [size for size, _ in cached]
    kinds_of = [reports.KIND_OF.get(k) for k in kinds + [kind for _, kind in cached]]
    curves = sum(CURVE_HELD_FACTOR * size for k, size in zip(kinds_of, all_sizes) if k in CURVE_KINDS)
    objects = sum(CURVE_BASE_BYTES if k in CURVE_KINDS else SNAPSHOT_RESULT_BYTES if k == "snapshot"
                  else RESULT_BYTES for k in kinds_of)
    pandas = (0.0 if not kinds_of or "pandas" in sys.modules
              else PANDAS_BYTES if in_process else PANDAS_NEXT_TO_POOL_BYTES)
    held = objects + curves + pandas
    method = start_method or pool.default_start_method()
    adjust = 0.0 if in_process else worker_adjustment(method, min(p_opt, len(estimates)))
    shared = (0.0 if in_process or not estimates
              else kernel_sharing_allowance(method, manager.shared_with_others_bytes()))

    def pool_phase(kernel_and_held: float, ests: list[float], workers: int = p_opt) -> float:
        # the kernel shares pages with the pool's processes while they run; the local pool admits files
        # next to the kernel's planned growth (PoolOptions.kernel_reserve_bytes)
        return plan_peak(kernel_and_held - shared, ests, workers, budget, idle_bytes=manager.overhead_mb * MB,
                         helpers_bytes=0.0 if in_process else helpers_allowance(estimates, method),
                         per_worker_bytes=adjust, admitted_bytes=kernel + held if local_pool else kernel_and_held)

    # on the local pool the kernel imports pandas when the first curve summary arrives (unpickling its
    # frame), so the files run next to the bare kernel until one curve file is done (any one: the
    # smallest is taken out, the bound for the rest); the worker that ran it stays, idle, until the end
    pandas_waits = bool(pandas) and local_pool
    pool_peak = pool_phase(kernel + held - (pandas if pandas_waits else 0.0), estimates)
    if pandas_waits:
        curve_files = [i for i, k in enumerate(kinds) if k in reports.CURVE_TYPES]
        if curve_files:
            first = min(curve_files, key=estimates.__getitem__)
            rest = estimates[:first] + estimates[first + 1:]
            done_worker = WORKER_REFERENCE_BYTES + adjust if len(estimates) <= p_opt else 0.0
            pool_peak = max(pool_peak, pool_phase(kernel + held, rest) + done_worker)
    if local_pool and not in_process and estimates:
        # the local pool starts a file next to others only if everything then fits the budget (the
        # kernel's planned growth reserved, helpers and workers measured, each running file at its
        # estimate), so the pool stays under the budget unless one file alone passes it (it still runs)
        pool_peak = min(pool_peak, max(budget, pool_phase(kernel + held, estimates, workers=1)))
    after = kernel + held + AVERAGING_FACTOR * curves
    return Plan(files, list(skipped), sizes, kinds, estimates, p_opt, budget, kernel, max(pool_peak, after),
                warnings, after, held, shared)


def plan_folder(folder=None, manager: ResourceManager | None = None, *, config: Any = None,
                pattern: Any = None) -> Plan:
    """:func:`plan` for the files a run of ``folder`` would take (same selection as :class:`Run`, on
    the local pool)."""
    cfg = averaging.prepare_config(config, pattern, None)
    in_dir = cfg.resolve_folder(folder if folder is not None or cfg.folder is not None else sample_folder())
    files, skipped = averaging.select_files(in_dir, cfg)
    return plan(files, manager or ResourceManager(), skipped=skipped, local_pool=True)


# ---------------------------------------------------------------------------------- result

@dataclass
class RunResult:
    """Everything a run produced: the pool's accounting and memory, the averages, the files."""

    job: JobResult
    averaged: Any  # averaging.AverageResult
    output_dir: Path
    written: list[Path] = field(default_factory=list)
    error: str | None = None
    #: DataFrame: the pool's samples, then the kernel's while averaging (built when first read)
    memory: Any = OnFirstRead()
    plan: Plan | None = None
    reused: bool = False  # the inputs were unchanged since a complete run: its averages were reused
    #: what the next run in this process may take instead of loading it from the cache
    _recent: Any = field(default=None, init=False, repr=False, compare=False)

    @property
    def status(self) -> str:
        """"finished", "cancelled" or "failed" (the pool's verdict, or failed averaging)."""
        return "failed" if self.error else str(self.job.status)

    @property
    def exit_code(self) -> int:
        """0: every file processed (or skipped by the selection); 1: some failed or cancelled."""
        counts = self.job.counts
        complete = self.status == "finished" and not counts.get("failed") and not counts.get("cancelled")
        return EXIT_OK if complete else EXIT_INCOMPLETE

    @property
    def tables(self) -> dict:
        """One averaged DataFrame per strategy (parameters, report_type, <metric>_mean/_std/_n/_ci95)."""
        return self.averaged.tables if self.averaged is not None else {}

    @property
    def long(self):
        """Tidy long-format statistics (one row per group and metric)."""
        return self.averaged.long if self.averaged is not None else None

    @property
    def outcomes(self):
        """One pool.FileOutcome per input file."""
        return self.job.outcomes

    def outcomes_frame(self):
        """Per-file outcomes as a DataFrame (file, status, reason, size, seconds, peak, attempts, path)."""
        import pandas as pd

        return pd.DataFrame([
            {"file": os.path.basename(o.path), "status": str(o.status), "reason": o.reason,
             "size_mb": o.size / MB, "seconds": o.seconds, "peak_mb": o.peak_mb, "attempts": o.attempts,
             "path": o.path}
            for o in self.job.outcomes
        ])

    def summary_dict(self) -> dict:
        """The accounting as plain data (``--summary-json`` and ``run.json`` write it)."""
        data = self.job.to_summary_dict()
        data["status"] = self.status
        data["exit_code"] = self.exit_code
        data["partial"] = self.exit_code != EXIT_OK
        data["output_dir"] = str(self.output_dir)
        data["written"] = len(self.written)
        data["cancelled_files"] = ([o.path for o in self.job.outcomes if str(o.status) == "cancelled"]
                                   if self.job.counts["cancelled"] else [])
        data["reused_averages"] = self.reused
        if self.plan is not None:
            data["planned_peak_mb"] = self.plan.predicted_peak_bytes / MB
        if self.error:
            data["averaging_error"] = self.error
        return data

    def summary(self) -> str:
        lines = [self.job.summary()]
        if self.reused:
            lines.append("inputs unchanged since the last complete run with these settings: its averages "
                         "were reused (--no-cache to recompute)")
        if self.averaged is not None:
            lines += self.averaged.summary_lines()
        if self.error:
            lines.append(f"averaging failed: {self.error}")
        if self.exit_code != EXIT_OK:
            lines.append(f"partial results ({self.status}): the outputs hold only the processed files; "
                         f"see {self.output_dir / 'run.json'}")
        lines.append(f"outputs: {self.output_dir}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()


# ---------------------------------------------------------------------------------- run

class Run(Background):
    """A folder of reports processed through the memory-aware pool, then averaged and written.
    (``wait()`` and ``run()``: :class:`~oppnda_nb.background.Background`; Ctrl-C, and SIGTERM in the
    CLI, stop the run and return the partial result.)

    ``folder`` defaults to the config's folder, or the bundled sample. ``config``: an OppNDA
    averager JSON path or dict (None: ONE's standard naming); ``pattern`` and ``group_by``
    override it. ``manager``: a ResourceManager (default: the spec's defaults). ``output``
    defaults to :func:`default_output`. ``csv`` also writes the tables as CSV. ``learn``:
    measured worker peaks update the memory model during the run and are kept for the next
    runs (:func:`memory_model.save_learned`). ``oversize``: what to do with a file that does not fit the budget
    even alone and streamed in lean mode: "skip" (default) or "run-alone". ``file_timeout``:
    seconds per file (None: the pool's default, generous and scaled by size). ``write=False``
    keeps everything in memory (tables, curves) and touches no output folder. ``cache``: each
    file's summary is kept in a SQLite cache (``True``: in :func:`memory_model.cache_dir`; a
    folder: there; ``False``: off), so a re-run parses only new or changed files; when nothing changed
    (same files, sizes, mtimes, config) since a complete run, its averages are reused and the
    per-file summaries are loaded only if asked for (``result.job.results``).
    ``scheduler``: a Dask ``Client`` or scheduler address: the files are summarised on that
    cluster (:mod:`dask_backend`) instead of the local pool; everything else is the same.
    ``workers=0`` (or, by default, work that is safely tiny: see :func:`in_process_pays`) runs the
    files in this process, under the same admission, without starting workers.
    """

    _what = "the run"

    # (a run of thousands of files makes tens of thousands of small objects while it prepares and
    # averages: no full collection walks the kernel's older ones meanwhile; ~70 ms per re-run of 21,450)
    @older_objects_frozen()
    def __init__(self, folder=None, *, config: Any = None, pattern: Any = None, group_by: Any = None,
                 manager: ResourceManager | None = None, output=None, workers: int | None = None,
                 start_method: str | None = None, csv: bool = True, sample_interval: float = 0.2,
                 learn: bool = True, oversize: str = "skip", file_timeout: float | None = None,
                 write: bool = True, cache: bool | str | os.PathLike = True, scheduler: Any = None):
        self.config = averaging.prepare_config(config, pattern, group_by)
        if folder is None and self.config.folder is None:
            folder = sample_folder()
        self.folder = self.config.resolve_folder(folder)
        self._params: dict[str, dict[str, str]] = {}
        self.files, self.skipped = averaging.select_files(self.folder, self.config, params=self._params)
        if not self.files:
            why = (f" ({len(self.skipped)} skipped, e.g. {os.path.basename(self.skipped[0][0])}: "
                   f"{self.skipped[0][1]})" if self.skipped else "")
            raise OppndaError(f"No matching report files in {self.folder}{why}. Check the folder, the name "
                              "pattern and the config's file filter.")
        self.write = bool(write)
        self.output = OutputFolder(Path(output) if output is not None else default_output(self.folder))
        self.manager = manager if manager is not None else ResourceManager()
        self.learn = bool(learn)
        if self.learn:
            memory_model.load_learned(self.manager.model, _STORE_KEY)
        self.csv = csv
        settings = self.config.settings()
        self.cache = None if cache is False else SummaryCache(None if cache is True else Path(cache) / FILENAME,
                                                              version=version_key(settings))
        keys = stat_keys(self.files)
        paths, sizes, mtimes = zip(*keys) if keys else ((), (), ())
        self._stat = dict(zip(paths, zip(sizes, mtimes)))
        self._read_started_ns = time.time_ns()
        # summaries go to the cache while the run proceeds (a kernel that dies at 90 % keeps them)
        self._to_store: list[tuple[str, int, int, Any]] = []
        self._offered: set[str] = set()
        self._stored = 0
        self._store_lock = threading.Lock()
        self._next_store = time.monotonic() + STORE_EVERY_S
        # an unchanged input (same files, sizes, mtimes, settings, config): the last complete run's
        # averages are reused and the per-file summaries are loaded only if asked for (JobResult.results)
        self._run_key = self._memo = None
        if self.cache is not None and len(keys) == len(self.files):  # (none vanished: keys in file order)
            self._run_key = run_key(self.cache.version, keys, (self.config, self.skipped))
            self._memo = self.cache.get_run(self._run_key)
        if self.write:
            self.output.check(self._planned_outputs, self.files, input_folders=[self.folder])
        recent = _recent() if self.cache is not None else None  # (the last result's summaries, if held)
        self._recent = None
        if self._memo is not None:  # (then every file has its stat, in file order)
            self.cached = {}
            done = list(zip(self.files, itertools.repeat(None), sizes))
            todo, cached = [], list(zip(sizes, map(kind_of, self.files)))
            if recent is not None and recent.version == self.cache.version and self.files[0] in recent.entries:
                self._recent = recent  # (passed on: its summaries are of these files)
        else:
            self.cached = _summaries(self.cache, recent, keys) if self.cache is not None else {}
            done = [(p, self.cached[p], self._stat[p][0]) for p in self.files if p in self.cached]
            todo = [p for p in self.files if p not in self.cached]
            cached = [(self._stat[p][0], kind_of(p)) for p in self.files if p in self.cached]
        local = scheduler is None or self._memo is not None
        in_process = local and (workers == 0 or (workers is None and in_process_pays(todo, self._stat)))
        self._plan_inputs = dict(
            files=todo, skipped=self.skipped, sizes=[self._stat.get(p, (0,))[0] for p in todo],
            workers=1 if in_process else workers, in_process=in_process, start_method=start_method,
            cached=cached, local_pool=local)
        self.plan = plan(manager=self.manager, **self._plan_inputs)
        self._planned_without_pandas = "pandas" not in sys.modules
        options = dict(workers=self.plan.workers, start_method=start_method, sample_interval=sample_interval,
                       oversize=oversize, in_process=in_process, **self._planned_options(local))
        if file_timeout is not None:
            options["file_timeout"] = file_timeout
        if local:
            make = pool.Job
        else:  # (imported for a Dask run only: it is not needed otherwise)
            from . import dask_backend

            make = functools.partial(dask_backend.DaskJob, client=scheduler)
        self.job = make(todo, averaging.summarize_file, (settings,), self.manager, skipped=self.skipped,
                        done=done, estimate=functools.partial(_estimate, self.manager.model), kind_of=kind_of,
                        preload=WORKER_MODULES,
                        sizes={p: self._stat[p][0] for p in todo if p in self._stat}, **options)
        self.result: RunResult | None = None
        self._listeners: list[Callable] = []
        self._thread: threading.Thread | None = None
        self._done = threading.Event()
        self._phase_monitor = None
        self.job.add_listener(_weakly(self._on_event))  # the job does not keep the run alive

    def _planned_options(self, local: bool) -> dict[str, float]:
        """What the pool takes from the plan: the predicted peak and, on the local pool (which admits
        files next to the kernel; Dask's workers are on their own), the kernel's planned growth."""
        options = {"planned_peak_bytes": self.plan.predicted_peak_bytes}
        if local:
            options["kernel_reserve_bytes"] = self.plan.kernel_bytes + self.plan.held_bytes
        return options

    def _replan_if_pandas_arrived(self) -> None:
        """A face that imported pandas after the plan (to draw while the pool runs) has it in the
        kernel next to the pool, which the plan did not count: plan again with it there."""
        if not (self._planned_without_pandas and "pandas" in sys.modules):
            return
        self._planned_without_pandas = False
        self.plan = plan(manager=self.manager, **self._plan_inputs)
        if isinstance(self.job, pool.Job):
            self.job.options = self.job.options.with_overrides(**self._planned_options(True))

    @property
    def output_dir(self) -> Path:
        return self.output.path

    def _planned_outputs(self) -> list[str]:
        """The names this run would write, from the file names alone (checked before any work)."""
        if self._memo is not None:
            return [g.output_name for g in self._memo.groups] + ["run.json", "csv"]
        return averaging.planned_output_names(self.files, self._params, kind_of, self.config) + ["run.json", "csv"]

    # -- events ------------------------------------------------------------------------
    def add_listener(self, callback: Callable) -> None:
        """``callback(event)`` for every pool event, then one ``Event(RUN_DONE, RunResult)``."""
        self._listeners.append(callback)

    def _on_event(self, event: Event) -> None:
        if event.kind == EventKind.FILE_FINISHED:
            if self.learn:
                peak = observed_peak(event.data)
                if peak is not None:
                    self.manager.model.observe(event.data.report_type, event.data.size, peak)
            self._keep(event.data)
        self._forward(event)

    def _keep(self, outcome) -> None:
        """Queue a freshly parsed summary for the cache; store the queue every STORE_BATCH files or
        STORE_EVERY_S seconds (the listener runs in the pool's event thread, not the scheduler's)."""
        if self.cache is None or self._memo is not None or not self._fresh(outcome):
            return
        with self._store_lock:
            self._to_store.append((outcome.path, *self._stat[outcome.path], outcome.result))
            due = len(self._to_store) >= STORE_BATCH or time.monotonic() >= self._next_store
        if due:
            self._flush_store()

    def _fresh(self, outcome) -> bool:
        """Was this file parsed by this run (not taken from the cache), with a stat to key it by?"""
        return str(outcome.status) == "processed" and outcome.reason != pool.CACHED and outcome.path in self._stat

    def _flush_store(self) -> None:
        with self._store_lock:
            items, self._to_store = self._to_store, []
            self._next_store = time.monotonic() + STORE_EVERY_S
            if items:
                self._offered.update(i[0] for i in items)
                self._stored += self.cache.put_many(items, read_started_ns=self._read_started_ns)

    def _forward(self, event: Event) -> None:
        for cb in list(self._listeners):
            try:
                cb(event)
            except Exception:  # a broken listener must not break the run
                log.exception("a run listener failed on %s", event.kind)

    def memory_frame(self):
        """The memory samples so far: the pool's, then the kernel's while it averages."""
        return _memory_frame(self.job, self._phase_monitor)

    # -- control -----------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None and not self._done.is_set()

    @property
    def progress(self):
        return self.job.progress

    def start(self) -> "Run":
        """Start in the background (the kernel stays free); one run at a time."""
        global _current
        with _current_lock:
            if _current is not None and _current is not self and _current.running:
                raise OppndaError("A run is in progress: wait for it, or stop it (%oppnda stop / the panel's Stop).")
            if self._thread is not None:
                raise OppndaError("This run was already started; create a new Run to run again.")
            if self.write:
                self.output.lock()
            self._replan_if_pandas_arrived()
            _current = self
            self._thread = threading.Thread(target=self._main, name="oppnda-run", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Start no new file, terminate the workers; what was processed is still averaged."""
        self.job.stop(wait=False)

    # -- the work ----------------------------------------------------------------------
    def _watch_averaging(self, job_result: JobResult):
        """Keep sampling the kernel while it averages (big sweeps make that phase heavy too)."""
        t_end = self.job.memory_end()
        budget = job_result.budget_mb * MB
        monitor = pool.MemoryMonitor(lambda: [], interval=self.job.sample_interval,
                                     context=lambda s: (budget, float("nan"), 0))
        return monitor.start(t0=time.monotonic() - t_end)

    def _store(self, job_result: JobResult) -> bool:
        """Keep what was parsed (never failed files: they are tried again next time); True if every
        processed file's summary is now in the cache."""
        if self.cache is None or self._memo is not None:
            return False
        self._flush_store()
        fresh = [o for o in job_result.outcomes if self._fresh(o)]
        missed = [(o.path, *self._stat[o.path], o.result) for o in fresh if o.path not in self._offered]
        if missed:  # (an engine that did not send every file's event)
            self._offered.update(i[0] for i in missed)
            self._stored += self.cache.put_many(missed, read_started_ns=self._read_started_ns)
        return self._stored == len(fresh)

    def _averages(self, job_result: JobResult):
        """The averages: the reused ones of an up-to-date re-run, else from the per-file summaries."""
        if self._memo is not None:
            self._memo.workers = job_result.workers
            return self._memo
        averaged = averaging.aggregate(job_result.results, self.config)
        averaged.errors = [(o.path, o.reason or "") for o in job_result.outcomes if str(o.status) == "failed"]
        averaged.skipped = list(self.skipped)
        averaged.folder = self.folder
        averaged.workers = job_result.workers
        averaged.warnings.extend(f"{os.path.basename(s.path)}: {w}" for s in job_result.results for w in s.warnings)
        if str(job_result.status) == "cancelled":
            averaged.warnings.append(
                f"partial results: the run was stopped, {job_result.counts['cancelled']} file(s) cancelled")
        return averaged

    @older_objects_frozen()
    def _aggregate_and_write(self, job_result: JobResult, t0: float):
        self._forward(Event(PHASE, "averaging"))
        averaged = self._averages(job_result)
        written: list[Path] = []
        if self.write:
            self._forward(Event(PHASE, "writing"))
            written = list(averaged.write_oppnda(self.output_dir, protect=self.files))  # (a copy: CSVs are added)
            if self.csv:
                written += averaged.to_csv(self.output_dir / "csv")
        averaged.seconds = time.perf_counter() - t0
        return averaged, written

    def _keep_recent(self, job_result: JobResult) -> None:
        """The result keeps its summaries for the next run (:class:`cache.RecentSummaries`): those of
        files not modified just before they were read (the cache's own rule); a reused run keeps the
        ones it was given."""
        global _recent
        if self.cache is None:
            return
        recent = self._recent
        if self._memo is None:
            limit, stat, entries = settled_limit(self._read_started_ns), self._stat, {}
            for o in job_result.outcomes:
                st = stat.get(o.path) if o.result is not None else None
                if st is not None and st[1] <= limit:
                    entries[o.path] = (st[0], st[1], o.result)
            recent = RecentSummaries(self.cache.version, entries)
        if recent is not None:
            self.result._recent = recent
            _recent = weakref.ref(recent)

    def _reusable(self, job_result: JobResult, averaged) -> bool:
        """May a later run with the same input reuse these averages? Only a complete run whose
        every file is old enough to be cached (see cache.RACY_NS), and whose averages are small
        enough to keep (:data:`REUSE_MAX_BYTES`: big averaged curves are cheaper to recompute from
        the cached summaries than to pickle and store again)."""
        counts = job_result.counts
        limit = settled_limit(self._read_started_ns)
        curves = sum(int(g.curve.memory_usage(index=True).sum()) for g in averaged.groups if g.curve is not None)
        return (self._run_key is not None and str(job_result.status) == "finished" and not counts["failed"]
                and not counts["cancelled"] and all(m <= limit for _, m in self._stat.values())
                and curves + 2048 * len(averaged.groups) <= REUSE_MAX_BYTES)

    def _main(self) -> None:
        t0 = time.perf_counter()
        try:
            self.job.start()
            job_result = self.job.wait()
            self._phase_monitor = self._watch_averaging(job_result)
            if self._memo is not None:
                job_result.load_cached = functools.partial(_load_cached, self.cache, self._recent, self._stat)
            all_stored = self._store(job_result)
            averaged, written, error = None, [], None
            try:
                averaged, written = self._aggregate_and_write(job_result, t0)
            except Exception as exc:  # keep the pool's accounting even if averaging breaks
                log.exception("averaging failed")
                error = f"{type(exc).__name__}: {exc}"
            self._phase_monitor.stop()
            if all_stored and error is None and self._memo is None and self._reusable(job_result, averaged):
                self.cache.put_run(self._run_key, averaged)
            self.result = RunResult(job_result, averaged, self.output_dir, written, error,
                                    functools.partial(_memory_frame, self.job, self._phase_monitor),
                                    self.plan, reused=self._memo is not None)
            self._keep_recent(job_result)
            if self.write:
                try:
                    self.output.write_json("run.json", self.result.summary_dict())
                except OSError as exc:
                    log.warning("could not write run.json: %s", exc)
            if self.learn:
                memory_model.save_learned(self.manager.model, _STORE_KEY)
        finally:
            self.output.unlock()
            self._done.set()
        self._forward(Event(RUN_DONE, self.result))


# What a run's pool and result keep of it: functions of the parts they need, not of the Run, so a run
# nobody refers to any more is freed at once (no reference cycle left for the cyclic collector).

def _estimate(model: MemoryModel, path: str, size: int, lean: bool = False) -> float:
    """The pool asks at admission time, so what the run has learned so far is used at once."""
    est = model.estimate(kind_of(path), size)
    return est if not lean else min(est, model.lean_estimate(kind_of(path), size))


def _memory_frame(job, phase_monitor):
    """The memory samples so far: the pool's, then the kernel's while it averages."""
    import pandas as pd

    frame = job.memory_frame()
    if phase_monitor is not None and phase_monitor.rows:
        frame = pd.concat([frame, phase_monitor.frame()], ignore_index=True)
    return frame


def _summaries(cache: SummaryCache, recent: RecentSummaries | None, keys: list) -> dict:
    """The summaries of ``keys`` (``(path, size, mtime_ns)``) that the last run kept, then those
    in the cache's database."""
    found = recent.get_many(keys, cache.version) if recent is not None else {}
    found.update(cache.get_many([k for k in keys if k[0] not in found] if found else keys))
    return found


def _load_cached(cache: SummaryCache, recent: RecentSummaries | None, stat: dict, paths: list[str]) -> dict:
    """The cached summaries of ``paths`` (JobResult.results after an up-to-date re-run)."""
    found = _summaries(cache, recent, [(p, *stat[p]) for p in paths if p in stat])
    if len(found) < len(paths):
        log.warning("%d summaries are no longer in the cache %s (cleared or pruned); re-run with "
                    "--no-cache to have them all", len(paths) - len(found), cache.path)
    return found


def _weakly(method: Callable) -> Callable:
    """``method`` called through a weak reference to its object (a no-op once the object is gone)."""
    ref = weakref.WeakMethod(method)

    def call(*args):
        bound = ref()
        return None if bound is None else bound(*args)

    return call


# ---------------------------------------------------------------------------------- callers

def average_folder(config: Any = None, folder=None, output=None, workers: int | None = None, pattern: Any = None,
                   group_by: Any = None, *, csv: bool = False, manager: ResourceManager | None = None,
                   **run_options) -> "averaging.AverageResult":
    """OppNDA's averager as one call: :class:`Run` it and return its :class:`~averaging.AverageResult`
    (errors, skips and warnings included). ``output`` defaults to ``<folder>/averaged``. Unlike a
    plain run, there is no default folder: OppNDA's averager needs one (argument or config)."""
    if folder is None and averaging.load_config(config).folder is None:
        raise OppndaError("No input folder: give folder=... (or --folder DIR), or set \"folder\" in the config.")
    run = Run(folder, config=config, pattern=pattern, group_by=group_by, manager=manager, output=output,
              workers=workers, csv=csv, **run_options)
    result = run.run()
    if result.averaged is None:
        raise OppndaError(f"averaging failed: {result.error}")
    result.averaged.output_dir = result.output_dir
    return result.averaged
