"""The ipywidgets control panel, and the compact live view of a run shared with ``%oppnda run``.

Threading model (why it looks like this): a run executes in the pool's background threads so
the kernel stays free. A :class:`RunView` has its own daemon "ticker" thread that reads the
run's progress and memory samples a few times a second and *sets widget values* (bar value,
label HTML, image bytes). Setting a trait sends a comm message on ipykernel's thread-safe IOPub
channel, so this works while the main thread is blocked in a cell; it never uses ``with out:``
from a thread (output capture is per-thread/per-cell and breaks).

Headless notebooks (nbclient/papermill) keep no widget pixels, so a finished run also leaves a
plain ``image/png``: :meth:`Panel.wait` displays the final memory plot and summary, and a
panel whose run has finished adds ``image/png`` (and the summary as ``text/plain``) to its own
mime bundle, so displaying it in a later cell shows a static picture everywhere.
"""
from __future__ import annotations

import base64
import html
import os
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import ipywidgets as W
import numpy as np

from . import plots
from .errors import OppndaError

__all__ = ["Panel", "RunView", "FolderScan", "scan_folder", "Recommendation", "recommend",
           "format_duration", "announce_run"]

MB = 1024 * 1024

#: Shortest time between two redraws of the live memory plot (a redraw also waits 3x its own
#: drawing time, so drawing takes at most a quarter of a core; and comes at least once a second).
PLOT_INTERVAL = 0.25
#: Seconds between two progress-label updates (a widget message goes out only when the text changes).
TICK_INTERVAL = 0.125
#: A folder scan slower than this is re-run only when typing pauses for SCAN_DEBOUNCE_S.
SLOW_SCAN_S = 0.15
SCAN_DEBOUNCE_S = 0.4


def _runner():
    """The runner module, imported lazily (tests may substitute a fake)."""
    from . import runner

    return runner


def sample_folder() -> Path:
    """The bundled sample (through :func:`_runner`, so tests can substitute the runner)."""
    return Path(_runner().sample_folder())


# ----------------------------------------------------------------------------- formatting

def format_duration(seconds: float | None) -> str:
    """``75`` -> ``"1:15"``, ``3700`` -> ``"1:01:40"``, None/NaN -> ``"–"``."""
    if seconds is None or not np.isfinite(seconds) or seconds < 0:
        return "–"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _fmt_mb(value_bytes: float) -> str:
    mb = value_bytes / MB
    if mb >= 100:
        return f"{mb:,.0f} MB"
    if mb >= 1:
        return f"{mb:.1f} MB"
    return f"{value_bytes / 1024:.1f} KB"


def progress_text(progress: Any) -> str:
    """One line for a pool ``Progress``: files done/total, MB/s, ETA, workers."""
    if progress is None:
        return "starting…"
    done = getattr(progress, "files_done", 0) or 0
    total = getattr(progress, "files_total", 0) or 0
    rate = getattr(progress, "mb_per_s", None)
    eta = getattr(progress, "eta_s", None)
    workers = getattr(progress, "workers", None)
    parts = [f"{done:,} / {total:,} files"]
    if rate is not None and np.isfinite(rate):
        parts.append(f"{rate:.2f} MB/s" if rate < 10 else f"{rate:.0f} MB/s")
    parts.append(f"ETA {format_duration(eta)}")
    elapsed = getattr(progress, "elapsed_s", None)
    if elapsed is not None:
        parts.append(f"elapsed {format_duration(elapsed)}")
    if workers:
        parts.append(f"{workers} worker{'s' if workers != 1 else ''}")
    return " · ".join(parts)


def _png_b64(png: bytes) -> str:
    return base64.b64encode(png).decode("ascii")


def result_status(result: Any) -> str:
    """``finished`` / ``cancelled`` / ``failed`` of a RunResult (or a JobResult)."""
    status = getattr(result, "status", None)
    if isinstance(status, str):
        return status
    job = getattr(result, "job", result)
    return str(getattr(job, "status", "finished"))


def result_memory(result: Any):
    mem = getattr(result, "memory", None)
    if mem is None:
        mem = getattr(getattr(result, "job", None), "memory", None)
    return mem


def result_summary(result: Any) -> str:
    try:
        return str(result.summary())
    except Exception as exc:  # a summary must never hide the result
        return f"run {result_status(result)} ({exc})"


def outcome_rows(result: Any, limit: int = 200) -> tuple[list[tuple[str, str, str]], dict[str, int]]:
    """(rows of (file, status, reason) for failed/skipped files, counts per status)."""
    job = getattr(result, "job", result)
    outcomes = list(getattr(job, "outcomes", []) or [])
    counts: dict[str, int] = {}
    rows: list[tuple[str, str, str]] = []
    for o in outcomes:
        status = str(getattr(o, "status", "?"))
        counts[status] = counts.get(status, 0) + 1
        if status in ("failed", "skipped") and len(rows) < limit:
            rows.append((os.path.basename(str(getattr(o, "path", ""))), status,
                         str(getattr(o, "reason", "") or "")))
    return rows, counts


def outcomes_html(result: Any, limit: int = 200) -> str:
    rows, counts = outcome_rows(result, limit)
    if not rows:
        cancelled = counts.get("cancelled", 0)
        extra = f" ({cancelled:,} cancelled)" if cancelled else ""
        return f"<i>No failed or skipped files{extra}.</i>"
    total_bad = counts.get("failed", 0) + counts.get("skipped", 0)
    head = (f"<b>{counts.get('failed', 0):,} failed, {counts.get('skipped', 0):,} skipped</b>"
            + (f" (first {limit} shown)" if total_bad > limit else ""))
    body = "".join(
        f"<tr><td style='text-align:left'>{html.escape(f)}</td>"
        f"<td style='color:{'#c62828' if s == 'failed' else '#8d6e00'}'>{s}</td>"
        f"<td style='text-align:left'>{html.escape(r)}</td></tr>" for f, s, r in rows)
    return (f"{head}<div style='max-height:220px;overflow:auto'>"
            "<table style='font-size:12px'><thead><tr><th style='text-align:left'>file</th>"
            f"<th>status</th><th style='text-align:left'>reason</th></tr></thead><tbody>{body}"
            "</tbody></table></div>")


def preview_html(result: Any, rows: int = 6, max_tables: int = 3) -> str:
    tables = getattr(result, "tables", None) or {}
    if callable(tables):
        tables = tables()
    if not tables:
        return "<i>No averaged table.</i>"
    parts = []
    for name, table in list(tables.items())[:max_tables]:
        try:
            shown = table.head(rows).to_html(max_cols=10, float_format=lambda v: f"{v:.4g}",
                                             border=0, index=False)
        except Exception as exc:  # pragma: no cover - defensive
            shown = html.escape(str(exc))
        parts.append(f"<b>{html.escape(str(name))}</b> ({len(table):,} rows × "
                     f"{table.shape[1]} columns)<div style='overflow:auto;font-size:12px'>{shown}</div>")
    if len(tables) > max_tables:
        parts.append(f"<i>… and {len(tables) - max_tables} more table(s)</i>")
    out = getattr(result, "output_dir", None)
    if out is not None:
        parts.append(f"<div>written to <code>{html.escape(str(out))}</code></div>")
    return "".join(parts)


# ------------------------------------------------------------------------------ live view

def _run_memory(run: Any):
    """Memory samples so far of a running Run (or None)."""
    for obj in (run, getattr(run, "job", None)):
        fn = getattr(obj, "memory_frame", None)
        if callable(fn):
            try:
                return fn()
            except Exception:
                return None
    return None


class RunView:
    """A compact live view of one run: progress bar + HTML label + memory plot image.

    ``attach(run)`` starts a daemon thread that updates the widgets (by setting values only)
    until the run ends, then colours the bar ('success' green, 'danger' red), draws the final
    plot and calls the ``on_done`` callbacks with ``(result, error)``.
    """

    def __init__(self, *, title: str | None = None, plot_interval: float = PLOT_INTERVAL,
                 tick_interval: float = TICK_INTERVAL, show_plot: bool = True):
        self.title = title
        self.plot_interval = plot_interval
        self.tick_interval = tick_interval
        self.bar = W.IntProgress(value=0, min=0, max=1, description="", bar_style="",
                                 layout=W.Layout(width="60%"))
        self.label = W.HTML(value="<i>no run yet</i>")
        self.image = W.Image(format="png", layout=W.Layout(width="100%", max_width="820px"))
        self.image.value = plots.memory_png(None, title="memory")
        children = [W.HBox([self.bar, self.label]), self.image] if show_plot else [
            W.HBox([self.bar, self.label])]
        self.widget = W.VBox(children)
        self.run: Any = None
        self.result: Any = None
        self.error: BaseException | None = None
        self.status: str = "idle"  # idle | running | finished | cancelled | failed
        self.final_png: bytes | None = None
        self.frames_drawn = 0
        self._on_done: list[Callable[[Any, BaseException | None], None]] = []
        self._done = threading.Event()
        self._wake = threading.Event()
        self._failed_live = 0
        self._lock = threading.RLock()
        self._generation = 0
        self._finalizing = False

    # -- public -------------------------------------------------------------------------
    def on_done(self, callback: Callable[[Any, BaseException | None], None]) -> None:
        self._on_done.append(callback)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def attach(self, run: Any) -> None:
        """Follow ``run`` (already started) until it ends."""
        with self._lock:  # waits for a previous run's final drawing to finish
            self._generation += 1
            gen = self._generation
            self.run = run
            self.result = None
            self.error = None
            self.final_png = None
            self.status = "running"
            self._done.clear()
            self._failed_live = 0
            self.bar.bar_style = "info"
            self.bar.value = 0
        try:
            run.add_listener(self._on_event)
        except Exception:
            pass
        threading.Thread(target=self._wait_for, args=(run, gen), name="oppnda-view-wait",
                         daemon=True).start()
        threading.Thread(target=self._tick_loop, args=(run, gen), name="oppnda-view-tick",
                         daemon=True).start()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the followed run has ended and the view is final; True if it has."""
        return self._done.wait(timeout)

    def show_result(self, result: Any, error: BaseException | None = None) -> None:
        """Put a finished result (or error) into the widgets (also used for an old run)."""
        self.result, self.error = result, error
        if error is not None:
            self.status = "failed"
        else:
            self.status = result_status(result)
        ok = self.status == "finished" and error is None
        self.bar.bar_style = "success" if ok else "danger"
        progress = getattr(getattr(result, "job", None), "outcomes", None)
        if progress is not None:
            n = len(progress)
            self.bar.max = max(1, n)
            self.bar.value = sum(1 for o in progress if getattr(o, "status", "") != "cancelled")
        if error is not None:
            self.label.value = (f"<span style='color:#c62828'><b>failed:</b> "
                                f"{html.escape(str(error))}</span>")
        else:
            colour = "#2e7d32" if ok else "#c62828"
            extra = getattr(result, "error", None)
            self.label.value = (f"<span style='color:{colour}'><b>{html.escape(self.status)}</b></span>"
                                f" · {html.escape(result_summary(result).splitlines()[0])}"
                                + (f" · <span style='color:#c62828'>{html.escape(str(extra))}</span>"
                                   if isinstance(extra, str) and extra else ""))
        memory = result_memory(result) if result is not None else _run_memory(self.run)
        title = self.title or "memory of the pool"
        self.final_png = plots.memory_png(memory, title=f"{title} ({self.status})")
        self.image.value = self.final_png
        self.frames_drawn += 1

    # -- threads -----------------------------------------------------------------------
    def _on_event(self, event: Any) -> None:
        kind = getattr(event, "kind", "")
        if kind == "file_failed":
            self._failed_live += 1
        if kind in ("done", "file_failed", "warning"):
            self._wake.set()

    def _wait_for(self, run: Any, gen: int) -> None:
        result, error = None, None
        try:
            result = run.wait()
        except BaseException as exc:  # noqa: BLE001 - shown in the view, never raised in a thread
            error = exc
        self._wake.set()
        with self._lock:  # the final state belongs to this attachment only
            if gen != self._generation:
                return
            self._finalizing = True
            try:
                self.show_result(result, error)
            except Exception as exc:  # pragma: no cover - a broken result must not hang waiters
                self.error = self.error or exc
                self.status = "failed"
                self.bar.bar_style = "danger"
            finally:
                self._finalizing = False
                for cb in list(self._on_done):
                    try:
                        cb(result, error)
                    except Exception:
                        pass
                self._done.set()

    def _tick_loop(self, run: Any, gen: int) -> None:
        last_plot = 0.0
        last_rows = -1
        interval = self.plot_interval
        while gen == self._generation and not self._done.is_set():
            self._wake.wait(self.tick_interval)
            self._wake.clear()
            if gen != self._generation or self._done.is_set() or self._finalizing:
                break
            try:
                progress = getattr(run, "progress", None)
                total = int(getattr(progress, "files_total", 0) or 0)
                done = int(getattr(progress, "files_done", 0) or 0)
                failed = (f" · <span style='color:#c62828'>{self._failed_live} failed</span>"
                          if self._failed_live else "")
                text = html.escape(progress_text(progress)) + failed
                with self._lock:
                    if gen != self._generation or self._done.is_set():
                        break
                    self.bar.max = max(1, total)
                    self.bar.value = min(self.bar.max, done)
                    self.label.value = text
            except Exception:
                pass
            now = time.monotonic()
            if now - last_plot >= interval:
                memory = _run_memory(run)
                rows = -1 if memory is None else len(memory)
                if rows != last_rows and rows > 0:
                    last_rows = rows
                    try:
                        png = plots.memory_png(memory, title=self.title or "memory of the pool")
                    except Exception:
                        png = None
                    with self._lock:
                        if png is not None and gen == self._generation and not self._done.is_set():
                            self.image.value = png
                            self.frames_drawn += 1
                # Drawing costs the kernel CPU that the workers could use: keep it to about a
                # quarter of one core, but redraw at least once a second.
                last_plot = time.monotonic()
                interval = min(1.0, max(self.plot_interval, 3.0 * (last_plot - now)))


# -------------------------------------------------------------------------- runs registry

_PANELS: "weakref.WeakSet[Panel]" = weakref.WeakSet()


def announce_run(run: Any, source: Any = None) -> None:
    """Tell every live panel that ``run`` started (so a magic-started run shows in the panel)."""
    for panel in list(_PANELS):
        if panel is not source:
            try:
                panel.follow(run)
            except Exception:
                pass


def running_run() -> Any:
    """The shared current run if it is still running, else None."""
    try:
        run = _runner().current_run()
    except Exception:
        return None
    if run is not None and getattr(run, "running", False):
        return run
    return None


# ------------------------------------------------------------------------------ folder scan

@dataclass
class FolderScan:
    """What a folder holds for a run: files, their sizes (sorted, largest first), what was skipped."""

    folder: str
    files: list[str] = field(default_factory=list)
    sizes: np.ndarray = field(default_factory=lambda: np.zeros(0))
    skipped: list[tuple[str, str]] = field(default_factory=list)
    report_types: dict[str, int] = field(default_factory=dict)
    params: dict[str, str] | None = None
    params_error: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.files)

    @property
    def largest_bytes(self) -> float:
        return float(self.sizes[0]) if self.sizes.size else 0.0

    def describe_html(self) -> str:
        if self.error:
            return f"<span style='color:#c62828'>✗ {html.escape(self.error)}</span>"
        total = float(self.sizes.sum()) if self.sizes.size else 0.0
        parts = [f"<span style='color:#2e7d32'>✓</span> <b>{len(self.files):,}</b> files "
                 f"({_fmt_mb(total)}, largest {_fmt_mb(self.largest_bytes)})"]
        if self.skipped:
            parts.append(f"{len(self.skipped):,} skipped")
        if self.report_types:
            types = ", ".join(f"{html.escape(k)} ×{v:,}" for k, v in
                              sorted(self.report_types.items(), key=lambda kv: -kv[1])[:6])
            parts.append(f"types: {types}")
        line = " · ".join(parts)
        if self.params:
            kv = ", ".join(f"{html.escape(k)}=<code>{html.escape(v)}</code>"
                           for k, v in self.params.items())
            line += f"<br>parameters from <code>{html.escape(os.path.basename(self.files[0]))}</code>: {kv}"
        elif self.params_error:
            line += f"<br><span style='color:#c62828'>✗ name pattern: {html.escape(self.params_error)}</span>"
        return line


def _select_files(folder: str, config: Any, pattern: Any) -> tuple[list[str], list[tuple[str, str]], Any]:
    """(files, skipped, name pattern) a run would take: the same selection as ``runner.Run``
    (OppNDA's rules: extension, report types, name pattern)."""
    from . import averaging

    cfg = averaging.prepare_config(config, pattern, None)
    files, skipped = averaging.select_files(folder, cfg)
    return [str(f) for f in files], list(skipped), cfg.pattern


def scan_folder(folder: str | os.PathLike | None, *, config: Any = None, pattern: Any = None) -> FolderScan:
    """Find the files of ``folder`` once (sizes, report types, parameters of the first name).

    Done when the folder, pattern or config change, never on a slider move.
    """
    folder_s = os.fspath(folder) if folder else ""
    scan = FolderScan(folder=folder_s)
    if not folder_s.strip():
        scan.error = "type a folder of ONE reports (empty: the bundled sample)"
        return scan
    path = Path(folder_s).expanduser()
    if not path.exists():
        scan.error = f"folder {folder_s!r} does not exist: type an existing folder"
        return scan
    if not path.is_dir():
        scan.error = f"{folder_s!r} is a file, not a folder: type the folder that holds the reports"
        return scan
    try:
        files, skipped, name_pattern = _select_files(str(path), config, pattern)
    except OppndaError as exc:
        scan.error = str(exc)
        return scan
    except Exception as exc:
        scan.error = f"cannot list {folder_s!r}: {exc}"
        return scan
    scan.files, scan.skipped = files, skipped
    if not files:
        scan.error = (f"no matching report files in {folder_s!r}"
                      + (f" ({len(skipped):,} skipped, e.g. {os.path.basename(skipped[0][0])}: "
                         f"{skipped[0][1]})" if skipped else "")
                      + ": check the folder, the pattern and the config's file filter")
        return scan
    sizes = np.empty(len(files), dtype=float)
    for i, f in enumerate(files):
        try:
            sizes[i] = os.stat(f).st_size
        except OSError:
            sizes[i] = 0.0
    scan.sizes = np.sort(sizes)[::-1].copy()
    # Parameters of the first name, and report types of all names (string work only).
    try:
        pat = name_pattern
        params, reason = pat.parse_with_reason(files[0])
        scan.params, scan.params_error = params, reason
        rfield = pat.report_field
        counts: dict[str, int] = {}
        if rfield:
            for f in files:
                p = pat.parse(f)
                key = p.get(rfield, "?") if p else "?"
                counts[key] = counts.get(key, 0) + 1
        scan.report_types = counts
    except OppndaError as exc:
        scan.params_error = str(exc)
    except Exception as exc:  # a pattern that fails on these names: show it, never break the panel
        scan.params_error = f"{type(exc).__name__}: {exc}"
    return scan


# ---------------------------------------------------------------------------- recommendation

@dataclass
class Recommendation:
    """What the sliders imply right now (the panel's live line)."""

    workers: int
    budget_mb: float
    largest_mb: float
    predicted_peak_mb: float
    warnings: list[str] = field(default_factory=list)

    def text(self) -> str:
        return (f"recommended workers {self.workers} · budget {self.budget_mb:,.0f} MB · "
                f"largest file {_fmt_mb(self.largest_mb * MB)} · predicted peak "
                f"{self.predicted_peak_mb:,.0f} MB")


def recommend(manager: Any, sizes: np.ndarray | None) -> Recommendation:
    """P_opt, budget and predicted peak M_base + Σ_{i≤P}(γ·size(r_i) + M_overhead) for ``sizes``.

    ``sizes`` sorted largest first (as :class:`FolderScan` keeps them) makes this O(P) beyond
    the manager's own sort of already-sorted data.
    """
    sizes_list = None if sizes is None else sizes.tolist()
    workers = int(manager.get_optimal_workers(file_sizes=sizes_list))
    warnings = list(getattr(manager, "warnings", []) or [])
    budget = float(manager.budget_bytes())
    base = float(manager.base_bytes()) if hasattr(manager, "base_bytes") else 0.0
    if sizes is not None and len(sizes):
        top = sizes[:workers]
        batch = float(manager.estimator.gamma * top.sum() + len(top) * manager.estimator.overhead_mb * MB)
        largest = float(sizes[0])
    else:
        largest = 0.0
        batch = float(manager.estimator.estimate_batch_memory([], workers))
    return Recommendation(workers=workers, budget_mb=budget / MB, largest_mb=largest / MB,
                          predicted_peak_mb=(base + batch) / MB, warnings=warnings)


# ------------------------------------------------------------------------------------ panel

class Panel:
    """The control panel: inputs, η/γ/M_overhead sliders, live recommendation, Start/Stop,
    progress, live memory plot, failed/skipped table and a preview of the averaged tables.

    ``Panel(folder)`` builds it; display it (or ``panel.widget``) in a cell. The run is the
    shared :func:`runner.current_run` object, so a run started by ``%oppnda run`` shows here
    and one started here can be stopped by ``%oppnda stop``.
    """

    def __init__(self, folder: str | os.PathLike | None = None, *, pattern: str | None = None,
                 config: str | os.PathLike | None = None, group_by: str | None = None,
                 output: str | os.PathLike | None = None, total_ram_mb: float | None = None,
                 manager_factory: Callable[..., Any] | None = None,
                 run_kwargs: dict | None = None):
        from .resource_manager import ResourceConfig, ResourceManager

        self._manager_factory = manager_factory or ResourceManager
        self.total_ram_mb = total_ram_mb
        self.run_kwargs = dict(run_kwargs or {})
        if folder is None:
            folder = sample_folder()
        style = {"description_width": "90px"}
        wide = W.Layout(width="98%")
        self.folder = W.Text(value=os.fspath(folder), description="folder",
                             placeholder="folder of ONE reports", style=style, layout=wide,
                             continuous_update=True)
        self.pattern = W.Text(value=pattern or "", description="name pattern",
                              placeholder="{scenario_name}_{router}_{seed}_{ttl}_{buffer}_{report_type}"
                              " (empty: ONE's default)", style=style, layout=wide)
        self.config = W.Text(value=os.fspath(config) if config else "", description="config",
                             placeholder="OppNDA averager_config.json (optional)", style=style,
                             layout=wide)
        self.group_by = W.Text(value=group_by or "", description="group by",
                               placeholder="e.g. router,ttl (empty: from the config/pattern)",
                               style=style, layout=wide)
        self.output = W.Text(value=os.fspath(output) if output else "", description="output",
                             placeholder="output folder (empty: default)", style=style, layout=wide)
        self.validation = W.HTML()

        sstyle = {"description_width": "120px"}
        slayout = W.Layout(width="48%")
        self.eta = W.FloatSlider(value=ResourceConfig.ETA, min=0.10, max=0.95, step=0.01,
                                 description="η (RAM use)", readout_format=".2f", style=sstyle,
                                 layout=slayout, continuous_update=True)
        self.gamma = W.FloatSlider(value=ResourceConfig.GAMMA, min=0.5, max=10.0, step=0.1,
                                   description="γ (expansion)", readout_format=".1f",
                                   style=sstyle, layout=slayout)
        self.overhead = W.IntSlider(value=int(ResourceConfig.M_OVERHEAD_MB), min=0, max=500, step=5,
                                    description="M_overhead (MB)", style=sstyle, layout=slayout)
        hi = max(ResourceConfig.MAX_WORKERS, 2 * (os.cpu_count() or 1), 16)
        self.workers_range = W.IntRangeSlider(value=(ResourceConfig.MIN_WORKERS,
                                                     ResourceConfig.MAX_WORKERS),
                                              min=1, max=hi, step=1, description="workers",
                                              style=sstyle, layout=slayout)
        self.safety = W.Checkbox(value=ResourceConfig.SAFETY_ENABLED, description="memory safety",
                                 indent=False, layout=W.Layout(width="150px"),
                                 tooltip="keep the pool within η·M_RAM − M_others")
        self.symbols = W.HTML()
        self.recommendation_label = W.HTML()

        self.start_button = W.Button(description="Start", button_style="primary", icon="play")
        self.stop_button = W.Button(description="Stop", button_style="danger", icon="stop",
                                    disabled=True)
        self.message = W.HTML()
        self.view = RunView()
        self.view.on_done(self._run_done)
        self.outcomes = W.HTML(value="<i>no run yet</i>")
        self.preview = W.HTML(value="<i>no run yet</i>")
        details = W.Tab(children=[self.outcomes, self.preview])
        details.set_title(0, "failed & skipped")
        details.set_title(1, "results preview")
        self.details = details

        self.widget = W.VBox([
            W.HTML("<b>oppnda_nb</b> — memory-aware averaging of ONE reports"),
            self.folder, self.pattern, self.config, self.group_by, self.output, self.validation,
            W.HBox([self.eta, self.gamma]), W.HBox([self.overhead, self.workers_range]),
            W.HBox([self.safety, self.symbols]), self.recommendation_label,
            W.HBox([self.start_button, self.stop_button, self.message]),
            self.view.widget, self.details,
        ], layout=W.Layout(width="100%", max_width="900px"))

        self.scan: FolderScan | None = None
        self.recommendation: Recommendation | None = None
        self.run: Any = None
        self._scan_key: tuple | None = None
        self._scan_seconds = 0.0
        self._scan_timer: threading.Timer | None = None
        for w in (self.folder, self.pattern, self.config):
            w.observe(self._on_inputs, names="value")
        for w in (self.eta, self.gamma, self.overhead, self.workers_range, self.safety):
            w.observe(self._on_slider, names="value")
        self.start_button.on_click(lambda _b: self._click_start())
        self.stop_button.on_click(lambda _b: self.stop())
        _PANELS.add(self)
        self.rescan()
        current = None
        try:
            current = _runner().current_run()
        except Exception:
            pass
        if current is not None:
            self.follow(current)
            if not getattr(current, "running", False):
                self.view.wait(10)  # a finished run: show its final state (and PNG) at once

    # -- inputs ------------------------------------------------------------------------
    def _pattern_value(self) -> str | None:
        return self.pattern.value.strip() or None

    def _config_value(self) -> str | None:
        return self.config.value.strip() or None

    def _on_inputs(self, _change=None) -> None:
        # Small folders are validated on every keystroke; when a scan is slow (thousands of
        # files) it runs once typing pauses, in a timer thread (it only sets widget values).
        if self._scan_seconds < SLOW_SCAN_S:
            self.rescan()
            return
        if self._scan_timer is not None:
            self._scan_timer.cancel()
        self.validation.value = "<i>checking…</i>"
        self._scan_timer = threading.Timer(SCAN_DEBOUNCE_S, self.rescan)
        self._scan_timer.daemon = True
        self._scan_timer.start()

    def rescan(self, force: bool = False) -> FolderScan:
        """Validate the inputs and (re)scan the folder if folder/pattern/config changed."""
        key = (self.folder.value.strip(), self._pattern_value(), self._config_value())
        if force or key != self._scan_key or self.scan is None:
            t0 = time.monotonic()
            self._scan_key = key
            config = self._config_value()
            if config and not Path(config).expanduser().is_file():
                self.scan = FolderScan(folder=key[0], error=f"config file {config!r} not found")
            else:
                self.scan = scan_folder(key[0], config=config, pattern=self._pattern_value())
            self.validation.value = self.scan.describe_html()
            self._scan_seconds = time.monotonic() - t0
        self.update_recommendation()
        return self.scan

    def _on_slider(self, _change=None) -> None:
        self.update_recommendation()

    def manager_kwargs(self) -> dict:
        lo, hi = self.workers_range.value
        kw = dict(eta=float(self.eta.value), gamma=float(self.gamma.value),
                  overhead_mb=float(self.overhead.value), safety_enabled=bool(self.safety.value),
                  min_workers=int(lo), max_workers=int(hi))
        if self.total_ram_mb is not None:
            kw["total_ram_mb"] = float(self.total_ram_mb)
        return kw

    def make_manager(self) -> Any:
        return self._manager_factory(**self.manager_kwargs())

    def update_recommendation(self) -> Recommendation | None:
        """Recompute the live line from the sliders (no file system access)."""
        self.symbols.value = (f"η = {self.eta.value:.2f} · γ = {self.gamma.value:.1f} · "
                              f"M<sub>overhead</sub> = {self.overhead.value} MB · workers ∈ "
                              f"[{self.workers_range.value[0]}, {self.workers_range.value[1]}]"
                              + ("" if self.safety.value else " · <b style='color:#c62828'>"
                                 "safety OFF</b>"))
        try:
            manager = self.make_manager()
            sizes = self.scan.sizes if self.scan is not None and self.scan.ok else None
            rec = recommend(manager, sizes)
        except (ValueError, OppndaError) as exc:
            self.recommendation = None
            self.recommendation_label.value = f"<span style='color:#c62828'>✗ {html.escape(str(exc))}</span>"
            return None
        self.recommendation = rec
        warn = "".join(f"<br><span style='color:#c62828'>⚠ {html.escape(w)}</span>"
                       for w in rec.warnings)
        self.recommendation_label.value = f"<b>{html.escape(rec.text())}</b>{warn}"
        self._sync_buttons()
        return rec

    def _sync_buttons(self) -> None:
        running = self.run is not None and not self.view.done and self.view.status == "running"
        self.start_button.disabled = running or self.scan is None or not self.scan.ok
        self.stop_button.disabled = not running

    # -- running -----------------------------------------------------------------------
    def run_arguments(self) -> dict:
        """The keyword arguments of ``runner.Run`` the current inputs give."""
        group_by = [g.strip() for g in self.group_by.value.split(",") if g.strip()] or None
        kw = dict(config=self._config_value(), pattern=self._pattern_value(), group_by=group_by,
                  output=self.output.value.strip() or None)
        kw.update(self.run_kwargs)
        return kw

    def _click_start(self) -> None:
        try:
            self.start()
        except OppndaError as exc:
            self.message.value = f"<span style='color:#c62828'>{html.escape(str(exc))}</span>"
        except Exception as exc:  # a button handler has nowhere to raise to: show it
            self.message.value = (f"<span style='color:#c62828'>could not start: "
                                  f"{html.escape(type(exc).__name__)}: {html.escape(str(exc))}</span>")

    def start(self) -> Any:
        """Start a run with the current inputs in the background; returns the Run.

        Raises OppndaError when a run is already in progress or the inputs are not valid.
        """
        busy = running_run()
        if busy is not None:
            raise OppndaError("A run is in progress: wait for it or press Stop (or %oppnda stop) first.")
        scan = self.rescan()
        if not scan.ok:
            raise OppndaError(scan.error or "no files to run")
        runner = _runner()
        try:
            manager = self.make_manager()
        except ValueError as exc:
            raise OppndaError(f"bad memory settings: {exc}") from None
        kwargs = self.run_arguments()
        run = runner.Run(scan.folder, manager=manager, **kwargs)
        run.start()
        self.message.value = f"started on {len(scan.files):,} files"
        self.follow(run)
        announce_run(run, source=self)
        return run

    def follow(self, run: Any) -> None:
        """Show ``run`` (running or finished) in this panel."""
        self.run = run
        self.outcomes.value = "<i>running…</i>"
        self.preview.value = "<i>running…</i>"
        self.view.attach(run)
        self._sync_buttons()

    def stop(self) -> None:
        """Cancel the run this panel shows (workers are terminated by the pool)."""
        run = self.run
        if run is not None and self.view.status == "running":
            self.message.value = "stopping…"
            run.stop()

    def _run_done(self, result: Any, error: BaseException | None) -> None:
        if error is not None:
            self.message.value = f"<span style='color:#c62828'>{html.escape(str(error))}</span>"
            self.outcomes.value = f"<span style='color:#c62828'>{html.escape(str(error))}</span>"
            self.preview.value = "<i>no results</i>"
        else:
            status = result_status(result)
            colour = "#2e7d32" if status == "finished" else "#c62828"
            self.message.value = f"<span style='color:{colour}'>run {html.escape(status)}</span>"
            self.outcomes.value = outcomes_html(result)
            self.preview.value = preview_html(result)
        self._sync_buttons()

    def wait(self, timeout: float | None = None, *, display_result: bool = True) -> Any:
        """Block until the shown run ends; then display the final plot as a plain PNG + summary.

        This is what a headless notebook (nbclient/papermill) keeps. Returns the RunResult.
        """
        if self.run is None:
            raise OppndaError("No run to wait for: press Start or call panel.start() first.")
        if not self.view.wait(timeout):
            return None
        if display_result:
            display_final(self.view)
        if self.view.error is not None:
            raise OppndaError(f"The run failed: {self.view.error}")
        return self.view.result

    @property
    def result(self) -> Any:
        return self.view.result

    def close(self) -> None:
        _PANELS.discard(self)
        self.widget.close()

    # -- display -----------------------------------------------------------------------
    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        """The widget; once a run has ended also its final plot as ``image/png`` + summary text."""
        bundle = dict(self.widget._repr_mimebundle_(include=include, exclude=exclude) or {})
        if self.view.done and self.view.final_png is not None:
            bundle["image/png"] = _png_b64(self.view.final_png)
            text = (result_summary(self.view.result) if self.view.error is None
                    else f"run failed: {self.view.error}")
            bundle["text/plain"] = text
        return bundle


def display_final(view: RunView) -> None:
    """Display a finished run's memory plot as a plain image/png, and its summary text."""
    from IPython.display import Image, display

    if view.final_png is not None:
        display(Image(data=view.final_png, format="png"))
    if view.error is not None:
        print(f"run failed: {view.error}")
    elif view.result is not None:
        print(result_summary(view.result))
