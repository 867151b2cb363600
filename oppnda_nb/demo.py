"""The main job on the bundled sample: one folder with every output a paper needs.

``python -m oppnda_nb demo`` runs the bundled real ONE reports through the memory-aware pool,
averages across seeds, and leaves in one folder: the OppNDA-style averaged reports, the result
tables (CSV), the memory samples and plot, and analysis plots (PNG).
"""
from __future__ import annotations

from pathlib import Path

#: (metric, x, by) plotted from the MessageStatsReport averages.
ANALYSIS_PLOTS = (
    ("delivery_prob", "ttl", "router"),
    ("latency_avg", "ttl", "router"),
    ("delivery_prob", "buffer", "router"),
    ("overhead_ratio", "buffer", "router"),
)


def write_plots(result, output_dir: Path) -> list[Path]:
    """The memory plot and the ANALYSIS_PLOTS of a finished run as PNG files in ``output_dir``."""
    from . import plots

    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    path = output_dir / "memory.png"
    path.write_bytes(plots.memory_png(result.memory, title="Memory during the run"))
    written.append(path)
    for metric, x, by in ANALYSIS_PLOTS:
        table = result.averaged.table(f"{x}_average", "MessageStatsReport")
        fig = plots.metric_figure(table, metric, x=x, by=by, title=f"{metric} by {x} (mean ± 95% CI over the runs of each {by} × {x})")
        path = output_dir / f"{metric}_by_{x}.png"
        path.write_bytes(plots.figure_to_png(fig))
        written.append(path)
    return written


def run_demo(output: str | Path = "oppnda-demo", manager=None, progress=None):
    """Run the main job on the bundled sample and write every output under ``output``."""
    from .job import Run

    out = Path(output).resolve()
    run = Run(None, manager=manager, output=out / "averaged")
    if progress is not None:
        run.add_listener(progress)
    result = run.run()
    result.memory.to_csv(out / "memory.csv", index=False)
    result.outcomes_frame().to_csv(out / "files.csv", index=False)
    write_plots(result, out)
    return result
