"""The ONE report types by name: kind and memory prior, and the type of a file from its name.

Plain data, no pandas: planning a run (``status``, the panel's recommendation) needs only this.
The registry adds each type's parser and summaries and checks it names exactly these types.
"""
from __future__ import annotations

import os

#: report type -> kind (how its frame is shaped)
KIND_OF: dict[str, str] = {
    "MessageStatsReport": "keyvalue", "PingAppReporter": "keyvalue",
    "AdjacencyGraphvizReport": "graph", "MessageGraphvizReport": "graph",
    "BufferOccupancyReport": "timeseries", "ContactsPerHourReport": "timeseries",
    "MessageDeliveryReport": "timeseries", "MessageDelayReport": "timeseries", "TotalContactTimeReport": "timeseries",
    "ContactTimesReport": "histogram", "InterContactTimesReport": "histogram",
    "ContactsDuringAnICTReport": "histogram", "TotalEncountersReport": "histogram",
    "UniqueEncountersReport": "histogram", "JumpSizeDistributionReport": "histogram",
    "CreatedMessagesReport": "table", "DeliveredMessagesReport": "table", "DistanceDelayReport": "table",
    "EncountersVSUniqueEncountersReport": "table", "MessageReport": "table", "NodeDensityReport": "table",
    "RadiusOfGyrationReport": "table",
    "LocationSnapshotReport": "snapshot", "MessageCopyCountReport": "snapshot", "MessageLocationReport": "snapshot",
    "ConnectivityONEReport": "events", "ConnectivityDtnsim2Report": "events", "EventLogReport": "events",
    "MovementNs2Report": "events",
}
KNOWN_REPORT_TYPES: tuple[str, ...] = tuple(sorted(KIND_OF))
_BY_LOWER = {name.lower(): name for name in KIND_OF}

# (gamma, overhead_mb) measured with benchmarks/bench_worker_memory.py (forkserver worker, PSS sampled
# every 25 ms from outside; baseline after imports ~27 MB): peak = overhead_mb + gamma * size(MB)
# is at or above each measured peak. Types not measured yet get the whole-frame prior (16, 30).
PRIORS: dict[str, tuple[float, float]] = {
    "DeliveredMessagesReport": (0.08, 40.0),    # 600 MB: peak 77.7 MB; 0.5 MB: 35.4 MB
    "EventLogReport": (0.05, 70.0),             # 84 MB: 69.9 MB
    "LocationSnapshotReport": (1.6, 60.0),      # 12.3 MB: 78.2 MB
    "MessageCopyCountReport": (2.0, 60.0),      # 13.9 MB: 86.9 MB
    "MessageLocationReport": (0.95, 40.0),      # 22.2 MB: 59.7 MB
    "MovementNs2Report": (1.05, 40.0),          # 21.4 MB: 61.8 MB
    "ConnectivityONEReport": (9.0, 45.0),       # 1.4 MB: 57.3 MB
    "CreatedMessagesReport": (9.0, 30.0),       # 0.5 MB: 34.4 MB
    "DistanceDelayReport": (4.0, 30.0),         # 0.4 MB: 31.5 MB
    "MessageReport": (1.0, 28.0),               # 0.2 MB: 27.1 MB
    "MessageDeliveryReport": (1.0, 28.0),       # 0.6 MB: 26.7 MB
    "MessageStatsReport": (1.0, 28.0),          # 411 B: 27.1 MB
    "PingAppReporter": (1.0, 28.0),
}
WHOLE_FRAME_PRIOR: tuple[float, float] = (16.0, 30.0)
#: a type the registry does not know (parsed generically): a conservative prior
GENERIC_PRIOR: tuple[float, float] = (16.0, 30.0)


#: a worker's own memory before any file (~29 MB PSS) plus what it may keep between files before
#: it retires (8 MB), with a margin: no type's prior overhead is below this
MIN_OVERHEAD_MB = 40.0


def prior_of(name: str) -> tuple[float, float]:
    """(gamma, overhead_mb) of a known report type (overhead at least MIN_OVERHEAD_MB)."""
    gamma, overhead = PRIORS.get(name, WHOLE_FRAME_PRIOR)
    return gamma, max(overhead, MIN_OVERHEAD_MB)


def memory_priors() -> dict[str, tuple[float, float]]:
    """Per report type ``(gamma, overhead_mb)`` for :func:`summarize_path` in a worker, plus ``"generic"``."""
    out = {name: prior_of(name) for name in KIND_OF}
    out["generic"] = (GENERIC_PRIOR[0], max(GENERIC_PRIOR[1], MIN_OVERHEAD_MB))
    return out


def report_type_from_name(path: str | os.PathLike) -> str | None:
    """THE report type of a ONE file name: its last ``_`` part before ``.txt`` / ``.txt.gz`` if that
    is a known report class (case-insensitive), else None. No I/O."""
    stem = os.path.basename(os.fspath(path))
    low = stem.lower()
    for ext in (".txt.gz", ".gz", ".txt"):
        if low.endswith(ext):
            stem = stem[: -len(ext)]
            break
    return _BY_LOWER.get(stem.rsplit("_", 1)[-1].lower())
