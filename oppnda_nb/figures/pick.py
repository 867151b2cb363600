"""What a quick plot of one metric is drawn from: which averaged table, which parameters on which axis.

Pure functions (frames in, a frame and names out) used by ``%oppnda plot`` so a face holds no
picking logic: :func:`pick` (line plots), :func:`pick_surface` (3D surfaces), :func:`pick_curves`
(distribution / time-series curves) and :func:`runs_frame` / :func:`pick_runs` (per-run values
for violins, heatmaps and pairplots). A bad metric, parameter or table name raises
:class:`~oppnda_nb.errors.OppndaError` listing what there is.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from ..errors import OppndaError
from ..naming import coerce_value

__all__ = ["pick", "pick_surface", "pick_curves", "pick_runs", "runs_frame", "metric_names", "parameters"]

#: suffixes of the statistics columns of an averaged table (``<metric>_mean`` ...)
STAT_SUFFIXES = ("_mean", "_std", "_n", "_ci95")
#: columns of an averaged table that are neither parameters nor metrics
BOOKKEEPING = {"n_files", "curve_kind", "x"}
#: the parameter a second grouping defaults to (one line / one figure per router, as OppNDA draws)
HUE = "router"


def metric_names(frame: pd.DataFrame) -> list[str]:
    """Metrics of a wide averaged table (those with a ``<metric>_mean`` column), in column order."""
    return [c[:-5] for c in frame.columns if isinstance(c, str) and c.endswith("_mean") and len(c) > 5]


def parameters(frame: pd.DataFrame) -> list[str]:
    """The grouping parameters of an averaged table: every column that is not a statistic nor bookkeeping."""
    metrics = set(metric_names(frame))
    out = []
    for c in frame.columns:
        name = str(c)
        if name in BOOKKEEPING or any(name.endswith(s) and name[: -len(s)] in metrics for s in STAT_SUFFIXES):
            continue
        out.append(name)
    return out


def _varying(frame: pd.DataFrame, params: Iterable[str]) -> list[str]:
    return [p for p in params if frame[p].nunique(dropna=True) > 1]


def _numeric(frame: pd.DataFrame, p: str) -> bool:
    return bool(len(frame)) and pd.to_numeric(frame[p], errors="coerce").notna().all()


def _shown(names: Sequence[str], limit: int = 15) -> str:
    names = list(names)
    return (", ".join(names[:limit]) + (" …" if len(names) > limit else "")) or "none"


def _candidates(tables: Mapping[str, pd.DataFrame], metric: str, table: str | None) -> list[tuple]:
    """(name, rows with a value of the metric, parameters, varying parameters) of each table that has it."""
    if not tables:
        raise OppndaError("The run has no averaged table to plot.")
    if table is not None:
        if table not in tables:
            raise OppndaError(f"No table {table!r}; the run has {_shown(map(str, tables))}.")
        tables = {table: tables[table]}
    out = []
    for name, frame in tables.items():
        col = f"{metric}_mean"
        if col not in frame.columns:
            continue
        rows = frame[frame[col].notna()]
        if rows.empty:
            continue
        params = parameters(rows)
        out.append((name, rows.reset_index(drop=True), params, _varying(rows, params)))
    if not out:
        known = sorted({m for f in tables.values() for m in metric_names(f)})
        raise OppndaError(f"No metric {metric!r} in the averaged tables; metrics: {_shown(known)}.")
    return out


def _check_given(cands: list[tuple], metric: str, given: Mapping[str, str | None]) -> list[tuple]:
    """Keep the tables that have every given parameter; a parameter no table has lists the valid ones."""
    wanted = {v for v in given.values() if v is not None}
    for what, name in given.items():
        if name is not None and all(name not in c[2] for c in cands):
            valid = list(dict.fromkeys(p for c in cands for p in c[2]))
            raise OppndaError(f"No parameter {name!r} ({what}) in the tables of {metric!r}; "
                              f"parameters: {_shown(valid)}.")
    have = [c for c in cands if wanted <= set(c[2])]
    if not have:
        raise OppndaError(f"No table of {metric!r} has all of {', '.join(sorted(wanted))}; "
                          + "; ".join(f"{c[0]}: {', '.join(c[2])}" for c in cands) + ".")
    return have


def pick(tables: Mapping[str, pd.DataFrame], metric: str, x: str | None = None, by: str | None = None,
         table: str | None = None) -> tuple[pd.DataFrame, str, str | None]:
    """(rows, x, by) for a line of ``metric``: ``x`` the parameter on the x axis, ``by`` one line per value.

    Among the tables with the metric the one whose rows vary in exactly what is drawn is used
    (``ttl_average`` for an x of ``ttl``, not a table grouped by everything, whose rows would mix).
    ``x`` defaults to the numeric parameter that varies (else a constant numeric one: one point per
    line), ``by`` to ``router`` when the table has it, else another varying parameter, else None.
    """
    cands = _check_given(_candidates(tables, metric, table), metric, {"x axis": x, "lines": by})
    allowed = {p for p in (x, by) if p is not None} | ({HUE} if by is None else set())

    def key(c):
        extra = [p for p in c[3] if p not in allowed]
        if x is None:  # x comes from the extra varying parameters: exactly one is best
            return (max(0, len(extra) - 1), 0 if extra else 1, len(c[2]))
        return (len(extra), len(c[2]))

    name, rows, params, varying = min(cands, key=key)
    if x is None:
        numeric = [p for p in params if p != by and p != "report_type" and _numeric(rows, p)]
        moving = [p for p in numeric if p in varying and p != HUE]
        if not numeric:
            raise OppndaError(f"Table {name!r} has no numeric parameter to put on the x axis; "
                              f"parameters: {_shown(params)}.")
        x = (moving or numeric)[-1]
    if by is None:
        rest = [p for p in varying if p != x]
        by = HUE if HUE in params and HUE != x else (rest[0] if rest else None)
    extra = [p for p in varying if p not in (x, by)]
    if extra and rows.duplicated(subset=[p for p in (x, by) if p is not None]).any():
        raise OppndaError(f"The rows of {metric!r} in table {name!r} also vary in {', '.join(extra)}: draw one "
                          f"line per {extra[0]} instead, or average a run grouped by {x}"
                          + (f" and {by}" if by else "") + " only.")
    return rows, x, by


def pick_surface(tables: Mapping[str, pd.DataFrame], metric: str, x: str | None = None, y: str | None = None,
                 hue: str | None = HUE, table: str | None = None) -> tuple[pd.DataFrame, str, str]:
    """(rows, x, y) for a surface of ``metric`` over two numeric parameters (one surface per ``hue`` value).

    The table with the fewest other varying parameters is used; ``x``/``y`` default to its numeric
    parameters that vary (the last one on x).
    """
    cands = _check_given(_candidates(tables, metric, table), metric, {"x axis": x, "y axis": y})
    fixed = {p for p in (x, y, hue) if p is not None}

    need = sum(p is None for p in (x, y))

    def choose(c):
        free = [p for p in c[3] if p not in fixed and p != "report_type" and _numeric(c[1], p)]
        chosen = free[-need:] if need else []
        return chosen, [p for p in c[3] if p not in fixed and p not in chosen]

    def key(c):
        chosen, extra = choose(c)
        return (len(chosen) < need, len(extra), len(c[2]))

    name, rows, params, varying = min(cands, key=key)
    chosen, _ = choose((name, rows, params, varying))
    if x is None and chosen:
        x = chosen.pop()
    if y is None and chosen:
        y = chosen.pop()
    if x is None or y is None:
        numeric = [p for p in varying if _numeric(rows, p)]
        raise OppndaError(f"A surface of {metric!r} needs two numeric parameters that vary; table {name!r} "
                          f"varies in {_shown(varying)} (numeric: {_shown(numeric)}).")
    return rows, x, y


def pick_curves(curves: Mapping[str, pd.DataFrame], report_type: str, kind: str | None = None,
                hue: str | None = HUE, table: str | None = None) -> tuple[pd.DataFrame, list[str]]:
    """(curves of ``report_type``, the parameters they still vary in besides ``hue``): one figure per
    combination of those. ``kind``: "histogram" or "timeseries" (checked against the report's curves)."""
    if not curves or all(c is None or c.empty for c in curves.values()):
        raise OppndaError("The run has no averaged curves (histogram or time-series reports) to plot.")
    if table is not None:
        if table not in curves:
            raise OppndaError(f"No curves {table!r}; the run has {_shown(map(str, curves))}.")
        curves = {table: curves[table]}
    kinds: dict[str, set] = {}
    for frame in curves.values():
        if frame is None or frame.empty or "report_type" not in frame.columns:
            continue
        for rt, ck in frame[["report_type", "curve_kind"]].drop_duplicates().itertuples(index=False):
            kinds.setdefault(str(rt), set()).add(str(ck))
    if report_type not in kinds:
        listed = [f"{rt} ({'/'.join(sorted(k))})" for rt, k in sorted(kinds.items())]
        raise OppndaError(f"No curves of {report_type!r}; reports with curves: {_shown(listed)}.")
    if kind is not None and kind not in kinds[report_type]:
        raise OppndaError(f"{report_type} has {'/'.join(sorted(kinds[report_type]))} curves, not {kind}.")
    best = None
    for frame in curves.values():
        if frame is None or frame.empty or "report_type" not in frame.columns:
            continue
        rows = frame[frame["report_type"] == report_type]
        if kind is not None:
            rows = rows[rows["curve_kind"] == kind]
        if rows.empty:
            continue
        if hue is not None and hue not in rows.columns:
            raise OppndaError(f"No parameter {hue!r} in the curves of {report_type}; "
                              f"parameters: {_shown(parameters(rows))}.")
        facets = [p for p in _varying(rows, parameters(rows)) if p not in (hue, "report_type")]
        if best is None or len(facets) < len(best[1]):
            best = (rows.reset_index(drop=True), facets)
    assert best is not None
    return best


def runs_frame(summaries: Iterable[Any]) -> pd.DataFrame:
    """One row per processed report file: its name parameters (numbers where numeric), report type, scalars."""
    rows, names = [], {}
    for s in summaries:
        row: dict[str, Any] = {k: coerce_value(v) for k, v in (s.params or {}).items()}
        names.update(dict.fromkeys(row))
        row["report_type"] = s.report_type
        row.update(s.scalars or {})
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame.attrs["parameters"] = list(names)
    return frame


def pick_runs(runs: pd.DataFrame, metrics: Sequence[str], *, at_least: int = 1) -> tuple[pd.DataFrame, list[str]]:
    """(the runs of the report type of ``metrics[0]``, the metrics to draw) for violins, heatmaps, pairplots.

    With ``at_least`` 2 and one metric given, every metric of that report type that varies across
    the runs is added (a correlation heatmap of one report's metrics). The name parameters
    (``runs.attrs["parameters"]``, set by :func:`runs_frame`) are never metrics.
    """
    if runs is None or runs.empty:
        raise OppndaError("The run has no processed report to plot.")
    skip = set(runs.attrs.get("parameters", ())) | {"report_type"}
    have = [c for c in runs.columns if c not in skip]
    missing = [m for m in metrics if m not in have]
    if missing:
        raise OppndaError(f"No metric {missing[0]!r} in the runs' reports; metrics: {_shown(sorted(have))}.")
    first = metrics[0]
    rows = runs[runs[first].notna()]
    if "report_type" in rows.columns and rows["report_type"].nunique() == 1:
        rows = rows.dropna(axis=1, how="all")
    out = [m for m in metrics if m in rows.columns and rows[m].notna().any()]
    if len(out) < at_least and len(metrics) == 1:
        numeric = [c for c in rows.columns if c not in skip and c not in out
                   and pd.api.types.is_numeric_dtype(rows[c]) and rows[c].nunique(dropna=True) > 1]
        out += numeric
    if len(out) < at_least:
        raise OppndaError(f"{', '.join(metrics)}: need at least {at_least} metrics of one report type "
                          "with values (separate them with commas).")
    return rows.reset_index(drop=True), out
