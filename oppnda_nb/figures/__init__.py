"""Analysis figures: OppNDA's analysis engine through the memory-aware pool, and notebook plots.

``run_analysis(config)`` takes OppNDA's ``analysis_config.json`` unchanged and writes OppNDA's set
of figures and CSVs (with 95 % CI bands, a colour-blind-safe palette, PDF/SVG on request); each
figure is a pool task with its own memory estimate. The drawing functions (``line``, ``surface``,
``violin``, ``heatmap``, ``pairplot``, ``distribution``, ``timeseries``) return matplotlib
``Figure`` objects for a notebook to restyle; ``fig.oppnda_data`` holds what was drawn.
"""
from __future__ import annotations

from .analysis import (
    Analysis, AnalysisData, AnalysisResult, FORMATS, load_averaged, load_data, plan_figures, run_analysis,
)
from .config import DEFAULTS, AnalysisConfig, example_config_path, load_analysis_config
from .draw import PALETTE, distribution, heatmap, line, pairplot, surface, timeseries, violin
from .tasks import MEMORY_FACTORS, WORKER_BASE_BYTES, estimate_bytes

__all__ = [
    "Analysis", "AnalysisConfig", "AnalysisData", "AnalysisResult", "DEFAULTS", "FORMATS", "MEMORY_FACTORS",
    "PALETTE", "WORKER_BASE_BYTES", "distribution", "estimate_bytes", "example_config_path",
    "heatmap", "line", "load_analysis_config", "load_averaged", "load_data", "pairplot", "plan_figures",
    "run_analysis", "surface", "timeseries", "violin",
]
