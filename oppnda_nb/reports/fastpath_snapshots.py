"""Byte-level token reading for the snapshot reports' streamed folds (stream_snapshots.py): a block
of single-space separated lines is cut into tokens with numpy, short tokens become exact uint64 keys
(the token's bytes, so equal keys are equal tokens), small unsigned integers are read directly.
Every function returns None when the block is not that simple: the fold then uses the exact parser.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import fastpath as fp

_BAD = (b"\r", b"\t", b"\x0b", b"\x0c", b"\x00")
_PAD = b"\x00" * 8
# MASK[k]: the low k bytes of a little-endian uint64 (a token of k <= 8 bytes read as 8 bytes)
_MASK = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [(1 << 64) - 1], dtype=np.uint64)
_POW10 = 10 ** np.arange(8, dtype=np.int64)


class Tokens:
    """The tokens of a block: ``buf`` (uint8, the block plus 8 zero bytes), token ``starts``/``ends``,
    ``first`` (token opens its line) and ``line`` (0-based line of each token); ``lines`` in all."""

    __slots__ = ("data", "buf", "starts", "ends", "first", "line", "lines")

    def __init__(self, data, buf, starts, ends, first, line, lines):
        self.data, self.buf, self.starts, self.ends = data, buf, starts, ends
        self.first, self.line, self.lines = first, line, lines

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
    per line allowed), or None (tabs, CR, blank lines, double or leading blanks, ``nan`` words, ...)."""
    if not data or not data.endswith(b"\n"):
        return None
    for bad in _BAD:
        if bad in data:
            return None
    buf = np.frombuffer(data + _PAD, dtype=np.uint8)
    body = buf[:len(data)]
    sep = np.flatnonzero(body <= 32)
    nl_count = data.count(b"\n")
    if len(sep) != nl_count + data.count(b" "):
        return None                                       # another control character
    is_nl = body[sep] == 10
    starts = np.empty_like(sep)
    starts[0] = 0
    starts[1:] = sep[:-1] + 1
    first = np.empty(len(sep), dtype=bool)
    first[0] = True
    first[1:] = is_nl[:-1]
    empty = starts == sep
    if empty.any():                                       # only a trailing blank (an empty last token) is fine
        if (empty & (first | ~is_nl)).any():
            return None
        keep = ~empty
        starts, sep, first = starts[keep], sep[keep], first[keep]
    line = np.cumsum(first) - 1
    if _na_words(buf, starts, sep):                       # 'nan', 'NaN', 'n/a' read as missing values by the parser
        return None
    return Tokens(data, buf, starts, sep, first, line, nl_count)


def _na_words(buf: np.ndarray, s: np.ndarray, e: np.ndarray) -> bool:
    """Whether a token is ``nan``, ``NaN`` or ``n/a``."""
    c0 = buf[s]
    k = np.flatnonzero(((c0 == 110) | (c0 == 78)) & (e - s == 3))
    if not len(k):
        return False
    s, e = s[k], e[k]
    return bool(any(fp.token_is(buf, s, e, w).any() for w in (b"nan", b"NaN", b"n/a")))


def codes(words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(codes, uniques) of uint64 keys in order of first appearance (a hash table, no sort)."""
    c, u = pd.factorize(words, sort=False)
    return c.astype(np.int64, copy=False), np.asarray(u)


def word_bytes(w: np.ndarray) -> list[bytes]:
    """The tokens (bytes) of uint64 keys."""
    raw = np.ascontiguousarray(w, dtype="<u8").view("S8")     # 'S' drops the zero padding
    return raw.tolist()


def small_ints(t: Tokens, idx: np.ndarray) -> np.ndarray | None:
    """int64 values of tokens ``idx`` made of 1..8 decimal digits, or None if one is anything else."""
    s, e = t.starts[idx], t.ends[idx]
    n = e - s
    if not len(n):
        return np.empty(0, np.int64)
    if int(n.max()) > 8:
        return None
    w = 8
    m = np.lib.stride_tricks.sliding_window_view(t.buf, w)[e - w] if int(e.min()) >= w else None
    if m is None:                                         # a token near the block start: pad in front
        pad = np.concatenate([np.full(w, 48, np.uint8), t.buf])
        m = np.lib.stride_tricks.sliding_window_view(pad, w)[e]
    d = m - np.uint8(48)                                  # right-aligned: the last digit in column 7
    inside = np.arange(w - 1, -1, -1) < n[:, None]
    if not ((d <= 9) | ~inside).all():
        return None
    d = np.where(inside, d, 0).astype(np.int64)
    return d @ _POW10[::-1]
