"""Overhead of the memory monitor: the same run with and without it, side by side, repeated.

    python benchmarks/bench_monitor.py [--folder DIR] [--repeat 3] [--interval 0.2] [--method auto]
                                       [--start-method fork] [--workers 2] [--times 5]

Default corpus: the shared sweep (972 real ONE reports, parsed with ``reports.read_report``).
Runs alternate (monitor on, off, on, off, ...) so drifting machine load hits both alike; prints
each time, the medians and the ratio (on/off), plus the time the monitor itself spent sampling.
"""
from __future__ import annotations

import argparse
import glob
import os
import statistics
import time
from pathlib import Path

from oppnda_nb.averaging import SummarizeSettings, summarize_file
from oppnda_nb.pool import Job
from oppnda_nb.resource_manager import ResourceManager

DEFAULT = str(Path(__file__).resolve().parents[2] / "shared" / "data" / "one-reports" / "sweep")


def one_run(files, monitor: bool, args) -> tuple[float, float, int]:
    job = Job(files, summarize_file, (SummarizeSettings(),), ResourceManager(), workers=args.workers, start_method=args.start_method,
              sample_interval=args.interval, monitor=monitor, memory_method=args.method)
    t = time.perf_counter()
    r = job.run()
    elapsed = time.perf_counter() - t
    assert r.accounting_ok, r.summary()
    sampling = job.monitor.sample_seconds if job.monitor is not None else 0.0
    return elapsed, sampling, len(r.memory)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folder", default=DEFAULT)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--interval", type=float, default=0.2)
    ap.add_argument("--method", default="auto")
    ap.add_argument("--start-method", default="fork")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--times", type=int, default=5, help="process the folder's files this many times per run")
    args = ap.parse_args()
    files = sorted(glob.glob(os.path.join(args.folder, "*.txt"))) * args.times
    size = sum(os.path.getsize(f) for f in files) / 2**20
    print(f"{len(files)} files, {size:.1f} MB, workers={args.workers}, start={args.start_method}, "
          f"interval={args.interval}s, method={args.method}")
    one_run(files[:20], True, args)  # warm the page cache and imports
    on, off = [], []
    for i in range(args.repeat):
        e, s, n = one_run(files, True, args)
        on.append(e)
        print(f"  run {i + 1}: monitor ON  {e:6.2f} s ({n} samples, {s * 1000:.0f} ms CPU sampling = {100 * s / e:.1f} % of the run)")
        e, _, _ = one_run(files, False, args)
        off.append(e)
        print(f"  run {i + 1}: monitor OFF {e:6.2f} s")
    m_on, m_off = statistics.median(on), statistics.median(off)
    print(f"median ON {m_on:.2f} s, OFF {m_off:.2f} s, ratio {m_on / m_off:.3f} "
          f"(overhead {100 * (m_on / m_off - 1):+.1f} %)")


if __name__ == "__main__":
    main()
