"""The control panel with the real job on tiny folders (widget state, no browser)."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import SAMPLE, analysis_config, many_folder

from oppnda_nb import figures, job, options, panel as panel_mod, plots, pool
from oppnda_nb.errors import OppndaError
from oppnda_nb.resource_manager import ResourceManager
from oppnda_nb.system import MB


def test_the_recommendation_is_job_plan_of_the_folder(tiny_folder):
    p = panel_mod.Panel(tiny_folder, settings={"total_ram_mb": 8000})
    expected = job.plan_folder(tiny_folder, ResourceManager(total_ram_mb=8000, min_workers=1, max_workers=16))
    assert p.plan.files == expected.files and p.plan.workers == expected.workers
    assert p.accordion.get_title(0) == f"settings · {p.plan.text()}"
    assert "24 files" in p.validation.value
    assert p.accordion.selected_index is None  # settings collapsed: progress + plot visible at once


def test_slider_moves_replan_without_touching_the_disk(tiny_folder, monkeypatch):
    p = panel_mod.Panel(tiny_folder, settings={"total_ram_mb": 4000})
    before = p.plan.budget_bytes

    def no_disk(*a, **k):
        raise AssertionError("a slider move touched the disk")

    monkeypatch.setattr(job, "plan_folder", no_disk)
    monkeypatch.setattr(os, "stat", no_disk)
    p.eta.value = 0.3
    assert p.plan.budget_bytes < before


def test_several_values_in_one_cell_leave_the_last(tiny_folder):
    p = panel_mod.Panel(tiny_folder, settings={"total_ram_mb": 4000})
    for v in (0.9, 0.2, 0.5):
        p.eta.value = v
    p.workers_range.value = (1, 3)
    p.workers_range.value = (1, 1)
    assert p.option_values()["eta"] == 0.5
    fresh = job.plan(p.plan.files, ResourceManager(eta=0.5, total_ram_mb=4000, min_workers=1, max_workers=1))
    assert p.plan.budget_bytes == pytest.approx(fresh.budget_bytes, rel=0.02) and p.plan.workers == 1


def test_gamma_by_hand_overrides_the_per_type_model(tiny_folder):
    p = panel_mod.Panel(tiny_folder)
    assert p.gamma.disabled and p.option_values()["gamma"] is None
    p.by_hand.value = True
    p.gamma.value = 15.0
    assert not p.gamma.disabled and p.option_values()["gamma"] == 15.0
    p2 = panel_mod.Panel(tiny_folder, settings={"gamma": 5.0})  # from %oppnda panel --gamma 5
    assert p2.by_hand.value and p2.gamma.value == 5.0


def test_bad_inputs_are_shown_and_block_start(tmp_path):
    p = panel_mod.Panel(tmp_path / "missing")
    assert "Input folder not found" in p.validation.value and p.start_button.disabled
    with pytest.raises(OppndaError):
        p.start()
    (tmp_path / "empty").mkdir()
    p.folder.value = str(tmp_path / "empty")
    assert "no matching report files" in p.validation.value


def test_start_runs_shows_phases_and_ends_green(tiny_folder, tmp_path):
    p = panel_mod.Panel(tiny_folder, output=tmp_path / "out")
    p.start()
    result = p.wait(120)
    assert result.exit_code == 0 and p.view.bar.bar_style == "success"
    assert "white-space:nowrap" in p.view.label.value and "finished" in p.view.label.value
    assert "η=0.75" in p.view.settings.value and str(tiny_folder) in p.view.settings.value
    assert "ttl_average" in p.results_tab.value and "No failed files" in p.failed_tab.value
    bundle = p._repr_mimebundle_()
    assert "image/png" in bundle and "application/vnd.jupyter.widget-view+json" in bundle
    assert p.view.frames_drawn >= 1
    p.start()  # a second run of the same panel gets a fresh view
    assert p.wait(120).exit_code == 0


def test_stop_cancels_ends_red_and_the_panel_shows_only_its_runs(tmp_path):
    folder = many_folder(tmp_path, 150)
    p = panel_mod.Panel(folder, output=tmp_path / "out", settings={"workers": 1})
    other = panel_mod.Panel(folder, output=tmp_path / "out2")
    run = p.start()
    with pytest.raises(OppndaError, match="in progress"):
        other.start()  # one run at a time; the other panel says so and does not follow it
    assert other.run is not run and "in progress" in other.view.label.value
    p.stop()
    result = p.wait(60)
    assert result.status == "cancelled" and result.exit_code == 1 and p.view.bar.bar_style == "danger"
    assert not [c for c in __import__("psutil").Process().children(recursive=True)
                if c.status() != "zombie" and "resource_tracker" not in " ".join(c.cmdline())
                and "forkserver" not in " ".join(c.cmdline())]


# ----------------------------------------------------------------------------- cache, scheduler, figures

def test_cache_checkbox_a_second_start_uses_the_cache_and_off_parses_again(tiny_folder, tmp_path):
    for f in tiny_folder.iterdir():  # files written just now are not cached (they may still change)
        os.utime(f, (f.stat().st_atime - 3600, f.stat().st_mtime - 3600))
    p = panel_mod.Panel(tiny_folder, output=tmp_path / "out")
    assert p.cache.value and p.option_values()["no_cache"] is False
    p.start()
    first = p.wait(120)
    assert "cached" not in first.summary().splitlines()[0]
    p.start()
    second = p.wait(120)
    assert "(24 cached, 0 parsed)" in second.summary() and second.exit_code == 0
    assert not p.start_button.disabled and p.stop_button.disabled  # buttons back once the run ended
    p.cache.value = False
    p.start()
    third = p.wait(120)
    assert "cached" not in third.summary().splitlines()[0] and third.job.counts["processed"] == 24
    off = panel_mod.Panel(tiny_folder, settings={"no_cache": True})  # %oppnda panel --no-cache
    assert not off.cache.value


def test_scheduler_field_goes_to_the_run(tiny_folder, monkeypatch):
    p = panel_mod.Panel(tiny_folder)
    assert options.run_kwargs(p.option_values()).get("scheduler") is None  # empty: the local pool
    p.scheduler.value = " tcp://10.0.0.1:8786 "
    seen = {}

    class Stop(Exception):
        pass

    def fake_run(folder, **kw):
        seen.update(kw)
        raise Stop

    monkeypatch.setattr(job, "Run", fake_run)
    with pytest.raises(Stop):
        p.start()
    assert seen["scheduler"] == "tcp://10.0.0.1:8786" and seen.get("cache", True) is True


def sweep(tmp_path):
    d = tmp_path / "sweep"
    d.mkdir()
    for f in SAMPLE.glob("*_MessageStatsReport.txt"):
        shutil.copy(f, d / f.name)
    return d


def test_draw_figures_shows_progress_memory_and_lists_the_files(tmp_path):
    folder = sweep(tmp_path)
    job.average_folder(folder=folder, output=tmp_path / "averaged", workers=2)
    p = panel_mod.Panel(folder, output=tmp_path / "out")
    p.figures_config.value = analysis_config(tmp_path, folder, tmp_path / "averaged", only=("line_plots", "export_csv"))
    p.draw_button.click()
    assert p.draw_button.disabled and not p.stop_button.disabled and p.start_button.disabled
    result = p.wait_figures(300)
    assert result is not None and result.exit_code == 0
    names = sorted(x.name for x in (tmp_path / "plots").glob("*.png"))
    assert names == [f"{m}_{g}_line.png" for m in ("delivery_prob", "overhead_ratio") for g in ("buffer", "ttl")]
    for n in names + ["EpidemicRouter_metrics.csv"]:
        assert n in p.figures_list.value
    view = p.view
    assert view.done and view.bar.bar_style == "success" and view.frames_drawn >= 1
    assert "finished · 4 processed" in view.label.value and "figures of" in view.settings.value
    p.wait_figures(5)
    deadline = time.monotonic() + 10
    while p.start_button.disabled and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not p.start_button.disabled and not p.draw_button.disabled
    run = p.start()  # a run after figures gets its own view
    assert p.wait(120).exit_code == 0 and p.view is not view and p.view.run is run


def test_stop_stops_the_figures_and_the_bundled_example_is_the_default(tmp_path, monkeypatch):
    folder = sweep(tmp_path)
    job.average_folder(folder=folder, output=tmp_path / "averaged", workers=2)
    config = analysis_config(tmp_path, folder, tmp_path / "averaged",
                             only=("line_plots", "3d_surface", "violin_plots", "heatmaps"))
    monkeypatch.setattr(figures, "example_config_path", lambda: Path(config))  # empty field: the example
    p = panel_mod.Panel(folder, settings={"workers": 1, "max_workers": 1})
    p.draw_figures()
    deadline = time.monotonic() + 120
    while (p.analysis is None or p.view.run is None) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert p.view.run is not None and len(p.view.run.files) > 10
    p.stop()
    result = p.wait_figures(120)
    assert result.status == "cancelled" and p.view.bar.bar_style == "danger"
    assert "cancelled" in p.figures_list.value


class FakeRun:
    """What RunView reads of a run: files, a plan, listeners and a growing memory frame."""

    def __init__(self, frames, planned_peak_bytes: float):
        self.files = [f"f{i}" for i in range(10)]
        self.plan = SimpleNamespace(predicted_peak_bytes=planned_peak_bytes)
        self.frames = frames
        self.calls = 0
        self.listeners: list = []

    def add_listener(self, callback) -> None:
        self.listeners.append(callback)

    def memory_frame(self):
        self.calls += 1
        return self.frames[min(self.calls, len(self.frames)) - 1]

    def emit(self, kind: str, data) -> None:
        for cb in self.listeners:
            cb(pool.Event(kind, data))


def fake_frames(n: int = 40) -> list:
    import numpy as np
    import pandas as pd

    t = np.arange(n) * 0.2
    df = pd.DataFrame({"t": t, "kernel_mb": 150.0 + t, "budget_mb": 16_000.0 + np.arange(n) % 5,
                       "predicted_peak_mb": 260.0, "helpers_mb": 20.0, "worker_11": 80.0, "worker_12": 95.0})
    return [df.iloc[:k] for k in range(1, n + 1)]


def test_live_view_draws_the_plans_predicted_peak_and_the_final_static_plot():
    """The live frames and the final picture show the run's planned peak (Plan.predicted_peak_bytes), not the
    pool's own prediction; live frames are the LiveMemoryPlot's, the final one is memory_png."""
    import io

    import numpy as np
    from PIL import Image

    frames = fake_frames()
    run = FakeRun(frames, planned_peak_bytes=1015 * MB)
    view = panel_mod.RunView(title="memory: fake", plot_interval=0.01, tick_interval=0.01)
    view.attach(run)
    deadline = time.monotonic() + 60
    while run.calls < len(frames) + 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert view.live is not None and view.live.frames >= 2
    texts = [t.get_text() for t in view.live.ax.get_legend().get_texts()]
    assert "predicted peak (1,015 MB)" in texts and not any("260 MB" in t for t in texts)
    static = plots.memory_png(frames[-1], title="memory: fake", predicted_peak_mb=1015.0)

    def decoded(png: bytes):
        return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))

    assert (decoded(view.png) == decoded(static)).all()  # the last live frame is the static picture
    counts = {"total": 10, "processed": 10, "failed": 0, "skipped": 0, "cancelled": 0}
    result = SimpleNamespace(status="finished", exit_code=job.EXIT_OK, error=None, job=SimpleNamespace(counts=counts),
                             output_dir="out", memory=frames[-1], plan=run.plan, summary=lambda: "finished")
    run.emit("run_done", result)
    assert view.wait(30) and view.bar.bar_style == "success"
    assert view.png == plots.memory_png(frames[-1], title="memory: fake (finished)", predicted_peak_mb=1015.0)


def test_plot_wait_keeps_drawing_under_a_quarter_of_a_core():
    assert panel_mod.plot_wait(0.03) == panel_mod.PLOT_INTERVAL  # a cheap frame: every PLOT_INTERVAL
    assert panel_mod.plot_wait(0.1) == pytest.approx(0.4)  # 0.1 s of CPU in 0.4 s: a quarter of a core
    assert panel_mod.plot_wait(0.6) == 1.0  # at least once a second
