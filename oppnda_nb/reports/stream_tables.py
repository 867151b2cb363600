"""Streamed folds of the line-table reports (created, delivered, distance-delay, message, event log,
connectivity, ns-2 movement): each block is read with the numpy fast path when it is plain, else with
the type's own parser, and folded into running aggregates."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from . import fastpath as fp
from .base import Summary
from .folds import Column, Distinct
from .parsers import _COLS
from .parsers_events import _EVENT_FIELDS, _eventlog_raw
from .streaming import StreamSpec, _nanmax, _nanmin
from .tables import _check_header, _hash_header, _Src

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


# Action of an EventLog line from (token length, first byte, second byte): code 1.. in _ACTION_NAMES.
_ACTION_NAMES = ("CONN", "C", "S", "DE", "A", "DR", "R")
_ACTION_CODE = np.zeros(8 << 16, np.int8)
for _i, _a in enumerate(_ACTION_NAMES, 1):
    _b = _a.encode() + b" "
    _ACTION_CODE[(len(_a) << 16) | (_b[0] << 8) | _b[1]] = _i
_ACTION_FIELDS = np.array([0] + [_EVENT_FIELDS[a] for a in _ACTION_NAMES], np.int64)


def _fast_eventlog(src: _Src) -> dict | None:
    """Action, DE-reason and CONN-state counts and the largest time of a block (None: use the parser).

    One scan of the separators (fastpath.scan) gives every line's fields; the action is looked up
    from its length and first two bytes, and only the time column is read as numbers.
    """
    lines = fp.scan(src.data, trailing_ok=False)
    if lines is None or not len(lines):
        return None
    buf, sep, nl = lines.buf, lines.sep, lines.nl
    nf = lines.nseps()                                   # fields per line (no trailing blanks here)
    if int(nf.min()) < 4 or int(nf.max()) > 6:
        return None
    f0 = nl - nf + 1                                     # index in sep of each line's first blank
    tend = sep[f0]
    a0 = tend + 1
    alen = np.minimum(sep[f0 + 1] - a0, 7)
    code = _ACTION_CODE[(alen << 16) | (buf[a0].astype(np.int64) << 8) | buf[a0 + 1]]
    if not code.all() or (_ACTION_FIELDS[code] != nf).any():
        return None                                      # an unknown action or a field count the parser reports
    conn = code == 1
    if conn.any():
        c = a0[conn]
        if not ((buf[c + 2] == 78) & (buf[c + 3] == 78)).all():  # "CO??" is CONN only with "NN"
            return None
    starts = np.empty_like(tend)
    starts[0] = 0
    starts[1:] = sep[nl[:-1]] + 1
    tmax = fp.decimal_max(buf, starts, tend)
    if tmax is None:
        return None
    counts = np.bincount(code, minlength=len(_ACTION_NAMES) + 1)
    out = {"n": len(lines), "act": {a: int(counts[i]) for i, a in enumerate(_ACTION_NAMES, 1) if counts[i]},
           "de": {}, "conn": {}, "tmax": tmax}
    for i, key, words in ((4, "de", ("R", "D", "A")), (1, "conn", ("up", "down"))):
        if counts[i]:
            rows = nl[code == i]
            ls, le = sep[rows - 1] + 1, sep[rows]      # the last field of those lines
            for w in words:
                out[key][w] = int(fp.token_is(buf, ls, le, w.encode()).sum())
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

CREATED = StreamSpec(_Created, header=True)
DELIVERED = StreamSpec(_Delivered, header=True)
DISTANCE_DELAY = StreamSpec(_DistanceDelay, header=True)
MESSAGE_REPORT = StreamSpec(_MessageReport, header=True)
EVENTLOG = StreamSpec(_EventLog)
CONNECTIVITY = StreamSpec(_Connectivity)
NS2 = StreamSpec(_Ns2)
