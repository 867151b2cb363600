"""A real browser test: JupyterLab in headless Chromium runs a notebook and we watch the widgets live.

The browser tests share the harness in tests/e2e_support.py:
- ``test_harness_widget_demo`` runs a small notebook written here (an IntProgress and an Image updated
  20 times from a background thread, plus a deliberate stderr line and a deliberate exception) to
  prove that the machinery sees live updates AND sees errors, independent of oppnda_nb's panel.
- ``test_quickstart_panel_in_jupyterlab`` runs a copy of notebooks/quickstart.ipynb and checks the
  real panel: it renders, the bar reaches 100%, the memory plot changes at least 3 times, no errors,
  and the memory plot is on the page once (the panel; panel.wait() adds no second picture).
- ``test_tuning_eta_after_run_all``: after Run All of notebooks/tuning.ipynb the kernel's
  ``panel.eta.value`` is exactly 0.75 (the slider must not echo a stale value back).
- ``test_live_run_keeps_up_and_panel_is_compact`` runs ``%oppnda run`` on many copies of the bundled
  sample and a panel on a tiny folder: the plot is redrawn several times while files are processed
  (the rate is printed), the progress line names each phase, each cell shows the memory plot once,
  the progress line and the plot fit on a laptop screen together and the label never wraps.
Screenshots land in test-artifacts/e2e/ (created here, not committed) for a person to look at.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest

import e2e_support as es
from conftest import copy_tiny, sample_copies

QUICKSTART = es.REPO_ROOT / "notebooks" / "quickstart.ipynb"
TUNING = es.REPO_ROOT / "notebooks" / "tuning.ipynb"
#: copies of the bundled sample for the long run (12 x 240 files: several seconds of processing and of
#: averaging on 2 idle cores; longer under the browser's load)
LIVE_COPIES = 12
#: a laptop screen: the panel's progress line and its plot must fit the notebook's view together
LAPTOP = (1366, 768)

DEMO_SETUP = '''\
import io, threading, time
import ipywidgets as W
from matplotlib.figure import Figure
from matplotlib.backends.backend_agg import FigureCanvasAgg

def png(i):
    """One PNG per update, drawn off-screen (Agg), like the panel's memory plot."""
    fig = Figure(figsize=(4, 2.5), dpi=80)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(range(i + 1), [k * k for k in range(i + 1)], color="tab:blue")
    ax.set_title(f"update {i}")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()

bar = W.IntProgress(value=0, min=0, max=20, description="demo")
img = W.Image(value=png(0), format="png")
display(W.VBox([bar, img]))

def work():
    for i in range(1, 21):
        time.sleep(0.25)
        img.value = png(i)
        bar.value = i

threading.Thread(target=work, daemon=True).start()
'''
DEMO_STDERR_MARK = "DemoMarkerError: deliberate stderr line"
DEMO_CELLS = [
    DEMO_SETUP,
    f'import sys\nprint("{DEMO_STDERR_MARK}", file=sys.stderr)',
    '1 / 0  # deliberate: the harness must see error outputs',
]


def _require_e2e() -> None:
    reason = es.e2e_skip_reason()
    if reason:
        pytest.skip(reason)


def _write_demo(path: Path) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in DEMO_CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.mark.e2e
def test_harness_widget_demo(tmp_path: Path) -> None:
    """The harness sees every live widget update, sees errors, saves screenshots and leaves no process."""
    _require_e2e()
    demo = _write_demo(tmp_path / "widget_demo.ipynb")
    obs, leftovers, server = es.run_notebook_in_lab(demo, tmp_path / "lab", artifacts_stem="harness-demo",
                                                    timeout_s=120)
    info = obs.describe() + "\n--- server log tail ---\n" + server.log()[-2000:]
    assert obs.finished, info
    # 21 images are drawn (initial + 20 updates); polling at 50 ms on a busy machine may merge a few.
    assert len(obs.srcs) >= 10, info
    assert all(s.startswith("blob:") for s in obs.srcs), info
    assert obs.max_width == 100.0, info
    assert len(obs.widths) >= 5, info
    # Error detection: the deliberate stderr line and the ZeroDivisionError are seen, nothing else.
    assert any("ZeroDivisionError" in e for e in obs.errors), info
    assert any(DEMO_STDERR_MARK in s for s in obs.stderr), info
    unexpected = [e for e in obs.error_texts if DEMO_STDERR_MARK not in e and "ZeroDivisionError" not in e]
    assert unexpected == [], info
    assert obs.screenshots and all(p.stat().st_size > 1000 for p in obs.screenshots), info
    assert leftovers == [], f"processes still alive after the graceful stop: {leftovers}"
    assert server.proc.poll() is not None


@pytest.mark.e2e
def test_quickstart_panel_in_jupyterlab(tmp_path: Path) -> None:
    """notebooks/quickstart.ipynb in real JupyterLab: panel renders, bar hits 100%, plot updates live.

    The quickstart displays the panel, starts its run and blocks in ``panel.wait()``; the panel's
    memory plot is redrawn from a background thread while the run goes on, and once more when it
    ends. "Changes at least 3 times" counts every new image after the first one shown (the empty
    plot before Start): live redraws while the bar is styled 'info' (running) plus the final one.
    """
    _require_e2e()
    seen: dict = {}

    def after(page, _obs) -> None:
        seen["cells"] = es.cells_state(page)

    obs, leftovers, server = es.run_notebook_in_lab(QUICKSTART, tmp_path / "lab", artifacts_stem="quickstart",
                                                    copy_tree=QUICKSTART.parent, timeout_s=300, after_run=after)
    info = obs.describe() + "\n--- server log tail ---\n" + server.log()[-2000:]
    print(obs.describe())
    assert obs.finished, info
    assert obs.error_texts == [], info
    assert obs.widths, "the panel's progress bar (.widget-hprogress) never rendered\n" + info
    assert obs.srcs, "the panel's memory plot (.widget-image) never rendered\n" + info
    assert obs.max_width == 100.0, info
    assert len(obs.srcs) - 1 >= 3, "the memory plot changed fewer than 3 times during the run\n" + info
    assert obs.live_srcs, "no memory plot was drawn while the run was in progress (bar 'info')\n" + info
    assert any("progress-bar-success" in c for c in obs.bar_classes), "the run did not end as finished\n" + info
    # the memory plot once: the panel's widget (panel.wait() updates it in place, adds no picture);
    # %oppnda plot shows the analysis plot as a plain image
    cells = seen["cells"]
    shown, waited = es.find_cell(cells, "panel.show()"), es.find_cell(cells, "panel.wait()")
    images = sum(c["images"] for c in cells[shown:waited + 1])
    assert images == 1 and len(cells[shown]["widget_srcs"]) == 1, [
        (c["source"][:30], c["images"], c["static_images"]) for c in cells[shown:waited + 1]]
    plotted = cells[es.find_cell(cells, "%oppnda plot")]
    assert plotted["static_images"] == 1 and plotted["images"] == 1, plotted
    assert any(p.name == "quickstart-panel.png" for p in obs.screenshots), info
    assert leftovers == [], f"processes still alive after the graceful stop: {leftovers}"


@pytest.mark.e2e
def test_tuning_eta_after_run_all(tmp_path: Path) -> None:
    """Run All of tuning.ipynb sets η to 0.3, 0.75, 0.95 and back to 0.75 from code: the kernel keeps 0.75.

    A browser slider with continuous updates sends back every value it was given, rounded to its
    step grid, after the cell (0.3 returned as 0.30000000000000004): the last value set from code
    must be the one the kernel keeps.
    """
    _require_e2e()
    seen: dict = {}

    def after(page, _obs) -> None:
        time.sleep(1.0)  # give any echo from the browser time to reach the kernel
        seen["eta"] = es.kernel_eval(page, "print(repr(panel.eta.value), repr(panel.plan.text()))")

    obs, leftovers, server = es.run_notebook_in_lab(TUNING, tmp_path / "lab", artifacts_stem="tuning",
                                                    copy_tree=TUNING.parent, timeout_s=400, after_run=after)
    info = obs.describe() + "\n--- server log tail ---\n" + server.log()[-2000:]
    print(f"tuning: panel.eta.value after Run All: {seen.get('eta')!r}")
    assert obs.finished, info
    assert obs.error_texts == [], info
    assert seen["eta"].split(" ", 1)[0] == "0.75", seen["eta"]
    assert leftovers == [], f"processes still alive after the graceful stop: {leftovers}"


def _phase(label: str | None) -> str | None:
    """The phase a progress label names: its first word ("processing…" before the first progress)."""
    return label.split()[0].rstrip("…") if label and label.strip() else None


@pytest.mark.e2e
def test_live_run_keeps_up_and_panel_is_compact(tmp_path: Path) -> None:
    """A long ``%oppnda run`` redraws its plot several times while files are processed and names its
    phases; ``%oppnda run`` and a panel with ``panel.wait()`` each show the memory plot once; the
    progress line and the plot fit together on a laptop screen and the label never wraps."""
    _require_e2e()
    big = sample_copies(tmp_path / "many", LIVE_COPIES)
    tiny = copy_tiny(tmp_path / "tiny")
    cells = [
        "%load_ext oppnda_nb",
        f"%oppnda run {big} --output {tmp_path / 'out-many'} --name big",
        f"from oppnda_nb.panel import Panel\n\npanel = Panel({str(tiny)!r}, output={str(tmp_path / 'out-tiny')!r})\n"
        "panel.show();",
        "panel.start();",
        "result = panel.wait()\nprint(result.summary().splitlines()[0])",
    ]
    nb_path = _write_notebook(tmp_path / "live.ipynb", cells)
    polls: list[tuple[float, str | None, str | None, float]] = []  # (time, src, label, label height/line)
    shots: dict = {}

    def on_poll(page, _state) -> None:
        state = es.cells_state(page)
        if len(state) < 2:
            return
        run = state[1]
        src = run["widget_srcs"][0] if run["widget_srcs"] else None
        ratio = (run["label_box"]["height"] / run["line_height"]) if run["label_box"] and run["line_height"] else 0.0
        polls.append((time.monotonic(), src, run["label"], ratio))
        processing = [p for p in polls if _phase(p[2]) == "processing"]
        if "processing" not in shots and len({p[1] for p in processing}) >= 4:
            es.ARTIFACTS_DIR.joinpath("e2e").mkdir(parents=True, exist_ok=True)
            path = es.ARTIFACTS_DIR / "e2e" / "live-run-processing.png"
            page.locator(f"{es.VISIBLE_NB} .jp-Notebook .jp-Cell").nth(1).screenshot(path=str(path))
            shots["processing"] = path

    def after(page, _obs) -> None:
        shots["cells"] = es.cells_state(page)
        for i, stem in ((1, "live-run-done"), (2, "live-panel-done")):
            path = es.ARTIFACTS_DIR / "e2e" / f"{stem}.png"
            page.locator(f"{es.VISIBLE_NB} .jp-Notebook .jp-Cell").nth(i).screenshot(path=str(path))
            shots[stem] = path

    obs, leftovers, server = es.run_notebook_in_lab(nb_path, tmp_path / "lab", artifacts_stem="live",
                                                    timeout_s=400, viewport=LAPTOP, on_poll=on_poll,
                                                    after_run=after)
    info = obs.describe() + "\n--- server log tail ---\n" + server.log()[-2000:]
    assert obs.finished, info
    assert obs.error_texts == [], info

    # (4) the plot keeps up: redraws first seen while the label said "processing"
    phases: list[str] = []
    for _t, _src, label, _r in polls:
        ph = _phase(label)
        if ph and (not phases or phases[-1] != ph):
            phases.append(ph)
    processing = [p for p in polls if _phase(p[2]) == "processing"]
    assert processing, f"the progress line never said 'processing': phases {phases}"
    first_src = polls[0][1] if polls else None
    new_srcs: list[str] = []
    for _t, src, label, _r in processing:
        if src and src != first_src and src not in new_srcs:
            new_srcs.append(src)
    seconds = processing[-1][0] - processing[0][0]
    rate = len(new_srcs) / seconds if seconds > 0 else float("nan")
    print(f"live run of {LIVE_COPIES * 240} files: {len(new_srcs)} redraws in {seconds:.1f} s of processing "
          f"= {rate:.2f} redraws/s (goal >= 2); phases seen {phases}")
    assert len(new_srcs) >= 4, f"only {len(new_srcs)} redraws while processing ({seconds:.1f} s)"
    # the progress line names the phases in order: processing -> averaging -> finished
    assert [p for p in phases if p in ("processing", "averaging", "finished")] == \
        ["processing", "averaging", "finished"], phases
    # (5) the label stays one line all along
    worst = max(r for *_x, r in polls)
    assert 0 < worst < 1.5, f"the progress label wrapped: its height was {worst:.2f} lines"

    final = shots["cells"]
    # (2) the memory plot once per run: %oppnda run's cell, and the panel + start + wait cells
    assert final[1]["images"] == 1 and len(final[1]["widget_srcs"]) == 1, final[1]
    panel_images = sum(c["images"] for c in final[2:5])
    assert panel_images == 1 and len(final[2]["widget_srcs"]) == 1, [(c["images"], c["static_images"]) for c in final]
    assert "finished" in (final[2]["label"] or ""), final[2]["label"]
    # the panel's buttons stay in its row (a long label ends in "…") and show the run as over
    buttons = {b["text"]: b for b in final[2]["buttons"]}
    assert set(buttons) == {"Start", "Stop"}, final[2]["buttons"]
    assert all(b["width"] > 0 and b["right"] <= final[2]["row_right"] + 1 for b in buttons.values()), \
        (final[2]["buttons"], final[2]["row_right"])
    assert not buttons["Start"]["disabled"] and buttons["Stop"]["disabled"], final[2]["buttons"]
    # (5) compact: progress line and plot visible at once on a laptop screen, the label one line
    for i in (1, 2):
        c = final[i]
        span = c["image_box"]["bottom"] - c["row_box"]["top"]
        print(f"cell {i}: panel {c['panel_box']['height']:.0f} px high, progress line to plot bottom {span:.0f} px, "
              f"notebook view {c['view_height']:.0f} px, label {c['label_box']['height']:.0f} px "
              f"(line {c['line_height']:.0f} px)")
        assert span <= c["view_height"], f"cell {i}: progress line and plot span {span:.0f} px > view {c['view_height']:.0f}"
        assert c["label_box"]["height"] < 1.5 * c["line_height"], f"cell {i}: the label wraps: {c['label_box']}"
    assert shots.get("processing"), "no screenshot while processing (fewer than 4 redraws seen)"
    assert leftovers == [], f"processes still alive after the graceful stop: {leftovers}"


def _write_notebook(path: Path, sources: list[str]) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in sources]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_skip_reason_names_missing_chromium(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without Chromium the e2e tests skip with a reason that says what to install."""
    if es.importlib.util.find_spec("playwright") is None:
        pytest.skip("playwright missing: the Chromium reason is not reached")
    monkeypatch.setattr(es, "CHROMIUM", str(tmp_path / "no-chromium"))
    reason = es.e2e_skip_reason()
    assert reason is not None and "Chromium not found" in reason and "apt-get install -y chromium" in reason


def test_skip_reason_names_missing_playwright(monkeypatch: pytest.MonkeyPatch) -> None:
    real = es.importlib.util.find_spec
    monkeypatch.setattr(es.importlib.util, "find_spec",
                        lambda name, *a: None if name == "playwright" else real(name, *a))
    reason = es.e2e_skip_reason()
    assert reason is not None and "playwright" in reason and "not installed" in reason
