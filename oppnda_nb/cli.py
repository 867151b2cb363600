"""The command line: ``python -m oppnda_nb run|average|demo|calibrate|status``.

A thin face over :mod:`oppnda_nb.job`: each command builds a :class:`job.Run` (or calls
:func:`calibrate.calibrate` / :func:`job.plan_folder`) from options declared once in
:mod:`oppnda_nb.options`, shows its progress on stderr and prints its summary on stdout.

Exit codes (the same for every command): 0 every file processed; 1 some failed or cancelled
(Ctrl-C and SIGTERM stop the run, the processed files are still averaged and written); 2 a usage
error (bad option, missing folder, nothing matched), with ``error: ...`` and no traceback.

The job (and with it pandas) is imported only by the commands that run one, so ``status`` and
``--help`` stay light.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from . import options
from .errors import OppndaError

EXIT_OK, EXIT_INCOMPLETE, EXIT_USAGE = 0, 1, 2  # the same values as job.EXIT_* (job is imported lazily)

#: the phases a run goes through, in order (the progress line names the current one)
PHASES = ("scanning", "processing", "averaging", "writing", "done")


# ------------------------------------------------------------------------------ progress

def format_duration(seconds: float | None) -> str:
    """``75`` -> ``"1:15"``, ``3700`` -> ``"1:01:40"``, None/NaN -> ``"–"``."""
    if seconds is None or seconds != seconds or seconds < 0 or seconds == float("inf"):
        return "–"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def progress_line(progress, phase: str = "processing") -> str:
    """One short line for a pool ``Progress`` in a phase: ``processing 12/240 files · 3.1 MB/s · ETA 0:04 · 2 workers``."""
    if progress is None or phase in ("scanning",):
        return f"{phase}…"
    done, total = progress.files_done, progress.files_total
    parts = [f"{phase} {done:,}/{total:,} files"]
    if phase == "processing":
        rate = progress.mb_per_s
        parts.append(f"{rate:.2f} MB/s" if rate < 10 else f"{rate:,.0f} MB/s")
        parts.append(f"ETA {format_duration(progress.eta_s)}")
        if progress.in_process:
            parts.append("in this process (no workers)")
        else:
            parts.append(f"{progress.running} running on {progress.workers} worker{'s' if progress.workers != 1 else ''}")
    if progress.failed:
        parts.append(f"{progress.failed} failed")
    return " · ".join(parts)


class PhaseTracker:
    """Follows a run's events and knows its phase and last progress (for a progress line or widget).

    The pool's ``done`` means its files are through: the kernel then averages and writes until
    ``job.RUN_DONE``. A ``phase`` event (data: a phase name), if the job sends one, is followed too.
    """

    def __init__(self):
        self.phase = "processing"
        self.progress = None
        self.result = None

    def __call__(self, event) -> bool:
        """Take an event; True when what is shown should change."""
        kind = str(event.kind)
        if kind == "progress":
            self.progress = event.data
            return True
        if kind == "phase":
            self.phase = str(event.data)
            return True
        if kind == "done":
            self.phase = "averaging"
            return True
        if kind == "run_done":
            self.phase = "done"
            self.result = event.data
            return True
        return False

    def line(self) -> str:
        return progress_line(self.progress, self.phase)


class TerminalProgress:
    """One progress line on a stream (stderr), redrawn at most 4 times a second on a TTY; a plain
    line every 5 s otherwise (logs), and always at a phase change."""

    def __init__(self, stream=None, interval: float = 0.25):
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval if self.tty else 5.0
        self.tracker = PhaseTracker()
        self._last = 0.0
        self._shown_phase = None
        self._lock = threading.Lock()

    def __call__(self, event) -> None:
        if not self.tracker(event):
            return
        with self._lock:
            phase = self.tracker.phase
            now = time.monotonic()
            if phase == self._shown_phase and now - self._last < self.interval:
                return
            self._last = now
            if phase == "done":
                if self.tty and self._shown_phase is not None:
                    self.stream.write("\r" + " " * 100 + "\r")
                    self.stream.flush()
                self._shown_phase = phase
                return
            line = self.tracker.line()
            if self.tty:
                self.stream.write("\r" + line[:100].ljust(100))
            else:
                self.stream.write(line + "\n")
            self._shown_phase = phase
            self.stream.flush()


# ------------------------------------------------------------------------------ helpers

def write_json_atomic(path: str | os.PathLike, data: dict) -> Path:
    """Write ``data`` as JSON to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=str(path.parent), prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, default=str)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


@contextlib.contextmanager
def sigterm_as_interrupt():
    """While a command is going, SIGTERM raises KeyboardInterrupt in the main thread (like Ctrl-C):
    ``Run.run()`` then stops the pool and returns the partial result, which is written."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _values(args: argparse.Namespace) -> dict:
    return vars(args)


def _manager(args: argparse.Namespace):
    from .resource_manager import ResourceManager

    return ResourceManager(**options.manager_kwargs(_values(args)))  # bad values: SettingsError (exit 2)


def _run_to_end(run, args: argparse.Namespace):
    """Run with the progress line on stderr (unless --quiet); Ctrl-C/SIGTERM give the partial result."""
    if not getattr(args, "quiet", False):
        run.add_listener(TerminalProgress())
    try:
        return run.run()
    except KeyboardInterrupt:  # a second interrupt while the pool was stopping
        run.stop()
        return run.wait()


def _announce(run) -> None:
    plan = run.plan
    print(f"{len(run.files):,} files ({len(run.skipped):,} skipped) in {run.folder}; {plan.text()}",
          file=sys.stderr)
    for w in plan.warnings:
        print(f"warning: {w}", file=sys.stderr)


def _finish(result, args: argparse.Namespace) -> int:
    if getattr(args, "summary_json", None):
        write_json_atomic(args.summary_json, result.summary_dict())
    if getattr(args, "memory_log", None) and result.memory is not None:
        result.memory.to_csv(args.memory_log, index=False)
    return int(result.exit_code)


# ------------------------------------------------------------------------------ commands

def cmd_status(args: argparse.Namespace) -> int:
    """The memory status; with FOLDER also the plan of a run of it (the same selection as ``run``)."""
    manager = _manager(args)
    if not args.folder and not args.config:
        print(manager.format_status())
        return EXIT_OK
    from . import job

    plan = job.plan_folder(args.folder, manager, config=args.config, pattern=args.pattern)
    if not plan.files:
        raise OppndaError(f"No matching report files in {args.folder or 'the config folder'} "
                          f"({len(plan.skipped)} skipped). Check the folder, --pattern and the config's file filter.")
    print(manager.format_status())
    print(f"{len(plan.files):,} files ({len(plan.skipped):,} skipped): {plan.text()}")
    for w in plan.warnings:
        print(f"warning: {w}")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    """The whole job through the memory-aware pool, progress on stderr, accounting on stdout."""
    from . import job

    run = job.Run(args.folder, manager=_manager(args), **options.run_kwargs(_values(args)))
    _announce(run)
    result = _run_to_end(run, args)
    print(result.summary())
    return _finish(result, args)


def cmd_average(args: argparse.Namespace) -> int:
    """OppNDA's averager: the same Run, the averaging summary (one line per strategy + totals)."""
    from . import job

    values = _values(args)
    kw = options.run_kwargs(values, names=("pattern", "group_by", "output", "workers"))
    run = job.Run(args.folder, config=args.config, manager=_manager(args), csv=bool(args.csv), **kw)
    if not args.quiet:
        _announce(run)
    result = _run_to_end(run, args)
    if result.averaged is not None:
        for line in result.averaged.summary_lines():
            print(line)
        if args.verbose:
            for p, r in result.averaged.skipped:
                print(f"skipped: {os.path.basename(p)}: {r}")
    if result.exit_code != EXIT_OK or result.error:
        print(result.summary(), file=sys.stderr)  # what failed or was cancelled, and where run.json is
    return _finish(result, args)


def cmd_demo(args: argparse.Namespace) -> int:
    """The bundled sample through the whole job; every output (tables, plots, memory) in one folder."""
    from . import demo, job

    out = Path(args.output or "oppnda-demo").resolve()
    run = job.Run(None, manager=_manager(args), **options.run_kwargs(_values(args), names=("workers",)),
                  output=out / "averaged")
    _announce(run)
    result = _run_to_end(run, args)
    demo.write_outputs(result, out)
    print(result.summary())
    print(f"\nEverything is in {out}:")
    for p in sorted(out.iterdir()):
        print(f"  {p.name}{'/' if p.is_dir() else ''}")
    return int(result.exit_code)


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Measure the largest file of each report type; later runs plan with what was learned."""
    from . import calibrate

    print(f"calibrating on {args.folder or 'the bundled sample'} (one worker, the largest file of each type)…",
          file=sys.stderr)
    cal = calibrate.calibrate(args.folder, _manager(args), config=args.config, pattern=args.pattern)
    print(cal.summary())
    return EXIT_OK if not cal.failed else EXIT_INCOMPLETE


#: ``cache prune`` drops summaries stored longer ago than this
PRUNE_DAYS = 90


def cmd_cache(args: argparse.Namespace) -> int:
    """Show, prune or clear the per-file summary cache."""
    from . import cache

    path = Path(args.cache_dir) / cache.FILENAME if args.cache_dir else cache.default_path()
    if args.action == "clear":
        removed = cache.clear_cache(path)
        print(f"{'removed' if removed else 'no cache at'} {path}")
        return EXIT_OK
    if not path.exists():
        print(f"no cache at {path}")
        return EXIT_OK
    store = cache.SummaryCache(path, version="")
    if args.action == "prune":  # summaries of files that are gone, and those older than PRUNE_DAYS
        dropped = store.prune(older_than_days=PRUNE_DAYS)
        print(f"dropped {dropped:,} summaries of deleted files or older than {PRUNE_DAYS} days")
    stats = store.stats()
    print(f"{path}: {stats['entries']:,} file summaries, {stats['runs']} whole runs, {stats['bytes'] / 2**20:.1f} MB")
    return EXIT_OK


def cmd_plots(args: argparse.Namespace) -> int:
    """OppNDA's analysis engine: every figure its analysis_config.json asks for, through the memory-aware pool."""
    from . import figures

    formats = tuple(args.format) if args.format else ("png",)
    result = figures.run_analysis(args.config or figures.example_config_path(), manager=_manager(args),
                                  formats=formats, workers=args.workers, dpi=args.dpi)
    print(result.summary())
    return int(result.exit_code)


# ------------------------------------------------------------------------------ parser

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m oppnda_nb", description="Memory-aware averaging of ONE simulator reports.",
        epilog="exit codes: 0 all files processed, 1 some failed or cancelled, 2 usage error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def command(name, func, help_text, description=None, folder_help=None):
        p = sub.add_parser(name, help=help_text, description=description or help_text)
        if folder_help:
            p.add_argument("folder", nargs="?", default=None, help=folder_help)
        options.add_to_parser(p, name)
        p.set_defaults(func=func)
        return p

    command("status", cmd_status, "the memory status and the plan (workers, budget, predicted peak) of a folder",
            folder_help="plan for the reports a run of this folder would take")
    command("run", cmd_run, "parse, summarise and average every report of a folder through the memory-aware pool",
            "Run the whole job through the memory-aware pool, with progress on stderr and the accounting at the "
            "end. Without FOLDER: the bundled sample of real ONE reports.",
            folder_help="folder of ONE reports (default: the config's folder, else the bundled sample)")
    p = command("average", cmd_average, "average ONE reports across seeds with an OppNDA averager config",
                "The OppNDA-style averaging job (the same run through the memory-aware pool). A relative "
                "\"folder\" in the config is resolved against the working directory, else the config's folder.")
    p.add_argument("config", nargs="?", default=None,
                   help="OppNDA averager_config.json (omit for ONE's standard naming; then give --folder)")
    command("demo", cmd_demo, "the main job on the bundled sample: averaged reports, tables, memory and analysis plots",
            "Run the bundled sample of real ONE reports through the pool and write every output (averaged "
            "reports, CSV tables, memory.csv/png, analysis plots) into one folder (default ./oppnda-demo).")
    p = command("cache", cmd_cache, "show, prune or clear the per-file summary cache (re-runs parse only what changed)")
    p.add_argument("action", nargs="?", choices=("show", "prune", "clear"), default="show",
                   help=f"show (default); prune: drop the summaries of deleted files and those older than "
                        f"{PRUNE_DAYS} days; clear: delete the cache")
    p = command("plots", cmd_plots, "OppNDA's analysis figures (line, 3D surface, violin, heatmap, pairplot, CSV)",
                "Draw every figure an OppNDA analysis_config.json asks for, each as a job of the memory-aware "
                "pool. Without CONFIG: the bundled example config (run `average` on the sample first).")
    p.add_argument("config", nargs="?", default=None, help="OppNDA analysis_config.json")
    command("calibrate", cmd_calibrate, "measure the memory of the largest file of each report type (kept for later runs)",
            folder_help="folder of ONE reports (default: the bundled sample)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # a bad option exits 2 with argparse's message
    try:
        with sigterm_as_interrupt():  # SIGTERM while scanning or running: like Ctrl-C
            return int(args.func(args))
    except OppndaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # before a run started (scanning) or after it ended
        print("interrupted", file=sys.stderr)
        return EXIT_INCOMPLETE
    except BrokenPipeError:  # the reader went away (`... | head`): nothing more to say
        sys.stderr.close()
        return EXIT_INCOMPLETE
