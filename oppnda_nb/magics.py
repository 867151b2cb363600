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
#: the figures %oppnda plot METRIC --kind draws (figures' drawing functions)
KINDS = options.OPTIONS["kind"].choices
#: every option some %oppnda sub-command takes, in declaration order
_MAGIC_OPTIONS = tuple(n for n in options.OPTIONS
                       if any(n in options.COMMANDS[c] for c in ("status", "panel", "magic_run", "calibrate"))
                       or n in options.COMMANDS["plot"])


def _allowed(command: str) -> tuple[str, ...]:
    return options.COMMANDS["magic_run" if command == "run" else command]


def _option(name: str) -> "options.Option":
    return options.OPTIONS[name]


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
        self.analysis = None
        self.last_figures: list = []  # (path, Figure or None) of the last %oppnda plot

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
          %oppnda plot METRIC [--by P] [--hue router] [--kind line|surface|violin|heatmap|pairplot|
                       distribution|timeseries]
                                         a figure of the last run (line: mean ± 95% CI of METRIC
                                         against P, one line per --hue value); shown and saved as
                                         PNG next to its outputs. distribution/timeseries: METRIC
                                         is a report type; heatmap/pairplot: METRIC,METRIC,...
          %oppnda plot --config analysis_config.json [--format png,pdf]
                                         OppNDA's whole set of figures (figures.run_analysis)

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
            names = ", ".join(_option(k).flag for k in extra)
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

        return plots.memory_png(result.memory, title=f"memory of the run ({result.status})",
                                predicted_peak_mb=plots.planned_peak_mb(result))

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

        if values.get("config"):
            return self._plot_analysis(args, values)
        kind = values.get("kind") or "line"
        if not args.target and any(values.get(k) for k in ("by", "x", "table", "hue", "kind")):
            raise UsageError("--by/--x/--table/--hue/--kind need a METRIC: %oppnda plot METRIC --by PARAM "
                             "(or --config analysis_config.json for OppNDA's whole set)")
        result = self._last_result(args.name)
        if result is None:
            raise UsageError("no finished run yet: run %oppnda run first")
        if not args.target:
            shown = [("memory.png", None, self._memory_png(result))]
        else:
            shown = [(name, fig, None) for name, fig in _figures(result, args.target, kind, values)]
        formats = tuple(values.get("format") or ("png",))
        notebook = has_widget_frontend(self.shell)
        self.last_figures = []
        for filename, fig, png in shown:
            png = png if png is not None else plots.figure_to_png(fig, dpi=values.get("dpi"))
            path = self._save_png(result, filename, png)
            for fmt in (f for f in formats if f != "png" and fig is not None):
                fig.savefig(path.with_suffix(f".{fmt}"), format=fmt, dpi=values.get("dpi"))
            if notebook:
                from IPython.display import Image

                _display(Image(data=png, format="png"))
            self.last_figures.append((path, fig))
            print(f"plot saved to {path}")
        return None

    def _plot_analysis(self, args, values) -> None:
        """OppNDA's whole set of figures for an analysis_config.json, drawn in the memory-aware pool."""
        from . import figures
        from .cli import TerminalProgress
        from .panel import FigureRun, FigureTracker

        if args.target or any(values.get(k) for k in ("by", "x", "table", "hue", "kind", "name")):
            raise UsageError("%oppnda plot --config FILE draws every figure the config asks for: it takes no "
                             "METRIC, --by, --x, --hue, --kind, --table nor --name")
        print(f"reading and averaging the reports of {values['config']}…")
        analysis = figures.Analysis(values["config"], manager=self._manager(values),
                                    formats=tuple(values.get("format") or ("png",)), workers=values.get("workers"),
                                    dpi=values.get("dpi"))
        progress = TerminalProgress(sys.stdout)
        progress.tracker = FigureTracker()  # "drawing 3/40 figures · ETA 0:04 · ..."
        FigureRun(analysis).add_listener(progress)
        print(f"{len(analysis.tasks)} figure(s) to draw into {analysis.plots_dir}")
        result = analysis.run()
        self.analysis = result
        if self.shell is not None:
            self.shell.user_ns["oppnda_figures"] = result
        print(result.summary())
        print("details in `oppnda_figures` (.figures_frame(), .written, .failed)")
        return None


def _split(text: str) -> list[str]:
    return [t.strip() for t in str(text).split(",") if t.strip()]


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(name))


def _figures(result: Any, target: str, kind: str, values: dict) -> list[tuple[str, Any]]:
    """(file name, Figure) of ``%oppnda plot TARGET --kind KIND`` on a run result (OppNDA's file names).

    The picking of tables and parameters is :mod:`oppnda_nb.figures.pick`'s; this only maps the
    magic's options onto it: ``--by`` (or ``--x``) the grouping on the x axis, ``--hue`` one line (a
    surface, a heatmap) per value.
    """
    from . import figures
    from .figures import pick

    by, x, hue, table = values.get("by"), values.get("x"), values.get("hue"), values.get("table")
    if kind in ("line", "violin") and by and x and by != x:
        raise UsageError(f"--by and --x both name the x axis of a {kind}: give one")
    if kind == "line":
        frame, xp, lines = pick.pick(result.tables, target, x=by or x, by=hue, table=table)
        return [(f"{_safe(target)}_{_safe(xp)}_line.png", figures.line(frame, target, by=xp, hue=lines))]
    if kind == "surface":
        hue = hue or pick.HUE
        frame, xp, yp = pick.pick_surface(result.tables, target, x=x, y=by, hue=hue, table=table)
        keys = sorted(frame[hue].dropna().unique(), key=str) if hue in frame.columns else [None]
        out = []
        for key in keys:
            sub = frame if key is None else frame[frame[hue] == key]
            title = f"{target}" + (f" · {key}" if key is not None else "")
            prefix = f"{_safe(key)}_" if key is not None else ""
            out.append((f"{prefix}{_safe(target)}_3d_{_safe(xp)}_{_safe(yp)}.png",
                        figures.surface(sub, target, xp, yp, title=title)))
        return out
    if kind in ("distribution", "timeseries"):
        curves = getattr(getattr(result, "averaged", None), "curves", None) or {}
        ckind = "histogram" if kind == "distribution" else "timeseries"
        hue = hue or pick.HUE
        frame, facets = pick.pick_curves(curves, target, kind=ckind, hue=hue, table=table)
        draw = figures.distribution if kind == "distribution" else figures.timeseries
        combos = frame[facets].drop_duplicates().to_dict("records") if facets else [{}]
        out = []
        for where in combos:
            tag = "".join(f"_{k}{_safe(v)}" for k, v in where.items())
            out.append((f"{_safe(target)}_{kind}{tag}.png",
                        draw(frame, report_type=target, hue=hue if hue in frame.columns else None,
                             where=where or None)))
        return out
    runs = pick.runs_frame(result.job.results)
    metrics = _split(target)
    if kind == "violin":
        frame, metrics = pick.pick_runs(runs, metrics[:1])
        cat = by or x or hue or pick.HUE
        if cat not in frame.columns:
            raise UsageError(f"no parameter {cat!r} in the runs; parameters: "
                             f"{', '.join(runs.attrs.get('parameters', [])) or 'none'}")
        return [(f"violin_{_safe(cat)}_{_safe(metrics[0])}.png", figures.violin(frame, metrics[0], by=cat))]
    if kind == "heatmap":
        frame, metrics = pick.pick_runs(runs, metrics, at_least=2)
        hue = hue or pick.HUE
        keys = sorted(frame[hue].dropna().unique(), key=str) if hue in frame.columns else [None]
        return [(f"{_safe(key) + '_' if key is not None else ''}correlation.png",
                 figures.heatmap(frame if key is None else frame[frame[hue] == key], metrics,
                                 title=None if key is None else str(key))) for key in keys]
    if kind == "pairplot":
        if len(metrics) < 2:
            raise UsageError("a pairplot needs metrics separated by commas, e.g. "
                             "%oppnda plot delivery_prob,overhead_ratio,latency_avg --kind pairplot")
        frame, metrics = pick.pick_runs(runs, metrics, at_least=2)
        hue = hue or pick.HUE
        return [("pairplot.png", figures.pairplot(frame, metrics, hue=hue if hue in frame.columns else None))]
    raise UsageError(f"--kind must be one of {', '.join(KINDS)}, got {kind!r}")


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
