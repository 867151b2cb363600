"""The command line's work: ``run`` (the whole job through the pool, with progress on a terminal)
and ``average`` (the OppNDA-style job), and the ResourceManager options they share."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from .errors import OppndaError


def add_manager_options(p: argparse.ArgumentParser) -> None:
    """The ResourceManager knobs shared by every sub-command that plans workers."""
    p.add_argument("--eta", type=float, default=None, help="max fraction of RAM to use (η, default 0.75)")
    p.add_argument("--gamma", type=float, default=None, help="expansion factor γ (default 3.0)")
    p.add_argument("--overhead-mb", type=float, default=None, help="per-worker overhead M_overhead in MB (default 50)")
    p.add_argument("--no-safety", action="store_true", help="disable the memory check (workers = CPU count)")
    p.add_argument("--total-ram-mb", type=float, default=None, help="treat the machine as having this much RAM")


def manager_from_args(args: argparse.Namespace):
    """A ResourceManager from the command line's knobs (bad values are user errors)."""
    from .resource_manager import ResourceManager

    try:
        return ResourceManager(
            eta=args.eta,
            gamma=args.gamma,
            overhead_mb=args.overhead_mb,
            safety_enabled=not args.no_safety,
            total_ram_mb=args.total_ram_mb,
            min_workers=getattr(args, "min_workers", None),
            max_workers=getattr(args, "max_workers", None),
        )
    except ValueError as exc:
        raise OppndaError(f"bad memory settings: {exc}") from None


class TerminalProgress:
    """One progress line on stderr, redrawn at most 4 times a second (a plain line when not a TTY)."""

    def __init__(self, stream=None, interval: float = 0.25):
        self.stream = stream or sys.stderr
        self.interval = interval if self.stream.isatty() else 5.0
        self._last = 0.0

    def __call__(self, event) -> None:
        if event.kind != "progress":
            return
        now = time.monotonic()
        p = event.data
        if now - self._last < self.interval and p.files_done < p.files_total:
            return
        self._last = now
        eta = f"{p.eta_s:.0f}s" if p.eta_s is not None else "?"
        line = (
            f"{p.files_done}/{p.files_total} files · {p.bytes_done / 2**20:.1f}/{p.bytes_total / 2**20:.1f} MB · "
            f"{p.mb_per_s:.1f} MB/s · ETA {eta} · {p.running} running on {p.workers} workers"
        )
        if self.stream.isatty():
            self.stream.write("\r" + line.ljust(100))
            if p.files_done >= p.files_total:
                self.stream.write("\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def run_command(args: argparse.Namespace) -> int:
    from .runner import Run

    manager = manager_from_args(args)
    run = Run(
        args.folder,
        config=args.config,
        pattern=args.pattern,
        group_by=args.group_by,
        manager=manager,
        output=args.output,
        workers=args.workers,
    )
    print(
        f"{len(run.files)} files ({len(run.skipped)} skipped) in {run.folder}; "
        f"{run.job.workers} workers, budget η·M_RAM−M_others from {manager.ram_source}",
        file=sys.stderr,
    )
    if not args.quiet:
        run.add_listener(TerminalProgress())
    result = run.run()
    print(result.summary())
    if args.summary_json:
        data = result.job.to_summary_dict()
        data["skipped"] = [{"path": p, "reason": r} for p, r in run.skipped]
        data["output_dir"] = str(result.output_dir)
        data["written"] = len(result.written)
        if result.error:
            data["averaging_error"] = result.error
        Path(args.summary_json).write_text(json.dumps(data, indent=2) + "\n")
    if args.memory_log:
        result.memory.to_csv(args.memory_log, index=False)
    return 0 if result.status == "finished" and not result.job.failed else 1


def add_average_parser(subparsers) -> argparse.ArgumentParser:
    """``average CONFIG.json [--folder DIR] [--output DIR] [--workers N] [...]``."""
    p = subparsers.add_parser(
        "average", help="average ONE reports across seeds with an OppNDA averager config",
        description="Run the OppNDA-style averaging job through the memory-aware pool. A relative "
                    "\"folder\" in the config is resolved against the working directory, or else against "
                    "the config file's folder.")
    p.add_argument("config", nargs="?", default=None,
                   help="OppNDA averager_config.json (omit for ONE's standard naming; then give --folder)")
    p.add_argument("--folder", default=None, help="input folder (overrides the config's \"folder\")")
    p.add_argument("--output", default=None, help="output folder (default: <folder>/averaged)")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: memory-aware)")
    p.add_argument("--pattern", default=None,
                   help="file-name template, e.g. '{scenario}_{router}_{seed}_{ttl}_{buffer}M_{report_type}'")
    p.add_argument("--group-by", default=None, help="comma-separated fields to group by (one strategy)")
    p.add_argument("--csv", action="store_true", help="also write the tables as CSV into <output>/csv")
    p.add_argument("-v", "--verbose", action="store_true", help="list every skipped file with its reason")
    add_manager_options(p)
    p.set_defaults(func=average_command)
    return p


def average_command(args: argparse.Namespace) -> int:
    """Run ``average``: one summary line per strategy plus the totals. Returns 0."""
    from .job import average_folder

    res = average_folder(config=args.config, folder=args.folder, output=args.output, workers=args.workers,
                         pattern=args.pattern, group_by=args.group_by, csv=args.csv,
                         manager=manager_from_args(args))
    for line in res.summary_lines():
        print(line)
    if args.verbose:
        for p, r in res.skipped:
            print(f"skipped: {os.path.basename(p)}: {r}")
    return 0
