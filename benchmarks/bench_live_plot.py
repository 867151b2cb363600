"""Per-frame CPU of the live memory plot: a new figure per frame (memory_png) vs the LiveMemoryPlot.

Usage: python benchmarks/bench_live_plot.py [--copies 12] [--workers 2] [--out DIR]

Runs a real job.Run (no output written, no cache) on ``copies`` x the bundled sample (240 files each,
symlinks under other seeds), keeps ``run.memory_frame()`` every 0.25 s as a view would see it (also
while it averages), then draws the same frames both ways, one after the other, and prints each
frame's CPU time (``time.thread_time``, the drawing thread's CPU, PNG bytes included) side by side,
and medians, means, the 90th percentile and the ratios. Both are given the run's planned peak.
It also decodes both pictures of every frame and counts the pixels that differ (should be 0), and
writes the first, middle and last frame of each way to ``--out`` (default test-artifacts/bench-live-plot).
"""
from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from oppnda_nb import job, plots
from oppnda_nb.averaging import sample_folder
from oppnda_nb.system import MB

TITLE = "memory of the run"


def sample_copies(dest: Path, copies: int) -> Path:
    """The bundled sample ``copies`` times under other seeds (symlinks)."""
    dest.mkdir(parents=True)
    for f in sorted(Path(sample_folder()).glob("*.txt")):
        parts = f.name.split("_")
        for k in range(copies):
            name = parts.copy()
            name[2] = f"{k}{parts[2]}"
            os.symlink(f.resolve(), dest / "_".join(name))
    return dest


def record_frames(folder: Path, workers: int, every: float = 0.2):
    """Run on ``folder`` and keep the memory frame every ``every`` s; (frames, planned peak MB, files)."""
    run = job.Run(folder, write=False, cache=False, workers=workers)
    frames = []
    run.start()
    while run.running:
        time.sleep(every)
        frame = run.memory_frame()
        if len(frame) and (not frames or len(frame) != len(frames[-1])):
            frames.append(frame)
    frames.append(run.memory_frame())
    return frames, run.plan.predicted_peak_bytes / MB, len(run.files)


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def summary(name: str, values: list[float]) -> str:
    v = sorted(values)
    p90 = v[min(len(v) - 1, int(round(0.9 * (len(v) - 1))))]
    return (f"{name}: median {statistics.median(v):6.1f} ms  mean {statistics.fmean(v):6.1f} ms  "
            f"p90 {p90:6.1f} ms  max {v[-1]:6.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=12)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "test-artifacts" / "bench-live-plot"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory() as tmp:
        frames, planned, files = record_frames(sample_copies(Path(tmp) / "many", args.copies), args.workers)
    print(f"run of {files} files with {args.workers} workers: {len(frames)} frames "
          f"({len(frames[0])}..{len(frames[-1])} samples), planned peak {planned:,.0f} MB")

    plots.memory_png(frames[0], title=TITLE)  # warm-up: fonts, caches (not timed)
    plots.LiveMemoryPlot(TITLE).png(frames[0])
    live = plots.LiveMemoryPlot(TITLE)
    old_ms, new_ms, differing = [], [], []
    keep = {0: "first", len(frames) // 2: "middle", len(frames) - 1: "last"}
    print(f"{'frame':>5} {'samples':>7} {'old ms':>8} {'new ms':>8} {'old/new':>8} {'px differ':>9}  live drew anew")
    for i, frame in enumerate(frames):
        before = (live.background_draws, live.legend_draws, live.bar_draws)
        c0 = time.thread_time()
        old = plots.memory_png(frame, title=TITLE, predicted_peak_mb=planned)
        c1 = time.thread_time()
        new = live.png(frame, predicted_peak_mb=planned)
        c2 = time.thread_time()
        old_ms.append(1000 * (c1 - c0))
        new_ms.append(1000 * (c2 - c1))
        diff = int(np.any(pixels(old) != pixels(new), axis=2).sum())
        differing.append(diff)
        anew = [name for name, b, a in zip(("background", "legend", "bar text"), before,
                                           (live.background_draws, live.legend_draws, live.bar_draws)) if a > b]
        print(f"{i:5d} {len(frame):7d} {old_ms[-1]:8.1f} {new_ms[-1]:8.1f} {old_ms[-1] / new_ms[-1]:8.1f} {diff:9d}  "
              f"{', '.join(anew)}")
        if i in keep:
            (out / f"{keep[i]}-static.png").write_bytes(old)
            (out / f"{keep[i]}-live.png").write_bytes(new)
    print(summary("old (memory_png)     ", old_ms))
    print(summary("new (LiveMemoryPlot) ", new_ms))
    print(f"ratio old/new: median {statistics.median(old_ms) / statistics.median(new_ms):.1f}x, "
          f"mean {statistics.fmean(old_ms) / statistics.fmean(new_ms):.1f}x")
    print(f"live plot: {live.frames} frames, background drawn {live.background_draws}x, whole legend "
          f"{live.legend_draws}x, bar text {live.bar_draws}x; frames with differing pixels: "
          f"{sum(1 for d in differing if d)} (most {max(differing)} px)")
    print(f"pictures in {out}")


if __name__ == "__main__":
    main()
