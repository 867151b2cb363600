"""Statistics: t quantiles vs printed table values, mean/std/CI on hand-computed cases, NaN rules."""
from __future__ import annotations

import math

import numpy as np
import pytest

from oppnda_nb.stats import betainc, describe, describe_rows, nanmean, norm_ppf, t_cdf, t_critical, t_ppf

# Two-sided 95% critical values t_{0.975, df} from standard t tables (9 decimals).
T975 = {1: 12.706204736, 2: 4.302652730, 4: 2.776445105, 10: 2.228138852, 30: 2.042272456, 100: 1.983971519}
# One-sided 95% and 99.5% values from the same tables.
T95 = {1: 6.313751515, 2: 2.919985580, 4: 2.131846786, 10: 1.812461123, 30: 1.697260887, 100: 1.660234326}
T995 = {1: 63.656741163, 4: 4.604094871, 10: 3.169272673, 30: 2.749995654}


@pytest.mark.parametrize("df,expected", sorted(T975.items()))
def test_t_975_table(df, expected):
    assert t_ppf(0.975, df) == pytest.approx(expected, abs=2e-9)
    assert t_critical(df) == pytest.approx(expected, abs=2e-9)
    assert t_ppf(0.025, df) == pytest.approx(-expected, abs=2e-9)


@pytest.mark.parametrize("df,expected", sorted(T95.items()))
def test_t_95_table(df, expected):
    assert t_ppf(0.95, df) == pytest.approx(expected, abs=2e-9)


@pytest.mark.parametrize("df,expected", sorted(T995.items()))
def test_t_995_table(df, expected):
    assert t_ppf(0.995, df) == pytest.approx(expected, abs=2e-8)


def test_t_ppf_inverts_cdf_over_a_range():
    for df in (0.5, 1, 1.5, 3, 7, 25, 250, 5000, 1e6):
        for p in (1e-8, 1e-3, 0.05, 0.3, 0.5, 0.8, 0.99, 1 - 1e-7):
            t = t_ppf(p, df)
            assert t_cdf(t, df) == pytest.approx(p, rel=1e-8, abs=1e-13)


def test_t_large_df_tends_to_normal_and_edges():
    assert t_ppf(0.975, math.inf) == pytest.approx(1.959963984540054, abs=1e-12)
    assert t_ppf(0.975, 1e7) == pytest.approx(1.959963984540054, abs=1e-6)
    assert norm_ppf(0.5) == 0.0
    assert norm_ppf(0.841344746068543) == pytest.approx(1.0, abs=1e-12)
    assert t_ppf(0.5, 3) == 0.0
    assert t_ppf(1.0, 3) == math.inf and t_ppf(0.0, 3) == -math.inf
    assert math.isnan(t_ppf(0.9, 0)) and math.isnan(t_ppf(1.5, 3))


def test_betainc_known_values():
    assert betainc(1, 1, 0.3) == pytest.approx(0.3, abs=1e-15)          # uniform
    assert betainc(2, 3, 0.4) == pytest.approx(0.5248, abs=1e-12)       # 1 - (1-x)^3 (1+3x) at x=.4
    assert betainc(0.5, 0.5, 0.5) == pytest.approx(0.5, abs=1e-14)      # arcsine, symmetric
    assert betainc(3, 2, 0.0) == 0.0 and betainc(3, 2, 1.0) == 1.0


def test_describe_n2():
    s = describe([1.0, 3.0])
    assert s.mean == 2.0 and s.n == 2
    assert s.std == pytest.approx(math.sqrt(2.0))
    # half width = t(0.975,1) * sqrt(2)/sqrt(2) = 12.7062...
    assert s.ci95 == pytest.approx(12.706204736, abs=1e-8)
    assert s.ci_low == pytest.approx(2 - 12.706204736, abs=1e-8)
    assert s.ci_high == pytest.approx(2 + 12.706204736, abs=1e-8)


def test_describe_n3():
    s = describe([2.0, 4.0, 9.0])
    # mean 5, deviations -3,-1,4 -> SS=26 -> var 13
    assert s.mean == 5.0 and s.n == 3
    assert s.std == pytest.approx(math.sqrt(13.0))
    assert s.ci95 == pytest.approx(4.302652730 * math.sqrt(13.0) / math.sqrt(3.0), rel=1e-9)


def test_describe_n5():
    s = describe([10, 12, 14, 16, 18])
    # mean 14, SS = 16+4+0+4+16 = 40, var 10
    assert s.mean == 14.0 and s.n == 5
    assert s.std == pytest.approx(math.sqrt(10.0))
    assert s.ci95 == pytest.approx(2.776445105 * math.sqrt(10.0) / math.sqrt(5.0), rel=1e-9)


def test_nan_ignored_and_n_counts_numbers():
    s = describe([1.0, float("nan"), 3.0])
    assert s.mean == 2.0 and s.n == 2 and s.std == pytest.approx(math.sqrt(2.0))


def test_n1_gives_nan_std_and_ci():
    s = describe([7.0, float("nan")])
    assert s.mean == 7.0 and s.n == 1
    assert math.isnan(s.std) and math.isnan(s.ci95) and math.isnan(s.ci_low) and math.isnan(s.ci_high)


def test_all_nan_stays_nan_without_warning(recwarn):
    s = describe([float("nan")] * 3)
    assert math.isnan(s.mean) and s.n == 0 and math.isnan(s.std)
    assert math.isnan(nanmean([float("nan"), float("nan")]))
    rows = describe_rows(np.array([[np.nan, np.nan], [1.0, 2.0]]))
    assert math.isnan(rows["mean"][0]) and rows["n"][0] == 0 and rows["mean"][1] == 1.5
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_rows_mean_is_numpy_nanmean_bitwise():
    rng = np.random.default_rng(1)
    for n in (2, 7, 8, 9, 17, 55, 65, 130):
        m = rng.normal(size=(5, n)) * 1e5 + 1e6
        m[rng.uniform(size=m.shape) < 0.1] = np.nan
        m[:, 0] = 1.0
        got = describe_rows(m)["mean"]
        for i in range(5):
            assert got[i] == np.nanmean(m[i].copy())
