"""Plots for the notebook: the live memory plot and mean ± 95 % CI metric plots.

Everything here draws on a ``matplotlib.figure.Figure`` with an Agg canvas (never pyplot's
global state), so it is safe to call from a background thread while a job runs; the panel and
the magic turn the figure into PNG bytes with :func:`figure_to_png` and put them into an
``ipywidgets.Image`` or an ``IPython.display.Image``. A live view redraws the memory plot several times a
second with :class:`LiveMemoryPlot` (one figure, only what changed drawn again: the same pixels as
:func:`memory_figure` at a third to a quarter of the CPU).
"""
from __future__ import annotations

import contextlib
import io
import math
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import FuncFormatter, MaxNLocator

from .system import MB

__all__ = [
    "LiveMemoryPlot",
    "memory_figure",
    "metric_figure",
    "figure_to_png",
    "memory_png",
    "planned_peak_mb",
    "axis_label",
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


@dataclass
class _MemoryState:
    """What one memory picture shows, computed once so the static and the live plot draw the same."""

    t: np.ndarray
    layers: list[np.ndarray]
    labels: list[str]
    colours: list[str]
    top: float  # the measured peak of the pool's total (MB)
    peak: float | None  # the predicted peak shown (MB)
    peak_line: np.ndarray | None  # its y values over t
    budget: float | None  # the last η budget (MB)
    budget_line: np.ndarray | None
    budget_on_scale: bool
    xlim: tuple[float, float]
    ylim_top: float


def _memory_state(memory: pd.DataFrame | None, predicted_peak_mb: float | None = None) -> _MemoryState | None:
    """The layers, lines and limits of a memory frame (None: nothing to draw yet).

    The predicted peak is ``predicted_peak_mb`` when given (the run's plan, which also covers the
    averaging phase), else a ``planned_peak_mb`` column, else the largest ``predicted_peak_mb`` of the
    pool's samples (its re-prediction of the pool phase as files finish).
    """
    if memory is None or len(memory) == 0 or "t" not in memory:
        return None
    data = downsample_memory(memory.sort_values("t") if not memory["t"].is_monotonic_increasing
                             else memory)
    if len(data) == 1:  # a single sample: show it as a short flat segment, not an invisible point
        data = pd.concat([data, data.assign(t=data["t"] + 1.0)], ignore_index=True)
    t = data["t"].to_numpy(dtype=float)
    workers = worker_columns(data)
    layers: list[np.ndarray] = []
    labels: list[str] = []
    colours: list[str] = []

    def column(name: str) -> np.ndarray:
        return np.nan_to_num(data[name].to_numpy(dtype=float), nan=0.0)

    if "kernel_mb" in data:
        layers.append(column("kernel_mb"))
        labels.append("kernel")
        colours.append(_KERNEL_COLOUR)
    if "helpers_mb" in data:
        helpers = column("helpers_mb")
        if (helpers > 0).any():
            layers.append(helpers)
            labels.append("pool helpers")
            colours.append(_HELPERS_COLOUR)
    if workers:
        ramp = _worker_colours(len(workers))
        for i, col in enumerate(workers):
            layers.append(column(col))
            labels.append(f"worker {col.split('_', 1)[1]}" if len(workers) <= MAX_LEGEND_WORKERS
                          else ("_nolegend_" if i else f"workers ({len(workers)} processes)"))
            colours.append(ramp[i])
    elif "workers_mb" in data:
        layers.append(column("workers_mb"))
        labels.append("workers")
        colours.append(_worker_colours(1)[0])

    top = float(np.nanmax(np.sum(layers, axis=0))) if layers else 0.0
    peak_line = None
    if predicted_peak_mb is not None and math.isfinite(predicted_peak_mb):
        peak_line = np.full(len(t), float(predicted_peak_mb))
    elif "planned_peak_mb" in data and data["planned_peak_mb"].notna().any():
        peak_line = np.full(len(t), float(data["planned_peak_mb"].max()))
    elif "predicted_peak_mb" in data and data["predicted_peak_mb"].notna().any():
        peak_line = data["predicted_peak_mb"].to_numpy(dtype=float)
    peak = float(np.nanmax(peak_line)) if peak_line is not None else None
    budget = _last_valid(data["budget_mb"]) if "budget_mb" in data else None
    data_top = max(top, peak or 0.0)
    ylim_top = max(data_top * 1.18, 1.0)
    budget_on_scale = budget is not None and budget <= max(data_top, 1.0) * 3.0
    if budget_on_scale:
        ylim_top = max(ylim_top, budget * 1.1)
    budget_line = data["budget_mb"].to_numpy(dtype=float) if budget is not None else None
    return _MemoryState(t, layers, labels, colours, top, peak, peak_line, budget, budget_line, budget_on_scale,
                        (min(0.0, float(t[0])), max(float(t[-1]), 1e-9)), _round_up(ylim_top))


def _round_up(value: float) -> float:
    """``value`` rounded up to two significant digits (1,327 -> 1,400): the y range stays put while the
    budget moves by a few MB from sample to sample, so a live plot draws its y axis again only now and then."""
    step = 10.0 ** (math.floor(math.log10(value)) - 1)
    return math.ceil(value / step - 1e-9) * step


def _memory_layout(width: float, height: float, title: str | None):
    """A figure with the memory plot's axes styled (no data yet): (fig, ax, bar, legend x)."""
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
    return fig, ax, bar, legend_x


def _structure(s: _MemoryState) -> tuple:
    """Which artists a state needs: when two frames agree on it, the second only moves the first's."""
    return (tuple(s.labels), tuple(s.colours), bool(s.layers) and s.top > 0, s.peak is not None and s.peak > 0,
            None if s.budget is None or not s.budget > 0 else s.budget_on_scale)


def _stack(layers: list[np.ndarray]) -> np.ndarray:
    """The upper edge of each stacked layer, as ``Axes.stackplot`` sums them."""
    y = np.vstack(layers)
    return np.cumsum(y, axis=0, dtype=np.promote_types(y.dtype, np.float32))


class _MemoryArtists:
    """The stacked areas, the total line, the measured/predicted peaks and the budget line of one axes.

    Built once by the constructor (as :func:`memory_figure` draws them); :meth:`update` moves them to
    a new state with the same :func:`_structure` (the live plot), which costs a fraction of new artists.
    """

    def __init__(self, ax, s: _MemoryState):
        self.structure = _structure(s)
        self.stacks: list = []
        self.total = self.marker = self.peak = self.budget = None
        t = s.t
        if s.layers:
            self.stacks = ax.stackplot(t, *s.layers, labels=s.labels, colors=s.colours, linewidth=0.0, alpha=0.9)
            for poly in self.stacks[1:]:
                poly.set_edgecolor("white")
                poly.set_linewidth(0.3)
            total = _stack(s.layers)[-1]
            self.total, = ax.plot(t, total, color="#1f3b57", linewidth=0.9, label="_nolegend_")
            if s.top > 0:
                i = int(np.nanargmax(total))
                self.marker, = ax.plot([t[i]], [s.top], marker="v", markersize=5, color="#1f3b57",
                                       linestyle="none", label=_measured_label(s))
        if s.peak is not None and s.peak > 0:
            self.peak, = ax.plot(t, s.peak_line, color=_PEAK_COLOUR, linestyle=(0, (4, 2)), linewidth=1.4,
                                 label=_predicted_label(s))
        if s.budget is not None and s.budget > 0:
            if s.budget_on_scale:
                self.budget, = ax.plot(t, s.budget_line, color=_BUDGET_COLOUR, linewidth=1.6, label=_budget_label(s))
            else:
                self.budget, = ax.plot([], [], color=_BUDGET_COLOUR, linewidth=1.6, label=_budget_label(s))

    @property
    def artists(self) -> list:
        return [a for a in (*self.stacks, self.total, self.marker, self.peak, self.budget) if a is not None]

    def update(self, s: _MemoryState) -> bool:
        """Move the artists to ``s``; False (nothing changed) when ``s`` needs other artists."""
        if _structure(s) != self.structure or (self.stacks and not hasattr(self.stacks[0], "set_data")):
            return False  # FillBetweenPolyCollection.set_data: matplotlib >= 3.10
        t = s.t
        if self.stacks:
            stack = _stack(s.layers)
            self.stacks[0].set_data(t, 0.0, stack[0, :])
            for i, poly in enumerate(self.stacks[1:]):
                poly.set_data(t, stack[i, :], stack[i + 1, :])
            total = stack[-1]
            self.total.set_data(t, total)
            if self.marker is not None:
                i = int(np.nanargmax(total))
                self.marker.set_data([t[i]], [s.top])
                self.marker.set_label(_measured_label(s))
        if self.peak is not None:
            self.peak.set_data(t, s.peak_line)
            self.peak.set_label(_predicted_label(s))
        if self.budget is not None:
            if s.budget_on_scale:
                self.budget.set_data(t, s.budget_line)
            self.budget.set_label(_budget_label(s))
        return True


def _measured_label(s: _MemoryState) -> str:
    return f"measured peak ({s.top:,.0f} MB)"


def _predicted_label(s: _MemoryState) -> str:
    return f"predicted peak ({s.peak:,.0f} MB)"


def _budget_label(s: _MemoryState) -> str:
    free = max(s.budget - s.top, 0)
    if s.budget_on_scale:
        return f"η budget ({s.budget:,.0f} MB,\n  {free:,.0f} MB free)"
    return f"η budget ({s.budget:,.0f} MB,\n  {free:,.0f} MB free;\n  off scale: see the bar)"


def _memory_legend(fig: Figure, ax, legend_x: float):
    handles, labels = ax.get_legend_handles_labels()
    return ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(legend_x, ax.get_position().y1),
                     bbox_transform=fig.transFigure, frameon=False, borderaxespad=0.0,
                     fontsize=_RC["legend.fontsize"], handlelength=1.6)


def _draw_empty(ax, bar) -> None:
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.text(0.5, 0.5, "no memory samples yet", transform=ax.transAxes,
            ha="center", va="center", color="#777777")
    bar.set_axis_off()


def memory_figure(memory: pd.DataFrame | None, *, title: str | None = None,
                  width: float = 7.5, height: float = 3.6, predicted_peak_mb: float | None = None) -> Figure:
    """Memory of the pool over time: kernel + each worker stacked, with the η budget and predicted peak.

    A thin bar beside the plot always shows the whole η budget (0 to budget) with the measured peak
    filled and the predicted peak marked, so the headroom is visible even when the budget is far
    above the data (the plot itself then stays zoomed on the data).

    ``memory`` has the monitor's columns (``t`` in s, ``kernel_mb``, ``worker_<pid>``…,
    ``budget_mb``, ``predicted_peak_mb``; MB). Missing columns are simply not drawn and an empty or
    ``None`` frame gives an empty, labelled plot. When the budget is far above what the pool uses
    (the usual case on a big machine) the y axis is kept on the data and the budget is written as
    an off-scale note instead of squashing the areas to nothing. ``predicted_peak_mb``: the run's
    planned peak (``Plan.predicted_peak_bytes`` in MB), drawn as the predicted peak when given.
    """
    fig, ax, bar, legend_x = _memory_layout(width, height, title)
    s = _memory_state(memory, predicted_peak_mb)
    if s is None:
        _draw_empty(ax, bar)
        return fig
    _MemoryArtists(ax, s)
    ax.set_xlim(*s.xlim)
    ax.set_ylim(0, s.ylim_top)
    _HeadroomBar(bar).update(s.budget, s.top, s.peak, s.ylim_top)
    _memory_legend(fig, ax, legend_x)
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


class _HeadroomBar:
    """A thin bar from 0 to the η budget: the measured peak filled, the predicted peak marked, and the
    range the main plot shows bracketed, so the headroom is visible however far the budget is.
    Built once, :meth:`update` moves its parts (the live plot updates it every frame)."""

    def __init__(self, bar):
        self.bar = bar
        bar.set_xlim(0, 1)
        bar.set_xticks([])
        bar.yaxis.tick_right()
        bar.yaxis.set_major_formatter(FuncFormatter(_mb_formatter))
        bar.tick_params(labelsize=_RC["ytick.labelsize"] - 1, length=2, pad=1)
        for side in ("top", "left", "bottom"):
            bar.spines[side].set_visible(False)
        bar.spines["right"].set_color(_BUDGET_COLOUR)
        self.whole = self._span(1.0, color="#f3f3f3", zorder=0)
        self.shown = self._span(0.18, color="#bdbdbd", zorder=1)  # the range the main plot shows
        self.used = self._span(1.0, color="#1f3b57", zorder=2, gid="headroom-used")
        self.predicted = bar.axhline(1, color=_PEAK_COLOUR, linewidth=1.6, zorder=3)
        self.budget = bar.axhline(1, color=_BUDGET_COLOUR, linewidth=2.0, zorder=3)

    def _span(self, width: float, **kwargs) -> Rectangle:
        """What ``axhspan(0, 1, xmax=width)`` draws, as a Rectangle on every matplotlib version (its height
        is set by :meth:`update`)."""
        rect = Rectangle((0.0, 0.0), width, 1.0, transform=self.bar.get_yaxis_transform(which="grid"), **kwargs)
        self.bar.add_patch(rect)
        return rect

    def _shapes(self) -> list:
        """What the bar draws besides text, in the order ``Axes.draw`` draws it (z-order, then creation)."""
        bar = self.bar
        marks = [tick.tick2line for tick in bar.yaxis.get_major_ticks(len(bar.get_yticks()))]
        parts = [self.whole, self.shown, self.used, self.predicted, self.budget]
        parts += [spine for spine in bar.spines.values() if spine.get_visible()]
        keyed = [(p.get_zorder(), i, p) for i, p in enumerate(parts)]
        keyed += [(bar.yaxis.get_zorder(), -1, mark) for mark in marks]
        return [p for _z, _i, p in sorted(keyed, key=lambda k: (k[0], k[1]))]

    @contextlib.contextmanager
    def shapes_hidden(self):
        """Draw only the bar's text (its tick labels and title) inside this block."""
        hidden = [p for p in (self.whole, self.shown, self.used, self.predicted, self.budget, *self.bar.spines.values())
                  if p.get_visible()]
        for part in hidden:
            part.set_visible(False)
        self.bar.tick_params(right=False)
        try:
            yield
        finally:
            for part in hidden:
                part.set_visible(True)
            self.bar.tick_params(right=True)

    def draw_shapes(self, renderer) -> None:
        """Draw the bar's shapes, tick marks and spine (not its text), e.g. over its text drawn alone."""
        bar = self.bar
        for tick, loc in zip(bar.yaxis.get_major_ticks(len(bar.get_yticks())), bar.get_yticks()):
            tick.update_position(loc)
        bar.patch.draw(renderer)
        for part in self._shapes():
            part.draw(renderer)

    def update(self, budget: float | None, used: float, predicted: float | None, shown_top: float) -> None:
        bar = self.bar
        self.texts: tuple = ()  # what the bar writes: when it stays, only the bar's shapes move
        if budget is None or not budget > 0:
            bar.set_axis_off()
            bar.set_title("")
            for part in (self.whole, self.shown, self.used, self.predicted, self.budget):
                part.set_visible(False)
            return
        bar.set_axis_on()
        bar.set_ylim(0, budget)
        bar.set_yticks([0, budget])
        self.whole.set_height(budget)
        self.shown.set_height(min(shown_top, budget))
        self.used.set_height(min(used, budget))
        self.budget.set_ydata([budget, budget])
        has_prediction = predicted is not None and predicted > 0
        if has_prediction:
            self.predicted.set_ydata([min(predicted, budget)] * 2)
        for part, visible in ((self.whole, True), (self.shown, True), (self.used, True),
                              (self.predicted, has_prediction), (self.budget, True)):
            part.set_visible(visible)
        share = used / budget
        title, colour = f"η\n{share:.0%}", _BUDGET_COLOUR if share > 0.9 else "#333333"
        bar.set_title(title, fontsize=_RC["legend.fontsize"], color=colour, pad=3)
        self.texts = (_mb_formatter(0), _mb_formatter(budget), title, colour)


class LiveMemoryPlot:
    """The memory plot redrawn several times a second for a live view, pixel for pixel :func:`memory_figure`.

    One figure per view, built once. A frame moves the data artists to the new samples (new artists only
    when a layer appears or goes) and draws the picture in layers on the same Agg canvas, because text is
    what costs (1-7 ms a label, ~50 per picture):

    - the background (title, y axis with its grid and labels) is drawn again only when the y range changes;
    - the headroom bar and the legend keep their pixels from the last frame; the bar's shapes are drawn
      again when its values move, its text only when it changes; the legend's labels only when they change;
    - the x axis, the stacked areas, the lines and the spines are drawn every frame.

    ``png(memory)`` gives the frame as PNG bytes; :attr:`figure` is the figure it draws on. Counters:
    ``frames``, ``background_draws``, ``legend_draws`` (the whole legend), ``bar_draws`` (the bar with its text).
    """

    def __init__(self, title: str | None = None, *, width: float = 7.5, height: float = 3.6):
        self.title = title
        self.width, self.height = width, height
        self.figure, self.ax, self.bar, legend_x = _memory_layout(width, height, title)
        self.canvas: FigureCanvasAgg = self.figure.canvas
        self._legend_x = legend_x
        self._bar = _HeadroomBar(self.bar)
        self.bar.set_animated(True)
        self.ax.xaxis.set_animated(True)
        for spine in self.ax.spines.values():
            spine.set_animated(True)
        w, h = (int(round(v)) for v in self.figure.bbox.size)
        # columns of the picture that only the bar, and only the legend, draw on (the rest is the main axes)
        self._bar_cols = slice(int(math.ceil(self.ax.bbox.x1)) + 1, int(math.floor(legend_x * w)) - 2)
        self._legend_cols = slice(self._bar_cols.stop, w)
        self._data: _MemoryArtists | None = None
        self._background: np.ndarray | None = None
        self._background_key: Any = None
        self._legend = None
        self._legend_key: Any = None
        self._legend_pixels: np.ndarray | None = None
        self._bar_values: Any = None
        self._bar_texts: Any = None
        self._bar_text_pixels: np.ndarray | None = None
        self._bar_pixels: np.ndarray | None = None
        self.frames = self.background_draws = self.legend_draws = self.bar_draws = 0

    def png(self, memory: pd.DataFrame | None, *, predicted_peak_mb: float | None = None) -> bytes:
        """Draw ``memory`` (the frame so far) and return the picture as PNG bytes."""
        s = _memory_state(memory, predicted_peak_mb)
        if s is None:
            return memory_png(None, title=self.title, width=self.width, height=self.height)
        self.draw(s)
        return _encode_png(self.canvas)

    def _pixels(self) -> np.ndarray:
        return np.asarray(self.canvas.buffer_rgba())

    def _clear(self, bbox, pad: int = 1) -> None:
        """Put the background back inside ``bbox`` (display coordinates) and ``pad`` pixels around it."""
        pixels = self._pixels()
        h, w = pixels.shape[:2]
        c0, c1 = max(0, int(math.floor(bbox.x0)) - pad), min(w, int(math.ceil(bbox.x1)) + pad)
        r0, r1 = max(0, h - int(math.ceil(bbox.y1)) - pad), min(h, h - int(math.floor(bbox.y0)) + pad)
        pixels[r0:r1, c0:c1] = self._background[r0:r1, c0:c1]

    def draw(self, s: _MemoryState) -> None:
        """Draw one frame on :attr:`canvas` (its pixels are then in ``canvas.buffer_rgba()``)."""
        ax, canvas = self.ax, self.canvas
        if self._data is None or not self._data.update(s):
            if self._data is not None:
                for artist in self._data.artists:
                    artist.remove()
            self._data = _MemoryArtists(ax, s)
            for artist in self._data.artists:
                artist.set_animated(True)
            self._legend_key = None
        ax.set_xlim(*s.xlim)
        ax.set_ylim(0, s.ylim_top)
        if ax.get_ylim() != self._background_key or self._background is None:
            canvas.draw()  # what is not animated: the axes' patch, the y axis and its grid, the title
            self._background = self._pixels().copy()
            self._background_key = ax.get_ylim()
            self.background_draws += 1
        else:
            self._pixels()[...] = self._background
        renderer = canvas.get_renderer()
        self._draw_bar(s, renderer)
        self._draw_legend(renderer)
        # in the order (z-order) of memory_figure's axes: the x axis, the areas, the lines, the spines
        ax.xaxis.draw(renderer)
        for artist in sorted(self._data.artists, key=lambda a: a.get_zorder()):
            artist.draw(renderer)
        for spine in ax.spines.values():
            spine.draw(renderer)
        self.frames += 1

    def _draw_bar(self, s: _MemoryState, renderer) -> None:
        values = (s.budget, s.top, s.peak, s.ylim_top)
        pixels, cols, bar = self._pixels(), self._bar_cols, self._bar
        if values == self._bar_values:
            pixels[:, cols] = self._bar_pixels
            return
        bar.update(*values)
        if not bar.texts:  # no budget: the bar is off
            self.bar.draw(renderer)
        else:
            if bar.texts != self._bar_texts:
                # its text (tick labels, title) on the background, without the shapes: kept while the text stays
                with bar.shapes_hidden():
                    self.bar.draw(renderer)
                self._bar_text_pixels = pixels[:, cols].copy()
                self.bar_draws += 1
            else:
                pixels[:, cols] = self._bar_text_pixels
            bar.draw_shapes(renderer)
        self._bar_values, self._bar_texts = values, bar.texts
        self._bar_pixels = pixels[:, cols].copy()

    def _draw_legend(self, renderer) -> None:
        ax, pixels, cols = self.ax, self._pixels(), self._legend_cols
        handles, labels = ax.get_legend_handles_labels()
        key = tuple(label.count("\n") for label in labels)
        if key != self._legend_key or self._legend is None:
            self._legend = _memory_legend(self.figure, ax, self._legend_x)
            self._legend.set_animated(True)
            self._legend.draw(renderer)
            self._legend_key = key
            self.legend_draws += 1
        else:
            pixels[:, cols] = self._legend_pixels
            # same entries, same number of lines: the entries stay where they are; draw the changed labels
            for text, label in zip(self._legend.get_texts(), labels):
                if text.get_text() != label:
                    self._clear(text.get_window_extent(renderer))
                    text.set_text(label)
                    self._clear(text.get_window_extent(renderer))
                    text.draw(renderer)
        self._legend_pixels = pixels[:, cols].copy()


def _encode_png(canvas: FigureCanvasAgg) -> bytes:
    """The canvas' pixels as an RGB PNG with fast compression (a live frame: ~10 ms instead of ~20)."""
    from PIL import Image

    rgba = np.asarray(canvas.buffer_rgba())
    buf = io.BytesIO()
    Image.fromarray(rgba[..., :3]).save(buf, format="png", compress_level=1)
    return buf.getvalue()


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


#: axis labels with units of ONE's usual sweep parameters (a config's ``grouping_labels`` come first)
DEFAULT_LABELS = {"ttl": "TTL (min)", "buffer": "buffer (MB)"}
#: error bars of different lines at one x are moved apart by this fraction of the x range
DODGE = 0.012


def axis_label(name: str, labels: Mapping[str, str] | None = None) -> str:
    """The axis label of a parameter: ``labels`` first, then "TTL (min)", "buffer (MB)", then the name."""
    if labels and name in labels:
        return labels[name]
    return DEFAULT_LABELS.get(name, str(name).replace("_", " "))


def metric_figure(table: pd.DataFrame, metric: str, *, x: str, by: str | None = None,
                  title: str | None = None, width: float = 6.4, height: float = 3.8,
                  labels: Mapping[str, str] | None = None) -> Figure:
    """Mean of ``metric`` against parameter ``x`` with 95 % CI error bars, one line per ``by`` value
    (error bars at one x dodged apart; axes labelled with units, see :func:`axis_label`).

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
    ax.set_xlabel(axis_label(x, labels), fontsize=_RC["axes.labelsize"])
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
    xs_all = (pd.to_numeric(frame[x]).to_numpy(dtype=float) if x_numeric
              else np.arange(len(categories), dtype=float))
    span = float(np.nanmax(xs_all) - np.nanmin(xs_all)) if len(xs_all) else 0.0
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
        colour = _PALETTE[i % len(_PALETTE)]
        ax.plot(xs, ys, color=colour, marker=markers[i % len(markers)], markersize=4, linewidth=1.3, label=label)
        if yerr is not None:  # the lines' bars at one x side by side, not on top of each other
            offset = (i - (len(groups) - 1) / 2) * DODGE * (span or 1.0)
            ax.errorbar(xs + offset, ys, yerr=yerr, fmt="none", ecolor=colour, capsize=3, elinewidth=0.9,
                        label="_nolegend_")
    if categories is not None:
        ax.set_xticks(range(len(categories)))
        ax.set_xticklabels(categories, rotation=30 if len(categories) > 6 else 0, ha="right"
                           if len(categories) > 6 else "center")
    if by is not None:
        ncol = 1 if len(groups) <= 8 else 2
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
                  borderaxespad=0.0, ncol=ncol, title=axis_label(by, labels))
    fig.tight_layout()
    return fig


def planned_peak_mb(source: Any) -> float | None:
    """The planned peak of a run or its result (``.plan.predicted_peak_bytes``, averaging included)
    in MB, or None when it has no plan (e.g. a figures run)."""
    peak = getattr(getattr(source, "plan", None), "predicted_peak_bytes", None)
    return peak / MB if isinstance(peak, (int, float)) and peak > 0 else None


def figure_to_png(fig: Figure, *, dpi: int | None = None) -> bytes:
    """Render a figure to PNG bytes with Agg (no pyplot, no display)."""
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    buf = io.BytesIO()
    canvas.print_png(buf) if dpi is None else fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def memory_png(memory: pd.DataFrame | None, *, title: str | None = None, predicted_peak_mb: float | None = None,
               width: float = 7.5, height: float = 3.6) -> bytes:
    """A memory frame as a PNG picture (:func:`memory_figure`; a live view uses :class:`LiveMemoryPlot`)."""
    return figure_to_png(memory_figure(memory, title=title, predicted_peak_mb=predicted_peak_mb,
                                       width=width, height=height))
