"""The ONE report types by name: kind and memory prior, and the type of a file from its name.

Plain data, no pandas: planning a run (``status``, the panel's recommendation) needs only this.
The registry adds each type's parser and summaries and checks it names exactly these types.
"""
from __future__ import annotations

import os

from ..memory_model import WORKER_REFERENCE_BYTES
from ..system import MB

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
#: the version of what the readers compute: bumped whenever a summary's values may change (the
#: summary cache keys on it, so summaries of older readers are parsed again). 2: snapshot reports
#: folded in 1 MB blocks (LocationSnapshot's step mean may differ in the last bit)
SUMMARY_VERSION = 2
#: the types whose summary carries a curve (a small DataFrame): the histograms, the time series and two
#: snapshot reports (copies and messages per snapshot time). Receiving one makes the kernel import pandas.
CURVE_TYPES: frozenset[str] = frozenset(
    {t for t, k in KIND_OF.items() if k in ("histogram", "timeseries")} | {"MessageCopyCountReport", "MessageLocationReport"})
_BY_LOWER = {name.lower(): name for name in KIND_OF}

# Worker memory per type, measured with benchmarks/bench_worker_memory.py (forkserver worker, PSS
# sampled every 25 ms from outside; baseline after the worker modules' imports 27.9 MB) on the large
# run, its heads cut at 1, 4 and 16 MB, the small corpora, a generated 600 MB DeliveredMessagesReport
# and synthetic large copies (`--scale`, or the large run's snapshots repeated with shifted times). A worker's
# peak for a file of s MB is modelled (memory_model.TypeModel) as
#     overhead_mb + gamma * s + min(ramp * s, chunk_mb)
# overhead: the baseline plus what a worker may keep before it retires (8 MB); chunk_mb: what one
# block costs to parse (4 MB; 1 MB for the snapshot reports; reached at ~1-4 MB: files under 1 MB
# are parsed whole, which costs up to ~ramp MB per MB); gamma: what still grows with the file
# (running aggregates, medians' values).
# Each prior is at or above every measured peak (comment: size -> measured peak, PSS); the chunk
# allowance of the types a whole run's largest files have carries ~5 MB more, for two large files
# peaking together next to the forkserver (their shared pages are counted once, see memory_model).
#: (gamma, overhead_mb, chunk_mb, ramp)
PRIORS: dict[str, tuple[float, float, float, float | None]] = {
    "EventLogReport": (0.02, 35.0, 33.0, 5.5),           # 1 -> 34.5, 4 -> 54.1, 16 -> 60.4, 84 -> 60.4
    "LocationSnapshotReport": (0.1, 35.0, 16.0, 5.0),    # 1 -> 37.3, 4 -> 39.5, 12.3 -> 45.0, 99 -> 56.5, 296 -> 56.9
    "MessageCopyCountReport": (0.06, 35.0, 16.0, 9.0),   # 1 -> 38.1, 4 -> 46.7, 13.9 -> 47.0, 111 -> 50.2, 333 -> 53.8
    "MessageLocationReport": (0.05, 35.0, 20.0, 22.0),   # 1 (whole) -> 54.0, 4 -> 51.5, 22.2 -> 51.9, 178 -> 54.7
    "MovementNs2Report": (0.02, 35.0, 30.0, 5.5),        # 1 -> 37.6, 4 -> 49.9, 21.4 -> 51.3, 171 (x8) -> 48.6, 514 (x24) -> 48.7
    "DeliveredMessagesReport": (0.005, 35.0, 26.0, 25.0),  # 0.5 -> 36.6, 1 -> 37.8, 4 -> 43.2, 16 -> 59.1, 600 -> 62.4
    "CreatedMessagesReport": (0.012, 35.0, 35.0, 15.0),  # 0.5 -> 35.8, 21 (x40) -> 60
    "ConnectivityONEReport": (0.2, 35.0, 35.0, 28.0),    # 0.7 -> 45.7, 1.4 -> 40.1, 28.9 (x20) -> 73
    "ConnectivityDtnsim2Report": (1.0, 35.0, 40.0, 23.0),  # 0.7 -> 42.5
    "DistanceDelayReport": (0.1, 35.0, 35.0, 28.0),      # 0.4 -> 36.4
    "MessageReport": (0.1, 35.0, 35.0, 35.0),            # 0.2 -> 36.2
    "MessageStatsReport": (1.0, 35.0, 0.0, None),        # 411 B -> 30.2 (key:value, no DataFrame)
    "PingAppReporter": (1.0, 35.0, 0.0, None),
}
#: a type parsed as one whole frame (histograms, time series, ...): up to ~16x its size (0.6 MB
#: MessageDeliveryReport -> 33.6, 0.4 MB TotalContactTimeReport -> 30.3)
WHOLE_FRAME_PRIOR: tuple[float, float, float, float | None] = (16.0, 35.0, 0.0, None)
#: a type the registry does not know (parsed generically): a conservative prior
GENERIC_PRIOR: tuple[float, float, float, float | None] = (16.0, 35.0, 0.0, None)


#: a worker's own memory before any file (26.5 MB PSS) plus what it may keep between files before
#: it retires (8 MB): no type's prior overhead is below this
MIN_OVERHEAD_MB = WORKER_REFERENCE_BYTES / MB


def prior_of(name: str) -> tuple[float, float, float, float | None]:
    """(gamma, overhead_mb, chunk_mb, ramp) of a known report type (overhead at least MIN_OVERHEAD_MB)."""
    gamma, overhead, chunk, ramp = PRIORS.get(name, WHOLE_FRAME_PRIOR)
    return gamma, max(overhead, MIN_OVERHEAD_MB), chunk, ramp


def memory_priors() -> dict[str, tuple[float, float, float, float | None]]:
    """Per report type ``(gamma, overhead_mb, chunk_mb, ramp)`` for :func:`summarize_path` in a worker,
    plus ``"generic"`` (see memory_model.TypeModel)."""
    out = {name: prior_of(name) for name in KIND_OF}
    g, o, c, r = GENERIC_PRIOR
    out["generic"] = (g, max(o, MIN_OVERHEAD_MB), c, r)
    return out


_SUFFIXES = (".txt.gz", ".gz", ".txt")


def report_type_from_name(path: str | os.PathLike) -> str | None:
    """THE report type of a ONE file name: its last ``_`` part before ``.txt`` / ``.txt.gz`` if that
    is a known report class (case-insensitive), else None. No I/O."""
    name = os.path.basename(os.fspath(path))
    low = name[name.rfind("_") + 1:].lower()   # (the suffixes hold no "_": cut them from the last part)
    for ext in _SUFFIXES:
        if low.endswith(ext):
            low = low[: -len(ext)]
            break
    return _BY_LOWER.get(low)
