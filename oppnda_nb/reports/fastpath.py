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

import numpy as np

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


def decimals(buf: np.ndarray, s: np.ndarray, e: np.ndarray) -> np.ndarray | None:
    """Float64 values of the plain decimal tokens ``buf[s:e]`` (exact, see the module docstring), or None."""
    n = len(s)
    if not n:
        return np.empty(0, np.float64)
    length = e - s
    if length.min() < 1:
        return None
    width = int(length.max())
    if width > _MAX_WIDTH:
        return None
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
    length = e - s
    if not len(s) or length.min() < 1 or length.max() > _MAX_WIDTH:
        return None
    width = int(length.max())
    m, inside = _chars(buf, s, e, width)
    d = m - np.uint8(48)
    dig = (d <= 9) & inside
    dot = m == 46
    if not (dig | dot | ~inside).all():
        return None
    ndot = dot.sum(axis=1)
    if ndot.max() > 1 or (length - ndot).min() < 1:
        return None
    ilen = np.where(ndot > 0, dot.argmax(axis=1), length)
    top = int(ilen.max())
    if top > _MAX_DIGITS:
        return None
    ival = np.zeros(len(s), np.int64)
    for j in range(top):
        ival = np.where(j < ilen, ival * 10 + d[:, j], ival)
    cand = np.flatnonzero(ival == ival.max())
    return max(float(bytes(buf[s[i]:e[i]])) for i in cand)
