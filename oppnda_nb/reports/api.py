"""Entry points: read_report, summarize_report, summarize_path."""
from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from ..system import MB
from .base import UNKNOWN, Report, ReportError, Summary, _Src
from .detect import _SNIFF_BYTES, _detect_by_content, _type_from_name
from .parsers import _p_generic
from .catalog import _BY_LOWER, KIND_OF, KNOWN_REPORT_TYPES
from .registry import REGISTRY
from .summaries import _s_generic
from .keyvalue import summarize_keyvalue
from .streaming import NeedWholeFile, fold_blocks
from .textio import _check_text, _read_bytes, is_gzip, iter_blocks




def read_report(path: str | os.PathLike, report_type: str | None = None, *, separator: str = ":") -> Report:
    """Read one ONE report file into a :class:`Report` (tidy frame + type + header metadata).

    ``report_type`` overrides detection (a class name from :data:`KNOWN_REPORT_TYPES` or
    ``"unknown"`` for generic parsing); ``separator`` is the key/value separator (OppNDA's
    ``data_separator``) for key:value and generic reports. Raises only :class:`ReportError`.
    """
    try:
        path = os.fspath(path)
    except TypeError:
        raise ReportError(repr(path), "not a file path") from None
    try:
        return _read_report(path, report_type, separator)
    except ReportError:
        raise
    except MemoryError:
        raise ReportError(path, "out of memory while parsing the report") from None
    except Exception as exc:  # never let a parser bug escape as another exception type
        raise ReportError(path, f"could not parse as {report_type or 'a report'}: {type(exc).__name__}: {exc}") from None


def _read_report(path: str, report_type: str | None, separator: str) -> Report:
    if not isinstance(separator, str) or not separator:
        raise ReportError(path, f"separator must be a non-empty string, got {separator!r}")
    warns: list[str] = []
    meta: dict[str, Any] = {}
    alternatives: list[str] = []
    if report_type is not None:
        rt = _BY_LOWER.get(str(report_type).lower())
        if rt is None and str(report_type).lower() not in (UNKNOWN, "generic"):
            raise ReportError(path, f"unknown report_type {report_type!r}; use one of {', '.join(KNOWN_REPORT_TYPES)} "
                                    "or 'unknown' for generic parsing")
        rt = rt or UNKNOWN
        source = "argument"
    else:
        rt = _type_from_name(path)
        source = "filename"
    data = _read_bytes(path)
    if rt is None:
        rt, alternatives = _detect_by_content(path, data[:_SNIFF_BYTES])
        source = "content"
    data = _check_text(path, data, warns, strict_end=KIND_OF.get(rt) == "keyvalue")
    if source == "content":
        if alternatives:
            warns.append(f"report type sniffed from content as {rt}; could also be {', '.join(alternatives)} "
                         "(name the file ..._<ReportClass>.txt or pass report_type=)")
    meta["type_source"] = source
    meta["file_size"] = len(data)
    src = _Src(path, data, rt, separator, warns)
    if rt == UNKNOWN:
        kind = "generic"
        meta["note"] = ("unknown report type (not in the file name, not recognised from the content): "
                        "parsed generically")
        frame = _p_generic(src)
    else:
        spec = REGISTRY[rt]
        kind = spec.kind
        try:
            frame = spec.parse(src)
        except ReportError as exc:
            guess, _ = _detect_by_content(path, data[:_SNIFF_BYTES])
            if guess not in (UNKNOWN, rt) and source != "content":
                raise ReportError(path, f"{exc.reason} -- the content looks like a {guess}; rename the file "
                                        f"or pass report_type='{guess}'") from None
            raise
    meta.update(src.meta)
    meta["rows"] = int(len(frame))
    meta["warnings"] = warns
    del src
    return Report(path=path, report_type=rt, kind=kind, frame=frame, meta=meta)



def summarize_report(report: Report | str | os.PathLike, *, separator: str = ":") -> Summary:
    """Per-run summary of a report (see the module docstring); a path is read first.

    Scalars are plain floats (NaN where undefined); curves are small float DataFrames with
    columns ``x``, ``y`` (+ extras). Raises :class:`ReportError` if the report cannot be
    summarised (e.g. a frame without the documented columns).
    """
    if not isinstance(report, Report):
        report = read_report(report, separator=separator)
    spec = REGISTRY.get(report.report_type)
    fn = spec.summary if spec is not None else _s_generic
    try:
        with np.errstate(all="ignore"):
            s = fn(report)
    except ReportError:
        raise
    except Exception as exc:
        raise ReportError(report.path, f"cannot summarise {report.report_type}: {type(exc).__name__}: {exc}") from None
    keyvalue = report.kind == "keyvalue" or (report.kind == "generic" and report.meta.get("generic_format") == "keyvalue")
    s.warnings = list(report.meta.get("warnings", []))
    return _clean(s, keyvalue)


def _clean(s: Summary, keyvalue: bool, ignore=()) -> Summary:
    """Scalars as plain floats; derived statistics of an overflowing value ("1e999") are NaN, never inf."""
    ignore = set(ignore)
    scalars = {str(k): float(v) for k, v in s.scalars.items() if str(k) not in ignore}
    if not keyvalue:
        scalars = {k: (v if math.isfinite(v) else math.nan) for k, v in scalars.items()}
    s.scalars = scalars
    return s


# Files below this size are summarised from the whole frame unless chunk_bytes is given (a whole
# frame costs up to ~45x the file's size for some types: above 1 MB streaming one block costs less).
SMALL_FILE = 1 * MB
CHUNK_BYTES = 4 * MB          # block size of the streamed summaries
LEAN_CHUNK_BYTES = 512 * 1024       # block size in lean mode (the pool's retry after a worker passed its estimate)


def summarize_path(path: str | os.PathLike, report_type: str | None = None, *, separator: str = ":",
                   ignore_fields=(), chunk_bytes: int | None = None, lean: bool = False) -> Summary:
    """The Summary of one report file, reading it once: equal to ``summarize_report(read_report(path))``
    (scalars to rounding, counts and curves exactly) minus ``ignore_fields``, with ``warnings``.

    Table-shaped types with a streaming fold (``REGISTRY[t].stream``) are read in blocks of
    ``chunk_bytes`` (default 4 MB; 512 kB when ``lean``) so memory does not grow with the file;
    files under SMALL_FILE (1 MB, without ``chunk_bytes``) and the other types use the whole frame; key:value
    reports use the fast parser (no DataFrame). Raises only :class:`ReportError`.
    """
    try:
        path = os.fspath(path)
    except TypeError:
        raise ReportError(repr(path), "not a file path") from None
    try:
        s, rt = _summarize_path(path, report_type, separator, tuple(ignore_fields), chunk_bytes, lean)
        s.report_type, s.kind = rt, KIND_OF.get(rt, "generic") if s.kind is None else s.kind
        return s
    except ReportError:
        raise
    except MemoryError:
        raise ReportError(path, "out of memory while summarising the report") from None
    except Exception as exc:  # never let a fold bug escape as another exception type
        raise ReportError(path, f"could not summarise as {report_type or 'a report'}: {type(exc).__name__}: {exc}") from None


def _summarize_path(path: str, report_type: str | None, separator: str, ignore: tuple, chunk_bytes: int | None,
                    lean: bool) -> tuple[Summary, str]:
    s = summarize_keyvalue(path, report_type, separator, ignore)      # key:value by its given type or name
    if s is not None:
        return s, s.report_type
    if report_type is not None:
        rt = _BY_LOWER.get(str(report_type).lower())
    else:
        rt = _type_from_name(path) or _detect_by_content(path, None)[0]
    spec = REGISTRY.get(rt) if rt else None
    if spec is not None and spec.kind == "keyvalue":                   # key:value by its content
        s = summarize_keyvalue(path, rt, separator, ignore)
        if s is not None:
            return s, rt
    stream = spec.stream if spec is not None else None
    if stream is not None and chunk_bytes is None and not lean:
        try:
            small = os.path.getsize(path) < SMALL_FILE and not is_gzip(path)
        except OSError:
            small = True                     # read_report says why it cannot read the file
        if small:
            stream = None
    if stream is None:
        return _clean_whole(path, report_type, separator, ignore)
    size = int(chunk_bytes) if chunk_bytes else (LEAN_CHUNK_BYTES if lean else CHUNK_BYTES)
    warns: list[str] = []
    try:
        with np.errstate(all="ignore"):
            s = fold_blocks(path, rt, stream, spec.parse, iter_blocks(path, max(size, 1), warns), separator, warns)
    except NeedWholeFile:
        return _clean_whole(path, report_type, separator, ignore)
    except ReportError as exc:
        guess, _ = _detect_by_content(path, None)
        if guess not in (UNKNOWN, rt) and report_type is None:
            raise ReportError(path, f"{exc.reason} -- the content looks like a {guess}; rename the file "
                                    f"or pass report_type='{guess}'") from None
        raise
    s.warnings = warns
    return _clean(s, False, ignore), rt


def _clean_whole(path: str, report_type: str | None, separator: str, ignore: tuple) -> tuple[Summary, str]:
    rep = read_report(path, report_type, separator=separator)
    s = summarize_report(rep)
    s.scalars = {k: v for k, v in s.scalars.items() if k not in set(ignore)}
    s.kind = rep.kind
    return s, rep.report_type
