"""Report type from a file name (the one name->type function) or sniffed from the first bytes."""
from __future__ import annotations

import os
import re

from .base import _SNIFF_BYTES, UNKNOWN
from .parsers import _COLS
from .parsers_events import _EVENT_FIELDS
from .catalog import report_type_from_name
from .tables import _header_names
from .textio import read_head



_type_from_name = report_type_from_name


_NUM = r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"


def _sniff(text: str) -> tuple[str, list[str]]:
    """Guess the report type from the first lines; returns (type or 'unknown', ambiguous alternatives)."""
    lines = [ln.rstrip("\r") for ln in text.split("\n")]
    if lines and not text.endswith("\n"):
        lines = lines[:-1]  # the head may end mid-line
    lines = [ln for ln in lines if ln.strip()]
    if not lines:
        return UNKNOWN, []
    first = lines[0].strip()
    rest = [ln.strip() for ln in lines[1:12]]
    if first.startswith("Message stats for scenario"):
        return "MessageStatsReport", []
    if first.startswith("Ping stats for scenario"):
        return "PingAppReporter", []
    if re.match(r"^graph\s+\w*\s*\{", first):
        return "AdjacencyGraphvizReport", []
    if first.startswith("/*") and any(ln.startswith("digraph") for ln in rest[:3]):
        return "MessageGraphvizReport", []
    if first.startswith("#"):
        names = _header_names(first)
        for t in ("CreatedMessagesReport", "DeliveredMessagesReport", "MessageDelayReport",
                  "MessageDeliveryReport", "TotalContactTimeReport"):
            if names == _COLS[t]:
                return t, []
        if first.startswith("# no messages delivered"):
            return "MessageDelayReport", []
        if first.startswith("# messages: ID"):
            return "MessageReport", []
        if first.startswith("# Scenario") and rest and rest[0].startswith("# distance at msg send"):
            return "DistanceDelayReport", []
        return UNKNOWN, []
    if first.startswith("$node_(") or first.startswith("$ns_ at"):
        return "MovementNs2Report", []
    if re.match(r"^@" + _NUM + r" \S+ <-> \S+ (up|down)$", first):
        return "ConnectivityDtnsim2Report", []
    if re.match(r"^\[" + _NUM + r"\]$", first) and rest:
        nxt = rest[0].split()
        if rest[0].startswith("("):
            return "MessageLocationReport", []
        if len(nxt) == 2 and re.fullmatch(r"\d+", nxt[1]):
            return "MessageCopyCountReport", []
        if len(nxt) == 3:
            return "LocationSnapshotReport", []
        return UNKNOWN, []
    data_lines = [ln.strip() for ln in lines[:200]]
    toks = first.split()
    if len(toks) >= 4 and re.fullmatch(_NUM, toks[0]) and toks[1] in _EVENT_FIELDS:
        if toks[1] == "CONN" and all(re.fullmatch(r"\d+", x) for x in toks[2:4]) and re.fullmatch(r"\d+\.\d\d", toks[0]):
            return "ConnectivityONEReport", []
        return "EventLogReport", []
    if "\t" in first:
        cols = [ln.split("\t") for ln in data_lines]
        if all(len(c) == 3 for c in cols):
            return "EncountersVSUniqueEncountersReport", []
        if all(len(c) == 2 for c in cols):
            counts = [int(c[1]) for c in cols if c[1].strip().isdigit()]
            if (0 in counts) or len(lines) >= 100:
                return "ContactsDuringAnICTReport", ["ContactsPerHourReport"]
            return "ContactsPerHourReport", ["ContactsDuringAnICTReport"]
        return UNKNOWN, []
    if all(re.fullmatch(r"\d+ " + r"\S+" + r"(?: " + _NUM + r"){3}", ln) for ln in data_lines[:20]) and \
            not re.fullmatch(_NUM, toks[1]):
        return "RadiusOfGyrationReport", []
    if len(toks) > 5 and all(re.fullmatch(_NUM, x) for x in toks):
        return "NodeDensityReport", []
    if len(toks) == 3 and all(re.fullmatch(_NUM, x) for x in toks):
        if re.fullmatch(r"\d+", toks[2]):
            return "JumpSizeDistributionReport", []
        return "BufferOccupancyReport", []
    if len(toks) == 2 and all(re.fullmatch(_NUM, x) for x in toks):
        if re.fullmatch(r"\d+\.0", toks[0]):
            return "ContactTimesReport", ["InterContactTimesReport"]
        if re.fullmatch(r"\d+", toks[0]) and re.fullmatch(r"\d+", toks[1]):
            complete = text.endswith("\n") and len(lines) == 1000 and lines[-1].split()[0] == "999"
            if complete:
                return "UniqueEncountersReport", ["TotalEncountersReport"]
            return "TotalEncountersReport", ["UniqueEncountersReport"]
    return UNKNOWN, []


def detect_report_type(path: str | os.PathLike, head: bytes | None = None) -> str:
    """The report class: from the file name (last ``_`` part), else sniffed from the first bytes.

    Returns ``"unknown"`` when neither works (or the file cannot be read for sniffing). Pass
    ``head=b""`` to use the name only (no I/O), or the first bytes you already read.
    """
    path = os.fspath(path)
    by_name = _type_from_name(path)
    if by_name:
        return by_name
    return _detect_by_content(path, head)[0]


def _detect_by_content(path: str, head: bytes | None) -> tuple[str, list[str]]:
    if head is None:
        head = read_head(path, _SNIFF_BYTES)
        if not head:
            return UNKNOWN, []
    if b"\x00" in head:
        return UNKNOWN, []
    return _sniff(head.decode("utf-8", "replace"))

