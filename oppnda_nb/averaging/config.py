"""OppNDA averager configs: strategies, the name pattern, folders (the same JSON, accepted unchanged)."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

from ..errors import OppndaError
from ..naming import (
    DEFAULT_FILENAME_PATTERN, REPORT_FIELDS, SCENARIO_FIELDS, SEED_FIELDS, NamePattern, as_pattern,
    compile_template, pattern_from_oppnda,
)
from .summarize import SummarizeSettings
from .writers import safe_token

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
        return "{report_type}_" + "_".join("{%s}" % f for f in self.group_by) + f"_{safe_token(self.name)}_average.txt"

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
        _check_types(d)
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

    def settings(self) -> SummarizeSettings:
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


#: the config keys whose JSON type is checked up front: key -> (allowed types, what to write)
_KEY_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "folder": ((str,), "a folder path (string)"),
    "file_filter": ((dict,), 'an object like {"extension": ".txt", "contains": ""}'),
    "report_types": ((list, str), 'a list of report type names, e.g. ["MessageStatsReport"]'),
    "filename_pattern": ((dict, str), "an object with delimiter/components, or a template string"),
    "filename_template": ((str,), "a template string"),
    "data_separator": ((str,), 'a string such as ":"'),
    "ignore_fields": ((list,), 'a list of field names, e.g. ["sim_time"]'),
    "average_groups": ((list,), "a list of objects with name/group_by/output_template"),
    "output": ((dict,), 'an object like {"precision": 4}'),
}


def _check_types(d: dict) -> None:
    """Name the key, the expected type and the value of the first wrongly typed config entry."""
    for key, (types, what) in _KEY_TYPES.items():
        value = d.get(key)
        if value is None:
            continue
        if not isinstance(value, types) or isinstance(value, bool):
            raise OppndaError(f"Config key {key!r} must be {what}, not {type(value).__name__} {value!r:.80}.")
        if isinstance(value, list) and key in ("report_types", "ignore_fields") and \
                not all(isinstance(x, str) for x in value):
            raise OppndaError(f"Config key {key!r} must be {what}; got {value!r:.80}.")
    for sub in ("extension", "contains"):
        v = (d.get("file_filter") or {}).get(sub)
        if v is not None and not isinstance(v, str):
            raise OppndaError(f"Config key 'file_filter.{sub}' must be a string, not {type(v).__name__} {v!r:.80}.")


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



def sample_folder() -> Path:
    """The bundled sample of real ONE reports (``oppnda_nb/data/sample``)."""
    return Path(__file__).resolve().parent.parent / "data" / "sample"
