"""The memory-aware process pool: runs the caller's function on files in worker processes while
keeping the machine under η of its RAM. Knows no report type: the caller gives the work, the
per-file estimate and the kind label.

Rooms: :mod:`.records` (outcomes, progress, events, result), :mod:`.admission` (the rule, pure
functions), :mod:`.worker` (the worker process), :mod:`.monitor` (memory samples),
:mod:`.processes` (start context, helpers, termination), :mod:`.scheduler` and :mod:`.job` (the
job's lifecycle), :mod:`.options` (its settings).
"""
from __future__ import annotations

from .job import Job
from .monitor import COLUMNS, MemoryMonitor, MemorySample, samples_frame
from .options import PoolOptions
from .processes import default_start_method
from .records import (CACHED, EVENT_KINDS, STATUSES, Event, EventKind, FileOutcome, JobResult, Progress, Status)

__all__ = ["CACHED", "COLUMNS", "EVENT_KINDS", "STATUSES", "Event", "EventKind", "FileOutcome", "Job", "JobResult",
           "MemoryMonitor", "MemorySample", "PoolOptions", "Progress", "Status", "default_start_method",
           "run_files", "samples_frame"]


def run_files(files, work, work_args=(), manager=None, **kw) -> JobResult:
    """Convenience: ``Job(files, work, work_args, manager, **kw).run()``."""
    return Job(files, work, work_args, manager, **kw).run()
