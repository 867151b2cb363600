"""Bounded-memory summaries: read a table-shaped report in blocks of complete lines, parse each block
with the type's own parser and fold it into running aggregates (folds.py), so memory follows the
block size, not the file size. Each fold's ``finish()`` returns exactly the keys and values of the
whole-frame summary in summaries.py (see tests/test_streaming.py).

The folds themselves: stream_tables.py (line tables) and stream_snapshots.py (snapshot reports).

Blocks: ``#`` header lines are repeated in front of every block (so the parser validates each the
same way); snapshot reports are cut only before a ``[t]`` line (a snapshot is never split, so a
block holds at least one whole snapshot).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from . import fastpath as fp
from .base import ReportError, Summary, _Src
from .textio import Blocks


SNAPSHOT_BLOCK = 1 << 20    # snapshot reports are read in blocks of at most this many bytes: each block is
                            # folded as one piece (fewer numpy calls than 4 MB blocks in pieces of 256 kB) and
                            # one block's bytes and arrays take less memory (measured: faster, same or lower peak)


class NeedWholeFile(Exception):
    """A fold met input it cannot fold exactly (e.g. snapshot times going back): use the whole frame."""


@dataclass(frozen=True)
class StreamSpec:
    """How a report type streams: its fold, and how blocks are cut."""

    make: Callable[[], object]      # () -> fold with add(src, parse) and finish() -> Summary
    snapshots: bool = False         # cut only before '[t]' lines
    header: bool = False            # repeat the leading '#' lines in front of every block


def _series(x, y, **extra) -> pd.DataFrame:
    d = {"x": np.asarray(x, dtype="float64"), "y": np.asarray(y, dtype="float64")}
    for k, v in extra.items():
        d[k] = np.asarray(v, dtype="float64")
    return pd.DataFrame(d)


def _nanmin(cur: float, v: np.ndarray) -> float:
    return min(cur, float(np.nanmin(v))) if len(v) and not np.isnan(v).all() else cur


def _nanmax(cur: float, v: np.ndarray) -> float:
    return max(cur, float(np.nanmax(v))) if len(v) and not np.isnan(v).all() else cur


# --------------------------------------------------------------------------------------------


def fold_blocks(path: str, report_type: str, stream: StreamSpec, parse, blocks, separator: str,
                warns: list[str]) -> Summary:
    """Fold the ``(block, first line)`` pairs of ``blocks`` (textio.iter_blocks) into a Summary."""
    fold = stream.make()
    seen: set[str] = set()

    def feed(data: bytes, line0: int) -> None:
        cw: list[str] = []
        src = _Src(path, data, report_type, separator, cw)
        try:
            fold.add(src, parse)
        except ReportError as exc:
            if line0 > 1:
                raise ReportError(path, f"{exc.reason} (in the part of the file from line {line0})") from None
            raise
        for w in cw:
            if w not in seen:
                seen.add(w)
                warns.append(w)

    whole = stream.snapshots and not stream.header and isinstance(blocks, Blocks)
    if whole:                                    # the reader cuts whole snapshots itself (no copy here)
        blocks = blocks.snapshots(SNAPSHOT_BLOCK)
    with fp.reuse_heap():                        # blocks reuse the heap (workers only), see fastpath
        if whole:
            fed = False
            for block, line0 in blocks:
                feed(block, line0)
                fed = True
            if not fed:
                feed(b"", 1)
            return fold.finish()
        return _fold(fold, feed, stream, blocks)


def _fold(fold, feed, stream: StreamSpec, blocks) -> Summary:
    header = b""
    head_acc: bytes | None = b"" if stream.header else None
    pending, pending_line = b"", 1
    fed = False
    for block, line0 in blocks:
        if head_acc is not None:                 # still collecting the leading '#' lines
            head_acc += block
            n = fp.header_len(head_acc)
            if n == len(head_acc):
                continue
            header, block, head_acc, line0 = head_acc[:n], head_acc, None, 1
            feed(block, line0)
            fed = True
            continue
        if stream.snapshots:
            start = max(len(pending) - 1, 0)
            if pending:
                block, line0 = pending + block, pending_line
            p = block.rfind(b"\n[", start)
            if p < 0:
                pending, pending_line = block, line0
                continue
            pending, pending_line = block[p + 1:], line0 + block.count(b"\n", 0, p + 1)
            block = block[:p + 1]
        feed(header + block if header else block, line0)
        fed = True
    if head_acc:                                 # header-only file
        feed(head_acc, 1)
        fed = True
    if pending:
        feed(pending, pending_line)
        fed = True
    if not fed:
        feed(b"", 1)
    return fold.finish()
