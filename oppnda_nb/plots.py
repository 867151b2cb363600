"""Plots for the notebook: the live memory plot and mean ± 95 % CI metric plots.

Everything here draws on a ``matplotlib.figure.Figure`` with an Agg canvas (never pyplot's
global state), so it is safe to call from a background thread while a job runs; the panel and
the magic turn the figure into PNG bytes with :func:`figure_to_png` and put them into an
``ipywidgets.Image`` or an ``IPython.display.Image``.
"""
from __future__ import annotations

import io
import math
import re
from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

__all__ = [
    "memory_figure",
    "metric_figure",
    "figure_to_png",
    "memory_png",
    "downsample_memory",
    "metric_columns",
    "MAX_POINTS",
]

#: Most rows drawn per memory plot; longer frames are reduced per time bin (keeping peaks).
MAX_POINTS = 600
#: More worker columns than this are drawn in one colour family with a single legend entry.
MAX_LEGEND_WORKERS = 8

_WORKER_RE = re.compile(r"^worker_(\d+)$")

# A colour-blind-safe palette (Okabe & Ito) for lines; workers use a sequential blue ramp.
_PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]
_KERNEL_COLOUR = "#9e9e9e"
_HELPERS_COLOUR = "#cfcfcf"
_BUDGET_COLOUR = "#C62828"
_PEAK_COLOUR = "#E69F00"

_RC = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
}


def _new_figure(width: float = 7.5, height: float = 3.6, dpi: int = 110) -> Figure:
    """A pyplot-free figure with an Agg canvas attached (thread-safe to draw)."""
    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def _style_axes(ax) -> None:
    ax.tick_params(labelsize=_RC["xtick.labelsize"])
    ax.xaxis.label.set_fontsize(_RC["axes.labelsize"])
    ax.yaxis.label.set_fontsize(_RC["axes.labelsize"])
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)
    ax.grid(True, axis="y", color="#e0e0e0", linewidth=0.6)
    ax.set_axisbelow(True)


def _mb_formatter(value: float, _pos=None) -> str:
    if abs(value) >= 10_000:
        return f"{value / 1024:,.0f} GB"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10 or value == 0:
        return f"{value:.0f}"
    return f"{value:.1f}"


def _seconds_formatter(value: float, _pos=None) -> str:
    if value >= 120:
        minutes, seconds = divmod(int(round(value)), 60)
        return f"{minutes}:{seconds:02d}"
    return f"{value:g}"


def worker_columns(memory: pd.DataFrame) -> list[str]:
    """The ``worker_<pid>`` columns, in order of the process's first sample (stable colours)."""
    cols = [c for c in memory.columns if isinstance(c, str) and _WORKER_RE.match(c)]
    if not cols or memory.empty:
        return cols

    def first_seen(col: str) -> float:
        idx = np.flatnonzero(memory[col].notna().to_numpy())
        return float(idx[0]) if idx.size else math.inf

    return sorted(cols, key=lambda c: (first_seen(c), int(_WORKER_RE.match(c).group(1))))


def downsample_memory(memory: pd.DataFrame, max_points: int = MAX_POINTS) -> pd.DataFrame:
    """Reduce a memory frame to at most ``max_points`` rows by time bins, keeping each bin's peak.

    In each bin the row with the largest pool total (kernel + workers) is kept, so peaks survive
    and the stacked areas stay consistent (a whole row, not per-column maxima). The last row is
    always kept so the plot reaches "now".
    """
    n = len(memory)
    if n <= max_points or max_points < 2:
        return memory
    total = _pool_total(memory).to_numpy(dtype=float)
    total = np.where(np.isnan(total), -np.inf, total)
    bins = (np.arange(n) * (max_points - 1)) // n
    # position of the max total within each bin (bins are contiguous and sorted)
    order = np.lexsort((-total, bins))
    first_of_bin = np.r_[True, bins[order][1:] != bins[order][:-1]]
    keep = np.union1d(order[first_of_bin], [0, n - 1])
    return memory.iloc[keep]


def _pool_total(memory: pd.DataFrame) -> pd.Series:
    kernel = memory["kernel_mb"] if "kernel_mb" in memory else pd.Series(0.0, index=memory.index)
    workers = worker_columns(memory)
    if workers:
        wsum = memory[workers].fillna(0.0).sum(axis=1)
    elif "workers_mb" in memory:
        wsum = memory["workers_mb"].fillna(0.0)
    else:
        wsum = pd.Series(0.0, index=memory.index)
    helpers = memory["helpers_mb"].fillna(0.0) if "helpers_mb" in memory else 0.0
    return kernel.fillna(0.0) + helpers + wsum


def _last_valid(series: pd.Series) -> float | None:
    values = series.dropna()
    return float(values.iloc[-1]) if len(values) else None


def memory_figure(memory: pd.DataFrame | None, *, title: str | None = None,
                  width: float = 7.5, height: float = 3.6) -> Figure:
    """Memory of the pool over time: kernel + each worker stacked, with the η budget and predicted peak.

    A thin bar beside the plot always shows the whole η budget (0 to budget) with the measured peak
    filled and the predicted peak marked, so the headroom is visible even when the budget is far
    above the data (the plot itself then stays zoomed on the data).

    ``memory`` has the monitor's columns (``t`` in s, ``kernel_mb``, ``worker_<pid>``…,
    ``budget_mb``, ``predicted_peak_mb``; MB). Missing columns are simply not drawn and an empty or
    ``None`` frame gives an empty, labelled plot. When the budget is far above what the pool uses
    (the usual case on a big machine) the y axis is kept on the data and the budget is written as
    an off-scale note instead of squashing the areas to nothing.
    """
    fig = _new_figure(width, height)
    ax, bar, legend_x = _memory_axes(fig, width, height)
    _style_axes(ax)
    ax.set_xlabel("time since start (s)", fontsize=_RC["axes.labelsize"])
    ax.set_ylabel("memory (MB)", fontsize=_RC["axes.labelsize"])
    ax.yaxis.set_major_formatter(FuncFormatter(_mb_formatter))
    ax.xaxis.set_major_formatter(FuncFormatter(_seconds_formatter))
    ax.xaxis.set_major_locator(MaxNLocator(nbins=8))
    if title:
        ax.set_title(title, loc="left", fontsize=_RC["axes.titlesize"])

    if memory is None or len(memory) == 0 or "t" not in memory:
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.text(0.5, 0.5, "no memory samples yet", transform=ax.transAxes,
                ha="center", va="center", color="#777777")
        bar.set_axis_off()
        return fig

    data = downsample_memory(memory.sort_values("t") if not memory["t"].is_monotonic_increasing
                             else memory)
    if len(data) == 1:  # a single sample: show it as a short flat segment, not an invisible point
        data = pd.concat([data, data.assign(t=data["t"] + 1.0)], ignore_index=True)
    t = data["t"].to_numpy(dtype=float)
    workers = worker_columns(data)
    layers: list[np.ndarray] = []
    labels: list[str] = []
    colours: list[str] = []

    if "kernel_mb" in data:
        layers.append(data["kernel_mb"].fillna(0.0).to_numpy(dtype=float))
        labels.append("kernel")
        colours.append(_KERNEL_COLOUR)
    if "helpers_mb" in data and data["helpers_mb"].fillna(0.0).gt(0).any():
        layers.append(data["helpers_mb"].fillna(0.0).to_numpy(dtype=float))
        labels.append("pool helpers")
        colours.append(_HELPERS_COLOUR)
    if workers:
        ramp = _worker_colours(len(workers))
        for i, col in enumerate(workers):
            layers.append(data[col].fillna(0.0).to_numpy(dtype=float))
            labels.append(f"worker {col.split('_', 1)[1]}" if len(workers) <= MAX_LEGEND_WORKERS
                          else ("_nolegend_" if i else f"workers ({len(workers)} processes)"))
            colours.append(ramp[i])
    elif "workers_mb" in data:
        layers.append(data["workers_mb"].fillna(0.0).to_numpy(dtype=float))
        labels.append("workers")
        colours.append(_worker_colours(1)[0])

    top = 0.0
    if layers:
        stacks = ax.stackplot(t, *layers, labels=labels, colors=colours, linewidth=0.0,
                              alpha=0.9, step=None)
        for poly in stacks[1:]:
            poly.set_edgecolor("white")
            poly.set_linewidth(0.3)
        total = np.sum(layers, axis=0)
        top = float(np.nanmax(total)) if total.size else 0.0
        ax.plot(t, total, color="#1f3b57", linewidth=0.9, label="_nolegend_")
        if total.size and top > 0:
            i = int(np.nanargmax(total))
            ax.plot([t[i]], [top], marker="v", markersize=5, color="#1f3b57", linestyle="none",
                    label=f"measured peak ({top:,.0f} MB)")

    peak = (float(data["predicted_peak_mb"].max()) if "predicted_peak_mb" in data
            and data["predicted_peak_mb"].notna().any() else None)
    budget = _last_valid(data["budget_mb"]) if "budget_mb" in data else None
    data_top = max(top, peak or 0.0)
    ylim_top = max(data_top * 1.18, 1.0)
    budget_on_scale = budget is not None and budget <= max(data_top, 1.0) * 3.0
    if budget_on_scale:
        ylim_top = max(ylim_top, budget * 1.1)

    if peak is not None and peak > 0:
        ax.plot(t, data["predicted_peak_mb"].to_numpy(dtype=float), color=_PEAK_COLOUR,
                linestyle=(0, (4, 2)), linewidth=1.4, label=f"predicted peak ({peak:,.0f} MB)")
    if budget is not None and budget > 0:
        if budget_on_scale:
            ax.plot(t, data["budget_mb"].to_numpy(dtype=float), color=_BUDGET_COLOUR,
                    linewidth=1.6, label=f"η budget ({budget:,.0f} MB,\n  {max(budget - top, 0):,.0f} MB free)")
        else:
            ax.plot([], [], color=_BUDGET_COLOUR, linewidth=1.6,
                    label=f"η budget ({budget:,.0f} MB,\n  {max(budget - top, 0):,.0f} MB free;\n"
                          "  off scale: see the bar)")

    ax.set_xlim(min(0.0, float(t[0])), max(float(t[-1]), 1e-9))
    ax.set_ylim(0, ylim_top)
    _headroom_bar(bar, budget, top, peak, ylim_top)
    ax.legend(loc="upper left", bbox_to_anchor=(legend_x, ax.get_position().y1), bbox_transform=fig.transFigure,
              frameon=False, borderaxespad=0.0, fontsize=_RC["legend.fontsize"], handlelength=1.6)
    return fig


def _memory_axes(fig: Figure, width: float, height: float):
    """The memory plot's axes, laid out by hand in inches (tight_layout cannot place the bar and the
    legend): the plot, a thin headroom bar beside it, then the legend. Returns (ax, bar, legend x)."""
    left, right_legend, bar_w, gap, bar_labels = 0.72, 2.0, 0.16, 0.12, 0.55
    bottom, top = 0.5, 0.32
    x1 = width - right_legend - bar_labels - bar_w - gap
    ax = fig.add_axes((left / width, bottom / height, (x1 - left) / width, (height - bottom - top) / height))
    bar = fig.add_axes(((x1 + gap) / width, bottom / height, bar_w / width, (height - bottom - top) / height))
    return ax, bar, (width - right_legend + 0.05) / width


def _headroom_bar(bar, budget: float | None, used: float, predicted: float | None, shown_top: float) -> None:
    """A thin bar from 0 to the η budget: the measured peak filled, the predicted peak marked, and the
    range the main plot shows bracketed, so the headroom is visible however far the budget is."""
    if budget is None or not budget > 0:
        bar.set_axis_off()
        return
    bar.set_ylim(0, budget)
    bar.set_xlim(0, 1)
    bar.set_xticks([])
    bar.yaxis.tick_right()
    bar.set_yticks([0, budget])
    bar.yaxis.set_major_formatter(FuncFormatter(_mb_formatter))
    bar.tick_params(labelsize=_RC["ytick.labelsize"] - 1, length=2, pad=1)
    for side in ("top", "left", "bottom"):
        bar.spines[side].set_visible(False)
    bar.spines["right"].set_color(_BUDGET_COLOUR)
    bar.axhspan(0, budget, color="#f3f3f3", zorder=0)
    bar.axhspan(0, min(shown_top, budget), xmin=0.0, xmax=0.18, color="#bdbdbd", zorder=1)  # the main plot's range
    bar.axhspan(0, min(used, budget), color="#1f3b57", zorder=2, gid="headroom-used")
    if predicted is not None and predicted > 0:
        bar.axhline(min(predicted, budget), color=_PEAK_COLOUR, linewidth=1.6, zorder=3)
    bar.axhline(budget, color=_BUDGET_COLOUR, linewidth=2.0, zorder=3)
    share = used / budget
    bar.set_title(f"η\n{share:.0%}", fontsize=_RC["legend.fontsize"], color=_BUDGET_COLOUR if share > 0.9 else "#333333",
                  pad=3)



def _worker_colours(n: int) -> list[str]:
    """Distinguishable blues/teals for stacked workers (alternating light/dark so edges show)."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    cmap = colormaps["GnBu"]
    if n == 1:
        return [to_hex(cmap(0.65))]
    positions = np.linspace(0.35, 0.9, n)
    # interleave so neighbours differ more
    order = np.r_[positions[0::2], positions[1::2]]
    return [to_hex(cmap(p)) for p in order[:n]]


# ---------------------------------------------------------------------------- metric plots

_MEAN_SUFFIXES = ("_mean", "_avg", "_average")
_CI_SUFFIXES = ("_ci95", "_ci", "_ci_95", "_ci95_half", "_halfwidth")


def metric_columns(table: pd.DataFrame) -> list[str]:
    """Metrics that have a mean column in a wide averaged table (``<metric>_mean``)."""
    out = []
    for col in table.columns:
        if not isinstance(col, str):
            continue
        for suffix in _MEAN_SUFFIXES:
            if col.endswith(suffix):
                name = col[: -len(suffix)]
                if name and name not in out:
                    out.append(name)
                break
    if not out and {"metric", "mean"} <= set(table.columns):
        out = [str(m) for m in pd.unique(table["metric"])]
    return out


_STAT_SUFFIXES = _MEAN_SUFFIXES + _CI_SUFFIXES + ("_std", "_n", "_ci_low", "_ci_high", "_count",
                                                  "_min", "_max", "_sem")
_STAT_COLUMNS = {"metric", "mean", "std", "n", "ci95", "ci", "ci_low", "ci_high", "value",
                 "n_files", "n_runs", "files", "count"}


def parameter_columns(table: pd.DataFrame) -> list[str]:
    """The grouping-parameter columns of an averaged table (what is neither a statistic nor a metric)."""
    metrics = set(metric_columns(table))
    out = []
    for col in table.columns:
        name = str(col)
        if name in _STAT_COLUMNS or name in metrics:
            continue
        if any(name.endswith(s) and name[: -len(s)] in metrics for s in _STAT_SUFFIXES):
            continue
        out.append(name)
    return out


def _find_column(table: pd.DataFrame, metric: str, suffixes: Sequence[str]) -> str | None:
    for suffix in suffixes:
        if f"{metric}{suffix}" in table.columns:
            return f"{metric}{suffix}"
    return None


def _metric_frame(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Normalise a wide (``<metric>_mean``…) or long (``metric``, ``mean``…) table to mean/ci columns."""
    mean_col = _find_column(table, metric, _MEAN_SUFFIXES)
    if mean_col is not None:
        ci_col = _find_column(table, metric, _CI_SUFFIXES)
        out = table.copy()
        out["__mean"] = pd.to_numeric(table[mean_col], errors="coerce")
        out["__ci"] = pd.to_numeric(table[ci_col], errors="coerce") if ci_col else np.nan
        return out
    if "metric" in table.columns and "mean" in table.columns:
        sub = table[table["metric"].astype(str) == metric].copy()
        if sub.empty:
            raise KeyError(metric)
        ci_col = next((c for c in ("ci95", "ci", "ci_95") if c in sub.columns), None)
        sub["__mean"] = pd.to_numeric(sub["mean"], errors="coerce")
        sub["__ci"] = pd.to_numeric(sub[ci_col], errors="coerce") if ci_col else np.nan
        return sub
    if metric in table.columns:
        out = table.copy()
        out["__mean"] = pd.to_numeric(table[metric], errors="coerce")
        out["__ci"] = np.nan
        return out
    raise KeyError(metric)


def _sort_key(values: pd.Series) -> pd.Series:
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().all():
        return numeric
    return values.astype(str)


def metric_figure(table: pd.DataFrame, metric: str, *, x: str, by: str | None = None,
                  title: str | None = None, width: float = 6.4, height: float = 3.8) -> Figure:
    """Mean of ``metric`` against parameter ``x`` with 95 % CI error bars, one line per ``by`` value.

    ``table`` is an averaged table: wide (``<metric>_mean``, ``<metric>_ci95``, parameter columns)
    or long (``metric``, ``mean``, ``ci95``). Raises ``KeyError`` naming what is missing.
    """
    if x not in table.columns:
        raise KeyError(f"no column {x!r} (have: {', '.join(map(str, table.columns))})")
    if by is not None and by not in table.columns:
        raise KeyError(f"no column {by!r} (have: {', '.join(map(str, table.columns))})")
    frame = _metric_frame(table, metric)
    frame = frame[frame["__mean"].notna()]
    if frame.empty:
        raise KeyError(f"{metric!r} has no value in this table")
    keys = [x] if by is None else [by, x]
    if frame.duplicated(subset=keys).any():
        others = [p for p in parameter_columns(frame) if p not in keys and not str(p).startswith("__")
                  and frame[p].nunique(dropna=True) > 1]
        raise ValueError(
            f"several rows per {' and '.join(keys)} for {metric!r}"
            + (f": the table also varies in {', '.join(others)}; pass by= one of them or filter the table"
               if others else "; filter the table first"))

    fig = _new_figure(width, height)
    ax = fig.add_subplot(1, 1, 1)
    _style_axes(ax)
    ax.set_xlabel(x, fontsize=_RC["axes.labelsize"])
    ax.set_ylabel(metric, fontsize=_RC["axes.labelsize"])
    ax.set_title(title or f"{metric}: mean ± 95% CI", loc="left",
                 fontsize=_RC["axes.titlesize"])

    groups = [(None, frame)] if by is None else list(
        frame.groupby(frame[by], sort=False, dropna=False))
    if by is not None:
        groups.sort(key=lambda kv: (_sort_key(pd.Series([kv[0]])).iloc[0],))
    x_numeric = pd.to_numeric(frame[x], errors="coerce").notna().all()
    categories = None
    if not x_numeric:
        categories = sorted(pd.unique(frame[x].astype(str)))

    markers = "osD^vP*Xh"
    for i, (key, sub) in enumerate(groups):
        sub = sub.assign(__x=_sort_key(sub[x])).sort_values("__x")
        if x_numeric:
            xs = pd.to_numeric(sub[x]).to_numpy(dtype=float)
        else:
            xs = np.array([categories.index(str(v)) for v in sub[x]], dtype=float)
        ys = sub["__mean"].to_numpy(dtype=float)
        ci = sub["__ci"].to_numpy(dtype=float)
        yerr = None if np.all(np.isnan(ci)) else np.nan_to_num(ci, nan=0.0)
        label = None if by is None else str(key)
        ax.errorbar(xs, ys, yerr=yerr, color=_PALETTE[i % len(_PALETTE)],
                    marker=markers[i % len(markers)], markersize=4, linewidth=1.3,
                    capsize=3, elinewidth=0.9, label=label)
    if categories is not None:
        ax.set_xticks(range(len(categories)))
        ax.set_xticklabels(categories, rotation=30 if len(categories) > 6 else 0, ha="right"
                           if len(categories) > 6 else "center")
    if by is not None:
        ncol = 1 if len(groups) <= 8 else 2
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
                  borderaxespad=0.0, ncol=ncol, title=by)
    fig.tight_layout()
    return fig


def figure_to_png(fig: Figure, *, dpi: int | None = None) -> bytes:
    """Render a figure to PNG bytes with Agg (no pyplot, no display)."""
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    buf = io.BytesIO()
    canvas.print_png(buf) if dpi is None else fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def memory_png(memory: pd.DataFrame | None, *, title: str | None = None) -> bytes:
    """Shortcut used by the live views: memory frame → PNG bytes."""
    return figure_to_png(memory_figure(memory, title=title))
