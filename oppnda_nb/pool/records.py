"""The pool's records: what happened to each file, progress snapshots, events, the job's result.

Statuses and event kinds are ``str`` enums, so ``o.status == "processed"`` and
``ev.kind == "file_started"`` keep working and they print as plain strings.
"""
from __future__ import annotations

import json
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from enum import Enum
from operator import attrgetter
from typing import Any, Callable, Iterable

from ..lazy import OnFirstRead

#: failure reasons are cut to this many characters (a traceback-sized message would flood the UI)
MAX_REASON = 300


class _Words(str, Enum):
    """An enum whose members are words: they compare equal to and print as their string."""

    def __str__(self) -> str:
        return self.value


class Status(_Words):
    """The state of one input file; every input ends in exactly one of the last four."""

    RUNNING = "running"  # only in file_started events
    PROCESSED = "processed"
    SKIPPED = "skipped"
    FAILED = "failed"
    CANCELLED = "cancelled"


class EventKind(_Words):
    """What an :class:`Event` reports."""

    FILE_STARTED = "file_started"
    FILE_FINISHED = "file_finished"
    FILE_FAILED = "file_failed"
    PROGRESS = "progress"
    MEMORY = "memory"
    WARNING = "warning"
    DONE = "done"


STATUSES = tuple(s.value for s in Status if s is not Status.RUNNING)
EVENT_KINDS = tuple(k.value for k in EventKind)


#: the reason of a processed outcome whose result the caller already had (its cache): no work done
CACHED = "cached"


def bounded(reason: str | None, limit: int = MAX_REASON) -> str | None:
    """``reason`` cut to ``limit`` characters (with an ellipsis), None stays None."""
    if reason is None:
        return None
    reason = str(reason)
    return reason if len(reason) <= limit else reason[: limit - 1] + "…"


@dataclass
class FileOutcome:
    """What happened to one input file (exactly one per input).

    Memory fields are MB: ``peak_mb`` the worker's own peak while it held the file,
    ``baseline_mb`` its own memory just before, ``peak_delta_mb`` the peak above that baseline
    (what a caller learns γ from), ``estimate_mb`` the estimate it was admitted with.
    ``retries`` lists why the file was run again (worker died, watchdog), ``lean`` whether the
    last attempt ran in lean mode.
    """

    path: str
    size: int
    status: str  # a Status
    reason: str | None = None
    result: Any = None
    seconds: float = 0.0
    peak_mb: float | None = None
    attempts: int = 0
    report_type: str | None = None  # the caller's kind label (kind_of(path)); "file" by default
    baseline_mb: float | None = None
    peak_delta_mb: float | None = None
    estimate_mb: float | None = None
    worker_pid: int | None = None
    retries: list[str] | tuple[str, ...] = ()  # (a tuple until there is one: no empty list per file)
    lean: bool = False

    def __post_init__(self) -> None:
        self.reason = bounded(self.reason)

    @property
    def kind(self) -> str | None:
        """The caller's kind label (same as ``report_type``)."""
        return self.report_type


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0  # gone: its outcome says so where it matters


class Outcomes(dict):
    """Outcomes by input index that keep their count per status (``by_status``), so a job's
    progress, read several times a second, does not walk thousands of outcomes each time."""

    def __init__(self):
        super().__init__()
        self.by_status: Counter = Counter()

    def __setitem__(self, index: int, outcome: "FileOutcome") -> None:
        old = self.get(index)
        if old is not None:
            self.by_status[str(old.status)] -= 1
        super().__setitem__(index, outcome)
        self.by_status[str(outcome.status)] += 1

    def update(self, *args, **kwargs) -> None:  # every change goes through __setitem__
        for k, v in dict(*args, **kwargs).items():
            self[k] = v

    def add_new(self, first: int, outcomes: list["FileOutcome"], status: str) -> None:
        """Outcomes for the new indices ``first, first + 1, ...``, all of ``status``: one count update
        (a re-run from the cache adds thousands at once)."""
        dict.update(self, zip(range(first, first + len(outcomes)), outcomes))
        self.by_status[str(status)] += len(outcomes)


def known_outcomes(files: list[str], skipped: list[tuple[str, str]], done: Iterable[tuple],
                   kind_of: Callable[[str], str], make_task: Callable[[int, str, int, str], Any],
                   sizes: dict[str, int] | None = None):
    """What a job knows before any work: ``(outcomes by input index, tasks, every input path in
    outcome order)``. A file that cannot be stat-ed fails; ``skipped`` files are skipped; ``done``
    (``(path, result)`` or ``(path, result, size)``: the caller's cache) are processed without work;
    every other file gets ``make_task(index, path, size, kind)``. ``sizes``: the caller's stat of
    the files (those not in it are stat-ed here)."""
    outcomes = Outcomes()
    tasks = []
    sizes = sizes or {}
    for i, p in enumerate(files):
        try:
            size = sizes[p] if p in sizes else os.path.getsize(p)
        except OSError as exc:
            outcomes[i] = FileOutcome(p, 0, Status.FAILED, f"{type(exc).__name__}: {exc.strerror or exc}",
                                      report_type=kind_of(p))
            continue
        tasks.append(make_task(i, p, size, kind_of(p)))
    n = len(files)
    outcomes.add_new(n, [FileOutcome(p, _size(p), Status.SKIPPED, reason, report_type=kind_of(p))
                         for p, reason in skipped], Status.SKIPPED)
    n += len(skipped)
    known = []  # (one pass: an up-to-date re-run has tens of thousands)
    for d in done:
        p = os.fspath(d[0])
        size = d[2] if len(d) > 2 and d[2] is not None else _size(p)
        known.append(FileOutcome(p, size, Status.PROCESSED, CACHED, result=d[1], report_type=kind_of(p)))
    outcomes.add_new(n, known, Status.PROCESSED)
    return outcomes, tasks, list(files) + [p for p, _ in skipped] + [o.path for o in known]


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
    in_process: bool = False  # the files run in the caller's own process (no workers)


@dataclass
class Event:
    """One notification to listeners. ``kind`` is an :class:`EventKind` (compares equal to its string).

    data: file_* -> FileOutcome (file_started: status "running"); progress -> Progress;
    memory -> dict (one row of the memory DataFrame); warning -> str; done -> JobResult.
    """

    kind: str
    data: Any


@dataclass
class JobResult:
    """The outcome of a job: one FileOutcome per input, the memory samples, the verdict."""

    outcomes: list[FileOutcome]
    warnings: list[str]
    workers: int
    budget_mb: float
    predicted_peak_mb: float
    measured_peak_mb: float
    elapsed_s: float
    status: str  # "finished" | "cancelled" | "failed"
    calibration: Any = None  # set by a caller that learns from the run
    inputs: list[str] = field(default_factory=list)  # every input path, files then skipped
    memory_method: str = ""
    workers_final: int = 0
    #: pandas.DataFrame, columns per monitor.COLUMNS + worker_<pid> (may be given as a function that
    #: builds it: it is built when first read)
    memory: Any = OnFirstRead()
    _counts: Any = field(default=None, init=False, repr=False, compare=False)  # (key, counts) computed once
    _accounting: Any = field(default=None, init=False, repr=False, compare=False)  # (key, accounting_ok)

    @property
    def counts(self) -> dict[str, int]:
        """Outcomes per status, the total, and how many of the processed came from the caller's cache."""
        key = (id(self.outcomes), len(self.outcomes))
        if self._counts is None or self._counts[0] != key:
            # (status, reason) pairs counted in C: a re-run from the cache has tens of thousands
            pairs = Counter(zip(map(attrgetter("status"), self.outcomes), map(attrgetter("reason"), self.outcomes)))
            out = dict.fromkeys(STATUSES, 0)
            out["total"] = len(self.outcomes)
            out["cached"] = 0
            for (status, reason), n in pairs.items():
                status = str(status)
                if status in STATUSES:
                    out[status] += n
                if reason == CACHED and status == Status.PROCESSED:
                    out["cached"] += n
            self._counts = (key, out)
        return dict(self._counts[1])

    @property
    def accounting_ok(self) -> bool:
        """Every input has exactly one outcome with a valid status, and the counts add up."""
        key = (id(self.outcomes), len(self.outcomes), id(self.inputs), len(self.inputs))
        if self._accounting is None or self._accounting[0] != key:
            self._accounting = (key, self._check_accounting())
        return self._accounting[1]

    def _check_accounting(self) -> bool:
        if any(o.status not in STATUSES for o in self.outcomes):
            return False
        c = self.counts
        if sum(c[s] for s in STATUSES) != len(self.inputs):
            return False
        paths = [o.path for o in self.outcomes]
        return paths == self.inputs or Counter(paths) == Counter(self.inputs)  # (usually in the same order)

    #: ``load_cached(paths) -> {path: result}``: loads the results of cached outcomes that were not
    #: loaded yet (a caller that did not need them, e.g. an up-to-date re-run), on first access
    load_cached: Any = field(default=None, repr=False, compare=False)

    @property
    def results(self) -> list:
        """The results of the processed files, in input order (cached ones not loaded yet are loaded
        now with :attr:`load_cached`; one that cannot be loaded any more is left out)."""
        missing = [o for o in self.outcomes
                   if o.status == Status.PROCESSED and o.result is None and o.reason == CACHED]
        if missing and self.load_cached is not None:
            found = self.load_cached([o.path for o in missing])
            for o in missing:
                o.result = found.get(o.path)
        return [o.result for o in self.outcomes if o.status == Status.PROCESSED and o.result is not None]

    @property
    def failed(self) -> list[FileOutcome]:
        if not self.counts["failed"]:
            return []
        return [o for o in self.outcomes if o.status == Status.FAILED]

    def summary(self) -> str:
        c = self.counts
        lines = [
            f"Job {self.status}: {c['processed']:,} processed"
            + (f" ({c['cached']:,} cached, {c['processed'] - c['cached']:,} parsed)" if c["cached"] else "")
            + f", {c['skipped']} skipped, {c['failed']} failed, "
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
            "status": str(self.status),
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
            "failed": [{"path": o.path, "reason": o.reason, "attempts": o.attempts, "retries": list(o.retries)}
                       for o in self.failed],
        }
        if self.calibration is not None and hasattr(self.calibration, "to_dict"):
            d["calibration"] = self.calibration.to_dict()
        json.dumps(d)  # fail here, not in the caller, if something is not JSON-able
        return d
