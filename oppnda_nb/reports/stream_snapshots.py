"""Streamed folds of the snapshot reports (location snapshots, message copy counts, message
locations): a block always holds whole snapshots (streaming.fold_blocks cuts before '[t]' lines)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .base import Summary
from .folds import Column, Distinct
from .streaming import NeedWholeFile, StreamSpec, _nanmax, _nanmin, _series
from .base import _Src

class _Location:
    def __init__(self):
        self.t = Distinct()
        self.ids: dict[str, int] = {}                    # host name -> id (the hosts seen so far)
        self.x, self.y = Column(), Column()
        self.tmin, self.tmax = math.inf, -math.inf
        self.last = np.empty((0, 2))                     # per host id: its last (x, y), NaN if none yet
        self.step_sum, self.step_n = 0.0, 0

    def add(self, src: _Src, parse) -> None:
        f = parse(src)
        if not len(f):
            return
        t = f["t"].to_numpy("float64")
        if t.min() < self.tmax:      # snapshot times go back: steps would pair other rows than the sort does
            raise NeedWholeFile("snapshot times are not in order")
        self.t.add(t)
        host = f["host"].array
        cat_id = np.array([self.ids.setdefault(str(c), len(self.ids)) for c in host.categories], dtype=np.int64)
        h = cat_id[host.codes]
        x, y = f["x"].to_numpy("float64"), f["y"].to_numpy("float64")
        self.x.add(x)
        self.y.add(y)
        self.tmin, self.tmax = _nanmin(self.tmin, t), _nanmax(self.tmax, t)
        order = np.lexsort((t, h))                       # by host, then time; stable like the whole-frame sort
        h, x, y = h[order], x[order], y[order]
        same = h[1:] == h[:-1]
        step = np.hypot(np.diff(x), np.diff(y))[same]
        first = np.concatenate([[True], ~same])
        if len(self.last) < len(self.ids):
            self.last = np.vstack([self.last, np.full((len(self.ids) - len(self.last), 2), np.nan)])
        fh = h[first]
        prev = self.last[fh]
        ok = ~np.isnan(prev[:, 0])
        cross = np.hypot(x[first][ok] - prev[ok, 0], y[first][ok] - prev[ok, 1])
        self.step_sum += float(step.sum()) + float(cross.sum())
        self.step_n += len(step) + len(cross)
        lastm = np.concatenate([~same, [True]])
        self.last[h[lastm]] = np.stack([x[lastm], y[lastm]], axis=1)

    def finish(self) -> Summary:
        n = self.x.n
        sc = {"snapshots": float(len(self.t)), "hosts": float(len(self.ids)),
              "first_t": self.tmin if n else math.nan, "last_t": self.tmax if n else math.nan,
              "step_mean": self.step_sum / self.step_n if self.step_n else math.nan}
        sc.update(self.x.stats("x"))
        sc.update(self.y.stats("y"))
        return Summary(sc)


class _CopyCount:
    def __init__(self):
        self.per_t: list[pd.DataFrame] = []
        self.msgs = Distinct()
        self.n, self.total, self.cmax = 0, 0.0, -math.inf

    def add(self, src: _Src, parse) -> None:
        f = parse(src)
        if not len(f):
            return
        self.per_t.append(f.groupby("t", sort=True)["copies"].agg(["size", "sum"]))
        msg = f["msg"].array
        self.msgs.add(np.asarray(msg.categories.astype(str))[np.unique(msg.codes[msg.codes >= 0])])
        c = f["copies"].to_numpy("float64")
        self.n += len(c)
        self.total += float(c.sum())
        self.cmax = max(self.cmax, float(c.max()))

    def finish(self) -> Summary:
        if self.per_t:
            per_t = pd.concat(self.per_t).groupby(level=0, sort=True).sum()
        else:
            per_t = pd.DataFrame({"size": pd.Series(dtype="int64"), "sum": pd.Series(dtype="float64")})
        mean = per_t["sum"].to_numpy("float64") / per_t["size"].to_numpy("float64")
        sc = {"snapshots": float(len(per_t)), "messages": float(len(self.msgs)),
              "copies_mean": self.total / self.n if self.n else math.nan,
              "copies_max": self.cmax if self.n else math.nan,
              "messages_per_snapshot_mean": float(per_t["size"].mean()) if len(per_t) else math.nan,
              "final_copies_mean": float(mean[-1]) if len(per_t) else math.nan}
        return Summary(sc, _series(per_t.index, mean, messages=per_t["size"], copies=per_t["sum"]), "timeseries")


class _MessageLocation:
    """Per snapshot: message copies, holders carrying at least one message, distinct messages."""

    def __init__(self):
        self.rows: list[tuple[float, int, int, int]] = []      # (t, copies, holders, messages)
        self.all: set[bytes] = set()
        self.cur_t: float | None = None
        self.cur = [0, set(), set()]                           # copies, holder ids, messages
        self.done_t: set[float] = set()

    def _close(self) -> None:
        if self.cur_t is not None and self.cur[0]:
            if self.cur_t in self.done_t:
                raise NeedWholeFile("a snapshot time appears twice, apart")
            self.done_t.add(self.cur_t)
            self.rows.append((self.cur_t, self.cur[0], len(self.cur[1]), len(self.cur[2])))
        self.cur = [0, set(), set()]

    def add(self, src: _Src, parse) -> None:
        fail = src.fail
        holder = -1
        for line in src.data.split(b"\n"):
            toks = line.split()
            if not toks:
                continue
            head = toks[0]
            if head[:1] == b"[":
                if not head.endswith(b"]"):
                    raise fail(f"not a well-formed MessageLocationReport: bad snapshot marker {head.decode('utf-8', 'replace')!r} (expected '[<time>]')")
                try:
                    t = float(head[1:-1])
                except ValueError:
                    raise fail(f"not a well-formed MessageLocationReport: bad snapshot marker {head.decode('utf-8', 'replace')!r} (expected '[<time>]')") from None
                if len(toks) > 1:
                    raise fail("not a well-formed MessageLocationReport: a message ID appears before any '(x,y)' coordinate")
                if t != self.cur_t:
                    self._close()
                    self.cur_t = t
                holder = -1
                continue
            if self.cur_t is None:
                raise fail(f"not a well-formed MessageLocationReport: expected a '[time]' line first, got {head.decode('utf-8', 'replace')!r}")
            if head[:1] != b"(":
                raise fail("not a well-formed MessageLocationReport: a message ID appears before any '(x,y)' coordinate")
            if b"(" in line[1:] or b"[" in line:
                raise NeedWholeFile("several coordinates or a marker inside a line")
            _coord(fail, head)
            holder += 1
            msgs = toks[1:]
            if msgs:
                self.cur[0] += len(msgs)
                self.cur[1].add(holder)
                self.cur[2].update(msgs)
                self.all.update(msgs)

    def finish(self) -> Summary:
        self._close()
        rows = sorted(self.rows)
        per = np.array(rows, dtype="float64").reshape(-1, 4)
        n = len(per)
        sc = {"snapshots": float(n), "messages": float(len(self.all)),
              "copies_per_snapshot_mean": float(per[:, 1].mean()) if n else math.nan,
              "holders_per_snapshot_mean": float(per[:, 2].mean()) if n else math.nan,
              "messages_per_snapshot_mean": float(per[:, 3].mean()) if n else math.nan}
        return Summary(sc, _series(per[:, 0], per[:, 1], holders=per[:, 2], messages=per[:, 3]), "timeseries")


def _coord(fail, tok: bytes) -> None:
    body = tok.strip(b"()").split(b",", 1)
    try:
        if len(body) != 2:
            raise ValueError
        float(body[0]), float(body[1])
    except ValueError:
        raise fail(f"not a well-formed MessageLocationReport: bad coordinate {tok.decode('utf-8', 'replace')!r}") from None

LOCATION = StreamSpec(_Location, snapshots=True)
COPY_COUNT = StreamSpec(_CopyCount, snapshots=True)
MESSAGE_LOCATION = StreamSpec(_MessageLocation, snapshots=True)
