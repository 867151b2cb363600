"""The control panel's widget state without a browser.

Most tests drive the real runner on the bundled sample; a small fake ``runner`` (same surface as
the contract's ``Run``) is used where a run must be slow or fail on purpose, and for the headless
display logic. ``FakeRunner`` is also imported by tests/test_magics.py.
"""
from __future__ import annotations

import os
import threading
import time
import types
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest

from oppnda_nb import panel as panel_mod
from oppnda_nb.errors import OppndaError
from oppnda_nb.pool import Progress
from oppnda_nb.resource_manager import ResourceManager

SAMPLE = Path(panel_mod.__file__).resolve().parent / "data" / "sample"


# ------------------------------------------------------------------------------ the fake

@dataclass
class FakeOutcome:
    path: str
    status: str
    reason: str | None = None


@dataclass
class FakeJobResult:
    status: str
    outcomes: list
    memory: pd.DataFrame


@dataclass
class FakeRunResult:
    job: FakeJobResult
    tables: dict = field(default_factory=dict)
    output_dir: Path | None = None

    @property
    def memory(self) -> pd.DataFrame:
        return self.job.memory

    def summary(self) -> str:
        c = {}
        for o in self.job.outcomes:
            c[o.status] = c.get(o.status, 0) + 1
        return f"Run {self.job.status}: " + ", ".join(f"{v} {k}" for k, v in sorted(c.items()))


class FakeRunner:
    """A stand-in for oppnda_nb.runner: Run, current_run, sample_folder (no processes)."""

    def __init__(self, per_file: float = 0.003, fail: str | None = None, folder: Path = SAMPLE):
        self.per_file = per_file
        self.fail = fail  # raise this message from wait()
        self.folder = folder
        self.current = None
        self.created: list = []
        runner = self

        class Run:
            def __init__(self, folder=None, *, config=None, pattern=None, group_by=None, manager=None,
                         output=None, workers=None, start_method=None):
                folder = Path(folder or runner.folder)
                self.folder, self.config, self.pattern, self.group_by = folder, config, pattern, group_by
                self.manager, self.output, self.workers = manager, output, workers
                names = sorted(p for p in folder.iterdir() if p.suffix == ".txt")
                self.files = [str(p) for p in names if "bad" not in p.name]
                self.skipped = [(str(p), "bad name") for p in names if "bad" in p.name]
                self._listeners, self._stop = [], threading.Event()
                self._thread, self.result, self._rows = None, None, []
                self.progress = Progress(files_total=len(self.files) + len(self.skipped))
                runner.created.append(self)

            def add_listener(self, cb):
                self._listeners.append(cb)

            @property
            def running(self):
                return self._thread is not None and self._thread.is_alive()

            def start(self):
                runner.current = self
                self._thread = threading.Thread(target=self._main, daemon=True)
                self._thread.start()
                return self

            def _main(self):
                t0 = time.monotonic()
                outcomes = [FakeOutcome(p, "skipped", r) for p, r in self.skipped]
                status = "finished"
                for i, f in enumerate(self.files):
                    if self._stop.is_set():
                        status = "cancelled"
                        outcomes += [FakeOutcome(g, "cancelled") for g in self.files[i:]]
                        break
                    time.sleep(runner.per_file)
                    outcomes.append(FakeOutcome(f, "processed"))
                    t = time.monotonic() - t0
                    self._rows.append({"t": t, "kernel_mb": 150.0, "worker_11": 60.0 + i % 7,
                                       "workers_mb": 60.0 + i % 7, "budget_mb": 900.0,
                                       "predicted_peak_mb": 400.0})
                    self.progress = Progress(files_done=i + 1 + len(self.skipped),
                                                 files_total=len(self.files) + len(self.skipped),
                                                 mb_per_s=1.5, eta_s=1.0, elapsed_s=t, workers=1)
                    for cb in self._listeners:
                        cb(types.SimpleNamespace(kind="progress", data=self.progress))
                table = pd.DataFrame({"ttl": [60, 180], "router": ["E", "E"], "report_type": ["M", "M"],
                                      "n_files": [2, 2], "delivery_prob_mean": [0.1, 0.3],
                                      "delivery_prob_ci95": [0.01, 0.02]})
                self.result = FakeRunResult(FakeJobResult(status, outcomes, self.memory_frame()),
                                            tables={"ttl_average": table}, output_dir=self.output)

            def memory_frame(self):
                return pd.DataFrame(list(self._rows))

            def stop(self):
                self._stop.set()
                if self._thread is not None:
                    self._thread.join()

            def wait(self):
                self._thread.join()
                if runner.fail:
                    raise OppndaError(runner.fail)
                return self.result

            def run(self):
                self.start()
                return self.wait()

        self.Run = Run

    def current_run(self):
        return self.current

    def sample_folder(self) -> Path:
        return self.folder


@pytest.fixture
def fake_runner(monkeypatch):
    fake = FakeRunner()
    monkeypatch.setattr(panel_mod, "_runner", lambda: fake)
    yield fake
    run = fake.current
    if run is not None and run.running:
        run.stop()


def real_runner():
    return pytest.importorskip("oppnda_nb.runner", reason="runner.py (lead) not written yet")


def count_updates(widget, name="value") -> list:
    seen = []
    widget.observe(lambda ch: seen.append(ch["new"]), names=name)
    return seen


def wait_until(pred, timeout=60.0, step=0.02):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


# ---------------------------------------------------------------------------- recommendation

def test_slider_moves_change_the_recommendation(fake_runner):
    p = panel_mod.Panel(SAMPLE, total_ram_mb=2000)
    assert p.scan is not None and p.scan.ok, p.validation.value
    p.workers_range.value = (1, 16)
    p.eta.value = 0.9
    high = p.recommendation
    assert "recommended workers" in p.recommendation_label.value
    p.eta.value = 0.3
    low = p.recommendation
    # budget = η·M_RAM − M_others: moving η by 0.6 on a 2000 MB machine moves it by ~1200 MB
    assert high.budget_mb - low.budget_mb == pytest.approx(0.6 * 2000, abs=60)
    assert f"budget {low.budget_mb:,.0f} MB" in p.recommendation_label.value
    # a large per-worker overhead at a small η leaves room for no worker: MIN_WORKERS and a warning
    p.overhead.value = 500
    starved = p.recommendation
    assert starved.workers == 1 and starved.warnings
    assert "⚠" in p.recommendation_label.value
    p.overhead.value = 0
    p.eta.value = 0.9
    assert p.recommendation.workers >= starved.workers
    # predicted peak follows γ: M_base + Σ(γ·size + M_overhead) over the P largest files
    p.gamma.value = 1.0
    g1 = p.recommendation
    p.gamma.value = 9.0
    g9 = p.recommendation
    top = p.scan.sizes[: g9.workers].sum() / 2**20
    assert g9.predicted_peak_mb - g1.predicted_peak_mb == pytest.approx(8.0 * top, abs=max(5.0, 0.05 * top))
    assert p.recommendation.largest_mb == pytest.approx(max(os.path.getsize(f) for f in p.scan.files) / 2**20)
    # the spec's symbols are shown with the values
    assert "η = 0.90" in p.symbols.value and "γ = 9.0" in p.symbols.value and "M<sub>overhead</sub> = 0 MB" in p.symbols.value
    p.safety.value = False
    assert "safety OFF" in p.symbols.value
    p.close()


def test_slider_moves_do_not_rescan_the_folder(fake_runner, monkeypatch):
    p = panel_mod.Panel(SAMPLE, total_ram_mb=4000)
    calls = []
    real_scan = panel_mod.scan_folder
    monkeypatch.setattr(panel_mod, "scan_folder", lambda *a, **k: calls.append(a) or real_scan(*a, **k))
    for v in (0.2, 0.5, 0.8):
        p.eta.value = v
    p.gamma.value = 4.0
    p.workers_range.value = (1, 4)
    assert calls == []
    p.folder.value = str(SAMPLE) + "/"
    assert len(calls) == 1
    p.close()


def test_recommend_scales_to_20000_files():
    """20,000 sizes: the recommendation is computed from the cached sizes (no file system)."""
    rng = np.random.default_rng(1)
    sizes = np.sort(rng.integers(1_000, 5_000_000, 20_000).astype(float))[::-1].copy()
    rm = ResourceManager(total_ram_mb=8000, eta=0.5)
    rec = panel_mod.recommend(rm, sizes)
    assert 1 <= rec.workers <= 16
    assert rec.largest_mb == pytest.approx(sizes[0] / 2**20)
    expected = rm.base_bytes() + rm.estimator.estimate_batch_memory(sizes, rec.workers)
    assert rec.predicted_peak_mb == pytest.approx(expected / 2**20, rel=0.01)


# ------------------------------------------------------------------------------- validation

def test_inputs_are_validated_as_typed(fake_runner, tmp_path):
    p = panel_mod.Panel(SAMPLE)
    assert "240" in p.validation.value.replace(",", "") or f"{len(p.scan.files)}" in p.validation.value
    assert "router=<code>EpidemicRouter</code>" in p.validation.value
    assert "MessageStatsReport" in p.validation.value
    assert not p.start_button.disabled
    p.folder.value = str(tmp_path / "nope")
    assert "does not exist" in p.validation.value and p.start_button.disabled
    (tmp_path / "empty").mkdir()
    p.folder.value = str(tmp_path / "empty")
    assert "no matching report files" in p.validation.value and p.start_button.disabled
    p.folder.value = str(SAMPLE)
    p.pattern.value = "{a}_{b}_{c}_{d}_{e}_{f}_{g}_{h}"
    assert "240 skipped" in p.validation.value and "does not match the template" in p.validation.value
    p.pattern.value = "{a}_{b"
    assert "Unbalanced braces" in p.validation.value
    p.pattern.value = "{scenario}_{router}_{seed}_{ttl}_{buffer}_{report_type}"
    assert "ttl=<code>180</code>" in p.validation.value
    p.config.value = str(tmp_path / "missing.json")
    assert "config file" in p.validation.value and p.start_button.disabled
    p.close()


# ------------------------------------------------------------------------------ running (fake)

def test_start_stop_and_one_run_at_a_time_with_fake(fake_runner):
    fake_runner.per_file = 0.05
    p = panel_mod.Panel(SAMPLE)
    images = count_updates(p.view.image)
    run = p.start()
    assert wait_until(lambda: len(images) >= 2, timeout=20)
    assert p.stop_button.disabled is False and p.start_button.disabled is True
    with pytest.raises(OppndaError, match="in progress"):
        p.start()
    p.stop()
    assert p.view.wait(20)
    assert p.view.status == "cancelled" and p.view.bar.bar_style == "danger"
    assert "cancelled" in p.message.value
    assert not run.running
    assert p.start_button.disabled is False and p.stop_button.disabled is True
    p.close()


def test_failure_ends_red_with_the_reason(fake_runner):
    fake_runner.fail = "the averaging config has no group"
    p = panel_mod.Panel(SAMPLE)
    p.start()
    assert p.view.wait(20)
    assert p.view.bar.bar_style == "danger" and p.view.status == "failed"
    assert "no group" in p.view.label.value and "no group" in p.outcomes.value
    with pytest.raises(OppndaError, match="no group"):
        p.wait(display_result=False)
    p.close()


def test_finished_panel_leaves_a_static_png_for_headless_notebooks(fake_runner, tmp_path):
    bad = tmp_path / "reports"
    bad.mkdir()
    for name in ("TEST_E_1_60_2M_MessageStatsReport.txt", "TEST_E_2_60_2M_MessageStatsReport.txt",
                 "bad_name.txt"):
        (bad / name).write_text("x: 1\n")
    p = panel_mod.Panel(bad)
    bundle = p._repr_mimebundle_()
    assert "image/png" not in bundle  # nothing final yet
    shown = []
    import IPython.display as ipd

    orig = ipd.display
    ipd.display = lambda *objs, **kw: shown.extend(objs)
    try:
        p.start()
        result = p.wait()
    finally:
        ipd.display = orig
    assert result is p.result and p.view.status == "finished" and p.view.bar.bar_style == "success"
    assert p.view.bar.value == p.view.bar.max
    assert any(type(o).__name__ == "Image" and o.data.startswith(b"\x89PNG") for o in shown)
    bundle = p._repr_mimebundle_()
    assert bundle["image/png"] and "Run finished" in bundle["text/plain"]
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "bad_name.txt" in p.outcomes.value and "skipped" in p.outcomes.value
    assert "delivery_prob_mean" in p.preview.value
    p.close()


def test_a_run_started_elsewhere_shows_in_open_panels(fake_runner):
    p = panel_mod.Panel(SAMPLE)
    run = fake_runner.Run(SAMPLE)
    run.start()
    panel_mod.announce_run(run)
    assert p.run is run
    assert p.view.wait(20) and p.view.status == "finished"
    # a panel opened after the run shows it too
    q = panel_mod.Panel(SAMPLE)
    assert q.run is run and q.view.wait(20)
    p.close()
    q.close()


# ------------------------------------------------------------------------------ running (real)

def big_folder(tmp_path: Path, copies: int) -> Path:
    """The sample ``copies`` times over (symlinks, seeds renumbered): a run long enough to stop."""
    folder = tmp_path / "many"
    folder.mkdir()
    for k in range(copies):
        for f in SAMPLE.iterdir():
            parts = f.name.split("_")
            if len(parts) < 6:
                continue
            parts[2] = f"{int(parts[2]) + 100 * (k + 1)}"
            (folder / "_".join(parts)).symlink_to(f)
    return folder


def test_start_runs_the_sample_and_the_plot_updates(tmp_path):
    runner = real_runner()
    p = panel_mod.Panel(runner.sample_folder(), total_ram_mb=6000)
    p.output.value = str(tmp_path / "out")
    images = count_updates(p.view.image)
    bars = count_updates(p.view.bar)
    run = p.start()
    assert runner.current_run() is run
    assert p.view.wait(240), "the run did not end"
    assert p.view.error is None, p.view.error
    assert p.view.status == "finished" and p.view.bar.bar_style == "success"
    assert p.view.bar.value == p.view.bar.max == len(run.files) + len(run.skipped)
    assert len(images) >= 2, "live redraws during the run, then the final plot"
    assert len(set(images)) == len(images)  # every update is a new picture, not a re-send
    assert bars and "<table" in p.preview.value and "_mean" in p.preview.value
    assert (tmp_path / "out").is_dir()
    p.close()


def test_stop_during_a_real_run_cancels_and_leaves_no_worker(tmp_path):
    runner = real_runner()
    folder = big_folder(tmp_path, 8)
    me = psutil.Process()
    before = {c.pid for c in me.children(recursive=True)}
    p = panel_mod.Panel(folder, total_ram_mb=6000)
    p.output.value = str(tmp_path / "out")
    p.workers_range.value = (1, 1)
    images = count_updates(p.view.image)
    run = p.start()
    assert wait_until(lambda: any(c.pid not in before for c in me.children(recursive=True)), 30)
    assert wait_until(lambda: len(images) >= 2, 60), "the plot must be redrawn while the run works"
    assert not p.stop_button.disabled
    p.stop_button.click()
    assert p.view.wait(60)
    assert p.view.status == "cancelled", p.view.label.value
    assert p.view.bar.bar_style == "danger"
    assert not run.running
    counts = p.result.job.counts
    assert counts["cancelled"] > 0 and counts["processed"] < len(run.files)
    assert wait_until(lambda: not [c for c in me.children(recursive=True) if c.pid not in before], 15), \
        [c.pid for c in me.children(recursive=True)]
    assert "cancelled" in p.message.value
    p.close()
