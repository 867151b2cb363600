"""Group per-file summaries per strategy and report type, and compute the statistics."""
from __future__ import annotations

import operator
import os
from itertools import chain
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, NamedTuple, Sequence

import numpy as np

from ..errors import OppndaError
from ..naming import coerce_value
from ..stats import describe_rows
from . import writers
from .config import AveragerConfig, Strategy, load_config
from .summarize import FileSummary

if TYPE_CHECKING:
    import pandas as pd

#: CSV number format: 15 significant digits, so float noise never shows
CSV_FLOAT = "%.15g"
#: Points of the common time grid for time-series curves (capped by the longest run).
GRID_POINTS = 500


@dataclass
class GroupResult:
    """One averaged group: a strategy, a report type and the group's parameter values."""

    strategy: str
    report_type: str
    key: dict[str, str]               # group_by field -> text (as in the file names)
    files: list[str]
    output_name: str
    kind: str
    metrics: dict[str, dict[str, float]]   # metric -> {mean, std, n, ci95, ci_low, ci_high}
    curve: pd.DataFrame | None = None
    curve_kind: str | None = None


def average_curves(curves: Sequence[pd.DataFrame], kind: str | None, grid_points: int = GRID_POINTS,
                   step: bool = True) -> pd.DataFrame | None:
    """Average per-run curves (column ``x`` + value columns) across runs.

    ``kind == "histogram"``: per bin over the union of bins, a bin missing in a run counts 0.
    Otherwise (time series, delay CDFs, ...): on a common grid of ``min(grid_points, longest run)``
    evenly spaced x values over the range covered by EVERY run (max of starts .. min of ends; no
    extrapolation). ONE's series are step-like (a value holds until the next sample), so each run
    is sampled by forward fill (its last value at or before the grid point); ``step=False``
    interpolates linearly instead. Output columns: ``x`` and, per value column ``c``,
    ``c_mean``, ``c_std``, ``c_n``, ``c_ci95`` (NaN-aware like the scalars).
    """
    import pandas as pd

    curves = [c for c in curves if c is not None and len(c) and "x" in c.columns]
    if not curves:
        return None
    ycols = [c for c in curves[0].columns if c != "x" and all(c in k.columns for k in curves)
             and all(pd.api.types.is_numeric_dtype(k[c]) for k in curves)]
    if not ycols:
        return None
    if kind == "histogram":
        xs = np.unique(np.concatenate([np.asarray(c["x"], dtype=float) for c in curves]))
        xs = xs[~np.isnan(xs)]
        mats = {}
        for col in ycols:
            m = np.zeros((len(xs), len(curves)))
            for j, c in enumerate(curves):
                s = c.groupby("x", sort=True)[col].sum()
                idx = np.searchsorted(xs, np.asarray(s.index, dtype=float))
                m[idx, j] = np.asarray(s.values, dtype=float)
            mats[col] = m
        grid = xs
    else:
        lo = max(float(np.nanmin(np.asarray(c["x"], dtype=float))) for c in curves)
        hi = min(float(np.nanmax(np.asarray(c["x"], dtype=float))) for c in curves)
        if not (hi >= lo):
            return None
        npts = max(1, min(int(grid_points), max(len(c) for c in curves)))
        grid = np.array([lo]) if hi == lo else np.linspace(lo, hi, npts)
        mats = {}
        for col in ycols:
            m = np.full((len(grid), len(curves)), np.nan)
            for j, c in enumerate(curves):
                x = np.asarray(c["x"], dtype=float)
                y = np.asarray(c[col], dtype=float)
                ok = ~(np.isnan(x) | np.isnan(y))
                x, y = x[ok], y[ok]
                if x.size == 0:
                    continue
                order = np.argsort(x, kind="stable")
                x, y = x[order], y[order]
                if step:   # value holds until the next sample (last sample at or before the grid point)
                    idx = np.searchsorted(x, grid, side="right") - 1
                    m[:, j] = np.where(idx >= 0, y[np.clip(idx, 0, None)], np.nan)
                else:
                    m[:, j] = np.interp(grid, x, y)
            mats[col] = m
    out = {"x": grid}
    for col, m in mats.items():
        st = describe_rows(m)
        out[f"{col}_mean"] = st["mean"]
        out[f"{col}_std"] = st["std"]
        out[f"{col}_n"] = st["n"]
        out[f"{col}_ci95"] = st["ci95"]
    return pd.DataFrame(out)


def _group_stats(summaries: list[FileSummary]) -> dict[str, dict[str, float]]:
    """Per-metric stats over the runs, values in file order (OppNDA's nanmean order)."""
    matrix = _SameMetrics.of(summaries)
    if matrix is not None:   # common case: every run has the same metrics in the same order -> one matrix
        return matrix.stats(range(len(summaries)))
    out: dict[str, dict[str, float]] = {}
    metrics = list(dict.fromkeys(k for s in summaries for k in s.scalars))
    for k in metrics:   # ragged: only the values present, so the summation order is OppNDA's
        vals = np.array([[s.scalars[k] for s in summaries if k in s.scalars]], dtype=float)
        st = describe_rows(vals)
        out[k] = {name: (int(v[0]) if name == "n" else float(v[0])) for name, v in st.items()}
    return out


class _SameMetrics:
    """The runs' metrics as one matrix (a row per run, in their order) when every run has the same
    metrics in the same order; the statistics of any subset of rows, taken in the given order."""

    def __init__(self, metrics: tuple[str, ...], rows: np.ndarray):
        self.metrics, self.rows = metrics, rows

    @classmethod
    def of(cls, summaries: Sequence[FileSummary]) -> "_SameMetrics | None":
        dicts = [s.scalars for s in summaries]
        first = tuple(dicts[0]) if dicts else ()
        if not first or not all(map(first.__eq__, map(tuple, dicts))):
            return None
        # read straight from the dicts' values: the same floats as building the matrix from lists
        flat = np.fromiter(chain.from_iterable(d.values() for d in dicts), dtype=float, count=len(first) * len(dicts))
        return cls(first, flat.reshape(len(dicts), len(first)))

    def stats(self, rows: Sequence[int]) -> dict[str, dict[str, float]]:
        """Per-metric statistics of the runs ``rows`` (values in that order: OppNDA's nanmean order)."""
        part = self.rows if len(rows) == len(self.rows) and rows == range(len(self.rows)) else self.rows[list(rows)]
        cols = {name: v.tolist() for name, v in describe_rows(part.T).items()}
        return {k: {name: (int(v[i]) if name == "n" else v[i]) for name, v in cols.items()}
                for i, k in enumerate(self.metrics)}


def _output_name(template: str, strategy: Strategy, key: tuple[str, ...], first_params: dict[str, str],
                 report_type: str) -> str:
    name = template
    for f, v in zip(strategy.group_by, key):
        name = name.replace("{" + f + "}", str(v))
    for f, v in first_params.items():
        name = name.replace("{" + f + "}", str(v))
    if "{report_type}" in name:
        name = name.replace("{report_type}", str(report_type))
    return writers.safe_output_name(name)


def _units(summaries: list[FileSummary], config: AveragerConfig) -> list[tuple[str, list[FileSummary]]]:
    """(report type, its summaries in file-name order): config types by substring, else detected types."""
    named = sorted(zip(map(os.path.basename, map(_path_of, summaries)), summaries), key=_first)
    ordered = [s for _, s in named]
    if config.report_types:
        return [(rt, ordered if rt == "" else [s for n, s in named if rt in n]) for rt in config.report_types]
    types = sorted({s.report_type for s in ordered})
    return [(rt, [s for s in ordered if s.report_type == rt]) for rt in types]


_path_of = operator.attrgetter("path")
_params_of = operator.attrgetter("params")
_first = operator.itemgetter(0)


def _group_keys(items: list[FileSummary], fields: Sequence[str]) -> list[tuple[str, ...]]:
    """Each summary's group key: its ``fields`` values as text (a missing one: 'unknown')."""
    if fields:
        get = operator.itemgetter(*fields)
        try:    # every file names every field, as text (what the name pattern gives): read them at once
            raw = list(map(get, map(_params_of, items)))
            keys = raw if len(fields) > 1 else [(v,) for v in raw]
            if all(type(v) is str for key in set(keys) for v in key):
                return keys
        except (KeyError, TypeError):
            pass
    return [tuple([str(p.get(f, "unknown")) for f in fields]) for p in map(_params_of, items)]


def _buckets(summaries: list[FileSummary], cfg: AveragerConfig):
    """Every group in output order: (strategy, report type, key, members, why skipped or None)."""
    for _, strat, rt, key, members, why in _unit_buckets(summaries, cfg):
        yield strat, rt, key, members, why


def _unit_buckets(summaries: list[FileSummary], cfg: AveragerConfig):
    """:func:`_buckets` with the summaries of each group's report type in front."""
    for rt, items in _units(summaries, cfg):
        for strat in cfg.strategies:
            buckets: dict[tuple[str, ...], list[FileSummary]] = {}
            for key, s in zip(_group_keys(items, strat.group_by), items):
                got = buckets.get(key)
                if got is None:
                    buckets[key] = [s]
                else:
                    got.append(s)
            for key in sorted(buckets):
                members = buckets[key]
                n_unique = len(set(map(_path_of, members)))
                why = f"{n_unique} file(s) < min_files={strat.min_files}" if n_unique < strat.min_files else None
                yield items, strat, rt, key, members, why


def output_names(summaries: Iterable[FileSummary], config: Any = None) -> list[str]:
    """The names :func:`aggregate` would give the groups of ``summaries`` (no statistics computed:
    a run checks its output folder with them before any work)."""
    cfg = load_config(config)
    return [_output_name(strat.template, strat, key, members[0].params, rt)
            for strat, rt, key, members, why in _buckets(list(summaries), cfg) if why is None]


class _Named(NamedTuple):
    """What grouping reads of a summary: its path, name parameters and report type."""

    path: str
    params: dict[str, str]
    report_type: str


def planned_output_names(paths: Sequence[str], params: Mapping[str, dict[str, str]],
                         report_type_of: Callable[[str], str], config: Any = None) -> list[str]:
    """:func:`output_names` from the file names alone (``params``: path -> its name's parameters,
    ``report_type_of(path)``), without a FileSummary per file: what a run checks before any work."""
    empty: dict[str, str] = {}
    return output_names([_Named(p, params.get(p, empty), report_type_of(p)) for p in paths], config)


def aggregate(summaries: Iterable[FileSummary], config: Any = None) -> "AverageResult":
    """Group the per-file summaries per strategy and report type, and compute the statistics."""
    cfg = load_config(config)
    summaries = list(summaries)
    groups: list[GroupResult] = []
    skipped_groups: list[tuple[str, str, dict[str, str], str]] = []
    units: dict[int, tuple] = {}   # per report type's summaries: (row of each, matrix or None, them)
    for items, strat, rt, key, members, why in _unit_buckets(summaries, cfg):
        kd = dict(zip(strat.group_by, key))
        if why is not None:
            skipped_groups.append((strat.name, rt, kd, why))
            continue
        kinds = {m.kind for m in members}
        ckinds = [m.curve_kind for m in members if m.curve is not None]
        ckind = ckinds[0] if ckinds else None
        curve = average_curves([m.curve for m in members if m.curve_kind == ckind], ckind) if ckind else None
        groups.append(GroupResult(
            strategy=strat.name, report_type=rt, key=kd, files=[m.path for m in members],
            output_name=_output_name(strat.template, strat, key, members[0].params, rt),
            kind="keyvalue" if "keyvalue" in kinds else sorted(kinds)[0],
            metrics=_stats_in(units, items, members), curve=curve, curve_kind=ckind,
        ))
    return AverageResult(config=cfg, groups=groups, skipped_groups=skipped_groups, files_read=len(summaries))


def _stats_in(units: dict, items: list[FileSummary], members: list[FileSummary]) -> dict[str, dict[str, float]]:
    """:func:`_group_stats` of ``members``, a group of ``items`` (one report type's summaries): when all of
    ``items`` have the same metrics, their matrix is read once for every strategy's groups."""
    unit = units.get(id(items))
    if unit is None:
        matrix = _SameMetrics.of(items)
        unit = units[id(items)] = ({id(s): i for i, s in enumerate(items)} if matrix is not None else {}, matrix, items)
    rows, matrix, _ = unit
    if matrix is None:
        return _group_stats(members)
    return matrix.stats([rows[id(m)] for m in members])


def _coerce_key(v: str) -> Any:
    return coerce_value(v)


def _of_type(table: pd.DataFrame, report_type: str) -> pd.DataFrame:
    """The rows of one report type, without the columns that are empty for it."""
    return table[table["report_type"] == report_type].dropna(axis=1, how="all").reset_index(drop=True)


@dataclass
class AverageResult:
    """Everything an averaging job produced (tables, long frame, curves, errors, skips, timing)."""

    config: AveragerConfig
    groups: list[GroupResult] = field(default_factory=list)
    skipped_groups: list[tuple[str, str, dict[str, str], str]] = field(default_factory=list)
    files_read: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)      # (file, reason): read/parse failures
    skipped: list[tuple[str, str]] = field(default_factory=list)     # (file, reason): not selected
    written: list[Path] = field(default_factory=list)
    output_dir: Path | None = None
    folder: Path | None = None
    seconds: float = 0.0
    workers: int = 1
    warnings: list[str] = field(default_factory=list)

    # ---- tables
    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        """One wide DataFrame per strategy: group_by columns (numbers where numeric), ``report_type``,
        ``n_files``, then per metric ``<metric>_mean``, ``_std``, ``_n``, ``_ci95``."""
        import pandas as pd

        out: dict[str, pd.DataFrame] = {}
        for strat in self.config.strategies:
            rows = []
            for g in self.groups:
                if g.strategy != strat.name:
                    continue
                row: dict[str, Any] = {f: _coerce_key(v) for f, v in g.key.items()}
                row.setdefault("report_type", g.report_type)
                row["n_files"] = len(g.files)
                for m, st in g.metrics.items():
                    row[f"{m}_mean"] = st["mean"]
                    row[f"{m}_std"] = st["std"]
                    row[f"{m}_n"] = st["n"]
                    row[f"{m}_ci95"] = st["ci95"]
                rows.append(row)
            # report type, then parameters in numeric order where numeric (TTL 60 < 180 < 300)
            rows.sort(key=lambda r: (r["report_type"], *((isinstance(r[f], str), r[f]) for f in strat.group_by)))
            cols = list(strat.group_by) + [c for c in ("report_type", "n_files") if c not in strat.group_by]
            frame = pd.DataFrame(rows, columns=None if rows else cols)
            for c in frame.columns:
                if c.endswith("_n"):  # counts stay integers where a metric is missing in some groups
                    frame[c] = frame[c].astype("Int64")
            out[strat.name] = frame
        return out

    def table(self, strategy: str, report_type: str | None = None) -> pd.DataFrame:
        """The wide table of one strategy, optionally one report type (columns that are all NaN dropped)."""
        tables = self.tables
        t = tables.get(strategy)
        if t is None:
            raise OppndaError(f"No strategy {strategy!r}; have {', '.join(tables) or 'none'}.")
        return _of_type(t, report_type) if report_type is not None and len(t) else t

    @property
    def long(self) -> pd.DataFrame:
        """Long format: strategy, report_type, the group_by fields, n_files, metric, mean, std, n, ci95, ci_low, ci_high."""
        import pandas as pd

        params: list[str] = []
        for s in self.config.strategies:
            for f in s.group_by:
                if f not in params and f != "report_type":
                    params.append(f)
        rows = []
        for g in self.groups:
            base = {"strategy": g.strategy, "report_type": g.report_type}
            base.update({f: _coerce_key(g.key[f]) if f in g.key else None for f in params})
            base["n_files"] = len(g.files)
            for m, st in g.metrics.items():
                r = dict(base)
                r["metric"] = m
                r.update(st)
                rows.append(r)
        cols = ["strategy", "report_type", *params, "n_files", "metric", "mean", "std", "n", "ci95", "ci_low", "ci_high"]
        return pd.DataFrame(rows, columns=cols)

    @staticmethod
    def _curve_rows(g: GroupResult, rows: slice = slice(None)) -> pd.DataFrame:
        """One group's averaged curve (``rows`` of it) with its group_by values, report_type and
        curve_kind in front."""
        c = g.curve.iloc[rows].copy()
        for i, (f, v) in enumerate(g.key.items()):
            c.insert(i, f, _coerce_key(v))
        if "report_type" not in c.columns:
            c.insert(len(g.key), "report_type", g.report_type)
        c.insert(len(g.key) + 1, "curve_kind", g.curve_kind)
        return c

    @property
    def curves(self) -> dict[str, pd.DataFrame]:
        """Averaged curves per strategy (long): group_by fields, report_type, curve_kind, x, <col>_mean/std/n/ci95."""
        import pandas as pd

        out: dict[str, pd.DataFrame] = {}
        for strat in self.config.strategies:
            parts = [self._curve_rows(g) for g in self.groups if g.strategy == strat.name and g.curve is not None]
            if parts:
                out[strat.name] = pd.concat(parts, ignore_index=True)
        return out

    def _write_curves(self, out: Path) -> list[Path]:
        """``curves_<strategy>_<report type>.csv``, written group by group (one group's curve in memory
        at a time; each type's own columns, so no empty cells)."""
        paths = []
        units: dict[tuple[str, str], list[GroupResult]] = {}
        for g in self.groups:
            if g.curve is not None:
                units.setdefault((g.strategy, g.report_type), []).append(g)
        for (strategy, rt), groups in units.items():
            columns = list(dict.fromkeys(c for g in groups for c in self._curve_rows(g, slice(0)).columns))
            target = writers.inside(out, writers.safe_output_name(f"curves_{strategy}_{rt}.csv"))
            with writers.atomic_file(target) as fh:
                fh.write(",".join(columns) + "\n")
                for g in groups:  # (numbers as Python writes them: fast, exact)
                    self._curve_rows(g).reindex(columns=columns).to_csv(fh, index=False, header=False)
            paths.append(target)
        return paths

    # ---- outputs
    def write_oppnda(self, output_dir: str | os.PathLike | None = None, *, include_summaries: bool = False,
                     protect: Iterable[str] = ()) -> list[Path]:
        """Write OppNDA-format averaged files (atomically, only inside ``output_dir``); returns the paths.

        Only key:value reports get files (as OppNDA), unless ``include_summaries``. A file in
        ``protect`` (the run's inputs) is never replaced: that raises OppndaError.
        """
        protected = writers.Protected(protect)
        out = Path(output_dir) if output_dir is not None else (self.output_dir or (self.folder / "averaged" if self.folder else None))
        if out is None:
            raise OppndaError("No output folder: give write_oppnda(output_dir).")
        out.mkdir(parents=True, exist_ok=True)
        sep, prec = self.config.data_separator, self.config.precision
        written: list[Path] = []
        seen: dict[str, str] = {}
        for g in self.groups:
            if not g.metrics or (g.kind != "keyvalue" and not include_summaries):
                continue
            text = "".join(f"{k}{sep} {g.metrics[k]['mean']:.{prec}f}\n" for k in sorted(g.metrics))
            target = writers.inside(out, g.output_name)
            if protected.holds(target):
                raise OppndaError(f"Refusing to replace the input report {target} with an average; choose "
                                  "another output folder or output_template.")
            if g.output_name in seen:
                twice = (f"{g.output_name} written twice (groups {seen[g.output_name]} and "
                         f"{g.strategy}:{g.key}); the last one wins, as in OppNDA")
                if twice not in self.warnings:  # (written again: an up-to-date re-run writes its outputs anew)
                    self.warnings.append(twice)
            seen[g.output_name] = f"{g.strategy}:{g.key}"
            writers.atomic_write(target, text)
            if target not in written:
                written.append(target)
        self.output_dir = out
        self.written = written
        return written

    def to_csv(self, output_dir: str | os.PathLike) -> list[Path]:
        """CSV export: ``<strategy>_<report type>.csv`` (wide, that type's metrics only), ``long.csv``,
        ``curves_<strategy>_<report type>.csv``, ``skipped.csv``, ``errors.csv``. Numbers with 15 significant digits
        (``19995.1``, not the float noise ``19995.100000000002``)."""
        import pandas as pd

        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths: list[Path] = []

        def put(name: str, df: pd.DataFrame, float_format: str | None = CSV_FLOAT) -> None:
            target = writers.inside(out, writers.safe_output_name(name))
            with writers.atomic_file(target) as fh:
                df.to_csv(fh, index=False, float_format=float_format)
            paths.append(target)

        for name, t in self.tables.items():  # one table per strategy and report type: only its metrics
            for rt in (sorted(t["report_type"].unique()) if len(t) else []):
                put(f"{name}_{rt}.csv", _of_type(t, rt))
        put("long.csv", self.long)
        paths += self._write_curves(out)
        put("skipped.csv", pd.DataFrame([(writers.printable(f), r) for f, r in self.skipped], columns=["file", "reason"]))
        put("errors.csv", pd.DataFrame([(writers.printable(f), r) for f, r in self.errors], columns=["file", "reason"]))
        return paths

    # ---- reporting
    def summary_lines(self) -> list[str]:
        """One line per strategy plus totals (files read, skipped with reasons, failed, written, seconds)."""
        written = {p.name for p in self.written}
        lines = []
        for s in self.config.strategies:
            gs = [g for g in self.groups if g.strategy == s.name]
            nw = len({g.output_name for g in gs if g.output_name in written})
            ns = sum(1 for x in self.skipped_groups if x[0] == s.name)
            nt = len({g.report_type for g in gs})
            tables_only = len({g.report_type for g in gs if g.kind != "keyvalue"})
            lines.append(f"{s.name}: group by {', '.join(s.group_by)}: {len(gs)} groups averaged "
                         f"({nt} report type(s)), {nw} files written, {ns} groups skipped "
                         f"(fewer than min_files={s.min_files})"
                         + (f"; {tables_only} report type(s) without a key:value format are in the CSV "
                            "tables only (OppNDA writes files for key:value reports)" if tables_only else ""))
        reasons: dict[str, int] = {}
        for _, r in self.skipped:
            reasons[r] = reasons.get(r, 0) + 1
        why = "; ".join(f"{n} {r}" for r, n in sorted(reasons.items(), key=lambda kv: -kv[1]))
        lines.append(f"total: {self.files_read} files read, {len(self.skipped)} skipped"
                     + (f" ({why})" if why else "") + f", {len(self.errors)} failed, "
                     f"{len(self.written)} averaged files written" + (f" to {self.output_dir}" if self.output_dir else "")
                     + f", {self.seconds:.2f} s, {self.workers} worker(s)")
        for p, r in self.errors[:10]:
            lines.append(f"failed: {writers.printable(os.path.basename(p))}: {r}")
        if len(self.errors) > 10:
            lines.append(f"failed: ... and {len(self.errors) - 10} more")
        lines.extend(f"warning: {w}" for w in self.warnings)
        return lines

    def summary(self) -> str:
        return "\n".join(self.summary_lines())


