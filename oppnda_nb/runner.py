"""One user-facing run: a folder of ONE reports → memory-aware pool → averages → files.

A :class:`Run` is what the magic, the panel and the command line drive. It selects the files
(OppNDA's rules, name pattern), runs :func:`averaging.summarize_file` on each in a
:class:`pool.Job`, then groups and averages the summaries and writes the outputs. Whatever
happens, the processed files are kept: a stopped or partly failed run still averages and
writes what was done, and says so.

Only one run is active at a time per kernel (:func:`current_run`), so a run started from the
magic is visible in the panel and the other way round.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import averaging
from .errors import OppndaError

_current: "Run | None" = None
_current_lock = threading.Lock()


def sample_folder() -> Path:
    """The bundled sample of real ONE reports (``oppnda_nb/data/sample``)."""
    return averaging.sample_folder()


def current_run() -> "Run | None":
    """The run that is active, or the last one started in this process."""
    return _current


def default_output(folder: Path) -> Path:
    """``<folder>/averaged`` — or ``./oppnda-output`` for the bundled sample (inside the package)."""
    folder = Path(folder).resolve()
    if folder == sample_folder().resolve():
        return Path.cwd() / "oppnda-output"
    return folder / "averaged"


@dataclass
class RunResult:
    """Everything a run produced: the pool's accounting and memory, the averages, the files."""

    job: Any  # pool.JobResult
    averaged: Any  # averaging.AverageResult
    output_dir: Path
    written: list[Path] = field(default_factory=list)
    error: str | None = None
    memory: Any = None  # DataFrame: the pool's samples, then the kernel's while averaging

    @property
    def status(self) -> str:
        """"finished", "cancelled" or "failed" (the pool's verdict, or failed averaging)."""
        return "failed" if self.error else self.job.status

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

    @property
    def calibration(self):
        return self.job.calibration

    def outcomes_frame(self):
        """Per-file outcomes as a DataFrame (path, status, reason, size, seconds, peak_mb, attempts)."""
        import pandas as pd

        return pd.DataFrame(
            [
                {
                    "file": os.path.basename(o.path),
                    "status": o.status,
                    "reason": o.reason,
                    "size_mb": o.size / 2**20,
                    "seconds": o.seconds,
                    "peak_mb": o.peak_mb,
                    "attempts": o.attempts,
                    "path": o.path,
                }
                for o in self.job.outcomes
            ]
        )

    def summary(self) -> str:
        lines = [self.job.summary()]
        if self.averaged is not None:
            lines += self.averaged.summary_lines()
        if self.error:
            lines.append(f"averaging failed: {self.error}")
        lines.append(f"outputs: {self.output_dir}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()


class Run:
    """A folder of reports processed through the memory-aware pool, then averaged.

    ``folder`` defaults to the config's folder, or the bundled sample. ``config``: an OppNDA
    averager JSON path or dict (None: ONE's standard naming); ``pattern`` and ``group_by``
    override it. ``manager``: a ResourceManager (default: the spec's defaults). ``output``
    defaults to :func:`default_output`. ``csv`` also writes the tables as CSV.
    """

    def __init__(
        self,
        folder=None,
        *,
        config: Any = None,
        pattern: Any = None,
        group_by: Any = None,
        manager=None,
        output=None,
        workers: int | None = None,
        start_method: str | None = None,
        csv: bool = True,
        sample_interval: float = 0.2,
    ):
        from . import pool
        from .resource_manager import ResourceManager

        self.config = averaging.prepare_config(config, pattern, group_by)
        if folder is None and self.config.folder is None:
            folder = sample_folder()
        self.folder = self.config.resolve_folder(folder)
        self.files, self.skipped = averaging.select_files(self.folder, self.config)
        if not self.files:
            why = f" ({len(self.skipped)} skipped, e.g. {os.path.basename(self.skipped[0][0])}: {self.skipped[0][1]})" if self.skipped else ""
            raise OppndaError(
                f"No matching report files in {self.folder}{why}. Check the folder, the name pattern "
                "and the config's file filter."
            )
        self.output_dir = Path(output) if output is not None else default_output(self.folder)
        self.manager = manager if manager is not None else ResourceManager()
        self.csv = csv
        self.job = pool.Job(
            self.files,
            averaging.summarize_file,
            (self.config.settings(),),
            self.manager,
            skipped=self.skipped,
            workers=workers,
            start_method=start_method,
            sample_interval=sample_interval,
        )
        self.result: RunResult | None = None
        self._listeners: list[Callable] = []
        self._thread: threading.Thread | None = None
        self._done = threading.Event()
        self._phase_monitor = None
        self.job.add_listener(self._forward)

    # -- events ------------------------------------------------------------------------
    def add_listener(self, callback: Callable) -> None:
        """``callback(event)`` for every pool event, then one ``Event("run_done", RunResult)``."""
        self._listeners.append(callback)

    def memory_frame(self):
        """The memory samples so far: the pool's, then the kernel's while it averages."""
        import pandas as pd

        frame = self.job.memory_frame()
        if self._phase_monitor is not None and self._phase_monitor.rows:
            frame = pd.concat([frame, self._phase_monitor.frame()], ignore_index=True)
        return frame

    def _forward(self, event) -> None:
        for cb in list(self._listeners):
            try:
                cb(event)
            except Exception:  # a broken listener must not break the run
                pass

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
            _current = self
            self._thread = threading.Thread(target=self._main, name="oppnda-run", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Start no new file, terminate the workers; what was processed is still averaged."""
        self.job.stop(wait=False)

    def wait(self, timeout: float | None = None) -> RunResult:
        if self._thread is None:
            raise OppndaError("The run was not started; call start() or run().")
        if not self._done.wait(timeout):
            raise TimeoutError(f"the run is still going after {timeout} s")
        assert self.result is not None
        return self.result

    def run(self) -> RunResult:
        """Run to the end (blocking). Ctrl-C stops the run and returns the partial result."""
        self.start()
        try:
            while not self._done.wait(0.1):
                pass
        except KeyboardInterrupt:
            self.stop()
        return self.wait()

    # -- the work ----------------------------------------------------------------------
    def _watch_averaging(self, job_result):
        """Keep sampling the kernel while it averages (big sweeps make that phase heavy too)."""
        from .monitor import MB, MemoryMonitor

        frame = job_result.memory
        t_end = float(frame["t"].max()) if len(frame) else 0.0
        budget = job_result.budget_mb * MB
        monitor = MemoryMonitor(
            lambda: [], interval=self.job.sample_interval, context=lambda s: (budget, float("nan"), 0)
        )
        return monitor.start(t0=time.monotonic() - t_end)

    def _main(self) -> None:
        from .pool import Event

        t0 = time.perf_counter()
        try:
            self.job.start()
            job_result = self.job.wait()
            self._phase_monitor = self._watch_averaging(job_result)
            averaged, written, error = None, [], None
            try:
                averaged = averaging.aggregate(job_result.results, self.config)
                averaged.errors = [(o.path, o.reason or "") for o in job_result.failed]
                averaged.skipped = list(self.skipped)
                averaged.folder = self.folder
                averaged.workers = job_result.workers
                if job_result.status == "cancelled":
                    averaged.warnings.append(
                        f"partial results: the run was stopped, {job_result.counts['cancelled']} file(s) cancelled"
                    )
                written = averaged.write_oppnda(self.output_dir)
                if self.csv:
                    written += averaged.to_csv(self.output_dir / "csv")
                averaged.seconds = time.perf_counter() - t0
            except Exception as exc:  # keep the pool's accounting even if averaging breaks
                error = f"{type(exc).__name__}: {exc}"
            self._phase_monitor.stop()
            self.result = RunResult(job_result, averaged, self.output_dir, written, error, self.memory_frame())
        finally:
            self._done.set()
        self._forward(Event("run_done", self.result))
