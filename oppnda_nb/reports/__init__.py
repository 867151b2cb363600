"""ONE simulator report files -> tidy pandas DataFrames and per-run summaries.

One entry point, :func:`read_report`, reads any report the ONE simulator writes and returns a
:class:`Report` (``report_type``, ``kind``, ``frame``, ``meta``). :func:`summarize_report` turns a
report into a :class:`Summary` (scalars plus an optional curve) so that every report type can be
averaged across seeds and compared across parameters. The formats and their surprises are
documented in ``one-reports/FORMATS.md``; the choices made here are listed below.

Why it looks like this: table-shaped reports go through pandas' C parser (never a Python loop
over lines) so files of hundreds of MB parse at disk-like speed; variable-field formats are
parsed with enough ``names=`` and fixed up with vectorized numpy/pandas operations; bad input
never crashes and is never silent (:class:`ReportError`, or ``meta["warnings"]``).

Report type
    From the file name (ONE appends the report class as the last ``_`` part:
    ``TEST_<router>_<seed>_<ttl>_<buffer>_<ReportClass>.txt``), else sniffed from the content
    (``meta["type_source"]`` is ``"argument"``, ``"filename"`` or ``"content"``). An unknown type is
    parsed generically (``report_type="unknown"``, ``kind="generic"``): ``key<sep>value`` lines if
    most lines contain the separator, else a whitespace table (columns ``c0, c1, ...`` or the
    names of a ``#`` header line).

Frames (column names; ``cat`` = pandas ``category`` of strings, used for repetitive names in the
large event/snapshot reports to keep memory near the file size; ``str`` = string dtype)

=================================  ==========  ==========================================================
report type                        kind        frame columns (dtype)
=================================  ==========  ==========================================================
MessageStatsReport                 keyvalue    metric (str), value (float; ``NaN`` kept);
                                               ``meta["scenario"]`` from the title line
PingAppReporter                    keyvalue    metric (str; keys contain spaces and ``/``), value (float)
AdjacencyGraphvizReport            graph       host1, host2 (str), weight (int) -- ordered pairs as written
MessageGraphvizReport              graph       path (str ``a->b->c``), source, destination (str), hops (int)
BufferOccupancyReport              timeseries  time, occupancy (mean %), variance (Var/100) (float)
ContactsPerHourReport              timeseries  hour (int), contacts (int)
MessageDeliveryReport              timeseries  time (float), created, delivered (int), delivered/created (float)
MessageDelayReport                 timeseries  messageDelay, cumulativeProbability (float); may be empty
TotalContactTimeReport             timeseries  time, totalContactTime (float)
ContactTimesReport                 histogram   duration (bin start, float), count (int)
InterContactTimesReport            histogram   duration (bin start, float), count (int)
ContactsDuringAnICTReport          histogram   contacts (int), count (int)
TotalEncountersReport              histogram   encounters (int), nodes (int)
UniqueEncountersReport             histogram   permille (int), nodes (int)
JumpSizeDistributionReport         histogram   bin_center, density (float), count (int)
CreatedMessagesReport              table       time (float), ID (str), size (int), fromHost, toHost (str),
                                               TTL (int; float with NaN if ``n/a``), isResponse (bool)
DeliveredMessagesReport            table       time, ID, size, hopcount, deliveryTime, fromHost, toHost,
                                               remainingTtl, isResponse (bool), path (str)
DistanceDelayReport                table       distance, delay (float), hops (float), ID (str),
                                               delivered (bool); -1 sentinels -> NaN, rows kept
EncountersVSUniqueEncountersReport table       node (int address), encounters, unique_encounters (int)
MessageReport                      table       ID (str), start_time, end_time, delay (float), duplicate (bool)
NodeDensityReport                  table       gx, gy (int), average (float), s0..s<n-1> (int samples)
RadiusOfGyrationReport             table       node (int), host (str), center_x, center_y, radius (float)
LocationSnapshotReport             snapshot    t (float), host (cat), x, y (float)
MessageCopyCountReport             snapshot    t (float), msg (cat), copies (int)
MessageLocationReport              snapshot    t (float), holder (int32, line index in its snapshot),
                                               x, y (float), msg (cat) -- one row per message held
ConnectivityONEReport              events      time (float), host1, host2 (int addresses), state (cat up/down)
ConnectivityDtnsim2Report          events      time (float), host1, host2 (cat names), state (cat)
EventLogReport                     events      time (float), action, host1, host2, msg, extra (cat; NaN where
                                               the action has no such field: CONN -> extra=up/down,
                                               C/DR/R -> host1 + msg, S/A -> host1 host2 msg,
                                               DE -> ... extra=R/D/A)
MovementNs2Report                  events      time (float), node (int), x, y, speed (float) for ``setdest``;
                                               ``meta["initial_positions"]`` = DataFrame(node, x, y, z)
(unknown)                          generic     metric/value, or c0, c1, ... / names from a ``#`` header
=================================  ==========  ==========================================================

Summaries (:func:`summarize_report`; every scalar is a float, the key set is fixed per type so
runs line up; NaN means "not defined for this run", e.g. a delay mean with nothing delivered)

* keyvalue: the metrics themselves, in file order, NaN kept (exactly OppNDA's semantics).
* table reports: ``rows`` plus ``<col>_mean`` and ``<col>_median`` of each numeric column, plus
  type-specific ones (e.g. ``delivered``, ``delivery_prob``, ``delay_mean``/``delay_median``/
  ``delay_p90``, ``corr_distance_delay``, ``radius_mean_<host prefix>``).
* histograms: ``total`` (sum of counts), ``mean`` (sum x*count / total), ``median`` (first x where
  the cumulative count reaches total/2), ``max`` (largest non-empty x), ``nonzero_bins``; curve
  ``x`` (bin start / center / k), ``y`` (count), curve_kind ``"histogram"`` (JumpSize adds
  ``density``). ContactTimes/InterContactTimes also give ``frac_below_10s``.
* time series: ``final``, ``mean``, ``max`` of the main value (plus type-specific ones); curve
  ``x`` (time; delay for the MessageDelay CDF; hour for ContactsPerHour), ``y`` (main value) and
  extra columns, curve_kind ``"timeseries"``. All are step-like (a value holds until the next x),
  so forward-fill resampling onto a common grid is exact.
* graph / snapshot / events: counts (edges, nodes, weights, paths, per-action counts, contacts
  and their durations, messages and copies per snapshot, ...). MessageCopyCount and
  MessageLocation also give a ``"timeseries"`` curve per snapshot time.
* generic: key:value metrics, or ``rows`` plus mean/median of numeric columns.

Special cases and bad input
    A MessageDelayReport that is only ``# no messages delivered in sim time X`` is valid: empty
    frame, ``meta["no_messages_delivered"]``, summary ``delivered=0``, ``final=0`` and a flat curve.
    Empty files, binary data (NUL bytes), bytes that are not UTF-8, unreadable/missing files,
    rows of the wrong shape (field counts, non-numbers, unknown EventLog actions, ...) raise
    :class:`ReportError` naming the line. A file that does not end with a newline was cut
    mid-line: the incomplete last line is dropped and ``meta["warnings"]`` says so (for key:value
    reports too: a cut ``delivered: 16`` of ``delivered: 161`` must not be used), an error if no
    complete line is left. :func:`read_keyvalue` keeps OppNDA's semantics exactly (it keeps that line).

Speed and memory (measured, see the engineer's report): EventLogReport ~110-120 MB/s on a 200 MB
file (pandas' C parser alone ~180-240 MB/s, ``open().read()`` ~1.4 GB/s), frame ~0.4x the file
size thanks to categories; MessageLocationReport is the slowest (~10 MB/s, frame ~6x the file:
one row per message copy).
"""
from __future__ import annotations

from ..lazy import module_getattr

from .catalog import CURVE_TYPES, GENERIC_PRIOR, KIND_OF, KNOWN_REPORT_TYPES, memory_priors, report_type_from_name

# Everything else is imported on first use (PEP 562): planning a run needs only the catalog, and
# must not pay for pandas (``status`` imports neither pandas, matplotlib nor ipywidgets).
_LAZY = {
    "CHUNK_BYTES": "api", "LEAN_CHUNK_BYTES": "api", "SMALL_FILE": "api", "read_report": "api",
    "summarize_path": "api", "summarize_report": "api",
    "UNKNOWN": "base", "Report": "base", "ReportError": "base", "Summary": "base",
    "detect_report_type": "detect",
    "keyvalue_summary": "keyvalue", "read_keyvalue": "keyvalue", "summarize_keyvalue": "keyvalue",
    "REGISTRY": "registry", "ReportSpec": "registry",
}


__getattr__ = module_getattr(__name__, globals(), _LAZY)


__all__ = [
    "CHUNK_BYTES",
    "CURVE_TYPES",
    "GENERIC_PRIOR",
    "KIND_OF",
    "KNOWN_REPORT_TYPES",
    "LEAN_CHUNK_BYTES",
    "REGISTRY",
    "Report",
    "ReportError",
    "ReportSpec",
    "SMALL_FILE",
    "Summary",
    "UNKNOWN",
    "detect_report_type",
    "keyvalue_summary",
    "memory_priors",
    "read_keyvalue",
    "read_report",
    "report_type_from_name",
    "summarize_keyvalue",
    "summarize_path",
    "summarize_report",
]
