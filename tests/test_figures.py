"""figures: the data behind each analysis figure, the analysis config, and OppNDA's engine end to end."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from oppnda_nb import figures, job
from oppnda_nb.averaging import sample_folder
from oppnda_nb.errors import OppndaError
from oppnda_nb.figures import analysis as fa
from oppnda_nb.figures import tasks as ft

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def wide_table() -> pd.DataFrame:
    rows = []
    rng = np.random.default_rng(1)
    for r, base in (("EpidemicRouter", 0.3), ("SprayAndWaitRouter", 0.5)):
        for b in (2, 5, 10):
            rows.append({"router": r, "buffer": b, "report_type": "MessageStatsReport",
                         "delivery_prob_mean": base + b / 100, "delivery_prob_ci95": 0.01 + rng.random() / 50})
    return pd.DataFrame(rows)


def raw_runs(n: int = 12) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    a = rng.random(n)
    return pd.DataFrame({"router": ["A"] * (n // 2) + ["B"] * (n - n // 2), "delivery_prob": a,
                         "overhead_ratio": 3 - 2 * a + rng.random(n) / 5, "latency_avg": rng.random(n) * 1000})


# ----------------------------------------------------------------------------- drawing functions

def test_line_plots_the_means_and_the_ci_band_and_dodged_error_bars():
    t = wide_table()
    fig = figures.line(t, "delivery_prob", by="buffer", hue="router")
    ax = fig.axes[0]
    for router, sub in t.groupby("router"):
        ln = [l for l in ax.lines if l.get_label() == router][0]
        np.testing.assert_allclose(ln.get_xdata(), sub["buffer"])
        np.testing.assert_allclose(ln.get_ydata(), sub["delivery_prob_mean"])
        band = [c for c in ax.collections if c.get_gid() == f"ci:{router}"][0]
        ys = band.get_paths()[0].vertices[:, 1]
        lo = sub["delivery_prob_mean"] - sub["delivery_prob_ci95"]
        hi = sub["delivery_prob_mean"] + sub["delivery_prob_ci95"]
        assert min(ys) == pytest.approx(lo.min()) and max(ys) == pytest.approx(hi.max())
        err = [c for c in ax.collections if c.get_gid() == f"err:{router}"][0]
        segs = err.get_segments()
        np.testing.assert_allclose([s[1, 1] - s[0, 1] for s in segs], 2 * sub["delivery_prob_ci95"])
        # error bars are dodged off the true x (so two routers at one x do not hide each other)
        assert all(abs(s[0, 0] - x) > 0 for s, x in zip(segs, sub["buffer"]))
    ax.figure.canvas.draw()
    assert [tl.get_text() for tl in ax.get_xticklabels()] == ["2M", "5M", "10M"]
    assert ax.get_xlabel() == "buffer (MB)" and ax.get_ylabel() == "Delivery Prob"
    data = fig.oppnda_data
    assert len(data) == 6 and set(data["hue"]) == {"EpidemicRouter", "SprayAndWaitRouter"}


def test_line_without_ci_and_ambiguous_table():
    t = wide_table().drop(columns="delivery_prob_ci95")
    fig = figures.line(t, "delivery_prob", by="buffer")
    assert not [c for c in fig.axes[0].collections if (c.get_gid() or "").startswith("ci:")]
    with pytest.raises(OppndaError, match="Several rows per buffer"):
        figures.line(t, "delivery_prob", by="buffer", hue=None)
    with pytest.raises(OppndaError, match="No metric 'nope'"):
        figures.line(t, "nope", by="buffer")


def test_heatmap_is_the_correlation_matrix_of_the_raw_metrics():
    raw = raw_runs()
    metrics = ["delivery_prob", "overhead_ratio", "latency_avg"]
    fig = figures.heatmap(raw, metrics)
    img = fig.axes[0].images[0].get_array()
    np.testing.assert_allclose(np.asarray(img), raw[metrics].corr().to_numpy())
    texts = {t.get_text() for t in fig.axes[0].texts}
    assert f"{raw['delivery_prob'].corr(raw['overhead_ratio']):.2f}" in texts


def test_surface_grid_is_the_joint_mean():
    rows = [{"ttl": t, "buffer": b, "delivery_prob_mean": t / 100 + b} for t in (60, 180, 300) for b in (2, 5, 10)]
    table = pd.DataFrame(rows)
    fig = figures.surface(table, "delivery_prob", "buffer", "ttl")
    data = fig.oppnda_data
    expect = table.set_index(["buffer", "ttl"])["delivery_prob_mean"]
    for _, r in data.iterrows():
        assert r["mean"] == pytest.approx(expect[(r["x"], r["y"])])
    pts = [c for c in fig.axes[0].collections if c.get_gid() == "means"][0]
    assert len(pts.get_offsets()) == 9
    assert not data["filled"].any()


def test_violin_and_pairplot_draw_the_values_given():
    raw = raw_runs()
    fig = figures.violin(raw, "delivery_prob", by="router")
    for key in ("A", "B"):
        pts = [c for c in fig.axes[0].collections if c.get_gid() == f"points:{key}"][0]
        np.testing.assert_allclose(sorted(pts.get_offsets()[:, 0]), sorted(raw.loc[raw.router == key, "delivery_prob"]))
    fig = figures.pairplot(raw, ["delivery_prob", "overhead_ratio"], hue="router")
    sc = [c for ax in fig.axes for c in ax.collections if c.get_gid() == "scatter:overhead_ratio:delivery_prob:A"][0]
    sub = raw[raw.router == "A"]
    np.testing.assert_allclose(sc.get_offsets(), sub[["delivery_prob", "overhead_ratio"]].to_numpy())


def curves_frame(kind: str) -> pd.DataFrame:
    x = np.arange(0, 50, 5.0)
    parts = []
    for r, k in (("A", 1.0), ("B", 2.0)):
        parts.append(pd.DataFrame({"router": r, "ttl": 180, "report_type": "ContactTimesReport", "curve_kind": kind,
                                   "x": x, "y_mean": k * x, "y_std": 1.0, "y_n": 2, "y_ci95": 0.5 * k}))
    return pd.concat(parts, ignore_index=True)


@pytest.mark.parametrize("func,kind", [(figures.distribution, "histogram"), (figures.timeseries, "timeseries")])
def test_curves_means_and_bands(func, kind):
    c = curves_frame(kind)
    fig = func(c)
    ax = fig.axes[0]
    for r, k in (("A", 1.0), ("B", 2.0)):
        ln = [l for l in ax.lines if l.get_label() == r][0]
        np.testing.assert_allclose(ln.get_ydata(), k * np.arange(0, 50, 5.0))
        band = [p for p in ax.collections if p.get_gid() == f"ci:{r}"][0]
        ys = band.get_paths()[0].vertices[:, 1]
        assert max(ys) == pytest.approx(45 * k + 0.5 * k)
    wrong = figures.timeseries if func is figures.distribution else figures.distribution
    with pytest.raises(OppndaError, match="No curve matches"):
        wrong(c)
    two = pd.concat([c, c.assign(ttl=300)], ignore_index=True)
    with pytest.raises(OppndaError, match="differ in ttl"):
        func(two)
    assert len(func(two, where={"ttl": 300}).oppnda_data) == 20


# ----------------------------------------------------------------------------- config

def test_config_defaults_and_the_shipped_example():
    cfg = figures.load_analysis_config(None)
    assert cfg.dpi == 150 and cfg.extension == ".txt" and cfg.enabled("pairplot")
    assert cfg.label("ttl") == "TTL (min)" and cfg.label("buffer") == "buffer (MB)"
    ex = figures.load_analysis_config(figures.example_config_path())
    assert ex.raw_dir == sample_folder()
    assert ex["metrics"]["include"][0] == "delivery_prob"
    assert json.loads(figures.example_config_path().read_text())["filename_structure"]["raw_files"]["positions"]["ttl"] == 3


@pytest.mark.parametrize("bad,match", [
    ({"enabled_plots": {"line_plot": True}}, r"unknown key 'enabled_plots.line_plot'.*did you mean 'enabled_plots.line_plots'"),
    ({"plot_settings": {"general": {"dpi": "high"}}}, r"'plot_settings.general.dpi' must be a number"),
    ({"test_field": 1}, r"unknown key 'test_field'"),
    ({"plot_settings": {"line_plots": {"size": [10]}}}, r"size' must be \[width, height\]"),
    ({"filename_structure": {"raw_files": {"positions": {"ttl": "3"}}}}, r"positions.ttl' must be an integer"),
])
def test_config_bad_keys_are_named(bad, match):
    with pytest.raises(OppndaError, match=match):
        figures.load_analysis_config(bad)


def test_config_not_strict_ignores_unknown_keys():
    cfg = figures.load_analysis_config({"test_field": 1, "enabled_plots": {"pairplot": False}}, strict=False)
    assert not cfg.enabled("pairplot") and "test_field" not in cfg.data


def test_average_names_are_parsed_as_oppnda_does():
    cfg = figures.load_analysis_config(None)
    p = fa.parse_average_name("MessageStatsReport_EpidemicRouter_180_ttl_average.txt", cfg)
    assert p == {"report_type": "MessageStatsReport", "router": "EpidemicRouter", "grouping_type": "ttl", "value": 180}
    assert fa.parse_average_name("MessageStatsReport_TEST_EpidemicRouter_180_10_average.txt", cfg) is None
    assert fa.is_average_file("X_average.txt", ".txt") and not fa.is_average_file("X_average.csv", ".txt")


# ----------------------------------------------------------------------------- tasks and estimates

def test_task_files_carry_kind_and_pixels_and_estimates_grow(tmp_path):
    t = [ft.FigureTask("line", "a", (10.0, 5.0), (), {}), ft.FigureTask("pairplot", "b", (20.0, 20.0), (), {})]
    paths = ft.write_tasks(t, tmp_path, dpi=100)
    assert ft.task_kind(paths[0]) == "line" and ft.task_pixels(paths[0]) == 1000 * 500
    small = ft.estimate_task(paths[0], 1000)
    assert ft.estimate_task(paths[1], 1000) > small
    assert ft.estimate_task(paths[0], 10_000_000) > small
    assert ft.estimate_bytes("line", 0, 4e6) - ft.estimate_bytes("line", 0, 0) == pytest.approx(4e6 * ft.MEMORY_FACTORS["line"][1])


def test_draw_task_writes_each_format(tmp_path):
    task = ft.FigureTask("line", "delivery_prob_buffer_line", (5.0, 3.0), (wide_table(), "delivery_prob", "buffer", "router"), {})
    path = ft.write_tasks([task], tmp_path, dpi=50)[0]
    out = tmp_path / "out"
    out.mkdir()
    written = ft.draw_task(path, str(out), ("png", "svg", "pdf"), 50)
    assert sorted(os.path.basename(p) for p in written) == [
        "delivery_prob_buffer_line.pdf", "delivery_prob_buffer_line.png", "delivery_prob_buffer_line.svg"]
    assert (out / "delivery_prob_buffer_line.png").read_bytes().startswith(PNG_MAGIC)
    assert (out / "delivery_prob_buffer_line.pdf").read_bytes().startswith(b"%PDF")
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


# ----------------------------------------------------------------------------- end to end (real pool)

INCLUDE = ["delivery_prob", "overhead_ratio", "latency_avg"]


@pytest.fixture(scope="module")
def sample_analysis(tmp_path_factory):
    """The shipped example config on the bundled sample: averaged by our averager, then analysed."""
    root = tmp_path_factory.mktemp("analysis")
    old = os.getcwd()
    os.chdir(root)
    try:
        job.average_folder(folder=sample_folder(), workers=2)
        assert (root / "oppnda-output" / "MessageStatsReport_EpidemicRouter_180_ttl_average.txt").exists()
        cfg = figures.load_analysis_config(figures.example_config_path(), overrides={
            "metrics": {"include": INCLUDE}, "plot_settings": {"general": {"dpi": 30}}})
        analysis = figures.Analysis(cfg, formats=("png", "svg"), workers=2)
        # one figure is broken on purpose: it must fail alone
        broken = [t for t in analysis.tasks if t.name == "violin_ttl_latency_avg"][0]
        Path(broken.path).write_bytes(b"not a pickle")
        events = []
        analysis.add_listener(events.append)
        result = analysis.run()
    finally:
        os.chdir(old)
    return root, result, events


def test_example_config_writes_oppnda_names(sample_analysis):
    root, result, _ = sample_analysis
    plots = root / "oppnda-plots"
    names = {p.name for p in plots.iterdir()}
    routers = ["EpidemicRouter", "FirstContactRouter", "SprayAndWaitRouter"]
    expected = {f"{m}_{g}_line.png" for m in INCLUDE for g in ("ttl", "buffer")}
    expected |= {f"{r}_{m}_3d_buffer_ttl.png" for r in routers for m in INCLUDE}
    expected |= {f"violin_{g}_{m}.png" for g in ("ttl", "buffer") for m in INCLUDE} - {"violin_ttl_latency_avg.png"}
    expected |= {f"{r}_correlation.png" for r in routers} | {"pairplot.png"} | {f"{r}_metrics.csv" for r in routers}
    assert expected <= names
    assert {n[:-4] for n in names if n.endswith(".svg")} == {n[:-4] for n in names if n.endswith(".png")}
    assert "violin_ttl_latency_avg.png" not in names
    assert all((plots / n).read_bytes().startswith(PNG_MAGIC) for n in names if n.endswith(".png"))


def test_a_failing_figure_is_reported_and_the_others_drawn(sample_analysis):
    _, result, events = sample_analysis
    assert result.failed and result.failed[0][0] == "violin_ttl_latency_avg"
    assert result.exit_code == 1
    counts = pd.Series([str(o.status) for o in result.outcomes]).value_counts().to_dict()
    assert counts == {"processed": len(result.tasks) - 1, "failed": 1}
    assert result.job.accounting_ok
    assert events[-1].kind == "analysis_done" and events[-1].data is result
    assert any(e.kind == "file_finished" for e in events)
    frame = result.figures_frame()
    assert set(frame["kind"]) == {"line", "surface", "violin", "heatmap", "pairplot"}
    assert frame["estimate_mb"].notna().all()


def test_line_data_equal_averaged_files_and_bands_equal_ci(sample_analysis):
    root, result, _ = sample_analysis
    data = result.data
    avg = data.averaged["ttl"]
    stats = data.stats["ttl"]
    stats = stats[stats["report_type"] == "MessageStatsReport"]
    task = [t for t in result.tasks if t.name == "delivery_prob_ttl_line"][0]
    fig = figures.line(*task.args, **task.kwargs)
    ax = fig.axes[0]
    for router, sub in avg.groupby("router"):
        ln = [l for l in ax.lines if l.get_label() == router][0]
        # the averaged files' values (4 decimals) = the statistics of the raw runs
        np.testing.assert_allclose(ln.get_ydata(), sub.sort_values("value")["delivery_prob"])
        st = stats[stats["router"] == router].sort_values("ttl")
        np.testing.assert_allclose(ln.get_ydata(), st["delivery_prob_mean"], atol=5e-5)
        band = [c for c in ax.collections if c.get_gid() == f"ci:{router}"][0]
        ys = np.sort(band.get_paths()[0].vertices[:, 1])
        y = np.asarray(ln.get_ydata())
        ci = st["delivery_prob_ci95"].to_numpy()
        assert ys.min() == pytest.approx((y - ci).min()) and ys.max() == pytest.approx((y + ci).max())
        assert (ci > 0).all()


def test_heatmap_and_csv_equal_the_raw_runs(sample_analysis):
    root, result, _ = sample_analysis
    raw = result.data.raw
    csv = pd.read_csv(root / "oppnda-plots" / "EpidemicRouter_metrics.csv")
    sub = raw[raw["router"] == "EpidemicRouter"]
    assert len(csv) == 18 == len(sub)  # 2 seeds x 3 TTL x 3 buffers
    assert {"filename", "source_report", "router", "seed", "ttl", "buffer", *INCLUDE} <= set(csv.columns)
    np.testing.assert_allclose(csv["delivery_prob"], sub["delivery_prob"])
    task = [t for t in result.tasks if t.name == "EpidemicRouter_correlation"][0]
    fig = figures.heatmap(*task.args, **task.kwargs)
    np.testing.assert_allclose(np.asarray(fig.axes[0].images[0].get_array()), csv[INCLUDE].corr().to_numpy())


def test_surface_is_the_joint_mean_of_the_raw_runs(sample_analysis):
    _, result, _ = sample_analysis
    raw = result.data.raw
    task = [t for t in result.tasks if t.name == "SprayAndWaitRouter_delivery_prob_3d_buffer_ttl"][0]
    fig = figures.surface(*task.args, **task.kwargs)
    joint = raw[raw.router == "SprayAndWaitRouter"].groupby(["buffer", "ttl"])["delivery_prob"].mean()
    for _, r in fig.oppnda_data.iterrows():
        assert r["mean"] == pytest.approx(joint[(r["x"], r["y"])])


def test_nothing_to_plot_is_a_clear_error(tmp_path):
    with pytest.raises(OppndaError, match="Nothing to plot"):
        figures.Analysis({"directories": {"report_dir": str(tmp_path), "plots_dir": str(tmp_path / "p")}})
    with pytest.raises(OppndaError, match="Unknown figure format"):
        fa._check_formats(("png", "jpeg2000"))
