"""The pool's memory promise on a real run, measured from outside the process tree.

    PYTHONPATH=$PWD python benchmarks/bench_pool_watchdog.py [--folder DIR]   (default: the shared large run)
        [--total-ram-mb 700] [--gamma 0.5] [--overhead-mb 40] [--workers 2] [--stop-after S]

Runs ``averaging.summarize_file`` on every report of the folder in a pool on a virtual machine of
``--total-ram-mb`` (η = 0.75) with a deliberately low estimate (γ, overhead), so workers pass
their estimates and the watchdog has to act. A thread of this script samples the PSS of the
whole tree (this process and every descendant) every 50 ms. Prints the budget, the tree's peak,
the pool's verdict per file (retries, lean) and the watchdog's warnings. ``--stop-after S``
stops the job S seconds in and prints how long stop() took and whether any child is left.
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.run import tree_pss  # noqa: E402
from oppnda_nb import averaging  # noqa: E402
from oppnda_nb.pool import Job  # noqa: E402
from oppnda_nb.resource_manager import ResourceManager  # noqa: E402
from oppnda_nb.system import MB  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--folder", default=None, help="default: the shared large run, decompressed on first use")
    ap.add_argument("--total-ram-mb", type=float, default=700)
    ap.add_argument("--gamma", type=float, default=0.5)
    ap.add_argument("--overhead-mb", type=float, default=40)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--stop-after", type=float, default=None)
    args = ap.parse_args()
    if args.folder is None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from benchmarks.run import large_run_folder

        args.folder = str(large_run_folder())
    files = sorted(glob.glob(os.path.join(args.folder, "*.txt")))
    settings = averaging.prepare_config(None, None, None).settings()
    manager = ResourceManager(total_ram_mb=args.total_ram_mb, eta=0.75, gamma=args.gamma,
                              overhead_mb=args.overhead_mb)
    peak, samples, stop = [0.0], [0], threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], tree_pss(psutil.Process()))
            samples[0] += 1
            stop.wait(0.05)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    job = Job(files, averaging.summarize_file, (settings,), manager, workers=args.workers, sample_interval=0.1)
    t0 = time.monotonic()
    if args.stop_after is not None:
        job.start()
        time.sleep(args.stop_after)
        ts = time.monotonic()
        job.stop()
        print(f"stop() returned after {time.monotonic() - ts:.2f} s; children left: "
              f"{[c.pid for c in psutil.Process().children(recursive=True)]}")
        r = job.wait()
    else:
        r = job.run()
    stop.set()
    t.join()
    print(f"{len(files)} files in {time.monotonic() - t0:.1f} s; virtual RAM {args.total_ram_mb:.0f} MB, "
          f"budget {r.budget_mb:.0f} MB; tree PSS peak {peak[0] / MB:.0f} MB ({samples[0]} samples, 50 ms); "
          f"pool's own peak {r.measured_peak_mb:.0f} MB; predicted {r.predicted_peak_mb:.0f} MB")
    print(r.counts, "accounting OK" if r.accounting_ok else "ACCOUNTING MISMATCH")
    f = r.memory
    if len(f):
        print(f"budget line: first {f['budget_mb'].iloc[0]:.0f} MB, min {f['budget_mb'].min():.0f} MB; "
              f"helpers {f['helpers_mb'].max():.0f} MB; max used {f['system_used_mb'].max():.0f} MB "
              f"of {args.total_ram_mb:.0f} MB")
    for o in r.outcomes:
        if o.retries or o.status != "processed":
            print(f"  {os.path.basename(o.path)}: {o.status} attempts={o.attempts} lean={o.lean} "
                  f"peak={o.peak_mb} retries={o.retries} reason={o.reason}")
    for w in r.warnings:
        print("  warning:", w[:200])


if __name__ == "__main__":
    main()
