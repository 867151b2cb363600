"""The main job on the bundled sample: one folder with every output a paper needs.

``python -m oppnda_nb demo`` runs the bundled real ONE reports through the one pipeline
(:class:`job.Run`) and leaves in one folder: the OppNDA-style averaged reports and CSV tables
(``averaged/``), the memory samples and plot, the per-file outcomes, and analysis plots (PNG).
"""
from __future__ import annotations

from pathlib import Path

#: (metric, x, by) plotted from the MessageStatsReport averages of the bundled sample.
ANALYSIS_PLOTS = (
    ("delivery_prob", "ttl", "router"),
    ("latency_avg", "ttl", "router"),
    ("delivery_prob", "buffer", "router"),
    ("overhead_ratio", "buffer", "router"),
)


def write_outputs(result, output_dir: str | Path) -> list[Path]:
    """memory.csv, files.csv, memory.png and the ANALYSIS_PLOTS of a finished run, in ``output_dir``."""
    from . import plots

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "memory.csv", out / "files.csv", out / "memory.png"]
    result.memory.to_csv(written[0], index=False)
    result.outcomes_frame().to_csv(written[1], index=False)
    written[2].write_bytes(plots.memory_png(result.memory, title="Memory during the run",
                                            predicted_peak_mb=plots.planned_peak_mb(result)))
    if result.averaged is None:
        return written
    for metric, x, by in ANALYSIS_PLOTS:
        table = result.averaged.table(f"{x}_average", "MessageStatsReport")
        if table is None or len(table) == 0:
            continue
        fig = plots.metric_figure(table, metric, x=x, by=by,
                                  title=f"{metric} by {x} (mean ± 95% CI over the runs of each {by} × {x})")
        path = out / f"{metric}_by_{x}.png"
        path.write_bytes(plots.figure_to_png(fig))
        written.append(path)
    return written


def run_demo(output: str | Path = "oppnda-demo", manager=None, progress=None):
    """Run the main job on the bundled sample and write every output under ``output`` (Python API)."""
    from .job import Run

    out = Path(output).resolve()
    run = Run(None, manager=manager, output=out / "averaged")
    if progress is not None:
        run.add_listener(progress)
    result = run.run()
    write_outputs(result, out)
    return result
