"""A real browser test: JupyterLab in headless Chromium runs a notebook and we watch the widgets live.

Two browser tests share the harness in tests/e2e_support.py:
- ``test_harness_widget_demo`` runs a small notebook written here (an IntProgress and an Image updated
  20 times from a background thread, plus a deliberate stderr line and a deliberate exception) to
  prove that the machinery sees live updates AND sees errors, independent of oppnda_nb's panel.
- ``test_quickstart_panel_in_jupyterlab`` runs a copy of notebooks/quickstart.ipynb and checks the
  real panel: it renders, the bar reaches 100%, the memory plot changes at least 3 times, no errors.
Screenshots land in test-artifacts/e2e/ for a person to look at.
"""
from __future__ import annotations

from pathlib import Path

import pytest

import e2e_support as es

QUICKSTART = es.REPO_ROOT / "notebooks" / "quickstart.ipynb"

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
    obs, leftovers, server = es.run_notebook_in_lab(QUICKSTART, tmp_path / "lab", artifacts_stem="quickstart",
                                                    copy_tree=QUICKSTART.parent, timeout_s=300)
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
    # panel.wait() leaves the final memory plot as a plain image/png, %oppnda plot the analysis plot
    assert obs.static_images >= 2, info
    assert any(p.name == "quickstart-panel.png" for p in obs.screenshots), info
    assert leftovers == [], f"processes still alive after the graceful stop: {leftovers}"


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
