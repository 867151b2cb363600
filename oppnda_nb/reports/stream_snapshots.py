"""Streamed folds of the snapshot reports (location snapshots, message copy counts, message
locations): a block always holds whole snapshots (streaming.fold_blocks cuts before '[t]' lines).

Each fold first reads a block on a numpy fast path (fastpath_snapshots: tokens, uint64 keys, SWAR
numbers; only the fields the summary needs, in pieces of about PIECE bytes); a block the fast path
does not read exactly (tabs, CR, blank lines, nan words, long names, odd numbers, ...) goes through
the type's parser (the message location fold: its line loop), so the result never depends on the path.
Names are numbered through one file-wide key table (fastpath_snapshots.Keys); ONE's own location
shape (every snapshot the same hosts in the same order) folds its steps as a snapshot x host table.
Memory stays bounded: per piece arrays, distinct names (thousands), per snapshot rows, and at most
_Coordinate.KEEP mantissas per coordinate.
"""
from __future__ import annotations

import math
import re
from typing import Iterator

import numpy as np
import pandas as pd

from . import fastpath as fp
from . import fastpath_snapshots as fs
from .base import Summary
from .folds import Distinct
from .streaming import NeedWholeFile, StreamSpec, _nanmax, _nanmin, _series
from .base import _Src


class _Lines:
    """A block's lines on the fast path: marker lines (``[t]``, one token) open snapshots (times
    ``t``); ``F`` is each line's first token, ``ntok`` its tokens."""

    __slots__ = ("tk", "F", "ntok", "mark", "t")

    def __init__(self, tk, F, ntok, mark, t):
        self.tk, self.F, self.ntok, self.mark, self.t = tk, F, ntok, mark, t

    def rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Each snapshot's rows (lines after its marker) and the index of its first row among all rows."""
        ml = np.flatnonzero(self.mark)
        n = np.empty_like(ml)
        np.subtract(ml[1:], ml[:-1], out=n[:-1])
        n[-1] = len(self.mark) - ml[-1]
        n -= 1
        return n, ml - np.arange(len(ml))


PIECE = 1 << 20     # the fast paths read a block in pieces of about this many bytes (streaming.SNAPSHOT_BLOCK:
                    # a block is one piece; larger blocks, e.g. a long snapshot, are cut)


def _pieces(data: bytes, times: int = 1) -> Iterator[bytes]:
    """``data`` cut before '[' lines into pieces of about ``times`` * PIECE bytes (whole snapshots
    each), one at a time (one piece's copy alive, not the whole block's)."""
    size = PIECE * times
    if len(data) < 2 * size:
        yield data
        return
    pos = 0
    while pos < len(data):
        cut = data.find(b"\n[", pos + size)
        if cut < 0 or len(data) - cut < size // 2:
            yield data[pos:]
            return
        yield data[pos:cut + 1]
        pos = cut + 1


def _each(data: bytes, fast) -> list | None:
    """``fast(piece)`` for each piece of ``data``, or None if one piece is not simple."""
    out = []
    for piece in _pieces(data):
        r = fast(piece)
        if r is None:
            return None
        out.append(r)
    return out


def _lines(data: bytes) -> _Lines | None:
    """Tokens and snapshots of a block whose first line is a marker and whose markers are simple
    ``[decimal]`` tokens alone on their line, or None."""
    tk = fs.tokens(data)
    if tk is None:
        return None
    F = np.flatnonzero(tk.first)
    ntok = np.empty_like(F)
    np.subtract(F[1:], F[:-1], out=ntok[:-1])
    ntok[-1] = len(tk.starts) - F[-1]
    mark = tk.buf[tk.starts[F]] == 91                                   # '['
    if not mark[0] or (ntok[mark] != 1).any():
        return None
    mi = F[mark]
    t = _times(tk, tk.starts[mi], tk.ends[mi])
    return None if t is None else _Lines(tk, F, ntok, mark, t)


def _rows(data: bytes, k: int) -> tuple[_Lines, np.ndarray, np.ndarray] | None:
    """The block's lines (:func:`_lines`), which lines are rows (not markers) and each row's first
    token, when every row has ``k`` tokens; else None."""
    ln = _lines(data)
    if ln is None:
        return None
    rows = ~ln.mark
    if (ln.ntok[rows] != k).any():
        return None
    return ln, rows, ln.F[rows]


class _Grid:
    """A block of ``[t]`` markers and rows of exactly k tokens, read by :func:`_grid`: ``buf``/``data``
    (as fs.Tokens has them), snapshot times ``t``, rows per snapshot ``size``, index of each snapshot's
    first row ``first``, and (start, end) of each of the k columns of the rows."""

    __slots__ = ("data", "buf", "t", "size", "first", "cols")

    def __init__(self, data, buf, t, size, first, cols):
        self.data, self.buf, self.t, self.size, self.first, self.cols = data, buf, t, size, first, cols


def _grid(data: bytes, k: int) -> _Grid | None:
    """The rows of ``data`` when it is exactly '[t]' marker lines (the first line one) and rows of k
    tokens separated by single blanks, nothing else (no trailing blanks, tabs, CR, empty lines); else
    None (then :func:`_rows` decides). One scan for the separators and a few passes over the lines:
    no per-token arrays. Accepted blocks give what ``_rows(data, k)`` gives."""
    if not data or data[-1] != 10 or data[0] != 91:
        return None
    buf = np.frombuffer(data + fs._PAD, dtype=np.uint8)
    body = buf[:len(data)]
    sep = np.flatnonzero(body <= 32)                      # blanks and newlines (and anything else below '!')
    c = np.take(body, sep)
    nl = c == 10
    nli = np.flatnonzero(nl)                              # each line's newline, as an index in sep
    if len(nli) + int(np.count_nonzero(c == 32)) != len(sep):
        return None                                       # a tab, CR, ...
    del c, nl
    per = np.empty_like(nli)                              # separators per line: 1 (marker) or k (row)
    per[0] = nli[0] + 1
    np.subtract(nli[1:], nli[:-1], out=per[1:])
    row = per == k
    if not (row | (per == 1)).all():
        return None
    head = np.empty_like(nli)                             # each line's first byte
    head[0] = 0
    np.add(np.take(sep, nli[:-1]), 1, out=head[1:])
    mark = np.take(buf, head) == 91
    if (mark == row).any():                               # markers alone on their line, rows not opening with '['
        return None
    ml = np.flatnonzero(mark)
    ends = np.take(sep, nli[ml])
    if int((ends - head[ml]).min()) < 3 or (np.take(buf, ends - 1) != 93).any():
        return None                                       # a marker must be '[...]' (empty lines: per 1, no '[')
    t = _times_from(data, buf, head[ml], ends)
    if t is None:
        return None
    rl = nli[row]                                         # each row's newline
    cols = []
    prev = np.take(sep, rl - k)                           # the separator before each row
    for j in range(k):
        e = np.take(sep, rl - (k - 1 - j)) if j < k - 1 else np.take(sep, rl)
        if int(np.subtract(e, prev).min(initial=2)) < 2:
            return None                                   # an empty token (two blanks, a leading blank)
        cols.append((prev + 1, e))
        prev = e
    size = np.empty_like(ml)
    np.subtract(ml[1:], ml[:-1], out=size[:-1])
    size[-1] = len(nli) - ml[-1]
    size -= 1
    return _Grid(data, buf, t, size, ml - np.arange(len(ml)), cols)


def _times_from(data: bytes, buf: np.ndarray, s: np.ndarray, e: np.ndarray) -> np.ndarray | None:
    """:func:`_times` of the marker tokens ``data[s:e]`` of a block whose padded bytes are ``buf``."""
    return _times(_Bytes(data, buf), s, e)


class _Bytes:
    __slots__ = ("data", "buf")

    def __init__(self, data, buf):
        self.data, self.buf = data, buf


def _times(tk: fs.Tokens, s: np.ndarray, e: np.ndarray) -> np.ndarray | None:
    """The times of the marker tokens ``tk.data[s:e]`` if all are ``[plain decimal]``, else None."""
    if len(s) <= _FEW_TIMES:                            # a few markers (as usual): float() each, no numpy passes
        return _times_py(tk.data, s, e)
    if int((e - s).min()) >= 3 and (tk.buf[e - 1] == 93).all():       # '[' ... ']': all at once
        near = int(np.searchsorted(e, 17))              # markers ending in the first 16 bytes (the block's first)
        head = _times_py(tk.data, s[:near], e[:near]) if near else np.empty(0)     # one by one, the others on
        rest = fs.decimals(tk, s[near:] + 1, e[near:] - 1)   # fs's SWAR path: the same language as _PLAIN (<= 15
        if head is not None and rest is not None:            # digits), the same floats as float()
            return np.concatenate([head, rest]) if near else rest
    return _times_py(tk.data, s, e)


_FEW_TIMES = 64     # up to this many markers in a piece are read one by one (numpy's fixed costs are larger)


def _times_py(data: bytes, s: np.ndarray, e: np.ndarray) -> np.ndarray | None:
    """The times of the marker tokens ``data[s:e]`` one by one (``[plain decimal]``), or None."""
    inner = [data[a + 1:b - 1] for a, b in zip(s.tolist(), e.tolist()) if data[b - 1] == 93]     # '[...]'
    if len(inner) != len(s) or not all(_PLAIN.fullmatch(x) for x in inner):
        return None
    return np.array([float(x) for x in inner], dtype=np.float64)   # float() and the parser both round plain decimals correctly


class _Coordinate:
    """Exact mean and median of a coordinate column in bounded memory: the values are kept as int32
    decimal mantissas (``m / 10**f`` gives each value back bit for bit; ONE writes 4 digits after
    the dot) or, if some value is not such a decimal, as float64; the median's two middle values are
    found through a histogram of the mantissas (no sorted copy of the column). Beyond KEEP mantissas
    only those in a window of ranks around the running median are kept (the others are counted below
    or above it); a window of few distinct values becomes a count per value. If the median ever
    leaves the window (a column drifting one way for millions of rows), NeedWholeFile."""

    KEEP = 1 << 20             # mantissas kept at most (4 MB) before the window narrows to half of them
    SPAN = 1 << 19             # a window of at most this many distinct mantissas: a count per value

    def __init__(self) -> None:
        self.f: int | None = None                  # digits after the dot (None: not chosen yet / float64 mode)
        self.parts: list[np.ndarray] = []
        self.ints = True
        self.n = 0
        self.partial: list[float] = []             # each block's float64 sum (pairwise, like pandas' mean)
        self.lo: int | None = None                 # the window of kept mantissas (inclusive; None: open)
        self.hi: int | None = None
        self.below = self.above = 0                # values left out below / above it
        self.kept = 0
        self.hist: np.ndarray | None = None        # count per mantissa lo..hi (a narrow window)

    def _as_ints(self, a: np.ndarray) -> np.ndarray | None:
        if (np.signbit(a) & (a == 0)).any():       # -0.0 would come back as 0.0
            return None
        for f in ([self.f] if self.f is not None else range(8)):
            m = np.rint(a * 10.0 ** f)
            if np.abs(m).max() < 2 ** 31 and (m / 10.0 ** f == a).all():
                self.f = f
                return m.astype(np.int32)
        return None

    def add(self, a: np.ndarray, mant: tuple[np.ndarray, int] | None = None) -> None:
        """Add the values ``a``; ``mant``: (m, f) with ``m / 10**f == a`` exactly, if at hand (no NaN)."""
        a = np.asarray(a, dtype=np.float64)
        if mant is None:
            a = a[~np.isnan(a)]
        if not len(a):
            return
        self.n += len(a)
        self.partial.append(float(a.sum()))
        if self.ints and mant is not None and self.f in (None, mant[1]):
            m, f = mant
            if int(m.max()) < 2 ** 31 and int(m.min()) > -2 ** 31:
                self.f = f
                self._keep(m.astype(np.int32))
                return
        if self.ints:
            m = self._as_ints(a)
            if m is not None:
                self._keep(m)
                return
            if self.below or self.above or self.hist is not None:
                raise NeedWholeFile("a coordinate that is no short decimal after the kept window narrowed")
            self.ints = False                      # back to float64 values (an odd file: memory as before)
            self.parts = [p / 10.0 ** self.f for p in self.parts] if self.f is not None else self.parts
        self.parts.append(a)

    def _keep(self, m: np.ndarray) -> None:
        if self.lo is not None or self.hi is not None:
            out = np.zeros(len(m), dtype=bool)
            if self.lo is not None:
                low = m < self.lo
                self.below += int(np.count_nonzero(low))
                out |= low
            if self.hi is not None:
                high = m > self.hi
                self.above += int(np.count_nonzero(high))
                out |= high
            if out.any():
                m = m[~out]
        if self.hist is not None:
            self.hist += np.bincount(m.astype(np.int64) - self.lo, minlength=len(self.hist))
            return
        self.parts.append(m)
        self.kept += len(m)
        if self.kept > self.KEEP:
            self._narrow()

    def _narrow(self) -> None:
        """Keep only the mantissas of ranks within KEEP/4 of the running median's (and equal values)."""
        v = np.concatenate(self.parts)
        self.parts = []                            # (their memory back before the masks below)
        k1, k2 = (self.n - 1) // 2 - self.below, self.n // 2 - self.below
        if k1 < 0 or k2 >= len(v):
            raise NeedWholeFile("the coordinate median left the window of values kept around it")
        margin = self.KEEP // 4
        i, j = max(k1 - margin, 0), min(k2 + margin, len(v) - 1)
        v.partition([i, j])
        keep = np.ones(len(v), dtype=bool)
        if i > 0:
            self.lo = int(v[i])
            low = v < self.lo
            self.below += int(np.count_nonzero(low))
            keep &= ~low
        if j < len(v) - 1:
            self.hi = int(v[j])
            high = v > self.hi
            self.above += int(np.count_nonzero(high))
            keep &= ~high
        v = v[keep]
        if self.lo is not None and self.hi is not None and self.hi - self.lo < self.SPAN \
                and len(v) > self.KEEP // 2:         # many equal values: a count per value instead
            self.hist = np.bincount(v.astype(np.int64) - self.lo, minlength=self.hi - self.lo + 1)
            self.parts, self.kept = [], 0
            return
        self.parts, self.kept = [v], len(v)

    def _kth(self, ks: list[int]) -> list[float]:
        """The values of rank ``ks`` (0-based) in sorted order."""
        if not self.ints:
            v = np.concatenate(self.parts)
            v.partition(ks)
            return [float(v[k]) for k in ks]
        ks = [k - self.below for k in ks]          # ranks among the kept values
        if self.hist is not None:
            cum = np.cumsum(self.hist)
            if min(ks) < 0 or max(ks) >= int(cum[-1]):
                raise NeedWholeFile("the coordinate median left the window of values kept around it")
            return [float(self.lo + int(np.searchsorted(cum, k, side="right"))) / 10.0 ** self.f for k in ks]
        if min(ks) < 0 or max(ks) >= self.kept:
            raise NeedWholeFile("the coordinate median left the window of values kept around it")
        lo = min(int(p.min()) for p in self.parts if len(p))
        hi = max(int(p.max()) for p in self.parts if len(p))
        shift = max((hi - lo).bit_length() - 16, 0)
        counts = sum(np.bincount((p.astype(np.int64) - lo) >> shift, minlength=((hi - lo) >> shift) + 1)
                     for p in self.parts)
        cum = np.cumsum(counts)
        out = []
        for k in ks:
            b = int(np.searchsorted(cum, k, side="right"))
            below = int(cum[b - 1]) if b else 0
            inb = np.concatenate([p[((p.astype(np.int64) - lo) >> shift) == b] for p in self.parts])
            inb.partition(k - below)
            out.append(float(inb[k - below]) / 10.0 ** self.f)
        return out

    def stats(self, prefix: str) -> dict[str, float]:
        if not self.n:
            return {f"{prefix}_mean": math.nan, f"{prefix}_median": math.nan}
        a, b = self._kth([(self.n - 1) // 2, self.n // 2])
        return {f"{prefix}_mean": math.fsum(self.partial) / self.n, f"{prefix}_median": float(np.mean([a, b]))}


class _Location:
    def __init__(self):
        self.ts: list[np.ndarray] = []                   # each block's distinct snapshot times (counted at the end)
        self.ids: dict[str, int] = {}                    # host name -> id (the hosts seen so far)
        self.keys = fs.Keys()                            # host name keys of the fast path ...
        self.key_id = np.empty(0, np.int64)              # ... and the id of each key's name
        self.x, self.y = _Coordinate(), _Coordinate()
        self.tmin, self.tmax = math.inf, -math.inf
        self.last = np.empty((0, 2))                     # per host id: its last (x, y), NaN if none yet
        self.step_sum, self.step_n = 0.0, 0

    def _host_ids(self, names, codes: np.ndarray) -> np.ndarray:
        cat_id = np.array([self.ids.setdefault(str(c), len(self.ids)) for c in names], dtype=np.int64)
        return cat_id[codes]

    def _key_ids(self, w: np.ndarray) -> np.ndarray | None:
        """Host ids of name keys ``w`` (new names get the next ids, in order of appearance), or None."""
        code = self.keys.codes(w)
        if code is None:
            return None
        new = self.keys.keys[len(self.key_id):]
        if len(new):
            try:
                names = [b.decode("utf-8") for b in fs.word_bytes(new)]
            except UnicodeDecodeError:
                return None
            self.key_id = np.concatenate([self.key_id, [self.ids.setdefault(n, len(self.ids)) for n in names]])
        return self.key_id[code]

    def add(self, src: _Src, parse) -> None:
        fast = _each(src.data, _location_fast)
        h = None
        if fast is not None:
            w = np.concatenate([r[1] for r in fast])
            h = self._key_ids(w)
        if h is None:
            f = parse(src)
            if not len(f):
                return
            host = f["host"].array
            t = f["t"].to_numpy("float64")
            h = self._host_ids(host.categories, host.codes)
            x, y = f["x"].to_numpy("float64"), f["y"].to_numpy("float64")
            ts, per = t, None                            # (rows' times)
            mx = my = None
        else:
            x, y = (np.concatenate([r[i][0] for r in fast]) for i in (2, 3))
            if not len(x):
                return
            mx, my = (_joined([r[i][1] for r in fast]) for i in (2, 3))
            ts = np.concatenate([r[0] for r in fast])    # times of the snapshots with rows ...
            per = np.concatenate([r[4] for r in fast])   # ... and their rows
            t = fast = None                              # (the pieces' arrays freed)
        if ts.min() < self.tmax:      # snapshot times go back: steps would pair other rows than the sort does
            raise NeedWholeFile("snapshot times are not in order")
        self.ts.append(pd.unique(ts))
        self.x.add(x, mx)
        self.y.add(y, my)
        self.tmin, self.tmax = _nanmin(self.tmin, ts), _nanmax(self.tmax, ts)
        if len(self.last) < len(self.ids):
            self.last = np.vstack([self.last, np.full((len(self.ids) - len(self.last), 2), np.nan)])
        in_order = bool((np.diff(ts) >= 0).all())
        if per is not None and in_order and self._add_table(h, x, y, per):
            return
        if t is None:
            t = np.repeat(ts, per)
        if in_order:                                     # rows in time order: a stable sort by host keeps it
            order = np.argsort(h.astype(np.uint16) if len(self.ids) < 65536 else h, kind="stable")
        else:
            order = np.lexsort((t, h))                   # by host, then time; stable like the whole-frame sort
        h, x, y = h[order], x[order], y[order]
        same = h[1:] == h[:-1]
        step = np.hypot(np.diff(x), np.diff(y))[same]
        first = np.concatenate([[True], ~same])
        fh = h[first]
        self._steps(step, fh, x[first], y[first])
        lastm = np.concatenate([~same, [True]])
        self.last[h[lastm]] = np.stack([x[lastm], y[lastm]], axis=1)

    def _steps(self, step: np.ndarray, fh: np.ndarray, fx: np.ndarray, fy: np.ndarray) -> None:
        """Add the block's steps (host by host, in host id order) and each host's step from its last
        position before the block (hosts ``fh`` in id order, first positions ``fx``, ``fy``)."""
        prev = self.last[fh]
        ok = ~np.isnan(prev[:, 0])
        cross = np.hypot(fx[ok] - prev[ok, 0], fy[ok] - prev[ok, 1])
        self.step_sum += float(step.sum()) + float(cross.sum())
        self.step_n += len(step) + len(cross)

    def _add_table(self, h: np.ndarray, x: np.ndarray, y: np.ndarray, per: np.ndarray) -> bool:
        """The steps of a block in time order whose snapshots all list the same distinct hosts in the
        same order (ONE's own shape): a snapshot x host table, no sort; the same steps in the same
        order as the sort; False (nothing done) for any other block."""
        nh = int(per[0])
        if (per != nh).any():
            return False
        H = h.reshape(-1, nh)
        h0 = H[0]
        if (H[1:] != h0).any():
            return False
        perm = np.argsort(h0, kind="stable")
        hs = h0[perm]
        if (hs[1:] == hs[:-1]).any():                    # a host twice in a snapshot
            return False
        X, Y = x.reshape(-1, nh), y.reshape(-1, nh)
        if (perm == np.arange(nh)).all():
            step = np.hypot(np.diff(X, axis=0), np.diff(Y, axis=0)).T.copy().ravel()
            self._steps(step, hs, X[0], Y[0])
        else:
            step = np.hypot(np.diff(X, axis=0), np.diff(Y, axis=0))[:, perm].T.copy().ravel()
            self._steps(step, hs, X[0, perm], Y[0, perm])
        self.last[h0] = np.stack([X[-1], Y[-1]], axis=1)
        return True

    def finish(self) -> Summary:
        n = self.x.n
        snaps = len(pd.unique(np.concatenate(self.ts))) if self.ts else 0
        sc = {"snapshots": float(snaps), "hosts": float(len(self.ids)),
              "first_t": self.tmin if n else math.nan, "last_t": self.tmax if n else math.nan,
              "step_mean": self.step_sum / self.step_n if self.step_n else math.nan}
        sc.update(self.x.stats("x"))
        sc.update(self.y.stats("y"))
        return Summary(sc)


def _joined(parts: list) -> tuple[np.ndarray, int] | None:
    """The pieces' (mantissas, f) as one, if every piece has them with the same f."""
    if any(p is None for p in parts) or len({p[1] for p in parts}) != 1:
        return None
    return np.concatenate([p[0] for p in parts]), parts[0][1]


def _location_fast(data: bytes):
    """(times of the snapshots with host lines, host name keys, x, y, host lines of those snapshots)
    of the host lines ('name x y') of a simple block, or None."""
    g = _grid(data, 3)
    if g is not None:
        tk, t, per, cols = g, g.t, g.size, g.cols
    else:
        r = _rows(data, 3)
        if r is None:
            return None
        ln, host, hi = r
        tk, t, per = ln.tk, ln.t, ln.rows()[0]
        cols = [(tk.starts[hi + j], tk.ends[hi + j]) for j in range(3)]
    xy = []
    for j in (1, 2):
        s, e = cols[j]
        m = fs.mantissas(tk, s, e)                       # the usual 'dddd.dddd': also as integers for _Coordinate
        v = m[0] / fs._POW10F[m[1]] if m is not None else _decimals(tk, s, e)
        if v is None:
            return None
        xy.append((v, m))
    w = fs.words_at(tk, *cols[0])
    if w is None or fs.na_words(w):
        return None
    keep = per > 0
    return t[keep], w, xy[0], xy[1], per[keep]


class _CopyCount:
    def __init__(self):
        self.per_t: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []   # (t, rows, copies sum) per block
        self.msgs = Distinct()                       # message names (blocks read by the parser)
        self.keys = fs.Keys(slots=8)                 # message keys (blocks read on the fast path; a 4x smaller table than
                                                     # the default, measured as fast), decoded at the end ...
        self.words = np.empty(0, np.uint64)          # ... those beyond Keys.MAX_KEYS distinct ones
        self.n, self.total, self.cmax = 0, 0.0, -math.inf

    def add(self, src: _Src, parse) -> None:
        fast = []
        for piece in _pieces(src.data):
            r = _copy_count_fast(piece)
            if r is None:
                fast = None
                break
            c = r[4]                                     # only its count, exact sum and max are kept ...
            if self.keys.codes(r[3]) is None:            # ... and its keys, in the file-wide table (or, very many: as they are)
                self.words = pd.unique(np.concatenate([self.words, pd.unique(r[3])]))
            fast.append((r[0], r[1], r[2], len(c), int(c.sum()), int(c.max()) if len(c) else None))
        if fast is None:
            f = parse(src)
            if not len(f):
                return
            g = f.groupby("t", sort=True)["copies"].agg(["size", "sum"])
            self.per_t.append((g.index.to_numpy("float64"), g["size"].to_numpy("int64"), g["sum"].to_numpy("int64")))
            msg = f["msg"].array
            self.msgs.add(np.asarray(msg.categories.astype(str))[np.unique(msg.codes[msg.codes >= 0])])
            c = f["copies"].to_numpy("int64")
            n, total, cmax = len(c), int(c.sum()), int(c.max())
        else:
            n = sum(r[3] for r in fast)
            if not n:
                return
            self.per_t.extend((r[0], r[1], r[2]) for r in fast)
            total = sum(r[4] for r in fast)                     # exact: integers
            cmax = max(r[5] for r in fast if r[3])
        self.n += n
        self.total += float(total)
        self.cmax = max(self.cmax, float(cmax))

    def finish(self) -> Summary:
        words = pd.unique(np.concatenate([self.keys.keys, self.words])) if len(self.words) else self.keys.keys
        if len(words):
            try:
                self.msgs.add(np.asarray([b.decode("utf-8") for b in fs.word_bytes(words)], dtype=str))
            except UnicodeDecodeError:
                raise NeedWholeFile("a message name is not UTF-8") from None
        if self.per_t:
            t, inv = np.unique(np.concatenate([p[0] for p in self.per_t]), return_inverse=True)
            size = np.zeros(len(t), np.int64)
            tot = np.zeros(len(t), np.int64)
            np.add.at(size, inv, np.concatenate([p[1] for p in self.per_t]))
            np.add.at(tot, inv, np.concatenate([p[2] for p in self.per_t]))
        else:
            t, size, tot = np.empty(0), np.empty(0, np.int64), np.empty(0, np.int64)
        mean = tot.astype("float64") / size.astype("float64")
        n = len(t)
        sc = {"snapshots": float(n), "messages": float(len(self.msgs)),
              "copies_mean": self.total / self.n if self.n else math.nan,
              "copies_max": self.cmax if self.n else math.nan,
              "messages_per_snapshot_mean": float(pd.Series(size).mean()) if n else math.nan,
              "final_copies_mean": float(mean[-1]) if n else math.nan}
        return Summary(sc, _series(t, mean, messages=size, copies=tot), "timeseries")


def _copy_count_fast(data: bytes):
    """(snapshot t, rows and copies per snapshot, message keys, copies) of a simple block
    ('msg copies' lines, whole non-negative copy counts), or None."""
    g = _grid(data, 2)
    if g is not None:
        tk, t, cols, size, first = g, g.t, g.cols, g.size, g.first
    else:
        r = _rows(data, 2)
        if r is None:
            return None
        ln, rows, ri = r
        tk, t = ln.tk, ln.t
        cols = [(tk.starts[ri + j], tk.ends[ri + j]) for j in range(2)]
        size, first = ln.rows()
    c = fs.ints_at(tk, *cols[1])
    w = fs.words_at(tk, *cols[0]) if c is not None else None
    if w is None or fs.na_words(w):
        return None
    if not len(c):
        return t[:0], np.empty(0, np.int64), np.empty(0, np.int64), w, c
    keep = size > 0                                      # the snapshots with rows: times, rows, copies
    t, size = t[keep], size[keep]
    tot = np.add.reduceat(c, first[keep])
    if len(t) > 1 and not (np.diff(t) > 0).all():       # a time twice in the block: merge its rows
        t, inv = np.unique(t, return_inverse=True)
        size, tot = np.bincount(inv, weights=size).astype(np.int64), np.bincount(inv, weights=tot).astype(np.int64)
    return t, size, tot, w, c


_BITMAP = 1 << 20       # the message location fold marks (snapshot, message) pairs in a bitmap up to this size,
                        # beyond it it sorts them


class _MessageLocation:
    """Per snapshot: message copies, holders carrying at least one message, distinct messages."""

    PIECES = 1          # its pieces: PIECES * PIECE bytes

    def __init__(self):
        self.rows: list[tuple[float, int, int, int]] = []      # (t, copies, holders, messages)
        self.all: set[bytes] = set()                         # message IDs (the line loop)
        self.keys = fs.Keys()                                  # message keys (the fast path), decoded at the end
        self.cur_t: float | None = None
        self.cur = [0, set(), set()]                           # copies, holder ids, messages
        self.pend: tuple[np.ndarray, np.ndarray] | None = None  # the fast path's holder ids and message codes of cur
        self.done_t: set[float] = set()

    def _sets(self) -> None:
        """The fast path's pending holders and messages of the open snapshot into its sets."""
        if self.pend is not None:
            h, m = self.pend
            self.pend = None
            self.cur[1].update(h.tolist())
            self.cur[2].update(fs.word_bytes(self.keys.keys[m]))

    def _close(self) -> None:
        if self.cur_t is not None and self.cur[0]:
            if self.cur_t in self.done_t:
                raise NeedWholeFile("a snapshot time appears twice, apart")
            self.done_t.add(self.cur_t)
            if self.pend is not None and not self.cur[1] and not self.cur[2]:
                holders, messages = len(self.pend[0]), len(self.pend[1])     # distinct already
            else:
                self._sets()
                holders, messages = len(self.cur[1]), len(self.cur[2])
            self.rows.append((self.cur_t, self.cur[0], holders, messages))
        self.cur = [0, set(), set()]
        self.pend = None

    def add(self, src: _Src, parse) -> None:
        for piece in _pieces(src.data, self.PIECES):   # the line loop's reasons name no line: a piece can take it alone
            if not self._add_fast(piece):
                self._add_lines(piece, src.fail)

    def _add_fast(self, data: bytes) -> bool:
        """Fold a simple block ('(x,y) msg msg ...' lines, simple decimals, ids of <= 8 bytes) with numpy;
        False (nothing folded) if the block is not that simple."""
        ln = _lines(data)
        if ln is None:
            return False
        tk, t = ln.tk, ln.t
        if ln.t[0] == self.cur_t or (len(t) > 1 and (t[1:] == t[:-1]).any()):
            return False                        # a snapshot continued by the next marker: the line loop merges them
        coord = ~ln.mark
        ci = ln.F[coord]
        if (tk.buf[tk.starts[ci]] != 40).any() or not _coords_ok(tk, ci):
            return False
        mi = np.flatnonzero(~tk.first)          # message tokens
        w = tk.words(mi)
        if w is None:
            return False
        c0 = w & np.uint64(0xFF)                # first characters: a '(' or '[' would open a holder or snapshot
        if ((c0 == 40) | (c0 == 91)).any() or fs.na_words(w, c0):
            return False
        code = self.keys.codes(w)
        if code is None:                        # very many distinct messages: the line loop's sets
            return False
        nseg = len(t)
        bounds = np.append(np.searchsorted(mi, ln.F[ln.mark]), len(mi))   # message tokens of each snapshot
        copies = np.diff(bounds)
        ml = np.flatnonzero(ln.mark)
        has = ln.ntok > 1                       # coordinate lines with messages (markers have one token)
        holders = np.add.reduceat(has, ml, dtype=np.int64)
        k = len(self.keys.keys)
        pair = np.repeat(np.arange(nseg, dtype=np.int64) * k, copies) + code     # (snapshot, message)
        if nseg * k <= _BITMAP:
            seen = np.zeros(nseg * k, dtype=bool)
            seen[pair] = True
            seen = seen.reshape(nseg, k)
            messages = np.count_nonzero(seen, axis=1)
            last = np.flatnonzero(seen[-1])
        else:
            u = np.unique(pair)
            messages = np.bincount(u // k, minlength=nseg)
            last = u[u >= (nseg - 1) * k] - (nseg - 1) * k
        self._close()
        done = copies[:-1] > 0
        if done.any():
            ts = t[:-1][done].tolist()
            if len(set(ts)) < len(ts) or not self.done_t.isdisjoint(ts):
                raise NeedWholeFile("a snapshot time appears twice, apart")
            self.done_t.update(ts)
            self.rows.extend(zip(ts, copies[:-1][done].tolist(), holders[:-1][done].tolist(),
                                 messages[:-1][done].tolist()))
        self.cur_t = float(t[-1])
        self.cur = [int(copies[-1]), set(), set()]
        self.pend = (np.flatnonzero(has[ml[-1] + 1:]), last)      # holders among its coordinate lines
        return True

    def _add_lines(self, data: bytes, fail) -> None:
        self._sets()
        holder = -1
        if b"\x0b" in data or b"\x0c" in data:
            raise NeedWholeFile("vertical tab or form feed (the parser keeps them inside tokens)")
        for line in data.split(b"\n"):
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
                if not _PLAIN.fullmatch(head[1:-1]):
                    raise NeedWholeFile("a snapshot time that is not a plain decimal")
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
            if not _PLAIN_XY.fullmatch(head):
                raise NeedWholeFile("a coordinate that is not a pair of plain decimals")
            holder += 1
            msgs = toks[1:]
            if msgs:
                if _NA_WORDS.intersection(msgs):
                    raise NeedWholeFile("a message ID the parser reads as a missing value")
                self.cur[0] += len(msgs)
                self.cur[1].add(holder)
                self.cur[2].update(msgs)
                self.all.update(msgs)

    def finish(self) -> Summary:
        self._close()
        self.all.update(fs.word_bytes(self.keys.keys))
        rows = sorted(self.rows)
        per = np.array(rows, dtype="float64").reshape(-1, 4)
        n = len(per)
        sc = {"snapshots": float(n), "messages": float(len(self.all)),
              "copies_per_snapshot_mean": float(per[:, 1].mean()) if n else math.nan,
              "holders_per_snapshot_mean": float(per[:, 2].mean()) if n else math.nan,
              "messages_per_snapshot_mean": float(per[:, 3].mean()) if n else math.nan}
        return Summary(sc, _series(per[:, 0], per[:, 1], holders=per[:, 2], messages=per[:, 3]), "timeseries")


def _coords_ok(tk: fs.Tokens, ci: np.ndarray) -> bool:
    """Whether the tokens ``ci`` are all '(<decimal>,<decimal>)' (one comma, plain decimals)."""
    s, e = tk.starts[ci], tk.ends[ci]
    n = e - s
    if not len(ci):
        return True
    if int(n.min()) < 5 or int(n.max()) > 40 or (tk.buf[e - 1] != 41).any():
        return False
    m = np.lib.stride_tricks.sliding_window_view(tk.buf, int(n.max()))[s] if int(s.max()) + int(n.max()) <= len(tk.buf) \
        else np.lib.stride_tricks.sliding_window_view(np.append(tk.buf, np.zeros(40, np.uint8)), int(n.max()))[s]
    comma = (m == 44) & (np.arange(m.shape[1]) < n[:, None])
    if (comma.sum(axis=1) != 1).any():
        return False
    cp = s + comma.argmax(axis=1)
    return _decimals(tk, s + 1, cp) is not None and _decimals(tk, cp + 1, e - 1) is not None


def _decimals(tk: fs.Tokens, s: np.ndarray, e: np.ndarray) -> np.ndarray | None:
    """Values of plain decimal tokens (fastpath_snapshots, else fastpath for long ones), or None."""
    v = fs.decimals(tk, s, e)
    return fp.decimals(tk.buf, s, e) if v is None else v


_PLAIN = re.compile(rb"-?(\d+\.?\d*|\.\d+)")
_PLAIN_XY = re.compile(rb"\(" + _PLAIN.pattern + rb"," + _PLAIN.pattern + rb"\)")
_NA_WORDS = frozenset((b"nan", b"NaN", b"n/a"))


def _coord(fail, tok: bytes) -> None:
    body = tok.strip(b"()").split(b",", 1)
    try:
        if len(body) != 2:
            raise ValueError
        float(body[0]), float(body[1])
    except ValueError:
        raise fail(f"not a well-formed MessageLocationReport: bad coordinate {tok.decode('utf-8', 'replace')!r}") from None

LOCATION = StreamSpec(_Location, snapshots=True)
COPY_COUNT = StreamSpec(_CopyCount, snapshots=True)
MESSAGE_LOCATION = StreamSpec(_MessageLocation, snapshots=True)
