"""plots.py: the memory plot and the metric plot, drawn off-screen to PNG bytes."""
from __future__ import annotations

import io
import sys
import threading

import numpy as np
import pandas as pd
import pytest

from oppnda_nb import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def memory_frame(n: int = 400, workers: int = 3, budget: float = 1200.0, peak: float = 650.0,
                 seed: int = 0) -> pd.DataFrame:
    """A frame with the monitor's columns: workers start one after another and end early."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 40.0, n)
    data = {"t": t, "system_used_mb": 4000.0, "system_available_mb": 20000.0,
            "kernel_mb": 150.0 + rng.random(n), "budget_mb": budget, "predicted_peak_mb": peak}
    for k in range(workers):
        alive = (t >= 2.0 * k) & (t <= 35.0 - k)
        data[f"worker_{4000 + k}"] = np.where(alive, 80.0 + 30.0 * rng.random(n), np.nan)
    df = pd.DataFrame(data)
    df["workers_mb"] = df.filter(like="worker_").sum(axis=1)
    df["running"] = df.filter(like="worker_").notna().sum(axis=1)
    return df


def legend_texts(fig) -> list[str]:
    legend = fig.axes[0].get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend else []


def test_memory_figure_draws_stack_budget_and_peak():
    df = memory_frame()
    fig = plots.memory_figure(df, title="pool")
    texts = legend_texts(fig)
    assert "kernel" in texts
    assert [t for t in texts if t.startswith("worker ")] == ["worker 4000", "worker 4001", "worker 4002"]
    assert any(t.startswith("η budget (1,200 MB") for t in texts)
    assert any(t.startswith("predicted peak (650 MB") for t in texts)
    total = df["kernel_mb"] + df.filter(like="worker_").fillna(0).sum(axis=1)
    assert f"measured peak ({total.max():,.0f} MB)" in texts
    ax = fig.axes[0]
    assert ax.get_ylabel() == "memory (MB)" and "time" in ax.get_xlabel()
    # the outline of the stack is kernel + the living workers (NaN = not alive = 0)
    total_line = [ln for ln in ax.get_lines() if ln.get_label() == "_nolegend_"][0]
    expected = df["kernel_mb"] + df.filter(like="worker_").fillna(0).sum(axis=1)
    np.testing.assert_allclose(total_line.get_ydata(), expected.to_numpy())
    # the budget line is on the scale and the y axis shows it
    assert ax.get_ylim()[1] >= 1200.0
    png = plots.figure_to_png(fig)
    assert png.startswith(PNG_MAGIC) and len(png) > 5000


def test_memory_figure_far_budget_stays_readable():
    """A budget far above the pool (a big machine) is named off scale instead of flattening the stack."""
    df = memory_frame(budget=18_000.0)
    fig = plots.memory_figure(df)
    top = fig.axes[0].get_ylim()[1]
    assert top < 2000.0
    assert any("18,000 MB" in t and "off scale" in t and "MB free" in t for t in legend_texts(fig))
    bar = fig.axes[1]
    assert bar.get_ylim() == (0.0, 18_000.0)  # the headroom bar spans the whole budget
    used = [p for p in bar.patches if p.get_gid() == "headroom-used"][0]
    total = df["kernel_mb"] + df.filter(like="worker_").fillna(0).sum(axis=1)
    ys = used.get_path().transformed(used.get_patch_transform() if hasattr(used, "get_patch_transform") else
                                     used.get_transform() - bar.transData).vertices[:, 1]
    assert max(ys) == pytest.approx(total.max())
    assert bar.get_title().endswith(f"{total.max() / 18_000:.0%}")


def test_memory_figure_many_workers_one_legend_entry():
    fig = plots.memory_figure(memory_frame(workers=12))
    texts = legend_texts(fig)
    assert "workers (12 processes)" in texts
    assert not any(t.startswith("worker ") for t in texts)


@pytest.mark.parametrize("frame", [None, pd.DataFrame(), memory_frame().iloc[:0], memory_frame().iloc[:1],
                                   memory_frame()[["t", "kernel_mb"]]])
def test_memory_figure_handles_empty_and_partial_frames(frame):
    png = plots.figure_to_png(plots.memory_figure(frame))
    assert png.startswith(PNG_MAGIC)


def test_downsample_keeps_peak_ends_and_bounds():
    df = memory_frame(n=20_000, workers=4)
    spike = 12_345
    df.loc[spike, "worker_4001"] = 5000.0
    small = plots.downsample_memory(df, max_points=500)
    assert len(small) <= 502
    assert small["t"].is_monotonic_increasing
    assert small.index[0] == 0 and small.index[-1] == len(df) - 1
    assert spike in small.index  # the peak survives
    assert plots.downsample_memory(df.iloc[:100], max_points=500) is not None
    assert len(plots.downsample_memory(df.iloc[:100], max_points=500)) == 100


def test_large_frames_are_downsampled_before_drawing():
    df = memory_frame(n=30_000, workers=6)
    fig = plots.memory_figure(df)
    total_line = [ln for ln in fig.axes[0].get_lines() if ln.get_label() == "_nolegend_"][0]
    assert len(total_line.get_xdata()) <= plots.MAX_POINTS + 2


def test_no_pyplot_and_threads_can_draw_together():
    """The live plot is drawn from background threads: no pyplot state, concurrent draws work."""
    out: list[bytes] = []
    errors: list[BaseException] = []

    def draw(seed):
        try:
            out.append(plots.memory_png(memory_frame(seed=seed)))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=draw, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors and len(out) == 4 and all(p.startswith(PNG_MAGIC) for p in out)
    assert "matplotlib.pyplot" not in sys.modules


def decoded(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def live_sequence() -> list:
    """Frames as a view sees them during a run: growing, workers appearing (their columns only once
    sampled), the budget moving every sample, the peak rising, a far budget, many workers, no samples."""
    base = memory_frame(n=300, workers=3, seed=1)
    base["budget_mb"] = 1200.0 + 7.0 * np.sin(np.arange(300))  # the budget moves with the system's memory
    base.loc[150:, "worker_4001"] += np.linspace(0.0, 400.0, 150)  # the peak rises: the y range changes
    frames = []
    for n in (1, 2, 5, 12, 30, 31, 32, 60, 61, 120, 121, 122, 200, 260, 299, 300):
        frames.append(base.iloc[:n].dropna(axis=1, how="all"))
    frames.append(None)
    frames.append(memory_frame(n=80, workers=3, budget=18_000.0, seed=2))  # off scale
    frames.append(memory_frame(n=90, workers=3, budget=18_000.0, seed=2))
    frames.append(memory_frame(n=90, workers=12, seed=3))
    frames.append(memory_frame(n=95, workers=12, seed=3).assign(helpers_mb=30.0))
    frames.append(memory_frame(n=95, workers=12, seed=3).assign(helpers_mb=30.0, budget_mb=np.nan))
    frames.append(memory_frame(n=99, workers=12, seed=3).assign(helpers_mb=31.0))
    return frames


@pytest.mark.parametrize("planned", [None, 900.0])
def test_live_plot_draws_the_same_pixels_as_memory_figure(planned):
    """Every frame of the live plot (drawn in layers on one figure) is the static picture, pixel for pixel."""
    live = plots.LiveMemoryPlot("memory of the run")
    figure = live.figure
    for i, frame in enumerate(live_sequence()):
        fast = live.png(frame, predicted_peak_mb=planned)
        static = plots.memory_png(frame, title="memory of the run", predicted_peak_mb=planned)
        assert fast.startswith(PNG_MAGIC)
        a, b = decoded(fast), decoded(static)
        assert a.shape == b.shape
        differ = np.any(a != b, axis=2)
        assert not differ.any(), f"frame {i}: {int(differ.sum())} pixels differ, e.g. at {np.argwhere(differ)[:3]}"
    assert live.figure is figure  # one figure for the whole run
    assert live.frames == len(live_sequence()) - 1  # the empty frame is the static "no samples yet"


def test_live_plot_draws_only_what_changed():
    """With the y range, the entries of the legend and the bar's text unchanged, only the data, the x axis and
    the changed legend labels are drawn again: background, whole legend and the bar's text once for the run."""
    base = memory_frame(n=200, workers=2, budget=16_000.0)
    base["budget_mb"] += np.arange(200) % 7  # the budget (so its legend label) moves every sample
    live = plots.LiveMemoryPlot()
    for n in range(100, 201, 10):
        live.png(base.iloc[:n], predicted_peak_mb=900.0)
    assert live.frames == 11
    assert (live.background_draws, live.legend_draws, live.bar_draws) == (1, 1, 1)
    texts = [t.get_text() for t in live.ax.get_legend().get_texts()]
    assert texts[-1].startswith(f"η budget ({base['budget_mb'].iloc[-1]:,.0f} MB,")  # the last frame's label
    assert "predicted peak (900 MB)" in texts


def test_y_range_is_rounded_up_to_two_digits():
    """The budget moving by a few MB keeps the y range (the live plot then keeps its y axis)."""
    tops = {plots.memory_figure(memory_frame(budget=b)).axes[0].get_ylim()[1] for b in (1200.0, 1203.0, 1207.0)}
    assert tops == {1400.0}
    assert [plots._round_up(v) for v in (1327.0, 118.0, 1.18, 1400.0, 95.2)] == pytest.approx([1400, 120, 1.2, 1400, 96])


def test_predicted_peak_is_the_plan_when_given():
    df = memory_frame(peak=650.0, budget=5000.0)
    fig = plots.memory_figure(df, predicted_peak_mb=1234.0)
    assert "predicted peak (1,234 MB)" in legend_texts(fig)
    line = [ln for ln in fig.axes[0].get_lines() if ln.get_label().startswith("predicted peak")][0]
    assert set(np.asarray(line.get_ydata(), dtype=float)) == {1234.0}
    marks = [ln for ln in fig.axes[1].get_lines() if ln.get_color() == plots._PEAK_COLOUR]
    assert [float(m.get_ydata()[0]) for m in marks] == [1234.0]
    # a frame that carries the plan's value in a planned_peak_mb column is drawn with it
    assert "predicted peak (777 MB)" in legend_texts(plots.memory_figure(df.assign(planned_peak_mb=777.0)))
    # without either: the pool's own prediction (its largest)
    assert "predicted peak (650 MB)" in legend_texts(plots.memory_figure(df))


def wide_table() -> pd.DataFrame:
    rows = []
    for router, base in (("Epidemic", 0.2), ("Spray", 0.4)):
        for ttl in (300, 60, 180):  # unsorted on purpose
            rows.append({"router": router, "ttl": ttl, "report_type": "MessageStatsReport", "n_files": 5,
                         "delivery_prob_mean": base + ttl / 1000, "delivery_prob_std": 0.01,
                         "delivery_prob_n": 5, "delivery_prob_ci95": 0.02 + ttl / 10_000})
    return pd.DataFrame(rows)


def test_metric_figure_lines_per_group_with_ci_error_bars():
    table = wide_table()
    fig = plots.metric_figure(table, "delivery_prob", x="ttl", by="router")
    ax = fig.axes[0]
    assert legend_texts(fig) == ["Epidemic", "Spray"]
    lines = {ln.get_label(): ln for ln in ax.lines if not ln.get_label().startswith("_")}
    assert sorted(lines) == ["Epidemic", "Spray"]
    for label, ln in lines.items():  # the means at their true x
        sub = table[table["router"] == label].sort_values("ttl")
        np.testing.assert_allclose(ln.get_xdata(), sub["ttl"].to_numpy())
        np.testing.assert_allclose(ln.get_ydata(), sub["delivery_prob_mean"].to_numpy())
    # error bars: each vertical segment spans mean ± ci95, the two routers' bars at one TTL side by side
    spans, bar_x = [], []
    for coll in ax.collections:
        for seg in coll.get_segments():
            spans.append(round(float(seg[1][1] - seg[0][1]) / 2, 6))
            bar_x.append(float(seg[0][0]))
    assert sorted(spans) == sorted(round(v, 6) for v in table["delivery_prob_ci95"])
    ttls = sorted(table["ttl"].unique())
    dodge = plots.DODGE * (max(ttls) - min(ttls))
    assert sorted(bar_x) == pytest.approx(sorted(t + d for t in ttls for d in (-dodge / 2, dodge / 2)))
    assert ax.get_xlabel() == "TTL (min)" and ax.get_ylabel() == "delivery_prob"  # units of ONE's TTL
    assert plots.figure_to_png(fig).startswith(PNG_MAGIC)


def test_metric_figure_long_format_and_columns_helpers():
    wide = wide_table()
    long = pd.DataFrame({"router": wide["router"], "ttl": wide["ttl"], "metric": "delivery_prob",
                         "mean": wide["delivery_prob_mean"], "ci95": wide["delivery_prob_ci95"]})
    fig = plots.metric_figure(long, "delivery_prob", x="ttl", by="router")
    assert legend_texts(fig) == ["Epidemic", "Spray"]
    assert plots.metric_columns(wide) == ["delivery_prob"]
    assert plots.parameter_columns(wide) == ["router", "ttl", "report_type"]


def test_metric_figure_errors_say_what_is_wrong():
    table = wide_table()
    with pytest.raises(KeyError, match="no column 'buffer'"):
        plots.metric_figure(table, "delivery_prob", x="buffer")
    with pytest.raises(KeyError):
        plots.metric_figure(table, "latency", x="ttl")
    # two routers at each ttl without by=: the plot would zig-zag, so it says what varies
    with pytest.raises(ValueError, match="router"):
        plots.metric_figure(table, "delivery_prob", x="ttl")


def test_metric_figure_categorical_x():
    table = wide_table().assign(ttl=lambda d: d["ttl"].astype(str) + "min")
    fig = plots.metric_figure(table, "delivery_prob", x="ttl", by="router")
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == ["180min", "300min", "60min"]
