"""Calibration: measure a worker's peak on the largest file of every report type in a folder.

The memory model starts from priors measured on real ONE output; a folder of your own may
differ (bigger scenarios, other routers). :func:`calibrate` runs the real per-file work
(:func:`averaging.summarize_file`) on the largest file of each report type present, one worker
at a time so each peak is one worker's, feeds every measured peak to the model (conservative
learning, :meth:`memory_model.MemoryModel.observe`) and keeps it for later runs. Its report
compares each file's estimate before and after with the measured peak.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

from . import averaging, memory_model, pool
from .errors import OppndaError
from .job import _STORE_KEY, WORKER_MODULES, install_priors, kind_of, observed_peak
from .resource_manager import ResourceManager
from .system import MB


@dataclass
class TypePoint:
    """One measured file: its type and size, the estimate before and after, the measured peak (MB)."""

    report_type: str
    path: str
    size_mb: float
    measured_mb: float
    before_mb: float
    after_mb: float
    gamma: float
    overhead_mb: float
    rise_mb: float = math.nan  # the file's own rise above its worker's baseline (what the model learns)


@dataclass
class Calibration:
    """What :func:`calibrate` measured and learned (one point per report type)."""

    points: list[TypePoint] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def measured_peak_mb(self) -> float:
        return max((p.measured_mb for p in self.points), default=math.nan)

    @property
    def predicted_peak_mb(self) -> float:
        """The largest estimate after learning (one worker): what the next run plans with."""
        return max((p.after_mb for p in self.points), default=math.nan)

    def frame(self):
        import pandas as pd

        return pd.DataFrame([p.__dict__ for p in self.points])

    def summary(self) -> str:
        lines = [f"calibration on {len(self.points)} file(s), the largest of each report type:"]
        for p in self.points:
            rise = f" (the file: +{p.rise_mb:.0f} MB)" if math.isfinite(p.rise_mb) else ""
            lines.append(f"  {p.report_type}: {os.path.basename(p.path)} {p.size_mb:.1f} MB: worker peak "
                         f"{p.measured_mb:.0f} MB{rise}, estimate {p.before_mb:.0f} → {p.after_mb:.0f} MB "
                         f"(γ={p.gamma:.2f}, M_overhead={p.overhead_mb:.0f} MB)")
        lines.append("  (an estimate is a fresh worker, 35 MB with what it may keep between files, plus the "
                     "file's own rise, +10 %)")
        lines += [f"  failed: {os.path.basename(f)}: {r}" for f, r in self.failed]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()


def largest_per_type(files: list[str]) -> list[str]:
    """The largest file of each report type (by name) among ``files``."""
    best: dict[str, tuple[int, str]] = {}
    for p in files:
        try:
            size = os.path.getsize(p)
        except OSError:
            continue
        k = kind_of(p)
        if k not in best or size > best[k][0]:
            best[k] = (size, p)
    return [p for _, p in sorted(best.values(), key=lambda t: -t[0])]


def calibrate(folder=None, manager: ResourceManager | None = None, *, config: Any = None, pattern: Any = None,
              start_method: str | None = None, save: bool = True) -> Calibration:
    """Measure the largest file of every report type in ``folder`` and teach ``manager``'s model."""
    manager = manager or ResourceManager()
    model = install_priors(manager)
    cfg = averaging.prepare_config(config, pattern, None)
    in_dir = cfg.resolve_folder(folder if folder is not None or cfg.folder is not None else averaging.sample_folder())
    files, _ = averaging.select_files(in_dir, cfg)
    chosen = largest_per_type(files)
    if not chosen:
        raise OppndaError(f"No report files to calibrate on in {in_dir}: check the folder and the name pattern.")
    before = {p: model.estimate(kind_of(p), os.path.getsize(p)) for p in chosen}
    job = pool.Job(chosen, averaging.summarize_file, (cfg.settings(),), manager, workers=1, kind_of=kind_of,
                   estimate=lambda p, s, lean=False: model.estimate(kind_of(p), s), preload=WORKER_MODULES,
                   start_method=start_method, sample_interval=0.05, oversize="run-alone",
                   warmup=min(chosen, key=os.path.getsize))
    result = job.run()
    cal = Calibration()
    for o in result.outcomes:
        peak = observed_peak(o) if str(o.status) == "processed" else None
        if peak is None:
            cal.failed.append((o.path, o.reason or str(o.status)))
            continue
        m = model.observe(o.report_type, o.size, peak)
        cal.points.append(TypePoint(o.report_type, o.path, o.size / MB, o.peak_mb, before[o.path] / MB,
                                    m.estimate(o.size) / MB, m.gamma, m.overhead_mb,
                                    math.nan if o.peak_delta_mb is None else o.peak_delta_mb))
    if save:
        memory_model.save_learned(model, _STORE_KEY)
    return cal
