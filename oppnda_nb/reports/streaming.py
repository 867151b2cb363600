"""Bounded-memory summaries: read a table-shaped report in blocks of complete lines, parse each block
with the type's own parser and fold it into running aggregates (folds.py), so memory follows the
block size, not the file size. Each fold's ``finish()`` returns exactly the keys and values of the
whole-frame summary in summaries.py (see tests/test_streaming.py).

Blocks: ``#`` header lines are repeated in front of every block (so the parser validates each the
same way); snapshot reports are cut only before a ``[t]`` line (a snapshot is never split, so a
block holds at least one whole snapshot).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from . import fastpath as fp
from .base import ReportError, Summary
from .folds import Column, Distinct
from .parsers import _COLS
from .parsers_events import _EVENT_FIELDS, _eventlog_raw
from .tables import _check_header, _hash_header, _Src


class NeedWholeFile(Exception):
    """A fold met input it cannot fold exactly (e.g. snapshot times going back): use the whole frame."""


@dataclass(frozen=True)
class StreamSpec:
    """How a report type streams: its fold, and how blocks are cut."""

    make: Callable[[], object]      # () -> fold with add(src, parse) and finish() -> Summary
    snapshots: bool = False         # cut only before '[t]' lines
    header: bool = False            # repeat the leading '#' lines in front of every block


def _series(x, y, **extra) -> pd.DataFrame:
    d = {"x": np.asarray(x, dtype="float64"), "y": np.asarray(y, dtype="float64")}
    for k, v in extra.items():
        d[k] = np.asarray(v, dtype="float64")
    return pd.DataFrame(d)


def _nanmin(cur: float, v: np.ndarray) -> float:
    return min(cur, float(np.nanmin(v))) if len(v) and not np.isnan(v).all() else cur


def _nanmax(cur: float, v: np.ndarray) -> float:
    return max(cur, float(np.nanmax(v))) if len(v) and not np.isnan(v).all() else cur


# --------------------------------------------------------------------------------------------
# Folds of the table reports


def _arrows_per_line(data: bytes, rows: int) -> np.ndarray | None:
    """How many ``->`` each data line of ``data`` holds (``#`` and blank lines left out), counted on
    the bytes at once; None unless that gives exactly ``rows`` lines (then the caller counts per row)."""
    buf = np.frombuffer(data, dtype=np.uint8)
    if not len(buf):
        return None
    ends = np.flatnonzero(buf == 10)
    if not len(ends) or ends[-1] != len(buf) - 1:
        ends = np.append(ends, len(buf))
    starts = np.concatenate(([0], ends[:-1] + 1))
    arrows = np.flatnonzero((buf[:-1] == 45) & (buf[1:] == 62))  # "-" followed by ">"
    per_line = np.bincount(np.searchsorted(ends, arrows), minlength=len(ends))[: len(ends)]
    first = buf[np.minimum(starts, len(buf) - 1)]
    data_line = (ends > starts) & (first != 35) & (first != 13)  # not empty, not "#...", not a bare "\r"
    out = per_line[data_line]
    return out if len(out) == rows else None


def _header_body(src: _Src, names: list[str]) -> tuple[bytes, list[str]] | None:
    """(data lines, leading '#' lines) of a block of a '#'-headed table, None if the header is unusual."""
    n = fp.header_len(src.data)
    header = _hash_header(src)
    if src.data.count(b"\n", 0, n) != len(header):
        return None
    return src.data[n:], header


def _yes(buf: np.ndarray, s: np.ndarray, e: np.ndarray) -> np.ndarray | None:
    """Y/N tokens as booleans, None if another value occurs."""
    y = fp.token_is(buf, s, e, b"Y")
    if not (y | fp.token_is(buf, s, e, b"N")).all():
        return None
    return y


def _ttl(buf: np.ndarray, s: np.ndarray, e: np.ndarray) -> np.ndarray | None:
    """A TTL column: numbers, ``n/a`` as NaN (as pd.to_numeric(errors="coerce") reads them), else None."""
    na = fp.token_is(buf, s, e, b"n/a")
    out = np.full(len(s), np.nan)
    v = fp.decimals(buf, s[~na], e[~na])
    if v is None:
        return None
    out[~na] = v
    return out


def _fast_grid(src: _Src, report_type: str, fields: int):
    """(layout, grid, header lines) of a block of ``report_type`` whose data lines hold at least
    ``fields`` plain space-separated fields, or None (then the fold uses the parser)."""
    hb = _header_body(src, _COLS[report_type])
    if hb is None:
        return None
    lay = fp.layout(hb[0], trailing_ok=True, na_words=False)
    g = lay.grid(fields) if lay is not None else None
    return None if g is None else (lay, g, hb[1])


def _missing_words(lay, g, fields: tuple[int, ...]) -> bool:
    """Does one of ``fields`` hold a word the parser reads as missing (a required field then)?"""
    for i in fields:
        s, e = lay.field(g, i)
        if any(fp.token_is(lay.buf, s, e, w).any() for w in (b"nan", b"NaN", b"n/a")):
            return True
    return False


def _fast_delivered(src: _Src) -> dict | None:
    """The columns _Delivered needs, read from the bytes (None: use the parser)."""
    lg = _fast_grid(src, "DeliveredMessagesReport", 9)
    if lg is None:
        return None
    lay, g, header = lg
    buf, col = lay.buf, {}
    for i, name in ((0, "time"), (2, "size"), (3, "hopcount"), (4, "deliveryTime")):
        col[name] = fp.decimals(buf, *lay.field(g, i))
        if col[name] is None:
            return None
    col["ttl"] = _ttl(buf, *lay.field(g, 7))
    if col["ttl"] is None or _yes(buf, *lay.field(g, 8)) is None:
        return None
    if _missing_words(lay, g, (1, 5, 6, 9)):
        return None
    ps, pe = lay.field(g, 9)
    arrows = np.flatnonzero((buf[:-1] == 45) & (buf[1:] == 62))
    col["arrows"] = np.searchsorted(arrows, pe) - np.searchsorted(arrows, ps)
    _check_header(src, header, _COLS["DeliveredMessagesReport"])
    return col


class _Delivered:
    def __init__(self):
        self.n = 0
        self.delay, self.hop, self.size = Column(), Column(), Column()
        self.ttl_sum, self.ttl_n, self.consistent = 0.0, 0, 0

    def add(self, src: _Src, parse) -> None:
        c = _fast_delivered(src)
        if c is None:
            f = parse(src)
            c = {"deliveryTime": f["deliveryTime"].to_numpy("float64"), "hopcount": f["hopcount"].to_numpy("float64"),
                 "size": f["size"].to_numpy("float64"),
                 "ttl": pd.to_numeric(f["remainingTtl"], errors="coerce").to_numpy("float64")}
            if len(f):
                arrows = _arrows_per_line(src.data, len(f))
                if arrows is None:  # lines and rows do not pair up: count per string (slower, same result)
                    arrows = f["path"].astype(str).str.count("->").to_numpy()
                c["arrows"] = arrows
        n = len(c["size"])
        self.n += n
        self.delay.add(c["deliveryTime"])
        self.hop.add(c["hopcount"])
        self.size.add(c["size"])
        ttl = c["ttl"]
        ok = ~np.isnan(ttl)
        self.ttl_sum += float(ttl[ok].sum())
        self.ttl_n += int(ok.sum())
        if n:
            self.consistent += int((c["arrows"] == c["hopcount"]).sum())

    def finish(self) -> Summary:
        sc = {"delivered": float(self.n)}
        sc.update(self.delay.stats("delay", p90=True))
        sc.update(self.hop.stats("hopcount"))
        sc.update(self.size.stats("size"))
        sc["remaining_ttl_mean"] = self.ttl_sum / self.ttl_n if self.ttl_n else math.nan
        sc["path_consistent_frac"] = self.consistent / self.n if self.n else math.nan
        return Summary(sc)


def _fast_created(src: _Src) -> dict | None:
    """The columns _Created needs, read from the bytes (None: use the parser)."""
    lg = _fast_grid(src, "CreatedMessagesReport", 6)
    if lg is None:
        return None
    lay, g, header = lg
    buf = lay.buf
    t, size = fp.decimals(buf, *lay.field(g, 0)), fp.decimals(buf, *lay.field(g, 2))
    ttl, yes = _ttl(buf, *lay.field(g, 5)), _yes(buf, *lay.field(g, 6))
    if t is None or size is None or ttl is None or yes is None:
        return None
    if _missing_words(lay, g, (1, 3, 4)):
        return None
    _check_header(src, header, _COLS["CreatedMessagesReport"])
    return {"time": t, "size": size, "ttl": ttl, "responses": float(yes.sum())}


class _Created:
    def __init__(self):
        self.n, self.size, self.responses = 0, Column(), 0.0
        self.tmin, self.tmax, self.ttl_sum, self.ttl_n = math.inf, -math.inf, 0.0, 0

    def add(self, src: _Src, parse) -> None:
        c = _fast_created(src)
        if c is None:
            f = parse(src)
            c = {"time": f["time"].to_numpy("float64"), "size": f["size"].to_numpy("float64"),
                 "ttl": pd.to_numeric(f["TTL"], errors="coerce").to_numpy("float64"),
                 "responses": float(f["isResponse"].sum())}
        self.n += len(c["size"])
        self.size.add(c["size"])
        t = c["time"]
        self.tmin, self.tmax = _nanmin(self.tmin, t), _nanmax(self.tmax, t)
        ttl = c["ttl"]
        ok = ~np.isnan(ttl)
        self.ttl_sum += float(ttl[ok].sum())
        self.ttl_n += int(ok.sum())
        self.responses += c["responses"]

    def finish(self) -> Summary:
        sc = {"created": float(self.n)}
        sc.update(self.size.stats("size"))
        has = self.n > 0
        sc.update({"size_min": self.size.min() if has else math.nan, "size_max": self.size.max() if has else math.nan,
                   "first_time": self.tmin if has and self.tmin != math.inf else math.nan,
                   "last_time": self.tmax if has and self.tmax != -math.inf else math.nan,
                   "ttl_mean": self.ttl_sum / self.ttl_n if self.ttl_n else math.nan,
                   "responses": self.responses})
        return Summary(sc)


class _DistanceDelay:
    def __init__(self):
        self.n, self.d = 0, 0
        self.delay, self.hops, self.distance = Column(), Column(), Column()
        self.pairs: list[np.ndarray] = []

    def add(self, src: _Src, parse) -> None:
        f = parse(src)
        self.n += len(f)
        d = f[f["delivered"]]
        self.d += len(d)
        self.delay.add(d["delay"].to_numpy("float64"))
        self.hops.add(d["hops"].to_numpy("float64"))
        self.distance.add(f["distance"].to_numpy("float64"))
        if len(d):
            self.pairs.append(np.stack([d["distance"].to_numpy("float64"), d["delay"].to_numpy("float64")]))

    def finish(self) -> Summary:
        sc = {"messages": float(self.n), "delivered": float(self.d),
              "delivery_prob": float(self.d / self.n) if self.n else math.nan}
        sc.update(self.delay.stats("delay", p90=True))
        sc.update(self.hops.stats("hops"))
        sc.update(self.distance.stats("distance"))
        sc["corr_distance_delay"] = math.nan
        if self.d >= 2:
            xy = np.concatenate(self.pairs, axis=1)
            if pd.Series(xy[0]).std() > 0 and pd.Series(xy[1]).std() > 0:
                sc["corr_distance_delay"] = float(np.corrcoef(xy[0], xy[1])[0, 1])
        return Summary(sc)


class _MessageReport:
    def __init__(self):
        self.first, self.dups, self.delay = 0, 0.0, Column()

    def add(self, src: _Src, parse) -> None:
        f = parse(src)
        first = f[~f["duplicate"]]
        self.first += len(first)
        self.dups += float(f["duplicate"].sum())
        self.delay.add(first["delay"].to_numpy("float64"))

    def finish(self) -> Summary:
        sc = {"delivered": float(self.first), "duplicates": self.dups}
        sc.update(self.delay.stats("delay", p90=True))
        return Summary(sc)


# --------------------------------------------------------------------------------------------
# Folds of the event reports


def _fast_eventlog(src: _Src) -> dict | None:
    """Action, DE-reason and CONN-state counts and the largest time of a block (None: use the parser).

    Read from the space positions: the action and field count of each line, the last field of DE
    and CONN lines, and the largest time (fastpath.decimal_max).
    """
    lay = fp.layout(src.data, trailing_ok=False)
    if lay is None or not len(lay) or lay.spaces.min() < 3:
        return None
    buf, sp = lay.buf, lay.sp
    first = sp[lay.first]
    a0, a1 = first + 1, sp[lay.first + 1]
    counts, known = {}, np.zeros(len(lay), bool)
    for a, n in _EVENT_FIELDS.items():
        m = fp.token_is(buf, a0, a1, a.encode())
        if m.any():
            if (lay.spaces[m] != n - 1).any():
                return None                 # a field count the parser reports
            counts[a] = m
            known |= m
    if not known.all():
        return None
    tmax = fp.decimal_max(buf, lay.starts, first)
    if tmax is None:
        return None
    last = sp[lay.first + lay.spaces - 1] + 1
    out = {"n": len(lay), "act": {a: int(m.sum()) for a, m in counts.items()}, "de": {}, "conn": {}, "tmax": tmax}
    for a, words in (("DE", ("R", "D", "A")), ("CONN", ("up", "down"))):
        if a in counts:
            m = counts[a]
            into = out["de" if a == "DE" else "conn"]
            for w in words:
                into[w] = int(fp.token_is(buf, last[m], lay.ends[m], w.encode()).sum())
    return out


class _EventLog:
    _ACTIONS = ("C", "S", "DE", "A", "DR", "R")

    def __init__(self):
        self.n, self.tmax = 0, -math.inf
        self.act: dict[str, int] = {}
        self.de: dict[str, int] = {}
        self.conn: dict[str, int] = {}

    @staticmethod
    def _count(into: dict, s: pd.Series) -> None:
        for k, v in s.value_counts().items():
            into[str(k)] = into.get(str(k), 0) + int(v)

    @staticmethod
    def _merge(into: dict, counts: dict) -> None:
        for k, v in counts.items():
            into[k] = into.get(k, 0) + v

    def add(self, src: _Src, parse) -> None:
        c = _fast_eventlog(src)
        if c is not None:
            self.n += c["n"]
            self._merge(self.act, c["act"])
            self._merge(self.de, c["de"])
            self._merge(self.conn, c["conn"])
            self.tmax = max(self.tmax, c["tmax"])
            return
        f = _eventlog_raw(src)     # validated as _p_eventlog does; fields not moved (not needed here)
        self.n += len(f)
        action = f["action"]
        self._count(self.act, action)
        self._count(self.de, f["extra"][(action == "DE").to_numpy()])
        self._count(self.conn, f["msg"][(action == "CONN").to_numpy()])    # CONN: the state is the 5th field
        self.tmax = _nanmax(self.tmax, f["time"].to_numpy("float64"))

    def finish(self) -> Summary:
        sc = {"events": float(self.n)}
        for k in self._ACTIONS:
            sc[k] = float(self.act.get(k, 0))
        for k in ("R", "D", "A"):
            sc[f"DE_{k}"] = float(self.de.get(k, 0))
        sc["CONN_up"] = float(self.conn.get("up", 0))
        sc["CONN_down"] = float(self.conn.get("down", 0))
        sc["final_time"] = self.tmax if self.n and self.tmax != -math.inf else math.nan
        return Summary(sc)


class _Connectivity:
    """Contacts: the k-th 'up' of an unordered host pair ends at its k-th 'down' (as summaries._contacts)."""

    def __init__(self):
        self.events = self.up = self.down = self.contacts = 0
        self.tmax = -math.inf
        self.dur = Column()
        self.pairs = Distinct()
        self.seen = pd.Series(dtype="int64")           # (pair, state) -> events so far
        self.open = pd.DataFrame({"p": pd.Series(dtype="object"), "up": pd.Series(dtype=bool),
                                  "k": pd.Series(dtype="int64"), "time": pd.Series(dtype="float64")})

    def add(self, src: _Src, parse) -> None:
        f = parse(src)
        if not len(f):
            return
        a = f["host1"].astype(str).to_numpy(dtype=object)
        b = f["host2"].astype(str).to_numpy(dtype=object)
        swap = a > b
        pair = pd.Series(np.where(swap, b, a)) + "\x1f" + pd.Series(np.where(swap, a, b))
        st = f["state"].astype(str).to_numpy(dtype=object)
        up = st == "up"
        down = st == "down"
        self.events += len(f)
        self.up += int(up.sum())
        self.down += int(down.sum())
        self.tmax = _nanmax(self.tmax, f["time"].to_numpy("float64"))
        self.pairs.add(pair.to_numpy())
        ev = pd.DataFrame({"p": pair.to_numpy(), "st": st, "time": f["time"].to_numpy("float64")})
        key = ev["p"] + "\x1f" + ev["st"]
        k = ev.groupby(key.to_numpy(), sort=False).cumcount().to_numpy()
        prev = self.seen.reindex(key.to_numpy()).fillna(0).to_numpy("int64")
        ev["k"] = k + prev
        counts = key.value_counts()
        self.seen = self.seen.add(counts, fill_value=0).astype("int64")
        ev = ev[up | down]
        ev = pd.DataFrame({"p": ev["p"], "up": ev["st"] == "up", "k": ev["k"], "time": ev["time"]})
        allev = pd.concat([self.open, ev], ignore_index=True)
        ups, downs = allev[allev["up"]], allev[~allev["up"]]
        m = ups.merge(downs, on=["p", "k"], how="outer", suffixes=("_u", "_d"), indicator=True)
        both = m["_merge"] == "both"
        self.contacts += int(both.sum())
        self.dur.add((m["time_d"][both] - m["time_u"][both]).to_numpy("float64"))
        left = m[~both]
        self.open = pd.DataFrame({"p": left["p"], "up": left["_merge"] == "left_only", "k": left["k"],
                                  "time": np.where(left["_merge"] == "left_only", left["time_u"], left["time_d"])})

    def finish(self) -> Summary:
        st = self.dur.stats("d")
        sc = {"events": float(self.events), "up": float(self.up), "down": float(self.down),
              "contacts": float(self.contacts), "open_at_end": float(self.up - self.contacts),
              "pairs": float(len(self.pairs)),
              "contact_duration_mean": st["d_mean"] if self.contacts else math.nan,
              "contact_duration_median": st["d_median"] if self.contacts else math.nan,
              "contact_time_total": float(self.dur.total) if self.contacts else 0.0}
        sc["final_time"] = self.tmax if self.events and self.tmax != -math.inf else math.nan
        return Summary(sc)


class _Ns2:
    def __init__(self):
        self.n, self.nodes, self.speed = 0, Distinct(), Column()
        self.tmin, self.tmax = math.inf, -math.inf

    def add(self, src: _Src, parse) -> None:
        f = parse(src)
        self.n += len(f)
        self.nodes.add(f["node"].to_numpy())
        self.speed.add(f["speed"].to_numpy("float64"))
        t = f["time"].to_numpy("float64")
        self.tmin, self.tmax = _nanmin(self.tmin, t), _nanmax(self.tmax, t)

    def finish(self) -> Summary:
        nodes = len(self.nodes)
        sc = {"waypoints": float(self.n), "nodes": float(nodes),
              "waypoints_per_node_mean": self.n / nodes if nodes else math.nan}
        sc.update(self.speed.stats("speed"))
        sc["first_time"] = self.tmin if self.n and self.tmin != math.inf else math.nan
        sc["last_time"] = self.tmax if self.n and self.tmax != -math.inf else math.nan
        return Summary(sc)


# --------------------------------------------------------------------------------------------
# Folds of the snapshot reports (a block holds whole snapshots)


class _Location:
    def __init__(self):
        self.t = Distinct()
        self.ids: dict[str, int] = {}                    # host name -> id (the hosts seen so far)
        self.x, self.y = Column(), Column()
        self.tmin, self.tmax = math.inf, -math.inf
        self.last = np.empty((0, 2))                     # per host id: its last (x, y), NaN if none yet
        self.step_sum, self.step_n = 0.0, 0

    def add(self, src: _Src, parse) -> None:
        f = parse(src)
        if not len(f):
            return
        t = f["t"].to_numpy("float64")
        if t.min() < self.tmax:      # snapshot times go back: steps would pair other rows than the sort does
            raise NeedWholeFile("snapshot times are not in order")
        self.t.add(t)
        host = f["host"].array
        cat_id = np.array([self.ids.setdefault(str(c), len(self.ids)) for c in host.categories], dtype=np.int64)
        h = cat_id[host.codes]
        x, y = f["x"].to_numpy("float64"), f["y"].to_numpy("float64")
        self.x.add(x)
        self.y.add(y)
        self.tmin, self.tmax = _nanmin(self.tmin, t), _nanmax(self.tmax, t)
        order = np.lexsort((t, h))                       # by host, then time; stable like the whole-frame sort
        h, x, y = h[order], x[order], y[order]
        same = h[1:] == h[:-1]
        step = np.hypot(np.diff(x), np.diff(y))[same]
        first = np.concatenate([[True], ~same])
        if len(self.last) < len(self.ids):
            self.last = np.vstack([self.last, np.full((len(self.ids) - len(self.last), 2), np.nan)])
        fh = h[first]
        prev = self.last[fh]
        ok = ~np.isnan(prev[:, 0])
        cross = np.hypot(x[first][ok] - prev[ok, 0], y[first][ok] - prev[ok, 1])
        self.step_sum += float(step.sum()) + float(cross.sum())
        self.step_n += len(step) + len(cross)
        lastm = np.concatenate([~same, [True]])
        self.last[h[lastm]] = np.stack([x[lastm], y[lastm]], axis=1)

    def finish(self) -> Summary:
        n = self.x.n
        sc = {"snapshots": float(len(self.t)), "hosts": float(len(self.ids)),
              "first_t": self.tmin if n else math.nan, "last_t": self.tmax if n else math.nan,
              "step_mean": self.step_sum / self.step_n if self.step_n else math.nan}
        sc.update(self.x.stats("x"))
        sc.update(self.y.stats("y"))
        return Summary(sc)


class _CopyCount:
    def __init__(self):
        self.per_t: list[pd.DataFrame] = []
        self.msgs = Distinct()
        self.n, self.total, self.cmax = 0, 0.0, -math.inf

    def add(self, src: _Src, parse) -> None:
        f = parse(src)
        if not len(f):
            return
        self.per_t.append(f.groupby("t", sort=True)["copies"].agg(["size", "sum"]))
        msg = f["msg"].array
        self.msgs.add(np.asarray(msg.categories.astype(str))[np.unique(msg.codes[msg.codes >= 0])])
        c = f["copies"].to_numpy("float64")
        self.n += len(c)
        self.total += float(c.sum())
        self.cmax = max(self.cmax, float(c.max()))

    def finish(self) -> Summary:
        if self.per_t:
            per_t = pd.concat(self.per_t).groupby(level=0, sort=True).sum()
        else:
            per_t = pd.DataFrame({"size": pd.Series(dtype="int64"), "sum": pd.Series(dtype="float64")})
        mean = per_t["sum"].to_numpy("float64") / per_t["size"].to_numpy("float64")
        sc = {"snapshots": float(len(per_t)), "messages": float(len(self.msgs)),
              "copies_mean": self.total / self.n if self.n else math.nan,
              "copies_max": self.cmax if self.n else math.nan,
              "messages_per_snapshot_mean": float(per_t["size"].mean()) if len(per_t) else math.nan,
              "final_copies_mean": float(mean[-1]) if len(per_t) else math.nan}
        return Summary(sc, _series(per_t.index, mean, messages=per_t["size"], copies=per_t["sum"]), "timeseries")


class _MessageLocation:
    """Per snapshot: message copies, holders carrying at least one message, distinct messages."""

    def __init__(self):
        self.rows: list[tuple[float, int, int, int]] = []      # (t, copies, holders, messages)
        self.all: set[bytes] = set()
        self.cur_t: float | None = None
        self.cur = [0, set(), set()]                           # copies, holder ids, messages
        self.done_t: set[float] = set()

    def _close(self) -> None:
        if self.cur_t is not None and self.cur[0]:
            if self.cur_t in self.done_t:
                raise NeedWholeFile("a snapshot time appears twice, apart")
            self.done_t.add(self.cur_t)
            self.rows.append((self.cur_t, self.cur[0], len(self.cur[1]), len(self.cur[2])))
        self.cur = [0, set(), set()]

    def add(self, src: _Src, parse) -> None:
        fail = src.fail
        holder = -1
        for line in src.data.split(b"\n"):
            toks = line.split()
            if not toks:
                continue
            head = toks[0]
            if head[:1] == b"[":
                if not head.endswith(b"]"):
                    raise fail(f"not a well-formed MessageLocationReport: bad snapshot marker {head.decode('utf-8', 'replace')!r} (expected '[<time>]')")
                try:
                    t = float(head[1:-1])
                except ValueError:
                    raise fail(f"not a well-formed MessageLocationReport: bad snapshot marker {head.decode('utf-8', 'replace')!r} (expected '[<time>]')") from None
                if len(toks) > 1:
                    raise fail("not a well-formed MessageLocationReport: a message ID appears before any '(x,y)' coordinate")
                if t != self.cur_t:
                    self._close()
                    self.cur_t = t
                holder = -1
                continue
            if self.cur_t is None:
                raise fail(f"not a well-formed MessageLocationReport: expected a '[time]' line first, got {head.decode('utf-8', 'replace')!r}")
            if head[:1] != b"(":
                raise fail("not a well-formed MessageLocationReport: a message ID appears before any '(x,y)' coordinate")
            if b"(" in line[1:] or b"[" in line:
                raise NeedWholeFile("several coordinates or a marker inside a line")
            _coord(fail, head)
            holder += 1
            msgs = toks[1:]
            if msgs:
                self.cur[0] += len(msgs)
                self.cur[1].add(holder)
                self.cur[2].update(msgs)
                self.all.update(msgs)

    def finish(self) -> Summary:
        self._close()
        rows = sorted(self.rows)
        per = np.array(rows, dtype="float64").reshape(-1, 4)
        n = len(per)
        sc = {"snapshots": float(n), "messages": float(len(self.all)),
              "copies_per_snapshot_mean": float(per[:, 1].mean()) if n else math.nan,
              "holders_per_snapshot_mean": float(per[:, 2].mean()) if n else math.nan,
              "messages_per_snapshot_mean": float(per[:, 3].mean()) if n else math.nan}
        return Summary(sc, _series(per[:, 0], per[:, 1], holders=per[:, 2], messages=per[:, 3]), "timeseries")


def _coord(fail, tok: bytes) -> None:
    body = tok.strip(b"()").split(b",", 1)
    try:
        if len(body) != 2:
            raise ValueError
        float(body[0]), float(body[1])
    except ValueError:
        raise fail(f"not a well-formed MessageLocationReport: bad coordinate {tok.decode('utf-8', 'replace')!r}") from None


CREATED = StreamSpec(_Created, header=True)
DELIVERED = StreamSpec(_Delivered, header=True)
DISTANCE_DELAY = StreamSpec(_DistanceDelay, header=True)
MESSAGE_REPORT = StreamSpec(_MessageReport, header=True)
EVENTLOG = StreamSpec(_EventLog)
CONNECTIVITY = StreamSpec(_Connectivity)
NS2 = StreamSpec(_Ns2)
LOCATION = StreamSpec(_Location, snapshots=True)
COPY_COUNT = StreamSpec(_CopyCount, snapshots=True)
MESSAGE_LOCATION = StreamSpec(_MessageLocation, snapshots=True)


def fold_blocks(path: str, report_type: str, stream: StreamSpec, parse, blocks, separator: str,
                warns: list[str]) -> Summary:
    """Fold the ``(block, first line)`` pairs of ``blocks`` (textio.iter_blocks) into a Summary."""
    fold = stream.make()
    seen: set[str] = set()

    def feed(data: bytes, line0: int) -> None:
        cw: list[str] = []
        src = _Src(path, data, report_type, separator, cw)
        try:
            fold.add(src, parse)
        except ReportError as exc:
            if line0 > 1:
                raise ReportError(path, f"{exc.reason} (in the part of the file from line {line0})") from None
            raise
        for w in cw:
            if w not in seen:
                seen.add(w)
                warns.append(w)

    header = b""
    head_acc: bytes | None = b"" if stream.header else None
    pending, pending_line = b"", 1
    fed = False
    for block, line0 in blocks:
        if head_acc is not None:                 # still collecting the leading '#' lines
            head_acc += block
            n = fp.header_len(head_acc)
            if n == len(head_acc):
                continue
            header, block, head_acc, line0 = head_acc[:n], head_acc, None, 1
            feed(block, line0)
            fed = True
            continue
        if stream.snapshots:
            start = max(len(pending) - 1, 0)
            if pending:
                block, line0 = pending + block, pending_line
            p = block.rfind(b"\n[", start)
            if p < 0:
                pending, pending_line = block, line0
                continue
            pending, pending_line = block[p + 1:], line0 + block.count(b"\n", 0, p + 1)
            block = block[:p + 1]
        feed(header + block if header else block, line0)
        fed = True
    if head_acc:                                 # header-only file
        feed(head_acc, 1)
        fed = True
    if pending:
        feed(pending, pending_line)
        fed = True
    if not fed:
        feed(b"", 1)
    return fold.finish()
