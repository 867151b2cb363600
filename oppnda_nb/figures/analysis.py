"""OppNDA's analysis engine: from one folder of averaged + raw reports to its set of figures and CSVs.

Same inputs and outputs as OppNDA's ``core/analysis.py`` (its ``analysis_config.json`` unchanged,
the same file names), drawn through the memory-aware pool with a per-figure memory estimate:

* averaged files (``*_average<ext>`` in ``report_dir``) are read as OppNDA does: the name split by
  ``filename_structure.delimiter`` gives report type, router and grouping (``grouping_type_position``),
  the value is the part before the grouping; files of one (router, grouping, value) are merged;
* raw reports (``raw_dir``, default ``report_dir``) are read by one averaging :class:`~oppnda_nb.job.Run`
  (``write=False``) per analysis, which gives the per-run metrics (heatmaps, pairplot, CSV) and the
  per-group statistics (mean/std/n/ci95) of each grouping and of each pair of groupings;
* figures: ``{metric}_{grouping}_line``, ``{router}_{metric}_3d_{g1}_{g2}``, ``violin_{grouping}_{metric}``,
  ``{router}_correlation``, ``pairplot``, and ``{router}_metrics.csv``.

Better than the original: line plots carry the 95 % CI across seeds (band + dodged error bars);
3D surfaces are the real joint means over (g1, g2) from the raw runs, where OppNDA averaged the two
one-parameter marginals ((mean at g1=v1 + mean at g2=v2) / 2; still used when no raw report is
there, with a warning); a colour-blind-safe palette; PDF/SVG on request; each figure is its own
pool task, so a failing figure is reported and the others are drawn.
"""
from __future__ import annotations

import itertools
import logging
import os
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd

from .. import job, pool
from ..averaging import writers
from ..background import Background
from ..errors import OppndaError
from ..resource_manager import ResourceManager
from .config import AnalysisConfig, load_analysis_config
from .tasks import FigureTask, draw_task, estimate_task, task_kind, write_tasks

log = logging.getLogger("oppnda_nb.figures")

FORMATS = ("png", "pdf", "svg")
#: raw-name fields that identify a run, never a grouping on an x axis
_ID_FIELDS = {"prefix", "scenario", "scenario_name", "router", "seed", "report_type"}


# ----------------------------------------------------------------------------------- reading

def _parse_number(text: str) -> Any:
    try:
        v = float(text)
        return int(v) if v.is_integer() else v
    except ValueError:
        return text


def is_average_file(name: str, extension: str) -> bool:
    """OppNDA's test: ``_average`` in the lower-cased name and the report extension."""
    return "_average" in name.lower() and name.endswith(extension)


def parse_average_name(name: str, cfg: AnalysisConfig) -> dict | None:
    """report_type, router, grouping_type, value of an averaged file name (OppNDA's rule), None if not one.

    A grouping that is a number (e.g. ``..._180_10_average.txt`` of a full-parameter group) is not a
    grouping: None.
    """
    fs = cfg["filename_structure"]
    pos = fs["average_files"]
    stem = re.sub(r"_average.*$", "", name, flags=re.IGNORECASE)
    parts = stem.split(fs["delimiter"])
    if len(parts) < 3:
        return None
    try:
        gpos = int(pos["grouping_type_position"])
        grouping = parts[gpos]
        value_text = parts[gpos - 1] if gpos < 0 else parts[gpos - 1]
        out = {"report_type": parts[int(pos["report_type_position"])], "router": parts[int(pos["router_position"])],
               "grouping_type": grouping}
    except IndexError:
        return None
    if not grouping or re.fullmatch(r"[-+.\d]+", grouping):
        return None
    value = _parse_number(value_text)
    if isinstance(value, str):
        for vp in pos.get("value_positions") or []:
            if vp < len(parts):
                value = _parse_number(parts[vp])
                if not isinstance(value, str):
                    break
    if isinstance(value, str):
        m = re.search(r"[-+]?\d+(?:\.\d+)?", value)
        if not m:
            return None
        value = _parse_number(m.group(0))
    out["value"] = value
    return out


def read_keyvalue(path: str | os.PathLike, separator: str, include: Sequence[str], ignore: Sequence[str]) -> dict:
    """``field<sep> value`` lines -> {field: float} (OppNDA's reader; ``include`` empty = every numeric field)."""
    wanted, skip = set(include), set(ignore)
    out: dict[str, float] = {}
    with open(path, encoding="utf-8", errors="replace") as fh:
        for ln in fh:
            if separator not in ln:
                continue
            key, value = ln.strip().split(separator, 1)
            key = key.strip()
            if key in skip or (wanted and key not in wanted):
                continue
            try:
                out[key] = float(value.strip())
            except ValueError:
                continue
    return out


def load_averaged(cfg: AnalysisConfig) -> tuple[dict[str, pd.DataFrame], list[tuple[str, str]]]:
    """{grouping: DataFrame(router, value, <metrics>, source_reports, filenames)} from ``report_dir``."""
    folder = cfg.report_dir
    if not folder.is_dir():
        return {}, []
    include, ignore = cfg["metrics"]["include"], cfg["metrics"]["ignore"]
    merged: dict[str, dict[tuple, dict]] = {}
    skipped = []
    for name in sorted(os.listdir(folder)):
        if not is_average_file(name, cfg.extension):
            continue
        parsed = parse_average_name(name, cfg)
        if parsed is None:
            skipped.append((name, "no grouping in the name (filename_structure.average_files)"))
            continue
        metrics = read_keyvalue(folder / name, cfg["data_separator"], include, ignore)
        if not metrics:
            skipped.append((name, "no metric of metrics.include in the file"))
            continue
        g = parsed["grouping_type"]
        key = (parsed["router"], parsed["value"])
        rec = merged.setdefault(g, {}).setdefault(key, {"router": key[0], "value": key[1], "_src": [], "_files": []})
        rec.update(metrics)
        rec["_src"].append(parsed["report_type"])
        rec["_files"].append(name)
    out = {}
    for g, recs in merged.items():
        rows = []
        for rec in recs.values():
            row = {k: v for k, v in rec.items() if not k.startswith("_")}
            row["source_reports"] = ",".join(sorted(set(rec["_src"])))
            row["filenames"] = ",".join(rec["_files"])
            rows.append(row)
        df = pd.DataFrame(rows).sort_values(["router", "value"], kind="stable").reset_index(drop=True)
        out[g] = df
    return out, skipped


def _raw_positions(cfg: AnalysisConfig) -> dict[str, int]:
    pos = dict(cfg["filename_structure"]["raw_files"]["positions"])
    if not pos:  # ONE's standard naming
        pos = {"prefix": 0, "router": 1, "seed": 2, "ttl": 3, "buffer": 4, "report_type": 5}
    return pos


def candidate_groupings(cfg: AnalysisConfig) -> list[str]:
    """The raw-name fields that can be groupings (not prefix/router/seed/report type), in name order."""
    pos = _raw_positions(cfg)
    return [k for k, _ in sorted(pos.items(), key=lambda kv: kv[1]) if k not in _ID_FIELDS]


def averager_config(cfg: AnalysisConfig, groupings: Sequence[str]) -> dict:
    """The OppNDA averager config that gives the raw statistics the figures need.

    One strategy per grouping (router × g) and one per pair (router × g1 × g2, for the surfaces);
    ``min_files`` 1 so every group is there (its CI is NaN with one run).
    """
    pos = _raw_positions(cfg)
    numeric = [k for k in pos if k not in {"prefix", "scenario", "scenario_name", "router", "report_type"}]
    router = ["router"] if "router" in pos else []
    groups = [{"name": g, "group_by": router + [g], "min_files": 1} for g in groupings]
    groups += [{"name": f"{a}__{b}", "group_by": router + [a, b], "min_files": 1}
               for a, b in itertools.combinations(sorted(groupings), 2)]
    return {
        "file_filter": {"extension": cfg.extension, "contains": ""},
        "report_types": list(cfg["report_types"]),
        "filename_pattern": {"delimiter": cfg["filename_structure"]["delimiter"], "components": pos,
                             "extract": {k: r"(\d+(?:\.\d+)?)" for k in numeric}},
        "data_separator": cfg["data_separator"],
        "ignore_fields": list(cfg["metrics"]["ignore"]),
        "average_groups": groups or [{"name": "all", "group_by": router or ["report_type"], "min_files": 1}],
    }


def raw_frame(summaries: Sequence[Any], cfg: AnalysisConfig, metrics: Sequence[str] | None) -> pd.DataFrame:
    """OppNDA's raw table: one row per run (filename, source_report, name fields, metrics), report types merged."""
    pos = _raw_positions(cfg)
    delim = cfg["filename_structure"]["delimiter"]
    wanted = set(metrics or [])
    ignore = set(cfg["metrics"]["ignore"])
    merged: dict[tuple, dict] = {}
    for s in sorted(summaries, key=lambda s: os.path.basename(s.path)):
        name = os.path.basename(s.path)
        parts = name.rsplit(".", 1)[0].split(delim)
        rec: dict[str, Any] = {"filename": name, "source_report": s.report_type}
        for comp, p in pos.items():
            if p < len(parts):
                text = parts[p]
                m = re.search(r"\d+", text) if comp not in ("prefix", "router", "report_type", "scenario",
                                                            "scenario_name") else None
                rec[comp] = int(m.group(0)) if m else text
        for k, v in s.scalars.items():
            if k in ignore or (wanted and k not in wanted):
                continue
            rec[k] = v
        key = tuple(str(rec.get(f)) for f in ("router", "seed", *candidate_groupings(cfg)) if f in rec) or (name,)
        merged.setdefault(key, {}).update(rec)
    return pd.DataFrame(list(merged.values()))


# ----------------------------------------------------------------------------------- data

@dataclass
class AnalysisData:
    """What the figures are drawn from (all DataFrames; also useful on their own in a notebook)."""

    averaged: dict[str, pd.DataFrame]      # grouping -> OppNDA's averaged table (router, value, metrics)
    raw: pd.DataFrame | None               # one row per run: filename, name fields, metrics
    stats: dict[str, pd.DataFrame]         # strategy -> wide table (<m>_mean/_std/_n/_ci95) from the raw runs
    metrics: list[str]
    groupings: list[str]
    run: Any = None                        # the averaging RunResult (None without raw reports)
    warnings: list[str] = field(default_factory=list)
    skipped_files: list[tuple[str, str]] = field(default_factory=list)

    def line_table(self, grouping: str) -> pd.DataFrame:
        """router, <grouping>, <m>_mean, <m>_ci95 for every metric: the averaged files' means (OppNDA's
        line) with the CI of the raw runs of the same group; the raw means where no averaged file is."""
        stats = _collapse(self.stats.get(grouping), ["router", grouping], self.metrics)
        avg = self.averaged.get(grouping)
        if avg is None or avg.empty:
            return stats if stats is not None else pd.DataFrame(columns=["router", grouping])
        t = avg.rename(columns={"value": grouping})
        keep = ["router", grouping] + [m for m in self.metrics if m in t.columns]
        t = t[keep].rename(columns={m: f"{m}_mean" for m in self.metrics if m in t.columns})
        if stats is not None:
            ci = stats[["router", grouping] + [c for c in stats.columns if c.endswith(("_ci95", "_n", "_std"))]]
            t = t.merge(ci, on=["router", grouping], how="left")
        return t

    def joint_table(self, g1: str, g2: str) -> pd.DataFrame | None:
        """router, g1, g2, <m>_mean…: the real joint means of the raw runs (None without raw runs)."""
        a, b = sorted((g1, g2))
        return _collapse(self.stats.get(f"{a}__{b}"), ["router", a, b], self.metrics)


def _collapse(table: pd.DataFrame | None, keys: list[str], metrics: Sequence[str]) -> pd.DataFrame | None:
    """One row per key from a per-report-type stats table (each metric taken where it is present)."""
    if table is None or table.empty:
        return None
    keys = [k for k in keys if k in table.columns]
    cols = [c for m in metrics for c in (f"{m}_mean", f"{m}_std", f"{m}_n", f"{m}_ci95") if c in table.columns]
    t = table[keys + cols].groupby(keys, sort=True, dropna=False).first().reset_index()
    return t


def load_data(cfg: AnalysisConfig, *, manager: ResourceManager | None = None, workers: int | None = None,
              start_method: str | None = None) -> AnalysisData:
    """Read the averaged files and run the averaging of the raw reports (write=False) for one analysis."""
    averaged, skipped = load_averaged(cfg)
    warnings: list[str] = []
    groupings = candidate_groupings(cfg)
    if averaged:
        extra = [g for g in averaged if g not in groupings]
        groupings = [g for g in groupings if g in averaged] + sorted(extra)
    run_result, raw, stats = None, None, {}
    raw_dir = cfg.raw_dir
    if raw_dir.is_dir():
        try:
            run = job.Run(raw_dir, config=averager_config(cfg, [g for g in groupings if g in candidate_groupings(cfg)]),
                          manager=manager, write=False, learn=False, workers=workers, start_method=start_method)
        except OppndaError as exc:
            warnings.append(f"no raw reports read from {raw_dir}: {exc}")
        else:
            run_result = run.run()
            if run_result.averaged is None:
                warnings.append(f"averaging the raw reports failed: {run_result.error}")
            else:
                stats = run_result.tables
                for o in run_result.outcomes:
                    if str(o.status) == "failed":
                        warnings.append(f"raw report {os.path.basename(o.path)} failed: {o.reason}")
    if not averaged and not stats:
        raise OppndaError(f"Nothing to plot: no averaged files (*_average{cfg.extension}) in {cfg.report_dir} "
                          f"and no raw reports of types {cfg['report_types']} in {raw_dir}. Check "
                          "directories.report_dir / raw_dir and report_types, or run the averaging first.")
    metrics = list(cfg["metrics"]["include"])
    if not metrics:  # OppNDA reads only listed metrics; without a list: every metric found
        found: list[str] = []
        for df in averaged.values():
            found += [c for c in df.columns if c not in ("router", "value", "source_reports", "filenames")]
        for t in stats.values():
            found += [c[:-5] for c in t.columns if c.endswith("_mean")]
        metrics = list(dict.fromkeys(found))
    metrics = [m for m in metrics if m not in set(cfg["metrics"]["ignore"])]
    if run_result is not None and run_result.averaged is not None:
        raw = raw_frame(run_result.job.results, cfg, metrics)
        if raw.empty:
            raw = None
    if not averaged and stats:
        warnings.append(f"no averaged files in {cfg.report_dir}: the line and violin plots use the means of "
                        "the raw runs")
    return AnalysisData(averaged, raw, stats, metrics, groupings, run_result, warnings, skipped)


# ----------------------------------------------------------------------------------- planning

def _safe(name: str) -> str:
    return writers.safe_output_name(name)


def _fonts(settings: dict) -> dict:
    return dict(settings.get("font_sizes") or {})


def plan_figures(cfg: AnalysisConfig, data: AnalysisData) -> tuple[list[FigureTask], list[tuple[str, str]], list[str]]:
    """(tasks, (figure, why not drawn) list, warnings) for the config's enabled figures."""
    tasks: list[FigureTask] = []
    skipped: list[tuple[str, str]] = []
    warnings: list[str] = []
    th = cfg["plot_thresholds"]
    labels = cfg.labels()
    line_tables = {g: data.line_table(g) for g in data.groupings}
    hue = "router"

    line_groupings = []
    for g, t in line_tables.items():
        n = t[g].nunique() if g in t.columns else 0
        if n >= th["min_values_for_line"]:
            line_groupings.append(g)
        else:
            skipped.append((f"*_{g}_line", f"{n} value(s) of {g} < plot_thresholds.min_values_for_line"))

    if cfg.enabled("line_plots"):
        s = cfg.settings("line_plots")
        for g in line_groupings:
            t = line_tables[g]
            for m in data.metrics:
                if f"{m}_mean" not in t.columns or t[f"{m}_mean"].isna().all():
                    continue
                cols = ["router", g] + [c for c in (f"{m}_mean", f"{m}_ci95") if c in t.columns]
                tasks.append(FigureTask("line", _safe(f"{m}_{g}_line"), tuple(s["size"]),
                                        (t[cols].copy(), m, g, hue),
                                        {"labels": labels, "markers": list(s["markers"]),
                                         "marker_size": float(s["marker_size"]), "fonts": _fonts(s),
                                         "band": bool(s.get("ci_band", True))}))

    if cfg.enabled("3d_surface"):
        s = cfg.settings("3d_surface")
        st = s["style"]
        ok = [g for g in line_groupings if line_tables[g][g].nunique() >= th["min_values_for_surface"]]
        for g1, g2 in itertools.combinations(sorted(ok), 2):
            joint = data.joint_table(g1, g2)
            if joint is None:
                warnings.append(f"3D {g1}×{g2}: no raw runs, the surface is OppNDA's average of the two "
                                "one-parameter means, not the joint mean")
            for m in data.metrics:
                for router in sorted(line_tables[g1]["router"].unique()):
                    if joint is not None:
                        sub = joint[joint["router"] == router]
                        if f"{m}_mean" not in sub.columns or sub[f"{m}_mean"].isna().all():
                            continue
                        grid = sub[[g1, g2, f"{m}_mean"]].copy()
                    else:
                        grid = _marginal_grid(line_tables[g1], line_tables[g2], router, m, g1, g2)
                        if grid is None:
                            continue
                    tasks.append(FigureTask("surface", _safe(f"{router}_{m}_3d_{g1}_{g2}"), tuple(s["size"]),
                                            (grid, m, g1, g2),
                                            {"labels": labels, "cmap": st["cmap"], "alpha": float(st["alpha"]),
                                             "edge_color": st["edge_color"], "line_width": float(st["line_width"]),
                                             "elev": float(s["view"]["elev"]), "azim": float(s["view"]["azim"]),
                                             "fonts": _fonts(s)}))

    if cfg.enabled("violin_plots"):
        s = cfg.settings("violin_plots")
        st = s["style"]
        for g in line_groupings:
            t = line_tables[g]
            for m in data.metrics:
                if f"{m}_mean" not in t.columns or t[f"{m}_mean"].isna().all():
                    continue
                tasks.append(FigureTask("violin", _safe(f"violin_{g}_{m}"), tuple(s["size"]),
                                        (t[["router", g, f"{m}_mean"]].copy(), m, "router"),
                                        {"palette": st["palette"], "inner": st["inner"],
                                         "line_width": float(st["line_width"]),
                                         "quartile_line_width": float(st["quartile_line_width"]),
                                         "width": float(st["width"]), "gap": float(st["gap"]), "fonts": _fonts(s)}))

    raw = data.raw
    present = [m for m in data.metrics if raw is not None and m in raw.columns]
    if cfg.enabled("heatmaps"):
        s = cfg.settings("heatmaps")
        st = s["style"]
        if raw is None or "router" not in raw.columns:
            skipped.append(("*_correlation", "no raw reports"))
        else:
            n = len(present)
            fonts = _fonts(s)
            size = s.get("size") or ((n * 2.5 + 2, n * 2.5) if fonts.get("annotations", 9) > 14
                                     else (n * 1.1 + 2.4, n * 1.0 + 1.4))
            for router in sorted(raw["router"].astype(str).unique()):
                sub = raw[raw["router"].astype(str) == router]
                if len(sub) < th["min_files_for_heatmap"] or n < 2:
                    skipped.append((f"{router}_correlation", f"{len(sub)} run(s), {n} metric(s)"))
                    continue
                tasks.append(FigureTask("heatmap", _safe(f"{router}_correlation"), tuple(size),
                                        (sub[present].copy(), present),
                                        {"cmap": st["cmap"], "vmin": st.get("vmin"), "vmax": st.get("vmax"),
                                         "fonts": fonts}))

    if cfg.enabled("pairplot"):
        s = cfg.settings("pairplot")
        st = s["style"]
        if raw is None or not present:
            skipped.append(("pairplot", "no raw reports"))
        else:
            n = len(present)
            size = s.get("size") or (2.1 * n + 1.6, 2.1 * n)
            cols = (["router"] if "router" in raw.columns else []) + present
            tasks.append(FigureTask("pairplot", "pairplot", tuple(size), (raw[cols].copy(), present,
                                                                          "router" if "router" in raw.columns else None),
                                    {"palette": st["palette"], "diag_kind": st["diag_kind"], "alpha": float(st["alpha"]),
                                     "marker_size": float(st["marker_size"]), "edge_color": st["edge_color"],
                                     "edge_width": float(st["edge_width"]), "fonts": _fonts(s)}))
    return tasks, skipped, warnings


def _marginal_grid(t1: pd.DataFrame, t2: pd.DataFrame, router: str, metric: str, g1: str, g2: str):
    """OppNDA's surface without raw runs: Z(v1, v2) = (mean at g1=v1 + mean at g2=v2) / 2."""
    col = f"{metric}_mean"
    a = t1[(t1["router"] == router)] if col in t1.columns else None
    b = t2[(t2["router"] == router)] if col in t2.columns else None
    if a is None or b is None or a.empty or b.empty:
        return None
    rows = [{g1: v1, g2: v2, col: (z1 + z2) / 2} for v1, z1 in zip(a[g1], a[col]) for v2, z2 in zip(b[g2], b[col])]
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------- running

@dataclass
class AnalysisResult:
    """What an analysis produced: one pool outcome per figure, the files, the CSVs, the data."""

    job: Any                               # pool.JobResult of the figure tasks (None: nothing to draw)
    tasks: list[FigureTask]
    plots_dir: Path
    written: list[Path]
    csv: list[Path]
    skipped: list[tuple[str, str]]
    warnings: list[str]
    data: AnalysisData
    formats: tuple[str, ...]

    @property
    def outcomes(self) -> list:
        return list(self.job.outcomes) if self.job is not None else []

    @property
    def status(self) -> str:
        return str(self.job.status) if self.job is not None else "finished"

    @property
    def failed(self) -> list[tuple[str, str]]:
        """(figure name, reason) of every figure that could not be drawn."""
        names = {t.path: t.name for t in self.tasks}
        return [(names.get(o.path, o.path), o.reason or "") for o in self.outcomes if str(o.status) == "failed"]

    @property
    def exit_code(self) -> int:
        ok = self.status == "finished" and all(str(o.status) == "processed" for o in self.outcomes)
        return 0 if ok else 1

    def figures_frame(self) -> pd.DataFrame:
        """One row per figure: name, kind, status, reason, seconds, peak MB, estimate MB, files."""
        by_path = {o.path: o for o in self.outcomes}
        rows = []
        for t in self.tasks:
            o = by_path.get(t.path)
            rows.append({"name": t.name, "kind": t.kind, "status": str(o.status) if o else "not run",
                         "reason": o.reason if o else None, "seconds": o.seconds if o else None,
                         "peak_mb": o.peak_mb if o else None, "estimate_mb": o.estimate_mb if o else None,
                         "files": ", ".join(os.path.basename(p) for p in (o.result or [])) if o and o.result else ""})
        return pd.DataFrame(rows)

    def summary(self) -> str:
        counts = {}
        for o in self.outcomes:
            counts[str(o.status)] = counts.get(str(o.status), 0) + 1
        lines = [f"analysis {self.status}: {counts.get('processed', 0)} figure(s) drawn, {counts.get('failed', 0)} "
                 f"failed, {counts.get('cancelled', 0)} cancelled; {len(self.written)} file(s) "
                 f"({', '.join(self.formats)}) and {len(self.csv)} CSV in {self.plots_dir}"]
        lines += [f"  failed: {n}: {r}" for n, r in self.failed[:10]]
        lines += [f"  not drawn: {n}: {r}" for n, r in self.skipped[:10]]
        lines += [f"  warning: {w}" for w in self.warnings[:10]]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()


def _check_formats(formats: Sequence[str] | str) -> tuple[str, ...]:
    if isinstance(formats, str):
        formats = [f.strip() for f in formats.split(",") if f.strip()]
    out = tuple(dict.fromkeys(str(f).lower().lstrip(".") for f in formats))
    bad = [f for f in out if f not in FORMATS]
    if not out or bad:
        raise OppndaError(f"Unknown figure format(s) {', '.join(bad) or '(none)'}; use some of {', '.join(FORMATS)}.")
    return out


class Analysis(Background):
    """One analysis: data read and figures planned at construction; drawn in the pool by :meth:`run`.

    Like :class:`~oppnda_nb.job.Run`: :meth:`start` (background), :meth:`stop` (start no new
    figure, terminate the workers), :meth:`wait`, :meth:`run` (blocking; Ctrl-C stops),
    :meth:`add_listener` (the pool's events, then ``Event("analysis_done", AnalysisResult)``).
    """

    _what = "the analysis"

    def __init__(self, config: Any = None, *, manager: ResourceManager | None = None,
                 formats: Sequence[str] | str = ("png",), workers: int | None = None, dpi: float | None = None,
                 strict: bool = True, start_method: str | None = None, plots_dir: str | os.PathLike | None = None):
        self.config = config if isinstance(config, AnalysisConfig) else load_analysis_config(config, strict=strict)
        self.formats = _check_formats(formats)
        self.manager = manager if manager is not None else ResourceManager()
        self.dpi = float(dpi) if dpi is not None else self.config.dpi
        self.plots_dir = Path(plots_dir) if plots_dir is not None else self.config.plots_dir
        self.data = load_data(self.config, manager=self.manager, workers=workers, start_method=start_method)
        self.tasks, self.skipped, warnings = plan_figures(self.config, self.data)
        self.warnings = list(self.data.warnings) + warnings
        self._tmp = tempfile.mkdtemp(prefix="oppnda-figures-")
        files = write_tasks(self.tasks, self._tmp, self.dpi)
        self.plots_dir.mkdir(parents=True, exist_ok=True)
        self.job = None
        if files:
            self.job = pool.Job(files, draw_task, (str(self.plots_dir), self.formats, self.dpi), self.manager,
                                estimate=estimate_task, kind_of=task_kind, workers=workers,
                                start_method=start_method)
        self._listeners: list[Callable] = []
        self._thread: threading.Thread | None = None
        self._done = threading.Event()
        self.result: AnalysisResult | None = None

    def add_listener(self, callback: Callable) -> None:
        """``callback(event)`` for every pool event of the figures, then ``Event("analysis_done", result)``."""
        self._listeners.append(callback)
        if self.job is not None:
            self.job.add_listener(callback)

    def start(self) -> "Analysis":
        if self._thread is not None:
            raise OppndaError("This analysis was already started; create a new one to run again.")
        self._thread = threading.Thread(target=self._main, name="oppnda-figures", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self.job is not None:
            self.job.stop(wait=False)

    def _write_csv(self) -> list[Path]:
        raw = self.data.raw
        if not self.config.enabled("export_csv") or raw is None or "router" not in raw.columns:
            return []
        out = []
        for router in sorted(raw["router"].astype(str).unique()):
            target = writers.inside(self.plots_dir, _safe(f"{router}_metrics.csv"))
            writers.atomic_write(target, raw[raw["router"].astype(str) == router].to_csv(index=False))
            out.append(Path(target))
        return out

    def _main(self) -> None:
        job_result = None
        try:
            csv = self._write_csv()
            if self.job is not None:
                job_result = self.job.run()
            written = [Path(p) for o in (job_result.outcomes if job_result else [])
                       if str(o.status) == "processed" for p in (o.result or [])]
            self.result = AnalysisResult(job_result, self.tasks, self.plots_dir, written, csv, self.skipped,
                                         self.warnings, self.data, self.formats)
        finally:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._done.set()
        event = pool.Event("analysis_done", self.result)
        for cb in list(self._listeners):
            try:
                cb(event)
            except Exception:  # a broken listener must not break the analysis
                log.exception("an analysis listener failed")


def run_analysis(config: Any = None, *, manager: ResourceManager | None = None,
                 formats: Sequence[str] | str = ("png",), progress: Callable | None = None,
                 workers: int | None = None, dpi: float | None = None, strict: bool = True,
                 plots_dir: str | os.PathLike | None = None) -> AnalysisResult:
    """OppNDA's analysis engine in one call: ``config`` is its ``analysis_config.json`` (path or dict, None:
    every default); figures go to ``directories.plots_dir`` (or ``plots_dir``) as each of ``formats``.

    ``progress(event)`` gets the pool's events while the figures are drawn. ``dpi`` overrides
    ``plot_settings.general.dpi``. Raises OppndaError for a bad config or when there is nothing to plot;
    a figure that fails is in ``result.failed`` and the others are drawn.
    """
    analysis = Analysis(config, manager=manager, formats=formats, workers=workers, dpi=dpi, strict=strict,
                        plots_dir=plots_dir)
    if progress is not None:
        analysis.add_listener(progress)
    return analysis.run()
