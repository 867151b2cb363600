"""key: value reports (MessageStatsReport, PingAppReporter) with OppNDA's averager semantics, read
without pandas (a sweep of thousands of them needs neither pandas nor worker processes)."""
from __future__ import annotations

import math
import os
import re
import sys

from .base import ReportError, Summary, _Src, snippet
from .catalog import _BY_LOWER, KIND_OF, report_type_from_name
from .textio import _check_text, _read_bytes


def _split_lines(text: str) -> list[str]:
    """Lines as Python's universal-newline file iteration gives them (what OppNDA iterates)."""
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _parse_keyvalue(text: str, separator: str, ignore_fields=()) -> tuple[dict, list[str], list[str], list[str]]:
    """Key:value lines with OppNDA's averager semantics: (metrics, unparsable lines, lines without
    separator, every key in order, ignored ones included).

    OppNDA strips each line, splits it once at the separator, strips both sides and keeps
    ``float(value)`` (``nan`` read as NaN). When the separator has no blank at either end, splitting
    the unstripped line finds the same first separator and ``float()`` strips the value itself (a
    value it rejects is stripped and tried again: ``float`` ignores fewer blanks than ``strip``), so
    one split per line is all the work (the same values, keys and lines out). Keys are interned:
    a sweep's thousands of summaries then share one string per key (about 1 KB less per file).
    """
    ignore = set(ignore_fields)
    data: dict[str, float] = {}
    bad: list[str] = []
    other: list[str] = []
    keys: list[str] = []
    if separator != separator.strip():
        for raw in _split_lines(text):
            line = raw.strip()
            if not line:
                continue
            if separator not in line:
                other.append(line)
                continue
            key, value = line.split(separator, 1)
            key = sys.intern(key.strip())
            value = value.strip()
            if key in ignore:
                continue
            try:
                data[key] = float(value) if value.lower() != "nan" else math.nan
            except ValueError:
                bad.append(line)
        keys = [ln.split(separator, 1)[0].strip() for ln in _split_lines(text) if separator in ln]
        return data, bad, other, keys
    for raw in _split_lines(text):
        key, sep, value = raw.partition(separator)
        if not sep:
            line = raw.strip()
            if line:
                other.append(line)
            continue
        key = sys.intern(key.strip())
        keys.append(key)
        if key in ignore:
            continue
        try:
            data[key] = float(value)
        except ValueError:                 # float() strips fewer characters than str.strip() (\x1c-\x1f)
            value = value.strip()
            try:
                data[key] = float(value)
            except ValueError:
                bad.append(raw.strip())
    return data, bad, other, keys


def _bad_value_warnings(bad: list[str], separator: str) -> list[str]:
    """One warning per line whose value is not a number, naming the key (at most 5, then a count)."""
    out = []
    for line in bad[:5]:
        key, value = line.split(separator, 1)
        out.append(f"unparsable value of {snippet(key.strip(), 80)}: not a number: {snippet(value.strip())} "
                   "(line skipped, like OppNDA)")
    if len(bad) > 5:
        out.append(f"{len(bad) - 5} more line(s) with an unparsable value skipped")
    return out


def read_keyvalue(path: str | os.PathLike, separator: str = ":", ignore_fields=()) -> dict[str, float]:
    """Read a key:value report exactly like OppNDA's averager (fast path for averaging).

    For each stripped line containing ``separator``: split once, strip both sides, skip
    ``ignore_fields``, ``float(value)`` unless ``value.lower() == "nan"`` (-> NaN), skip values that
    do not parse. Later duplicates overwrite earlier ones (a dict, like OppNDA). Raises
    :class:`ReportError` when the file cannot be read, is not text, or ends in an unfinished line
    (no final newline: the value may be cut, e.g. ``delivered: 16`` of ``delivered: 161``).
    :func:`keyvalue_summary` gives the same metrics plus warnings.
    """
    return keyvalue_summary(path, separator, ignore_fields, check=False)[0]


def keyvalue_summary(path: str | os.PathLike, separator: str = ":", ignore_fields=(), report_type: str | None = None,
                     *, check: bool = True) -> tuple[dict[str, float], list[str], dict]:
    """(metrics, warnings, meta) of a key:value report without building a DataFrame.

    ``check``: also the checks of :func:`read_report` (no metric at all is an error; missing or
    duplicate keys, values that are not numbers and a missing title are warnings).
    """
    path = os.fspath(path)
    warns: list[str] = []
    if not check:
        return _parse_keyvalue(_raw_text(path).decode("utf-8"), separator, ignore_fields)[0], warns, {}
    data = _check_text(path, _read_bytes(path), warns, strict_end=True)
    meta: dict = {}
    metrics = _checked_metrics(path, data, report_type or "MessageStatsReport", separator, ignore_fields, warns, meta)
    return metrics, warns, meta


def keyvalue_type(path: str, report_type: str | None = None, separator: str = ":") -> str | None:
    """The key:value report type ``path`` is read as (``report_type`` if given, else from the file's
    name), or None when it is not one (or ``separator`` is unusable)."""
    rt = _BY_LOWER.get(str(report_type).lower()) if report_type is not None else report_type_from_name(path)
    if rt is None or KIND_OF.get(rt) != "keyvalue" or not isinstance(separator, str) or not separator:
        return None
    return rt


def summarize_keyvalue(path: str | os.PathLike, report_type: str | None = None, separator: str = ":",
                       ignore_fields=()) -> Summary | None:
    """The summary of a key:value report, or None when ``report_type`` (or, if None, the file's
    name) does not say it is one: then :func:`reports.summarize_path` reads it (by its content)."""
    path = os.fspath(path)
    rt = keyvalue_type(path, report_type, separator)
    if rt is None:
        return None
    metrics, warns, _ = keyvalue_summary(path, separator, tuple(ignore_fields), rt)
    return Summary(metrics, warnings=warns, report_type=rt, kind="keyvalue")


def _raw_text(path: str) -> bytes:
    """The bytes OppNDA would read, checked only for being text and for an unfinished last line."""
    data = _read_bytes(path)
    if b"\x00" in data:
        raise ReportError(path, "contains NUL bytes: binary data, not a text report")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReportError(path, f"not UTF-8/ASCII text: byte 0x{data[exc.start]:02x} at offset {exc.start}") from None
    if data and not data.endswith((b"\n", b"\r")):
        last = data[max(data.rfind(b"\n"), data.rfind(b"\r")) + 1:]
        if last.strip():
            raise ReportError(path, f"truncated: the last line {snippet(last[:60].decode('utf-8', 'replace'))} has no "
                                    "newline, so its value may be cut (run killed while writing?); ONE ends every "
                                    "line with a newline. Re-run or remove the file")
    return data


_TITLE = re.compile(r"^(?:Message|Ping) stats for scenario (.*)$")


def _kv_metrics(src: _Src, ignore_fields=()) -> dict[str, float]:
    """The checked metrics of a key:value source (fills ``src.meta`` and ``src.warnings``)."""
    return _checked_metrics(src.path, src.data, src.report_type, src.separator, ignore_fields, src.warnings, src.meta)


def _scan(text: str, separator: str, ignore) -> tuple[dict[str, float], list[str], list[str], int, list[str]]:
    """:func:`_parse_keyvalue` for a separator without blanks at its ends and a text without ``\\r``
    (what ONE writes), in one pass and without the list of every key: (metrics, unparsable lines,
    lines without separator, how many lines have the separator, the ignored keys met)."""
    data: dict[str, float] = {}
    bad: list[str] = []
    other: list[str] = []
    ignored: list[str] = []
    n_sep = 0
    intern = sys.intern
    for raw in text.split("\n"):
        key, sep, value = raw.partition(separator)
        if not sep:
            if raw:
                line = raw.strip()
                if line:
                    other.append(line)
            continue
        n_sep += 1
        key = intern(key.strip())
        if key in ignore:
            ignored.append(key)
            continue
        try:
            data[key] = float(value)
        except ValueError:                 # float() strips fewer characters than str.strip() (\x1c-\x1f)
            try:
                data[key] = float(value.strip())
            except ValueError:
                bad.append(raw.strip())
    return data, bad, other, n_sep, ignored


def _checked_metrics(path: str, data: bytes, report_type: str, separator: str, ignore_fields, warns: list[str],
                     meta: dict) -> dict[str, float]:
    """The checked metrics of validated key:value bytes (fills ``meta`` and ``warns``)."""
    text = data.decode("utf-8")
    if "\r" in text or separator != separator.strip():
        metrics, bad, title, keys = _parse_keyvalue(text, separator, ignore_fields)
        dup = len(keys) != len(set(keys))
    else:
        ignore = ignore_fields if isinstance(ignore_fields, (frozenset, set)) else frozenset(ignore_fields)
        metrics, bad, title, n_sep, ignored = _scan(text, separator, ignore)
        # every separator line's key is in metrics, ignored or (unparsable) bad: without bad lines, a key
        # seen twice shows as fewer distinct keys than lines
        dup = bool(bad) or n_sep != len(metrics) + len(set(ignored))
        keys = [ln.partition(separator)[0].strip() for ln in text.split("\n") if separator in ln] if dup else []
        dup = dup and len(keys) != len(set(keys))
    for ln in title:
        m = _TITLE.match(ln)
        if m:
            meta["scenario"] = m.group(1).strip()
            meta["title"] = ln
            break
    if not metrics:
        first = [ln for ln in _split_lines(text) if ln.strip()][:2]
        raise ReportError(path, f"no 'key{separator} value' lines with a number: not a {report_type} "
                                f"(first lines: {snippet(first, 160)})")
    if bad:
        warns.extend(_bad_value_warnings(bad, separator))
    if dup:
        dups = sorted({k for k in keys if keys.count(k) > 1})
        warns.append(f"duplicate keys {snippet(dups[:5], 160)}: the last value wins (like OppNDA)")
    if len(title) > 1 or (title and "title" not in meta):
        extra = [ln for ln in title if ln != meta.get("title")]
        if extra:
            warns.append(f"{len(extra)} line(s) without '{separator}' ignored: {snippet(extra[:3], 160)}")
    if report_type in _EXPECTED_KEYS:
        if not _expected(report_type, ignore_fields) <= metrics.keys():
            missing = [k for k in _EXPECTED_KEYS[report_type] if k not in metrics and k not in ignore_fields]
            if missing:
                warns.append(f"missing metrics {snippet(missing, 200)}")
        if "title" not in meta:
            warns.append("missing the title line 'Message/Ping stats for scenario <name>'")
    return metrics


_EXPECTED_KEYS = {
    "MessageStatsReport": ["sim_time", "created", "started", "relayed", "aborted", "dropped", "removed",
                           "delivered", "delivery_prob", "response_prob", "overhead_ratio", "latency_avg",
                           "latency_med", "hopcount_avg", "hopcount_med", "buffertime_avg", "buffertime_med",
                           "rtt_avg", "rtt_med"],
    "PingAppReporter": ["sim_time", "pings sent", "pings received", "pongs sent", "pongs received",
                        "ping delivery prob", "pong delivery prob", "ping/pong success prob"],
}

_EXPECTED_SETS: dict[tuple, frozenset[str]] = {}


def _expected(report_type: str, ignore_fields) -> frozenset[str]:
    """The keys a report of ``report_type`` must have, but for ``ignore_fields`` (remembered per pair)."""
    key = (report_type, ignore_fields if isinstance(ignore_fields, (tuple, frozenset)) else tuple(ignore_fields))
    got = _EXPECTED_SETS.get(key)
    if got is None:
        if len(_EXPECTED_SETS) > 64:
            _EXPECTED_SETS.clear()
        got = _EXPECTED_SETS[key] = frozenset(_EXPECTED_KEYS[report_type]) - frozenset(ignore_fields)
    return got
