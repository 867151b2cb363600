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

import csv
import io
import math
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from .errors import OppndaError

__all__ = [
    "KNOWN_REPORT_TYPES",
    "KIND_OF",
    "Report",
    "ReportError",
    "Summary",
    "detect_report_type",
    "read_keyvalue",
    "read_report",
    "summarize_report",
]

UNKNOWN = "unknown"
_SNIFF_BYTES = 64 * 1024
_NA = ["NaN", "nan", "n/a", ""]
_NA_STRICT = ["NaN", "nan", "n/a"]


class ReportError(OppndaError):
    """A report file that cannot be read or parsed; ``str()`` is ``"<file>: <reason>"``.

    Picklable (``args == (path, reason)``) so it can cross process boundaries.
    """

    def __init__(self, path: Any, reason: str) -> None:
        super().__init__(str(path), reason)
        self.path = str(path)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class Report:
    """A parsed report: its type, kind, tidy frame and header metadata (``meta["warnings"]``)."""

    path: str
    report_type: str
    kind: str
    frame: pd.DataFrame
    meta: dict = field(default_factory=dict)


@dataclass
class Summary:
    """Per-run summary: float scalars and, for histograms/time series, a small curve (x, y, ...)."""

    scalars: dict
    curve: pd.DataFrame | None = None
    curve_kind: str | None = None


# --------------------------------------------------------------------------------------------
# Reading bytes safely


def _read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        raise ReportError(path, "file not found (was it moved or deleted?)") from None
    except IsADirectoryError:
        raise ReportError(path, "is a directory, not a report file") from None
    except PermissionError:
        raise ReportError(path, "permission denied: cannot read the file (check its permissions)") from None
    except MemoryError:
        raise ReportError(path, "out of memory while reading the file") from None
    except OSError as exc:
        raise ReportError(path, f"cannot read the file: {exc.strerror or exc}") from None


def _check_text(path: str, data: bytes, warns: list[str]) -> bytes:
    """Validate that ``data`` is a newline-terminated text report; drop an incomplete last line."""
    if not data:
        raise ReportError(path, "empty file (0 bytes): ONE writes most reports only when a run ends, "
                                "so the run was probably killed or is still running")
    if b"\x00" in data:
        at = data.index(b"\x00")
        raise ReportError(path, f"contains NUL bytes (first at offset {at}): binary data, not a text report")
    if not data.isascii():
        if data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
            warns.append("file starts with a UTF-8 byte order mark (ignored); ONE writes plain ASCII")
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad = data[exc.start]
            raise ReportError(path, f"not UTF-8/ASCII text: byte 0x{bad:02x} at offset {exc.start} "
                                    "(wrong encoding or binary data? ONE writes ASCII)") from None
    if data.isspace():
        raise ReportError(path, f"contains only whitespace ({len(data)} bytes), no report data")
    if not data.endswith(b"\n"):
        cut = data.rfind(b"\n")
        partial = data[cut + 1:]
        if cut < 0 or data[:cut + 1].isspace():
            raise ReportError(path, f"truncated: no complete line (the file ends mid-line after {len(data)} bytes: "
                                    f"{partial[:60].decode('utf-8', 'replace')!r})")
        data = data[:cut + 1]
        warns.append("truncated: the file does not end with a newline; incomplete last line "
                     f"{partial[:60].decode('utf-8', 'replace')!r} dropped (run killed while writing?)")
    return data


# --------------------------------------------------------------------------------------------
# key: value reports (OppNDA semantics)


def _split_lines(text: str) -> list[str]:
    """Lines as Python's universal-newline file iteration gives them (what OppNDA iterates)."""
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _parse_keyvalue(text: str, separator: str, ignore_fields=()) -> tuple[dict, list[str], list[str]]:
    """Key:value lines with OppNDA's averager semantics: (metrics, unparsable lines, lines without separator)."""
    ignore = set(ignore_fields)
    data: dict[str, float] = {}
    bad: list[str] = []
    other: list[str] = []
    for raw in _split_lines(text):
        line = raw.strip()
        if not line:
            continue
        if separator not in line:
            other.append(line)
            continue
        key, value = line.split(separator, 1)
        key = key.strip()
        value = value.strip()
        if key in ignore:
            continue
        try:
            data[key] = float(value) if value.lower() != "nan" else np.nan
        except ValueError:
            bad.append(line)
    return data, bad, other


def read_keyvalue(path: str | os.PathLike, separator: str = ":", ignore_fields=()) -> dict[str, float]:
    """Read a key:value report exactly like OppNDA's averager (fast path for averaging).

    For each stripped line containing ``separator``: split once, strip both sides, skip
    ``ignore_fields``, ``float(value)`` unless ``value.lower() == "nan"`` (-> NaN), skip values that
    do not parse. Later duplicates overwrite earlier ones (a dict, like OppNDA). Raises
    :class:`ReportError` only when the file cannot be read or is not text.
    """
    path = os.fspath(path)
    data = _read_bytes(path)
    if b"\x00" in data:
        raise ReportError(path, "contains NUL bytes: binary data, not a text report")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReportError(path, f"not UTF-8/ASCII text: byte 0x{data[exc.start]:02x} at offset {exc.start}") from None
    metrics, _, _ = _parse_keyvalue(text, separator, ignore_fields)
    return metrics


# --------------------------------------------------------------------------------------------
# Helpers for table parsing through the C parser


class _Src:
    """What a parser gets: path, validated bytes (complete lines only), warnings and meta to fill."""

    def __init__(self, path: str, data: bytes, report_type: str, separator: str, warns: list[str]):
        self.path = path
        self.data = data
        self.report_type = report_type
        self.separator = separator
        self.warnings = warns
        self.meta: dict[str, Any] = {}

    def fail(self, reason: str) -> ReportError:
        return ReportError(self.path, reason)


def _leading_lines(data: bytes, prefix: bytes, limit: int = 100) -> list[str]:
    """The leading lines that start with ``prefix`` (e.g. ``#`` headers), decoded and stripped."""
    out = []
    pos = 0
    while len(out) < limit:
        end = data.find(b"\n", pos)
        if end < 0:
            end = len(data)
        line = data[pos:end]
        if not line.lstrip().startswith(prefix):
            break
        out.append(line.decode("utf-8", "replace").strip())
        if end >= len(data):
            break
        pos = end + 1
    return out


def _header_names(line: str) -> list[str]:
    """Column names from a ``# a  b  c`` header: double-space separated (single if no double)."""
    body = line.lstrip("#").strip()
    return [n for n in re.split(r"\s{2,}" if "  " in body else r"\s+", body) if n]


def _is_numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


def _first_bad(src: _Src, frame: pd.DataFrame, col: str, skip: int) -> str:
    s = frame[col]
    conv = pd.to_numeric(s, errors="coerce")
    bad = conv.isna() & s.notna()
    idx = int(np.flatnonzero(bad.to_numpy())[0]) if bad.any() else 0
    where = f"data row {idx + 1} (around line {idx + 1 + skip})"
    if s.iloc[idx] == "":
        return f"{where} has too few fields (no value for column '{col}')"
    return f"column '{col}' is not numeric: {where} has {s.iloc[idx]!r}"


def _csv(src: _Src, names, *, skip: int = 0, sep: str = r"\s+", numeric=(), required=None,
         dtype=None, data: bytes | None = None, what: str | None = None) -> pd.DataFrame:
    """Parse whitespace/tab/space separated rows with the C parser; validate shape and numbers.

    ``skip`` leading lines are header lines. ``numeric`` columns must parse as numbers,
    ``required`` columns (default: all names) must be present on every row.
    """
    body = src.data if data is None else data
    what = what or src.report_type
    names = list(names)
    req = names if required is None else list(required)
    # A missing field reads as "" in required columns (so it is detected, even in numeric
    # columns where a literal NaN is a value) and as NaN in optional ones.
    na = {n: (_NA_STRICT if n in req else _NA) for n in names}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(
                io.BytesIO(body), sep=sep, header=None, names=names, skiprows=skip, engine="c",
                index_col=False, keep_default_na=False, na_values=na, quoting=csv.QUOTE_NONE,
                dtype=dtype, skip_blank_lines=True, comment=None,
            )
    except pd.errors.EmptyDataError:
        frame = pd.DataFrame({n: pd.Series([], dtype="float64" if n in numeric else "str") for n in names})
    except (pd.errors.ParserError, pd.errors.ParserWarning) as exc:
        msg = str(exc).replace("Error tokenizing data. C error: ", "").strip()
        if "Length of header or names" in msg:
            msg = "the first data row has more fields than expected"
        raise src.fail(f"not a well-formed {what}: {msg} (expected {len(names)} fields: {', '.join(names)})") from None
    except (ValueError, TypeError) as exc:
        raise src.fail(f"not a well-formed {what}: {exc}") from None
    too_few = f"has too few fields (expected {len(names)}: {', '.join(names)})"
    for col in req:
        s = frame[col]
        if _is_numeric(s):
            continue
        if isinstance(s.dtype, pd.CategoricalDtype):
            cats = s.array.categories
            miss = s.array.codes < 0
            if "" in cats:
                miss = miss | (s.array.codes == cats.get_loc(""))
        else:
            miss = (s.isna() | s.eq("")).to_numpy(dtype=bool)
        if miss.any():
            idx = int(np.flatnonzero(miss)[0])
            raise src.fail(f"not a well-formed {what}: data row {idx + 1} (around line {idx + 1 + skip}) {too_few}")
    for col in numeric:
        if not _is_numeric(frame[col]):
            if len(frame) == 0:
                frame[col] = frame[col].astype("float64")
                continue
            raise src.fail(f"not a well-formed {what}: {_first_bad(src, frame, col, skip)}")
    return frame


def _yes_no(src: _Src, s: pd.Series, col: str) -> pd.Series:
    ok = s.isin(["Y", "N"])
    if not ok.all():
        idx = int(np.flatnonzero(~ok.to_numpy())[0])
        raise src.fail(f"not a well-formed {src.report_type}: column '{col}' must be Y or N, "
                       f"data row {idx + 1} has {s.iloc[idx]!r}")
    return (s == "Y").astype(bool)


def _check_header(src: _Src, header: list[str], expected: list[str]) -> None:
    if not header:
        src.warnings.append(f"missing '#' header line (expected '# {'  '.join(expected)}')")
        return
    got = _header_names(header[-1])
    if got != expected:
        src.warnings.append(f"header names {got} differ from ONE's {expected}; columns use the documented names")


def _hash_header(src: _Src) -> list[str]:
    header = _leading_lines(src.data, b"#")
    src.meta["header"] = header
    return header


def _int_cols(frame: pd.DataFrame, cols) -> None:
    """Make integral float columns int64 when they have no NaN (keeps NaN columns float)."""
    for c in cols:
        s = frame[c]
        v = s.to_numpy()
        if s.dtype.kind == "f" and np.isfinite(v).all() and np.all(np.mod(v, 1) == 0):
            frame[c] = s.astype("int64")


# --------------------------------------------------------------------------------------------
# Parsers: (src) -> frame; they fill src.meta and src.warnings


def _p_keyvalue(src: _Src) -> pd.DataFrame:
    text = src.data.decode("utf-8")
    metrics, bad, other = _parse_keyvalue(text, src.separator)
    title = [ln for ln in other if ln]
    for ln in title:
        m = re.match(r"^(?:Message|Ping) stats for scenario (.*)$", ln)
        if m:
            src.meta["scenario"] = m.group(1).strip()
            src.meta["title"] = ln
            break
    if not metrics:
        raise src.fail(f"no 'key{src.separator} value' lines with a number: not a {src.report_type} "
                       f"(first lines: {[ln for ln in _split_lines(text) if ln.strip()][:2]!r})")
    if bad:
        src.warnings.append(f"{len(bad)} line(s) with an unparsable value skipped (like OppNDA): {bad[:3]!r}")
    keys = [ln.split(src.separator, 1)[0].strip() for ln in _split_lines(text) if src.separator in ln]
    dups = sorted({k for k in keys if keys.count(k) > 1}) if len(keys) != len(set(keys)) else []
    if dups:
        src.warnings.append(f"duplicate keys {dups[:5]}: the last value wins (like OppNDA)")
    extra = [ln for ln in title if ln != src.meta.get("title")]
    if extra:
        src.warnings.append(f"{len(extra)} line(s) without '{src.separator}' ignored: {extra[:3]!r}")
    if src.report_type in _EXPECTED_KEYS:
        missing = [k for k in _EXPECTED_KEYS[src.report_type] if k not in metrics]
        if missing:
            src.warnings.append(f"missing metrics {missing}")
        if "title" not in src.meta:
            src.warnings.append("missing the title line 'Message/Ping stats for scenario <name>'")
    return pd.DataFrame({"metric": pd.Series(list(metrics.keys()), dtype="str"),
                         "value": pd.Series(list(metrics.values()), dtype="float64")})


_EXPECTED_KEYS = {
    "MessageStatsReport": ["sim_time", "created", "started", "relayed", "aborted", "dropped", "removed",
                           "delivered", "delivery_prob", "response_prob", "overhead_ratio", "latency_avg",
                           "latency_med", "hopcount_avg", "hopcount_med", "buffertime_avg", "buffertime_med",
                           "rtt_avg", "rtt_med"],
    "PingAppReporter": ["sim_time", "pings sent", "pings received", "pongs sent", "pongs received",
                        "ping delivery prob", "pong delivery prob", "ping/pong success prob"],
}


def _p_simple(names, numeric=None, ints=()):
    """Parser for header-less whitespace tables with fixed columns."""
    numeric = tuple(names if numeric is None else numeric)

    def parse(src: _Src) -> pd.DataFrame:
        frame = _csv(src, names, numeric=numeric)
        _int_cols(frame, ints)
        return frame
    return parse


def _p_hash_table(names, numeric, ints=(), yes_no=()):
    """Parser for tables with one ``#`` header line giving ONE's column names."""
    def parse(src: _Src) -> pd.DataFrame:
        header = _hash_header(src)
        if len(header) == 1 and header[0].startswith("# no messages delivered") and src.report_type == "MessageDelayReport":
            return _no_delay(src, header[0], names)
        _check_header(src, header, list(names))
        frame = _csv(src, names, skip=len(header), numeric=numeric)
        _int_cols(frame, ints)
        for c in yes_no:
            frame[c] = _yes_no(src, frame[c], c)
        return frame
    return parse


def _no_delay(src: _Src, line: str, names) -> pd.DataFrame:
    m = re.search(r"sim time\s+(\S+)", line)
    src.meta["no_messages_delivered"] = True
    src.meta["note"] = "no messages were delivered in this run (valid, empty report)"
    if m:
        try:
            src.meta["sim_time"] = float(m.group(1))
        except ValueError:
            pass
    return pd.DataFrame({n: pd.Series([], dtype="float64") for n in names})


def _p_created(src: _Src) -> pd.DataFrame:
    return _p_hash_table(_COLS["CreatedMessagesReport"], numeric=("time", "size"),
                         ints=("size", "TTL"), yes_no=("isResponse",))(src)


def _p_delivered(src: _Src) -> pd.DataFrame:
    return _p_hash_table(_COLS["DeliveredMessagesReport"],
                         numeric=("time", "size", "hopcount", "deliveryTime"),
                         ints=("size", "hopcount", "remainingTtl"), yes_no=("isResponse",))(src)


def _p_distance_delay(src: _Src) -> pd.DataFrame:
    header = _hash_header(src)
    for ln in header:
        m = re.match(r"^#\s*Scenario\s+(\S+)", ln)
        if m:
            src.meta["scenario"] = m.group(1)
    frame = _csv(src, ["distance", "delay", "hops", "ID"], skip=len(header), numeric=("distance", "delay", "hops"))
    delivered = ~((frame["delay"] == -1) & (frame["hops"] == -1))
    frame["delay"] = frame["delay"].astype("float64").where(delivered)
    frame["hops"] = frame["hops"].astype("float64").where(delivered)
    frame["delivered"] = delivered.astype(bool)
    return frame


def _p_message_report(src: _Src) -> pd.DataFrame:
    header = _hash_header(src)
    names = ["ID", "start_time", "end_time", "duplicate"]
    frame = _csv(src, names, skip=len(header), numeric=("start_time", "end_time"),
                 required=("ID", "start_time", "end_time"))
    dup = frame["duplicate"]
    unknown = dup.notna() & (dup != "duplicate")
    if unknown.any():
        idx = int(np.flatnonzero(unknown.to_numpy())[0])
        raise src.fail(f"not a well-formed MessageReport: 4th field must be 'duplicate', data row {idx + 1} has {dup.iloc[idx]!r}")
    frame["delay"] = frame["end_time"] - frame["start_time"]
    frame["duplicate"] = dup.notna().astype(bool)
    return frame[["ID", "start_time", "end_time", "delay", "duplicate"]]


def _p_node_density(src: _Src) -> pd.DataFrame:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(io.BytesIO(src.data), sep=r"\s+", header=None, engine="c", index_col=False,
                                keep_default_na=False, na_values=_NA, quoting=csv.QUOTE_NONE)
    except (pd.errors.ParserError, pd.errors.ParserWarning, ValueError) as exc:
        raise src.fail(f"not a well-formed NodeDensityReport: {str(exc).replace('Error tokenizing data. C error: ', '')}") from None
    if frame.shape[1] < 3:
        raise src.fail(f"not a well-formed NodeDensityReport: {frame.shape[1]} fields per row, expected gx gy average samples...")
    frame.columns = ["gx", "gy", "average"] + [f"s{i}" for i in range(frame.shape[1] - 3)]
    for c in frame.columns:
        if not _is_numeric(frame[c]):
            raise src.fail(f"not a well-formed NodeDensityReport: {_first_bad(src, frame, c, 0)}")
    src.meta["samples"] = frame.shape[1] - 3
    return frame


def _p_radius(src: _Src) -> pd.DataFrame:
    return _csv(src, ["node", "host", "center_x", "center_y", "radius"], numeric=("node", "center_x", "center_y", "radius"))


def _p_connectivity_one(src: _Src) -> pd.DataFrame:
    frame = _csv(src, ["time", "conn", "host1", "host2", "state"], sep=" ",
                 numeric=("time", "host1", "host2"), dtype={"conn": "category", "state": "category"})
    _check_values(src, frame["conn"], {"CONN"}, "second field")
    _check_values(src, frame["state"], {"up", "down"}, "state")
    return frame.drop(columns="conn")


def _p_connectivity_dtnsim2(src: _Src) -> pd.DataFrame:
    data = src.data.replace(b"@", b"")
    frame = _csv(src, ["time", "host1", "arrow", "host2", "state"], sep=" ", numeric=("time",), data=data,
                 dtype={"host1": "category", "host2": "category", "arrow": "category", "state": "category"})
    _check_values(src, frame["arrow"], {"<->"}, "separator '<->'")
    _check_values(src, frame["state"], {"up", "down"}, "state")
    return frame.drop(columns="arrow")


def _check_values(src: _Src, s: pd.Series, allowed: set, what: str) -> None:
    if isinstance(s.dtype, pd.CategoricalDtype):
        cats = s.array.categories
        bad_cat = np.array([c not in allowed for c in cats], dtype=bool)
        if not bad_cat.any():
            return
        codes = s.array.codes
        bad = (codes >= 0) & bad_cat[np.where(codes >= 0, codes, 0)]
    else:
        bad = ~s.isin(list(allowed)).to_numpy(dtype=bool)
    if bad.any():
        idx = int(np.flatnonzero(bad)[0])
        raise src.fail(f"not a well-formed {src.report_type}: {what} must be one of {sorted(allowed)}, "
                       f"line {idx + 1} has {s.iloc[idx]!r}")


def _codes_in(c: pd.Categorical, cats: pd.Index) -> np.ndarray:
    """Codes of ``c`` re-expressed against ``cats`` (a superset of its categories); -1 stays -1."""
    idx = cats.get_indexer(c.categories)
    codes = c.codes
    if not len(idx):
        return np.full(len(codes), -1, dtype=np.int32)
    return np.where(codes >= 0, idx.astype(np.int32)[codes], np.int32(-1))


def _compact(codes: np.ndarray, cats: pd.Index) -> pd.Categorical:
    """Categorical from codes, dropping unused categories in O(n) (no sort of the codes)."""
    valid = codes >= 0
    used = np.bincount(codes[valid], minlength=len(cats)) > 0
    remap = (np.cumsum(used) - 1).astype(np.int32)
    new = np.where(valid, remap[np.where(valid, codes, 0)] if len(cats) else -1, -1)
    return pd.Categorical.from_codes(new, categories=cats[used], validate=False)


def _move_codes(target: pd.Categorical, source: pd.Categorical,
                mask: np.ndarray) -> tuple[pd.Categorical, pd.Categorical]:
    """Move values of ``source`` into ``target`` where ``mask`` (vectorized, via category codes)."""
    cats = target.categories.union(source.categories)
    tc = _codes_in(target, cats)
    sc = _codes_in(source, cats)
    return _compact(np.where(mask, sc, tc), cats), _compact(np.where(mask, -1, sc), cats)


def _ffill_index(mask: np.ndarray) -> np.ndarray:
    """For each row, the index of the last row at or before it where ``mask`` is true (0 if none)."""
    dt = np.int32 if len(mask) < 2**31 - 1 else np.int64
    idx = np.where(mask, np.arange(len(mask), dtype=dt), dt(0))
    return np.maximum.accumulate(idx) if len(idx) else idx


def _blocks(src: _Src, col: pd.Categorical) -> tuple[np.ndarray, np.ndarray]:
    """``[t]`` snapshot markers in a categorical column: (row is a marker, t of each row's block)."""
    cats = pd.Index(col.categories.astype(str))
    codes = col.codes
    cat_block = np.asarray(cats.str.startswith("["), dtype=bool)
    cat_t = np.full(len(cats), np.nan)
    if cat_block.any():
        marks = cats[cat_block]
        t = pd.to_numeric(marks.str.slice(1, -1), errors="coerce").to_numpy(dtype="float64")
        bad = np.isnan(t) | ~np.asarray(marks.str.endswith("]"), dtype=bool)
        if bad.any():
            raise src.fail(f"not a well-formed {src.report_type}: bad snapshot marker {marks[bad][0]!r} "
                           "(expected '[<time>]')")
        cat_t[cat_block] = t
    is_block = (codes >= 0) & cat_block[np.where(codes >= 0, codes, 0)] if len(cats) else np.zeros(len(codes), bool)
    if len(codes) and not is_block[0]:
        first = cats[codes[0]] if codes[0] >= 0 else ""
        raise src.fail(f"not a well-formed {src.report_type}: expected a '[time]' line first, got {first!r}")
    t_rows = cat_t[np.where(codes >= 0, codes, 0)] if len(cats) else np.zeros(len(codes))
    return is_block, t_rows[_ffill_index(is_block)]


_EVENT_FIELDS = {"CONN": 5, "C": 4, "S": 5, "DE": 6, "A": 5, "DR": 4, "R": 4}


def _p_eventlog(src: _Src) -> pd.DataFrame:
    names = ["time", "action", "host1", "host2", "msg", "extra"]
    cat = {n: "category" for n in names[1:]}
    frame = _csv(src, names, sep=" ", numeric=("time",), required=("time", "action", "host1"), dtype=cat)
    action = frame["action"]
    _check_values(src, action, set(_EVENT_FIELDS), "action")
    # check the field count of each action: count of non-missing fields per row
    nfields = 2 + sum((frame[c].array.codes >= 0).astype(np.int8) for c in ("host1", "host2", "msg", "extra"))
    acats = action.array.categories
    expected = np.array([_EVENT_FIELDS[c] for c in acats], dtype=np.int64)[action.array.codes]
    bad = nfields != expected
    if bad.any():
        idx = int(np.flatnonzero(bad)[0])
        raise src.fail(f"not a well-formed EventLogReport: line {idx + 1} ('{action.iloc[idx]}' event) has "
                       f"{nfields[idx]} fields, expected {expected[idx]}")
    codes = action.array.codes
    short = np.array([c in ("C", "DR", "R") for c in acats], dtype=bool)[codes]  # time act host msg -> msg in host2
    conn = np.array([c == "CONN" for c in acats], dtype=bool)[codes]              # time CONN h1 h2 up -> state in msg
    host2 = frame["host2"].array
    msg = frame["msg"].array
    extra = frame["extra"].array
    if short.any():
        msg, host2 = _move_codes(msg, host2, short)
    if conn.any():
        extra, msg = _move_codes(extra, msg, conn)
    frame["host2"] = host2
    frame["msg"] = msg
    frame["extra"] = extra
    return frame


def _p_adjacency(src: _Src) -> pd.DataFrame:
    body, head, tail = _dot_body(src, b"graph")
    body = body.replace(b"--", b" ").replace(b"[weight=", b" ").replace(b"];", b" ")
    frame = _csv(src, ["host1", "host2", "weight"], numeric=("weight",), data=body)
    _int_cols(frame, ["weight"])
    return frame


def _p_message_graph(src: _Src) -> pd.DataFrame:
    comment = _leading_lines(src.data, b"", limit=3)
    text = " ".join(comment[:2])
    m = re.search(r"/\*\s*scenario\s+(\S+)", text)
    if m:
        src.meta["scenario"] = m.group(1)
    m = re.search(r"(\d+)\s+messages delivered at sim time\s+(\S+?)\s*\*/", text)
    if m:
        src.meta["delivered_messages"] = int(m.group(1))
        sim_time = _f(m.group(2))
        if math.isnan(sim_time):
            src.warnings.append(f"unreadable sim time {m.group(2)!r} in the header comment")
        else:
            src.meta["sim_time"] = sim_time
    body, head, tail = _dot_body(src, b"digraph")
    frame = _csv(src, ["path"], sep="\x1f", data=body)
    path = frame["path"].astype("str").str.strip().str.rstrip(";").str.strip()
    if not len(path):
        return pd.DataFrame({"path": pd.Series([], dtype="str"), "source": pd.Series([], dtype="str"),
                             "destination": pd.Series([], dtype="str"), "hops": pd.Series([], dtype="int64")})
    frame = pd.DataFrame({"path": path,
                          "source": path.str.partition("->")[0],
                          "destination": path.str.rpartition("->")[2],
                          "hops": path.str.count("->").astype("int64")})
    n = src.meta.get("delivered_messages")
    if n is not None and n != len(frame):
        src.warnings.append(f"comment says {n} messages delivered but the graph has {len(frame)} paths")
    return frame


def _dot_body(src: _Src, keyword: bytes) -> tuple[bytes, bytes, bytes]:
    """Cut a DOT file into (edge lines, text before ``{``, text after the closing ``}``)."""
    data = src.data
    m = re.search(rb"(^|\n)\s*" + keyword + rb"\s+\w*\s*\{[ \t]*\r?\n", data)
    if not m:
        raise src.fail(f"not a {src.report_type}: no '{keyword.decode()} ... {{' line (Graphviz DOT expected)")
    start = m.end()
    end = data.rfind(b"\n}")
    if end < start - 1:
        src.warnings.append("no closing '}' line: the graph may be truncated")
        return data[start:], data[:start], b""
    return data[start:end + 1], data[:start], data[end + 1:]


def _p_location_snapshot(src: _Src) -> pd.DataFrame:
    frame = _csv(src, ["host", "x", "y"], numeric=(), required=("host",), dtype={"host": "category"})
    is_block, t = _blocks(src, frame["host"].array)
    rows = ~is_block
    for c in ("x", "y"):
        if not _is_numeric(frame[c]) or frame[c].to_numpy()[rows].dtype.kind != "f" and len(frame):
            raise src.fail(f"not a well-formed LocationSnapshotReport: {_first_bad(src, frame[rows], c, 0)}")
        if np.isnan(frame[c].to_numpy("float64")[rows]).any():
            raise src.fail("not a well-formed LocationSnapshotReport: a host line has fewer than 3 fields")
    host = frame["host"].array
    codes = host.codes.astype(np.int64)[rows]
    out = pd.DataFrame({"t": t[rows], "host": _compact(codes, host.categories),
                        "x": frame["x"].to_numpy("float64")[rows], "y": frame["y"].to_numpy("float64")[rows]})
    src.meta["snapshots"] = int(is_block.sum())
    return out


def _p_copy_count(src: _Src) -> pd.DataFrame:
    frame = _csv(src, ["msg", "copies"], numeric=("copies",), required=("msg",), dtype={"msg": "category"})
    is_block, t = _blocks(src, frame["msg"].array)
    rows = ~is_block
    copies = frame["copies"].to_numpy("float64")[rows]
    if not np.isfinite(copies).all() or np.any(np.mod(copies, 1) != 0):
        raise src.fail("not a well-formed MessageCopyCountReport: a line has no whole-number copy count "
                       "(expected 'msgId copies')")
    msg = frame["msg"].array
    out = pd.DataFrame({"t": t[rows], "msg": _compact(msg.codes.astype(np.int64)[rows], msg.categories),
                        "copies": copies.astype("int64")})
    src.meta["snapshots"] = int(is_block.sum())
    return out


def _p_message_location(src: _Src) -> pd.DataFrame:
    # One token per line through the C parser (as categories), then vectorized on the codes:
    # '[t]' markers, '(x,y)' holder coordinates and the message IDs each holder carries.
    data = src.data.replace(b" ", b"\n")
    if b"\t" in data:
        data = data.replace(b"\t", b"\n")
    tok = _csv(src, ["tok"], sep="\x1f", data=data, dtype={"tok": "category"})["tok"].array
    is_block, t = _blocks(src, tok)
    cats = pd.Index(tok.categories.astype(str))
    codes = tok.codes
    cat_coord = np.asarray(cats.str.startswith("("), dtype=bool)
    cat_x = np.full(len(cats), np.nan)
    cat_y = np.full(len(cats), np.nan)
    if cat_coord.any():
        xy = cats[cat_coord].str.strip("()").str.split(",", n=1, expand=True)
        if xy.nlevels != 2:
            raise src.fail("not a well-formed MessageLocationReport: coordinates must look like '(x,y)'")
        xs = pd.to_numeric(xy.get_level_values(0), errors="coerce").to_numpy("float64")
        ys = pd.to_numeric(xy.get_level_values(1), errors="coerce").to_numpy("float64")
        bad = np.isnan(xs) | np.isnan(ys)
        if bad.any():
            raise src.fail(f"not a well-formed MessageLocationReport: bad coordinate {cats[cat_coord][bad][0]!r}")
        cat_x[cat_coord] = xs
        cat_y[cat_coord] = ys
    safe = np.where(codes >= 0, codes, 0)
    is_coord = cat_coord[safe] & (codes >= 0)
    is_msg = ~(is_block | is_coord)
    seen = np.cumsum(is_coord)                           # coordinates seen so far
    at_coord = _ffill_index(is_coord | is_block)         # the last coordinate or marker
    if (is_block[at_coord] & is_msg).any():
        raise src.fail("not a well-formed MessageLocationReport: a message ID appears before any '(x,y)' coordinate")
    holder = seen - seen[_ffill_index(is_block)] - 1     # holder line index within its snapshot
    rows = np.flatnonzero(is_msg)
    coord_rows = at_coord[rows]
    out = pd.DataFrame({"t": t[rows], "holder": holder[rows].astype("int32"),
                        "x": cat_x[safe[coord_rows]], "y": cat_y[safe[coord_rows]],
                        "msg": _compact(codes[rows], tok.categories)})
    src.meta["snapshots"] = int(is_block.sum())
    return out


def _p_ns2(src: _Src) -> pd.DataFrame:
    data = (src.data.replace(b'"', b" ").replace(b"\\$node_(", b" ").replace(b"$node_(", b" ")
            .replace(b")", b" ").replace(b"$ns_ at ", b" "))
    # init lines -> "i set X_ v" ; moves -> "time i setdest x y speed"
    names = ["a", "b", "c", "d", "e", "f"]
    frame = _csv(src, names, numeric=("a",), required=("a", "b", "c", "d"), data=data,
                 dtype={"b": "str", "c": "str"},
                 what="MovementNs2Report (lines '$node_(i) set X_ x' or '$ns_ at t \"$node_(i) setdest x y speed\"')")
    is_move = (frame["c"] == "setdest").to_numpy()
    is_init = frame["b"].eq("set").to_numpy()
    bad = ~(is_move | is_init)
    if bad.any():
        idx = int(np.flatnonzero(bad)[0])
        raise src.fail(f"not a well-formed MovementNs2Report: line {idx + 1} is neither '$node_(i) set' nor "
                       "'$ns_ at t \"$node_(i) setdest x y speed\"'")
    mv = frame[is_move]
    num = {}
    for c in ("b", "d", "e", "f"):
        num[c] = pd.to_numeric(mv[c], errors="coerce")
        if num[c].isna().any():
            raise src.fail("not a well-formed MovementNs2Report: a setdest line has a non-numeric field")
    out = pd.DataFrame({"time": mv["a"].to_numpy("float64"), "node": num["b"].to_numpy().astype("int64"),
                        "x": num["d"].to_numpy("float64"), "y": num["e"].to_numpy("float64"),
                        "speed": num["f"].to_numpy("float64")})
    init = frame[is_init]
    if len(init):
        val = pd.to_numeric(init["d"], errors="coerce")
        ini = pd.DataFrame({"node": init["a"].astype("int64").to_numpy(), "axis": init["c"].str.rstrip("_").str.lower().to_numpy(),
                            "v": val.to_numpy("float64")})
        pos = ini.pivot_table(index="node", columns="axis", values="v", aggfunc="first").reset_index()
        pos.columns.name = None
        src.meta["initial_positions"] = pos
    return out


# --------------------------------------------------------------------------------------------
# Generic (unknown type)


def _p_generic(src: _Src) -> pd.DataFrame:
    text = src.data.decode("utf-8")
    lines = [ln.strip() for ln in _split_lines(text) if ln.strip()]
    with_sep = sum(1 for ln in lines if src.separator in ln)
    if with_sep and with_sep * 2 >= len(lines):
        metrics, bad, other = _parse_keyvalue(text, src.separator)
        if metrics:
            src.meta["generic_format"] = "keyvalue"
            if other:
                src.meta["title"] = other[0]
            if bad:
                src.warnings.append(f"{len(bad)} line(s) with an unparsable value skipped: {bad[:3]!r}")
            return pd.DataFrame({"metric": pd.Series(list(metrics), dtype="str"),
                                 "value": pd.Series(list(metrics.values()), dtype="float64")})
    header = _hash_header(src)
    body_lines = [ln for ln in lines if not ln.startswith("#")]
    if not body_lines:
        raise src.fail("unknown report type and no data lines (only '#' comments)")
    ncols = max(len(ln.split()) for ln in body_lines)  # generic fallback only
    names = [f"c{i}" for i in range(ncols)]
    if header:
        hn = _header_names(header[-1])
        if len(hn) == ncols and len(set(hn)) == ncols:
            names = hn
    frame = _csv(src, names, skip=len(header), required=(), what="whitespace table")
    src.meta["generic_format"] = "table"
    return frame


# --------------------------------------------------------------------------------------------
# Registry

_COLS = {
    "CreatedMessagesReport": ["time", "ID", "size", "fromHost", "toHost", "TTL", "isResponse"],
    "DeliveredMessagesReport": ["time", "ID", "size", "hopcount", "deliveryTime", "fromHost", "toHost",
                                "remainingTtl", "isResponse", "path"],
    "MessageDelayReport": ["messageDelay", "cumulativeProbability"],
    "MessageDeliveryReport": ["time", "created", "delivered", "delivered/created"],
    "TotalContactTimeReport": ["time", "totalContactTime"],
}


@dataclass(frozen=True)
class _Spec:
    kind: str
    parse: Callable[[_Src], pd.DataFrame]


_SPECS: dict[str, _Spec] = {
    "MessageStatsReport": _Spec("keyvalue", _p_keyvalue),
    "PingAppReporter": _Spec("keyvalue", _p_keyvalue),
    "AdjacencyGraphvizReport": _Spec("graph", _p_adjacency),
    "MessageGraphvizReport": _Spec("graph", _p_message_graph),
    "BufferOccupancyReport": _Spec("timeseries", _p_simple(["time", "occupancy", "variance"])),
    "ContactsPerHourReport": _Spec("timeseries", _p_simple(["hour", "contacts"], ints=("hour", "contacts"))),
    "MessageDeliveryReport": _Spec("timeseries", _p_hash_table(_COLS["MessageDeliveryReport"], _COLS["MessageDeliveryReport"],
                                                               ints=("created", "delivered"))),
    "MessageDelayReport": _Spec("timeseries", _p_hash_table(_COLS["MessageDelayReport"], _COLS["MessageDelayReport"])),
    "TotalContactTimeReport": _Spec("timeseries", _p_hash_table(_COLS["TotalContactTimeReport"], _COLS["TotalContactTimeReport"])),
    "ContactTimesReport": _Spec("histogram", _p_simple(["duration", "count"], ints=("count",))),
    "InterContactTimesReport": _Spec("histogram", _p_simple(["duration", "count"], ints=("count",))),
    "ContactsDuringAnICTReport": _Spec("histogram", _p_simple(["contacts", "count"], ints=("contacts", "count"))),
    "TotalEncountersReport": _Spec("histogram", _p_simple(["encounters", "nodes"], ints=("encounters", "nodes"))),
    "UniqueEncountersReport": _Spec("histogram", _p_simple(["permille", "nodes"], ints=("permille", "nodes"))),
    "JumpSizeDistributionReport": _Spec("histogram", _p_simple(["bin_center", "density", "count"], ints=("count",))),
    "CreatedMessagesReport": _Spec("table", _p_created),
    "DeliveredMessagesReport": _Spec("table", _p_delivered),
    "DistanceDelayReport": _Spec("table", _p_distance_delay),
    "EncountersVSUniqueEncountersReport": _Spec("table", _p_simple(["node", "encounters", "unique_encounters"],
                                                                   ints=("node", "encounters", "unique_encounters"))),
    "MessageReport": _Spec("table", _p_message_report),
    "NodeDensityReport": _Spec("table", _p_node_density),
    "RadiusOfGyrationReport": _Spec("table", _p_radius),
    "LocationSnapshotReport": _Spec("snapshot", _p_location_snapshot),
    "MessageCopyCountReport": _Spec("snapshot", _p_copy_count),
    "MessageLocationReport": _Spec("snapshot", _p_message_location),
    "ConnectivityONEReport": _Spec("events", _p_connectivity_one),
    "ConnectivityDtnsim2Report": _Spec("events", _p_connectivity_dtnsim2),
    "EventLogReport": _Spec("events", _p_eventlog),
    "MovementNs2Report": _Spec("events", _p_ns2),
}

KNOWN_REPORT_TYPES: tuple[str, ...] = tuple(sorted(_SPECS))
KIND_OF: dict[str, str] = {name: spec.kind for name, spec in _SPECS.items()}
_BY_LOWER = {name.lower(): name for name in _SPECS}


# --------------------------------------------------------------------------------------------
# Type detection


def _type_from_name(path: str) -> str | None:
    stem = Path(path).name
    if stem.lower().endswith(".txt"):
        stem = stem[:-4]
    last = stem.rsplit("_", 1)[-1]
    return _BY_LOWER.get(last.lower())


_NUM = r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"


def _sniff(text: str) -> tuple[str, list[str]]:
    """Guess the report type from the first lines; returns (type or 'unknown', ambiguous alternatives)."""
    lines = [ln.rstrip("\r") for ln in text.split("\n")]
    if lines and not text.endswith("\n"):
        lines = lines[:-1]  # the head may end mid-line
    lines = [ln for ln in lines if ln.strip()]
    if not lines:
        return UNKNOWN, []
    first = lines[0].strip()
    rest = [ln.strip() for ln in lines[1:12]]
    if first.startswith("Message stats for scenario"):
        return "MessageStatsReport", []
    if first.startswith("Ping stats for scenario"):
        return "PingAppReporter", []
    if re.match(r"^graph\s+\w*\s*\{", first):
        return "AdjacencyGraphvizReport", []
    if first.startswith("/*") and any(ln.startswith("digraph") for ln in rest[:3]):
        return "MessageGraphvizReport", []
    if first.startswith("#"):
        names = _header_names(first)
        for t in ("CreatedMessagesReport", "DeliveredMessagesReport", "MessageDelayReport",
                  "MessageDeliveryReport", "TotalContactTimeReport"):
            if names == _COLS[t]:
                return t, []
        if first.startswith("# no messages delivered"):
            return "MessageDelayReport", []
        if first.startswith("# messages: ID"):
            return "MessageReport", []
        if first.startswith("# Scenario") and rest and rest[0].startswith("# distance at msg send"):
            return "DistanceDelayReport", []
        return UNKNOWN, []
    if first.startswith("$node_(") or first.startswith("$ns_ at"):
        return "MovementNs2Report", []
    if re.match(r"^@" + _NUM + r" \S+ <-> \S+ (up|down)$", first):
        return "ConnectivityDtnsim2Report", []
    if re.match(r"^\[" + _NUM + r"\]$", first) and rest:
        nxt = rest[0].split()
        if rest[0].startswith("("):
            return "MessageLocationReport", []
        if len(nxt) == 2 and re.fullmatch(r"\d+", nxt[1]):
            return "MessageCopyCountReport", []
        if len(nxt) == 3:
            return "LocationSnapshotReport", []
        return UNKNOWN, []
    data_lines = [ln.strip() for ln in lines[:200]]
    toks = first.split()
    if len(toks) >= 4 and re.fullmatch(_NUM, toks[0]) and toks[1] in _EVENT_FIELDS:
        if toks[1] == "CONN" and all(re.fullmatch(r"\d+", x) for x in toks[2:4]) and re.fullmatch(r"\d+\.\d\d", toks[0]):
            return "ConnectivityONEReport", []
        return "EventLogReport", []
    if "\t" in first:
        cols = [ln.split("\t") for ln in data_lines]
        if all(len(c) == 3 for c in cols):
            return "EncountersVSUniqueEncountersReport", []
        if all(len(c) == 2 for c in cols):
            counts = [int(c[1]) for c in cols if c[1].strip().isdigit()]
            if (0 in counts) or len(lines) >= 100:
                return "ContactsDuringAnICTReport", ["ContactsPerHourReport"]
            return "ContactsPerHourReport", ["ContactsDuringAnICTReport"]
        return UNKNOWN, []
    if all(re.fullmatch(r"\d+ " + r"\S+" + r"(?: " + _NUM + r"){3}", ln) for ln in data_lines[:20]) and \
            not re.fullmatch(_NUM, toks[1]):
        return "RadiusOfGyrationReport", []
    if len(toks) > 5 and all(re.fullmatch(_NUM, x) for x in toks):
        return "NodeDensityReport", []
    if len(toks) == 3 and all(re.fullmatch(_NUM, x) for x in toks):
        if re.fullmatch(r"\d+", toks[2]):
            return "JumpSizeDistributionReport", []
        return "BufferOccupancyReport", []
    if len(toks) == 2 and all(re.fullmatch(_NUM, x) for x in toks):
        if re.fullmatch(r"\d+\.0", toks[0]):
            return "ContactTimesReport", ["InterContactTimesReport"]
        if re.fullmatch(r"\d+", toks[0]) and re.fullmatch(r"\d+", toks[1]):
            complete = text.endswith("\n") and len(lines) == 1000 and lines[-1].split()[0] == "999"
            if complete:
                return "UniqueEncountersReport", ["TotalEncountersReport"]
            return "TotalEncountersReport", ["UniqueEncountersReport"]
    return UNKNOWN, []


def detect_report_type(path: str | os.PathLike, head: bytes | None = None) -> str:
    """The report class: from the file name (last ``_`` part), else sniffed from the first bytes.

    Returns ``"unknown"`` when neither works (or the file cannot be read for sniffing). Pass
    ``head=b""`` to use the name only (no I/O), or the first bytes you already read.
    """
    path = os.fspath(path)
    by_name = _type_from_name(path)
    if by_name:
        return by_name
    return _detect_by_content(path, head)[0]


def _detect_by_content(path: str, head: bytes | None) -> tuple[str, list[str]]:
    if head is None:
        try:
            with open(path, "rb") as fh:
                head = fh.read(_SNIFF_BYTES)
        except OSError:
            return UNKNOWN, []
    if b"\x00" in head:
        return UNKNOWN, []
    return _sniff(head.decode("utf-8", "replace"))


# --------------------------------------------------------------------------------------------
# Entry point


def read_report(path: str | os.PathLike, report_type: str | None = None, *, separator: str = ":") -> Report:
    """Read one ONE report file into a :class:`Report` (tidy frame + type + header metadata).

    ``report_type`` overrides detection (a class name from :data:`KNOWN_REPORT_TYPES` or
    ``"unknown"`` for generic parsing); ``separator`` is the key/value separator (OppNDA's
    ``data_separator``) for key:value and generic reports. Raises only :class:`ReportError`.
    """
    try:
        path = os.fspath(path)
    except TypeError:
        raise ReportError(repr(path), "not a file path") from None
    try:
        return _read_report(path, report_type, separator)
    except ReportError:
        raise
    except MemoryError:
        raise ReportError(path, "out of memory while parsing the report") from None
    except Exception as exc:  # never let a parser bug escape as another exception type
        raise ReportError(path, f"could not parse as {report_type or 'a report'}: {type(exc).__name__}: {exc}") from None


def _read_report(path: str, report_type: str | None, separator: str) -> Report:
    if not isinstance(separator, str) or not separator:
        raise ReportError(path, f"separator must be a non-empty string, got {separator!r}")
    warns: list[str] = []
    meta: dict[str, Any] = {}
    alternatives: list[str] = []
    if report_type is not None:
        rt = _BY_LOWER.get(str(report_type).lower())
        if rt is None and str(report_type).lower() not in (UNKNOWN, "generic"):
            raise ReportError(path, f"unknown report_type {report_type!r}; use one of {', '.join(KNOWN_REPORT_TYPES)} "
                                    "or 'unknown' for generic parsing")
        rt = rt or UNKNOWN
        source = "argument"
    else:
        rt = _type_from_name(path)
        source = "filename"
    data = _read_bytes(path)
    data = _check_text(path, data, warns)
    if rt is None:
        rt, alternatives = _detect_by_content(path, data[:_SNIFF_BYTES])
        source = "content"
        if alternatives:
            warns.append(f"report type sniffed from content as {rt}; could also be {', '.join(alternatives)} "
                         "(name the file ..._<ReportClass>.txt or pass report_type=)")
    meta["type_source"] = source
    meta["file_size"] = len(data)
    src = _Src(path, data, rt, separator, warns)
    if rt == UNKNOWN:
        kind = "generic"
        meta["note"] = ("unknown report type (not in the file name, not recognised from the content): "
                        "parsed generically")
        frame = _p_generic(src)
    else:
        spec = _SPECS[rt]
        kind = spec.kind
        try:
            frame = spec.parse(src)
        except ReportError as exc:
            guess, _ = _detect_by_content(path, data[:_SNIFF_BYTES])
            if guess not in (UNKNOWN, rt) and source != "content":
                raise ReportError(path, f"{exc.reason} -- the content looks like a {guess}; rename the file "
                                        f"or pass report_type='{guess}'") from None
            raise
    meta.update(src.meta)
    meta["rows"] = int(len(frame))
    meta["warnings"] = warns
    del src
    return Report(path=path, report_type=rt, kind=kind, frame=frame, meta=meta)


# --------------------------------------------------------------------------------------------
# Summaries


def _f(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _stats(s: pd.Series, prefix: str, *, p90: bool = False) -> dict[str, float]:
    s = pd.to_numeric(s, errors="coerce").dropna()
    out = {f"{prefix}_mean": _f(s.mean()) if len(s) else math.nan,
           f"{prefix}_median": _f(s.median()) if len(s) else math.nan}
    if p90:
        out[f"{prefix}_p90"] = _f(s.quantile(0.9)) if len(s) else math.nan
    return out


def _numeric_aggregates(frame: pd.DataFrame, skip=()) -> dict[str, float]:
    out = {"rows": float(len(frame))}
    for c in frame.columns:
        if c in skip or not _is_numeric(frame[c]):
            continue
        out.update(_stats(frame[c], str(c)))
    return out


def _hist(x: pd.Series, y: pd.Series) -> tuple[dict[str, float], pd.DataFrame]:
    xv = x.to_numpy("float64")
    yv = y.to_numpy("float64")
    total = float(yv.sum())
    out = {"total": total, "mean": math.nan, "median": math.nan, "max": math.nan,
           "nonzero_bins": float((yv > 0).sum())}
    if total > 0:
        out["mean"] = float((xv * yv).sum() / total)
        cum = np.cumsum(yv)
        out["median"] = float(xv[np.searchsorted(cum, total / 2.0)])
        out["max"] = float(xv[yv > 0].max())
    return out, pd.DataFrame({"x": xv, "y": yv})


def _series(x, y, **extra) -> pd.DataFrame:
    d = {"x": np.asarray(x, dtype="float64"), "y": np.asarray(y, dtype="float64")}
    for k, v in extra.items():
        d[k] = np.asarray(v, dtype="float64")
    return pd.DataFrame(d)


def _ts_scalars(y: pd.Series) -> dict[str, float]:
    v = y.to_numpy("float64")
    if not len(v):
        return {"final": math.nan, "mean": math.nan, "max": math.nan}
    return {"final": float(v[-1]), "mean": float(np.nanmean(v)), "max": float(np.nanmax(v))}


def _contacts(frame: pd.DataFrame, h1: str, h2: str, state: str) -> dict[str, float]:
    """Pair up/down events per unordered host pair (k-th up with k-th down) -> contact stats."""
    a = frame[h1].astype(str).to_numpy(dtype=object)
    b = frame[h2].astype(str).to_numpy(dtype=object)
    swap = a > b
    lo = np.where(swap, b, a)
    hi = np.where(swap, a, b)
    st = frame[state].astype(str).to_numpy(dtype=object)
    df = pd.DataFrame({"lo": lo, "hi": hi, "st": st, "time": frame["time"].to_numpy("float64")})
    df["k"] = df.groupby(["lo", "hi", "st"], sort=False).cumcount()
    up = df[df["st"] == "up"]
    down = df[df["st"] == "down"]
    m = up.merge(down, on=["lo", "hi", "k"], suffixes=("_up", "_down"))
    dur = (m["time_down"] - m["time_up"]).to_numpy()
    return {"events": float(len(df)), "up": float(len(up)), "down": float(len(down)),
            "contacts": float(len(m)), "open_at_end": float(len(up) - len(m)),
            "pairs": float(len(df.drop_duplicates(["lo", "hi"]))),
            "contact_duration_mean": float(dur.mean()) if len(dur) else math.nan,
            "contact_duration_median": float(np.median(dur)) if len(dur) else math.nan,
            "contact_time_total": float(dur.sum()) if len(dur) else 0.0}


def _s_keyvalue(r: Report) -> Summary:
    f = r.frame
    return Summary({str(k): float(v) for k, v in zip(f["metric"], f["value"])})


def _s_hist(xcol: str, ycol: str, below10: bool = False):
    def summ(r: Report) -> Summary:
        sc, curve = _hist(r.frame[xcol], r.frame[ycol])
        if below10:
            x = r.frame[xcol].to_numpy("float64")
            y = r.frame[ycol].to_numpy("float64")
            sc["frac_below_10s"] = float(y[x < 10].sum() / sc["total"]) if sc["total"] > 0 else math.nan
        return Summary(sc, curve, "histogram")
    return summ


def _s_jump(r: Report) -> Summary:
    sc, curve = _hist(r.frame["bin_center"], r.frame["count"])
    curve["density"] = r.frame["density"].to_numpy("float64")
    return Summary(sc, curve, "histogram")


def _s_buffer(r: Report) -> Summary:
    f = r.frame
    sc = _ts_scalars(f["occupancy"])
    sc["variance_mean"] = _f(f["variance"].mean()) if len(f) else math.nan
    sc["final_time"] = _f(f["time"].iloc[-1]) if len(f) else math.nan
    return Summary(sc, _series(f["time"], f["occupancy"], variance=f["variance"]), "timeseries")


def _s_per_hour(r: Report) -> Summary:
    f = r.frame
    sc = _ts_scalars(f["contacts"])
    sc.update({"hours": float(len(f)), "total": float(f["contacts"].sum()),
               "min": _f(f["contacts"].min()) if len(f) else math.nan})
    return Summary(sc, _series(f["hour"], f["contacts"]), "timeseries")


def _s_delivery(r: Report) -> Summary:
    f = r.frame
    ratio = f["delivered/created"]
    sc = _ts_scalars(ratio)
    last = f.iloc[-1] if len(f) else None
    sc.update({"created": _f(last["created"]) if last is not None else math.nan,
               "delivered": _f(last["delivered"]) if last is not None else math.nan,
               "final_time": _f(last["time"]) if last is not None else math.nan})
    return Summary(sc, _series(f["time"], ratio, created=f["created"], delivered=f["delivered"]), "timeseries")


def _s_delay(r: Report) -> Summary:
    f = r.frame
    d = f["messageDelay"]
    sc = {"delivered": float(len(f)),
          "final": _f(f["cumulativeProbability"].iloc[-1]) if len(f) else 0.0}
    sc.update(_stats(d, "delay", p90=True))
    sc["delay_max"] = _f(d.max()) if len(f) else math.nan
    if len(f):
        curve = _series(d, f["cumulativeProbability"])
    else:
        end = r.meta.get("sim_time", 0.0)
        curve = _series([0.0, end] if end else [0.0], [0.0, 0.0] if end else [0.0])
    return Summary(sc, curve, "timeseries")


def _s_total_contact(r: Report) -> Summary:
    f = r.frame
    sc = _ts_scalars(f["totalContactTime"])
    t_end = _f(f["time"].iloc[-1]) if len(f) else math.nan
    sc["final_time"] = t_end
    sc["slope"] = sc["final"] / t_end if len(f) and t_end > 0 else math.nan
    return Summary(sc, _series(f["time"], f["totalContactTime"]), "timeseries")


def _s_created(r: Report) -> Summary:
    f = r.frame
    sc = {"created": float(len(f))}
    sc.update(_stats(f["size"], "size"))
    sc.update({"size_min": _f(f["size"].min()) if len(f) else math.nan,
               "size_max": _f(f["size"].max()) if len(f) else math.nan,
               "first_time": _f(f["time"].min()) if len(f) else math.nan,
               "last_time": _f(f["time"].max()) if len(f) else math.nan,
               "ttl_mean": _f(pd.to_numeric(f["TTL"], errors="coerce").mean()) if len(f) else math.nan,
               "responses": float(f["isResponse"].sum())})
    return Summary(sc)


def _s_delivered(r: Report) -> Summary:
    f = r.frame
    sc = {"delivered": float(len(f))}
    sc.update(_stats(f["deliveryTime"], "delay", p90=True))
    sc.update(_stats(f["hopcount"], "hopcount"))
    sc.update(_stats(f["size"], "size"))
    sc["remaining_ttl_mean"] = _f(pd.to_numeric(f["remainingTtl"], errors="coerce").mean()) if len(f) else math.nan
    if len(f):
        arrows = f["path"].astype(str).str.count("->")
        sc["path_consistent_frac"] = float((arrows.to_numpy() == f["hopcount"].to_numpy()).mean())
    else:
        sc["path_consistent_frac"] = math.nan
    return Summary(sc)


def _s_distance_delay(r: Report) -> Summary:
    f = r.frame
    d = f[f["delivered"]]
    sc = {"messages": float(len(f)), "delivered": float(len(d)),
          "delivery_prob": float(len(d) / len(f)) if len(f) else math.nan}
    sc.update(_stats(d["delay"], "delay", p90=True))
    sc.update(_stats(d["hops"], "hops"))
    sc.update(_stats(f["distance"], "distance"))
    if len(d) >= 2 and d["distance"].std() > 0 and d["delay"].std() > 0:
        sc["corr_distance_delay"] = float(np.corrcoef(d["distance"], d["delay"])[0, 1])
    else:
        sc["corr_distance_delay"] = math.nan
    return Summary(sc)


def _s_encounters(r: Report) -> Summary:
    f = r.frame
    sc = {"nodes": float(len(f))}
    for c in ("encounters", "unique_encounters"):
        sc.update(_stats(f[c], c))
        sc[f"{c}_max"] = _f(f[c].max()) if len(f) else math.nan
    return Summary(sc)


def _s_message_report(r: Report) -> Summary:
    f = r.frame
    first = f[~f["duplicate"]]
    sc = {"delivered": float(len(first)), "duplicates": float(f["duplicate"].sum())}
    sc.update(_stats(first["delay"], "delay", p90=True))
    return Summary(sc)


def _s_node_density(r: Report) -> Summary:
    f = r.frame
    sc = {"cells": float(len(f)), "samples": float(max(f.shape[1] - 3, 0))}
    sc.update(_stats(f["average"], "average"))
    sc["average_max"] = _f(f["average"].max()) if len(f) else math.nan
    sc["average_total"] = _f(f["average"].sum())
    return Summary(sc)


def _s_radius(r: Report) -> Summary:
    f = r.frame
    sc = {"hosts": float(len(f))}
    sc.update(_stats(f["radius"], "radius"))
    group = f["host"].astype(str).str.extract(r"^([A-Za-z]*)", expand=False)
    for g, sub in f.groupby(group, sort=True):
        sc[f"radius_mean_{g or 'other'}"] = _f(sub["radius"].mean())
    return Summary(sc)


def _s_adjacency(r: Report) -> Summary:
    f = r.frame
    a = f["host1"].astype(str).to_numpy(dtype=object)
    b = f["host2"].astype(str).to_numpy(dtype=object)
    swap = a > b
    und = pd.DataFrame({"lo": np.where(swap, b, a), "hi": np.where(swap, a, b), "w": f["weight"].to_numpy()})
    merged = und.groupby(["lo", "hi"], sort=False)["w"].sum()
    deg = pd.concat([merged.index.get_level_values(0).to_series(), merged.index.get_level_values(1).to_series()]).value_counts()
    sc = {"edge_lines": float(len(f)), "edges": float(len(merged)), "nodes": float(len(deg)),
          "total_weight": float(f["weight"].sum()),
          "weight_mean": _f(merged.mean()) if len(merged) else math.nan,
          "degree_mean": _f(deg.mean()) if len(deg) else math.nan,
          "degree_max": _f(deg.max()) if len(deg) else math.nan}
    return Summary(sc)


def _s_message_graph(r: Report) -> Summary:
    f = r.frame
    sc = {"paths": float(len(f))}
    sc.update(_stats(f["hops"], "hops"))
    sc["hops_max"] = _f(f["hops"].max()) if len(f) else math.nan
    if len(f):
        nodes = f["path"].str.split("->").explode()
        relays = f["path"].str.split("->").map(lambda p: p[1:-1]).explode().dropna()
        sc["nodes"] = float(nodes.nunique())
        sc["relay_nodes"] = float(relays.nunique())
    else:
        sc["nodes"] = sc["relay_nodes"] = 0.0
    return Summary(sc)


def _s_connectivity(r: Report) -> Summary:
    f = r.frame
    sc = _contacts(f, "host1", "host2", "state")
    sc["final_time"] = _f(f["time"].max()) if len(f) else math.nan
    return Summary(sc)




def _s_eventlog(r: Report) -> Summary:
    f = r.frame
    act = f["action"].value_counts()
    sc = {"events": float(len(f))}
    for k in ("C", "S", "DE", "A", "DR", "R"):
        sc[k] = float(act.get(k, 0))
    de = f.loc[f["action"] == "DE", "extra"].value_counts()
    for k in ("R", "D", "A"):
        sc[f"DE_{k}"] = float(de.get(k, 0))
    conn = f.loc[f["action"] == "CONN", "extra"].value_counts()
    sc["CONN_up"] = float(conn.get("up", 0))
    sc["CONN_down"] = float(conn.get("down", 0))
    sc["final_time"] = _f(f["time"].max()) if len(f) else math.nan
    return Summary(sc)


def _s_ns2(r: Report) -> Summary:
    f = r.frame
    per_node = f.groupby("node").size()
    sc = {"waypoints": float(len(f)), "nodes": float(per_node.size),
          "waypoints_per_node_mean": _f(per_node.mean()) if len(per_node) else math.nan}
    sc.update(_stats(f["speed"], "speed"))
    sc["first_time"] = _f(f["time"].min()) if len(f) else math.nan
    sc["last_time"] = _f(f["time"].max()) if len(f) else math.nan
    return Summary(sc)


def _s_location(r: Report) -> Summary:
    f = r.frame
    sc = {"snapshots": float(f["t"].nunique()), "hosts": float(f["host"].nunique()),
          "first_t": _f(f["t"].min()) if len(f) else math.nan, "last_t": _f(f["t"].max()) if len(f) else math.nan}
    if len(f):
        g = f.sort_values(["host", "t"], kind="stable")
        same = (g["host"].to_numpy()[1:] == g["host"].to_numpy()[:-1])
        step = np.hypot(np.diff(g["x"].to_numpy()), np.diff(g["y"].to_numpy()))[same]
        sc["step_mean"] = float(step.mean()) if len(step) else math.nan
    else:
        sc["step_mean"] = math.nan
    sc.update(_stats(f["x"], "x"))
    sc.update(_stats(f["y"], "y"))
    return Summary(sc)


def _s_copy_count(r: Report) -> Summary:
    f = r.frame
    per_t = f.groupby("t", sort=True)["copies"].agg(["mean", "size", "sum"])
    sc = {"snapshots": float(len(per_t)), "messages": float(f["msg"].nunique()),
          "copies_mean": _f(f["copies"].mean()) if len(f) else math.nan,
          "copies_max": _f(f["copies"].max()) if len(f) else math.nan,
          "messages_per_snapshot_mean": _f(per_t["size"].mean()) if len(per_t) else math.nan,
          "final_copies_mean": _f(per_t["mean"].iloc[-1]) if len(per_t) else math.nan}
    curve = _series(per_t.index, per_t["mean"], messages=per_t["size"], copies=per_t["sum"])
    return Summary(sc, curve, "timeseries")


def _s_message_location(r: Report) -> Summary:
    f = r.frame
    per_t = f.groupby("t", sort=True).agg(copies=("msg", "size"), holders=("holder", "nunique"),
                                          messages=("msg", "nunique"))
    sc = {"snapshots": float(len(per_t)), "messages": float(f["msg"].nunique()),
          "copies_per_snapshot_mean": _f(per_t["copies"].mean()) if len(per_t) else math.nan,
          "holders_per_snapshot_mean": _f(per_t["holders"].mean()) if len(per_t) else math.nan,
          "messages_per_snapshot_mean": _f(per_t["messages"].mean()) if len(per_t) else math.nan}
    curve = _series(per_t.index, per_t["copies"], holders=per_t["holders"], messages=per_t["messages"])
    return Summary(sc, curve, "timeseries")


def _s_generic(r: Report) -> Summary:
    if r.meta.get("generic_format") == "keyvalue":
        return _s_keyvalue(r)
    return Summary(_numeric_aggregates(r.frame))


_SUMMARIES: dict[str, Callable[[Report], Summary]] = {
    "MessageStatsReport": _s_keyvalue,
    "PingAppReporter": _s_keyvalue,
    "AdjacencyGraphvizReport": _s_adjacency,
    "MessageGraphvizReport": _s_message_graph,
    "BufferOccupancyReport": _s_buffer,
    "ContactsPerHourReport": _s_per_hour,
    "MessageDeliveryReport": _s_delivery,
    "MessageDelayReport": _s_delay,
    "TotalContactTimeReport": _s_total_contact,
    "ContactTimesReport": _s_hist("duration", "count", below10=True),
    "InterContactTimesReport": _s_hist("duration", "count", below10=True),
    "ContactsDuringAnICTReport": _s_hist("contacts", "count"),
    "TotalEncountersReport": _s_hist("encounters", "nodes"),
    "UniqueEncountersReport": _s_hist("permille", "nodes"),
    "JumpSizeDistributionReport": _s_jump,
    "CreatedMessagesReport": _s_created,
    "DeliveredMessagesReport": _s_delivered,
    "DistanceDelayReport": _s_distance_delay,
    "EncountersVSUniqueEncountersReport": _s_encounters,
    "MessageReport": _s_message_report,
    "NodeDensityReport": _s_node_density,
    "RadiusOfGyrationReport": _s_radius,
    "LocationSnapshotReport": _s_location,
    "MessageCopyCountReport": _s_copy_count,
    "MessageLocationReport": _s_message_location,
    "ConnectivityONEReport": _s_connectivity,
    "ConnectivityDtnsim2Report": _s_connectivity,
    "EventLogReport": _s_eventlog,
    "MovementNs2Report": _s_ns2,
}


def summarize_report(report: Report | str | os.PathLike, *, separator: str = ":") -> Summary:
    """Per-run summary of a report (see the module docstring); a path is read first.

    Scalars are plain floats (NaN where undefined); curves are small float DataFrames with
    columns ``x``, ``y`` (+ extras). Raises :class:`ReportError` if the report cannot be
    summarised (e.g. a frame without the documented columns).
    """
    if not isinstance(report, Report):
        report = read_report(report, separator=separator)
    fn = _SUMMARIES.get(report.report_type, _s_generic)
    try:
        with np.errstate(all="ignore"):
            s = fn(report)
    except ReportError:
        raise
    except Exception as exc:
        raise ReportError(report.path, f"cannot summarise {report.report_type}: {type(exc).__name__}: {exc}") from None
    scalars = {str(k): float(v) for k, v in s.scalars.items()}
    if report.kind != "keyvalue" and not (report.kind == "generic" and report.meta.get("generic_format") == "keyvalue"):
        # derived statistics: an overflowing value in the file ("1e999") gives NaN, never inf
        scalars = {k: (v if math.isfinite(v) else math.nan) for k, v in scalars.items()}
    s.scalars = scalars
    return s


# -- transitional API (the reports package replaces these) ---------------------------------
def report_type_from_name(path) -> str | None:
    """The report type from a ONE file name, None when the name does not say."""
    return _type_from_name(os.fspath(path))


def memory_priors() -> dict:
    return {}


def summarize_path(path, report_type=None, *, separator=":", ignore_fields=(), chunk_bytes=None, lean=False) -> Summary:
    rep = read_report(path, report_type, separator=separator)
    s = summarize_report(rep)
    s.report_type, s.kind, s.warnings = rep.report_type, rep.kind, list(rep.meta.get("warnings", []))
    return s
