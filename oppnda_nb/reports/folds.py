"""Exact running aggregates for streamed summaries: a numeric column's mean/median/p90/min/max
kept as value counts (or compact arrays when values rarely repeat), and a set of distinct keys."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

# Value counts switch to arrays when the distinct values exceed max(this, rows/4).
MIN_DISTINCT = 65536


def _compact(a: np.ndarray) -> np.ndarray:
    """``a`` (float64) in the smallest dtype that gives back exactly the same values."""
    if not len(a):
        return a
    for dt in (np.int8, np.int16, np.int32, np.float32):
        b = a.astype(dt)
        if np.array_equal(b.astype(np.float64), a):
            return b
    return a


class Column:
    """Exact statistics of a numeric column fed in chunks (NaN ignored, like pandas)."""

    def __init__(self) -> None:
        self.vals = np.empty(0, np.float64)     # counts mode: sorted distinct values
        self.cnts = np.empty(0, np.int64)
        self.parts: list[np.ndarray] | None = None  # array mode: compact chunks
        self.n = 0
        self.total = 0.0

    def add(self, a) -> None:
        a = np.asarray(a, dtype=np.float64)
        a = a[~np.isnan(a)]
        if not len(a):
            return
        self.n += len(a)
        self.total += float(a.sum())
        if self.parts is not None:
            self.parts.append(_compact(a))
            return
        u, c = np.unique(a, return_counts=True)
        if len(self.vals):
            allv = np.concatenate([self.vals, u])
            allc = np.concatenate([self.cnts, c])
            u, inv = np.unique(allv, return_inverse=True)
            c = np.bincount(inv, weights=allc).astype(np.int64)
        self.vals, self.cnts = u, c
        if len(u) > max(MIN_DISTINCT, self.n // 4):
            self.parts = [_compact(np.repeat(u, c))]
            self.vals = np.empty(0, np.float64)
            self.cnts = np.empty(0, np.int64)

    def _sorted(self) -> tuple[np.ndarray, np.ndarray]:
        if self.parts is None:
            return self.vals, self.cnts
        v = np.sort(np.concatenate([p.astype(np.float64) for p in self.parts]))
        return v, np.ones(len(v), np.int64)

    def _at(self, v: np.ndarray, cum: np.ndarray, i: int) -> float:
        return float(v[np.searchsorted(cum, i, side="right")])

    def stats(self, prefix: str, *, p90: bool = False, extremes: bool = False) -> dict[str, float]:
        out = {f"{prefix}_mean": math.nan, f"{prefix}_median": math.nan}
        if p90:
            out[f"{prefix}_p90"] = math.nan
        if not self.n:
            return out
        v, c = self._sorted()
        cum = np.cumsum(c)
        n = self.n
        out[f"{prefix}_mean"] = float((v * c).sum() / n) if self.parts is None else float(v.mean())
        a, b = self._at(v, cum, (n - 1) // 2), self._at(v, cum, n // 2)
        out[f"{prefix}_median"] = float(np.mean([a, b]))
        if p90:
            h = (n - 1) * 0.9
            lo = math.floor(h)
            xa, xb = self._at(v, cum, lo), self._at(v, cum, min(lo + 1, n - 1))
            out[f"{prefix}_p90"] = float(xa + (h - lo) * (xb - xa))
        return out

    def min(self) -> float:
        v, _ = self._sorted()
        return float(v[0]) if len(v) else math.nan

    def max(self) -> float:
        v, _ = self._sorted()
        return float(v[-1]) if len(v) else math.nan

    def mean(self) -> float:
        return self.stats("x")["x_mean"]


class Distinct:
    """The set of distinct keys (numbers or strings) seen in chunks."""

    def __init__(self) -> None:
        self.keys = pd.Index([])

    def add(self, values) -> None:
        u = pd.Index(pd.unique(np.asarray(values)))
        self.keys = u if not len(self.keys) else self.keys.union(u) if len(u) else self.keys

    def __len__(self) -> int:
        return len(self.keys)
