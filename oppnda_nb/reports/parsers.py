"""Parsers of the header/whitespace table, time series and histogram reports: (src) -> frame."""
from __future__ import annotations

import csv
import io
import re
import warnings

import numpy as np
import pandas as pd

from .base import _NA, _Src
from .keyvalue import _kv_metrics, _parse_keyvalue, _split_lines
from .tables import _check_header, _csv, _first_bad, _hash_header, _header_names, _int_cols, _is_numeric, _yes_no

_COLS = {
    "CreatedMessagesReport": ["time", "ID", "size", "fromHost", "toHost", "TTL", "isResponse"],
    "DeliveredMessagesReport": ["time", "ID", "size", "hopcount", "deliveryTime", "fromHost", "toHost",
                                "remainingTtl", "isResponse", "path"],
    "MessageDelayReport": ["messageDelay", "cumulativeProbability"],
    "MessageDeliveryReport": ["time", "created", "delivered", "delivered/created"],
    "TotalContactTimeReport": ["time", "totalContactTime"],
}


def _p_simple(names, numeric=None, ints=()):
    """Parser for header-less whitespace tables with fixed columns."""
    numeric = tuple(names if numeric is None else numeric)

    def parse(src: _Src) -> pd.DataFrame:
        frame = _csv(src, names, numeric=numeric)
        _int_cols(frame, ints)
        return frame
    return parse


def _p_hash_table(names, numeric, ints=(), yes_no=(), cats=()):
    """Parser for tables with one ``#`` header line giving ONE's column names (``cats``: repeated
    strings such as host names, read as categories)."""
    def parse(src: _Src) -> pd.DataFrame:
        header = _hash_header(src)
        if len(header) == 1 and header[0].startswith("# no messages delivered") and src.report_type == "MessageDelayReport":
            return _no_delay(src, header[0], names)
        _check_header(src, header, list(names))
        frame = _csv(src, names, skip=len(header), numeric=numeric, dtype={c: "category" for c in cats} or None)
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
                         ints=("size", "TTL"), yes_no=("isResponse",), cats=("fromHost", "toHost"))(src)


def _p_delivered(src: _Src) -> pd.DataFrame:
    return _p_hash_table(_COLS["DeliveredMessagesReport"],
                         numeric=("time", "size", "hopcount", "deliveryTime"),
                         ints=("size", "hopcount", "remainingTtl"), yes_no=("isResponse",),
                         cats=("fromHost", "toHost"))(src)


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


# Generic (unknown type)


def _p_generic(src: _Src) -> pd.DataFrame:
    text = src.data.decode("utf-8")
    lines = [ln.strip() for ln in _split_lines(text) if ln.strip()]
    with_sep = sum(1 for ln in lines if src.separator in ln)
    if with_sep and with_sep * 2 >= len(lines):
        metrics, bad, other, _ = _parse_keyvalue(text, src.separator)
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


def _p_keyvalue(src: _Src) -> pd.DataFrame:
    metrics = _kv_metrics(src)
    return pd.DataFrame({"metric": pd.Series(list(metrics.keys()), dtype="str"),
                         "value": pd.Series(list(metrics.values()), dtype="float64")})
