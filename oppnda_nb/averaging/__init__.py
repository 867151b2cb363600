"""Group runs by sweep parameters and average them across seeds (OppNDA-compatible).

Rooms: ``config`` (OppNDA's JSON, strategies), ``select`` (which files are inputs),
``summarize`` (the per-file work the job schedules: one report read once -> FileSummary),
``groups`` (``aggregate``: group per strategy -> mean / sample std / n / t-based 95% CI per metric ->
tables; the module is not named after the function, so importing it never hides the function),
``writers`` (atomic, only inside the output folder). The pipeline that runs them is ``oppnda_nb.job``.

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

from ..lazy import module_getattr

# Imported on first use (PEP 562): selecting and planning need only ``config`` and ``select``;
# the statistics (``groups``, pandas) load when a run averages.
_LAZY = {
    "GRID_POINTS": "groups", "AverageResult": "groups", "GroupResult": "groups", "aggregate": "groups",
    "average_curves": "groups", "output_names": "groups", "planned_output_names": "groups",
    "AveragerConfig": "config", "Strategy": "config", "default_strategies": "config", "load_config": "config",
    "prepare_config": "config", "sample_folder": "config", "strategies_from": "config",
    "select_files": "select",
    "FileSummary": "summarize", "SummarizeSettings": "summarize", "summarize_file": "summarize",
    "summarize_files": "summarize",
    "atomic_write": "writers", "safe_output_name": "writers",
}


__getattr__ = module_getattr(__name__, globals(), _LAZY)


__all__ = [
    "GRID_POINTS", "AverageResult", "AveragerConfig", "FileSummary", "GroupResult", "Strategy",
    "SummarizeSettings", "aggregate", "atomic_write", "average_curves", "default_strategies", "load_config",
    "output_names", "planned_output_names",
    "prepare_config", "safe_output_name", "sample_folder", "select_files", "strategies_from",
    "summarize_file", "summarize_files",
]
