"""Group runs by sweep parameters and average them across seeds (OppNDA-compatible).

The job (``average_folder``) is: select files (OppNDA's rules) -> summarize every file ONCE
in a process pool (``summarize_file``: reports.read_report + reports.summarize_report) ->
group the summaries per strategy (``average_groups`` of the config) -> mean / sample std /
n / t-based 95% CI per metric -> tables, OppNDA-compatible averaged text files, CSV.

OppNDA semantics kept exactly (so OppNDA configs and their outputs carry over unchanged):

* Selection per report type: the name ends with ``file_filter.extension`` (default
  ``.txt``); a non-empty report type must be a substring of the file name; names whose
  ``lower()`` contains ``"average"`` and names starting with an ``output_template``'s fixed
  prefix (text before the first ``{``) are earlier outputs and are skipped. A non-empty
  ``file_filter.contains`` must also be a substring of the name.
* Groups: key = the ``group_by`` component strings (missing -> ``'unknown'``), processed in
  sorted key order; groups with fewer unique files than ``min_files`` (default 2) are skipped.
* Mean = ``numpy.nanmean`` of the values in file-name order (NaN ignored; all-NaN -> nan).
* Output name: ``output_template`` with ``{field}`` replaced for the ``group_by`` fields, then
  for every component of the group's first file (then ``{report_type}`` by the group's
  report type if still present, an extension for patterns without a report field). The name
  is sanitised so it can only land inside the output folder.
* Output file: ``f"{field}{separator} {mean:.{precision}f}\\n"`` for the fields in sorted
  order, written atomically (temp file + ``os.replace``). Groups with no data get no file.

Beyond OppNDA: every report type is summarised (reports.summarize_report) so histogram,
time-series and per-message reports are averaged too: their per-run scalars like any metric,
and their curves per bin (histograms; a bin missing in a run counts 0) or on a common time grid
(everything else: ``GRID_POINTS`` evenly spaced points over the time range covered by every run
of the group, each run sampled by forward fill as ONE's series are step-like; no extrapolation). OppNDA files are written only
for key:value reports (what OppNDA itself writes); pass ``include_summaries=True`` to
``write_oppnda`` to also write the scalar summaries of other report types.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from .errors import OppndaError
from .naming import (
    DEFAULT_FILENAME_PATTERN, REPORT_FIELDS, SCENARIO_FIELDS, SEED_FIELDS, NamePattern, as_pattern,
    coerce_value, compile_template, pattern_from_oppnda,
)
from .stats import describe_rows

__all__ = [
    "Strategy", "AveragerConfig", "SummarizeSettings", "FileSummary", "GroupResult", "AverageResult",
    "select_files", "summarize_file", "summarize_files", "aggregate", "average_folder", "average_curves",
    "prepare_config", "sample_folder", "GRID_POINTS", "SEQUENTIAL_MAX_FILES",
]

#: Points of the common time grid for time-series curves (capped by the longest run).
GRID_POINTS = 500
#: At or below this many files the job runs in-process (a pool costs more than it saves).
SEQUENTIAL_MAX_FILES = 200


# --------------------------------------------------------------------------- config

@dataclass
class Strategy:
    """One OppNDA ``average_groups`` entry: group the runs by ``group_by`` fields."""

    name: str
    group_by: list[str]
    min_files: int = 2
    output_template: str | None = None

    @property
    def template(self) -> str:
        if self.output_template:
            return self.output_template
        return "{report_type}_" + "_".join("{%s}" % f for f in self.group_by) + f"_{_safe_token(self.name)}_average.txt"

    def prefix(self) -> str:
        """The template's fixed prefix (text before the first ``{``): OppNDA skips inputs starting with it."""
        return self.template.split("{", 1)[0]


@dataclass
class AveragerConfig:
    """An OppNDA averager config (the same JSON format, accepted unchanged).

    ``pattern`` is the compiled ``filename_pattern`` (or a readable template given as
    ``"filename_template"`` / the ``pattern`` argument). An empty ``report_types`` list means
    every report type found (grouped by the detected type). ``base_dir`` is the config file's
    folder: a relative ``folder`` that does not exist relative to the working directory is
    resolved against it.
    """

    folder: str | None = None
    extension: str = ".txt"
    contains: str = ""
    report_types: list[str] = field(default_factory=list)
    pattern: NamePattern = field(default_factory=lambda: pattern_from_oppnda(DEFAULT_FILENAME_PATTERN))
    data_separator: str = ":"
    ignore_fields: list[str] = field(default_factory=list)
    strategies: list[Strategy] = field(default_factory=list)
    precision: int = 4
    base_dir: str | None = None
    source: str | None = None

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "AveragerConfig":
        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise OppndaError(f"Config file not found: {p}. Give the path of an OppNDA averager_config.json.") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise OppndaError(f"Cannot read config {p}: {exc}. It must be a JSON object (OppNDA averager format).") from None
        cfg = cls.from_dict(data, base_dir=str(p.resolve().parent))
        cfg.source = str(p)
        return cfg

    @classmethod
    def from_dict(cls, d: dict, base_dir: str | None = None) -> "AveragerConfig":
        if not isinstance(d, dict):
            raise OppndaError("An averager config must be a JSON object / dict (OppNDA averager format).")
        ff = d.get("file_filter") or {}
        if "filename_template" in d:
            pattern = compile_template(d["filename_template"])
        elif "filename_pattern" in d:
            fp = d["filename_pattern"]
            pattern = compile_template(fp) if isinstance(fp, str) else pattern_from_oppnda(fp)
        else:
            pattern = pattern_from_oppnda(DEFAULT_FILENAME_PATTERN)
        rtypes = d.get("report_types") or []
        if isinstance(rtypes, str):
            rtypes = [rtypes]
        strategies = []
        for i, g in enumerate(d.get("average_groups") or []):
            if not isinstance(g, dict) or not isinstance(g.get("group_by"), (list, tuple)):
                raise OppndaError(f"average_groups[{i}] needs a 'group_by' list of component names.")
            strategies.append(Strategy(
                name=str(g.get("name") or f"group_{i + 1}"),
                group_by=[str(x) for x in g["group_by"]],
                min_files=int(g.get("min_files", 2)),
                output_template=g.get("output_template") or None,
            ))
        if not strategies:
            strategies = default_strategies(pattern.fields)
        try:
            precision = int((d.get("output") or {}).get("precision", 4))
        except (TypeError, ValueError):
            raise OppndaError("'output.precision' must be an integer (digits after the decimal point).") from None
        return cls(
            folder=d.get("folder"),
            extension=str(ff.get("extension", ".txt") or ""),
            contains=str(ff.get("contains", "") or ""),
            report_types=[str(x) for x in rtypes],
            pattern=pattern,
            data_separator=str(d.get("data_separator", ":")),
            ignore_fields=[str(x) for x in (d.get("ignore_fields") or [])],
            strategies=strategies,
            precision=precision,
            base_dir=base_dir,
        )

    @classmethod
    def default(cls, folder: str | os.PathLike | None = None, pattern: Any = None,
                group_by: Any = None) -> "AveragerConfig":
        """ONE's standard naming ``TEST_<router>_<seed>_<ttl>_<buffer>_<Report>.txt``, every report type
        found, ``sim_time`` ignored, precision 4; strategies from :func:`default_strategies`
        (every parameter but the seed; router x TTL; router x buffer) unless ``group_by`` is given."""
        cfg = cls(folder=None if folder is None else str(folder), pattern=as_pattern(pattern),
                  ignore_fields=["sim_time"])
        cfg.strategies = strategies_from(group_by) if group_by is not None else default_strategies(cfg.pattern.fields)
        return cfg

    def settings(self) -> "SummarizeSettings":
        """The picklable per-file settings sent to workers."""
        return SummarizeSettings(pattern=self.pattern, separator=self.data_separator,
                                 ignore_fields=tuple(self.ignore_fields))

    def resolve_folder(self, folder: str | os.PathLike | None = None) -> Path:
        """The input folder: ``folder`` if given, else the config's (relative: cwd first, then the config's dir)."""
        f = folder if folder is not None else self.folder
        if f is None or str(f) == "":
            raise OppndaError("No input folder: give folder=... (or --folder DIR), or set \"folder\" in the config.")
        p = Path(f).expanduser()
        if not p.is_absolute() and not p.is_dir() and self.base_dir and folder is None:
            alt = Path(self.base_dir) / p
            if alt.is_dir():
                p = alt
        if not p.is_dir():
            hint = f" (also tried relative to the config's folder {self.base_dir})" if self.base_dir and folder is None else ""
            raise OppndaError(f"Input folder not found: {f}{hint}. Give an existing folder of ONE reports.")
        return p


def default_strategies(fields: Sequence[str]) -> list[Strategy]:
    """Averaging strategies a researcher expects from a name pattern's fields.

    1. ``average``: every parameter except the seed and the report type (one group per
       parameter combination, averaged over seeds);
    2. with a ``router`` field, for every other parameter X (scenario excluded):
       ``X_average`` grouping by (router, X) (OppNDA's reference strategies for ttl and buffer).
    """
    params = [f for f in fields if f not in SEED_FIELDS and f not in REPORT_FIELDS]
    if not params:
        raise OppndaError("The name pattern has no parameter besides seed/report type to group by; "
                          "give group_by=[...] explicitly.")
    out = [Strategy("average", list(params), 2, "{report_type}_" + "_".join("{%s}" % f for f in params) + "_average.txt")]
    if "router" in params:
        for f in params:
            if f == "router" or f in SCENARIO_FIELDS:
                continue
            out.append(Strategy(f"{f}_average", ["router", f], 2, "{report_type}_{router}_{%s}_%s_average.txt" % (f, f)))
    return out


def strategies_from(group_by: Any) -> list[Strategy]:
    """``group_by`` argument -> strategies: ``["router","ttl"]`` (one), a list of lists, or ``{name: [...]}``."""
    if isinstance(group_by, str):
        group_by = [x.strip() for x in group_by.split(",") if x.strip()]
    if isinstance(group_by, dict):
        items = list(group_by.items())
    elif isinstance(group_by, (list, tuple)) and group_by and all(isinstance(x, str) for x in group_by):
        items = [("by_" + "_".join(group_by), list(group_by))]
    elif isinstance(group_by, (list, tuple)) and group_by and all(isinstance(x, (list, tuple)) for x in group_by):
        items = [("by_" + "_".join(g), list(g)) for g in group_by]
    else:
        raise OppndaError(f"group_by must be field names like ['router', 'ttl'] (or a list of such lists), got {group_by!r}.")
    out = []
    for name, gb in items:
        if not gb or not all(isinstance(x, str) and x for x in gb):
            raise OppndaError(f"group_by for {name!r} must be a non-empty list of field names.")
        out.append(Strategy(str(name), list(gb), 2, None))
    return out


def load_config(config: Any = None) -> AveragerConfig:
    """An AveragerConfig from a path, a dict (OppNDA format), an AveragerConfig or None (default)."""
    if config is None:
        return AveragerConfig.default()
    if isinstance(config, AveragerConfig):
        return config
    if isinstance(config, dict):
        return AveragerConfig.from_dict(config)
    if isinstance(config, (str, os.PathLike)):
        return AveragerConfig.from_json(config)
    raise OppndaError(f"config must be a path to an OppNDA averager JSON, a dict or None, not {type(config).__name__}.")


def prepare_config(config: Any = None, pattern: Any = None, group_by: Any = None) -> AveragerConfig:
    """The config of a job: ``config`` (see :func:`load_config`) with ``pattern`` and ``group_by``
    overriding its name pattern and strategies (a new pattern without a config gets the default
    strategies for its fields)."""
    cfg = load_config(config)
    if cfg is config:  # never change the caller's object
        cfg = replace(cfg, strategies=list(cfg.strategies))
    if pattern is not None:
        cfg.pattern = as_pattern(pattern)
        if group_by is None and config is None:
            cfg.strategies = default_strategies(cfg.pattern.fields)
    if group_by is not None:
        cfg.strategies = strategies_from(group_by)
        known = set(cfg.pattern.fields) | {"report_type"}
        unknown = [f for s in cfg.strategies for f in s.group_by if f not in known]
        if unknown:
            raise OppndaError(f"Cannot group by {', '.join(map(repr, unknown))}: not a parameter of the file "
                              f"names. The name pattern has: {', '.join(cfg.pattern.fields)}.")
    return cfg


# --------------------------------------------------------------------------- selection

def _select(folder: Path, config: AveragerConfig) -> tuple[list[str], list[tuple[str, str]]]:
    """OppNDA's file selection over the folder listing (non-recursive, sorted by name)."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        raise OppndaError(f"Cannot list folder {folder}: {exc}.") from None
    prefixes = sorted({s.prefix() for s in config.strategies if s.prefix()})
    files: list[str] = []
    skipped: list[tuple[str, str]] = []
    ext = config.extension
    for e in entries:
        try:
            if not e.is_file():
                continue
        except OSError:
            continue
        name, path = e.name, os.path.join(str(folder), e.name)
        if ext and not name.endswith(ext):
            skipped.append((path, f"not a {ext} file"))
            continue
        if "average" in name.lower():
            skipped.append((path, "earlier averaged output (name contains 'average')"))
            continue
        pre = next((p for p in prefixes if name.startswith(p)), None)
        if pre is not None:
            skipped.append((path, f"earlier averaged output (name starts with output prefix {pre!r})"))
            continue
        if config.contains and config.contains not in name:
            skipped.append((path, f"name does not contain {config.contains!r} (file_filter.contains)"))
            continue
        if config.report_types and not any((rt == "" or rt in name) for rt in config.report_types):
            skipped.append((path, "report type not in the config's report_types"))
            continue
        params, reason = config.pattern.parse_with_reason(name)
        if params is None:
            skipped.append((path, reason or "file name does not match the name pattern"))
            continue
        files.append(path)
    return files, skipped


def select_files(folder: str | os.PathLike, config: Any = None) -> tuple[list[str], list[tuple[str, str]]]:
    """(files to read, [(path, reason)] skipped) for a folder under OppNDA's selection rules."""
    cfg = load_config(config)
    return _select(Path(folder), cfg)


# --------------------------------------------------------------------------- per-file worker

@dataclass(frozen=True)
class SummarizeSettings:
    """What a worker needs to summarize one file (picklable)."""

    pattern: NamePattern | None = None
    separator: str = ":"
    ignore_fields: tuple[str, ...] = ()
    report_type: str | None = None     # force a reader; None: detect from the name / content
    fast_keyvalue: bool = True          # key:value reports via reports.read_keyvalue (no DataFrame)


@dataclass
class FileSummary:
    """The per-run summary of one report file (picklable; what workers send back)."""

    path: str
    params: dict[str, str]
    report_type: str
    scalars: dict[str, float]
    curve: pd.DataFrame | None = None
    curve_kind: str | None = None
    kind: str = "keyvalue"


def summarize_file(path: str, settings: SummarizeSettings) -> FileSummary:
    """Read one report once and summarize it (TOP-LEVEL worker function; raises reports.ReportError)."""
    from . import reports

    name = os.path.basename(path)
    params = (settings.pattern.parse(name) if settings.pattern is not None else None) or {}
    if settings.fast_keyvalue:
        # Same parser as read_report's key:value path (reports._parse_keyvalue, OppNDA's loop), but
        # without building a DataFrame: ~15x faster for MessageStatsReport-sized files.
        rt = settings.report_type or reports.detect_report_type(path, head=b"")   # name only, no I/O
        if reports.KIND_OF.get(rt) == "keyvalue":
            metrics = reports.read_keyvalue(path, settings.separator, settings.ignore_fields)
            if metrics:
                return FileSummary(path=str(path), params=params, report_type=rt,
                                   scalars=metrics, kind="keyvalue")
            # nothing parsed: fall through so read_report raises a ReportError that says why
    rep = reports.read_report(path, settings.report_type, separator=settings.separator)
    summ = reports.summarize_report(rep)
    ignore = set(settings.ignore_fields)
    scalars: dict[str, float] = {}
    for k, v in (summ.scalars or {}).items():
        if k in ignore:
            continue
        try:
            scalars[str(k)] = float(v)
        except (TypeError, ValueError):
            continue
    return FileSummary(path=str(path), params=params, report_type=rep.report_type, scalars=scalars,
                       curve=summ.curve, curve_kind=summ.curve_kind, kind=rep.kind)


def summarize_files(paths: Sequence[str], settings: SummarizeSettings) -> list[tuple[str, FileSummary | None, str | None]]:
    """Summarize a chunk of files: [(path, summary or None, error reason or None)] (TOP-LEVEL worker)."""
    from .reports import ReportError

    out: list[tuple[str, FileSummary | None, str | None]] = []
    for p in paths:
        try:
            out.append((p, summarize_file(p, settings), None))
        except ReportError as exc:
            out.append((p, None, getattr(exc, "reason", None) or str(exc)))
        except Exception as exc:  # a reader bug must not kill the whole job
            out.append((p, None, f"unexpected {type(exc).__name__}: {exc}"))
    return out


def _pool_reason(path: str, reason: str | None) -> str:
    """The pool's failure reason ("Type: message") in summarize_files' words, so a file fails
    with the same reason in-process and in the pool."""
    reason = reason or "unknown error"
    if reason.startswith("ReportError: "):
        rest = reason[len("ReportError: "):]
        return rest[len(path) + 2:] if rest.startswith(path + ": ") else rest
    if reason.startswith(("worker died", "stopped", "interrupted", "the pool", "worker processes")):
        return reason
    return f"unexpected {reason}"


def _summarize_all(files: list[str], settings: SummarizeSettings, workers: int | None,
                   start_method: str | None = None, manager: Any = None,
                   batch: bool = True) -> tuple[list[FileSummary], list[tuple[str, str]], int, list[str]]:
    """Summarize every file once: in the memory-aware pool (:class:`pool.Job`), or in-process
    for tiny inputs (at most SEQUENTIAL_MAX_FILES files with ``workers=None``, or ``workers=1``),
    where starting worker processes costs more than it saves.

    Returns (summaries in input order, [(file, reason)] failed or cancelled, workers, warnings).
    """
    if workers is not None:
        workers = max(1, int(workers))
    if len(files) <= 1 or workers == 1 or (workers is None and len(files) <= SEQUENTIAL_MAX_FILES):
        results = summarize_files(files, settings)
        summaries = [s for _, s, _ in results if s is not None]
        errors = [(p, r or "unknown error") for p, s, r in results if s is None]
        return summaries, errors, 1, []
    from .pool import Job
    from .resource_manager import ResourceManager

    job = Job(files, summarize_file, (settings,), manager if manager is not None else ResourceManager(),
              workers=workers, start_method=start_method, batch=batch)
    r = job.run()  # Ctrl-C: returns the cancelled result, the processed files are kept
    summaries = r.results
    errors = [(o.path, _pool_reason(o.path, o.reason)) for o in r.outcomes if o.status in ("failed", "cancelled")]
    warnings = list(r.warnings)
    if r.status != "finished":
        warnings.append(f"partial results: the job {r.status}, {r.counts['cancelled']} file(s) cancelled")
    return summaries, errors, r.workers, warnings


# --------------------------------------------------------------------------- aggregation

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
    first = tuple(summaries[0].scalars) if summaries else ()
    out: dict[str, dict[str, float]] = {}
    if first and all(tuple(s.scalars) == first for s in summaries):
        # common case: every run has the same metrics in the same order -> one matrix
        m = np.array([list(s.scalars.values()) for s in summaries], dtype=float).T
        st = describe_rows(m)
        metrics = list(first)
        cols = {name: v.tolist() for name, v in st.items()}
        for i, k in enumerate(metrics):
            out[k] = {name: (int(v[i]) if name == "n" else v[i]) for name, v in cols.items()}
        return out
    metrics = list(dict.fromkeys(k for s in summaries for k in s.scalars))
    for k in metrics:   # ragged: only the values present, so the summation order is OppNDA's
        vals = np.array([[s.scalars[k] for s in summaries if k in s.scalars]], dtype=float)
        st = describe_rows(vals)
        out[k] = {name: (int(v[0]) if name == "n" else float(v[0])) for name, v in st.items()}
    return out


_UNSAFE = re.compile(r"[\x00-\x1f/\\:*?\"<>|]")


def _safe_token(s: str) -> str:
    return _UNSAFE.sub("_", str(s)) or "_"


def safe_output_name(name: str) -> str:
    """A file name that can only land inside the output folder: separators, drive colons and control
    characters become ``_``, leading dots are dropped (no ``..``, no hidden files), never empty."""
    n = _UNSAFE.sub("_", str(name)).strip()
    n = n.lstrip(".").strip()
    if not n:
        n = "averaged.txt"
    return n[:240]


def _output_name(template: str, strategy: Strategy, key: tuple[str, ...], first_params: dict[str, str],
                 report_type: str) -> str:
    name = template
    for f, v in zip(strategy.group_by, key):
        name = name.replace("{" + f + "}", str(v))
    for f, v in first_params.items():
        name = name.replace("{" + f + "}", str(v))
    if "{report_type}" in name:
        name = name.replace("{report_type}", str(report_type))
    return safe_output_name(name)


def _units(summaries: list[FileSummary], config: AveragerConfig) -> list[tuple[str, list[FileSummary]]]:
    """(report type, its summaries in file-name order): config types by substring, else detected types."""
    named = sorted(((os.path.basename(s.path), s) for s in summaries), key=lambda t: t[0])
    ordered = [s for _, s in named]
    if config.report_types:
        return [(rt, [s for n, s in named if rt == "" or rt in n]) for rt in config.report_types]
    types = sorted({s.report_type for s in ordered})
    return [(rt, [s for s in ordered if s.report_type == rt]) for rt in types]


def aggregate(summaries: Iterable[FileSummary], config: Any = None) -> "AverageResult":
    """Group the per-file summaries per strategy and report type, and compute the statistics."""
    cfg = load_config(config)
    summaries = list(summaries)
    groups: list[GroupResult] = []
    skipped_groups: list[tuple[str, str, dict[str, str], str]] = []
    for rt, items in _units(summaries, cfg):
        for strat in cfg.strategies:
            buckets: dict[tuple[str, ...], list[FileSummary]] = {}
            for s in items:
                key = tuple(str(s.params.get(f, "unknown")) for f in strat.group_by)
                buckets.setdefault(key, []).append(s)
            for key in sorted(buckets):
                members = buckets[key]
                kd = dict(zip(strat.group_by, key))
                n_unique = len({m.path for m in members})
                if n_unique < strat.min_files:
                    skipped_groups.append((strat.name, rt, kd, f"{n_unique} file(s) < min_files={strat.min_files}"))
                    continue
                kinds = {m.kind for m in members}
                ckinds = [m.curve_kind for m in members if m.curve is not None]
                ckind = ckinds[0] if ckinds else None
                curve = average_curves([m.curve for m in members if m.curve_kind == ckind], ckind) if ckind else None
                groups.append(GroupResult(
                    strategy=strat.name, report_type=rt, key=kd, files=[m.path for m in members],
                    output_name=_output_name(strat.template, strat, key, members[0].params, rt),
                    kind="keyvalue" if "keyvalue" in kinds else sorted(kinds)[0],
                    metrics=_group_stats(members), curve=curve, curve_kind=ckind,
                ))
    return AverageResult(config=cfg, groups=groups, skipped_groups=skipped_groups, files_read=len(summaries))


# --------------------------------------------------------------------------- result

_UMASK: list[int] = []


def _umask() -> int:
    if not _UMASK:
        old = os.umask(0o022)
        os.umask(old)
        _UMASK.append(old)
    return _UMASK[0]


def _atomic_write(path: Path, data: str | bytes) -> None:
    """Write via a temp file in the same folder + os.replace (readers never see half a file)."""
    fd, tmp = tempfile.mkstemp(dir=str(path.parent), prefix=".tmp-", suffix=".part")
    try:
        os.chmod(tmp, 0o666 & ~_umask())      # mkstemp makes 0600; give the usual file mode
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _inside(out_dir: Path, name: str) -> Path:
    target = out_dir / name
    if target.parent.resolve() != out_dir.resolve() or os.path.isabs(name) or name in ("", ".", ".."):
        raise OppndaError(f"Refusing to write {name!r} outside the output folder {out_dir}.")
    return target


def _coerce_key(v: str) -> Any:
    return coerce_value(v)


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
            out[strat.name] = pd.DataFrame(rows, columns=None if rows else cols)
        return out

    def table(self, strategy: str, report_type: str | None = None) -> pd.DataFrame:
        """The wide table of one strategy, optionally one report type (columns that are all NaN dropped)."""
        t = self.tables.get(strategy)
        if t is None:
            raise OppndaError(f"No strategy {strategy!r}; have {', '.join(self.tables) or 'none'}.")
        if report_type is not None and len(t):
            t = t[t["report_type"] == report_type].dropna(axis=1, how="all").reset_index(drop=True)
        return t

    @property
    def long(self) -> pd.DataFrame:
        """Long format: strategy, report_type, the group_by fields, n_files, metric, mean, std, n, ci95, ci_low, ci_high."""
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

    @property
    def curves(self) -> dict[str, pd.DataFrame]:
        """Averaged curves per strategy (long): group_by fields, report_type, curve_kind, x, <col>_mean/std/n/ci95."""
        out: dict[str, pd.DataFrame] = {}
        for strat in self.config.strategies:
            parts = []
            for g in self.groups:
                if g.strategy != strat.name or g.curve is None:
                    continue
                c = g.curve.copy()
                for i, (f, v) in enumerate(g.key.items()):
                    c.insert(i, f, _coerce_key(v))
                if "report_type" not in c.columns:
                    c.insert(len(g.key), "report_type", g.report_type)
                c.insert(len(g.key) + 1, "curve_kind", g.curve_kind)
                parts.append(c)
            if parts:
                out[strat.name] = pd.concat(parts, ignore_index=True)
        return out

    # ---- outputs
    def write_oppnda(self, output_dir: str | os.PathLike | None = None, *, include_summaries: bool = False) -> list[Path]:
        """Write OppNDA-format averaged files (atomically, only inside ``output_dir``); returns the paths.

        Only key:value reports get files (as OppNDA), unless ``include_summaries``.
        """
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
            target = _inside(out, g.output_name)
            if g.output_name in seen:
                self.warnings.append(f"{g.output_name} written twice (groups {seen[g.output_name]} and "
                                     f"{g.strategy}:{g.key}); the last one wins, as in OppNDA")
            seen[g.output_name] = f"{g.strategy}:{g.key}"
            _atomic_write(target, text)
            if target not in written:
                written.append(target)
        self.output_dir = out
        self.written = written
        return written

    def to_csv(self, output_dir: str | os.PathLike) -> list[Path]:
        """CSV export: ``<strategy>.csv`` (wide), ``long.csv``, ``curves_<strategy>.csv``, ``skipped.csv``, ``errors.csv``."""
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths: list[Path] = []

        def put(name: str, df: pd.DataFrame) -> None:
            target = _inside(out, safe_output_name(name))
            _atomic_write(target, df.to_csv(index=False))
            paths.append(target)

        for name, t in self.tables.items():
            put(f"{name}.csv", t)
        put("long.csv", self.long)
        for name, c in self.curves.items():
            put(f"curves_{name}.csv", c)
        put("skipped.csv", pd.DataFrame(self.skipped, columns=["file", "reason"]))
        put("errors.csv", pd.DataFrame(self.errors, columns=["file", "reason"]))
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
            lines.append(f"{s.name}: group by {', '.join(s.group_by)}: {len(gs)} groups averaged "
                         f"({nt} report type(s)), {nw} files written, {ns} groups skipped "
                         f"(fewer than min_files={s.min_files})")
        reasons: dict[str, int] = {}
        for _, r in self.skipped:
            reasons[r] = reasons.get(r, 0) + 1
        why = "; ".join(f"{n} {r}" for r, n in sorted(reasons.items(), key=lambda kv: -kv[1]))
        lines.append(f"total: {self.files_read} files read, {len(self.skipped)} skipped"
                     + (f" ({why})" if why else "") + f", {len(self.errors)} failed, "
                     f"{len(self.written)} files written" + (f" to {self.output_dir}" if self.output_dir else "")
                     + f", {self.seconds:.2f} s, {self.workers} worker(s)")
        for p, r in self.errors[:10]:
            lines.append(f"failed: {os.path.basename(p)}: {r}")
        if len(self.errors) > 10:
            lines.append(f"failed: ... and {len(self.errors) - 10} more")
        lines.extend(f"warning: {w}" for w in self.warnings)
        return lines

    def summary(self) -> str:
        return "\n".join(self.summary_lines())


# --------------------------------------------------------------------------- the job

def average_folder(config: Any = None, folder: str | os.PathLike | None = None, output: str | os.PathLike | None = None,
                   workers: int | None = None, pattern: Any = None, group_by: Any = None, *, write: bool = True,
                   csv: bool = False, start_method: str | None = None, manager: Any = None,
                   batch: bool = True) -> AverageResult:
    """Run the OppNDA-style averaging job on a folder and (by default) write the averaged files.

    ``config``: OppNDA averager JSON path, dict, AveragerConfig, or None (ONE's standard naming,
    all report types; see :meth:`AveragerConfig.default`). ``pattern`` (template or OppNDA dict)
    and ``group_by`` override the config's. ``output`` defaults to ``<folder>/averaged``;
    ``csv=True`` also writes the tables to ``<output>/csv``. The files are summarized in the
    memory-aware pool (:class:`pool.Job` with ``manager``, default ``ResourceManager()``;
    ``batch=False`` turns its batching of small files off). ``workers``: None = memory-aware
    (the manager's choice), and in-process for at most SEQUENTIAL_MAX_FILES files; 1 = in-process.
    Unreadable files (and files cancelled by Ctrl-C) are collected in ``errors``, not fatal.
    """
    t0 = time.perf_counter()
    cfg = prepare_config(config, pattern, group_by)
    in_dir = cfg.resolve_folder(folder)
    files, skipped = _select(in_dir, cfg)
    summaries, errors, used, warnings = _summarize_all(files, cfg.settings(), workers, start_method, manager, batch)
    res = aggregate(summaries, cfg)
    res.errors, res.skipped, res.folder, res.workers = errors, skipped, in_dir, used
    res.warnings.extend(warnings)
    if write:
        out = Path(output) if output is not None else in_dir / "averaged"
        res.write_oppnda(out)
        if csv:
            res.to_csv(out / "csv")
    elif output is not None:
        res.output_dir = Path(output)
    res.seconds = time.perf_counter() - t0
    return res


def sample_folder() -> Path:
    """The bundled sample of real ONE reports (``oppnda_nb/data/sample``)."""
    return Path(__file__).resolve().parent / "data" / "sample"
