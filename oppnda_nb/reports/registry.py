"""The one registry of ONE report types: one :class:`ReportSpec` per type (kind, parser, summary,
streaming summary, memory prior). Everything else (KIND_OF, detection, the pool's priors) derives
from it, so adding a report type is one entry here."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pandas as pd

from . import streaming as st
from .base import Report, Summary
from .keyvalue import _p_keyvalue
from .parsers import (_COLS, _p_created, _p_delivered, _p_distance_delay, _p_hash_table, _p_message_report,
                      _p_node_density, _p_radius, _p_simple)
from .parsers_events import (_p_adjacency, _p_connectivity_dtnsim2, _p_connectivity_one, _p_copy_count, _p_eventlog,
                             _p_location_snapshot, _p_message_graph, _p_message_location, _p_ns2)
from . import summaries as su
from .tables import _Src


@dataclass(frozen=True)
class ReportSpec:
    """One ONE report type: how to parse it, summarise it (whole frame or streamed) and its memory prior.

    ``gamma``: worker peak above its baseline per byte of file for :func:`summarize_path`;
    ``overhead_mb``: worker baseline (interpreter + pandas) plus the fixed chunk allowance, in MB.
    The estimate of a worker's peak for a file of ``size`` bytes is ``gamma * size + overhead_mb * MB`` (size in bytes).
    """

    name: str
    kind: str
    parse: Callable[[_Src], pd.DataFrame]
    summary: Callable[[Report], Summary]
    stream: st.StreamSpec | None = None
    gamma: float = 16.0
    overhead_mb: float = 30.0


# (gamma, overhead_mb) measured with benchmarks/bench_worker_memory.py (forkserver worker, PSS sampled
# every 25 ms from outside; baseline after imports ~27 MB): peak = overhead_mb + gamma * size(MB)
# is at or above each measured peak. Types not measured yet get the whole-frame prior (16, 30).
_PRIORS = {
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
_WHOLE_FRAME_PRIOR = (16.0, 30.0)


def _spec(name, kind, parse, summary, stream=None) -> ReportSpec:
    gamma, overhead = _PRIORS.get(name, _WHOLE_FRAME_PRIOR)
    return ReportSpec(name, kind, parse, summary, stream, gamma, overhead)


_DELAY = _COLS["MessageDelayReport"]
_DELIVERY = _COLS["MessageDeliveryReport"]
_TOTAL = _COLS["TotalContactTimeReport"]

_SPECS = [
    _spec("MessageStatsReport", "keyvalue", _p_keyvalue, su._s_keyvalue),
    _spec("PingAppReporter", "keyvalue", _p_keyvalue, su._s_keyvalue),
    _spec("AdjacencyGraphvizReport", "graph", _p_adjacency, su._s_adjacency),
    _spec("MessageGraphvizReport", "graph", _p_message_graph, su._s_message_graph),
    _spec("BufferOccupancyReport", "timeseries", _p_simple(["time", "occupancy", "variance"]), su._s_buffer),
    _spec("ContactsPerHourReport", "timeseries", _p_simple(["hour", "contacts"], ints=("hour", "contacts")),
          su._s_per_hour),
    _spec("MessageDeliveryReport", "timeseries", _p_hash_table(_DELIVERY, _DELIVERY, ints=("created", "delivered")),
          su._s_delivery),
    _spec("MessageDelayReport", "timeseries", _p_hash_table(_DELAY, _DELAY), su._s_delay),
    _spec("TotalContactTimeReport", "timeseries", _p_hash_table(_TOTAL, _TOTAL), su._s_total_contact),
    _spec("ContactTimesReport", "histogram", _p_simple(["duration", "count"], ints=("count",)),
          su._s_hist("duration", "count", below10=True)),
    _spec("InterContactTimesReport", "histogram", _p_simple(["duration", "count"], ints=("count",)),
          su._s_hist("duration", "count", below10=True)),
    _spec("ContactsDuringAnICTReport", "histogram", _p_simple(["contacts", "count"], ints=("contacts", "count")),
          su._s_hist("contacts", "count")),
    _spec("TotalEncountersReport", "histogram", _p_simple(["encounters", "nodes"], ints=("encounters", "nodes")),
          su._s_hist("encounters", "nodes")),
    _spec("UniqueEncountersReport", "histogram", _p_simple(["permille", "nodes"], ints=("permille", "nodes")),
          su._s_hist("permille", "nodes")),
    _spec("JumpSizeDistributionReport", "histogram", _p_simple(["bin_center", "density", "count"], ints=("count",)),
          su._s_jump),
    _spec("CreatedMessagesReport", "table", _p_created, su._s_created, st.CREATED),
    _spec("DeliveredMessagesReport", "table", _p_delivered, su._s_delivered, st.DELIVERED),
    _spec("DistanceDelayReport", "table", _p_distance_delay, su._s_distance_delay, st.DISTANCE_DELAY),
    _spec("EncountersVSUniqueEncountersReport", "table",
          _p_simple(["node", "encounters", "unique_encounters"], ints=("node", "encounters", "unique_encounters")),
          su._s_encounters),
    _spec("MessageReport", "table", _p_message_report, su._s_message_report, st.MESSAGE_REPORT),
    _spec("NodeDensityReport", "table", _p_node_density, su._s_node_density),
    _spec("RadiusOfGyrationReport", "table", _p_radius, su._s_radius),
    _spec("LocationSnapshotReport", "snapshot", _p_location_snapshot, su._s_location, st.LOCATION),
    _spec("MessageCopyCountReport", "snapshot", _p_copy_count, su._s_copy_count, st.COPY_COUNT),
    _spec("MessageLocationReport", "snapshot", _p_message_location, su._s_message_location, st.MESSAGE_LOCATION),
    _spec("ConnectivityONEReport", "events", _p_connectivity_one, su._s_connectivity, st.CONNECTIVITY),
    _spec("ConnectivityDtnsim2Report", "events", _p_connectivity_dtnsim2, su._s_connectivity),
    _spec("EventLogReport", "events", _p_eventlog, su._s_eventlog, st.EVENTLOG),
    _spec("MovementNs2Report", "events", _p_ns2, su._s_ns2, st.NS2),
]

REGISTRY: dict[str, ReportSpec] = {s.name: s for s in _SPECS}
KNOWN_REPORT_TYPES: tuple[str, ...] = tuple(sorted(REGISTRY))
KIND_OF: dict[str, str] = {name: spec.kind for name, spec in REGISTRY.items()}
_BY_LOWER = {name.lower(): name for name in REGISTRY}

# A type the registry does not know (parsed generically): a conservative prior.
GENERIC_PRIOR: tuple[float, float] = (16.0, 30.0)


def memory_priors() -> dict[str, tuple[float, float]]:
    """Per report type ``(gamma, overhead_mb)`` for :func:`summarize_path` in a worker, plus ``"generic"``."""
    out = {name: (spec.gamma, spec.overhead_mb) for name, spec in REGISTRY.items()}
    out["generic"] = GENERIC_PRIOR
    return out
