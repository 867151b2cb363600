"""The analysis figures as plain functions: data in, a matplotlib ``Figure`` out (for restyling).

No pyplot: every figure has its own Agg canvas, so they are safe in threads and worker processes.
Each returned figure carries ``fig.oppnda_data``, a DataFrame of exactly what was drawn (means,
CI half-widths, the surface grid, the correlation matrix...), so a notebook can check or re-plot it.
Colours are Okabe & Ito's colour-blind-safe palette unless a style names a matplotlib colormap.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter
from mpl_toolkits.mplot3d import Axes3D  # noqa: F401  (registers the 3d projection)

from ..errors import OppndaError
from ..plots import axis_label

__all__ = ["PALETTE", "line", "surface", "violin", "heatmap", "pairplot", "distribution", "timeseries",
           "colormap", "axis_label", "tick_formatter"]

#: Okabe & Ito (2008): distinguishable with every common colour-vision deficiency
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]
_MARKERS = ["o", "s", "^", "D", "v", "*", "P", "X"]
#: seaborn-only colormap names OppNDA configs use -> the closest matplotlib colormap
_SEABORN_CMAPS = {"crest": "viridis_r", "rocket": "magma", "mako": "viridis", "icefire": "coolwarm",
                  "vlag": "RdBu_r"}
#: seaborn's "flare" (light orange -> purple), rebuilt from a few of its colours
_FLARE = ["#edb081", "#e98d6b", "#e3685c", "#d14a61", "#b13c6c", "#8f3371", "#6c2b6d", "#4a2466"]


def _figure(size: Sequence[float], dpi: float = 100) -> Figure:
    fig = Figure(figsize=(float(size[0]), float(size[1])), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def colormap(name: str | None, default: str = "viridis"):
    """A matplotlib colormap for a config's name (seaborn-only names mapped; unknown -> ``default``)."""
    if name in ("flare", "flare_r"):
        return LinearSegmentedColormap.from_list(name, _FLARE if name == "flare" else _FLARE[::-1])
    name = _SEABORN_CMAPS.get(name, name) if name else default
    try:
        return colormaps[name]
    except KeyError:
        return colormaps[default]


def _colours(n: int, palette: str | None = None) -> list:
    """n categorical colours: Okabe-Ito, or samples of a named colormap when the style asks for one."""
    if palette:
        name = _SEABORN_CMAPS.get(palette, palette)
        if name in colormaps:
            cm = colormaps[name]
            return [cm(v) for v in (np.linspace(0.1, 0.9, n) if n > 1 else [0.5])]
    return [PALETTE[i % len(PALETTE)] for i in range(n)]


def metric_label(metric: str) -> str:
    """OppNDA's metric label: ``delivery_prob`` -> ``Delivery Prob``."""
    return metric.replace("_", " ").title()


def _fmt_number(v: float) -> str:
    return f"{v:g}" if abs(v) < 1e6 else f"{v:.3g}"


def tick_formatter(grouping: str):
    """Tick labels for a grouping: buffer sizes as ``2M``/``5M``/``10M`` (ONE's own notation)."""
    if grouping.lower().startswith("buffer"):
        return FuncFormatter(lambda v, _p=None: f"{_fmt_number(v)}M")
    return FuncFormatter(lambda v, _p=None: _fmt_number(v))


def _style(ax, fonts: Mapping[str, float] | None = None) -> None:
    fonts = fonts or {}
    ax.tick_params(labelsize=fonts.get("ticks", 9))
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.grid(True, color="#e4e4e4", linewidth=0.6)
    ax.set_axisbelow(True)


def _stat_columns(table: pd.DataFrame, metric: str) -> tuple[str, str | None]:
    """(mean column, ci column) of a metric in a wide table: ``<m>_mean``/``<m>_ci95``, or plain ``<m>``."""
    if f"{metric}_mean" in table.columns:
        return f"{metric}_mean", (f"{metric}_ci95" if f"{metric}_ci95" in table.columns else None)
    if metric in table.columns:
        return metric, (f"{metric}_ci95" if f"{metric}_ci95" in table.columns else None)
    have = sorted({c[:-5] for c in table.columns if isinstance(c, str) and c.endswith("_mean")}
                  | {c for c in table.columns if isinstance(c, str) and pd.api.types.is_numeric_dtype(table[c])})
    raise OppndaError(f"No metric {metric!r} in the table; have: {', '.join(have[:30]) or 'none'}.")


def _need(table: pd.DataFrame, *cols: str | None) -> None:
    for c in cols:
        if c is not None and c not in table.columns:
            raise OppndaError(f"No column {c!r} in the table (have: {', '.join(map(str, table.columns[:30]))}).")


def _numeric(values) -> np.ndarray:
    return pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float)


def _sorted_unique(values: Iterable) -> list:
    vals = list(pd.unique(pd.Series(list(values))))
    try:
        return sorted(vals)
    except TypeError:
        return sorted(vals, key=str)


# ------------------------------------------------------------------------------------- line

def line(table: pd.DataFrame, metric: str, by: str, hue: str | None = "router", *, ci: bool = True,
         band: bool = True, labels: Mapping[str, str] | None = None, title: str | None = None,
         size: Sequence[float] = (7.0, 4.4), markers: Sequence[str] = _MARKERS, marker_size: float = 6.0,
         fonts: Mapping[str, float] | None = None, palette: str | None = None, dodge: float = 0.012) -> Figure:
    """``metric``'s mean against grouping ``by``, one line per ``hue`` value, with its 95 % CI.

    ``table``: a wide averaged table (``by``, ``hue``, ``<metric>_mean``, ``<metric>_ci95``; e.g.
    ``Run(...).run().tables["ttl_average"]``) or a plain one with a ``metric`` column (no CI).
    The CI is drawn twice: a translucent band (``band``) and error bars at the same x, dodged
    sideways by ``dodge`` × the x range so that routers at one x do not hide each other. The
    line itself is at the true x; ``fig.oppnda_data`` holds hue, x, mean, ci95.
    """
    _need(table, by, hue)
    mean_col, ci_col = _stat_columns(table, metric)
    fonts = dict(fonts or {})
    frame = table.copy()
    frame["__x"] = _numeric(frame[by])
    if frame["__x"].isna().all():
        raise OppndaError(f"Column {by!r} has no numeric values to put on an x axis.")
    frame["__y"] = _numeric(frame[mean_col])
    frame["__ci"] = _numeric(frame[ci_col]) if ci_col else np.nan
    frame = frame[frame["__x"].notna() & frame["__y"].notna()]
    keys = [by] if hue is None else [hue, by]
    if frame.duplicated(subset=keys).any():
        others = [c for c in table.columns if c not in keys and not str(c).startswith(metric)
                  and table[c].dtype == object and table[c].nunique() > 1]
        raise OppndaError(f"Several rows per {' and '.join(keys)} for {metric!r}"
                          + (f": the table also varies in {', '.join(map(str, others))}; filter it first"
                             if others else "; filter the table first") + ".")
    groups = [(None, frame)] if hue is None else [(k, frame[frame[hue] == k]) for k in _sorted_unique(frame[hue])]
    fig = _figure(size)
    ax = fig.add_subplot(1, 1, 1)
    _style(ax, fonts)
    xs_all = np.sort(frame["__x"].unique())
    span = float(xs_all[-1] - xs_all[0]) if len(xs_all) > 1 else 1.0
    colours = _colours(len(groups), palette)
    rows = []
    n = len(groups)
    for i, (key, sub) in enumerate(groups):
        sub = sub.sort_values("__x")
        x, y, c = (sub[k].to_numpy(dtype=float) for k in ("__x", "__y", "__ci"))
        colour = colours[i]
        label = "_nolegend_" if key is None else str(key)
        ln, = ax.plot(x, y, color=colour, marker=markers[i % len(markers)], markersize=marker_size,
                      markeredgecolor="white", markeredgewidth=0.8, linewidth=1.8, label=label, zorder=3)
        ln.set_gid(f"mean:{key}")
        has_ci = ci and np.isfinite(c).any()
        if has_ci and band:
            ok = np.isfinite(c)
            poly = ax.fill_between(x[ok], (y - c)[ok], (y + c)[ok], color=colour, alpha=0.14, linewidth=0,
                                   zorder=1, label="_nolegend_")
            poly.set_gid(f"ci:{key}")
        if has_ci:
            offset = (i - (n - 1) / 2) * dodge * span
            eb = ax.errorbar(x + offset, y, yerr=np.nan_to_num(c, nan=0.0), fmt="none", ecolor=colour,
                             elinewidth=1.0, capsize=2.5, zorder=2, label="_nolegend_")
            eb[2][0].set_gid(f"err:{key}")
        for xv, yv, cv in zip(x, y, c):
            rows.append({"hue": key, "x": xv, "mean": yv, "ci95": cv})
    ax.set_xlabel(axis_label(by, labels), fontsize=fonts.get("axis_label", 11))
    ax.set_ylabel(metric_label(metric), fontsize=fonts.get("axis_label", 11))
    if len(xs_all) <= 15:
        ax.xaxis.set_major_locator(FixedLocator(xs_all))
    ax.xaxis.set_major_formatter(tick_formatter(by))
    if title:
        ax.set_title(title, loc="left", fontsize=fonts.get("axis_label", 11))
    if hue is not None:
        ax.legend(title=hue.replace("_", " ").title(), fontsize=fonts.get("legend", 9),
                  title_fontsize=fonts.get("legend", 9), frameon=False, loc="best")
    if ci and any(np.isfinite(r["ci95"]) for r in rows):
        ax.text(1.0, 1.01, "mean ± 95% CI across seeds", transform=ax.transAxes, ha="right", va="bottom",
                fontsize=max(6, fonts.get("legend", 9) - 1), color="#555555")
    fig.tight_layout()
    fig.oppnda_data = pd.DataFrame(rows, columns=["hue", "x", "mean", "ci95"])
    return fig


# ------------------------------------------------------------------------------------- surface

def surface_grid(table: pd.DataFrame, metric: str, x: str, y: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(xs, ys, Z) with Z[i, j] = mean of ``metric`` at y=ys[i], x=xs[j] (NaN where no run)."""
    _need(table, x, y)
    mean_col, _ = _stat_columns(table, metric)
    f = pd.DataFrame({"x": _numeric(table[x]), "y": _numeric(table[y]), "z": _numeric(table[mean_col])})
    f = f.dropna(subset=["x", "y"])
    grid = f.groupby(["y", "x"])["z"].mean().unstack("x").sort_index().sort_index(axis=1)
    return grid.columns.to_numpy(dtype=float), grid.index.to_numpy(dtype=float), grid.to_numpy(dtype=float)


def surface(table: pd.DataFrame, metric: str, x: str, y: str, *, labels: Mapping[str, str] | None = None,
            title: str | None = None, size: Sequence[float] = (8.0, 6.0), cmap: str | None = "viridis",
            alpha: float = 0.92, edge_color: str = "black", line_width: float = 0.6, elev: float = 30,
            azim: float = 140, fonts: Mapping[str, float] | None = None) -> Figure:
    """A 3D surface of ``metric``'s mean over two groupings (one router's rows of a joint table).

    ``table`` has ``x``, ``y`` and ``<metric>_mean`` (or ``metric``); cells without a run are
    filled with the mean of the others (as OppNDA) and listed in ``fig.oppnda_data`` (filled=True).
    """
    fonts = dict(fonts or {})
    xs, ys, z = surface_grid(table, metric, x, y)
    if len(xs) < 2 or len(ys) < 2:
        raise OppndaError(f"A surface needs at least 2 values of {x!r} and of {y!r}; have {len(xs)} and {len(ys)}.")
    missing = np.isnan(z)
    if missing.all():
        raise OppndaError(f"{metric!r} has no value on the {x} × {y} grid.")
    zf = np.where(missing, np.nanmean(z), z)
    X, Y = np.meshgrid(xs, ys)
    fig = _figure(size)
    ax = fig.add_subplot(1, 1, 1, projection="3d")
    lo, hi = float(np.nanmin(zf)), float(np.nanmax(zf))
    surf = ax.plot_surface(X, Y, zf, cmap=colormap(cmap), edgecolor=edge_color, linewidth=line_width,
                           alpha=alpha, rstride=1, cstride=1, antialiased=True, vmin=lo, vmax=hi)
    surf.set_gid(f"surface:{metric}")
    # the measured means themselves, on the vertices (a face's colour is the mean of its corners)
    pts = ax.scatter(X[~missing], Y[~missing], z[~missing], color="black", s=14, depthshade=False, zorder=5)
    pts.set_gid("means")
    if len(xs) <= 12:
        ax.set_xticks(xs)
    if len(ys) <= 12:
        ax.set_yticks(ys)
    ax.set_xlabel(axis_label(x, labels), fontsize=fonts.get("axis_label", 11), labelpad=8)
    ax.set_ylabel(axis_label(y, labels), fontsize=fonts.get("axis_label", 11), labelpad=8)
    ax.set_zlabel(metric_label(metric), fontsize=fonts.get("axis_label", 11), labelpad=10)
    for axis in ("x", "y", "z"):
        ax.tick_params(axis=axis, labelsize=fonts.get("ticks", 9))
    ax.xaxis.set_major_formatter(tick_formatter(x))
    ax.yaxis.set_major_formatter(tick_formatter(y))
    ax.view_init(elev=elev, azim=azim)
    cbar = fig.colorbar(surf, ax=ax, shrink=0.65, aspect=18, pad=0.1)
    cbar.ax.tick_params(labelsize=fonts.get("colorbar", 9))
    cbar.set_label(metric_label(metric), fontsize=fonts.get("colorbar", 9))
    if title:
        ax.set_title(title, fontsize=fonts.get("axis_label", 11))
    fig.oppnda_data = pd.DataFrame({"x": X.ravel(), "y": Y.ravel(), "mean": zf.ravel(), "filled": missing.ravel()})
    return fig


# ------------------------------------------------------------------------------------- violin

def _quartile_lines(ax, data: np.ndarray, pos: float, half: float, width: float) -> None:
    q1, q2, q3 = np.percentile(data, [25, 50, 75])
    for q, style in ((q1, (0, (3, 2))), (q2, "-"), (q3, (0, (3, 2)))):
        ax.plot([q, q], [pos - half, pos + half], color="black", linestyle=style, linewidth=width,
                solid_capstyle="butt", label="_nolegend_")


def violin(frame: pd.DataFrame, metric: str, by: str = "router", *, title: str | None = None,
           size: Sequence[float] = (8.0, 4.8), palette: str | None = None, inner: str | None = "quartile",
           line_width: float = 1.2, quartile_line_width: float = 1.6, width: float = 0.9, gap: float = 0.1,
           points: bool = True, fonts: Mapping[str, float] | None = None) -> Figure:
    """Horizontal violins of ``metric`` per ``by`` value (OppNDA: x = metric, y = router), with the points.

    ``frame`` has one row per observation (``metric`` or ``<metric>_mean``). A group with fewer
    than two distinct values cannot have a density: it is drawn as its points only.
    """
    _need(frame, by)
    col, _ = _stat_columns(frame, metric)
    fonts = dict(fonts or {})
    groups = [(k, _numeric(frame.loc[frame[by] == k, col])) for k in _sorted_unique(frame[by])]
    groups = [(k, v[np.isfinite(v)]) for k, v in groups]
    groups = [(k, v) for k, v in groups if v.size]
    if not groups:
        raise OppndaError(f"{metric!r} has no value to draw.")
    fig = _figure(size)
    ax = fig.add_subplot(1, 1, 1)
    _style(ax, fonts)
    ax.grid(False)
    colours = _colours(len(groups), palette)
    w = max(0.05, width - gap)
    rows = []
    for i, (key, vals) in enumerate(groups):
        pos = float(i)
        if np.unique(vals).size >= 2:
            try:  # matplotlib >= 3.10
                parts = ax.violinplot([vals], positions=[pos], orientation="horizontal", widths=w,
                                      showextrema=False)
            except TypeError:
                parts = ax.violinplot([vals], positions=[pos], vert=False, widths=w, showextrema=False)
            for body in parts["bodies"]:
                body.set_facecolor(colours[i])
                body.set_edgecolor("black")
                body.set_linewidth(line_width)
                body.set_alpha(0.75)
                body.set_gid(f"violin:{key}")
            if inner == "quartile":
                _quartile_lines(ax, vals, pos, w * 0.22, quartile_line_width)
        if points or np.unique(vals).size < 2:
            jitter = (np.random.default_rng(i).random(vals.size) - 0.5) * w * 0.25
            sc = ax.scatter(vals, pos + jitter, s=14, color=colours[i], edgecolor="black", linewidth=0.4,
                            zorder=3, label="_nolegend_")
            sc.set_gid(f"points:{key}")
        rows += [{"group": key, "value": v} for v in vals]
    ax.set_yticks(range(len(groups)))
    ax.set_yticklabels([str(k) for k, _ in groups])
    ax.set_ylim(-0.6, len(groups) - 0.4)
    ax.set_xlabel(metric_label(metric), fontsize=fonts.get("axis_label", 11))
    ax.set_ylabel(by.replace("_", " ").title(), fontsize=fonts.get("axis_label", 11))
    if title:
        ax.set_title(title, loc="left", fontsize=fonts.get("axis_label", 11))
    fig.tight_layout()
    fig.oppnda_data = pd.DataFrame(rows, columns=["group", "value"])
    return fig


# ------------------------------------------------------------------------------------- heatmap

def heatmap(raw: pd.DataFrame, metrics: Sequence[str] | None = None, *, title: str | None = None,
            size: Sequence[float] | None = None, cmap: str | None = "RdBu_r", vmin: float | None = -1.0,
            vmax: float | None = 1.0, fonts: Mapping[str, float] | None = None) -> Figure:
    """The Pearson correlation matrix of the raw per-run ``metrics`` (one row per run), annotated.

    ``fig.oppnda_data`` is ``raw[metrics].corr()`` — the matrix the image shows.
    """
    fonts = dict(fonts or {})
    if metrics is None:
        metrics = [c for c in raw.columns if pd.api.types.is_numeric_dtype(raw[c])]
    metrics = [m for m in metrics if m in raw.columns]
    if len(metrics) < 2:
        raise OppndaError("A correlation heatmap needs at least two metrics present in the data.")
    corr = raw[list(metrics)].apply(pd.to_numeric, errors="coerce").corr()
    n = len(metrics)
    fig = _figure(size or (n * 1.1 + 2.4, n * 1.0 + 1.4))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(corr.to_numpy(dtype=float), cmap=colormap(cmap, "RdBu_r"), vmin=vmin, vmax=vmax,
                   aspect="auto")
    im.set_gid("correlation")
    names = [metric_label(m) for m in metrics]
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xticklabels(names, rotation=35, ha="right", fontsize=fonts.get("ticks", 9))
    ax.set_yticklabels(names, fontsize=fonts.get("ticks", 9))
    norm = im.norm
    values = corr.to_numpy(dtype=float)
    for i in range(n):
        for j in range(n):
            v = values[i, j]
            text = "–" if np.isnan(v) else f"{v:.2f}"
            shade = 0.5 if np.isnan(v) else float(norm(v))
            ax.text(j, i, text, ha="center", va="center", fontsize=fonts.get("annotations", 9),
                    color="white" if shade < 0.18 or shade > 0.82 else "black")
    cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    cbar.set_label("Correlation", fontsize=fonts.get("colorbar", 9), rotation=270, labelpad=12)
    cbar.ax.tick_params(labelsize=fonts.get("colorbar", 9))
    if title:
        ax.set_title(title, loc="left", fontsize=fonts.get("ticks", 9) + 1)
    fig.tight_layout()
    fig.oppnda_data = corr
    return fig


# ------------------------------------------------------------------------------------- pairplot

def _kde(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """A Gaussian kernel density (Scott's bandwidth) of ``values`` on ``grid`` (numpy only)."""
    v = values[np.isfinite(values)]
    if v.size < 2 or np.std(v) == 0:
        return np.zeros_like(grid)
    h = np.std(v, ddof=1) * v.size ** (-1 / 5)
    z = (grid[:, None] - v[None, :]) / h
    return np.exp(-0.5 * z * z).sum(axis=1) / (v.size * h * np.sqrt(2 * np.pi))


def pairplot(raw: pd.DataFrame, metrics: Sequence[str] | None = None, hue: str | None = "router", *,
             size: Sequence[float] | None = None, palette: str | None = None, diag_kind: str = "kde",
             alpha: float = 0.85, marker_size: float = 18.0, edge_color: str = "white", edge_width: float = 0.4,
             fonts: Mapping[str, float] | None = None, title: str | None = None) -> Figure:
    """Every metric against every other (scatter, one colour per ``hue``), densities on the diagonal.

    ``diag_kind``: "kde" (Gaussian density per hue) or "hist".
    """
    fonts = dict(fonts or {})
    if metrics is None:
        metrics = [c for c in raw.columns if pd.api.types.is_numeric_dtype(raw[c]) and c != hue]
    metrics = [m for m in metrics if m in raw.columns]
    if not metrics:
        raise OppndaError("No metric of the list is in the data for a pairplot.")
    n = len(metrics)
    keys = [None] if hue is None or hue not in raw.columns else _sorted_unique(raw[hue])
    colours = _colours(len(keys), palette)
    fig = _figure(size or (2.1 * n + 1.6, 2.1 * n))
    axes = fig.subplots(n, n, squeeze=False, sharex="col")
    data = {m: _numeric(raw[m]) for m in metrics}
    masks = [np.ones(len(raw), bool) if k is None else (raw[hue] == k).to_numpy() for k in keys]
    for i, mi in enumerate(metrics):
        for j, mj in enumerate(metrics):
            ax = axes[i][j]
            ax.tick_params(labelsize=fonts.get("ticks", 7))
            for side in ("top", "right"):
                ax.spines[side].set_visible(False)
            if i == j:
                finite = data[mi][np.isfinite(data[mi])]
                lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
                pad = (hi - lo) * 0.1 or 1.0
                grid = np.linspace(lo - pad, hi + pad, 200)
                for k, (key, mask) in enumerate(zip(keys, masks)):
                    vals = data[mi][mask]
                    if diag_kind == "hist":
                        ax.hist(vals[np.isfinite(vals)], bins=12, color=colours[k], alpha=0.5)
                    else:
                        ax.plot(grid, _kde(vals, grid), color=colours[k], linewidth=1.4)
                        ax.fill_between(grid, _kde(vals, grid), color=colours[k], alpha=0.15, linewidth=0)
                ax.set_yticks([])
            else:
                for k, (key, mask) in enumerate(zip(keys, masks)):
                    sc = ax.scatter(data[mj][mask], data[mi][mask], s=marker_size, color=colours[k], alpha=alpha,
                                    edgecolor=edge_color, linewidth=edge_width,
                                    label=str(key) if key is not None else "_nolegend_")
                    sc.set_gid(f"scatter:{mi}:{mj}:{key}")
            if i == n - 1:
                ax.set_xlabel(metric_label(mj), fontsize=fonts.get("axis_label", 9))
            else:
                ax.tick_params(labelbottom=False)
            if j == 0:
                ax.set_ylabel(metric_label(mi), fontsize=fonts.get("axis_label", 9))
            elif i != j:
                ax.tick_params(labelleft=False)
    if keys != [None]:
        handles = [axes[0][1 if n > 1 else 0].scatter([], [], s=marker_size * 1.5, color=colours[k],
                                                      label=str(key)) for k, key in enumerate(keys)]
        fig.legend(handles=handles, loc="center right", title=hue.replace("_", " ").title(), frameon=False,
                   fontsize=fonts.get("legend", 9), title_fontsize=fonts.get("legend", 9))
    if title:
        fig.suptitle(title, fontsize=fonts.get("axis_label", 9) + 2)
    fig.tight_layout(rect=(0, 0, 0.86 if keys != [None] else 1, 1))
    fig.oppnda_data = raw[[c for c in [hue, *metrics] if c is not None and c in raw.columns]].copy()
    return fig


# ------------------------------------------------------------------------------------- curves

def _curve(curves: pd.DataFrame, kind_is_hist: bool, value: str, hue: str | None, report_type: str | None,
           where: Mapping[str, Any] | None, title: str | None, xlabel: str, ylabel: str | None,
           size: Sequence[float], logy: bool, band: bool, fonts: Mapping[str, float] | None) -> Figure:
    fonts = dict(fonts or {})
    _need(curves, "x", f"{value}_mean")
    f = curves
    if "curve_kind" in f.columns:
        f = f[(f["curve_kind"] == "histogram") == kind_is_hist]
    if report_type is not None:
        _need(f, "report_type")
        f = f[f["report_type"] == report_type]
    for k, v in (where or {}).items():
        _need(f, k)
        f = f[f[k] == v]
    if f.empty:
        raise OppndaError("No curve matches" + (f" report_type={report_type!r}" if report_type else "")
                          + (f" {dict(where)}" if where else "") + "; check the filters (curves of "
                          + ("histogram" if kind_is_hist else "time-series") + " reports).")
    keys = [hue] if hue is not None else []
    ident = [c for c in f.columns if c not in ("x", "curve_kind") and not str(c).endswith(("_mean", "_std", "_n", "_ci95"))]
    varying = [c for c in ident if c not in keys and f[c].nunique(dropna=False) > 1]
    if varying:
        raise OppndaError(f"The curves differ in {', '.join(map(str, varying))}: choose one with where={{...}} "
                          f"(e.g. where={{{varying[0]!r}: {f[varying[0]].iloc[0]!r}}}) or report_type=.")
    groups = [(None, f)] if hue is None else [(k, f[f[hue] == k]) for k in _sorted_unique(f[hue])]
    fig = _figure(size)
    ax = fig.add_subplot(1, 1, 1)
    _style(ax, fonts)
    colours = _colours(len(groups))
    rows = []
    for i, (key, sub) in enumerate(groups):
        sub = sub.sort_values("x")
        x = sub["x"].to_numpy(dtype=float)
        y = sub[f"{value}_mean"].to_numpy(dtype=float)
        c = sub[f"{value}_ci95"].to_numpy(dtype=float) if f"{value}_ci95" in sub else np.full_like(y, np.nan)
        kw = {"drawstyle": "steps-post"} if not kind_is_hist else {}
        ln, = ax.plot(x, y, color=colours[i], linewidth=1.4, label="_nolegend_" if key is None else str(key), **kw)
        ln.set_gid(f"mean:{key}")
        if band and np.isfinite(c).any():
            ok = np.isfinite(c)
            lo = y - c
            if logy:
                lo = np.where(lo > 0, lo, np.nan)
            poly = ax.fill_between(x[ok], lo[ok], (y + c)[ok], color=colours[i], alpha=0.18, linewidth=0,
                                   step="post" if not kind_is_hist else None)
            poly.set_gid(f"ci:{key}")
        rows += [{"hue": key, "x": a, "mean": b, "ci95": d} for a, b, d in zip(x, y, c)]
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel, fontsize=fonts.get("axis_label", 11))
    ax.set_ylabel(ylabel or value, fontsize=fonts.get("axis_label", 11))
    rt = report_type or (f["report_type"].iloc[0] if "report_type" in f.columns and f["report_type"].nunique() == 1 else None)
    ax.set_title(title or (f"{rt}: mean ± 95% CI across runs" if rt else "mean ± 95% CI across runs"),
                 loc="left", fontsize=fonts.get("axis_label", 11))
    if hue is not None:
        ax.legend(title=hue.replace("_", " ").title(), frameon=False, fontsize=fonts.get("legend", 9))
    fig.tight_layout()
    fig.oppnda_data = pd.DataFrame(rows, columns=["hue", "x", "mean", "ci95"])
    return fig


def distribution(curves: pd.DataFrame, *, report_type: str | None = None, value: str = "y",
                 hue: str | None = "router", where: Mapping[str, Any] | None = None, title: str | None = None,
                 xlabel: str = "duration (s)", ylabel: str | None = "count per run", logy: bool = False,
                 band: bool = True, size: Sequence[float] = (7.0, 4.2),
                 fonts: Mapping[str, float] | None = None) -> Figure:
    """A histogram report (contact times, inter-contact times...) averaged across seeds, with its CI band.

    ``curves``: a strategy's averaged curves, e.g. ``Run(...).run().averaged.curves["ttl_average"]``
    (x, ``<value>_mean``, ``<value>_ci95`` per bin). Rows that differ in anything but ``hue`` must
    be narrowed with ``where={"ttl": 180}``.
    """
    return _curve(curves, True, value, hue, report_type, where, title, xlabel, ylabel, size, logy, band, fonts)


def timeseries(curves: pd.DataFrame, *, report_type: str | None = None, value: str = "y",
               hue: str | None = "router", where: Mapping[str, Any] | None = None, title: str | None = None,
               xlabel: str = "simulation time (s)", ylabel: str | None = None, logy: bool = False,
               band: bool = True, size: Sequence[float] = (7.0, 4.2),
               fonts: Mapping[str, float] | None = None) -> Figure:
    """A time-series report (buffer occupancy, delivery over time...) averaged across seeds on a common
    grid, drawn as steps (ONE's values hold until the next sample) with the 95 % CI band."""
    return _curve(curves, False, value, hue, report_type, where, title, xlabel, ylabel, size, logy, band, fonts)
