"""figures.pick: which table and parameters a quick plot of one metric uses (pure; synthetic tables)."""
from __future__ import annotations

import pandas as pd
import pytest

from oppnda_nb.averaging.summarize import FileSummary
from oppnda_nb.errors import OppndaError
from oppnda_nb.figures import pick as P


def stats(rows, metric="delivery_prob"):
    out = pd.DataFrame(rows)
    out["report_type"] = "MessageStatsReport"
    out["n_files"] = 2
    out[f"{metric}_std"] = 0.1
    out[f"{metric}_n"] = 2
    out[f"{metric}_ci95"] = 0.05
    return out


ROUTERS = ("A", "B")
TABLES = {
    "average": stats([{"router": r, "ttl": t, "buffer": b, "delivery_prob_mean": t / 1000 + b / 100}
                      for r in ROUTERS for t in (60, 180) for b in (2, 5)]),
    "ttl_average": stats([{"router": r, "ttl": t, "delivery_prob_mean": t / 1000} for r in ROUTERS for t in (60, 180)]),
    "buffer_average": stats([{"router": r, "buffer": b, "delivery_prob_mean": b / 100} for r in ROUTERS for b in (2, 5)]),
}


def test_parameters_and_metrics_of_a_wide_table():
    t = TABLES["average"]
    assert P.metric_names(t) == ["delivery_prob"]
    assert P.parameters(t) == ["router", "ttl", "buffer", "report_type"]


@pytest.mark.parametrize("x,by,table,expect", [
    (None, None, "ttl_average", ("ttl", "router")),      # one x that varies: the first such table
    ("buffer", None, "buffer_average", ("buffer", "router")),
    ("ttl", "buffer", "average", ("ttl", "buffer")),    # only the joint table has both
])
def test_pick_uses_the_table_that_varies_in_what_is_drawn(x, by, table, expect):
    tables = dict(TABLES)
    tables["average"] = tables["average"][tables["average"]["router"] == "A"]  # so (ttl, buffer) is unique
    frame, px, pby = P.pick(tables, "delivery_prob", x=x, by=by)
    assert (px, pby) == expect
    pd.testing.assert_frame_equal(frame, tables[table][tables[table]["delivery_prob_mean"].notna()]
                                  .reset_index(drop=True))


def test_pick_with_nothing_varying_takes_a_constant_numeric_x():
    tables = {"ttl_average": stats([{"router": r, "ttl": 180, "delivery_prob_mean": 0.1} for r in ROUTERS])}
    frame, x, by = P.pick(tables, "delivery_prob")
    assert (x, by, len(frame)) == ("ttl", "router", 2)


@pytest.mark.parametrize("kwargs,match", [
    ({"x": "nope"}, r"No parameter 'nope' \(x axis\) in the tables of 'delivery_prob'; parameters: router, ttl, "
                    r"buffer, report_type\."),
    ({"by": "seed"}, r"No parameter 'seed' \(lines\).*parameters: router, ttl, buffer"),
    ({"table": "x"}, r"No table 'x'; the run has average, ttl_average, buffer_average"),
    ({"x": "ttl", "by": "buffer"}, r"also vary in router"),
])
def test_pick_mistakes_list_what_there_is(kwargs, match):
    with pytest.raises(OppndaError, match=match):
        P.pick(TABLES, "delivery_prob", **kwargs)


def test_unknown_metric_lists_the_metrics():
    with pytest.raises(OppndaError, match=r"No metric 'latency' in the averaged tables; metrics: delivery_prob\."):
        P.pick(TABLES, "latency")
    with pytest.raises(OppndaError, match="no averaged table"):
        P.pick({}, "latency")


def test_pick_surface_axes_and_a_missing_axis():
    frame, x, y = P.pick_surface(TABLES, "delivery_prob")
    assert (x, y) == ("buffer", "ttl") and len(frame) == 8
    with pytest.raises(OppndaError, match="needs two numeric parameters that vary"):
        P.pick_surface({"ttl_average": TABLES["ttl_average"]}, "delivery_prob")


def curves():
    rows = [{"router": r, "ttl": t, "report_type": "ContactTimesReport", "curve_kind": "histogram", "x": x,
             "y_mean": 1.0} for r in ROUTERS for t in (60, 180) for x in (0, 1)]
    return {"ttl_average": pd.DataFrame(rows),
            "router_only": pd.DataFrame([r for r in rows if r["ttl"] == 60])}


def test_pick_curves_prefers_the_fewest_facets_and_checks_the_kind():
    frame, facets = P.pick_curves(curves(), "ContactTimesReport", kind="histogram")
    assert facets == [] and len(frame) == 4
    frame, facets = P.pick_curves({"ttl_average": curves()["ttl_average"]}, "ContactTimesReport")
    assert facets == ["ttl"]
    with pytest.raises(OppndaError, match="ContactTimesReport has histogram curves, not timeseries"):
        P.pick_curves(curves(), "ContactTimesReport", kind="timeseries")
    with pytest.raises(OppndaError, match=r"reports with curves: ContactTimesReport \(histogram\)"):
        P.pick_curves(curves(), "BufferOccupancyReport")


def test_runs_frame_and_pick_runs():
    summaries = [FileSummary(path=f"{r}_{s}", params={"router": r, "seed": str(s)}, report_type="MessageStatsReport",
                             scalars={"delivery_prob": 0.1 * s, "overhead_ratio": 2.0 + s, "constant": 1.0})
                 for r in ROUTERS for s in (1, 2, 3)]
    summaries.append(FileSummary(path="d", params={"router": "A", "seed": "1"}, report_type="MessageDelayReport",
                                 scalars={"mean": 3.0}))
    runs = P.runs_frame(summaries)
    assert runs.attrs["parameters"] == ["router", "seed"] and runs["seed"].tolist()[:3] == [1, 2, 3]
    frame, metrics = P.pick_runs(runs, ["delivery_prob"], at_least=2)  # one metric: its report's varying ones
    assert metrics == ["delivery_prob", "overhead_ratio"] and len(frame) == 6 and "mean" not in frame.columns
    with pytest.raises(OppndaError, match=r"No metric 'nope' in the runs' reports"):
        P.pick_runs(runs, ["nope"])
