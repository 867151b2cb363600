"""Benchmark: a notebook's kernel memory over repeated runs of one folder (the result rebound each time).

    PYTHONPATH=$PWD python benchmarks/rerun_memory.py FOLDER [--runs 6] [--cache]

Runs ``job.Run(FOLDER).run()`` ``--runs`` times in this process, keeping only the last result (as a
notebook cell run again does), and prints this process's USS and PSS after each run, and how many
objects the cyclic garbage collector had to free. A run that leaves a reference cycle keeps the
previous result's summaries until a full collection. Memory is read with psutil (USS/PSS: Linux).
"""
from __future__ import annotations

import argparse
import gc
import sys
import tempfile

import psutil

MB = 1024 * 1024


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder")
    ap.add_argument("--runs", type=int, default=6)
    ap.add_argument("--cache", action="store_true", help="use the summary cache (default: --no-cache)")
    args = ap.parse_args(argv)
    from oppnda_nb import job

    freed_by_gc = [0]
    gc.callbacks.append(lambda phase, info: phase == "stop" and freed_by_gc.__setitem__(0, freed_by_gc[0] + info["collected"]))
    me = psutil.Process()
    out = tempfile.mkdtemp(prefix="oppnda-rerun-")
    result = None
    print(f"{'run':>4s} {'USS MB':>8s} {'PSS MB':>8s} {'freed by gc':>12s}")
    for i in range(args.runs):
        result = job.Run(args.folder, output=f"{out}/{i}", cache=args.cache, csv=False).run()
        info = me.memory_full_info()
        print(f"{i + 1:4d} {info.uss / MB:8.1f} {info.pss / MB:8.1f} {freed_by_gc[0]:12,d}", flush=True)
    print(f"# {len(result.job.outcomes):,} files per run; oppnda_nb from {job.__file__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
