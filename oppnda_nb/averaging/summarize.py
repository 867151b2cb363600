"""The per-file work: read one report once and summarise it (top-level functions workers import)."""
from __future__ import annotations

import os
import sys
from array import array
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from .. import reports
from ..naming import NamePattern, plain_name
from ..reports.catalog import _BY_LOWER, KIND_OF, report_type_from_name

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class SummarizeSettings:
    """What a worker needs to summarize one file (picklable)."""

    pattern: NamePattern | None = None
    separator: str = ":"
    ignore_fields: tuple[str, ...] = ()
    report_type: str | None = None     # force a reader; None: detect from the name / content


@dataclass
class FileSummary:
    """The per-run summary of one report file (picklable; what workers send back)."""

    path: str
    params: dict[str, str]
    report_type: str
    scalars: dict[str, float]
    curve: pd.DataFrame | None = None
    curve_kind: str | None = None
    kind: str = "keyvalue"
    #: what the reader kept going past (bad values, ...); an empty tuple when nothing: a sweep's
    #: thousands of summaries then hold no empty list each (every full garbage collection walks them)
    warnings: list[str] | tuple[str, ...] = ()

    def __reduce__(self):
        """Pickled compactly (workers send summaries back, the cache stores them): the keys of
        ``params`` and ``scalars`` joined in one string each, the parameter values in one string,
        the scalars in one float64 array; unpickled with keys and parameter values interned, so a
        sweep's thousands of summaries share one string each, as freshly parsed ones do. Anything
        else (other types, a key with a NUL) is pickled field by field."""
        params, scalars = _packed(self.params, str), _packed(self.scalars, float)
        if params is None or scalars is None:
            return (FileSummary, (self.path, self.params, self.report_type, self.scalars, self.curve,
                                  self.curve_kind, self.kind, self.warnings))
        return (_unpacked, (self.path, params, self.report_type, scalars, self.curve, self.curve_kind,
                            self.kind, self.warnings))


def _packed(d: dict, kind: type) -> tuple | None:
    """``(n, keys joined by NUL, values)`` of a dict of ``str -> kind`` (values: NUL-joined text, or
    float64 bytes and the byte order), or None if it is not one or a key or text holds a NUL."""
    if type(d) is not dict:
        return None
    try:
        keys = "\0".join(d)
        values = "\0".join(d.values()) if kind is str else None
    except TypeError:
        return None
    if d and (keys.count("\0") != len(d) - 1 or (values is not None and values.count("\0") != len(d) - 1)):
        return None
    if values is not None:
        return len(d), keys, values
    if not set(map(type, d.values())) <= {kind}:
        return None
    return len(d), keys, array("d", d.values()).tobytes(), sys.byteorder


def _unpacked(path, params, report_type, scalars, curve, curve_kind, kind, warnings) -> FileSummary:
    """A :class:`FileSummary` from :meth:`FileSummary.__reduce__`'s compact form."""
    intern = sys.intern
    n, keys, values = params
    params = dict(zip(map(intern, keys.split("\0")), map(intern, values.split("\0")))) if n else {}
    n, keys, raw, order = scalars
    numbers = array("d", raw)
    if order != sys.byteorder:
        numbers.byteswap()
    scalars = dict(zip(map(intern, keys.split("\0")), numbers)) if n else {}
    return FileSummary(path, params, report_type, scalars, curve, curve_kind, kind, warnings)


def summarize_file(path: str, settings: SummarizeSettings, lean: bool = False) -> FileSummary:
    """Read one report once and summarize it (TOP-LEVEL worker function; raises reports.ReportError).

    Table-shaped reports are streamed in bounded chunks (``lean``: smaller chunks, the pool's
    retry after a worker passed its memory estimate), so a worker's memory does not grow with the file.
    """
    path = os.fspath(path)
    name = plain_name(os.path.basename(path))
    params = (settings.pattern.parse(name) if settings.pattern is not None else None) or {}
    rt = _keyvalue_type(path, settings)
    if rt is not None:     # key:value by its type or name: read here, straight into the summary
        metrics, warns, _ = reports.keyvalue_summary(path, settings.separator, settings.ignore_fields, rt)
        return FileSummary(path, params, rt, metrics, None, None, "keyvalue", warns or ())
    # not key:value by its type or name: the full reader (by content; pandas, streaming)
    summ = reports.summarize_path(path, settings.report_type, separator=settings.separator,
                                  ignore_fields=settings.ignore_fields, lean=lean)
    if summ.kind == "keyvalue":        # already {str: float}
        scalars = summ.scalars
    else:
        scalars = {}
        for k, v in (summ.scalars or {}).items():
            try:
                scalars[str(k)] = float(v)
            except (TypeError, ValueError):
                continue
    return FileSummary(path=path, params=params, report_type=summ.report_type, scalars=scalars,
                       curve=summ.curve, curve_kind=summ.curve_kind, kind=summ.kind,
                       warnings=list(summ.warnings) or ())


def _keyvalue_type(path: str, settings: SummarizeSettings) -> str | None:
    """The key:value report type ``path`` is read as, or None (``reports.keyvalue.keyvalue_type``,
    here so that importing this module imports no reader, nor numpy: planning needs the settings only)."""
    rt = _BY_LOWER.get(str(settings.report_type).lower()) if settings.report_type is not None \
        else report_type_from_name(path)
    sep = settings.separator
    if rt is None or KIND_OF.get(rt) != "keyvalue" or not isinstance(sep, str) or not sep:
        return None
    return rt


def summarize_files(paths: Sequence[str], settings: SummarizeSettings) -> list[tuple[str, FileSummary | None, str | None]]:
    """Summarize a chunk of files: [(path, summary or None, error reason or None)] (TOP-LEVEL worker)."""
    out: list[tuple[str, FileSummary | None, str | None]] = []
    for p in paths:
        try:
            out.append((p, summarize_file(p, settings), None))
        except reports.ReportError as exc:
            out.append((p, None, getattr(exc, "reason", None) or str(exc)))
        except Exception as exc:  # a reader bug must not kill the whole job
            out.append((p, None, f"unexpected {type(exc).__name__}: {exc}"))
    return out

