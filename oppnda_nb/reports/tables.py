"""Table parsing through pandas' C parser: the source record, validation and categorical helpers."""
from __future__ import annotations

import csv
import io
import re
import warnings

import numpy as np
import pandas as pd

from .base import _NA, _NA_STRICT, _Src


def _leading_lines(data: bytes, prefix: bytes, limit: int = 100) -> list[str]:
    """The leading lines that start with ``prefix`` (e.g. ``#`` headers), decoded and stripped."""
    out = []
    pos = 0
    while len(out) < limit:
        end = data.find(b"\n", pos)
        if end < 0:
            end = len(data)
        line = data[pos:end]
        if not line.lstrip().startswith(prefix):
            break
        out.append(line.decode("utf-8", "replace").strip())
        if end >= len(data):
            break
        pos = end + 1
    return out


def _header_names(line: str) -> list[str]:
    """Column names from a ``# a  b  c`` header: double-space separated (single if no double)."""
    body = line.lstrip("#").strip()
    return [n for n in re.split(r"\s{2,}" if "  " in body else r"\s+", body) if n]


def _is_numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


def _first_bad(src: _Src, frame: pd.DataFrame, col: str, skip: int) -> str:
    s = frame[col]
    conv = pd.to_numeric(s, errors="coerce")
    bad = conv.isna() & s.notna()
    idx = int(np.flatnonzero(bad.to_numpy())[0]) if bad.any() else 0
    where = f"data row {idx + 1} (around line {idx + 1 + skip})"
    if s.iloc[idx] == "":
        return f"{where} has too few fields (no value for column '{col}')"
    return f"column '{col}' is not numeric: {where} has {s.iloc[idx]!r}"


def _csv(src: _Src, names, *, skip: int = 0, sep: str = r"\s+", numeric=(), required=None,
         dtype=None, data: bytes | None = None, what: str | None = None) -> pd.DataFrame:
    """Parse whitespace/tab/space separated rows with the C parser; validate shape and numbers.

    ``skip`` leading lines are header lines. ``numeric`` columns must parse as numbers,
    ``required`` columns (default: all names) must be present on every row.
    """
    body = src.data if data is None else data
    what = what or src.report_type
    names = list(names)
    req = names if required is None else list(required)
    # A missing field reads as "" in required columns (so it is detected, even in numeric
    # columns where a literal NaN is a value) and as NaN in optional ones.
    na = {n: (_NA_STRICT if n in req else _NA) for n in names}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(
                io.BytesIO(body), sep=sep, header=None, names=names, skiprows=skip, engine="c",
                index_col=False, keep_default_na=False, na_values=na, quoting=csv.QUOTE_NONE,
                dtype=dtype, skip_blank_lines=True, comment=None,
            )
    except pd.errors.EmptyDataError:
        frame = pd.DataFrame({n: pd.Series([], dtype="float64" if n in numeric else "str") for n in names})
    except (pd.errors.ParserError, pd.errors.ParserWarning) as exc:
        msg = str(exc).replace("Error tokenizing data. C error: ", "").strip()
        if "Length of header or names" in msg:
            msg = "the first data row has more fields than expected"
        raise src.fail(f"not a well-formed {what}: {msg} (expected {len(names)} fields: {', '.join(names)})") from None
    except (ValueError, TypeError) as exc:
        raise src.fail(f"not a well-formed {what}: {exc}") from None
    too_few = f"has too few fields (expected {len(names)}: {', '.join(names)})"
    for col in req:
        s = frame[col]
        if _is_numeric(s):
            continue
        if isinstance(s.dtype, pd.CategoricalDtype):
            cats = s.array.categories
            miss = s.array.codes < 0
            if "" in cats:
                miss = miss | (s.array.codes == cats.get_loc(""))
        else:
            miss = (s.isna() | s.eq("")).to_numpy(dtype=bool)
        if miss.any():
            idx = int(np.flatnonzero(miss)[0])
            raise src.fail(f"not a well-formed {what}: data row {idx + 1} (around line {idx + 1 + skip}) {too_few}")
    for col in numeric:
        if not _is_numeric(frame[col]):
            if len(frame) == 0:
                frame[col] = frame[col].astype("float64")
                continue
            raise src.fail(f"not a well-formed {what}: {_first_bad(src, frame, col, skip)}")
    return frame


def _yes_no(src: _Src, s: pd.Series, col: str) -> pd.Series:
    ok = s.isin(["Y", "N"])
    if not ok.all():
        idx = int(np.flatnonzero(~ok.to_numpy())[0])
        raise src.fail(f"not a well-formed {src.report_type}: column '{col}' must be Y or N, "
                       f"data row {idx + 1} has {s.iloc[idx]!r}")
    return (s == "Y").astype(bool)


def _check_header(src: _Src, header: list[str], expected: list[str]) -> None:
    if not header:
        src.warnings.append(f"missing '#' header line (expected '# {'  '.join(expected)}')")
        return
    got = _header_names(header[-1])
    if got != expected:
        src.warnings.append(f"header names {got} differ from ONE's {expected}; columns use the documented names")


def _hash_header(src: _Src) -> list[str]:
    header = _leading_lines(src.data, b"#")
    src.meta["header"] = header
    return header


def _int_cols(frame: pd.DataFrame, cols) -> None:
    """Make integral float columns integers when they have no NaN (keeps NaN columns float), in the
    smallest integer type that holds every value (read_report's frames stay compact)."""
    for c in cols:
        s = frame[c]
        v = s.to_numpy()
        if s.dtype.kind == "f" and np.isfinite(v).all() and np.all(np.mod(v, 1) == 0):
            s = s.astype("int64")
        if s.dtype.kind == "i":
            frame[c] = _small_int(s.to_numpy())


def _small_int(v: np.ndarray) -> np.ndarray:
    """Integers ``v`` in the smallest signed type that holds them all exactly."""
    if not len(v):
        return v.astype(np.int64)
    lo, hi = int(v.min()), int(v.max())
    for dt in (np.int8, np.int16, np.int32):
        info = np.iinfo(dt)
        if info.min <= lo and hi <= info.max:
            return v.astype(dt)
    return v.astype(np.int64)



def _check_values(src: _Src, s: pd.Series, allowed: set, what: str) -> None:
    if isinstance(s.dtype, pd.CategoricalDtype):
        cats = s.array.categories
        bad_cat = np.array([c not in allowed for c in cats], dtype=bool)
        if not bad_cat.any():
            return
        codes = s.array.codes
        bad = (codes >= 0) & bad_cat[np.where(codes >= 0, codes, 0)]
    else:
        bad = ~s.isin(list(allowed)).to_numpy(dtype=bool)
    if bad.any():
        idx = int(np.flatnonzero(bad)[0])
        raise src.fail(f"not a well-formed {src.report_type}: {what} must be one of {sorted(allowed)}, "
                       f"line {idx + 1} has {s.iloc[idx]!r}")


def _codes_in(c: pd.Categorical, cats: pd.Index) -> np.ndarray:
    """Codes of ``c`` re-expressed against ``cats`` (a superset of its categories); -1 stays -1."""
    idx = cats.get_indexer(c.categories)
    codes = c.codes
    if not len(idx):
        return np.full(len(codes), -1, dtype=np.int32)
    return np.where(codes >= 0, idx.astype(np.int32)[codes], np.int32(-1))


def _compact(codes: np.ndarray, cats: pd.Index) -> pd.Categorical:
    """Categorical from codes, dropping unused categories in O(n) (no sort of the codes)."""
    valid = codes >= 0
    used = np.bincount(codes[valid], minlength=len(cats)) > 0
    remap = (np.cumsum(used) - 1).astype(np.int32)
    new = np.where(valid, remap[np.where(valid, codes, 0)] if len(cats) else -1, -1)
    return pd.Categorical.from_codes(new, categories=cats[used], validate=False)


def _move_codes(target: pd.Categorical, source: pd.Categorical,
                mask: np.ndarray) -> tuple[pd.Categorical, pd.Categorical]:
    """Move values of ``source`` into ``target`` where ``mask`` (vectorized, via category codes)."""
    cats = target.categories.union(source.categories)
    tc = _codes_in(target, cats)
    sc = _codes_in(source, cats)
    return _compact(np.where(mask, sc, tc), cats), _compact(np.where(mask, -1, sc), cats)


def _ffill_index(mask: np.ndarray) -> np.ndarray:
    """For each row, the index of the last row at or before it where ``mask`` is true (0 if none)."""
    dt = np.int32 if len(mask) < 2**31 - 1 else np.int64
    idx = np.where(mask, np.arange(len(mask), dtype=dt), dt(0))
    return np.maximum.accumulate(idx) if len(idx) else idx


def _blocks(src: _Src, col: pd.Categorical) -> tuple[np.ndarray, np.ndarray]:
    """``[t]`` snapshot markers in a categorical column: (row is a marker, t of each row's block)."""
    cats = pd.Index(col.categories.astype(str))
    codes = col.codes
    cat_block = np.asarray(cats.str.startswith("["), dtype=bool)
    cat_t = np.full(len(cats), np.nan)
    if cat_block.any():
        marks = cats[cat_block]
        t = pd.to_numeric(marks.str.slice(1, -1), errors="coerce").to_numpy(dtype="float64")
        bad = np.isnan(t) | ~np.asarray(marks.str.endswith("]"), dtype=bool)
        if bad.any():
            raise src.fail(f"not a well-formed {src.report_type}: bad snapshot marker {marks[bad][0]!r} "
                           "(expected '[<time>]')")
        cat_t[cat_block] = t
    is_block = (codes >= 0) & cat_block[np.where(codes >= 0, codes, 0)] if len(cats) else np.zeros(len(codes), bool)
    if len(codes) and not is_block[0]:
        first = cats[codes[0]] if codes[0] >= 0 else ""
        raise src.fail(f"not a well-formed {src.report_type}: expected a '[time]' line first, got {first!r}")
    t_rows = cat_t[np.where(codes >= 0, codes, 0)] if len(cats) else np.zeros(len(codes))
    return is_block, t_rows[_ffill_index(is_block)]

