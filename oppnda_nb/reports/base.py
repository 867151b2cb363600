"""Records shared by the report modules: ReportError, Report, Summary, a parser's source and
constants (pandas-free: key:value reports are read without it)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

from ..errors import OppndaError

UNKNOWN = "unknown"
_SNIFF_BYTES = 64 * 1024
_NA = ["NaN", "nan", "n/a", ""]
_NA_STRICT = ["NaN", "nan", "n/a"]


MAX_REASON = 300


def bounded(text: str, limit: int = MAX_REASON) -> str:
    """``text`` cut to ``limit`` characters, saying so (a reason quoting a huge value stays readable)."""
    if len(text) <= limit:
        return text
    tail = f"... [cut: {len(text)} characters]"
    return text[: limit - len(tail)] + tail


def snippet(value: Any, limit: int = 60) -> str:
    """``repr`` of an offending value, cut to ``limit`` characters (and saying so)."""
    r = repr(value)
    return r if len(r) <= limit else r[: limit - 10] + "...(cut)"


class ReportError(OppndaError):
    """A report file that cannot be read or parsed; ``str()`` is ``"<file>: <reason>"``.

    Picklable (``args == (path, reason)``) so it can cross process boundaries.
    """

    def __init__(self, path: Any, reason: str) -> None:
        reason = bounded(str(reason))
        super().__init__(str(path), reason)
        self.path = str(path)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class Report:
    """A parsed report: its type, kind, tidy frame and header metadata (``meta["warnings"]``)."""

    path: str
    report_type: str
    kind: str
    frame: pd.DataFrame
    meta: dict = field(default_factory=dict)


@dataclass
class Summary:
    """Per-run summary: float scalars and, for histograms/time series, a small curve (x, y, ...)."""

    scalars: dict
    curve: pd.DataFrame | None = None
    curve_kind: str | None = None
    warnings: list = field(default_factory=list)
    report_type: str | None = None  # set by summarize_path (the type it read the file as)
    kind: str | None = None         # that type's kind (keyvalue, table, events, ...)


def _f(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


class _Src:
    """What a parser gets: path, validated bytes (complete lines only), warnings and meta to fill."""

    def __init__(self, path: str, data: bytes, report_type: str, separator: str, warns: list[str]):
        self.path = path
        self.data = data
        self.report_type = report_type
        self.separator = separator
        self.warnings = warns
        self.meta: dict[str, Any] = {}

    def fail(self, reason: str) -> ReportError:
        return ReportError(self.path, reason)
