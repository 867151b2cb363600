"""The ipywidgets face: a compact live view of a run (:class:`RunView`, also used by ``%oppnda run``)
and the control panel (:class:`Panel`).

Compact like tqdm's notebook bar and Dask's progress widget: one line of progress (bar + a label
that never wraps, naming the phase: scanning → processing → averaging → writing) with the memory
plot under it, visible at once; the folder, pattern, config and sliders sit in a collapsible
``Accordion`` whose title carries the recommendation (from :func:`job.plan`, re-planned on every
slider move from a cached scan, without touching the disk); failed / skipped / results tabs below.
A panel shows only the runs it started, and says with which settings.

Threading: a run works in its own thread; a view's daemon "ticker" thread reads the run's
progress and memory a few times a second and only *sets widget values* (safe from a thread:
ipykernel's IOPub is thread-safe); it never uses ``with out:`` from a thread. A view's display
bundle also carries the current memory plot as ``image/png``, so a saved or headless notebook
shows the picture where a browser shows the live widget (one output, updated in place at the end).
"""
from __future__ import annotations

import base64
import html
import logging
import os
import threading
import time
from typing import Any, Callable

import ipywidgets as W

from . import figures, job, options, plots, pool
from .cli import PhaseTracker, format_duration, progress_line
from .errors import OppndaError
from .resource_manager import ResourceConfig, ResourceManager

log = logging.getLogger("oppnda_nb.panel")

__all__ = ["Panel", "RunView", "plot_wait", "FigureRun", "FigureTracker", "figures_html", "outcomes_html", "preview_html"]

#: Shortest time between the starts of two redraws of the live memory plot. A redraw also waits 4x
#: the drawing's CPU time (averaged over the last frames) after the last one started, so drawing takes
#: at most a quarter of a core; and it comes at least once a second.
PLOT_INTERVAL = 0.25
#: Weight of the newest frame in the average drawing CPU time the CPU guard uses.
_CPU_SMOOTHING = 0.3
#: Seconds between two progress-label updates (a widget message goes out only when the text changes).
TICK_INTERVAL = 0.125

_NOWRAP = "white-space:nowrap;overflow:hidden;text-overflow:ellipsis"


def plot_wait(frame_cpu: float, interval: float = PLOT_INTERVAL) -> float:
    """Seconds from the start of one live-plot frame to the next: ``interval``, or longer so that drawing
    (``frame_cpu`` s of CPU a frame) takes at most a quarter of a core; at most a second.

    Drawing costs the kernel CPU the workers could use. Its CPU time, not its wall time, is what counts:
    while workers keep every core busy a frame takes several times its CPU time to finish, and a guard on
    wall time would drop the plot to one frame a second.
    """
    return min(1.0, max(interval, 4.0 * frame_cpu))


def _label_html(text: str, colour: str | None = None) -> str:
    style = _NOWRAP + (f";color:{colour}" if colour else "")
    return f"<div style='{style}' title='{html.escape(text)}'>{html.escape(text)}</div>"


# ----------------------------------------------------------------------------- result tabs

def outcomes_html(result: Any, status: str, limit: int = 200) -> str:
    """A table of the files with ``status`` ("failed" or "skipped") and their reasons."""
    rows = [o for o in result.outcomes if str(o.status) == status]
    if not rows:
        return f"<i>No {status} files.</i>"
    body = "".join(f"<tr><td style='text-align:left'>{html.escape(os.path.basename(o.path))}</td>"
                   f"<td style='text-align:left'>{html.escape(o.reason or '')}</td></tr>" for o in rows[:limit])
    more = f" (first {limit} shown)" if len(rows) > limit else ""
    return (f"<b>{len(rows):,} {status}</b>{more}<div style='max-height:220px;overflow:auto'>"
            "<table style='font-size:12px'><thead><tr><th style='text-align:left'>file</th>"
            f"<th style='text-align:left'>reason</th></tr></thead><tbody>{body}</tbody></table></div>")


def preview_html(result: Any, rows: int = 6, max_tables: int = 3) -> str:
    """The first rows of the averaged tables, and where the outputs are."""
    tables = result.tables
    if not tables:
        return "<i>No averaged table.</i>" + (f" {html.escape(result.error)}" if result.error else "")
    parts = []
    for name, table in list(tables.items())[:max_tables]:
        shown = table.head(rows).to_html(max_cols=10, float_format=lambda v: f"{v:.4g}", border=0, index=False)
        parts.append(f"<b>{html.escape(str(name))}</b> ({len(table):,} rows × {table.shape[1]} columns)"
                     f"<div style='overflow:auto;font-size:12px'>{shown}</div>")
    if len(tables) > max_tables:
        parts.append(f"<i>… and {len(tables) - max_tables} more table(s)</i>")
    parts.append(f"<div>written to <code>{html.escape(str(result.output_dir))}</code></div>")
    return "".join(parts)


# ------------------------------------------------------------------------------ live view

class RunView:
    """One run, live: a progress bar and a one-line label (phase, files, MB/s, ETA) and the memory plot.

    ``attach(run)`` (before ``run.start()``) follows the run until ``job.RUN_DONE``; then the bar
    turns green (all processed) or red (failed/cancelled), the final plot is drawn and the
    ``on_done`` callbacks get the RunResult. ``settings`` names the run's settings under the bar.
    """

    def __init__(self, *, title: str | None = None, settings: str = "", plot_interval: float = PLOT_INTERVAL,
                 tick_interval: float = TICK_INTERVAL):
        self.title = title or "memory of the run"
        self.plot_interval = plot_interval
        self.tick_interval = tick_interval
        self.bar = W.IntProgress(value=0, min=0, max=1, bar_style="", layout=W.Layout(width="25%", min_width="120px"))
        # flex-basis 0, min-width 0 and overflow hidden: a long label (an output path) is cut at the row's
        # end (the full text is its tooltip) instead of pushing the panel's Start/Stop buttons away or
        # running over them
        self.label = W.HTML(value=_label_html("no run yet"),
                            layout=W.Layout(flex="1 1 0%", min_width="0", width="auto", overflow="hidden"))
        self.settings = W.HTML(value=_label_html(settings, "#666") if settings else "")
        self.image = W.Image(format="png", layout=W.Layout(width="100%", max_width="820px"))
        self.png = plots.memory_png(None, title=self.title)
        self.image.value = self.png
        self.widget = W.VBox([W.HBox([self.bar, self.label], layout=W.Layout(width="100%")), self.settings,
                              self.image], layout=W.Layout(width="100%", max_width="900px"))
        self.run: Any = None
        self.result: Any = None
        self.status = "idle"  # idle | running | finished | cancelled | failed
        self.frames_drawn = 0
        self.live: plots.LiveMemoryPlot | None = None  # made by the ticker at its first frame
        self.tracker = PhaseTracker()
        self._on_done: list[Callable[[Any], None]] = []
        self._done = threading.Event()
        self._wake = threading.Event()

    def on_done(self, callback: Callable[[Any], None]) -> None:
        self._on_done.append(callback)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def attach(self, run: Any, settings: str | None = None) -> None:
        """Follow ``run`` (call before ``run.start()`` so no event is missed)."""
        if self.run is not None:
            raise OppndaError("This view already follows a run; make a new view for a new run.")
        self.run = run
        self.status = "running"
        self.bar.bar_style = "info"
        self.bar.max = max(1, len(run.files))
        if settings is not None:
            self.settings.value = _label_html(settings, "#666")
        self.label.value = _label_html(f"processing 0/{len(run.files):,} files")
        self.image.layout.display = None  # shown from the first run on (a panel hides the empty plot)
        run.add_listener(self._on_event)
        threading.Thread(target=self._tick_loop, name="oppnda-view", daemon=True).start()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the run has ended and the view is final; True if it has."""
        return self._done.wait(timeout)

    def _on_event(self, event: Any) -> None:
        if self.tracker(event) and event.kind in ("done", "phase", "run_done"):
            self._wake.set()

    def _tick_loop(self) -> None:
        next_plot, frame_cpu, rows = 0.0, 0.0, -1
        planned = plots.planned_peak_mb(self.run)
        while self.tracker.phase != "done":
            self._wake.wait(max(0.0, min(self.tick_interval, next_plot - time.monotonic())))
            self._wake.clear()
            if self.tracker.phase == "done":
                break
            progress = self.tracker.progress
            if progress is not None:
                self.bar.max = max(1, progress.files_total)
                self.bar.value = min(self.bar.max, progress.files_done)
            self.label.value = _label_html(self.tracker.line())
            start = time.monotonic()
            if start >= next_plot:
                cpu = time.thread_time()
                memory = self.run.memory_frame()
                if len(memory) != rows and len(memory):
                    rows = len(memory)
                    if self.live is None:
                        self.live = plots.LiveMemoryPlot(self.title)
                    self._set_png(self.live.png(memory, predicted_peak_mb=planned))
                frame_cpu += _CPU_SMOOTHING * ((time.thread_time() - cpu) - frame_cpu)
                next_plot = start + plot_wait(frame_cpu, self.plot_interval)
        self._finish(self.tracker.result)

    def _set_png(self, png: bytes) -> None:
        self.png = png
        self.image.value = png
        self.frames_drawn += 1

    def abandon(self, message: str) -> None:
        """The attached run could not start: end the ticker and say why."""
        self.tracker.phase = "done"
        self._wake.set()
        self._done.wait(5)
        self.status = "idle"
        self.bar.bar_style = "danger"
        self.label.value = _label_html(message, "#c62828")

    def _finish(self, result: Any) -> None:
        self.result = result
        if result is None:  # abandoned before it started
            self._done.set()
            return
        try:
            self.status = result.status
            ok = result.exit_code == job.EXIT_OK and not result.error
            self.bar.bar_style = "success" if ok else "danger"
            counts = result.job.counts
            self.bar.max = max(1, counts["total"])
            self.bar.value = counts["total"] - counts["cancelled"]
            text = (f"{result.status} · {counts['processed']:,} processed, {counts['failed']:,} failed, "
                    f"{counts['skipped']:,} skipped, {counts['cancelled']:,} cancelled · {result.output_dir}")
            self.label.value = _label_html(text, None if ok else "#c62828")
            self._set_png(plots.memory_png(result.memory, title=f"{self.title} ({result.status})",
                                           predicted_peak_mb=plots.planned_peak_mb(result)))
        finally:
            for cb in list(self._on_done):  # before the waiters wake: they see the final tabs
                try:
                    cb(result)
                except Exception:  # a display callback must not hang the waiters
                    log.exception("a view callback failed")
            self._done.set()

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        """The live widget, plus the current memory plot as image/png (and the summary as text)."""
        bundle = dict(self.widget._repr_mimebundle_(include=include, exclude=exclude) or {})
        bundle["image/png"] = base64.b64encode(self.png).decode("ascii")
        bundle["text/plain"] = self.result.summary() if self.result is not None else self.tracker.line()
        return bundle


# ------------------------------------------------------------------------------------ panel

class Panel:
    """The control panel: one progress line with Start/Stop, the live memory plot, the settings in a
    collapsible Accordion (title: the recommendation of :func:`job.plan`), failed/skipped/results tabs.

    ``settings``: option values (names of :mod:`oppnda_nb.options`, e.g. from ``%oppnda panel``)
    used as the sliders' initial values, set once at construction.
    """

    def __init__(self, folder: str | os.PathLike | None = None, *, config: Any = None, pattern: Any = None,
                 group_by: Any = None, output: str | os.PathLike | None = None, settings: dict | None = None):
        s = dict(settings or {})
        self.settings = s
        text = dict(layout=W.Layout(width="98%"), style={"description_width": "90px"}, continuous_update=False)
        self.folder = W.Text(value=os.fspath(folder) if folder else "", description="folder",
                             placeholder="folder of ONE reports (empty: the config's folder, else the bundled sample)",
                             **text)
        self.pattern = W.Text(value=pattern or "", description="name pattern",
                              placeholder="{scenario}_{router}_{seed}_{ttl}_{buffer}_{report_type} (empty: ONE's)",
                              **text)
        self.config = W.Text(value=os.fspath(config) if config else "", description="config",
                             placeholder="OppNDA averager_config.json (optional)", **text)
        gb = ",".join(group_by) if isinstance(group_by, (list, tuple)) else (group_by or "")
        self.group_by = W.Text(value=gb, description="group by", placeholder="e.g. router,ttl", **text)
        self.output = W.Text(value=os.fspath(output) if output else "", description="output",
                             placeholder="output folder (empty: <folder>/averaged)", **text)
        self.validation = W.HTML()

        # continuous_update=False: the browser's slider then sends a value only when a person lets go;
        # with True it echoes every value set from code back rounded to its step grid (0.75 comes back
        # as 0.7499999999999999, 0.3 as 0.30000000000000004), after the cell, overwriting the last value.
        sl = dict(style={"description_width": "120px"}, layout=W.Layout(width="48%"), continuous_update=False)
        self.eta = W.FloatSlider(value=s.get("eta") or ResourceConfig.ETA, min=0.05, max=1.0, step=0.01,
                                 description="η (RAM use)", readout_format=".2f", **sl)
        lo = s.get("min_workers") or ResourceConfig.MIN_WORKERS
        hi = max(lo, s.get("max_workers") or ResourceConfig.MAX_WORKERS)
        self.workers_range = W.IntRangeSlider(value=(lo, hi), min=1, max=max(hi, 2 * (os.cpu_count() or 1), 16),
                                              description="workers", **sl)
        self.safety = W.Checkbox(value=not s.get("no_safety"), description="memory safety", indent=False)
        self.by_hand = W.Checkbox(value=s.get("gamma") is not None or s.get("overhead_mb") is not None,
                                  description="γ / M_overhead by hand (else the per-type model)", indent=False,
                                  layout=W.Layout(width="auto"))  # the default 300 px cut the description
        self.gamma = W.FloatSlider(value=s.get("gamma") or ResourceConfig.GAMMA, min=0.5, max=20.0, step=0.1,
                                   description="γ (expansion)", readout_format=".1f", **sl)
        self.overhead = W.IntSlider(value=int(round(s.get("overhead_mb") or ResourceConfig.M_OVERHEAD_MB)), min=0,
                                    max=1000, step=5, description="M_overhead (MB)", **sl)
        self.recommendation_label = W.HTML()

        self.start_button = W.Button(description="Start", button_style="primary", icon="play",
                                     layout=W.Layout(width="90px", flex="0 0 auto"))
        self.stop_button = W.Button(description="Stop", button_style="danger", icon="stop", disabled=True,
                                    layout=W.Layout(width="90px", flex="0 0 auto"))
        self.view = RunView()
        self.view.label.value = _label_html("ready: Start runs the folder with these settings")
        self.view.image.layout.display = "none"  # no empty plot before the first run: the panel stays small
        self.view.on_done(self._run_done)
        self.failed_tab, self.skipped_tab, self.results_tab = (W.HTML("<i>no run yet</i>") for _ in range(3))
        self.tabs = W.Tab(children=[self.failed_tab, self.skipped_tab, self.results_tab])
        for i, t in enumerate(("failed", "skipped", "results")):
            self.tabs.set_title(i, t)
        settings_box = W.VBox([self.folder, self.pattern, self.config, self.group_by, self.output, self.validation,
                               W.HBox([self.eta, self.workers_range]), W.HBox([self.safety, self.by_hand]),
                               W.HBox([self.gamma, self.overhead]), self.recommendation_label])
        self.accordion = W.Accordion(children=[settings_box], selected_index=None)
        self.widget = W.VBox([
            W.HBox([self.view.bar, self.view.label, self.start_button, self.stop_button],
                   layout=W.Layout(width="100%", align_items="center")),
            self.view.settings, self.view.image, self.accordion, self.tabs,
        ], layout=W.Layout(width="100%", max_width="900px"))

        self.plan: Any = None  # job.Plan of the current inputs
        self._scan: Any = None  # job.Plan of the last scan (files, sizes, kinds) reused by slider moves
        self._scan_error: str | None = None
        self._scan_key: tuple | None = None
        self.run: Any = None
        self._handle: Any = None
        for w in (self.folder, self.pattern, self.config):
            w.observe(self._on_inputs, names="value")
        # observers only read the widgets and write labels: an echoed value can never loop or go stale
        for w in (self.eta, self.gamma, self.overhead, self.workers_range, self.safety, self.by_hand):
            w.observe(self._on_slider, names="value")
        self.start_button.on_click(lambda _b: self._click_start())
        self.stop_button.on_click(lambda _b: self.stop())
        self._add_sections(settings_box, text)
        self.rescan()

    # -- inputs ------------------------------------------------------------------------
    def _text(self, w: W.Text) -> str | None:
        return w.value.strip() or None

    def _on_inputs(self, _change=None) -> None:
        self.rescan()

    def _on_slider(self, _change=None) -> None:
        self.update_recommendation()

    def option_values(self) -> dict:
        """The current widget values as option values (names of :mod:`oppnda_nb.options`)."""
        lo, hi = self.workers_range.value
        values = dict(self.settings)
        values.update(eta=float(self.eta.value), min_workers=int(lo), max_workers=int(hi),
                      no_safety=not self.safety.value,
                      gamma=float(self.gamma.value) if self.by_hand.value else None,
                      overhead_mb=float(self.overhead.value) if self.by_hand.value else None,
                      config=self._text(self.config), pattern=self._text(self.pattern),
                      group_by=options.OPTIONS["group_by"].convert(self.group_by.value) if self._text(self.group_by)
                      else None, output=self._text(self.output))
        values.update(no_cache=not self.cache.value, scheduler=self._text(self.scheduler))
        return values

    def make_manager(self) -> ResourceManager:
        return ResourceManager(**options.manager_kwargs(self.option_values()))

    def rescan(self) -> Any:
        """Select the files a run would take (job.plan_folder) when folder/pattern/config changed."""
        key = (self._text(self.folder), self._text(self.pattern), self._text(self.config))
        if key != self._scan_key:
            self._scan_key = key
            self._scan, self._scan_error = None, None
            self.view.label.value = _label_html("scanning…")
            try:
                self._scan = job.plan_folder(key[0], self.make_manager(), config=key[2], pattern=key[1])
                if not self._scan.files:
                    self._scan_error = (f"no matching report files ({len(self._scan.skipped):,} skipped): check "
                                        "the folder, the name pattern and the config's file filter")
            except OppndaError as exc:
                self._scan_error = str(exc)
            if self._scan_error:
                self.validation.value = f"<span style='color:#c62828'>✗ {html.escape(self._scan_error)}</span>"
            else:
                total = sum(self._scan.sizes)
                self.validation.value = (f"<span style='color:#2e7d32'>✓</span> {len(self._scan.files):,} files "
                                         f"({total / 2**20:,.1f} MB), {len(self._scan.skipped):,} skipped")
            if self.run is None:
                self.view.label.value = _label_html("ready: Start runs the folder with these settings")
        self.update_recommendation()
        return self._scan

    def update_recommendation(self) -> Any:
        """Re-plan from the cached scan (no disk access) with the current sliders: job.plan."""
        self.gamma.disabled = self.overhead.disabled = not self.by_hand.value
        if self._scan is None or self._scan_error:
            self.plan = None
            self.accordion.set_title(0, "settings · " + (self._scan_error or "no files"))
            self.recommendation_label.value = ""
            self._sync_buttons()
            return None
        try:
            s = self._scan
            self.plan = job.plan(s.files, self.make_manager(), skipped=s.skipped, sizes=s.sizes, kinds=s.kinds,
                                 workers=self.settings.get("workers"), local_pool=True)
        except OppndaError as exc:
            self.plan = None
            self.accordion.set_title(0, f"settings · ✗ {exc}")
            self.recommendation_label.value = f"<span style='color:#c62828'>✗ {html.escape(str(exc))}</span>"
            self._sync_buttons()
            return None
        self.accordion.set_title(0, f"settings · {self.plan.text()}")
        warn = "".join(f"<br><span style='color:#c62828'>⚠ {html.escape(w)}</span>" for w in self.plan.warnings)
        self.recommendation_label.value = f"<b>{html.escape(self.plan.text())}</b>{warn}"
        self._sync_buttons()
        return self.plan

    def _running(self) -> bool:
        return self.run is not None and self.run.running

    def _sync_buttons(self) -> None:
        self.start_button.disabled = self._running() or self.plan is None or self._drawing()
        self.stop_button.disabled = not (self._running() or self._drawing())
        self.draw_button.disabled = self._running() or self._drawing()

    # -- running -----------------------------------------------------------------------
    def _click_start(self) -> None:
        try:
            self.start()
        except OppndaError as exc:
            self.view.label.value = _label_html(str(exc), "#c62828")

    def start(self) -> Any:
        """Start a run with the current inputs in the background; returns the job.Run."""
        if self._running():
            raise OppndaError("This panel's run is in progress: wait for it or press Stop.")
        busy = job.current_run()
        if busy is not None and busy.running:
            msg = f"A run of {busy.folder} is in progress (started elsewhere): wait for it or stop it (%oppnda stop)."
            self.view.label.value = _label_html(msg, "#c62828")
            raise OppndaError(msg)
        self.rescan()
        if self.plan is None:
            raise OppndaError(self._scan_error or "the settings are not valid (see the settings)")
        values = self.option_values()
        run = job.Run(self._text(self.folder), manager=self.make_manager(), **options.run_kwargs(values))
        if self.view.run is not None or self.view is self._figures_view:  # a new run: a fresh view in the same places
            self._new_view()
        settings = (f"run of {run.folder} · η={values['eta']:.2f} · workers {run.plan.workers} · "
                    + (f"γ={values['gamma']:.1f}, M_overhead={values['overhead_mb']:.0f} MB"
                       if self.by_hand.value else "per-type memory model"))
        for tab in (self.failed_tab, self.skipped_tab, self.results_tab):
            tab.value = "<i>running…</i>"
        self.view.attach(run, settings=settings)
        try:
            run.start()  # raises OppndaError when another run (magic, other panel) is going
        except OppndaError as exc:
            self.view.abandon(str(exc))
            self.run = run
            raise
        self.run = run
        self._sync_buttons()
        return run

    def _new_view(self) -> None:
        old = self.view
        self.view = RunView(title=old.title)
        self.view.on_done(self._run_done)
        row = self.widget.children[0]
        row.children = (self.view.bar, self.view.label) + tuple(row.children[2:])
        self.widget.children = (row, self.view.settings, self.view.image) + tuple(self.widget.children[3:])

    def stop(self) -> None:
        """Stop this panel's run: no new file starts, the workers end; what was processed is written."""
        if self._running():
            self.view.label.value = _label_html("stopping…")
            self.run.stop()
        if self._drawing():
            self.stop_figures()

    def _run_done(self, result: Any) -> None:
        if result is not None:
            self.failed_tab.value = outcomes_html(result, "failed")
            self.skipped_tab.value = outcomes_html(result, "skipped")
            self.results_tab.value = preview_html(result)
        self._sync_buttons()

    # -- cache, scheduler, figures (sections added to the settings) -------------------------
    def _add_sections(self, settings_box: Any, text: dict) -> None:
        """The cache checkbox and scheduler field (settings), and the Figures section (second fold)."""
        s = self.settings
        self.cache = W.Checkbox(value=not s.get("no_cache"), indent=False,
                                description="cache (re-runs parse only new or changed files)",
                                layout=W.Layout(width="auto"))  # the default 300 px cut the description
        self.scheduler = W.Text(value=s.get("scheduler") or "", description="scheduler",
                                placeholder="Dask scheduler tcp://HOST:PORT (empty: the local memory-aware pool)",
                                **text)
        settings_box.children = tuple(settings_box.children) + (self.cache, self.scheduler)
        self.figures_config = W.Text(value="", description="analysis",
                                     placeholder="OppNDA analysis_config.json (empty: the bundled example)", **text)
        self.draw_button = W.Button(description="Draw figures", icon="bar-chart", layout=W.Layout(width="130px"))
        self.figures_list = W.HTML("<i>no figures yet</i>")
        self.draw_button.on_click(lambda _b: self._click_draw())
        self.figures_box = W.VBox([W.HBox([self.figures_config, self.draw_button],
                                          layout=W.Layout(width="100%", align_items="center")), self.figures_list])
        self.accordion.children = tuple(self.accordion.children) + (self.figures_box,)
        self.accordion.set_title(len(self.accordion.children) - 1, "figures · OppNDA's analysis (line, 3D, violin, "
                                                                    "heatmap, pairplot)")
        self.analysis: Any = None
        self.figures_result: Any = None
        self._figures_thread: threading.Thread | None = None
        self._figures_stop = threading.Event()
        self._figures_view: RunView | None = None

    def _drawing(self) -> bool:
        return self._figures_thread is not None and self._figures_thread.is_alive()

    def _click_draw(self) -> None:
        try:
            self.draw_figures()
        except OppndaError as exc:
            self.figures_list.value = f"<span style='color:#c62828'>✗ {html.escape(str(exc))}</span>"

    def draw_figures(self, config: Any = None) -> threading.Thread:
        """Draw OppNDA's figures of ``config`` (default: the Figures field, else the bundled example) in the
        background with the panel's memory settings; progress and memory in the panel's view."""
        if self._running() or self._drawing():
            raise OppndaError("The panel is busy: wait for its run or figures, or press Stop.")
        busy = job.current_run()
        if busy is not None and busy.running:
            raise OppndaError(f"A run of {busy.folder} is in progress: wait for it or stop it (%oppnda stop).")
        if config is None:
            config = self._text(self.figures_config) or os.fspath(figures.example_config_path())
        self._figures_stop.clear()
        self.figures_result = None
        self.figures_list.value = "<i>reading and averaging the reports…</i>"
        self._figures_thread = threading.Thread(target=self._figures_main, args=(config, self.make_manager()),
                                                name="oppnda-figures-panel", daemon=True)
        self._figures_thread.start()
        self._sync_buttons()
        return self._figures_thread

    def stop_figures(self) -> None:
        """Stop the figures: the averaging of their reports, or the drawing (no new figure starts)."""
        self._figures_stop.set()
        self.view.label.value = _label_html("stopping the figures…")
        if self.analysis is not None:
            self.analysis.stop()
        inner = job.current_run()
        if inner is not None and inner.running and inner is not self.run:
            inner.stop()

    def wait_figures(self, timeout: float | None = None) -> Any:
        """Block until the figures are drawn (or failed); the AnalysisResult (None if it could not start)."""
        if self._figures_thread is not None:
            self._figures_thread.join(timeout)
        return self.figures_result

    def _figures_main(self, config: Any, manager: ResourceManager) -> None:
        before = job.current_run()
        view = RunView(title="memory: figures")
        view.tracker = FigureTracker()
        self._figures_view = view
        self._swap_view(view)
        view.bar.bar_style = "info"
        follow = threading.Thread(target=self._follow_averaging, args=(view, before), daemon=True)
        follow.start()
        try:
            self.analysis = None
            self.analysis = figures.Analysis(config, manager=manager)
            if self._figures_stop.is_set():
                raise OppndaError("stopped while the reports were averaged: no figure drawn")
            if self.analysis.job is None:
                result = self.analysis.run()
                self.figures_result = result
                _view_message(view, "no figure to draw")
                self.figures_list.value = figures_html(result)
                return
            adapter = FigureRun(self.analysis)
            view.on_done(lambda r: self._figures_done(r))
            view.attach(adapter, settings=f"figures of {config} · {len(adapter.files)} figure(s) · "
                                          f"{manager.format_status().splitlines()[0]}")
            self.analysis.start()
            view.wait()
        except OppndaError as exc:
            _view_message(view, str(exc))
            self.figures_list.value = f"<span style='color:#c62828'>✗ {html.escape(str(exc))}</span>"
        except Exception as exc:  # shown in the panel, not lost in a thread
            log.exception("drawing the figures failed")
            _view_message(view, f"{type(exc).__name__}: {exc}")
            self.figures_list.value = f"<span style='color:#c62828'>✗ {html.escape(f'{type(exc).__name__}: {exc}')}</span>"
        finally:
            self._figures_stop.set()  # ends the follower
            follow.join(2)
            self._sync_buttons_later()

    def _sync_buttons_later(self) -> None:
        """Buttons are synced once this thread has ended (``_drawing`` looks at it)."""
        def later():
            thread = self._figures_thread
            if thread is not None and thread is not threading.current_thread():
                thread.join(5)
            self._sync_buttons()

        threading.Thread(target=later, daemon=True).start()

    def _follow_averaging(self, view: "RunView", before: Any) -> None:
        """The progress of the run that averages the figures' reports (Analysis' constructor), on the label."""
        while not self._figures_stop.wait(TICK_INTERVAL * 2):
            if view.run is not None:
                return
            inner = job.current_run()
            if inner is not None and inner is not before and inner.running and inner.progress is not None:
                view.bar.max = max(1, inner.progress.files_total)
                view.bar.value = min(view.bar.max, inner.progress.files_done)
                view.label.value = _label_html("averaging the reports: " + progress_line(inner.progress))

    def _figures_done(self, adapted: Any) -> None:
        result = adapted.result if adapted is not None else None
        self.figures_result = result
        if result is not None:
            self.figures_list.value = figures_html(result)

    def _swap_view(self, view: "RunView") -> None:
        """Put ``view``'s bar, label, settings and plot where the panel's view is."""
        self.view = view
        row = self.widget.children[0]
        row.children = (view.bar, view.label) + tuple(row.children[2:])
        self.widget.children = (row, view.settings, view.image) + tuple(self.widget.children[3:])

    def wait(self, timeout: float | None = None) -> Any:
        """Block until this panel's run ends; the panel's output then carries the final plot. The RunResult."""
        if self.run is None:
            raise OppndaError("No run to wait for: press Start or call panel.start() first.")
        if not self.view.wait(timeout):
            return None
        if self._handle is not None:
            self._handle.update(self)
        return self.view.result

    @property
    def result(self) -> Any:
        return self.view.result

    def show(self) -> Any:
        """Display the panel (one output, updated in place by :meth:`wait`)."""
        from IPython.display import display

        self._handle = display(self, display_id=True)
        return self._handle

    def close(self) -> None:
        self.widget.close()

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        """The widget, plus the current memory plot as image/png and the summary as text/plain."""
        bundle = dict(self.widget._repr_mimebundle_(include=include, exclude=exclude) or {})
        bundle["image/png"] = base64.b64encode(self.view.png).decode("ascii")
        bundle["text/plain"] = (self.view.result.summary() if self.view.result is not None
                                else f"oppnda_nb panel · {self.plan.text() if self.plan else self._scan_error}")
        return bundle


# ---------------------------------------------------------------------------------- figures

def _view_message(view: RunView, message: str) -> None:
    """End ``view`` with a red message (abandon it if it follows something, else just say it)."""
    if view.run is not None:
        view.abandon(message)
    else:
        view.bar.bar_style = "danger"
        view.label.value = _label_html(message, "#c62828")


def figures_html(result: Any, limit: int = 60) -> str:
    """What an analysis drew: its summary line, the files written, the figures that failed or were not drawn."""
    lines = result.summary().splitlines()
    head = f"<b>{html.escape(lines[0])}</b>" if lines else ""
    written = sorted(os.path.basename(p) for p in list(result.written) + list(result.csv))
    files = "".join(f"<li>{html.escape(n)}</li>" for n in written[:limit])
    more = f"<li><i>… and {len(written) - limit} more</i></li>" if len(written) > limit else ""
    failed = "".join(f"<li style='color:#c62828'>{html.escape(n)}: {html.escape(r)}</li>" for n, r in result.failed)
    skipped = "".join(f"<li style='color:#666'>not drawn: {html.escape(n)}: {html.escape(r)}</li>"
                      for n, r in result.skipped[:limit])
    return (f"{head}<div>in <code>{html.escape(str(result.plots_dir))}</code></div>"
            f"<div style='max-height:220px;overflow:auto;font-size:12px'><ul>{failed}{files}{more}{skipped}</ul></div>")


class FigureTracker(PhaseTracker):
    """A run's phase tracker for an analysis: "drawing 3/40 figures · ETA 0:04 · 2 running on 2 workers"."""

    def line(self) -> str:
        p = self.progress
        if p is None:
            return "drawing…"
        parts = [f"drawing {p.files_done:,}/{p.files_total:,} figures"]
        if self.phase == "processing":
            parts.append(f"ETA {format_duration(p.eta_s)}")
            parts.append(f"{p.running} running on {p.workers} worker{'s' if p.workers != 1 else ''}")
        else:
            parts.append(self.phase)
        if p.failed:
            parts.append(f"{p.failed} failed")
        return " · ".join(parts)


class FigureRun:
    """An :class:`~oppnda_nb.figures.Analysis` seen as a run by :class:`RunView` (files = figures)."""

    def __init__(self, analysis: Any):
        self.analysis = analysis
        self.files = list(analysis.tasks)

    def add_listener(self, callback: Callable) -> None:
        def forward(event: Any) -> None:
            kind = str(event.kind)
            if kind == "done":
                callback(pool.Event("phase", "writing"))
            elif kind == "analysis_done":
                callback(pool.Event(job.RUN_DONE, FigureResult(event.data) if event.data is not None else None))
            else:
                callback(event)

        self.analysis.add_listener(forward)

    def memory_frame(self):
        return self.analysis.job.memory_frame()

    def stop(self) -> None:
        self.analysis.stop()


class FigureResult:
    """An AnalysisResult with the few names :class:`RunView` reads of a RunResult."""

    error = None

    def __init__(self, result: Any):
        self.result = result
        self.job = result.job
        self.status = result.status
        self.exit_code = result.exit_code
        self.output_dir = result.plots_dir
        self.memory = result.job.memory if result.job is not None else None

    def summary(self) -> str:
        return self.result.summary()
