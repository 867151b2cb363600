"""``python -m oppnda_nb run``: the whole job through the pool, with progress on a terminal."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .errors import OppndaError


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
