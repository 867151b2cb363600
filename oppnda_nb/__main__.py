"""The command line: ``python -m oppnda_nb SUBCOMMAND ...`` over the same API as the magic."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .cli_run import add_average_parser, add_manager_options
from .errors import OppndaError


def _cmd_status(args: argparse.Namespace) -> int:
    from .cli_run import manager_from_args

    rm = manager_from_args(args)
    files = None
    if args.folder:
        folder = Path(args.folder)
        if not folder.is_dir():
            raise OppndaError(f"folder not found: {folder}. Give an existing folder of ONE reports.")
        files = sorted(str(p) for p in folder.rglob("*.txt"))
    rm.log_status(file_paths=files)
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from .cli_run import run_command

    return run_command(args)


def _cmd_demo(args: argparse.Namespace) -> int:
    from .cli_run import TerminalProgress, manager_from_args
    from .demo import run_demo

    result = run_demo(args.output, manager=manager_from_args(args), progress=TerminalProgress())
    print(result.summary())
    out = Path(args.output).resolve()
    print(f"\nEverything is in {out}:")
    for p in sorted(out.iterdir()):
        print(f"  {p.name}{'/' if p.is_dir() else ''}")
    return 0 if result.status == "finished" else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m oppnda_nb", description=__doc__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("status", help="print the memory status and the recommended worker count")
    p.add_argument("folder", nargs="?", help="plan for the *.txt reports in this folder")
    add_manager_options(p)
    p.set_defaults(func=_cmd_status)

    add_average_parser(sub)

    p = sub.add_parser(
        "run",
        help="parse, summarise and average every report in a folder through the memory-aware pool",
        description="Run the whole job through the memory-aware pool, with progress on the terminal "
        "and the accounting at the end. Without FOLDER: the bundled sample of real ONE reports.",
    )
    p.add_argument("folder", nargs="?", help="folder of ONE reports (default: the bundled sample)")
    p.add_argument("--config", default=None, help="an OppNDA averager_config.json")
    p.add_argument("--pattern", default=None, help="file-name template, e.g. '{scenario}_{router}_{seed}_{ttl}_{buffer}_{report_type}'")
    p.add_argument("--group-by", default=None, help="comma-separated fields to group by")
    add_manager_options(p)
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: memory-aware P_opt)")
    p.add_argument("--min-workers", type=int, default=None, help="MIN_WORKERS (default 1)")
    p.add_argument("--max-workers", type=int, default=None, help="MAX_WORKERS (default 16)")
    p.add_argument("--output", default=None, help="output folder (default: <folder>/averaged)")
    p.add_argument("--summary-json", default=None, help="write the accounting as JSON to this file")
    p.add_argument("--memory-log", default=None, help="write the memory samples as CSV to this file")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser(
        "demo",
        help="the main job on the bundled sample: averaged reports, tables, memory and analysis plots",
        description="Run the bundled sample of real ONE reports through the pool and write every output "
        "(averaged reports, CSV tables, memory.csv/png, analysis plots) into one folder.",
    )
    p.add_argument("--output", default="oppnda-demo", help="output folder (default: ./oppnda-demo)")
    add_manager_options(p)
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except OppndaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # bad numbers given to the manager
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
