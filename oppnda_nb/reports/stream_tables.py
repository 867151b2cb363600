"""Streamed folds of the line-table reports (created, delivered, distance-delay, message, event log,
connectivity, ns-2 movement): each block is read with the numpy fast path when it is plain, else with
the type's own parser, and folded into running aggregates."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from . import fastpath as fp
from .base import ReportError, Summary
from .folds import Column, Distinct
from .parsers import _COLS
from .parsers_events import _EVENT_FIELDS, _eventlog_raw
from .streaming import StreamSpec, _nanmax, _nanmin
from .base import _Src
from .tables import _check_header, _hash_header

# Folds of the table reports


def _arrows_per_line(data: bytes, rows: int) -> np.ndarray | None:
    """How many ``->`` the last field (the path) of each data line of ``data`` holds (``#`` and blank
    lines left out), counted on the bytes at once; None unless that gives exactly ``rows`` lines (then
    the caller counts per row)."""
    buf = np.frombuffer(data, dtype=np.uint8)
    if not len(buf):
        return None
    ends = np.flatnonzero(buf == 10)
    if not len(ends) or ends[-1] != len(buf) - 1:
        ends = np.append(ends, len(buf))
    starts = np.concatenate(([0], ends[:-1] + 1))
    arrows = np.flatnonzero((buf[:-1] == 45) & (buf[1:] == 62))  # "-" followed by ">"
    blank = (buf == 32) | (buf == 9)
    after = buf[1:]
    tok = np.flatnonzero(blank[:-1] & ~blank[1:] & (after != 10) & (after != 13)) + 1   # a field after blanks
    last = np.searchsorted(tok, ends) - 1                                             # each line's last one
    field = np.where(last >= 0, tok[np.maximum(last, 0)] if len(tok) else 0, 0)
    field = np.maximum(field, starts)                 # none after a blank in the line: the line's start
    per_line = np.searchsorted(arrows, ends) - np.searchsorted(arrows, field)
    first = buf[np.minimum(starts, len(buf) - 1)]
    data_line = (ends > starts) & (first != 35) & (first != 13)  # not empty, not "#...", not a bare "\r"
    out = per_line[data_line]
    return out if len(out) == rows else None


def _header_body(src: _Src, names: list[str]) -> tuple[int, list[str]] | None:
    """(offset of the data lines, leading '#' lines) of a block of a '#'-headed table, None if the header is unusual."""
    n = fp.header_len(src.data)
    header = _hash_header(src)
    if src.data.count(b"\n", 0, n) != len(header):
        return None
    return n, header


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
    v = fp.numbers(buf, s[~na], e[~na])
    if v is None:
        return None
    out[~na] = v
    return out


def _fast_grid(src: _Src, report_type: str, spaces: int):
    """(lines, grid, header lines) of a block of ``report_type`` whose data lines all hold exactly
    ``spaces`` single blanks between fields (a trailing blank allowed), or None (the fold uses the parser)."""
    hb = _header_body(src, _COLS[report_type])
    if hb is None:
        return None
    lines = fp.scan(src.data, trailing_ok=True, na_words=False, start=hb[0])
    g = lines.grid(spaces + 1) if lines is not None else None
    return None if g is None else (lines, g, hb[1])


def _missing_words(lay, g, fields: tuple[int, ...]) -> bool:
    """Does one of ``fields`` hold a word the parser reads as missing (a required field then)?"""
    buf = lay.buf
    for i in fields:
        s, e = lay.field(g, i)
        c0 = np.take(buf, s)
        cand = ((c0 == 110) | (c0 == 78)) & ((e - s) == 3)    # 3 bytes starting with 'n' or 'N'
        if cand.any():
            s, e = s[cand], e[cand]
            if any(fp.token_is(buf, s, e, w).any() for w in (b"nan", b"NaN", b"n/a")):
                return True
    return False


def _fast_delivered(src: _Src) -> dict | None:
    """The columns _Delivered needs, read from the bytes (None: use the parser)."""
    lg = _fast_grid(src, "DeliveredMessagesReport", 9)
    if lg is None:
        return None
    lay, g, header = lg
    buf, col = lay.buf, {}
    if not fp.plain_numbers(buf, *lay.field(g, 0)):      # time: checked, not needed
        return None
    for i, name in ((2, "size"), (3, "hopcount"), (4, "deliveryTime")):
        col[name] = fp.numbers(buf, *lay.field(g, i))
        if col[name] is None:
            return None
    col["ttl"] = _ttl(buf, *lay.field(g, 7))
    if col["ttl"] is None or _yes(buf, *lay.field(g, 8)) is None:
        return None
    if _missing_words(lay, g, (1, 5, 6, 9)):
        return None
    ps, pe = lay.field(g, 9)
    gt = np.flatnonzero(buf == 62)                        # each '>' ...
    arrows = gt[(gt > 0) & (buf[gt - 1] == 45)]           # ... after a '-': the '->' (at its '>')
    col["arrows"] = np.searchsorted(arrows, pe) - np.searchsorted(arrows, ps + 1)
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
    t, size = fp.extremes(buf, *lay.field(g, 0)), fp.numbers(buf, *lay.field(g, 2))   # time: first and last only
    ttl, yes = _ttl(buf, *lay.field(g, 5)), _yes(buf, *lay.field(g, 6))
    if t is None or size is None or ttl is None or yes is None:
        return None
    if _missing_words(lay, g, (1, 3, 4)):
        return None
    _check_header(src, header, _COLS["CreatedMessagesReport"])
    return {"time": np.array(t), "size": size, "ttl": ttl, "responses": float(yes.sum()), "n": len(size)}


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
                 "responses": float(f["isResponse"].sum()), "n": len(f)}
        self.n += c["n"]
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


class _ConnectivityStrings:
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


# Host numbers as keys that sort as their decimal strings do ("100" < "19" < "2"): the value
# left-aligned on _HOST_DIGITS digits, times 8, plus its digit count. A pair key (both hosts, in
# string order) then sorts as the fold's pair strings "lo\x1fhi" do.
_HOST_DIGITS = 5
_HOST_BITS = 20             # 10**5 * 8 < 2**20
_K_BITS = 22                # contacts per pair in the numeric keys
_POS_BITS = 22              # lines per block in the sort keys


def _host_keys(v: np.ndarray) -> np.ndarray | None:
    """String-order keys of integer hosts ``v`` (None if one is negative or has more than 5 digits)."""
    if not len(v):
        return v.astype(np.int64)
    if int(v.min()) < 0 or int(v.max()) >= 10 ** _HOST_DIGITS:
        return None
    v = v.astype(np.int64)
    digits = 1 + (v >= 10) + (v >= 100) + (v >= 1000) + (v >= 10000)
    return v * (10 ** (_HOST_DIGITS - digits)) * 8 + digits


def _host_str(key: int) -> str:
    digits = key & 7
    return str((key >> 3) // 10 ** (_HOST_DIGITS - digits))


def _pair_str(pk: int) -> str:
    return _host_str(pk >> _HOST_BITS) + "\x1f" + _host_str(pk & ((1 << _HOST_BITS) - 1))


def _small_ints(buf: np.ndarray, s: np.ndarray, e: np.ndarray) -> np.ndarray | None:
    """Values of tokens of 1 to 5 digits without a leading zero, else None (one byte column at a time)."""
    length = e - s
    if not len(s) or int(length.min()) < 1 or int(length.max()) > _HOST_DIGITS:
        return None
    top = len(buf) - 1
    v = np.zeros(len(s), np.int64)
    for j in range(int(length.max())):
        inside = j < length
        d = buf[np.minimum(s + j, top)] - np.uint8(48)
        if j == 0:
            if ((d > 9) | ((d == 0) & (length > 1))).any():
                return None                             # not a digit, or a leading zero
            v += d
            continue
        if ((d > 9) & inside).any():
            return None
        v = np.where(inside, v * 10 + d, v)
    return v


# bytes 3 .. 3+k-1 of a word: a token of k digits read from 3 bytes before it, left-aligned on 5 digits
_KEEP5 = np.array([((1 << (8 * k)) - 1) << 24 for k in range(6)], dtype=np.uint64)
_UP, _DOWN = np.uint64(int.from_bytes(b"up\n", "little")), np.uint64(int.from_bytes(b"down\n", "little"))


def _fast_host_keys(buf: np.ndarray, s: np.ndarray, e: np.ndarray) -> np.ndarray | None:
    """_host_keys of tokens of 1 to 5 digits without a leading zero, read from the bytes (each token's
    5-digit field in one uint64: the digits left-aligned, so the value is already times 10**(5 - len)),
    or None (another token, or one too near the block's ends)."""
    k = e - s
    if not len(s):
        return np.empty(0, np.int64)
    if int(k.min()) < 1 or int(k.max()) > _HOST_DIGITS or int(s.min()) < 3 or int(s.max()) + 5 > len(buf):
        return None
    x = fp.digit_bytes(fp.words_at(buf, s - 3), _KEEP5[k])
    if x is None or (((x >> np.uint64(24)).astype(np.uint8) == 0) & (k > 1)).any():
        return None                                     # not a digit, or a leading zero (byte 3: the first digit)
    return (fp.digits8(x).view(np.int64) << 3) | k


def _fast_connectivity(src: _Src) -> dict | None:
    """time, both hosts and up/down of a plain block of 'time CONN h1 h2 up|down' lines (None: use the parser)."""
    lines = fp.scan(src.data, trailing_ok=False, na_words=False)  # every field is checked below
    g = lines.grid(5) if lines is not None else None
    if g is None:
        return None
    buf = lines.buf
    if not fp.word_at(buf, g[:, 0] + 1, b"CONN ").all():
        return None
    k1, k2 = _fast_host_keys(buf, *lines.field(g, 2)), _fast_host_keys(buf, *lines.field(g, 3))
    if k1 is None or k2 is None:
        return None
    state = fp.words_at(buf, g[:, 3] + 1)
    up = (state & np.uint64(0xFFFFFF)) == _UP
    if not (up | ((state & np.uint64(0xFFFFFFFFFF)) == _DOWN)).all():
        return None
    t = fp.numbers(buf, *lines.field(g, 0))
    if t is None:
        return None
    return {"time": t, "k1": k1, "k2": k2, "up": up}


class _Connectivity:
    """Contacts: the k-th 'up' of an unordered host pair ends at its k-th 'down' (as summaries._contacts).

    Hosts are integer keys while they are small numbers (always, in ONE's files); a block with
    other hosts moves the state to _ConnectivityStrings, which keys pairs by strings. Both give the
    same durations in the same order (pairs in string order, then k), so the same sums."""

    def __init__(self):
        self.events = self.up = self.down = self.contacts = 0
        self.tmax = -math.inf
        self.dur = Column()
        self.pairs = np.empty(0, np.int64)             # distinct pair keys, sorted
        self.seen_keys = np.empty(0, np.int64)         # pair key << 1 | down -> events so far
        self.seen_n = np.empty(0, np.int64)
        self.open_key = np.empty(0, np.int64)          # (pair key << K | k) << 1 | down, unmatched
        self.open_time = np.empty(0, np.float64)
        self.strings: _ConnectivityStrings | None = None

    def add(self, src: _Src, parse) -> None:
        if self.strings is None:
            c = _fast_connectivity(src)
            if c is None:
                f = parse(src)
                if not len(f):
                    return
                c = {"time": f["time"].to_numpy("float64"), "up": (f["state"].astype(str) == "up").to_numpy(),
                     "h1": f["host1"].to_numpy(), "h2": f["host2"].to_numpy()}
                if not all(c[h].dtype.kind in "iu" for h in ("h1", "h2")) or not self._numeric(c):
                    self._to_strings()
                    self.strings.add(_ParsedSrc(src, f), lambda s: s.frame)
                return
            if self._numeric(c):
                return
            self._to_strings()
        self.strings.add(src, parse)

    def _numeric(self, c: dict) -> bool:
        """Fold one block of numeric hosts; False (nothing folded) if the hosts do not fit the keys."""
        if "k1" in c:                                    # the fast path read the keys from the bytes
            a, b = c["k1"], c["k2"]
        else:
            a, b = _host_keys(c["h1"]), _host_keys(c["h2"])
        if a is None or b is None:
            return False
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        pk = (lo << _HOST_BITS) | hi
        down = ~c["up"]
        t = c["time"]
        n = len(t)
        gk = (pk << 1) | down
        if n >= 1 << _POS_BITS:
            return False
        packed = np.sort((gk << _POS_BITS) | np.arange(n))   # by pair, state, then position (no stable argsort)
        order = packed & ((1 << _POS_BITS) - 1)
        gs = packed >> _POS_BITS
        new = np.empty(n, bool)
        new[:1] = True
        new[1:] = gs[1:] != gs[:-1]
        gstart = np.flatnonzero(new)
        ukeys = gs[gstart]
        ucount = np.diff(np.append(gstart, n))
        at = np.searchsorted(self.seen_keys, ukeys)
        found = at < len(self.seen_keys)
        found[found] = self.seen_keys[at[found]] == ukeys[found]
        prior = np.zeros(len(ukeys), np.int64)
        prior[found] = self.seen_n[at[found]]
        k = np.arange(n) - np.repeat(gstart - prior, ucount)   # in the sorted order
        if n and int(k.max()) >= 1 << _K_BITS:
            return False
        self.seen_n = self.seen_n.copy()
        self.seen_n[at[found]] += ucount[found]
        self.seen_keys = np.concatenate([self.seen_keys, ukeys[~found]])
        self.seen_n = np.concatenate([self.seen_n, ucount[~found]])
        so = np.argsort(self.seen_keys)
        self.seen_keys, self.seen_n = self.seen_keys[so], self.seen_n[so]
        self.events += n
        nd = int(down.sum())
        self.up += n - nd
        self.down += nd
        self.tmax = _nanmax(self.tmax, t)
        upk = ukeys >> 1                                 # this block's pairs, sorted (once per state)
        if len(upk):
            upk = upk[np.append(True, upk[1:] != upk[:-1])]
            at = np.searchsorted(self.pairs, upk)
            known = at < len(self.pairs)
            known[known] = self.pairs[at[known]] == upk[known]
            if not known.all():                          # new pairs (few once a run is under way)
                self.pairs = np.union1d(self.pairs, upk[~known])
        key = np.concatenate([self.open_key, (((gs >> 1) << (_K_BITS + 1)) | (k << 1)) | (gs & 1)])
        tm = np.concatenate([self.open_time, t[order]])
        o = np.argsort(key, kind="stable")             # sorted runs (open ones; each pair's ups, downs): a fast merge
        key, tm = key[o], tm[o]
        match = np.zeros(len(key), bool)
        if len(key) > 1:
            match[:-1] = (key[:-1] >> 1) == (key[1:] >> 1)   # an up and the down of the same pair and k
        i = np.flatnonzero(match)
        self.contacts += len(i)
        self.dur.add(tm[i + 1] - tm[i])
        keep = ~match
        keep[i + 1] = False
        self.open_key, self.open_time = key[keep], tm[keep]
        return True

    def _to_strings(self) -> None:
        s = _ConnectivityStrings()
        s.events, s.up, s.down, s.contacts, s.tmax, s.dur = self.events, self.up, self.down, self.contacts, self.tmax, self.dur
        if len(self.pairs):
            s.pairs.add(np.array([_pair_str(int(x)) for x in self.pairs], dtype=object))
        if len(self.seen_keys):
            idx = [_pair_str(int(x) >> 1) + "\x1f" + ("down" if x & 1 else "up") for x in self.seen_keys]
            s.seen = pd.Series(self.seen_n, index=idx, dtype="int64")
        if len(self.open_key):
            ok = self.open_key
            s.open = pd.DataFrame({"p": np.array([_pair_str(int(x) >> (_K_BITS + 1)) for x in ok], dtype=object),
                                   "up": (ok & 1) == 0, "k": (ok >> 1) & ((1 << _K_BITS) - 1),
                                   "time": self.open_time})
        self.strings = s

    def finish(self) -> Summary:
        if self.strings is not None:
            return self.strings.finish()
        s = _ConnectivityStrings()
        s.events, s.up, s.down, s.contacts, s.tmax, s.dur = self.events, self.up, self.down, self.contacts, self.tmax, self.dur
        s.pairs.keys = pd.RangeIndex(len(self.pairs))      # only its size is read
        return s.finish()


class _ParsedSrc:
    """A block already parsed (its frame), passed on to a fold that calls parse(src)."""

    def __init__(self, src: _Src, frame: pd.DataFrame):
        self.src, self.frame = src, frame


def _fast_ns2(data: bytes) -> dict | None:
    """time, node and speed of a plain block of '$ns_ at t "$node_(i) setdest x y speed"' lines
    (x and y checked as numbers, as the parser does), or None (then the parser reads the block)."""
    lines = fp.scan(data, trailing_ok=True, na_words=False)     # every field is checked below
    g = lines.grid(8) if lines is not None else None
    if g is None:
        return None
    buf = lines.buf
    if not (fp.word_at(buf, lines.line_starts(g), b"$ns_ at ").all()
            and fp.word_at(buf, g[:, 3] + 1, b"setdest ").all()):
        return None
    ns, ne = lines.field(g, 3)
    ss, se = lines.field(g, 7)
    if not ((np.take(buf, ne - 1) == 41).all() and (np.take(buf, se - 1) == 34).all()):
        return None
    if fp.word_at(buf, ns, b'"\\$node_').all() and (buf[ns + 8] == 40).all():   # ONE writes the Tcl-escaped form
        pre = 9
    elif fp.word_at(buf, ns, b'"$node_(').all():
        pre = 8
    else:
        return None
    if int((ne - ns).min()) <= pre:
        return None
    node = _small_ints(buf, ns + pre, ne - 1)
    trange = fp.extremes(buf, *lines.field(g, 2))      # only the first and last time are needed
    speed = fp.numbers(buf, ss, se - 1)
    if node is None or trange is None or speed is None:
        return None
    if not (fp.plain_numbers(buf, *lines.field(g, 5)) and fp.plain_numbers(buf, *lines.field(g, 6))):
        return None                                       # x and y: checked, not needed
    return {"time": np.array(trange), "node": node, "speed": speed, "n": len(node)}


def _ns2_pieces(data: bytes) -> tuple[list[bytes], list[bytes]]:
    """(runs of move lines, runs of '$node_' init lines) of a block, each in file order."""
    moves, inits = [], []
    pos, n = 0, len(data)
    while pos < n:
        init = data.startswith(b"$node_", pos)
        end = data.find(b"\n$ns_" if init else b"\n$node_", pos)
        end = n if end < 0 else end + 1
        (inits if init else moves).append(data[pos:end])
        pos = end
    return moves, inits


def _ns2_inits_plain(piece: bytes) -> bool:
    """Whether every line of ``piece`` is a plain '$node_(i) set X_|Y_|Z_ v' line (i a small integer,
    v a plain decimal): lines the parser reads as init lines without a word (and no moves)."""
    lines = fp.scan(piece, trailing_ok=False, na_words=False)
    g = lines.grid(4) if lines is not None else None
    if g is None:
        return False
    buf = lines.buf
    ns, ne = lines.field(g, 0)
    if not (fp.word_at(buf, ns, b"$node_(").all() and (buf[ne - 1] == 41).all()
            and fp.word_at(buf, g[:, 0] + 1, b"set ").all()):
        return False
    axis = fp.words_at(buf, g[:, 1] + 1) & np.uint64(0xFFFFFF)
    if not np.isin(axis, _NS2_AXES).all() or int((ne - ns).min()) <= 8:
        return False
    return _small_ints(buf, ns + 7, ne - 1) is not None and fp.plain_numbers(buf, *lines.field(g, 3))


_NS2_AXES = np.array([int.from_bytes(a + b"_ ", "little") for a in (b"X", b"Y", b"Z")], dtype=np.uint64)


def _fast_ns2_block(src: _Src, parse) -> dict | None:
    """_fast_ns2 of a block whose move lines may be interrupted by runs of init lines (ONE writes
    them first; a file of several runs has them again further on): the moves read fast, in order,
    and each run of init lines by the parser, which must find no move and no problem in them
    (else None: the parser reads the whole block and reports what it finds, as before)."""
    data = src.data
    if data.startswith(b"$ns_"):                       # the usual block: moves only
        c = _fast_ns2(data)
        if c is not None or b"\n$node_" not in data:
            return c
    moves, inits = _ns2_pieces(data)
    parts = []
    for piece in moves:
        parts.append(_fast_ns2(piece))
        if parts[-1] is None:
            return None
    n0 = len(src.warnings)
    for piece in inits:
        if _ns2_inits_plain(piece):
            continue                                   # what the parser accepts, without moves
        try:
            head = parse(_Src(src.path, piece, src.report_type, src.separator, src.warnings))
        except ReportError:
            head = None
        if head is None or len(head) or len(src.warnings) > n0:
            del src.warnings[n0:]                      # the whole block's parse says it again, its way
            return None
    if len(parts) == 1:
        return parts[0]
    if not parts:
        return {"time": np.empty(0), "node": np.empty(0, np.int64), "speed": np.empty(0), "n": 0}
    return {"time": np.array([min(p["time"][0] for p in parts), max(p["time"][1] for p in parts)]),
            "node": np.concatenate([p["node"] for p in parts]),
            "speed": np.concatenate([p["speed"] for p in parts]), "n": sum(p["n"] for p in parts)}


class _Ns2:
    def __init__(self):
        self.n, self.nodes, self.speed = 0, Distinct(), Column()
        self.tmin, self.tmax = math.inf, -math.inf

    def add(self, src: _Src, parse) -> None:
        c = _fast_ns2_block(src, parse)
        if c is None:
            f = parse(src)
            c = {"time": f["time"].to_numpy("float64"), "node": f["node"].to_numpy(),
                 "speed": f["speed"].to_numpy("float64"), "n": len(f)}
        self.n += c["n"]
        self.nodes.add(c["node"])
        self.speed.add(c["speed"])
        t = c["time"]
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
