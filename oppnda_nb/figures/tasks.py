"""One figure = one task file: its data and drawing arguments pickled in a temporary folder.

The memory-aware pool runs :func:`draw_task` over these files with a per-task memory estimate
(:func:`estimate_task`): a worker's peak while drawing is its base (Python + matplotlib), plus
the Agg canvas (4 bytes RGBA per pixel at the saving dpi, plus the PNG/PDF encoder's copies),
plus the data. The kind and the pixel count are written into the task file's name, so the
estimate needs no I/O. Workers never touch pyplot.
"""
from __future__ import annotations

import os
import pickle
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from . import draw

#: Per figure kind: (bytes per byte of pickled data, bytes per canvas pixel at the saving dpi,
#: overhead bytes), so a worker's peak ≈ WORKER_BASE_BYTES + overhead + data·factor + pixels·px_bytes.
#: Measured with ``python benchmarks/figures_memory.py 75 200`` (one worker, the pool's per-task peak
#: above the worker's baseline; slope and intercept over the two dpis, then ~25 % margin):
#: line 7.9 B/px + 6 MB, surface 6.2 B/px + 7 MB, violin 7.7 B/px + 5.5 MB, heatmap 28 B/px + 5.5 MB
#: (imshow resamples the image at the output resolution), pairplot 7.4 B/px + 20 MB. The data of a
#: figure is a few KB here and its factor could not be separated from the noise; 8 is a guess.
MEMORY_FACTORS: dict[str, tuple[float, float, float]] = {
    "line": (8.0, 10.0, 8e6),
    "surface": (8.0, 8.0, 10e6),
    "violin": (8.0, 10.0, 8e6),
    "heatmap": (8.0, 35.0, 8e6),
    "pairplot": (8.0, 9.5, 26e6),
}
#: a drawing worker's own memory before the task (interpreter, numpy, pandas, matplotlib): 69 MB
#: measured (USS) in the same benchmark, plus margin
WORKER_BASE_BYTES = 80e6

KINDS = tuple(MEMORY_FACTORS)
_NAME_RE = re.compile(r"^(\d+)\.([a-z0-9_]+)\.(\d+)\.pkl$")


@dataclass
class FigureTask:
    """One figure to draw: kind, output base name (no extension), size in inches and the call."""

    kind: str
    name: str
    size: tuple[float, float]
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    path: str | None = None   # the task file, once written

    def pixels(self, dpi: float) -> int:
        return int(self.size[0] * dpi * self.size[1] * dpi)


def write_tasks(tasks: Sequence[FigureTask], folder: str | os.PathLike, dpi: float) -> list[str]:
    """Pickle each task into ``folder`` as ``<index>.<kind>.<pixels>.pkl``; returns the paths."""
    paths = []
    for i, t in enumerate(tasks):
        path = os.path.join(os.fspath(folder), f"{i:05d}.{t.kind}.{t.pixels(dpi)}.pkl")
        with open(path, "wb") as fh:
            pickle.dump({"kind": t.kind, "name": t.name, "size": t.size, "args": t.args, "kwargs": t.kwargs},
                        fh, protocol=pickle.HIGHEST_PROTOCOL)
        t.path = path
        paths.append(path)
    return paths


def task_kind(path: str) -> str:
    """The figure kind of a task file (the pool's ``kind_of``)."""
    m = _NAME_RE.match(os.path.basename(path))
    return m.group(2) if m else "unknown"


def task_pixels(path: str) -> int:
    m = _NAME_RE.match(os.path.basename(path))
    return int(m.group(3)) if m else 0


def estimate_bytes(kind: str, data_bytes: float, pixels: float) -> float:
    """A drawing worker's peak: base + per-kind overhead + factor × data + bytes per pixel × canvas pixels."""
    factor, px_bytes, overhead = MEMORY_FACTORS.get(kind, (8.0, 35.0, 30e6))
    return WORKER_BASE_BYTES + overhead + factor * float(data_bytes) + px_bytes * float(pixels)


def estimate_task(path: str, size: int, lean: bool = False) -> float:
    """The pool's ``estimate(path, size, lean)`` for a task file (no lean mode for figures)."""
    return estimate_bytes(task_kind(path), size, task_pixels(path))


_DRAW = {"line": "line", "surface": "surface", "violin": "violin", "heatmap": "heatmap", "pairplot": "pairplot"}


def _atomic_save(fig, target: Path, fmt: str, dpi: float) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".{fmt}", dir=target.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight", facecolor="white")
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def draw_task(path: str, out_dir: str, formats: Sequence[str], dpi: float) -> list[str]:
    """Draw one task file and save it as ``<out_dir>/<name>.<fmt>`` per format (TOP-LEVEL worker function)."""
    with open(path, "rb") as fh:
        task: dict[str, Any] = pickle.load(fh)
    func = getattr(draw, _DRAW[task["kind"]])
    fig = func(*task["args"], **dict(task["kwargs"], size=task["size"]))
    out = Path(out_dir)
    written = []
    for fmt in formats:
        target = out / f"{task['name']}.{fmt}"
        _atomic_save(fig, target, fmt, dpi)
        written.append(str(target))
    fig.clf()
    return written
