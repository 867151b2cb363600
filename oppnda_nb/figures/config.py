"""OppNDA's ``analysis_config.json``: its keys, their defaults, and a strict check of what a user gave.

The key set is OppNDA's own (``config/analysis_config.json`` of the OppNDA project); every key is
optional and missing ones take the defaults below. Two keys are ours and marked as such:
``directories.raw_dir`` (OppNDA reads raw and averaged reports from ``report_dir``; ours may read
the raw ones elsewhere) and ``plot_settings.line_plots.ci_band`` (draw the 95 % band). A key that is
not known, or a value of the wrong type, is an :class:`~oppnda_nb.errors.OppndaError` naming the
key with its dotted path (``strict=False``: logged and ignored instead).
"""
from __future__ import annotations

import copy
import difflib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import plots

from ..averaging import sample_folder
from ..errors import OppndaError

log = logging.getLogger("oppnda_nb.figures")

#: a dict whose keys are free (names chosen by the user); values must have the given type
_FREE = "__free__"

#: Every key OppNDA's analysis engine reads, with our defaults (None: "not set").
DEFAULTS: dict[str, Any] = {
    "data_separator": ":",
    "report_types": ["MessageStatsReport"],
    "report_extension": None,  # a variant seen in OppNDA configs; same as file_patterns.report_extension
    "directories": {"report_dir": "reports", "plots_dir": "plots", "raw_dir": None},
    "enabled_plots": {"line_plots": True, "3d_surface": True, "violin_plots": True, "heatmaps": True,
                      "pairplot": True, "export_csv": True},
    "file_patterns": {"report_extension": ".txt"},
    "filename_structure": {
        "delimiter": "_",
        "average_files": {"report_type_position": 0, "router_position": 1, "grouping_type_position": -1,
                          "value_positions": [2]},
        "raw_files": {"positions": {_FREE: int}},
    },
    "grouping_labels": {_FREE: str},
    "metrics": {"include": [], "ignore": []},
    "plot_thresholds": {"min_values_for_line": 2, "min_values_for_surface": 3, "min_files_for_heatmap": 2},
    "plot_settings": {
        "general": {"dpi": 150},
        "line_plots": {"size": [7.0, 4.4], "markers": ["o", "s", "^", "D", "v", "*", "P", "X"],
                       "marker_size": 6.0, "ci_band": True,
                       "font_sizes": {"axis_label": 11, "legend": 9, "ticks": 9}},
        "3d_surface": {"size": [8.0, 6.0], "view": {"elev": 30, "azim": 140},
                       "style": {"cmap": "viridis", "alpha": 0.92, "edge_color": "black", "line_width": 0.6},
                       "font_sizes": {"axis_label": 11, "colorbar": 9, "ticks": 9}},
        "violin_plots": {"size": [8.0, 4.8],
                         "style": {"palette": None, "inner": "quartile", "line_width": 1.2,
                                   "quartile_line_width": 1.6, "width": 0.9, "gap": 0.1},
                         "font_sizes": {"axis_label": 11, "ticks": 9}},
        "heatmaps": {"size": None, "style": {"cmap": "RdBu_r", "vmin": -1.0, "vmax": 1.0},
                     "font_sizes": {"annotations": 9, "colorbar": 9, "ticks": 9}},
        "pairplot": {"size": None,
                     "style": {"palette": None, "diag_kind": "kde", "alpha": 0.85, "marker_size": 18.0,
                               "edge_color": "white", "edge_width": 0.4},
                     "font_sizes": {"axis_label": 9, "legend": 9, "ticks": 7}},
    },
}

#: keys whose value may be null in a user file (None means "use the automatic choice")
_NULLABLE = {"report_extension", "directories.raw_dir", "plot_settings.violin_plots.style.palette",
             "plot_settings.pairplot.style.palette", "plot_settings.heatmaps.size",
             "plot_settings.pairplot.size", "plot_settings.heatmaps.style.vmin",
             "plot_settings.heatmaps.style.vmax"}

#: default axis labels of the usual ONE sweep parameters (TTL is in minutes in ONE's settings)
DEFAULT_LABELS = {**plots.DEFAULT_LABELS, "seed": "seed", "default": None}

ENABLED_KINDS = ("line_plots", "3d_surface", "violin_plots", "heatmaps", "pairplot", "export_csv")


def _type_ok(default: Any, value: Any) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, (int, float)):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, list):
        return isinstance(value, list)
    if isinstance(default, dict):
        return isinstance(value, dict)
    return True


def _kind_name(default: Any) -> str:
    for t, name in ((bool, "true/false"), (int, "a number"), (float, "a number"), (str, "a string"),
                    (list, "a list"), (dict, "an object")):
        if isinstance(default, t):
            return name
    return "a value"


def _merge(defaults: dict, user: dict, path: str, strict: bool, problems: list[str]) -> dict:
    """defaults ⊕ user, checking every user key against the defaults' shape."""
    out = copy.deepcopy({k: v for k, v in defaults.items() if k != _FREE})
    free_type = defaults.get(_FREE)
    for key, value in user.items():
        dotted = f"{path}{key}"
        if free_type is not None:
            if not isinstance(value, free_type) or isinstance(value, bool):
                problems.append(f"'{dotted}' must be {'an integer' if free_type is int else 'a string'}, "
                                f"got {value!r}")
                continue
            out[key] = value
            continue
        if key not in defaults:
            close = difflib.get_close_matches(key, [k for k in defaults if k != _FREE], n=1)
            hint = f" (did you mean '{path}{close[0]}'?)" if close else \
                f" (known here: {', '.join(sorted(k for k in defaults if k != _FREE))})"
            msg = f"unknown key '{dotted}' in the analysis config{hint}"
            if strict:
                problems.append(msg)
            else:
                log.warning("%s; ignored", msg)
            continue
        default = defaults[key]
        if value is None and dotted in _NULLABLE:
            out[key] = None
            continue
        if isinstance(default, dict):
            if not isinstance(value, dict):
                problems.append(f"'{dotted}' must be an object, got {value!r}")
                continue
            out[key] = _merge(default, value, dotted + ".", strict, problems)
            continue
        if default is None:  # nullable with no default value: accept strings/numbers/lists
            out[key] = value
            continue
        if not _type_ok(default, value):
            problems.append(f"'{dotted}' must be {_kind_name(default)}, got {value!r}")
            continue
        out[key] = value
    return out


@dataclass
class AnalysisConfig:
    """A checked analysis config: ``data`` is OppNDA's dict with every default filled in."""

    data: dict
    source: Path | None = None

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    # the few things the engine asks for often
    @property
    def extension(self) -> str:
        return self.data.get("report_extension") or self.data["file_patterns"]["report_extension"]

    @property
    def dpi(self) -> float:
        return float(self.data["plot_settings"]["general"]["dpi"])

    def enabled(self, kind: str) -> bool:
        return bool(self.data["enabled_plots"][kind])

    def settings(self, kind: str) -> dict:
        return self.data["plot_settings"][kind]

    def _dir(self, value: str) -> Path:
        text = str(value).replace("{sample}", str(sample_folder()))
        p = Path(os.path.expanduser(text))
        if not p.is_absolute():
            # OppNDA resolves against the working directory; a config file's folder is tried first
            if self.source is not None and (self.source.parent / p).exists():
                return (self.source.parent / p).resolve()
            p = Path.cwd() / p
        return p

    @property
    def report_dir(self) -> Path:
        return self._dir(self.data["directories"]["report_dir"])

    @property
    def raw_dir(self) -> Path:
        raw = self.data["directories"].get("raw_dir")
        return self._dir(raw) if raw else self.report_dir

    @property
    def plots_dir(self) -> Path:
        return self._dir(self.data["directories"]["plots_dir"])

    def label(self, grouping: str) -> str:
        """Axis label of a grouping: the config's ``grouping_labels``, else ours, else its name."""
        labels = self.data["grouping_labels"]
        if grouping in labels:
            return labels[grouping]
        if DEFAULT_LABELS.get(grouping):
            return DEFAULT_LABELS[grouping]
        return labels.get("default") or grouping.replace("_", " ")

    def labels(self) -> dict[str, str]:
        keys = set(self.data["grouping_labels"]) | set(DEFAULT_LABELS)
        return {k: self.label(k) for k in keys if k != "default"}


def load_analysis_config(config: Any = None, *, strict: bool = True, overrides: dict | None = None) -> AnalysisConfig:
    """An :class:`AnalysisConfig` from a path to OppNDA's JSON, a dict, an AnalysisConfig or None (defaults).

    ``overrides`` (a dict of the same shape) is merged on top, e.g. ``{"plot_settings": {"general": {"dpi": 72}}}``.
    """
    source = None
    if isinstance(config, AnalysisConfig):
        user, source = copy.deepcopy(config.data), config.source
    elif config is None:
        user = {}
    elif isinstance(config, dict):
        user = copy.deepcopy(config)
    elif isinstance(config, (str, os.PathLike)):
        source = Path(config).expanduser()
        try:
            user = json.loads(source.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise OppndaError(f"Analysis config {source} not found; give the path to an analysis_config.json.") from None
        except json.JSONDecodeError as exc:
            raise OppndaError(f"Analysis config {source} is not valid JSON: {exc}") from None
        source = source.resolve()
    else:
        raise OppndaError(f"An analysis config must be a path, a dict or None, not {type(config).__name__}.")
    if not isinstance(user, dict):
        raise OppndaError("An analysis config must be a JSON object at the top level.")
    problems: list[str] = []
    data = _merge(DEFAULTS, user, "", strict, problems)
    if overrides:
        data = _merge(DEFAULTS, _deep_update(data, overrides), "", strict, problems)
    _check_values(data, problems)
    if problems:
        raise OppndaError("Bad analysis config" + (f" {source}" if source else "") + ": " + "; ".join(problems) + ".")
    return AnalysisConfig(data, source)


def _deep_update(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_update(out[k], v)
        else:
            out[k] = v
    return out


def _check_values(data: dict, problems: list[str]) -> None:
    """Values whose type is right but whose content cannot work."""
    for key in ("line_plots", "3d_surface", "violin_plots", "pairplot", "heatmaps"):
        size = data["plot_settings"][key].get("size")
        if size is not None and (len(size) != 2 or not all(isinstance(v, (int, float)) and v > 0 for v in size)):
            problems.append(f"'plot_settings.{key}.size' must be [width, height] in inches, got {size!r}")
    if not data["plot_settings"]["general"]["dpi"] > 0:
        problems.append("'plot_settings.general.dpi' must be > 0")
    for key in ("include", "ignore"):
        if not all(isinstance(m, str) for m in data["metrics"][key]):
            problems.append(f"'metrics.{key}' must be a list of metric names")
    if not data["data_separator"]:
        problems.append("'data_separator' must not be empty")
    if not data["filename_structure"]["delimiter"]:
        problems.append("'filename_structure.delimiter' must not be empty")
    if not data["plot_settings"]["line_plots"]["markers"]:
        problems.append("'plot_settings.line_plots.markers' must not be empty")


def example_config_path() -> Path:
    """The shipped example ``oppnda_nb/data/analysis_config.json``."""
    return Path(__file__).resolve().parent.parent / "data" / "analysis_config.json"
