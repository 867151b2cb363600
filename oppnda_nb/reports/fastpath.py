"""Fast column extraction for the streamed summaries: a block of single-space separated lines is read
as token offsets with numpy (no tokenizer, no string columns), and only the fields a fold needs are
converted. Every function returns None when the block is not that simple (tabs, CR, blank lines,
double spaces, odd numbers, ``nan`` tokens, ...): the fold then parses the block the exact way, so a
summary never depends on which path a block took.

Numbers: plain decimals (``-12.5``, ``7``, ``.5``) of at most 15 digits are converted as
``mantissa / 10**k``, one correctly rounded division of two exact doubles, i.e. the correctly
rounded value of the decimal (what a C ``strtod`` gives); longer ones (Java's 17-digit times such as
``1189.4000000000137``) go through numpy's correctly rounded conversion; anything else returns None.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import multiprocessing
import sys
from contextlib import contextmanager
from typing import Iterator

import numpy as np

log = logging.getLogger("oppnda_nb.reports.fastpath")

_MAX_DIGITS = 15
_MAX_WIDTH = 32
_POW10 = 10.0 ** np.arange(_MAX_DIGITS + 1)
_NA_WORDS = (b"nan", b"NaN", b"n/a")


class Layout:
    """Token offsets of a block: ``buf`` (uint8), line ``starts``/``ends`` (end = the newline),
    space positions ``sp``, index in ``sp`` of each line's first space ``first`` and ``spaces`` per line."""

    __slots__ = ("buf", "starts", "ends", "sp", "first", "spaces")

    def __init__(self, buf, starts, ends, sp, first, spaces):
        self.buf, self.starts, self.ends, self.sp, self.first, self.spaces = buf, starts, ends, sp, first, spaces

    def __len__(self) -> int:
        return len(self.starts)

    def grid(self, k: int) -> np.ndarray | None:
        """(lines, k) space positions when every line has exactly ``k`` spaces, else None."""
        if not len(self.starts) or not (self.spaces == k).all():
            return None
        return self.sp.reshape(len(self.starts), k)

    def field(self, g: np.ndarray, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(start, end) of field ``i`` of every line of a :meth:`grid`."""
        s = self.starts if i == 0 else g[:, i - 1] + 1
        e = self.ends if i == g.shape[1] else g[:, i]
        return s, e


def layout(body: bytes, *, trailing_ok: bool, na_words: bool = True) -> Layout | None:
    """The token layout of ``body`` (complete lines of single-space separated tokens), or None.

    ``trailing_ok``: one trailing blank per line is dropped (the whitespace-separated parsers ignore
    it; for ``sep=" "`` it would be an extra empty field). ``na_words``: None if a token is
    ``nan``/``NaN``/``n/a`` (the parser reads those as missing values).
    """
    if not body or not body.endswith(b"\n"):
        return None
    for bad in (b"\r", b"\t", b"\x0b", b"\x0c"):
        if bad in body:
            return None
    if trailing_ok and b" \n" in body:
        body = body.replace(b" \n", b"\n")
    buf = np.frombuffer(body, dtype=np.uint8)
    ends = np.flatnonzero(buf == 10)
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    sp = np.flatnonzero(buf == 32)
    if (ends == starts).any():                                   # a blank line
        return None
    if len(sp) and ((np.diff(sp) == 1).any() or (buf[starts] == 32).any() or (buf[ends - 1] == 32).any()):
        return None                                              # double, leading or trailing blanks
    first = np.searchsorted(sp, starts)
    spaces = np.empty_like(first)
    spaces[:-1] = np.diff(first)
    spaces[-1] = len(sp) - first[-1]
    if na_words and (_na_after_space(buf, sp) or _na_at(buf, starts).any()):
        return None
    return Layout(buf, starts, ends, sp, first, spaces)


def _na_at(buf: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Whether the token starting at each of ``s`` is ``nan``, ``NaN`` or ``n/a`` (followed by a blank or newline)."""
    top = len(buf) - 1
    c0 = buf[np.minimum(s, top)]
    s = s[(c0 == 110) | (c0 == 78)]
    out = np.zeros(len(s), bool)
    end = np.isin(buf[np.minimum(s + 3, top)], (32, 10)) & (s + 3 <= top)
    for w in _NA_WORDS:
        out |= token_is(buf, s, s + 3, w)
    return out & end


def _na_after_space(buf: np.ndarray, sp: np.ndarray) -> bool:
    """Whether a token after a blank (any field but a line's first) is ``nan``, ``NaN`` or ``n/a``."""
    return bool(len(sp)) and bool(_na_at(buf, sp + 1).any())


def _chars(buf: np.ndarray, s: np.ndarray, e: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, width) bytes of each token (0 beyond its end) and the in-token mask."""
    if len(s) and int(s.max()) + width > len(buf):
        buf = np.concatenate([buf, np.zeros(width, np.uint8)])
    m = np.lib.stride_tricks.sliding_window_view(buf, width)[s]
    inside = np.arange(width) < (e - s)[:, None]
    m *= inside
    return m, inside


def _widths(s: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, int] | None:
    """(length of each token, the longest) of non-empty tokens ``[s, e)``; None if one is empty or
    longer than the fast conversions read."""
    length = e - s
    if int(length.min()) < 1:
        return None
    w = int(length.max())
    return None if w > _MAX_WIDTH else (length, w)


def decimals(buf: np.ndarray, s: np.ndarray, e: np.ndarray) -> np.ndarray | None:
    """Float64 values of the plain decimal tokens ``buf[s:e]`` (exact, see the module docstring), or None."""
    n = len(s)
    if not n:
        return np.empty(0, np.float64)
    lw = _widths(s, e)
    if lw is None:
        return None
    length, width = lw
    m, inside = _chars(buf, s, e, width)
    neg = m[:, 0] == 45
    d = m - np.uint8(48)                        # digits 0..9; everything else wraps above 9
    dig = (d <= 9) & inside
    dot = m == 46
    if not (dig | dot | ~inside)[:, 1:].all() or not (dig[:, 0] | dot[:, 0] | neg).all():
        return None
    ndig = dig.sum(axis=1)
    if ndig.min() < 1 or dot.sum(axis=1).max() > 1:
        return None
    long = ndig > _MAX_DIGITS
    mant = np.zeros(n, np.int64)
    for j in range(width):
        mant = np.where(dig[:, j], mant * 10 + d[:, j], mant)
    after = np.cumsum(dot, axis=1) > 0
    frac = np.where(long, 0, (dig & after).sum(axis=1))
    out = mant.astype(np.float64) / _POW10[frac]
    out = np.where(neg, -out, out)
    if long.any():                      # more digits than a double holds exactly: the full conversion
        out[long] = np.ascontiguousarray(m[long]).view(f"S{width}").ravel().astype(np.float64)
    return out


def token_is(buf: np.ndarray, s: np.ndarray, e: np.ndarray, word: bytes) -> np.ndarray:
    """Whether each token ``buf[s:e]`` equals ``word``."""
    ok = (e - s) == len(word)
    top = len(buf) - 1
    for j, ch in enumerate(word):
        ok &= buf[np.minimum(s + j, top)] == ch
    return ok


def word_at(buf: np.ndarray, s: np.ndarray, word: bytes) -> np.ndarray:
    """Whether the bytes at each of ``s`` are ``word`` (up to 8 bytes; include the separator after a
    token to also check its length): one 8-byte read per position instead of one per byte."""
    k = len(word)
    if not 0 < k <= 8:
        raise ValueError("word_at compares 1 to 8 bytes")
    if not len(s):
        return np.zeros(0, bool)
    s = s.astype(np.intp, copy=False)                 # (an int32 index is converted at each gather)
    ok = s <= len(buf) - 8
    if not ok.all():                                  # near the end: byte by byte
        out = np.zeros(len(s), bool)
        out[ok] = word_at(buf, s[ok], word)
        out[~ok] = token_is(buf, s[~ok], s[~ok] + k, word) & (s[~ok] + k <= len(buf))
        return out
    words = np.ndarray(shape=(len(buf) - 7,), dtype="<u8", buffer=buf, strides=(1,))
    mask = np.uint64((1 << (8 * k)) - 1)
    return (words[s] & mask) == np.uint64(int.from_bytes(word, "little"))


def words_at(buf: np.ndarray, s: np.ndarray) -> np.ndarray:
    """The 8 bytes at each of ``s`` (< len(buf)) as a little-endian uint64; bytes past the end read as 0."""
    top = len(buf) - 8
    if top < 0:
        buf, top = np.concatenate([buf, np.zeros(8, np.uint8)]), len(buf)
    view = np.ndarray(shape=(top + 1,), dtype="<u8", buffer=buf, strides=(1,))
    s = s.astype(np.intp, copy=False)
    if not len(s) or int(s.max()) <= top:
        return view[s]
    sc = np.minimum(s, top)
    return view[sc] >> ((s - sc).astype(np.uint64) * np.uint64(8))


def _bytes8(byte: int) -> np.uint64:
    return np.uint64(int.from_bytes(bytes([byte]) * 8, "little"))


_ZEROS8, _LOW8 = _bytes8(0x30), _bytes8(0x0F)


def digit_bytes(w: np.ndarray, keep: np.ndarray) -> np.ndarray | None:
    """The bytes ``keep`` (a byte mask per word) of the words ``w`` as digit values 0..9 (the other
    bytes 0), or None if one of those bytes is not a digit."""
    x = (w ^ _ZEROS8) & keep
    if len(x) and int(x.view(np.uint8).max()) > 9:   # a digit is 0..9 now; any other byte is above
        return None
    return x


def digits8(x: np.ndarray) -> np.ndarray:
    """Value of 8 digit bytes (0..9, the first, most significant, in the low byte) of each uint64 (SWAR)."""
    x = ((x & _LOW8) * np.uint64(2561)) >> np.uint64(8)
    x = ((x & np.uint64(0x00FF00FF00FF00FF)) * np.uint64(6553601)) >> np.uint64(16)
    return ((x & np.uint64(0x0000FFFF0000FFFF)) * np.uint64(42949672960001)) >> np.uint64(32)


def header_len(data: bytes) -> int:
    """Bytes of the leading ``#`` lines (as tables._leading_lines counts them)."""
    pos = 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        end = len(data) if end < 0 else end + 1
        if not data[pos:end].lstrip().startswith(b"#"):
            break
        pos = end
    return pos


def decimal_max(buf: np.ndarray, s: np.ndarray, e: np.ndarray) -> float | None:
    """The largest of the unsigned decimal tokens ``buf[s:e]`` (digits and at most one dot), exactly
    as float() reads it, or None if a token is anything else. Only the integer parts are converted
    for all tokens; the tokens with the largest integer part are then read in full."""
    n = len(s)
    if not n:
        return None
    lw = _widths(s, e)
    if lw is None:
        return None
    length, w = lw
    if int(s.max()) + w + 1 > len(buf):
        buf = np.concatenate([buf, np.zeros(w + 1, np.uint8)])
    m = np.lib.stride_tricks.sliding_window_view(buf, w + 1)[s]      # each token and one byte more
    isdot = m == 46
    good = (m - np.uint8(48) <= 9) | isdot
    good[:, w] = False
    if not (good.argmin(axis=1) >= length).all():     # the first byte neither digit nor dot is past the token
        return None
    rows = np.arange(n)
    p = isdot.argmax(axis=1)
    hasdot = isdot[rows, p] & (p < length)
    isdot[rows, p] = False
    p2 = isdot.argmax(axis=1)
    if (hasdot & isdot[rows, p2] & (p2 < length)).any():
        return None                                   # a second dot in a token
    if int((length - hasdot).min()) < 1:
        return None                                   # "." alone
    ilen = np.where(hasdot, p, length)
    top = int(ilen.max())
    if top > _MAX_DIGITS:
        return None
    ival = np.zeros(n, np.int64)
    for j in range(top):
        ival = np.where(j < ilen, ival * 10 + (m[:, j] - np.uint8(48)), ival)
    cand = np.flatnonzero(ival == ival.max())
    return max(float(bytes(buf[s[i]:e[i]])) for i in cand)


# --------------------------------------------------------------------------------------------
# One-pass layout: every blank and newline found in a single scan; fields come from their indices.


class Lines:
    """Separators of a block of complete lines: ``sep`` holds the position of every blank and newline
    in order, ``nl`` the index in ``sep`` of each line's newline; ``trail``: every line ends with one
    blank before its newline (then that blank ends the last field)."""

    __slots__ = ("buf", "sep", "nl", "trail")

    def __init__(self, buf: np.ndarray, sep: np.ndarray, nl: np.ndarray, trail: bool):
        self.buf, self.sep, self.nl, self.trail = buf, sep, nl, trail

    def __len__(self) -> int:
        return len(self.nl)

    def nseps(self) -> np.ndarray:
        """Separators of each line (its fields, plus one with a trailing blank)."""
        return np.diff(self.nl, prepend=-1)

    def grid(self, k: int) -> np.ndarray | None:
        """(lines, k [+1 with ``trail``]) separator positions when every line has exactly ``k`` fields, else None."""
        n, w = len(self.nl), k + self.trail
        if not n or len(self.sep) != n * w:
            return None
        g = self.sep.reshape(n, w)
        if not (np.take(self.buf, g[:, -1]) == 10).all():   # n newlines, each the w-th separator: w per line
            return None
        return g

    @staticmethod
    def line_starts(g: np.ndarray) -> np.ndarray:
        s = np.empty(len(g), dtype=g.dtype)
        s[0] = 0
        s[1:] = g[:-1, -1] + 1
        return s

    def field(self, g: np.ndarray, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(start, end) of field ``i`` of every line of a :meth:`grid`."""
        return (self.line_starts(g) if i == 0 else g[:, i - 1] + 1), g[:, i]


def scan(body: bytes, *, trailing_ok: bool, na_words: bool = True, start: int = 0) -> Lines | None:
    """The :class:`Lines` of ``body[start:]`` (complete lines of single-blank separated tokens), or
    None when the block is not that simple (same rules as :func:`layout`: tabs, CR, other control
    bytes, blank lines, double/leading blanks, trailing blanks unless ``trailing_ok``,
    ``nan``/``NaN``/``n/a`` tokens when ``na_words``). One scan of the bytes, not one per separator
    kind; positions are int32 (half the memory) when the block allows."""
    if len(body) <= start or body[-1] != 10:
        return None
    buf = np.frombuffer(body, dtype=np.uint8, offset=start)
    sep = np.flatnonzero(buf <= 32)
    sc = buf[sep]                                                # (an intp index: no conversion first)
    if len(buf) < 2 ** 31 - 8:
        sep = sep.astype(np.int32)
    isnl = sc == 10
    nl = np.flatnonzero(isnl)
    if len(nl) + int(np.count_nonzero(sc == 32)) != len(sep) or buf[0] <= 32:
        return None                                              # tab, CR, control byte, leading blank
    adj = np.subtract(sep[1:], sep[:-1]) == 1                    # an empty token between two separators
    trail = False
    if adj.any():
        pairs = int(np.count_nonzero(adj))
        if not trailing_ok or pairs != len(nl) or not (isnl[1:][adj].all() and (sc[:-1][adj] == 32).all()):
            rest = body[start:]
            if trailing_ok and b" \n" in rest and b"\n\n" not in rest and b"  " not in rest:
                return scan(rest.replace(b" \n", b"\n"), trailing_ok=False, na_words=na_words)
            return None                                          # blank line, double blank, ...
        trail = True                                             # every line ends "<blank><newline>"
    del adj, sc, isnl
    if na_words and _na_tokens(buf, sep):
        return None
    return Lines(buf, sep, nl.astype(sep.dtype), trail)


def _na_tokens(buf: np.ndarray, sep: np.ndarray) -> bool:
    """Whether a token (at the block start or after a separator) is ``nan``, ``NaN`` or ``n/a``."""
    starts = sep[:-1] + 1
    c0 = buf[starts]
    cand = starts[(c0 == 110) | (c0 == 78)]
    if buf[0] in (110, 78):
        cand = np.append(cand, 0)
    return bool(len(cand)) and bool(_na_at(buf, cand).any())


_LEFT = {}


def numbers(buf: np.ndarray, s: np.ndarray, e: np.ndarray) -> np.ndarray | None:
    """Float64 values of the plain decimal tokens ``buf[s:e]`` (``-12.5``, ``7``, ``.5``, ``5.``), or
    None if one is anything else: the same values and the same None cases as :func:`decimals`, in
    fewer passes (tokens right-aligned, so padding is leading zeros and needs no mask afterwards).
    ``mantissa / 10**k`` is exact when the mantissa is below 2**53 (not only for 15 digits); other
    tokens (Java's 17-digit doubles) go through numpy's correctly rounded conversion."""
    r = _parse(buf, s, e)
    if r is None:
        return None
    out, long, m, neg, w = r
    if long.any():
        out[long] = _slow(m, long, neg, w)
    return out


_EXTENDED = np.finfo(np.longdouble).nmant >= 63        # x87 80-bit long double (Linux, x86-64)
_X87 = (np.finfo(np.longdouble).nmant == 63 and np.dtype(np.longdouble).itemsize == 16
        and sys.byteorder == "little")                  # the 80-bit format in 16 bytes, significand first
_LPOW10 = np.array([10 ** k for k in range(23)], dtype=np.longdouble) if _EXTENDED else None


def _extended(mant: np.ndarray, frac: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """mant / 10**frac correctly rounded to float64 for mant < 2**63, frac <= 22, through one
    division in 64-bit-mantissa long double (both operands exact, the quotient correctly rounded)
    and one rounding to double: exact unless the quotient is exactly halfway between two doubles;
    those rows are returned as not done (True in the second array)."""
    q = mant.astype(np.longdouble) / _LPOW10[frac]
    out = q.astype(np.float64)
    if not _X87:
        other = np.nextafter(out, np.where(q > out.astype(np.longdouble), np.inf, -np.inf))
        mid = (out.astype(np.longdouble) + other.astype(np.longdouble)) / 2
        return out, (q == mid) | ~np.isfinite(out)
    # q is halfway between two doubles when the 11 significand bits below a double's 53 are 100 0000 0000
    low = q.view(np.uint64)[::2] & np.uint64(0x7FF)      # x87: the 64-bit significand comes first
    return out, (low == np.uint64(0x400)) | ~np.isfinite(out)


def extremes(buf: np.ndarray, s: np.ndarray, e: np.ndarray) -> tuple[float, float] | None:
    """(min, max) of the plain decimal tokens ``buf[s:e]`` exactly as :func:`numbers` reads them, or
    None; tokens too long for the fast conversion are read in full only near the extremes."""
    r = _parse(buf, s, e, exact=False)
    if r is None or not len(s):
        return None
    out, long, m, neg, w = r
    if long.any():
        lo, hi = float(np.nanmin(out)) if not np.isnan(out).all() else 0.0, float(np.nanmax(out)) if not np.isnan(out).all() else 0.0
        tol_lo, tol_hi = abs(lo) * 1e-14 + 1e-300, abs(hi) * 1e-14 + 1e-300   # the estimate's error is < 1e-15
        near = long & ((out <= lo + tol_lo) | (out >= hi - tol_hi) | ~np.isfinite(out))
        if near.any():
            out = out.copy()
            out[near] = _slow(m, near, neg, w)
    return float(out.min()), float(out.max())


def _slow(m: np.ndarray, rows: np.ndarray, neg: np.ndarray, w: int) -> np.ndarray:
    """numpy's correctly rounded conversion of the tokens ``rows`` of a (width, tokens) byte array."""
    v = np.ascontiguousarray(m[:, rows].T).view(f"S{w}").ravel().astype(np.float64)
    return np.where(neg[rows], -v, v)


def plain_numbers(buf: np.ndarray, s: np.ndarray, e: np.ndarray) -> bool:
    """Whether every token ``buf[s:e]`` is a plain decimal (what :func:`numbers` reads), without
    converting them: for columns the parser only checks."""
    return _parse(buf, s, e, values=False) is not None


def _parse(buf: np.ndarray, s: np.ndarray, e: np.ndarray, values: bool = True, exact: bool = True):
    """(values, rows not exact yet, right-aligned bytes, negative, width) of plain decimal tokens, or None.
    Values of the not-exact rows are estimates within 1e-15 (or anything if over 17 digits).
    ``values=False``: only the checks (a true value instead of the tuple). ``exact=False``: the
    16-17 digit rows are left as estimates (for :func:`extremes`, which reads only those near the ends).

    The tokens are gathered one byte column at a time into a (width, tokens) array, right-aligned:
    column j holds byte ``e - width + j`` of every token; the bytes before a token read as '0'."""
    n = len(s)
    if not n:
        return np.empty(0, np.float64), np.zeros(0, bool), None, np.zeros(0, bool), 0
    lw = _widths(s, e)
    if lw is None:
        return None
    length, w = lw
    base = (e - w).astype(np.intp)                   # one index conversion, not one per column
    m = np.empty((w, n), np.uint8)
    for j in range(w):
        np.take(buf, base + j, out=m[j], mode="clip")   # below 0 only before a token: replaced next
    neg = np.take(buf, s) == 45                      # (take: an int32 index costs less than with [])
    lead = (w - length + neg).astype(np.uint8)       # the sign reads as a leading zero too
    keep = np.arange(w, dtype=np.uint8)[:, None] >= lead
    m *= keep                                        # (arithmetic: a masked store is ~8x slower)
    m += (~keep).view(np.uint8) * np.uint8(48)
    del keep
    d = m - np.uint8(48)
    isdot = m == 46
    if not ((d <= 9) | isdot).all():
        return None
    dots = int(np.count_nonzero(isdot))
    c = w - 1 - int(np.argmax(isdot[:, 0])) if dots else 0     # the first token's decimals
    if dots == 0 or (dots == n and isdot[w - 1 - c].all()):
        # no dots, or every token has its dot in the same column (same decimals, as "%.4f" writes)
        ndig = length - neg - (dots > 0)
        if int(ndig.min()) < 1:
            return None
        if not values:
            return True
        skip = w - 1 - c if dots else -1
        mant = np.zeros(n, np.uint32 if w - (dots > 0) <= 9 else np.int64)   # 9 digits < 2**32: half the bytes
        for j in range(max(0, w - 19), w):
            if j != skip:
                mant *= 10
                mant += d[j]
        if w - (dots > 0) <= 15:                     # at most 15 digits: every row exact, one divisor
            out = mant.astype(np.float64)
            if c:
                out /= _POW10X[c]
            if neg.any():
                out[neg] = -out[neg]
            return out, np.zeros(n, bool), m, neg, w
        frac = np.full(n, c, np.int64)
    else:
        dot8 = isdot.view(np.uint8)
        per = dot8.sum(axis=0, dtype=np.uint8)       # dots per token (row sums: no strided argmax)
        if int(per.max()) > 1:
            return None                              # two dots in a token
        hasdot = per.view(bool)
        ndig = length - hasdot - neg
        if int(ndig.min()) < 1:
            return None
        if not values:
            return True
        # decimals: the columns right of the dot (0 without one)
        frac = (dot8 * np.arange(w - 1, -1, -1, dtype=np.uint8)[:, None]).sum(axis=0, dtype=np.uint8).astype(np.int64)
        d *= ~isdot                                  # the dot adds no digit and does not scale: x1 + 0
        mul = np.uint8(10) - dot8 * np.uint8(9)
        acc = np.zeros(n, np.uint64)                 # up to 19 digits (< 2**64): no wrap before the checks
        for j in range(max(0, w - 19), w):           # columns left of the last 19: only for > 17 digits
            acc *= mul[j]
            acc += d[j]
        mant = acc.view(np.int64)                    # > 2**63 only with more than 17 digits (NaN below)
    long = (ndig > 17) | (mant > 2 ** 53) | (frac > 22)
    out = mant.astype(np.float64) / _POW10X[np.minimum(frac, 22)]
    if exact and _EXTENDED and long.any():           # 16-17 digits (Java's doubles): long double, see _extended
        ext = np.flatnonzero(long & (ndig <= 17) & (frac <= 22))
        if len(ext):
            v, tie = _extended(mant[ext], frac[ext])
            out[ext] = v
            long[ext[~tie]] = False
    if neg.any():
        out[neg] = -out[neg]
    out[ndig > 17] = np.nan                          # no estimate: the leading columns were left out
    return out, long, m, neg, w


_POW10X = 10.0 ** np.arange(23)      # exact doubles
_IPOW10 = np.array([10 ** k for k in range(19)], dtype=np.int64)


# --------------------------------------------------------------------------------------------
# The heap while a file streams: every block allocates and frees the same few large arrays. By
# default glibc maps each one fresh (page faults) and gives it back at once (munmap): about as much
# time as the arithmetic. In a worker process, keep them in the heap while a file streams, and
# give the memory back when it ends.

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_HEAP_KEEP = 256 * 1024 * 1024        # larger arrays are still mapped (and unmapped) one by one
_GLIBC_DEFAULT = 128 * 1024


def _libc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


_LIBC = _libc()


@contextmanager
def reuse_heap() -> Iterator[None]:
    """Freed block arrays stay in the heap for the next block (glibc, in worker processes only:
    the caller's kernel keeps its allocator as it is); on exit the heap is trimmed and the glibc
    default thresholds set again, so what a worker keeps afterwards does not grow."""
    if _LIBC is None or multiprocessing.parent_process() is None:
        yield
        return
    try:
        _LIBC.mallopt(_M_MMAP_THRESHOLD, _HEAP_KEEP)
        _LIBC.mallopt(_M_TRIM_THRESHOLD, 2 * _HEAP_KEEP)
    except (OSError, AttributeError, ValueError) as exc:       # not glibc after all: nothing to tune
        log.debug("mallopt unavailable: %s", exc)
        yield
        return
    try:
        yield
    finally:
        _LIBC.mallopt(_M_TRIM_THRESHOLD, _GLIBC_DEFAULT)
        _LIBC.mallopt(_M_MMAP_THRESHOLD, _GLIBC_DEFAULT)
        _LIBC.malloc_trim(0)
