"""Every option of the faces, declared once: rendered for argparse (``python -m oppnda_nb``) and
for IPython's ``magic_arguments`` (``%oppnda``), with the same names, types and checks.

An :class:`Option` knows its flag, type, default, help and check. ``add_to_parser`` puts a
command's options on an ``argparse`` parser; :func:`magic_argument_decorators` gives the
``@argument`` decorators of the magic; :func:`trait_for` gives the traitlets trait through which
``%config OppndaMagics.eta = 0.6`` sets the magic's defaults. The checks raise
``argparse.ArgumentTypeError``, which argparse turns into "error: argument --eta: ..." (exit 2)
and IPython's ``MagicArgumentParser`` into a ``UsageError``.

No heavy import here: ``status`` must stay light.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

__all__ = ["Option", "OPTIONS", "COMMANDS", "add_to_parser", "magic_argument_decorators", "trait_for",
           "option", "manager_kwargs", "run_kwargs", "check_value"]


@dataclass(frozen=True)
class Option:
    """One option: ``--flag`` (dest = flag with ``_``), its type, default, help, check.

    ``kind``: "float" | "int" | "str" | "flag" (store_true) | "choice" | "list" (comma separated).
    ``configurable``: the magic's default can be set with ``%config OppndaMagics.<dest>``.
    """

    flag: str
    kind: str
    help: str
    default: Any = None
    metavar: str | None = None
    lo: float | None = None  # smallest allowed value (numbers)
    lo_open: bool = False  # the value must be > lo (not >=)
    hi: float | None = None
    choices: tuple[str, ...] = ()
    configurable: bool = False
    short: str | None = None

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    def convert(self, text: Any) -> Any:
        """Text (or an already typed value from %config) → checked value; ArgumentTypeError if bad."""
        if self.kind == "flag":
            return bool(text)
        if self.kind == "str":
            return _unquote(str(text))
        if self.kind == "list":
            items = [_unquote(t.strip()) for t in _unquote(str(text)).split(",") if t.strip()] \
                if isinstance(text, str) else [str(t) for t in text]
            if not items:
                raise argparse.ArgumentTypeError(f"{self.flag} needs names separated by commas, e.g. router,ttl")
            return items
        if self.kind == "choice":
            value = _unquote(str(text))
            if value not in self.choices:
                raise argparse.ArgumentTypeError(f"{self.flag} must be one of {', '.join(self.choices)}, got {value!r}")
            return value
        number = int if self.kind == "int" else float
        try:
            if number is int and isinstance(text, float) and not text.is_integer():
                raise ValueError
            value = number(text)
        except (TypeError, ValueError):
            what = "a whole number" if number is int else "a number"
            raise argparse.ArgumentTypeError(f"{self.flag} needs {what}, got {text!r}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{self.flag} needs a finite number, got {text!r}")
        too_low = self.lo is not None and (value < self.lo or (self.lo_open and value == self.lo))
        too_high = self.hi is not None and value > self.hi
        if too_low or too_high:
            raise argparse.ArgumentTypeError(f"{self.flag} must be {self.range_text()}, got {text}")
        return value

    def range_text(self) -> str:
        parts = []
        if self.lo is not None:
            parts.append(f"{'>' if self.lo_open else '>='} {self.lo:g}")
        if self.hi is not None:
            parts.append(f"<= {self.hi:g}")
        return " and ".join(parts)

    def argparse_kwargs(self) -> dict:
        """The keyword arguments of ``add_argument`` (argparse and magic_arguments alike)."""
        if self.kind == "flag":
            return dict(dest=self.dest, action="store_true", default=None, help=self.help)
        conv = self.convert
        # argparse names the type in its own messages
        kw = dict(dest=self.dest, type=_named(conv, self.kind), default=None, help=self.help,
                  metavar=self.metavar or self.dest.upper())
        return kw


def _named(fn: Callable, name: str) -> Callable:
    def convert(text):
        return fn(text)

    convert.__name__ = name
    return convert


def _unquote(text: str) -> str:
    """IPython splits magic lines without removing quotes (``--pattern '{a} {b}'``): remove them."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


_OPTION_LIST = [
    # what to read
    Option("--config", "str", "an OppNDA averager_config.json (plot: an analysis_config.json)", metavar="FILE"),
    Option("--pattern", "str", "file-name template, e.g. '{scenario}_{router}_{seed}_{ttl}_{buffer}_{report_type}'",
           metavar="TEMPLATE"),
    Option("--group-by", "list", "parameters to group by, comma separated (one strategy); seeds are averaged over",
           metavar="A,B"),
    Option("--folder", "str", "input folder (overrides the config's \"folder\")", metavar="DIR"),
    Option("--output", "str", "output folder (default: <folder>/averaged; ./oppnda-output for the bundled sample)",
           metavar="DIR"),
    Option("--csv", "flag", "also write the tables as CSV into <output>/csv"),
    # memory (the ResourceManager)
    Option("--eta", "float", "η: the fraction of RAM the machine may use (default 0.75)", lo=0, lo_open=True, hi=1,
           metavar="X", configurable=True),
    Option("--gamma", "float", "γ: memory per byte of report for every type (default: the per-type memory model)",
           lo=0, lo_open=True, metavar="X", configurable=True),
    Option("--overhead-mb", "float", "M_overhead: memory per worker in MB for every type (default: per-type model)",
           lo=0, metavar="MB", configurable=True),
    Option("--total-ram-mb", "float", "plan as if the machine had this much RAM (MB)", lo=0, lo_open=True,
           metavar="MB", configurable=True),
    Option("--no-safety", "flag", "turn the memory budget off (workers = CPUs; use with care)", configurable=True),
    Option("--workers", "int", "use exactly N worker processes (default: the memory-aware recommendation)", lo=1,
           metavar="N", configurable=True),
    Option("--min-workers", "int", "at least N workers (default 1)", lo=1, metavar="N", configurable=True),
    Option("--max-workers", "int", "at most N workers (default 16, never more than the CPUs)", lo=1, metavar="N",
           configurable=True),
    # the pool
    Option("--no-learn", "flag", "do not learn from this run's measured memory (nor use what earlier runs learned)",
           configurable=True),
    Option("--oversize", "choice", "a file too big for the budget even alone: skip it, or run it alone",
           choices=("skip", "run-alone"), metavar="skip|run-alone", configurable=True),
    Option("--file-timeout", "float", "seconds one file may take (default: generous, scaled by size)", lo=0,
           lo_open=True, metavar="SECONDS", configurable=True),
    Option("--no-cache", "flag", "parse every file again (do not use nor fill the per-file summary cache)",
           configurable=True),
    Option("--cache-dir", "str", "folder of the per-file summary cache (default: the user's cache directory)",
           metavar="DIR", configurable=True),
    # another scheduler
    Option("--scheduler", "str", "summarise the files on this Dask cluster (a scheduler address tcp://HOST:PORT)",
           metavar="ADDRESS"),
    Option("--dask-workers", "int", "start a local Dask cluster of N process workers sized by the memory budget",
           lo=1, metavar="N"),
    # figures (OppNDA's analysis engine)
    Option("--format", "list", "figure formats, comma separated (png, pdf, svg)", metavar="png,pdf"),
    Option("--dpi", "int", "figure resolution (default: the config's general.dpi)", lo=10, metavar="N"),
    # what to leave behind (command line)
    Option("--summary-json", "str", "write the accounting as JSON to this file (atomically)", metavar="FILE"),
    Option("--memory-log", "str", "write the memory samples as CSV to this file", metavar="FILE"),
    Option("--quiet", "flag", "no progress line", short="-q"),
    Option("--verbose", "flag", "list every skipped file with its reason", short="-v"),
    # magic only
    Option("--background", "flag", "return at once; the view keeps updating, %%oppnda stop cancels"),
    Option("--name", "str", "variable for the result (run), the panel (panel), or the result to plot (plot)",
           metavar="VAR"),
    Option("--by", "str", "plot: the parameter on the x axis (a surface's y axis, a violin's groups)", metavar="PARAM"),
    Option("--x", "str", "plot: the parameter on the x axis (same as --by for a line; a surface's x axis)",
           metavar="PARAM"),
    Option("--hue", "str", "plot: one line (a surface, a heatmap) per value of this parameter (default: router)",
           metavar="PARAM"),
    Option("--kind", "choice", "plot: the kind of figure (default: line)",
           choices=("line", "surface", "violin", "heatmap", "pairplot", "distribution", "timeseries"),
           metavar="line|surface|violin|heatmap|pairplot|distribution|timeseries"),
    Option("--table", "str", "plot: which averaged table", metavar="NAME"),
]

#: every option by dest
OPTIONS: dict[str, Option] = {o.dest: o for o in _OPTION_LIST}

_MEMORY = ("eta", "gamma", "overhead_mb", "total_ram_mb", "no_safety", "min_workers", "max_workers")
_POOL = ("workers", "no_learn", "oversize", "file_timeout", "no_cache", "cache_dir")
_SELECT = ("config", "pattern")

#: which options each command takes (command line and magic; a face adds its positionals)
COMMANDS: dict[str, tuple[str, ...]] = {
    "status": _SELECT + _MEMORY,
    "run": _SELECT + ("group_by", "output") + _MEMORY + _POOL + ("scheduler", "dask_workers", "summary_json",
                                                                 "memory_log", "quiet"),
    "average": ("folder", "pattern", "group_by", "output", "csv") + _MEMORY + _POOL
               + ("summary_json", "quiet", "verbose"),
    "demo": ("output",) + _MEMORY + _POOL + ("quiet",),
    "calibrate": _SELECT + _MEMORY,
    "cache": ("cache_dir",),
    "plots": _MEMORY + ("workers", "format", "dpi", "quiet"),
    # magic only
    "panel": _SELECT + ("group_by", "output") + _MEMORY + _POOL + ("scheduler", "name"),
    "magic_run": _SELECT + ("group_by", "output") + _MEMORY + _POOL + ("scheduler", "background", "name"),
    "stop": (),
    "plot": ("name", "by", "x", "table", "hue", "kind", "config", "format", "dpi", "workers") + _MEMORY,
}


def option(name: str) -> Option:
    return OPTIONS[name]


def check_value(name: str, value: Any) -> Any:
    """A value set through ``%config`` (or a widget) checked like the command line's; raises ValueError."""
    if value is None:
        return None
    try:
        return OPTIONS[name].convert(value)
    except argparse.ArgumentTypeError as exc:
        raise ValueError(str(exc)) from None


def add_to_parser(parser: argparse.ArgumentParser, command: str) -> None:
    """Add the options of ``command`` (see :data:`COMMANDS`) to an argparse parser."""
    for name in COMMANDS[command]:
        opt = OPTIONS[name]
        flags = [opt.flag] + ([opt.short] if opt.short else [])
        parser.add_argument(*flags, **opt.argparse_kwargs())


def magic_argument_decorators(names: Iterable[str]) -> list[Callable]:
    """``@argument`` decorators of IPython's magic_arguments for these options (same kwargs as argparse)."""
    from IPython.core.magic_arguments import argument

    decorators = []
    for name in names:
        opt = OPTIONS[name]
        kw = opt.argparse_kwargs()
        flags = [opt.flag] + ([opt.short] if opt.short else [])
        decorators.append(argument(*flags, **kw))
    return decorators


def trait_for(name: str):
    """The traitlets trait (``config=True``) for an option's default in the magic (None: the library's)."""
    import traitlets as T

    opt = OPTIONS[name]
    help_text = opt.help
    if opt.kind == "flag":
        trait = T.Bool(False, help=help_text)
    elif opt.kind == "float":
        trait = T.Float(None, allow_none=True, help=help_text)
    elif opt.kind == "int":
        trait = T.Int(None, allow_none=True, help=help_text)
    elif opt.kind == "choice":
        trait = T.Enum(list(opt.choices), default_value=None, allow_none=True, help=help_text)
    else:
        trait = T.Unicode(None, allow_none=True, help=help_text)
    return trait.tag(config=True)


def merged(values: dict, defaults: dict) -> dict:
    """Given options (not None / flags set) win over ``defaults`` (the magic's %config traits)."""
    out = dict(values)
    for k, v in defaults.items():
        if out.get(k) is None or (OPTIONS[k].kind == "flag" and not out.get(k)):
            out[k] = v
    return out


def manager_kwargs(values: dict) -> dict:
    """ResourceManager keyword arguments from option values (None: the spec's default)."""
    return dict(eta=values.get("eta"), gamma=values.get("gamma"), overhead_mb=values.get("overhead_mb"),
                safety_enabled=False if values.get("no_safety") else None, total_ram_mb=values.get("total_ram_mb"),
                min_workers=values.get("min_workers"), max_workers=values.get("max_workers"))


def run_kwargs(values: dict, names: Sequence[str] = ("config", "pattern", "group_by", "output", "workers")) -> dict:
    """``job.Run`` keyword arguments (without ``manager``) from option values."""
    kw = {k: values.get(k) for k in names}
    kw["learn"] = not values.get("no_learn")
    if values.get("oversize") is not None:
        kw["oversize"] = values["oversize"]
    if values.get("file_timeout") is not None:
        kw["file_timeout"] = values["file_timeout"]
    if values.get("no_cache"):
        kw["cache"] = False
    elif values.get("cache_dir"):
        kw["cache"] = values["cache_dir"]
    if values.get("scheduler") or values.get("dask_workers"):  # an address, or N local Dask workers
        kw["scheduler"] = values.get("scheduler") or int(values["dask_workers"])
    return kw
