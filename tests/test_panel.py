"""The control panel with the real job on tiny folders (widget state, no browser)."""
from __future__ import annotations

import os

import pytest

from conftest import many_folder

from oppnda_nb import job, panel as panel_mod
from oppnda_nb.errors import OppndaError
from oppnda_nb.resource_manager import ResourceManager


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
