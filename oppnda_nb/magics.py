"""The ``%oppnda`` line magic: status, panel, run, stop, calibrate, plot.

A thin layer over :mod:`oppnda_nb.runner` (the shared ``Run``), the ResourceManager and the
panel's :class:`~oppnda_nb.panel.RunView`. Every user mistake becomes a ``UsageError`` with a
message that says what to do (IPython shows it as one red line, no traceback).

Heavy modules (pandas, matplotlib, ipywidgets, the runner) are imported inside the commands so
``%load_ext oppnda_nb`` stays instant.
"""
from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from .errors import OppndaError

__all__ = ["OppndaMagics", "register", "unregister", "StatusTable"]

COMMANDS = ("status", "panel", "run", "stop", "calibrate", "plot")
DEFAULT_RESULT_NAME = "oppnda_result"

#: Which options each sub-command takes (anything else given is a UsageError, not ignored).
_MEMORY_OPTS = ("eta", "gamma", "overhead_mb", "min_workers", "max_workers", "no_safety",
                "total_ram_mb")
_SELECT_OPTS = ("config", "pattern")
_ALLOWED = {
    "status": _MEMORY_OPTS + _SELECT_OPTS,
    "panel": _MEMORY_OPTS + _SELECT_OPTS + ("group_by", "output", "name"),
    "run": _MEMORY_OPTS + _SELECT_OPTS + ("group_by", "output", "workers", "background", "name"),
    "stop": (),
    "calibrate": _MEMORY_OPTS + ("workers",),
    "plot": ("by", "x", "table", "name"),
}
_DEFAULTS = {"background": False, "no_safety": False}


# ------------------------------------------------------------------------- argument types

def _number(kind, name: str, *, lo=None, hi=None, lo_open=False):
    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise UsageError(f"{name} needs a {'whole ' if kind is int else ''}number, got {text!r}") from None
        if value != value:  # NaN
            raise UsageError(f"{name} needs a number, got {text!r}")
        if lo is not None and (value < lo or (lo_open and value == lo)):
            bound = f"> {lo}" if lo_open else f">= {lo}"
            raise UsageError(f"{name} must be {bound}" + (f" and <= {hi}" if hi is not None else "")
                             + f", got {text}")
        if hi is not None and value > hi:
            low = "" if lo is None else (f"> {lo} and " if lo_open else f">= {lo} and ")
            raise UsageError(f"{name} must be {low}<= {hi}, got {text}")
        return value

    convert.__name__ = kind.__name__  # argparse names the type in its own messages
    return convert


def _unquote(text):
    """IPython splits magic lines without removing quotes (``--pattern '{a} {b}'``): remove them."""
    if isinstance(text, str) and len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _group_list(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise UsageError("--group-by needs parameter names separated by commas, e.g. router,ttl")
    return items


def _runner():
    from . import panel

    return panel._runner()


def _in_kernel(shell: Any) -> bool:
    """True in a Jupyter kernel (widgets render), False in a terminal IPython."""
    return getattr(shell, "kernel", None) is not None


def _display(obj: Any) -> None:
    from IPython.display import display

    display(obj)


# --------------------------------------------------------------------------- status table

class StatusTable:
    """The memory status: an HTML table in notebooks, a text block elsewhere."""

    ROWS = (
        ("RAM source", "ram_source", "{}"),
        ("total RAM (M_RAM)", "total_ram_mb", "{:,.0f} MB"),
        ("available", "available_ram_mb", "{:,.0f} MB"),
        ("budget η·M_RAM − M_others", "budget_mb", "{:,.0f} MB"),
        ("kernel memory (M_base)", "base_mb", "{:,.0f} MB"),
        ("other programs (M_others)", "others_mb", "{:,.0f} MB"),
        ("η / γ / M_overhead", None, None),
        ("safety", "safety_enabled", None),
        ("CPUs", "cpu_count", "{}"),
        ("recommended workers", "recommended_workers", "{}"),
    )

    def __init__(self, status: dict, text: str | None = None, files: int | None = None):
        self.data = dict(status)
        self.text = text
        self.files = files

    def _rows(self) -> list[tuple[str, str]]:
        s = self.data
        rows = []
        for label, key, fmt in self.ROWS:
            if key is None:
                value = (f"{s.get('eta', 0):.2f} / {s.get('gamma', 0):.2f} / "
                         f"{s.get('overhead_mb', 0):.0f} MB")
            elif key == "safety_enabled":
                value = "on" if s.get(key) else "OFF"
            elif key not in s:
                continue
            else:
                try:
                    value = fmt.format(s[key])
                except (ValueError, TypeError):
                    value = str(s[key])
            if key == "recommended_workers" and self.files is not None:
                value += f" (for {self.files:,} files)"
            rows.append((label, value))
        return rows

    def __repr__(self) -> str:
        if self.text:
            body = self.text
        else:
            body = "\n".join(f"  {k:<28}{v}" for k, v in self._rows())
        if self.text is None:
            body += "".join(f"\n  warning: {w}" for w in self.data.get("warnings", []))
        return body

    def _repr_html_(self) -> str:
        body = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
                       f"<td style='text-align:right'>{html.escape(v)}</td></tr>"
                       for k, v in self._rows())
        warns = "".join(f"<div style='color:#c62828'>⚠ {html.escape(w)}</div>"
                        for w in self.data.get("warnings", []))
        return (f"<table><caption style='text-align:left'><b>oppnda_nb memory status</b></caption>"
                f"{body}</table>{warns}")


# --------------------------------------------------------------------------------- magics

@magics_class
class OppndaMagics(Magics):
    """``%oppnda``: memory-aware averaging of ONE reports from a notebook."""

    def __init__(self, shell=None):
        super().__init__(shell)
        self.last_view = None  # RunView of the last run started by the magic
        self.last_result = None
        self.last_panel = None
        self.calibration = None  # the last %oppnda calibrate

    @magic_arguments()
    @argument("command", nargs="?", default="status", metavar="COMMAND",
              help="status | panel [FOLDER] | run [FOLDER] | stop | calibrate [FOLDER] | "
                   "plot [METRIC] (default: status)")
    @argument("target", nargs="?", default=None, metavar="FOLDER|METRIC",
              help="folder of ONE reports (run, panel, calibrate, status; default: the bundled "
                   "sample) or a metric name (plot)")
    @argument("--config", metavar="FILE", help="OppNDA averager_config.json")
    @argument("--pattern", metavar="TEMPLATE",
              help="file-name template, e.g. '{scenario}_{router}_{seed}_{ttl}_{buffer}_{report_type}'")
    @argument("--group-by", dest="group_by", type=_group_list, metavar="A,B",
              help="parameters to group by (comma separated); seeds are averaged over")
    @argument("--eta", metavar="X", type=_number(float, "--eta", lo=0, hi=1, lo_open=True),
              help="η: the fraction of RAM the machine may use (default 0.75)")
    @argument("--gamma", metavar="X", type=_number(float, "--gamma", lo=0, lo_open=True),
              help="γ: memory per byte of report while parsing (default 3.0)")
    @argument("--overhead-mb", dest="overhead_mb", metavar="MB", type=_number(float, "--overhead-mb", lo=0),
              help="M_overhead: memory per worker process in MB (default 50)")
    @argument("--workers", metavar="N", type=_number(int, "--workers", lo=1),
              help="use exactly N workers (default: the recommendation)")
    @argument("--min-workers", dest="min_workers", metavar="N", type=_number(int, "--min-workers", lo=1),
              help="at least N workers (default 1)")
    @argument("--max-workers", dest="max_workers", metavar="N", type=_number(int, "--max-workers", lo=1),
              help="at most N workers (default 16, never more than the CPUs)")
    @argument("--no-safety", dest="no_safety", action="store_true",
              help="turn the memory budget off (use with care)")
    @argument("--total-ram-mb", dest="total_ram_mb", metavar="MB", type=_number(float, "--total-ram-mb", lo=0,
                                                                   lo_open=True),
              help="plan as if the machine had N MB of RAM")
    @argument("--output", metavar="DIR", help="output folder for the averaged files")
    @argument("--background", action="store_true",
              help="run: return at once; the output keeps updating, %%oppnda stop cancels")
    @argument("--name", metavar="VAR",
              help=f"run: variable for the result (default {DEFAULT_RESULT_NAME}); "
                   "panel: variable for the panel; plot: the result to plot")
    @argument("--by", metavar="PARAM", help="plot: one line per value of this parameter")
    @argument("--x", metavar="PARAM", help="plot: the parameter on the x axis")
    @argument("--table", metavar="NAME", help="plot: which averaged table (default: the one with "
                                               "the metric that varies in the fewest parameters)")
    @line_magic
    def oppnda(self, line: str = ""):
        """Memory-aware averaging of ONE simulator reports.

        Sub-commands::

          %oppnda status [FOLDER]        memory status and the recommended number of workers
          %oppnda panel [FOLDER]         the control panel (sliders, Start/Stop, live memory plot)
          %oppnda run [FOLDER] [...]     run with a progress bar and the live memory plot;
                                         the result goes to `oppnda_result` (or --name)
          %oppnda run FOLDER --background   return at once; %oppnda stop cancels
          %oppnda stop                   cancel the run in progress
          %oppnda calibrate [FOLDER]     measure γ and M_overhead on a few files
          %oppnda plot                   the memory plot of the last run
          %oppnda plot METRIC [--by P]   a metric of the last run's averaged table (mean ± 95% CI)

        Without FOLDER, run/panel/calibrate use the bundled sample of real reports.
        """
        try:
            args = parse_argstring(self.oppnda, line)
        except UsageError as exc:
            msg = str(exc)
            if "%oppnda?" not in msg:
                msg += " (%oppnda? shows the help)"
            raise UsageError(msg) from None
        for key in ("command", "target", "config", "pattern", "output", "name", "by", "x", "table"):
            setattr(args, key, _unquote(getattr(args, key)))
        if args.group_by:
            args.group_by = [_unquote(g) for g in args.group_by]
        command = args.command
        if command not in COMMANDS:
            raise UsageError(f"unknown sub-command {command!r}: use one of {', '.join(COMMANDS)} "
                             "(%oppnda? shows the help)")
        self._check_options(command, args)
        try:
            return getattr(self, f"_cmd_{command}")(args)
        except OppndaError as exc:
            raise UsageError(str(exc)) from None

    # -- helpers -----------------------------------------------------------------------
    @staticmethod
    def _check_options(command: str, args) -> None:
        allowed = set(_ALLOWED[command])
        extra = [k for k, v in vars(args).items()
                 if k not in ("command", "target") and k not in allowed
                 and v is not None and v != _DEFAULTS.get(k)]
        if extra:
            names = ", ".join("--" + k.replace("_", "-") for k in extra)
            raise UsageError(f"%oppnda {command} does not take {names} (%oppnda? shows the help)")
        if command == "stop" and args.target:
            raise UsageError("%oppnda stop takes no folder: it stops the run in progress")
        if (args.min_workers is not None and args.max_workers is not None
                and args.min_workers > args.max_workers):
            raise UsageError(f"--min-workers ({args.min_workers}) is larger than --max-workers "
                             f"({args.max_workers})")
        if getattr(args, "name", None) and not str(args.name).isidentifier():
            raise UsageError(f"--name needs a Python variable name, got {args.name!r}")

    @staticmethod
    def _folder(target: str | None, config: str | None = None) -> str:
        """The folder to work on: ``target``, else the config's ``"folder"``, else the bundled sample."""
        if not target and config:
            from .averaging import load_config

            try:
                cfg = load_config(config)
                if cfg.folder:
                    return str(cfg.resolve_folder())
            except OppndaError as exc:
                raise UsageError(str(exc)) from None
        if not target:
            from .panel import sample_folder

            return os.fspath(sample_folder())
        path = Path(os.path.expanduser(target))
        if not path.exists():
            raise UsageError(f"folder {target!r} does not exist: give the folder that holds the "
                             "ONE reports (or no folder for the bundled sample)")
        if not path.is_dir():
            raise UsageError(f"{target!r} is a file, not a folder: give the folder that holds the reports")
        return str(path)

    @staticmethod
    def _config(args) -> str | None:
        if args.config is None:
            return None
        path = Path(os.path.expanduser(args.config))
        if not path.is_file():
            raise UsageError(f"config file {args.config!r} not found: give the path of an OppNDA "
                             "averager_config.json")
        return str(path)

    def _manager(self, args, calibrated: bool = True) -> Any:
        """A ResourceManager from the options (γ/M_overhead from ``%oppnda calibrate`` if any).

        The options are the command line's (same names), so the command line builds it; a bad
        value is an OppndaError, which :meth:`oppnda` turns into a UsageError.
        """
        from .cli_run import manager_from_args

        manager = manager_from_args(args)
        cal = self.calibration if calibrated else None
        if cal is not None:
            if args.gamma is None and args.overhead_mb is None:
                from . import calibration

                calibration.apply(manager, cal)  # γ, M_overhead and the per-type models
            elif args.gamma is None:
                manager.gamma = cal.gamma
            elif args.overhead_mb is None:
                manager.overhead_mb = cal.overhead_mb
        return manager

    def _make_run(self, args, folder: str) -> Any:
        runner = _runner()
        busy = self._running()
        if busy is not None:
            raise UsageError("a run is in progress: wait for it, or cancel it with %oppnda stop")
        kwargs = dict(config=self._config(args), pattern=args.pattern, group_by=args.group_by,
                      manager=self._manager(args), output=args.output)
        if getattr(args, "workers", None) is not None:
            kwargs["workers"] = args.workers
        run = runner.Run(folder, **kwargs)
        files = list(getattr(run, "files", []) or [])
        if not files:
            skipped = list(getattr(run, "skipped", []) or [])
            hint = ""
            if skipped:
                reason = skipped[0][1] if isinstance(skipped[0], tuple) else str(skipped[0])
                hint = f" ({len(skipped)} skipped, e.g. {reason})"
            raise UsageError(f"no matching report files in {folder!r}{hint}: check the folder, "
                             "--pattern and the config's file filter")
        return run

    @staticmethod
    def _running() -> Any:
        from .panel import running_run

        return running_run()

    def _store(self, name: str, result: Any) -> None:
        self.last_result = result
        if self.shell is not None:
            self.shell.user_ns[name] = result

    def _last_result(self) -> Any:
        """The last finished run's result: this magic's, else the shared current run's."""
        run = None
        try:
            run = _runner().current_run()
        except Exception:
            pass
        if run is not None and not getattr(run, "running", False):
            for attr in ("result",):
                res = getattr(run, attr, None)
                if res is not None and not callable(res):
                    return res
        return self.last_result

    # -- sub-commands --------------------------------------------------------------------
    def _cmd_status(self, args) -> StatusTable:
        manager = self._manager(args)
        sizes = None
        n_files = None
        if args.target:
            from .panel import scan_folder

            scan = scan_folder(self._folder(args.target, self._config(args)), config=self._config(args),
                               pattern=args.pattern)
            if scan.error:
                raise UsageError(scan.error)
            sizes, n_files = scan.sizes.tolist(), len(scan.files)
        status = manager.get_memory_status(file_sizes=sizes)
        return StatusTable(status, files=n_files)

    def _cmd_panel(self, args) -> None:
        from .panel import Panel

        config = self._config(args)
        folder = self._folder(args.target, config)
        panel = Panel(folder, pattern=args.pattern, config=config,
                      group_by=",".join(args.group_by) if args.group_by else None,
                      output=args.output, total_ram_mb=args.total_ram_mb)
        if args.eta is not None:
            panel.eta.value = args.eta
        if args.gamma is not None:
            panel.gamma.value = args.gamma
        if args.overhead_mb is not None:
            panel.overhead.value = int(round(args.overhead_mb))
        if args.min_workers is not None or args.max_workers is not None:
            lo, hi = panel.workers_range.value
            lo = args.min_workers or lo
            hi = args.max_workers or max(hi, lo)
            panel.workers_range.max = max(panel.workers_range.max, hi)
            panel.workers_range.value = (lo, max(lo, hi))
        if args.no_safety:
            panel.safety.value = False
        self.last_panel = panel
        if args.name and self.shell is not None:
            self.shell.user_ns[args.name] = panel
        _display(panel)

    def _cmd_run(self, args) -> None:
        from .panel import RunView, announce_run, display_final

        folder = self._folder(args.target, self._config(args))
        run = self._make_run(args, folder)
        name = args.name or DEFAULT_RESULT_NAME
        view = RunView(title=f"memory: {Path(folder).name}")
        self.last_view = view
        in_kernel = _in_kernel(self.shell)
        if in_kernel:
            _display(view.widget)
        run.start()
        view.attach(run)
        announce_run(run)
        n = len(run.files)
        if args.background:
            def done(result, error, _name=name):
                if error is None and result is not None:
                    self._store(_name, result)

            view.on_done(done)
            print(f"running {n:,} files in the background; the result will be in `{name}`. "
                  "%oppnda stop cancels.")
            return None
        if not in_kernel:
            print(f"running {n:,} files…")
        try:
            view.wait()
        except KeyboardInterrupt:
            print("interrupted: stopping the run…")
            run.stop()
            view.wait()
        if view.error is not None:
            display_final(view)
            msg = str(view.error) if isinstance(view.error, OppndaError) else (
                f"{type(view.error).__name__}: {view.error}")
            raise UsageError(f"the run failed: {msg}")
        self._store(name, view.result)
        display_final(view)
        print(f"result in `{name}` (.tables, .memory, .summary())")
        return None

    def _cmd_stop(self, args) -> None:
        run = self._running()
        if run is None:
            print("no run in progress")
            return None
        import time

        from .panel import result_status

        run.stop()
        end = time.monotonic() + 30
        while getattr(run, "running", False) and time.monotonic() < end:
            time.sleep(0.05)
        if getattr(run, "running", False):
            print("stop requested; the workers are being terminated")
            return None
        view = self.last_view
        if view is not None and view.run is run:
            view.wait(timeout=10)  # let the live view draw its final state
        result = getattr(run, "result", None)
        print(f"run {result_status(result) if result is not None else 'stopped'}")
        return None

    def _cmd_calibrate(self, args) -> Any:
        """Measure γ and M_overhead on a sample of the folder; later runs of this magic use them."""
        from . import calibration

        folder = self._folder(args.target)
        manager = self._manager(args, calibrated=False)
        print(f"calibrating on a sample of {folder} …")
        cal = calibration.calibrate(manager, folder, workers=args.workers or 1)
        self.calibration = cal
        if self.shell is not None:
            self.shell.user_ns["oppnda_calibration"] = cal
        print(cal.summary())
        print(f"the next %oppnda run uses γ={cal.gamma:.2f} and M_overhead={cal.overhead_mb:.0f} MB "
              "unless --gamma/--overhead-mb are given (result in `oppnda_calibration`)")
        return None

    def _cmd_plot(self, args) -> None:
        from IPython.display import Image

        from . import plots
        from .panel import result_memory

        if not args.target and (args.by or args.x or args.table):
            raise UsageError("--by/--x/--table need a METRIC: %oppnda plot METRIC --by PARAM")
        if args.name:
            if self.shell is None or args.name not in self.shell.user_ns:
                raise UsageError(f"no variable {args.name!r}: give the name of a run result")
            result = self.shell.user_ns[args.name]
        else:
            result = self._last_result()
        if result is None:
            raise UsageError("no finished run yet: run %oppnda run first")
        if not args.target:
            fig = plots.memory_figure(result_memory(result), title="memory of the pool")
        else:
            fig = _metric_plot(result, args.target, x=args.x, by=args.by, table=args.table)
        _display(Image(data=plots.figure_to_png(fig), format="png"))
        return None


def _metric_plot(result: Any, metric: str, *, x: str | None, by: str | None, table: str | None):
    """Pick the table and the x/by parameters for ``%oppnda plot METRIC``.

    Among the averaged tables that have the metric, the one whose rows (with a value of the
    metric) vary in the fewest parameters is used, so ``ttl_average`` is preferred to a table
    grouped by everything; ``x`` defaults to the last varying parameter, ``by`` to another one.
    """
    from . import plots

    tables = getattr(result, "tables", None) or {}
    if not tables:
        raise UsageError("the last run has no averaged table to plot")
    if table is not None:
        if table not in tables:
            raise UsageError(f"no table {table!r}: the run has {', '.join(map(str, tables))}")
        candidates = [(table, tables[table])]
    else:
        candidates = list(tables.items())
    options = []
    for name, frame in candidates:
        if metric not in plots.metric_columns(frame):
            continue
        col = f"{metric}_mean"
        rows = frame[frame[col].notna()] if col in frame else frame
        if rows.empty:
            continue
        params = plots.parameter_columns(rows)
        varying = [p for p in params if rows[p].nunique(dropna=True) > 1]
        wanted = {c for c in (x, by) if c is not None}
        if not wanted <= set(rows.columns):
            continue
        if wanted and not set(varying) <= wanted | ({by} if by else set()) and len(candidates) > 1:
            # a table that also varies in something else would mix lines; try the others first
            options.append((len(varying) + 100, name, rows, params, varying))
            continue
        options.append((len(varying), name, rows, params, varying))
    if not options:
        known = sorted({m for _, f in candidates for m in plots.metric_columns(f)})
        shown = ", ".join(known[:12]) + (" …" if len(known) > 12 else "")
        for opt, col in (("--x", x), ("--by", by)):
            if col is not None and all(col not in f.columns for _, f in candidates):
                raise UsageError(f"{opt} {col!r} is not a parameter of the averaged tables")
        raise UsageError(f"no metric {metric!r} in the averaged tables; metrics: {shown or 'none'}")
    options.sort(key=lambda o: (o[0] == 0, o[0]))
    _, name, rows, params, varying = options[0]
    if x is None:
        candidates_x = [p for p in varying if p != by]
        if not candidates_x:
            raise UsageError(f"table {name!r} has no parameter that varies: give --x PARAM "
                             f"(parameters: {', '.join(params) or 'none'})")
        x = candidates_x[-1]
    if by is None:
        others = [p for p in varying if p != x]
        by = others[0] if others else None
    try:
        return plots.metric_figure(rows, metric, x=x, by=by, title=f"{metric} ({name}): mean ± 95% CI")
    except (KeyError, ValueError) as exc:
        raise UsageError(f"cannot plot {metric!r} from table {name!r}: {exc}") from None


# ------------------------------------------------------------------------------- loading

_registered: dict[int, OppndaMagics] = {}


def register(ip) -> None:
    """Register ``%oppnda`` on an IPython shell (called by ``load_ipython_extension``)."""
    magics = OppndaMagics(ip)
    ip.register_magics(magics)
    _registered[id(ip)] = magics


def unregister(ip) -> None:
    """Remove ``%oppnda`` (``%unload_ext`` / first half of ``%reload_ext``). A running run goes on."""
    _registered.pop(id(ip), None)
    manager = getattr(ip, "magics_manager", None)
    if manager is None:
        return
    manager.magics.get("line", {}).pop("oppnda", None)
    registry = getattr(manager, "registry", {})
    registry.pop("OppndaMagics", None)
