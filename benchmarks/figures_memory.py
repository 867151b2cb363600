"""Measure the per-kind memory of drawing one analysis figure (for figures.tasks.MEMORY_FACTORS).

Usage: python benchmarks/figures_memory.py [dpi ...]   (default dpis: 75 200)

Draws the first figure of each kind of the shipped example config on the bundled sample, one worker,
at each dpi, through pool.Job. Per task it prints the worker's peak above its baseline (VmHWM −
RSS before, the pool's own per-file measurement), the worker baseline, and the task's pixel count;
in parallel it samples the PSS of the whole worker tree from outside every 50 ms and prints the
largest sum. Fit per kind: peak_above_base ≈ overhead + bytes_per_pixel × pixels (tasks.MEMORY_FACTORS).
"""
from __future__ import annotations

import os
import sys
import tempfile
import threading
import time

import psutil

from oppnda_nb import figures, job, pool
from oppnda_nb.averaging import sample_folder
from oppnda_nb.figures import tasks as ft


def tree_pss(stop: threading.Event, out: list) -> None:
    me = psutil.Process()
    while not stop.is_set():
        total = 0
        for c in me.children(recursive=True):
            try:
                total += c.memory_full_info().pss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        out.append(total)
        time.sleep(0.05)


def main() -> None:
    dpis = [float(a) for a in sys.argv[1:]] or [75.0, 200.0]
    work = tempfile.mkdtemp(prefix="figmem-")
    os.chdir(work)
    job.average_folder(folder=sample_folder(), workers=1)
    cfg = figures.load_analysis_config(figures.example_config_path())
    data = figures.load_data(cfg, workers=1)
    all_tasks, _, _ = figures.plan_figures(cfg, data)
    firsts = {}
    for t in all_tasks:
        firsts.setdefault(t.kind, t)
    print(f"{'kind':9} {'dpi':>5} {'Mpx':>6} {'data KB':>8} {'base MB':>8} {'peak-base MB':>12} {'est MB':>7} {'tree PSS MB':>11}")
    for dpi in dpis:
        for kind, t in firsts.items():
            d = tempfile.mkdtemp(dir=work)
            path = ft.write_tasks([t], d, dpi)[0]
            samples: list = []
            stop = threading.Event()
            th = threading.Thread(target=tree_pss, args=(stop, samples), daemon=True)
            th.start()
            res = pool.Job([path], ft.draw_task, (d, ("png",), dpi), estimate=ft.estimate_task, kind_of=ft.task_kind,
                           workers=1, start_method="spawn").run()
            stop.set()
            th.join()
            o = res.outcomes[0]
            print(f"{kind:9} {dpi:5.0f} {ft.task_pixels(path) / 1e6:6.2f} {o.size / 1024:8.1f} "
                  f"{(o.baseline_mb or float('nan')):8.1f} {(o.peak_delta_mb or float('nan')):12.1f} "
                  f"{o.estimate_mb:7.1f} {max(samples) / 2**20 if samples else float('nan'):11.1f}  {o.status}")


if __name__ == "__main__":
    main()
