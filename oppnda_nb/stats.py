"""Statistics for averaging across seeds: mean, sample std, n and a t-based 95% CI.

No scipy: Student-t quantiles come from the regularized incomplete beta function
(Lentz continued fraction, as in Numerical Recipes ``betacf``) inverted by a safeguarded
Newton iteration started from Hill's (1970) approximation; the normal quantile is
Wichura's AS241 (about 1e-16 relative accuracy). Closed forms are used for df 1 and 2.

NaN semantics follow OppNDA: NaNs are ignored, a metric NaN in every run stays NaN;
``n`` counts the non-NaN values; n=1 gives std and CI NaN. The mean is computed exactly as
``numpy.nanmean`` over the values in the given order (OppNDA's float summation), so
averaged files can be reproduced byte for byte.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Sequence

import numpy as np

__all__ = [
    "norm_ppf", "betainc", "t_cdf", "t_ppf", "t_critical", "MeanStats", "describe",
    "nanmean", "describe_rows",
]

_EPS = 1e-15
_TINY = 1e-300


def norm_ppf(p: float) -> float:
    """Quantile of the standard normal distribution (Wichura, AS241 PPND16)."""
    if not 0.0 <= p <= 1.0 or math.isnan(p):
        return math.nan
    if p == 0.0:
        return -math.inf
    if p == 1.0:
        return math.inf
    q = p - 0.5
    if abs(q) <= 0.425:
        r = 0.180625 - q * q
        num = (((((((2509.0809287301226727 * r + 33430.575583588128105) * r + 67265.770927008700853) * r
                   + 45921.953931549871457) * r + 13731.693765509461125) * r + 1971.5909503065514427) * r
                + 133.14166789178437745) * r + 3.387132872796366608)
        den = (((((((5226.495278852545925 * r + 28729.085735721942674) * r + 39307.89580009271061) * r
                   + 21213.794301586595867) * r + 5394.1960214247511077) * r + 687.1870074920579083) * r
                + 42.313330701600911252) * r + 1.0)
        return q * num / den
    r = p if q < 0 else 1.0 - p
    r = math.sqrt(-math.log(r))
    if r <= 5.0:
        r -= 1.6
        num = (((((((7.7454501427834140764e-4 * r + 0.0227238449892691845833) * r + 0.24178072517745061177) * r
                   + 1.27045825245236838258) * r + 3.64784832476320460504) * r + 5.7694972214606914055) * r
                + 4.6303378461565452959) * r + 1.42343711074968357734)
        den = (((((((1.05075007164441684324e-9 * r + 5.475938084995344946e-4) * r + 0.0151986665636164571966) * r
                   + 0.14810397642748007459) * r + 0.68976733498510000455) * r + 1.6763848301838038494) * r
                + 2.05319162663775882187) * r + 1.0)
    else:
        r -= 5.0
        num = (((((((2.01033439929228813265e-7 * r + 2.71155556874348757815e-5) * r + 0.0012426609473880784386) * r
                   + 0.026532189526576123093) * r + 0.29656057182850489123) * r + 1.7848265399172913358) * r
                + 5.4637849111641143699) * r + 6.6579046435011037772)
        den = (((((((2.04426310338993978564e-15 * r + 1.4215117583164458887e-7) * r + 1.8463183175100546818e-5) * r
                   + 7.868691311456132591e-4) * r + 0.0148753612908506148525) * r + 0.13692988092273580531) * r
                + 0.59983220655588793769) * r + 1.0)
    val = num / den
    return -val if q < 0 else val


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction for the incomplete beta function (modified Lentz)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    if abs(d) < _TINY:
        d = _TINY
    d = 1.0 / d
    h = d
    for m in range(1, 10000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = _TINY if abs(d) < _TINY else d
        c = 1.0 + aa / c
        c = _TINY if abs(c) < _TINY else c
        d = 1.0 / d
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = _TINY if abs(d) < _TINY else d
        c = 1.0 + aa / c
        c = _TINY if abs(c) < _TINY else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta function I_x(a, b) for a, b > 0 and 0 <= x <= 1."""
    if a <= 0 or b <= 0 or math.isnan(x):
        return math.nan
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    lbt = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    bt = math.exp(lbt)
    if x < (a + 1.0) / (a + b + 2.0):
        return bt * _betacf(a, b, x) / a
    return 1.0 - bt * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom (df > 0, may be fractional)."""
    if df <= 0 or math.isnan(t) or math.isnan(df):
        return math.nan
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    if math.isinf(df):
        return 0.5 * math.erfc(-t / math.sqrt(2.0))
    x = df / (df + t * t)
    tail = 0.5 * betainc(0.5 * df, 0.5, x)   # P(T > |t|)
    return 1.0 - tail if t > 0 else tail


def _t_pdf(t: float, df: float) -> float:
    lg = math.lgamma(0.5 * (df + 1.0)) - math.lgamma(0.5 * df) - 0.5 * math.log(df * math.pi)
    return math.exp(lg - 0.5 * (df + 1.0) * math.log1p(t * t / df))


def _hill_start(p_upper: float, df: float) -> float:
    """Hill (1970, CACM algorithm 396) approximation of the upper-tail t quantile."""
    z = -norm_ppf(p_upper)
    if df < 1:
        return max(z, 1.0)
    g1 = (z ** 3 + z) / 4.0
    g2 = (5 * z ** 5 + 16 * z ** 3 + 3 * z) / 96.0
    g3 = (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / 384.0
    g4 = (79 * z ** 9 + 776 * z ** 7 + 1482 * z ** 5 - 1920 * z ** 3 - 945 * z) / 92160.0
    return z + g1 / df + g2 / df ** 2 + g3 / df ** 3 + g4 / df ** 4


def t_ppf(p: float, df: float) -> float:
    """Quantile of Student's t: the t with P(T <= t) = p (inverse of :func:`t_cdf`)."""
    if math.isnan(p) or math.isnan(df) or df <= 0 or not 0.0 <= p <= 1.0:
        return math.nan
    if p == 0.0:
        return -math.inf
    if p == 1.0:
        return math.inf
    if p == 0.5:
        return 0.0
    if math.isinf(df):
        return norm_ppf(p)
    sign = 1.0 if p > 0.5 else -1.0
    pu = 1.0 - p if p > 0.5 else p        # upper-tail probability of |t|
    if df == 1.0:
        return sign / math.tan(math.pi * pu)
    if df > 1000:
        # Hill's expansion is exact to ~1e-17 here, while lgamma differences lose digits.
        return sign * _hill_start(pu, df)
    if df == 2.0:
        a = 4.0 * pu * (1.0 - pu)          # closed form: t = (2p-1)/sqrt(2p(1-p))
        return sign * math.sqrt(2.0 / a - 2.0) if a > 0 else sign * math.inf
    # Safeguarded Newton on f(t) = P(T > t) - pu, t > 0, decreasing in t.
    t = _hill_start(pu, df)
    if not (t > 0 and math.isfinite(t)):
        t = 1.0
    lo, hi = 0.0, math.inf
    for _ in range(200):
        f = 0.5 * betainc(0.5 * df, 0.5, df / (df + t * t)) - pu
        if f > 0:
            lo = t          # tail too big: t must grow
        else:
            hi = t
        step = f / _t_pdf(t, df)   # d/dt P(T>t) = -pdf  => t_new = t + f/pdf
        t_new = t + step
        if not (lo < t_new < hi) or not math.isfinite(t_new):
            t_new = 2.0 * t if math.isinf(hi) else 0.5 * (lo + hi)
        if abs(t_new - t) <= 1e-15 * max(1.0, abs(t)):
            t = t_new
            break
        t = t_new
    return sign * t


@lru_cache(maxsize=1024)
def t_critical(df: float, confidence: float = 0.95) -> float:
    """Two-sided critical value t_{(1+confidence)/2, df} (e.g. 12.706 for df=1 at 95%)."""
    return t_ppf(0.5 + confidence / 2.0, df)


@dataclass
class MeanStats:
    """Mean, sample std (ddof=1), n (non-NaN count) and the t-based CI of one metric."""

    mean: float
    std: float
    n: int
    ci95: float          # half width: t_{0.975,n-1} * std / sqrt(n)
    ci_low: float
    ci_high: float


def nanmean(values: Sequence[float] | np.ndarray) -> float:
    """``numpy.nanmean`` of the values in the given order, NaN (no warning) when none is a number."""
    arr = np.asarray(values, dtype=float)
    mask = ~np.isnan(arr)
    if not mask.any():
        return math.nan
    return float(np.nanmean(arr))


def describe(values: Iterable[float], confidence: float = 0.95) -> MeanStats:
    """Statistics of one metric over runs: NaNs ignored, all-NaN -> NaN mean with n=0."""
    arr = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=float)
    mean = nanmean(arr)
    good = arr[~np.isnan(arr)]
    n = int(good.size)
    if n >= 2:
        std = float(np.std(good, ddof=1))
        half = t_critical(float(n - 1), confidence) * std / math.sqrt(n)
    else:
        std = math.nan
        half = math.nan
    return MeanStats(mean=mean, std=std, n=n, ci95=half, ci_low=mean - half, ci_high=mean + half)


def describe_rows(matrix: np.ndarray, confidence: float = 0.95) -> dict[str, np.ndarray]:
    """Vectorised :func:`describe` over the rows of a 2-D array (one row per metric, one column per run).

    Means are ``numpy.nanmean`` along the contiguous last axis, which sums each row exactly as
    a 1-D ``nanmean`` of that row does (pairwise summation in the given order).
    """
    m = np.ascontiguousarray(np.asarray(matrix, dtype=float))
    if m.ndim != 2:
        raise ValueError("describe_rows needs a 2-D array")
    nan = np.isnan(m)
    n = (~nan).sum(axis=1)
    filled = np.where(nan, 0.0, m)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.sum(filled, axis=1) / n              # what numpy.nanmean does
        mean = np.where(n > 0, mean, np.nan)
        dev = np.where(nan, 0.0, m - mean[:, None])
        var = np.sum(dev * dev, axis=1) / (n - 1)
        std = np.where(n >= 2, np.sqrt(var), np.nan)
        # identical runs have no spread: a mean that is one ulp off must not show as std 4e-12
        lo, hi = np.where(nan, np.inf, m).min(axis=1), np.where(nan, -np.inf, m).max(axis=1)
        std = np.where((n >= 2) & (lo == hi), 0.0, std)
        tcrit = np.array([t_critical(float(k - 1), confidence) if k >= 2 else np.nan for k in n])
        half = tcrit * std / np.sqrt(n)
    return {"mean": mean, "std": std, "n": n, "ci95": half, "ci_low": mean - half, "ci_high": mean + half}
