"""The settings of a job (:class:`PoolOptions`): one small dataclass instead of many arguments."""
from __future__ import annotations

import multiprocessing as mp
import os
from dataclasses import dataclass, fields, replace

from ..errors import OppndaError
from .admission import OVERSIZE_POLICIES
from ..system import MEMORY_METHODS


@dataclass(frozen=True)
class PoolOptions:
    """How a :class:`~oppnda_nb.pool.Job` runs.

    ``start_method``: "fork", "forkserver" or "spawn" (None: forkserver on Linux).
    ``workers``: explicit worker count (None: ``manager.get_optimal_workers``).
    ``sample_interval``: seconds between memory samples; ``monitor=False`` turns the sampler off
    (admission then uses the estimates only). ``memory_method``: "auto" (PSS, else USS, else
    RSS), "pss", "uss" or "rss". ``max_retries``: retries of a file whose worker died.
    ``max_overtakes``: how often smaller files may overtake a waiting larger one.
    ``warmup``: a small file each worker processes once at start (result discarded), so lazy
    imports are paid before the first measured file.
    ``batch`` (``batch_file_bytes`` = "small", ``batch_max_files``, ``batch_max_bytes``): send
    small files in batches. ``file_timeout`` + ``file_timeout_per_mb``·size/MB seconds: the time
    limit of one file (None: no limit). ``oversize``: "skip" or "run-alone" for a file whose
    estimate (and lean estimate) does not fit the budget alone. ``watchdog``: stop admitting while
    a worker is above its estimate by ``watchdog_margin`` (fraction) + ``watchdog_margin_mb``,
    and stop that worker (file retried alone, lean) when the pool passes the budget.
    ``planned_peak_bytes``: the caller's predicted peak of the whole run (its plan: what it holds
    besides the pool and what it does after it, e.g. averaging the results): the predicted peak the
    pool reports and plots is never below it, so a run shows one prediction.
    ``kernel_reserve_bytes``: what the caller's kernel will reach while the pool runs (the results
    it receives and holds): admission counts the kernel as at least this, not only as it is now.
    """

    start_method: str | None = None
    workers: int | None = None
    sample_interval: float = 0.2
    max_retries: int = 2
    max_overtakes: int = 4
    monitor: bool = True
    memory_method: str = "auto"
    warmup: str | None = None
    batch: bool = True
    batch_file_bytes: int = 256 * 1024
    batch_max_files: int = 64
    batch_max_bytes: int = 4 * 1024 * 1024
    file_timeout: float | None = 120.0
    file_timeout_per_mb: float = 2.0
    oversize: str = "skip"
    watchdog: bool = True
    watchdog_margin: float = 0.25
    watchdog_margin_mb: float = 20.0
    planned_peak_bytes: float = 0.0
    kernel_reserve_bytes: float = 0.0
    #: run the work in the calling process, one file after another (no worker processes): for
    #: files so small that starting workers costs more than it saves. Same admission (a file that
    #: does not fit next to the kernel is not run), events, stop and accounting.
    in_process: bool = False

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def with_overrides(self, **overrides) -> "PoolOptions":
        """A copy with ``overrides`` applied (an unknown name is an OppndaError)."""
        unknown = sorted(set(overrides) - set(self.names()))
        if unknown:
            raise OppndaError(f"unknown pool option(s) {unknown}; known: {', '.join(self.names())}")
        if overrides.get("warmup") is not None:
            overrides["warmup"] = os.fspath(overrides["warmup"])
        return replace(self, **overrides)

    def validate(self) -> "PoolOptions":
        """Raise OppndaError for a setting a user got wrong; returns self."""
        if self.workers is not None and int(self.workers) < 1:
            raise OppndaError(f"workers must be >= 1, got {self.workers}")
        if self.start_method is not None and self.start_method not in mp.get_all_start_methods():
            raise OppndaError(
                f"start_method {self.start_method!r} is not available here; use one of {mp.get_all_start_methods()}"
            )
        if self.max_retries < 0:
            raise OppndaError("max_retries must be >= 0")
        if self.oversize not in OVERSIZE_POLICIES:
            raise OppndaError(f"oversize must be one of {OVERSIZE_POLICIES}, got {self.oversize!r}")
        if self.memory_method not in MEMORY_METHODS:
            raise OppndaError(f"memory_method must be one of {MEMORY_METHODS}, got {self.memory_method!r}")
        if self.file_timeout is not None and self.file_timeout <= 0:
            raise OppndaError(f"file_timeout must be > 0 seconds or None, got {self.file_timeout}")
        return self
