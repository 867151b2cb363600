"""Parsers of the event, snapshot and graph reports (variable-field formats, vectorized)."""
from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from .base import _f, _Src
from .tables import (_blocks, _check_values, _compact, _csv, _ffill_index, _int_cols, _is_numeric, _leading_lines,
                     _move_codes, _first_bad, _small_int)


def _p_connectivity_one(src: _Src) -> pd.DataFrame:
    frame = _csv(src, ["time", "conn", "host1", "host2", "state"], sep=" ",
                 numeric=("time", "host1", "host2"), dtype={"conn": "category", "state": "category"})
    _check_values(src, frame["conn"], {"CONN"}, "second field")
    _check_values(src, frame["state"], {"up", "down"}, "state")
    _int_cols(frame, ("host1", "host2"))
    return frame.drop(columns="conn")


def _p_connectivity_dtnsim2(src: _Src) -> pd.DataFrame:
    data = src.data.replace(b"@", b"")
    frame = _csv(src, ["time", "host1", "arrow", "host2", "state"], sep=" ", numeric=("time",), data=data,
                 dtype={"host1": "category", "host2": "category", "arrow": "category", "state": "category"})
    _check_values(src, frame["arrow"], {"<->"}, "separator '<->'")
    _check_values(src, frame["state"], {"up", "down"}, "state")
    return frame.drop(columns="arrow")



_EVENT_FIELDS = {"CONN": 5, "C": 4, "S": 5, "DE": 6, "A": 5, "DR": 4, "R": 4}


def _eventlog_raw(src: _Src) -> pd.DataFrame:
    """EventLog lines as written (validated: actions and their field counts), fields not moved yet."""
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
    return frame


def _p_eventlog(src: _Src) -> pd.DataFrame:
    frame = _eventlog_raw(src)
    action = frame["action"]
    acats = action.array.categories
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
                        "copies": _small_int(copies.astype("int64"))})
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
    out = pd.DataFrame({"t": t[rows], "holder": _small_int(holder[rows]),
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
    out = pd.DataFrame({"time": mv["a"].to_numpy("float64"), "node": _small_int(num["b"].to_numpy().astype("int64")),
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

