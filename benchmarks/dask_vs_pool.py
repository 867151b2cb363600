"""Benchmark: the same Run on the local pool and on a local Dask cluster (throughput and memory).

Each configuration runs once in a fresh child process (``Run(folder, cache=False, write=False)``,
so no cache and no disk writes); this process samples the PSS of the child's whole process tree
(kernel, pool workers, forkserver, Dask nannies and workers) every 50 ms from outside and prints
wall seconds (child start to end, Dask cluster start-up included), the job's own seconds, MB/s over
the input bytes, the tree's peak PSS and the job's predicted peak.

    PYTHONPATH=$PWD python benchmarks/dask_vs_pool.py                       # the sample + the shared large run
    PYTHONPATH=$PWD python benchmarks/dask_vs_pool.py --workers 2 FOLDER...

Configurations: ``pool`` (P_opt workers), ``dask`` (:func:`dask_backend.local_cluster` with
``--workers`` single-threaded process workers, each with the MEMORY resource).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.run import large_run_folder, tree_pss  # noqa: E402

MB = 1024 * 1024
DEFAULT = ["sample", "large-run"]  # large-run: the shared large run, decompressed on first use


def child(config: str, folder: str, workers: int) -> None:
    """Run once and print a JSON line with the job's figures."""
    from oppnda_nb import job
    from oppnda_nb.averaging import sample_folder

    if folder == "large-run":
        folder = str(large_run_folder())
    path = sample_folder() if folder == "sample" else folder
    t0 = time.perf_counter()
    run = job.Run(path, cache=False, write=False, learn=False,
                  scheduler=workers if config == "dask" else None,
                  workers=workers if config == "pool" else None)
    result = run.run()
    wall = time.perf_counter() - t0
    size = sum(o.size for o in result.outcomes)
    print(json.dumps({"wall_s": wall, "job_s": result.job.elapsed_s, "bytes": size, "files": len(result.outcomes),
                      "counts": result.job.counts, "workers": result.job.workers,
                      "predicted_mb": result.job.predicted_peak_mb}), flush=True)


def measure(config: str, folder: str, workers: int) -> dict:
    env = dict(os.environ, OPPNDA_CACHE_DIR=os.environ.get("OPPNDA_CACHE_DIR", "/tmp/oppnda-bench-cache"))
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, __file__, "--child", config, "--workers", str(workers), folder],
                         stdout=subprocess.PIPE, text=True, env=env)
    proc = psutil.Process(p.pid)
    peak = 0.0
    while p.poll() is None:
        peak = max(peak, tree_pss(proc))
        time.sleep(0.05)
    out = p.stdout.read().strip().splitlines()
    data = json.loads(out[-1])
    data.update(config=config, folder=folder, peak_pss_mb=peak / MB, outer_s=time.perf_counter() - t0)
    return data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="*", default=DEFAULT)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--child", choices=["pool", "dask"])
    args = ap.parse_args()
    if args.child:
        child(args.child, args.folders[0], args.workers)
        return
    print(f"{'folder':<18} {'config':<6} {'files':>5} {'MB':>7} {'wall s':>7} {'job s':>7} {'MB/s':>7} "
          f"{'peak PSS MB':>11} {'predicted MB':>12}")
    for folder in args.folders:
        for config in ("pool", "dask"):
            d = measure(config, folder, args.workers)
            mb = d["bytes"] / MB
            print(f"{os.path.basename(folder):<18} {config:<6} {d['files']:>5} {mb:>7.1f} {d['wall_s']:>7.2f} "
                  f"{d['job_s']:>7.2f} {mb / d['job_s']:>7.1f} {d['peak_pss_mb']:>11.0f} {d['predicted_mb']:>12.0f}",
                  flush=True)


if __name__ == "__main__":
    main()
