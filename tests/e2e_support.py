"""Helpers for the browser tests: start/stop an isolated JupyterLab, drive it with Playwright.

Why a module of its own: tests/test_e2e.py drives both a small self-made widget notebook (proves the
harness) and the real quickstart with the same machinery. What is known to work on these machines is
written down in shared/docs/E2E.md; the choices here follow it (loopback + token, private HOME and
Jupyter/IPython/matplotlib dirs, a fresh workspace per test, run-all through ``window.jupyterapp``
without awaiting it, polling the widget image every 50 ms).

Nothing here imports Playwright at module level, so the module imports (and tests skip cleanly)
where Playwright is not installed.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

REPO_ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS_DIR = REPO_ROOT / "test-artifacts"
CHROMIUM = os.environ.get("OPPNDA_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # we run as root
    "--disable-gpu",
    "--disable-background-networking",  # else it keeps trying hosts this network refuses
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VISIBLE_NB = ".jp-NotebookPanel:not(.lm-mod-hidden)"
# ipywidgets 8 renders Image as an <img class="widget-image">; older layouts wrap it: accept both.
IMAGE_SEL = f"{VISIBLE_NB} img.widget-image, {VISIBLE_NB} .widget-image img"
PROGRESS_SEL = f"{VISIBLE_NB} .widget-hprogress"
ERROR_WORDS = re.compile(r"Traceback|\b\w*Error\b")


def e2e_skip_reason() -> str | None:
    """Why a browser test cannot run here (None when it can). The text is shown in `pytest -ra`."""
    def missing(mod: str) -> bool:
        try:
            return importlib.util.find_spec(mod) is None
        except (ImportError, ValueError):
            return True

    if missing("playwright"):
        return "e2e: Python package 'playwright' is not installed (pip install playwright)"
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return (f"e2e: Chromium not found at {CHROMIUM} "
                "(install it: apt-get update && apt-get install -y chromium)")
    if missing("jupyterlab"):
        return "e2e: JupyterLab is not installed (pip install jupyterlab)"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LabServer:
    """A JupyterLab process we started; ``stop()`` ends it (and its kernels) by PID."""

    proc: subprocess.Popen
    port: int
    token: str
    root_dir: Path
    state_dir: Path
    log_path: Path
    started_s: float = 0.0
    children_seen: set[int] = field(default_factory=set)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str, *, reset: bool = False) -> str:
        q = f"token={self.token}" + ("&reset" if reset else "")
        return f"{self.base_url}{path}?{q}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def remember_children(self) -> None:
        """Record the PIDs of the server's descendants (kernels, pool workers) for the leftover check."""
        try:
            import psutil
            self.children_seen |= {c.pid for c in psutil.Process(self.proc.pid).children(recursive=True)}
        except Exception:
            pass

    def stop(self, timeout: float = 20.0) -> list[int]:
        """SIGTERM the server (it shuts its kernels down), then kill what is left by PID.

        Returns the PIDs that were still alive after the graceful stop (and were then killed).
        """
        import psutil

        self.remember_children()
        leftovers: list[int] = []
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                leftovers.append(self.proc.pid)
                self.proc.kill()
                self.proc.wait(timeout=10)
        deadline = time.monotonic() + 5
        for pid in sorted(self.children_seen):
            try:
                p = psutil.Process(pid)
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except psutil.NoSuchProcess:
                continue
            except psutil.TimeoutExpired:
                leftovers.append(pid)
                try:
                    p.kill()
                except psutil.NoSuchProcess:
                    pass
        return leftovers


def isolated_env(state: Path, extra_env: dict[str, str] | None = None) -> dict[str, str]:
    """Environment with its own HOME and config dirs, so a developer's settings never leak in.

    JUPYTER_DATA_DIR only replaces the *user* data dir; the environment's share/jupyter (where
    ipywidgets' lab extension and the python3 kernelspec live) stays on the path.
    """
    dirs = {
        "HOME": state / "home",
        "JUPYTER_CONFIG_DIR": state / "jupyter-config",
        "JUPYTER_DATA_DIR": state / "jupyter-data",
        "JUPYTER_RUNTIME_DIR": state / "jupyter-runtime",
        "JUPYTERLAB_SETTINGS_DIR": state / "lab-settings",
        "JUPYTERLAB_WORKSPACES_DIR": state / "lab-workspaces",
        "IPYTHONDIR": state / "ipython",
        "MPLCONFIGDIR": state / "mpl",
    }
    env = dict(os.environ)
    for k in ("JUPYTER_PATH", "JUPYTER_CONFIG_PATH", "JUPYTER_PREFER_ENV_PATH", "JUPYTER_TOKEN",
              "PYTHONSTARTUP", "MPLBACKEND"):
        env.pop(k, None)
    for k, d in dirs.items():
        d.mkdir(parents=True, exist_ok=True)
        env[k] = str(d)
    # The kernel imports the oppnda_nb of this checkout (CI clones elsewhere than the editable install).
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    # No news/update prompts: this network refuses those hosts and the toast covers the page.
    ns = dirs["JUPYTERLAB_SETTINGS_DIR"] / "@jupyterlab" / "apputils-extension"
    ns.mkdir(parents=True, exist_ok=True)
    (ns / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    nbs = dirs["JUPYTERLAB_SETTINGS_DIR"] / "@jupyterlab" / "notebook-extension"
    nbs.mkdir(parents=True, exist_ok=True)
    (nbs / "tracker.jupyterlab-settings").write_text(json.dumps(
        # every cell in the DOM (no windowing), so prompts and widgets of off-screen cells are seen
        {"autoStartDefaultKernel": True, "windowingMode": "none"}))
    env.update(extra_env or {})
    return env


def start_lab(root_dir: Path, state_dir: Path, *, timeout: float = 90.0,
              extra_env: dict[str, str] | None = None) -> LabServer:
    """Start JupyterLab serving ``root_dir`` on 127.0.0.1 with a random token; wait for /api/status."""
    state_dir.mkdir(parents=True, exist_ok=True)
    env = isolated_env(state_dir, extra_env)
    token = secrets.token_hex(16)
    last_err = ""
    for _attempt in range(3):  # a free port can be taken between probing and binding: retry
        port = _free_port()
        log_path = state_dir / f"jupyterlab-{port}.log"
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
               "--ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0",
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root_dir}",
               "--LabApp.expose_app_in_browser=True",
               "--ServerApp.terminals_enabled=False"]
        t0 = time.monotonic()
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, cwd=root_dir, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        server = LabServer(proc, port, token, root_dir, state_dir, log_path)
        deadline = t0 + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"{server.base_url}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200:
                        server.started_s = time.monotonic() - t0
                        return server
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.25)
        last_err = server.log()[-3000:]
        server.stop()
    raise RuntimeError(f"JupyterLab did not answer /api/status within {timeout:.0f} s. Log tail:\n{last_err}")


def launch_chromium(playwright: Any) -> Any:
    """Headless Debian Chromium through Playwright (Playwright's own browser download fails here)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


def dismiss_toasts(page: Any) -> None:
    """Close the first-load 'get notified about Jupyter news?' toast if it shows anyway."""
    for name in ("No", "Dismiss"):
        btn = page.locator(".jp-toast-button, .Toastify__toast button").filter(has_text=re.compile(f"^{name}$"))
        try:
            if btn.count():
                btn.first.click(timeout=1000)
        except Exception:
            pass


def open_notebook(page: Any, server: LabServer, nb_relpath: str, workspace: str, *,
                  timeout_ms: int = 90_000) -> None:
    """Open ``nb_relpath`` (relative to the server root) in a fresh workspace and wait for an idle kernel."""
    page.goto(server.url(f"/lab/workspaces/{workspace}/tree/{nb_relpath}", reset=True))
    page.wait_for_function("() => !!window.jupyterapp", timeout=timeout_ms)
    page.wait_for_selector(f"{VISIBLE_NB} .jp-Notebook .jp-Cell", timeout=timeout_ms)
    deadline = time.monotonic() + timeout_ms / 1000
    status = None
    while time.monotonic() < deadline:
        # JupyterLab may still ask which kernel to use although the notebook names python3: accept.
        dialog = page.locator(".jp-Dialog").filter(has_text="Select Kernel")
        if dialog.count():
            dialog.locator(".jp-mod-accept").first.click(timeout=5000)
        status = page.evaluate(JS_KERNEL_STATUS)
        if status == "idle":
            break
        time.sleep(0.2)
    else:
        raise TimeoutError(f"the notebook's kernel never became idle (last status {status!r})")
    dismiss_toasts(page)


JS_KERNEL_STATUS = """
() => {
  try {
    const w = window.jupyterapp.shell.currentWidget;
    const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
    return k ? k.status + (w.sessionContext.isReady ? '' : '-not-ready') : 'no-kernel';
  } catch (err) { return 'error: ' + err; }
}
"""


def run_all_cells(page: Any) -> None:
    """Start 'Run All Cells' without waiting for it (a returned promise would block until the end)."""
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")


JS_STATE = """
() => {
  const nb = document.querySelector('%(nb)s');
  const q = (s) => nb ? Array.from(nb.querySelectorAll(s)) : [];
  const img = q('img.widget-image, .widget-image img')[0];
  const bar = q('.widget-hprogress .progress-bar')[0];
  const prompts = q('.jp-CodeCell .jp-InputArea-prompt').map(e => e.textContent.trim());
  const ind = document.querySelector('.jp-Notebook-ExecutionIndicator');
  return {
    src: img ? img.getAttribute('src') : null,
    width: bar ? bar.style.width : null,
    bar_class: bar ? bar.className : null,
    prompts: prompts,
    kernel: ind ? ind.getAttribute('data-status') : null,
    progress_present: q('.widget-hprogress').length > 0,
    static_images: q('.jp-RenderedImage img').length,
  };
}
""" % {"nb": VISIBLE_NB}

JS_ERRORS = """
() => {
  const nb = document.querySelector('%(nb)s');
  const out = {stderr: [], errors: []};
  if (!nb) return out;
  for (const e of nb.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'))
    out.stderr.push(e.innerText);
  try {
    const w = window.jupyterapp.shell.currentWidget;
    const cells = w.content.model.cells;
    for (let i = 0; i < cells.length; i++) {
      const c = cells.get(i);
      if (!c.outputs) continue;
      for (const o of c.outputs.toJSON())
        if (o.output_type === 'error') out.errors.push(i + ': ' + o.ename + ': ' + o.evalue);
    }
  } catch (err) { out.errors.push('could not read the notebook model: ' + err); }
  return out;
}
""" % {"nb": VISIBLE_NB}


JS_CELLS = """
() => {
  const nb = document.querySelector('%(nb)s');
  const cells = nb ? Array.from(nb.querySelectorAll('.jp-Notebook .jp-Cell')) : [];
  const box = (e) => { if (!e) return null; const r = e.getBoundingClientRect();
                       return {top: r.top, bottom: r.bottom, height: r.height, width: r.width}; };
  const scroller = nb && (nb.querySelector('.jp-WindowedPanel-outer') || nb.querySelector('.jp-Notebook'));
  return cells.map((cell) => {
    const ed = cell.querySelector('.jp-InputArea-editor');
    const out = cell.querySelector('.jp-OutputArea');
    const q = (sel) => out ? Array.from(out.querySelectorAll(sel)) : [];
    const widgetImgs = q('img.widget-image, .widget-image img');
    const row = q('.widget-hbox').find((b) => b.querySelector(':scope > .widget-hprogress'));
    const labelBox = row ? row.querySelector(':scope > .widget-html') : null;
    const label = labelBox ? (labelBox.querySelector('.widget-html-content > div')
                              || labelBox.querySelector('.widget-html-content')) : null;
    let lineHeight = null;
    if (label) {
      const cs = getComputedStyle(label);
      lineHeight = parseFloat(cs.lineHeight) || 1.2 * parseFloat(cs.fontSize);
    }
    const bar = row ? row.querySelector('.progress-bar') : null;
    const panel = row ? row.closest('.jp-OutputArea-output') : null;
    const buttons = row ? Array.from(row.querySelectorAll(':scope > button')).map((b) => {
      const r = b.getBoundingClientRect();
      return {text: b.textContent.trim(), disabled: b.disabled, left: r.left, right: r.right, width: r.width};
    }) : [];
    return {
      source: ed ? ed.innerText : '',
      widget_srcs: widgetImgs.map((i) => i.getAttribute('src')),
      static_images: q('.jp-RenderedImage img').length,
      images: q('img').length,
      label: label ? label.textContent : null,
      label_box: box(label), line_height: lineHeight,
      bar_class: bar ? bar.className : null,
      row_box: box(row), image_box: box(widgetImgs[0]), panel_box: box(panel), buttons: buttons,
      row_right: row ? row.getBoundingClientRect().right : null,
      view_height: scroller ? scroller.getBoundingClientRect().height : window.innerHeight,
    };
  });
}
""" % {"nb": VISIBLE_NB}


def cells_state(page: Any) -> list[dict]:
    """Per cell of the visible notebook: its source, widget image srcs, image counts, the progress
    label (text, box, line height), the bar's class and the boxes of the progress row, plot and panel."""
    return page.evaluate(JS_CELLS)


def find_cell(cells: list[dict], text: str) -> int:
    """Index of the first cell whose source contains ``text``."""
    for i, c in enumerate(cells):
        if text in (c.get("source") or ""):
            return i
    raise LookupError(f"no cell with {text!r} in its source")


JS_KERNEL_EXEC = """
async (code) => {
  const k = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
  const future = k.requestExecute({code: code, store_history: false, silent: false});
  let out = '';
  future.onIOPub = (msg) => {
    const t = msg.header.msg_type;
    if (t === 'stream') out += msg.content.text;
    else if (t === 'error') out += 'ERROR ' + msg.content.ename + ': ' + msg.content.evalue + '\\n';
  };
  await future.done;
  return out;
}
"""


def kernel_eval(page: Any, code: str) -> str:
    """Run ``code`` in the notebook's own kernel (beside the notebook, no new cell) and return what it printed."""
    return page.evaluate(JS_KERNEL_EXEC, code)


def _width_pct(width: str | None) -> float | None:
    if not width:
        return None
    m = re.match(r"\s*([0-9.]+)%", width)
    return float(m.group(1)) if m else None


@dataclass
class RunObservation:
    """What the browser saw while a notebook ran: distinct image srcs, progress widths, errors."""

    srcs: list[str] = field(default_factory=list)         # distinct, in order of appearance
    # srcs (not the first one shown) first seen while the bar was styled 'info' (ipywidgets'
    # progress-bar-info): redraws while the run was live; RunView switches the bar to
    # 'success'/'danger' only when the run has ended.
    live_srcs: list[str] = field(default_factory=list)
    bar_classes: list[str] = field(default_factory=list)  # distinct bar classes, in order
    widths: list[float] = field(default_factory=list)     # distinct progress widths (percent)
    polls: int = 0
    finished: bool = False
    seconds: float = 0.0
    prompts: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    screenshots: list[Path] = field(default_factory=list)
    static_images: int = 0  # plain image/png outputs (not widgets) on the page at the end
    timings: dict[str, float] = field(default_factory=dict)  # lab_start, page_ready, run (seconds)

    @property
    def max_width(self) -> float:
        return max(self.widths, default=0.0)

    @property
    def error_texts(self) -> list[str]:
        """Error outputs plus stderr outputs that look like a traceback or an *Error."""
        return self.errors + [s for s in self.stderr if ERROR_WORDS.search(s)]

    def describe(self) -> str:
        return (f"{len(self.srcs)} distinct images ({len(self.live_srcs)} while the bar was live), "
                f"bar classes {self.bar_classes}, progress widths {self.widths}, polls={self.polls}, "
                f"static images={self.static_images}, finished={self.finished}, timings={self.timings}, "
                f"prompts={self.prompts}, errors={self.error_texts}")


def _cells_done(state: dict) -> bool:
    prompts = state.get("prompts") or []
    return bool(prompts) and all(re.fullmatch(r"\[\d+\]:", p) for p in prompts) and state.get("kernel") == "idle"


def watch_run(page: Any, *, timeout_s: float = 300.0, interval_s: float = 0.05,
              settle_s: float = 1.0, on_poll: Callable[[dict], None] | None = None) -> RunObservation:
    """Poll the visible notebook every ``interval_s`` until every cell ran and the bar stopped moving.

    Finished = all code cells show an execution count, the kernel is idle, and nothing changed for
    ``settle_s`` after the cells were done (``3 * settle_s`` when the first progress bar is not full).
    """
    obs = RunObservation()
    t0 = time.monotonic()
    done_since: float | None = None
    last_change = t0
    while time.monotonic() - t0 < timeout_s:
        state = page.evaluate(JS_STATE)
        obs.polls += 1
        if on_poll:
            on_poll(state)
        src = state.get("src")
        bar_class = state.get("bar_class") or ""
        if bar_class not in obs.bar_classes:
            obs.bar_classes.append(bar_class)
        if src and (not obs.srcs or obs.srcs[-1] != src) and src not in obs.srcs:
            obs.srcs.append(src)
            if len(obs.srcs) > 1 and "progress-bar-info" in bar_class.split():
                obs.live_srcs.append(src)
            last_change = time.monotonic()
        w = _width_pct(state.get("width"))
        if w is not None and w not in obs.widths:
            obs.widths.append(w)
            last_change = time.monotonic()
        if _cells_done(state):
            done_since = done_since or time.monotonic()
            bar_full = not state.get("progress_present") or (w is not None and w >= 100.0)
            # a bar that never runs (a panel nobody started) must not hold the wait: longer quiet then
            quiet = time.monotonic() - max(last_change, done_since) >= (settle_s if bar_full else 3 * settle_s)
            if quiet:
                obs.finished = True
                break
        else:
            done_since = None
        time.sleep(interval_s)
    obs.seconds = time.monotonic() - t0
    final = page.evaluate(JS_STATE)
    obs.prompts = final.get("prompts", [])
    obs.static_images = int(final.get("static_images") or 0)
    errs = page.evaluate(JS_ERRORS)
    obs.stderr, obs.errors = errs.get("stderr", []), errs.get("errors", [])
    return obs


def screenshot_widgets(page: Any, out_dir: Path, stem: str) -> list[Path]:
    """Save the output area holding the progress bar (the panel) and the whole page as PNGs."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    panel = page.locator(f"{VISIBLE_NB} .jp-OutputArea-output").filter(has=page.locator(".widget-hprogress"))
    if panel.count():
        panel.first.scroll_into_view_if_needed()
        p = out_dir / f"{stem}-panel.png"
        panel.first.screenshot(path=str(p))
        paths.append(p)
    p = out_dir / f"{stem}-page.png"
    page.screenshot(path=str(p), full_page=True)
    paths.append(p)
    return paths


def run_notebook_in_lab(nb_source: Path, tmp_path: Path, *, artifacts_stem: str, nb_relpath: str | None = None,
                        copy_tree: Path | None = None, timeout_s: float = 300.0,
                        extra_env: dict[str, str] | None = None, viewport: tuple[int, int] = (1400, 1500),
                        on_poll: Callable[[Any, dict], None] | None = None,
                        after_run: Callable[[Any, RunObservation], None] | None = None,
                        ) -> tuple[RunObservation, list[int], LabServer]:
    """The whole browser run: copy, start Lab, open in a fresh workspace, run all, watch, screenshot, stop.

    ``copy_tree`` (a folder) is copied whole into the server root so relative paths in the notebook
    work; otherwise only ``nb_source`` is copied. ``on_poll(page, state)`` is called on every poll
    while the notebook runs (for measurements of one cell), ``after_run(page, obs)`` once every
    cell has run, before the screenshots and while the kernel is still alive (to ask it things
    with :func:`kernel_eval`, to measure the layout). Returns (observation, leftover PIDs, server).
    """
    from playwright.sync_api import sync_playwright

    root = tmp_path / "root"
    root.mkdir(parents=True)
    if copy_tree is not None:
        shutil.copytree(copy_tree, root / copy_tree.name)
        rel = nb_relpath or f"{copy_tree.name}/{nb_source.name}"
    else:
        shutil.copy2(nb_source, root / nb_source.name)
        rel = nb_relpath or nb_source.name
    server = start_lab(root, tmp_path / "state", extra_env=extra_env)
    leftovers: list[int] = []
    obs = RunObservation()
    try:
        with sync_playwright() as pw:
            browser = launch_chromium(pw)
            try:
                page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
                t0 = time.monotonic()
                open_notebook(page, server, rel, workspace=f"t{secrets.token_hex(4)}")
                page_ready = time.monotonic() - t0
                run_all_cells(page)
                last = [0.0]

                def remember(state: dict) -> None:  # kernels and pool workers, for the leftover check
                    if time.monotonic() - last[0] > 1.0:
                        last[0] = time.monotonic()
                        server.remember_children()
                    if on_poll is not None:
                        on_poll(page, state)

                obs = watch_run(page, timeout_s=timeout_s, on_poll=remember)
                obs.timings = {"lab_start": round(server.started_s, 1), "page_ready": round(page_ready, 1),
                               "run": round(obs.seconds, 1)}
                server.remember_children()
                if after_run is not None:
                    after_run(page, obs)
                obs.screenshots = screenshot_widgets(page, ARTIFACTS_DIR / "e2e", artifacts_stem)
            finally:
                browser.close()
    finally:
        leftovers = server.stop()
    return obs, leftovers, server


# ---------------------------------------------------------------- headless execution (nbclient)

def execute_notebook(path: Path, *, env: dict[str, str], kernel_name: str = "python3",
                     timeout: int = 300) -> Any:
    """Execute ``path`` in place with nbclient (cwd = its folder) and return the executed notebook.

    Errors in cells do not raise (``allow_errors``): the caller lists them with ``notebook_problems``
    so one run reports every failing cell.
    """
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, kernel_name=kernel_name, timeout=timeout, allow_errors=True,
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute(env=env, cwd=str(path.parent))
    nbformat.write(nb, path)
    return nb


def notebook_problems(nb: Any) -> list[str]:
    """Error outputs and stderr streams that look like a traceback or an *Error, per cell."""
    problems = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                problems.append(f"cell {i}: {out.get('ename')}: {out.get('evalue')}")
            elif out.get("output_type") == "stream" and out.get("name") == "stderr":
                text = "".join(out.get("text", ""))
                if ERROR_WORDS.search(text):
                    problems.append(f"cell {i} stderr: {text[:500]}")
    return problems


def notebook_text(nb: Any) -> str:
    """All text a reader sees in the outputs (streams, text/plain, text/html, text/markdown)."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                parts.append("".join(out.get("text", "")))
            for mime in ("text/plain", "text/html", "text/markdown"):
                v = out.get("data", {}).get(mime)
                if v:
                    parts.append("".join(v))
    return "\n".join(parts)


def has_png_output(nb: Any) -> bool:
    return any("image/png" in out.get("data", {}) for cell in nb.cells for out in cell.get("outputs", []))
