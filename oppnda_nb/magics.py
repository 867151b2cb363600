"""The ``%oppnda`` line magic: status, panel, run, stop, calibrate, plot.

A thin face over :mod:`oppnda_nb.job`: options come from :mod:`oppnda_nb.options` (the command
line's names, types and checks); defaults of the memory and pool options are traits settable with
``%config OppndaMagics.eta = 0.6`` (or ``c.OppndaMagics.eta`` in ``ipython_config.py``). Every user
mistake becomes a ``UsageError`` (one red line, no traceback).

In a notebook (a kernel with a widget front end) ``%oppnda run`` shows ONE live view whose display
also carries the final memory plot as ``image/png`` (a saved or headless notebook shows the
picture); in a terminal IPython it prints the progress line and the summary and saves the memory
plot as a PNG, saying where. Heavy modules are imported inside the commands so ``%load_ext`` is instant.
"""
from __future__ import annotations

import html
import sys
import time
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from traitlets import TraitError, validate

from . import options
from .errors import OppndaError

__all__ = ["OppndaMagics", "register", "unregister", "StatusTable", "has_widget_frontend"]

MAGIC_COMMANDS = ("status", "panel", "run", "stop", "calibrate", "plot")
DEFAULT_RESULT_NAME = "oppnda_result"
#: options whose default %config sets (memory and pool settings; not per-run paths)
CONFIGURABLE = tuple(name for name, o in options.OPTIONS.items() if o.configurable)
#: every option some %oppnda sub-command takes, in declaration order
_MAGIC_OPTIONS = tuple(n for n in options.OPTIONS
                       if any(n in options.COMMANDS[c] for c in ("status", "panel", "magic_run", "calibrate", "plot")))


def _allowed(command: str) -> tuple[str, ...]:
    return options.COMMANDS["magic_run" if command == "run" else command]


def has_widget_frontend(shell: Any) -> bool:
    """True in a Jupyter kernel (widgets render), False in a terminal IPython or a plain InteractiveShell."""
    return getattr(shell, "kernel", None) is not None


def _display(obj: Any, **kw) -> Any:
    from IPython.display import display

    return display(obj, **kw)


# --------------------------------------------------------------------------- status table

class StatusTable:
    """The memory status (and a folder's plan): an HTML table in notebooks, text elsewhere."""

    def __init__(self, text: str, plan: Any = None):
        self.text = text
        self.plan = plan

    def _plan_line(self) -> str:
        p = self.plan
        return "" if p is None else f"{len(p.files):,} files ({len(p.skipped):,} skipped): {p.text()}"

    def __repr__(self) -> str:
        extra = self._plan_line()
        warns = "".join(f"\nwarning: {w}" for w in (self.plan.warnings if self.plan is not None else []))
        return self.text + (f"\n{extra}" if extra else "") + warns

    def _repr_html_(self) -> str:
        lines = self.text.splitlines()
        head, rows = (lines[0], lines[1:]) if lines else ("", [])
        body = "".join(f"<tr><td style='text-align:left'><code>{html.escape(r.strip())}</code></td></tr>" for r in rows)
        plan = self._plan_line()
        plan_html = f"<div><b>{html.escape(plan)}</b></div>" if plan else ""
        warns = "".join(f"<div style='color:#c62828'>⚠ {html.escape(w)}</div>"
                        for w in (self.plan.warnings if self.plan is not None else []))
        return (f"<table><caption style='text-align:left'><b>{html.escape(head)}</b></caption>{body}</table>"
                f"{plan_html}{warns}")


# --------------------------------------------------------------------------------- magics

def _with_options(func):
    """Apply the @argument decorators of every %oppnda option (from options.py), then the positionals."""
    for deco in reversed(options.magic_argument_decorators(_MAGIC_OPTIONS)):
        func = deco(func)
    func = argument("target", nargs="?", default=None, metavar="FOLDER|METRIC",
                    help="folder of ONE reports (run, panel, calibrate, status; default: the config's "
                         "folder, else the bundled sample) or a metric name (plot)")(func)
    func = argument("command", nargs="?", default="status", metavar="COMMAND",
                    help="status | panel [FOLDER] | run [FOLDER] | stop | calibrate [FOLDER] | "
                         "plot [METRIC] (default: status)")(func)
    return magic_arguments()(func)


@magics_class
class OppndaMagics(Magics):
    """``%oppnda``: memory-aware averaging of ONE reports from a notebook."""

    for _name in CONFIGURABLE:  # eta, gamma, ... : %config OppndaMagics.<name> = value
        vars()[_name] = options.trait_for(_name)
    del _name

    @validate(*CONFIGURABLE)
    def _check_default(self, proposal):
        try:
            return options.check_value(proposal["trait"].name, proposal["value"])
        except ValueError as exc:
            raise TraitError(str(exc)) from None

    def __init__(self, shell=None, **kwargs):
        super().__init__(shell, **kwargs)
        self.last_result = None
        self.last_view = None
        self.last_panel = None
        self.calibration = None

    @line_magic
    @_with_options
    def oppnda(self, line: str = ""):
        """Memory-aware averaging of ONE simulator reports.

        Sub-commands::

          %oppnda status [FOLDER]        memory status; with FOLDER the plan of a run of it
          %oppnda panel [FOLDER]         the control panel (notebook front end)
          %oppnda run [FOLDER] [...]     run with progress and the memory plot; the result goes
                                         to `oppnda_result` (or --name)
          %oppnda run FOLDER --background   return at once; %oppnda stop cancels
          %oppnda stop                   cancel the run in progress
          %oppnda calibrate [FOLDER]     measure the largest file of each report type (kept)
          %oppnda plot                   the memory plot of the last run
          %oppnda plot METRIC [--by P]   a metric of the last run's averaged table (mean ± 95% CI)

        Defaults of the memory and pool options: ``%config OppndaMagics`` lists them, e.g.
        ``%config OppndaMagics.eta = 0.6``. Without FOLDER, run/panel/calibrate use the config's
        folder, else the bundled sample of real reports.
        """
        try:
            args = parse_argstring(self.oppnda, line)
        except UsageError as exc:
            msg = str(exc)
            raise UsageError(msg if "%oppnda?" in msg else msg + " (%oppnda? shows the help)") from None
        command = args.command
        if command not in MAGIC_COMMANDS:
            raise UsageError(f"unknown sub-command {command!r}: use one of {', '.join(MAGIC_COMMANDS)} "
                             "(%oppnda? shows the help)")
        for key in ("command", "target"):
            value = getattr(args, key)
            if isinstance(value, str):
                setattr(args, key, options._unquote(value))
        self._check_options(command, args)
        values = options.merged(vars(args), {n: getattr(self, n) for n in CONFIGURABLE if n in _allowed(command)})
        try:
            return getattr(self, f"_cmd_{command}")(args, values)
        except OppndaError as exc:
            raise UsageError(str(exc)) from None

    # -- helpers -----------------------------------------------------------------------
    @staticmethod
    def _check_options(command: str, args) -> None:
        allowed = set(_allowed(command))
        extra = [k for k, v in vars(args).items() if k not in ("command", "target") and k not in allowed
                 and v is not None]
        if extra:
            names = ", ".join(options.OPTIONS[k].flag for k in extra)
            raise UsageError(f"%oppnda {command} does not take {names} (%oppnda? shows the help)")
        if command == "stop" and args.target:
            raise UsageError("%oppnda stop takes no folder: it stops the run in progress")
        if getattr(args, "name", None) and not str(args.name).isidentifier():
            raise UsageError(f"--name needs a Python variable name, got {args.name!r}")

    @staticmethod
    def _manager(values: dict) -> Any:
        from .resource_manager import ResourceManager

        return ResourceManager(**options.manager_kwargs(values))  # SettingsError -> UsageError

    def _store(self, name: str, result: Any) -> None:
        self.last_result = result
        if self.shell is not None:
            self.shell.user_ns[name] = result

    def _last_result(self, name: str | None) -> Any:
        if name:
            if self.shell is None or name not in self.shell.user_ns:
                raise UsageError(f"no variable {name!r}: give the name of a run result")
            return self.shell.user_ns[name]
        if self.last_result is not None:
            return self.last_result
        from . import job

        run = job.current_run()
        return run.result if run is not None and not run.running else None

    # -- sub-commands --------------------------------------------------------------------
    def _cmd_status(self, args, values) -> StatusTable:
        manager = self._manager(values)
        plan = None
        if args.target or values.get("config"):
            from . import job

            plan = job.plan_folder(args.target, manager, config=values.get("config"), pattern=values.get("pattern"))
            if not plan.files:
                raise UsageError(f"no matching report files in {args.target or 'the config folder'} "
                                 f"({len(plan.skipped)} skipped): check the folder, --pattern and the config")
        return StatusTable(manager.format_status(), plan)

    def _cmd_panel(self, args, values) -> Any:
        if not has_widget_frontend(self.shell):
            print("The panel needs a notebook front end (JupyterLab, Notebook, VS Code). Here use\n"
                  "  %oppnda run [FOLDER]     progress, summary and the memory plot saved as PNG\n"
                  "  %oppnda status [FOLDER]  the memory status and the recommended workers\n"
                  "or, in a shell, python -m oppnda_nb run [FOLDER].")
            return None
        from .panel import Panel

        panel = Panel(args.target, config=values.get("config"), pattern=values.get("pattern"),
                      group_by=values.get("group_by"), output=values.get("output"), settings=values)
        self.last_panel = panel
        if args.name and self.shell is not None:
            self.shell.user_ns[args.name] = panel
        panel.show()
        return None

    def _cmd_run(self, args, values) -> None:
        from . import job

        busy = job.current_run()
        if busy is not None and busy.running:
            raise UsageError("a run is in progress: wait for it, or cancel it with %oppnda stop")
        run = job.Run(args.target, manager=self._manager(values), **options.run_kwargs(values))
        name = args.name or DEFAULT_RESULT_NAME
        if has_widget_frontend(self.shell):
            return self._run_in_notebook(run, name, background=bool(args.background))
        return self._run_in_terminal(run, name, background=bool(args.background))

    def _run_in_notebook(self, run, name: str, background: bool) -> None:
        from .panel import RunView

        view = RunView(title=f"memory: {Path(run.folder).name}", settings=run.plan.text())
        self.last_view = view
        view.attach(run)
        view.on_done(lambda result: self._store(name, result))
        handle = _display(view, display_id=True)
        run.start()
        if background:
            print(f"running {len(run.files):,} files in the background; the result will be in `{name}`. "
                  "%oppnda stop cancels.")
            return None
        try:
            while not view.wait(0.1):
                pass
        except KeyboardInterrupt:
            print("interrupted: stopping the run…")
            run.stop()
            view.wait()
        if handle is not None:
            handle.update(view)  # the same output, now with the final picture as image/png
        print(view.result.summary())
        print(f"result in `{name}` (.tables, .memory, .summary())")
        return None

    def _run_in_terminal(self, run, name: str, background: bool) -> None:
        from .cli import TerminalProgress

        def done(event):
            if event.kind == "run_done" and event.data is not None:
                self._store(name, event.data)

        run.add_listener(done)
        print(f"{len(run.files):,} files in {run.folder}; {run.plan.text()}")
        if background:
            run.start()
            print(f"running in the background; the result will be in `{name}`. %oppnda stop cancels.")
            return None
        run.add_listener(TerminalProgress(sys.stdout))
        result = run.run()
        print(result.summary())
        path = self._save_png(result, "memory.png", self._memory_png(result))
        print(f"memory plot saved to {path}")
        print(f"result in `{name}` (.tables, .memory, .summary())")
        return None

    @staticmethod
    def _memory_png(result) -> bytes:
        from . import plots

        return plots.memory_png(result.memory, title=f"memory of the run ({result.status})")

    @staticmethod
    def _save_png(result, filename: str, png: bytes) -> Path:
        path = Path(result.output_dir) / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png)
        return path

    def _cmd_stop(self, args, values) -> None:
        from . import job

        run = job.current_run()
        if run is None or not run.running:
            print("no run in progress")
            return None
        run.stop()
        end = time.monotonic() + 30
        while run.running and time.monotonic() < end:
            time.sleep(0.05)
        if run.running:
            print("stop requested; the workers are being terminated")
        else:
            print(f"run {run.result.status}: {run.result.summary().splitlines()[0]}")
        return None

    def _cmd_calibrate(self, args, values) -> None:
        from . import calibrate

        print(f"calibrating on {args.target or 'the bundled sample'} (one worker, the largest file of each type)…")
        cal = calibrate.calibrate(args.target, self._manager(values), config=values.get("config"),
                                  pattern=values.get("pattern"))
        self.calibration = cal
        if self.shell is not None:
            self.shell.user_ns["oppnda_calibration"] = cal
        print(cal.summary())
        print("later runs plan with what was learned (kept between sessions; --no-learn ignores it); "
              "details in `oppnda_calibration`")
        return None

    def _cmd_plot(self, args, values) -> None:
        from . import plots

        if not args.target and (args.by or args.x or args.table):
            raise UsageError("--by/--x/--table need a METRIC: %oppnda plot METRIC --by PARAM")
        result = self._last_result(args.name)
        if result is None:
            raise UsageError("no finished run yet: run %oppnda run first")
        if not args.target:
            png, filename = self._memory_png(result), "memory.png"
        else:
            fig = _metric_plot(result, args.target, x=args.x, by=args.by, table=args.table)
            png, filename = plots.figure_to_png(fig), f"{args.target}.png"
        if has_widget_frontend(self.shell):
            from IPython.display import Image

            _display(Image(data=png, format="png"))
        else:
            print(f"plot saved to {self._save_png(result, filename, png)}")
        return None


def _metric_plot(result: Any, metric: str, *, x: str | None, by: str | None, table: str | None):
    """Pick the table and the x/by parameters for ``%oppnda plot METRIC``.

    (To move to plots.py: picking a table and x/by is not the face's job.)
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
    magics = _registered.pop(id(ip), None)
    if magics is not None and magics in getattr(ip, "configurables", []):
        ip.configurables.remove(magics)
    manager = getattr(ip, "magics_manager", None)
    if manager is None:
        return
    manager.magics.get("line", {}).pop("oppnda", None)
    getattr(manager, "registry", {}).pop("OppndaMagics", None)
