"""Byte-level token reading for the snapshot reports' streamed folds (stream_snapshots.py): a block
of single-space separated lines is cut into tokens with numpy, short tokens become exact uint64 keys
(the token's bytes, so equal keys are equal tokens) and get dense codes from a file-wide table
(Keys), small unsigned integers and short decimals are read directly (SWAR, 8 bytes at once).
Every function returns None when the block is not that simple: the fold then uses the exact parser.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

_PAD = b"\x00" * 8
# MASK[k]: the low k bytes of a little-endian uint64 (a token of k <= 8 bytes read as 8 bytes)
_MASK = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [(1 << 64) - 1], dtype=np.uint64)
_POW10F = 10.0 ** np.arange(16)
_POW10I = 10 ** np.arange(16, dtype=np.int64)


class Tokens:
    """The tokens of a block: ``buf`` (uint8, the block plus 8 zero bytes), token ``starts``/``ends``,
    ``first`` (token opens its line); ``lines`` in all."""

    __slots__ = ("data", "buf", "starts", "ends", "first", "lines", "_line")

    def __init__(self, data, buf, starts, ends, first, lines):
        self.data, self.buf, self.starts, self.ends = data, buf, starts, ends
        self.first, self.lines, self._line = first, lines, None

    @property
    def line(self) -> np.ndarray:
        """0-based line of each token."""
        if self._line is None:
            self._line = np.cumsum(self.first) - 1
        return self._line

    def words(self, idx: np.ndarray | None = None) -> np.ndarray | None:
        """uint64 key of each token (of ``idx``): its bytes, little-endian; None if one is longer than 8."""
        s = self.starts if idx is None else self.starts[idx]
        n = (self.ends if idx is None else self.ends[idx]) - s
        if len(n) and int(n.max()) > 8:
            return None
        view = np.ndarray(shape=(len(self.buf) - 7,), dtype="<u8", buffer=self.buf, strides=(1,))
        return view[s] & _MASK[n]

    def text(self, i: int) -> bytes:
        return self.data[self.starts[i]:self.ends[i]]


def tokens(data: bytes) -> Tokens | None:
    """The tokens of ``data`` (complete lines, tokens separated by single blanks; one trailing blank
    per line allowed), or None (tabs, CR, blank lines, double or leading blanks, ...). Name tokens
    must still be checked with :func:`na_words` (the parser reads ``nan`` as a missing value)."""
    if not data or not data.endswith(b"\n"):
        return None
    buf = np.frombuffer(data + _PAD, dtype=np.uint8)
    body = buf[:len(data)]
    sep = np.flatnonzero(body <= 32)                      # blanks, newlines and any other control character
    c = body[sep]
    is_nl = c == 10
    nl_count = int(np.count_nonzero(is_nl))
    if nl_count + int(np.count_nonzero(c == 32)) != len(c):
        return None                                       # a tab, CR, form feed, NUL, ...
    starts = np.empty_like(sep)
    starts[0] = 0
    np.add(sep[:-1], 1, out=starts[1:])
    first = np.empty(len(sep), dtype=bool)
    first[0] = True
    first[1:] = is_nl[:-1]
    empty = starts == sep
    if empty.any():                                       # only a trailing blank (an empty last token) is fine
        if (empty & (first | ~is_nl)).any():
            return None
        keep = ~empty
        starts, sep, first = starts[keep], sep[keep], first[keep]
    return Tokens(data, buf, starts, sep, first, nl_count)


def words_at(t, s: np.ndarray, e: np.ndarray) -> np.ndarray | None:
    """uint64 keys of the tokens ``t.buf[s:e]`` (Tokens.words), None if one is longer than 8 bytes."""
    n = e - s
    if len(n) and int(n.max()) > 8:
        return None
    view = np.ndarray(shape=(len(t.buf) - 7,), dtype="<u8", buffer=t.buf, strides=(1,))
    return view[s] & _MASK[n]


_NA = np.array([int.from_bytes(w, "little") for w in (b"nan", b"NaN", b"n/a")], dtype=np.uint64)


def na_words(words: np.ndarray, first: np.ndarray | None = None) -> bool:
    """Whether one of the token keys is ``nan``, ``NaN`` or ``n/a`` (missing values to the parser);
    ``first``: their first bytes (``words & 0xFF``) if already at hand."""
    c0 = words & np.uint64(0xFF) if first is None else first
    maybe = (c0 == 110) | (c0 == 78)
    return bool(maybe.any()) and bool(np.isin(words[maybe], _NA).any())


_MULT = (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93)   # Keys' hash multipliers


def word_bytes(w: np.ndarray) -> list[bytes]:
    """The tokens (bytes) of uint64 keys."""
    raw = np.ascontiguousarray(w, dtype="<u8").view("S8")     # 'S' drops the zero padding
    return raw.tolist()


_B = lambda byte: np.uint64(int.from_bytes(bytes([byte]) * 8, "little"))    # noqa: E731
_ZEROS, _HIGH, _SIX, _LOW = _B(0x30), _B(0xF0), _B(0x06), _B(0x0F)


def small_ints(t: Tokens, idx: np.ndarray) -> np.ndarray | None:
    """int64 values of tokens ``idx`` made of 1..8 decimal digits, or None if one is anything else
    (all 8 digits at once in a uint64: SWAR)."""
    return ints_at(t, t.starts[idx], t.ends[idx])


def ints_at(t, s: np.ndarray, e: np.ndarray) -> np.ndarray | None:
    """:func:`small_ints` of the tokens ``t.buf[s:e]`` (``t``: anything with the padded ``buf``)."""
    n = e - s
    if not len(n):
        return np.empty(0, np.int64)
    top = int(n.max())
    if top > 8:
        return None
    if top <= 2:                                          # one or two digits (copy counts): byte by byte
        d1 = t.buf[e - 1] - np.uint8(48)                  # non-digits wrap to > 9
        if int(d1.max()) > 9:
            return None
        if top == 1:
            return d1.astype(np.int64)
        d0 = t.buf[e - 2] - np.uint8(48)
        d0 *= n > 1                                       # (the blank or newline before a one-digit token: 0)
        if int(d0.max()) > 9:
            return None
        d0 *= np.uint8(10)                                # at most 99: in uint8, then one conversion
        d0 += d1
        return d0.astype(np.int64)
    view = np.ndarray(shape=(len(t.buf) - 7,), dtype="<u8", buffer=t.buf, strides=(1,))
    if int(e.min()) >= 8:                                 # the 8 bytes ending with each token: right-aligned already
        keep = _TOP[n]
        v = (view[e - 8] ^ _ZEROS) & keep                 # digit bytes -> 0..9, the rest stays > 9
    else:
        mask = _MASK[n]
        v = (view[s] & mask) ^ (_ZEROS & mask)
        v = v << ((np.uint64(8) - n.astype(np.uint64)) * np.uint64(8))   # leading zero digits in the low bytes
    if ((v & _HIGH).any() or ((v + _SIX) & _HIGH).any()):
        return None
    v = ((v & _LOW) * np.uint64(2561)) >> np.uint64(8)
    v = ((v & np.uint64(0x00FF00FF00FF00FF)) * np.uint64(6553601)) >> np.uint64(16)
    v = ((v & np.uint64(0x0000FFFF0000FFFF)) * np.uint64(42949672960001)) >> np.uint64(32)
    return v.astype(np.int64)


_TOP = np.array([~((1 << (8 * (8 - k))) - 1) & ((1 << 64) - 1) for k in range(9)], dtype=np.uint64)   # top k bytes
# _MID[f][k]: the k bytes below the top f (a decimal's k integer digits when its f decimals take the top bytes)
_MID = np.array([[int(_TOP[min(f + k, 8)]) & ~int(_TOP[f]) for k in range(9)] for f in range(9)], dtype=np.uint64)
_DOTS, _SEVEN = _B(0x1E), _B(0x7F)
_P8 = np.uint64(10 ** 8)


def _digits8(v: np.ndarray) -> np.ndarray:
    """Value of 8 digit bytes (0..9, first character in the low byte) of each uint64."""
    v = ((v & _LOW) * np.uint64(2561)) >> np.uint64(8)
    v = ((v & np.uint64(0x00FF00FF00FF00FF)) * np.uint64(6553601)) >> np.uint64(16)
    return ((v & np.uint64(0x0000FFFF0000FFFF)) * np.uint64(42949672960001)) >> np.uint64(32)


def _digit_word(w: np.ndarray, keep: np.ndarray) -> np.ndarray | None:
    """The value of the digits in the bytes ``keep`` of ``w`` (right-aligned), or None if one is no digit."""
    x = (w ^ _ZEROS) & keep
    if (x & _HIGH).any() or ((x + _SIX) & _HIGH).any():
        return None
    return _digits8(x)


def _fixed(t: Tokens, s: np.ndarray, e: np.ndarray, n: np.ndarray, view: np.ndarray):
    """(f, signs or None if none has a sign, unsigned mantissas) of tokens that all have the same number ``f`` of digits after
    their dot and at most 8 before it (``1607.6188`` -> 4, False, 16076188), or None: the digits are
    read as one uint64 (when they fit) or two (integer and fraction)."""
    f = int(n[0]) - 1 - int(np.argmax(t.buf[s[0]:e[0]] == 46)) if 46 in t.buf[s[0]:e[0]] else -1
    if f < 0 or f > 7 or (t.buf[e - f - 1] != 46).any():
        return None
    k = n - (f + 1)                                       # characters before the dot
    kmin, kmax = int(k.min()), int(k.max())
    if kmin >= (1 if f == 0 else 0) and kmax + f <= 8:    # no sign first (signs None): a '-' fails the digit check
        if f:                                             # the 8 bytes before each token's end: its fraction, dot and
            w = view[e - 8] ^ _ZEROS                      # up to 7 - f integer digits (one gather, see _MID) ...
            x = (w & _TOP[f]) | ((w << np.uint64(8)) & _MID[f][k])
            if kmax == 8 - f:                             # ... and the first of 8 - f integer digits by itself
                top = t.buf[e - 9] ^ np.uint8(48)
                top *= (k == kmax)
                x |= top
        else:
            x = ((view[e - f - 9] ^ _ZEROS) & _TOP[k]) >> np.uint64(8 * f)
        if not ((x & _HIGH).any() or ((x + _SIX) & _HIGH).any()):
            return f, None, _digits8(x)
    neg = t.buf[s] == 45
    k -= neg                                              # digits before the dot
    if int(k.max()) > 8 or int(k.min()) < (1 if f == 0 else 0):
        return None
    if int(k.max()) + f <= 8:                             # all digits fit one word: '1607.6188' -> 16076188
        x = ((view[e - f - 9] ^ _ZEROS) & _TOP[k]) >> np.uint64(8 * f)
        if f:
            x |= (view[e - 8] ^ _ZEROS) & _TOP[f]
        if (x & _HIGH).any() or ((x + _SIX) & _HIGH).any():
            return None
        return f, neg, _digits8(x)
    frac = _digit_word(view[e - 8], _TOP[f]) if f else 0
    whole = _digit_word(view[e - f - 9], _TOP[k])
    if frac is None or whole is None:
        return None
    return f, neg, whole * np.uint64(10 ** f) + frac


def _dec_fixed(t: Tokens, s: np.ndarray, e: np.ndarray, n: np.ndarray, view: np.ndarray) -> np.ndarray | None:
    """:func:`decimals` when every token has the same number ``f`` of digits after its dot and at
    most 8 before it (``1607.6188``), see :func:`_fixed`."""
    r = _fixed(t, s, e, n, view)
    if r is None:
        return None
    f, neg, m = r
    v = m.astype(np.float64) / _POW10F[f]
    return v if neg is None else np.where(neg, -v, v)


def mantissas(t: Tokens, s: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, int] | None:
    """(int64 m, f) with ``m / 10**f`` the value of each decimal token ``buf[s:e]`` (the same floats
    as :func:`decimals`) when all have ``f`` digits after the dot and at most 8 before it; else None
    (also for a ``-0``, whose sign the integer would lose)."""
    n = e - s
    if not len(n) or int(n.max()) > 16 or int(n.min()) < 1 or int(e.min()) < 16:
        return None
    view = np.ndarray(shape=(len(t.buf) - 7,), dtype="<u8", buffer=t.buf, strides=(1,))
    r = _fixed(t, s, e, n, view)
    if r is None:
        return None
    f, neg, m = r
    m = m.astype(np.int64)
    if neg is not None and neg.any():
        if (neg & (m == 0)).any():
            return None
        m = np.where(neg, -m, m)
    return m, f


def _dec_swar(t: Tokens, s: np.ndarray, e: np.ndarray, n: np.ndarray) -> np.ndarray | None:
    """:func:`decimals` for tokens of at most 16 characters ending at byte 16 or later: each token as
    two right-aligned uint64 words, validated and converted 8 characters at a time."""
    view = np.ndarray(shape=(len(t.buf) - 7,), dtype="<u8", buffer=t.buf, strides=(1,))
    fixed = _dec_fixed(t, s, e, n, view)
    if fixed is not None:
        return fixed
    neg = t.buf[s] == 45
    k = n - neg                                           # characters after the sign
    lo_keep = _TOP[np.minimum(k, 8)]
    hi_keep = _TOP[np.maximum(k - 8, 0)]
    out = []
    marks = []
    for w, keep in ((view[e - 8], lo_keep), (view[e - 16], hi_keep)):
        x = (w ^ _ZEROS) & keep                           # digits -> 0..9, '.' -> 0x1E, outside -> 0
        y = x ^ _DOTS
        z = ~(((y & _SEVEN) + _SEVEN) | y | _SEVEN)      # 0x80 in each '.' byte
        x &= ~((z >> np.uint64(7)) * np.uint64(0xFF))
        if (x & _HIGH).any() or ((x + _SIX) & _HIGH).any():
            return None
        out.append(x)
        marks.append(z)
    z_lo, z_hi = marks
    ndot = np.bitwise_count(z_lo) + np.bitwise_count(z_hi)
    if int(ndot.max()) > 1 or int((k - ndot).min()) < 1 or int((k - ndot).max()) > 15:
        return None
    full = (_digits8(out[1]) * _P8 + _digits8(out[0])).astype(np.int64)
    # the dot's byte: trailing zero bits of its mark; characters after it = frac
    lo_pos = np.bitwise_count(z_lo - np.uint64(1)).astype(np.int64) >> 3      # 0..7 (or 8 when no mark)
    hi_pos = np.bitwise_count(z_hi - np.uint64(1)).astype(np.int64) >> 3
    frac = np.where(z_lo != 0, 7 - lo_pos, np.where(z_hi != 0, 15 - hi_pos, 0))
    r = full % _POW10I[frac]
    mant = np.where(ndot > 0, (full - r) // 10 + r, full)
    out_v = mant.astype(np.float64) / _POW10F[frac]
    return np.where(neg, -out_v, out_v)


def decimals(t: Tokens, idx_s: np.ndarray, idx_e: np.ndarray) -> np.ndarray | None:
    """Float64 values of the plain decimal tokens ``buf[s:e]`` of at most 15 digits (``-12.5``,
    ``7``, ``.5``): the same correctly rounded ``mantissa / 10**k`` as fastpath.decimals, or None."""
    s, e, buf = idx_s, idx_e, t.buf
    n = e - s
    if not len(n):
        return np.empty(0, np.float64)
    width = int(n.max())
    if width <= 16 and int(n.min()) >= 1 and int(e.min()) >= 16:
        return _dec_swar(t, s, e, n)
    if width > 16 or int(n.min()) < 1:
        return None
    if int(e.min()) >= width:                             # right-aligned: each token's last char in the last column
        m = np.lib.stride_tricks.sliding_window_view(buf, width)[e - width]
    else:                                                 # a token near the block start: zeros in front
        m = np.lib.stride_tricks.sliding_window_view(np.concatenate([np.zeros(width, np.uint8), buf]), width)[e]
    col = np.arange(width - 1, -1, -1)                    # characters after each column
    inside = col < n[:, None]
    neg = buf[s] == 45
    d = m - np.uint8(48)
    dig = (d <= 9) & inside
    dot = (m == 46) & inside
    lead = col == (n - 1)[:, None]                        # each token's first character
    if not (dig | dot | ~inside | (lead & neg[:, None])).all():
        return None
    nd = dig.sum(axis=1)
    if int(nd.min()) < 1 or int(nd.max()) > 15 or int(dot.sum(axis=1).max()) > 1:
        return None
    has_dot = dot.any(axis=1)
    frac = np.where(has_dot, width - 1 - dot.argmax(axis=1), 0)   # digits after the dot
    dv = np.where(dig, d, np.uint8(0))
    if width <= 15:                                       # every partial sum below 10**15 < 2**53: exact in float64
        full = (dv.astype(np.float64) @ (10.0 ** col)).astype(np.int64)
    else:
        full = dv.astype(np.int64) @ (10 ** col.astype(np.int64))
    r = full % (10 ** frac)
    mant = np.where(has_dot, (full - r) // 10 + r, full)  # drop the dot's (zero) column
    out = mant.astype(np.float64) / _POW10F[frac]
    return np.where(neg, -out, out)


def _factorize(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(codes, distinct keys in order of first appearance) of ``w``, as ``pd.factorize(w, sort=False)``:
    for the few new keys of a block a sort costs less than pandas' hash table (~0.3 ms each call)."""
    if len(w) > _FEW_NEW:
        return pd.factorize(w, sort=False)
    u, first, inv = np.unique(w, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty(len(u), np.intp)
    rank[order] = np.arange(len(u))
    return rank[inv.ravel()], u[order]


_FEW_NEW = 4096


class Keys:
    """Dense codes (0, 1, ... in order of first appearance) of the uint64 token keys of a whole file,
    kept across blocks: a key's code is found through a multiplicative hash table (``lut``, slot ->
    code of the first key in it); the few keys whose slot is taken (``extra``, sorted) through a
    binary search. Memory: the table (at most 4 MB) and the distinct keys (few thousand)."""

    MAX_KEYS = 1 << 20                        # beyond this many distinct keys: None (the caller's other way)

    def __init__(self, bits: int = 16, slots: int = 32) -> None:
        self.keys = np.empty(0, np.uint64)    # code -> key
        self._padded = np.zeros(1, np.uint64)  # the keys and a 0 (what code -1 reads)
        self.bits = bits
        self.slots = slots                    # table slots per key (fewer: a smaller table, more keys in ``extra``)
        self._build()

    def _build(self) -> None:
        k = len(self.keys)
        while self.bits < 20 and (1 << self.bits) < self.slots * k:    # about ``slots`` slots per key: few keys share one
            self.bits += 1
        self.shift = np.uint64(64 - self.bits)
        code = np.arange(k, dtype=np.int32)
        best = None
        for m in _MULT:                                # the multiplier with the fewest keys sharing a slot
            mult = np.uint64(m)
            slot = (self.keys * mult) >> self.shift
            lut = np.full(1 << self.bits, -1, dtype=np.int32)
            lut[slot[::-1]] = code[::-1]               # the first key of a slot wins (last write)
            shared = lut[slot] != code
            if best is None or shared.sum() < best[2].sum():
                best = (mult, lut, shared)
            if not shared.any():
                break
        self.mult, self.lut, shared = best
        order = np.argsort(self.keys[shared])          # keys in a taken slot: sorted, with their codes
        self.extra, self.extra_code = self.keys[shared][order], code[shared][order]

    def codes(self, w: np.ndarray) -> np.ndarray | None:
        """The code (int32) of each key of ``w`` (new keys get the next codes), or None if there are too
        many keys. A key is never 0 (a token's first byte is not NUL)."""
        c = self._lookup(w)
        miss = c < 0
        if miss.any():
            loc, new = _factorize(w[miss])             # the new keys in order of appearance
            if len(self.keys) + len(new) > self.MAX_KEYS:
                return None
            k0 = len(self.keys)
            self.keys = np.concatenate([self.keys, new])
            self._padded = np.append(self.keys, np.uint64(0))
            if (1 << self.bits) < self.slots * len(self.keys) and self.bits < 20:
                self._build()                          # a larger table (its size doubles: rare)
            else:
                self._insert(new, k0)
            c[miss] = loc + k0
        return c

    def _insert(self, new: np.ndarray, k0: int) -> None:
        """Put the new keys (codes from ``k0``) into free slots of the table, the others into ``extra``."""
        code = np.arange(k0, k0 + len(new), dtype=np.int32)
        slot = (new * self.mult) >> self.shift
        _, first = np.unique(slot, return_index=True)  # the first new key of each slot ...
        first = first[self.lut[slot[first]] < 0]       # ... if the slot is free
        self.lut[slot[first]] = code[first]
        rest = np.ones(len(new), dtype=bool)
        rest[first] = False
        if rest.any():
            extra = np.concatenate([self.extra, new[rest]])
            order = np.argsort(extra)
            self.extra, self.extra_code = extra[order], np.concatenate([self.extra_code, code[rest]])[order]

    def _lookup(self, w: np.ndarray) -> np.ndarray:
        """Codes (int32) of ``w``; -1 for keys not seen yet."""
        c = self.lut[(w * self.mult) >> self.shift]
        bad = self._padded[c] != w                  # c == -1 reads the 0 after the keys: no token's key is 0
        if bad.any():
            wb = w[bad]
            cb = np.full(len(wb), -1, np.int32)
            if len(self.extra):
                i = np.minimum(np.searchsorted(self.extra, wb), len(self.extra) - 1)
                hit = self.extra[i] == wb
                cb[hit] = self.extra_code[i[hit]]
            c[bad] = cb
        return c
