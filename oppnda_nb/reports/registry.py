"""The one registry of ONE report types: one :class:`ReportSpec` per type (kind, parser, summary,
streaming summary, memory prior). Everything else (KIND_OF, detection, the pool's priors) derives
from it, so adding a report type is one entry here."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pandas as pd

from . import stream_snapshots as ss, stream_tables as stt
from .streaming import StreamSpec
from .base import Report, Summary, _Src
from .catalog import KIND_OF, prior_of
from .parsers import (_COLS, _p_created, _p_keyvalue, _p_delivered, _p_distance_delay, _p_hash_table, _p_message_report,
                      _p_node_density, _p_radius, _p_simple)
from .parsers_events import (_p_adjacency, _p_connectivity_dtnsim2, _p_connectivity_one, _p_copy_count, _p_eventlog,
                             _p_location_snapshot, _p_message_graph, _p_message_location, _p_ns2)
from . import summaries as su


@dataclass(frozen=True)
class ReportSpec:
    """One ONE report type: how to parse it, summarise it (whole frame or streamed) and its memory prior.

    ``gamma``, ``overhead_mb``, ``chunk_mb``, ``ramp``: the memory prior of a worker running
    :func:`summarize_path` on it (catalog.PRIORS; the formula is memory_model.TypeModel's).
    """

    name: str
    kind: str
    parse: Callable[[_Src], pd.DataFrame]
    summary: Callable[[Report], Summary]
    stream: StreamSpec | None = None
    gamma: float = 16.0
    overhead_mb: float = 35.0
    chunk_mb: float = 0.0
    ramp: float | None = None


def _spec(name, kind, parse, summary, stream=None) -> ReportSpec:
    return ReportSpec(name, kind, parse, summary, stream, *prior_of(name))


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
    _spec("CreatedMessagesReport", "table", _p_created, su._s_created, stt.CREATED),
    _spec("DeliveredMessagesReport", "table", _p_delivered, su._s_delivered, stt.DELIVERED),
    _spec("DistanceDelayReport", "table", _p_distance_delay, su._s_distance_delay, stt.DISTANCE_DELAY),
    _spec("EncountersVSUniqueEncountersReport", "table",
          _p_simple(["node", "encounters", "unique_encounters"], ints=("node", "encounters", "unique_encounters")),
          su._s_encounters),
    _spec("MessageReport", "table", _p_message_report, su._s_message_report, stt.MESSAGE_REPORT),
    _spec("NodeDensityReport", "table", _p_node_density, su._s_node_density),
    _spec("RadiusOfGyrationReport", "table", _p_radius, su._s_radius),
    _spec("LocationSnapshotReport", "snapshot", _p_location_snapshot, su._s_location, ss.LOCATION),
    _spec("MessageCopyCountReport", "snapshot", _p_copy_count, su._s_copy_count, ss.COPY_COUNT),
    _spec("MessageLocationReport", "snapshot", _p_message_location, su._s_message_location, ss.MESSAGE_LOCATION),
    _spec("ConnectivityONEReport", "events", _p_connectivity_one, su._s_connectivity, stt.CONNECTIVITY),
    _spec("ConnectivityDtnsim2Report", "events", _p_connectivity_dtnsim2, su._s_connectivity),
    _spec("EventLogReport", "events", _p_eventlog, su._s_eventlog, stt.EVENTLOG),
    _spec("MovementNs2Report", "events", _p_ns2, su._s_ns2, stt.NS2),
]

REGISTRY: dict[str, ReportSpec] = {s.name: s for s in _SPECS}
if {n: sp.kind for n, sp in REGISTRY.items()} != KIND_OF:
    raise RuntimeError("the report registry and the catalog must name the same types with the same kinds")
