"""Predictions that learn: fit γ and M_overhead from measured worker peaks.

Each processed file gives a point (size on disk, the worker's peak memory above its baseline
just before the file); the pool measures the peak exactly on Linux (the peak-RSS mark is
reset before each file) and from the monitor's samples elsewhere. Per report type, and over
all points, the model

    peak_above_baseline ≈ γ · size + c

is fitted by least squares with γ ≥ 0, c ≥ 0, then refitted once without outliers (residual
beyond 3 × 1.4826·MAD), which keeps one odd file (e.g. the first file of a worker, which also
pays for lazy imports) from bending the line. When the slope cannot be identified — the sizes
hardly differ (spread < 20 %), or every file is small (< 64 KiB, where the peak is the parser's
fixed cost, not the data) — γ keeps its prior value (the manager's) and only c is fitted:
putting a 100 KB file's 10 MB fixed cost into γ would give γ ≈ 100 and starve later runs.
The baseline is the worker's own memory (USS where available): with fork, a worker's PSS also
holds a share of the kernel's pages, already counted in the kernel's reading. The whole-worker estimate used for admission is
``γ · size + M_overhead`` with ``M_overhead = median worker baseline + c``.

``calibrate(manager, source)`` applies the fit to the manager (``gamma``, ``overhead_mb`` and
per-type models in ``manager.type_models``, which ``pool.estimate_file_bytes`` uses).
"""
from __future__ import annotations

import math
import os
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from .errors import OppndaError

MB = 1024 * 1024
#: Files smaller than this say nothing about γ (their peak is noise); they still fit c.
_MIN_INFORMATIVE_BYTES = 64 * 1024


@dataclass
class CalibrationPoint:
    """One measured file: its size, the worker's peak above baseline, and that baseline (bytes)."""

    path: str
    report_type: str
    size: int
    peak_delta: float
    baseline: float


@dataclass
class TypeFit:
    """The fitted model of one report type (or "*" for all points)."""

    report_type: str
    gamma: float
    overhead_mb: float  # c + median baseline: the whole-worker overhead
    intercept_mb: float  # c alone
    n: int
    max_size_mb: float
    mean_abs_error_pct: float  # |predicted − measured| / measured over its points, in %
    max_abs_error_pct: float
    gamma_learnt: bool = True  # False: sizes too small/similar, γ kept at its prior


@dataclass
class Calibration:
    """The result of a calibration: per-type fits, the overall fit applied, the errors."""

    per_type: dict[str, TypeFit]
    overall: TypeFit
    points: list[CalibrationPoint] = field(default_factory=list)
    predicted_peak_mb: float = math.nan  # of the sample run, with the new model
    measured_peak_mb: float = math.nan
    error_pct: float = math.nan  # (predicted − measured) / measured of the run peak
    gamma_before: float = math.nan
    overhead_before_mb: float = math.nan
    applied: bool = False

    @property
    def gamma(self) -> float:
        return self.overall.gamma

    @property
    def overhead_mb(self) -> float:
        return self.overall.overhead_mb

    def summary(self) -> str:
        lines = [
            f"calibration on {len(self.points)} files: γ {self.gamma_before:.2f} → {self.gamma:.2f}, "
            f"overhead {self.overhead_before_mb:.0f} → {self.overhead_mb:.0f} MB"
            + ("" if self.applied else " (not applied)")
        ]
        for name, f in sorted(self.per_type.items()):
            lines.append(
                f"  {name}: γ={f.gamma:.2f}{'' if f.gamma_learnt else ' (kept: files too small/similar)'} overhead={f.overhead_mb:.0f} MB n={f.n} "
                f"largest={f.max_size_mb:.1f} MB per-file error mean {f.mean_abs_error_pct:.0f}% "
                f"max {f.max_abs_error_pct:.0f}%"
            )
        if math.isfinite(self.measured_peak_mb):
            lines.append(
                f"  run peak: predicted {self.predicted_peak_mb:.0f} MB, measured {self.measured_peak_mb:.0f} MB "
                f"({self.error_pct:+.0f}%)"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict:
        d = {
            "gamma": self.gamma,
            "overhead_mb": self.overhead_mb,
            "gamma_before": self.gamma_before,
            "overhead_before_mb": self.overhead_before_mb,
            "per_type": {k: asdict(v) for k, v in self.per_type.items()},
            "n_points": len(self.points),
            "predicted_peak_mb": self.predicted_peak_mb,
            "measured_peak_mb": self.measured_peak_mb,
            "error_pct": self.error_pct,
            "applied": self.applied,
        }
        return _json_safe(d)


def _json_safe(x):
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


# ---------------------------------------------------------------------------------------
# fitting
# ---------------------------------------------------------------------------------------
def _c_only(sizes: Sequence[float], peaks: Sequence[float], prior_gamma: float) -> tuple[float, float]:
    """γ fixed at its prior; c = the mean of what γ does not explain (≥ 0)."""
    n = len(sizes)
    return prior_gamma, max(0.0, sum(p - prior_gamma * s for s, p in zip(sizes, peaks)) / n) if n else 0.0


def _identifiable(sizes: Sequence[float]) -> bool:
    return len(sizes) >= 2 and max(sizes) > 0 and (max(sizes) - min(sizes)) / max(sizes) >= 0.2


def _ls(sizes: Sequence[float], peaks: Sequence[float], prior_gamma: float = 3.0) -> tuple[float, float]:
    """Least squares peak = γ·size + c with γ ≥ 0 and c ≥ 0 (bytes); γ = prior when not identifiable."""
    n = len(sizes)
    if n == 0:
        return prior_gamma, 0.0
    if not _identifiable(sizes):
        return _c_only(sizes, peaks, prior_gamma)
    mx = sum(sizes) / n
    my = sum(peaks) / n
    sxx = sum((x - mx) ** 2 for x in sizes)
    gamma = sum((x - mx) * (y - my) for x, y in zip(sizes, peaks)) / sxx
    c = my - gamma * mx
    if gamma < 0:
        gamma, c = 0.0, my
    if c < 0:  # through the origin
        c = 0.0
        sxx0 = sum(x * x for x in sizes)
        gamma = max(0.0, sum(x * y for x, y in zip(sizes, peaks)) / sxx0) if sxx0 > 0 else 0.0
    return gamma, c


def fit_gamma(sizes: Sequence[float], peaks: Sequence[float], prior_gamma: float = 3.0) -> tuple[float, float]:
    """Robust fit of peak-above-baseline = γ·size + c (bytes): LS, drop 3·MAD outliers, LS again."""
    sizes, peaks = [float(s) for s in sizes], [float(p) for p in peaks]
    gamma, c = _ls(sizes, peaks, prior_gamma)
    if len(sizes) >= 4:
        res = [p - (gamma * s + c) for s, p in zip(sizes, peaks)]
        med = statistics.median(res)
        mad = statistics.median(abs(r - med) for r in res) * 1.4826
        if mad > 0:
            keep = [i for i, r in enumerate(res) if abs(r - med) <= 3 * mad]
            if len(keep) >= 3 and len(keep) < len(sizes):
                gamma, c = _ls([sizes[i] for i in keep], [peaks[i] for i in keep], prior_gamma)
    return gamma, c


def _fit_points(name: str, pts: list[CalibrationPoint], prior_gamma: float) -> TypeFit:
    informative = [p for p in pts if p.size >= _MIN_INFORMATIVE_BYTES]
    if len(informative) >= 2 and _identifiable([p.size for p in informative]):
        gamma, c = fit_gamma([p.size for p in informative], [p.peak_delta for p in informative], prior_gamma)
        learnt = gamma != prior_gamma
    else:  # small or same-size files: γ cannot be learnt from them, only the fixed cost c
        gamma, c = _c_only([p.size for p in pts], [p.peak_delta for p in pts], prior_gamma)
        learnt = False
    base = statistics.median(p.baseline for p in pts)
    errs = []
    for p in pts:
        measured = p.baseline + p.peak_delta
        predicted = gamma * p.size + c + base
        if measured > 0:
            errs.append(abs(predicted - measured) / measured * 100)
    return TypeFit(
        report_type=name,
        gamma=gamma,
        overhead_mb=(c + base) / MB,
        intercept_mb=c / MB,
        n=len(pts),
        max_size_mb=max(p.size for p in pts) / MB,
        mean_abs_error_pct=sum(errs) / len(errs) if errs else math.nan,
        max_abs_error_pct=max(errs) if errs else math.nan,
        gamma_learnt=learnt,
    )


def points_from(source: Any) -> list[CalibrationPoint]:
    """Calibration points from a JobResult, a list of FileOutcome, or a list of CalibrationPoint."""
    outcomes = getattr(source, "outcomes", source)
    pts = []
    for o in outcomes or ():
        if isinstance(o, CalibrationPoint):
            pts.append(o)
            continue
        if getattr(o, "status", None) != "processed":
            continue
        if o.peak_delta_mb is None or o.baseline_mb is None:
            continue
        from .pool import _report_type_of

        pts.append(CalibrationPoint(o.path, o.report_type or _report_type_of(o.path), int(o.size),
                                    o.peak_delta_mb * MB, o.baseline_mb * MB))
    return pts


def fit(points: Sequence[CalibrationPoint], prior_gamma: float = 3.0) -> tuple[TypeFit, dict[str, TypeFit]]:
    """(overall fit, per-type fits) of the points; γ = ``prior_gamma`` where it cannot be learnt."""
    if not points:
        raise OppndaError("calibration needs at least one processed file with a measured peak")
    by_type: dict[str, list[CalibrationPoint]] = {}
    for p in points:
        by_type.setdefault(p.report_type, []).append(p)
    per_type = {k: _fit_points(k, v, prior_gamma) for k, v in by_type.items()}
    return _fit_points("*", list(points), prior_gamma), per_type


def apply(manager, cal: Calibration) -> None:
    """Set the manager's γ/overhead to the overall fit and its per-type models."""
    manager.gamma = cal.overall.gamma
    manager.overhead_mb = cal.overall.overhead_mb
    models = dict(getattr(manager, "type_models", None) or {})
    for name, f in cal.per_type.items():
        if f.n >= 2 and f.gamma_learnt:  # γ learnt from real sizes only
            models[name] = (f.gamma, f.overhead_mb)
    manager.type_models = models
    cal.applied = True


def predicted_run_peak_mb(manager, sizes_paths: Sequence[tuple[str, int]], workers: int, kernel_mb: float,
                          budget_mb: float = math.inf) -> float:
    """kernel + Σ estimates of the largest files that run together (what the pool predicts)."""
    from .pool import estimate_file_bytes

    ests = sorted((estimate_file_bytes(manager, p, s) for p, s in sizes_paths), reverse=True)
    total, k = kernel_mb * MB, 0
    for e in ests[:workers]:
        if k > 0 and total + e > budget_mb * MB:
            break
        total += e
        k += 1
    idle = max(0, min(workers, len(ests)) - k)
    return (total + idle * manager.overhead_mb * MB) / MB


def calibrate(manager, source: Any, *, apply_fit: bool = True, **folder_kw) -> Calibration:
    """Fit γ/overhead from ``source`` and (by default) apply them to ``manager``.

    ``source``: a JobResult (its processed outcomes and its run peak), a list of FileOutcome or
    CalibrationPoint, or a folder path (then :func:`calibrate_folder` with ``folder_kw``).
    """
    if isinstance(source, (str, os.PathLike)):
        return calibrate_folder(source, manager, apply_fit=apply_fit, **folder_kw)
    pts = points_from(source)
    overall, per_type = fit(pts, prior_gamma=manager.gamma)
    cal = Calibration(per_type=per_type, overall=overall, points=pts,
                      gamma_before=manager.gamma, overhead_before_mb=manager.overhead_mb)
    if apply_fit:
        apply(manager, cal)
    measured = getattr(source, "measured_peak_mb", math.nan)
    if isinstance(measured, (int, float)) and math.isfinite(measured) and apply_fit:
        mem = getattr(source, "memory", None)
        kernel = float(mem["kernel_mb"].iloc[0]) if mem is not None and len(mem) else 0.0
        sp = [(o.path, o.size) for o in source.outcomes if o.status == "processed"]
        cal.measured_peak_mb = float(measured)
        cal.predicted_peak_mb = predicted_run_peak_mb(manager, sp, source.workers, kernel,
                                                      getattr(source, "budget_mb", math.inf))
        cal.error_pct = (cal.predicted_peak_mb - cal.measured_peak_mb) / cal.measured_peak_mb * 100
    return cal


def sample_files(paths: Sequence[str], sample: int) -> list[str]:
    """``sample`` files spread over the size range (smallest and largest included)."""
    sized = sorted(((os.path.getsize(p), p) for p in paths), key=lambda t: (t[0], t[1]))
    if len(sized) <= sample:
        return [p for _, p in sized]
    if sample <= 1:
        return [sized[-1][1]]
    idx = sorted({round(i * (len(sized) - 1) / (sample - 1)) for i in range(sample)})
    return [sized[i][1] for i in idx]


def read_report_work(path: str) -> int:
    """Default calibration work: parse the file with ``reports.read_report`` (rows parsed)."""
    from .reports import read_report

    rep = read_report(path)
    return int(len(rep.frame))


def calibrate_folder(
    folder: str | os.PathLike,
    manager,
    sample: int = 8,
    work: Callable | None = None,
    work_args: Sequence = (),
    *,
    pattern: str = "*.txt",
    workers: int = 1,
    start_method: str | None = None,
    apply_fit: bool = True,
) -> Calibration:
    """Run ``work`` (default: parse with ``reports.read_report``) on a sample of ``folder``.

    The sample spreads over the size range and includes the largest file; one worker by
    default, so the measured run peak is one worker's. Each worker first processes the smallest
    file of the sample once (warm-up), so lazy imports do not inflate the first measured peak.
    Applies the fit to ``manager``.
    """
    from .pool import Job

    folder = Path(folder)
    if not folder.is_dir():
        raise OppndaError(f"{folder} is not a folder; give the folder of report files to calibrate on")
    paths = [str(p) for p in folder.glob(pattern) if p.is_file()]
    if not paths:
        raise OppndaError(f"no files match {pattern!r} in {folder}")
    chosen = sample_files(paths, max(1, int(sample)))
    smallest = min(chosen, key=os.path.getsize)
    job = Job(chosen, work or read_report_work, work_args, manager, workers=workers, start_method=start_method,
              sample_interval=0.1, warmup=smallest)
    result = job.run()
    return calibrate(manager, result, apply_fit=apply_fit)
