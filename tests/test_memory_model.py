"""The one memory model: arithmetic, conservative learning, the store, and P_opt/plan_peak."""
from __future__ import annotations

import json

import pytest

from oppnda_nb import ResourceManager
from oppnda_nb.errors import SettingsError
from oppnda_nb.memory_model import (
    LEARN_MARGIN, MemoryModel, TypeModel, envelope, load_learned, plan_peak, save_learned, workers_that_fit,
)
from oppnda_nb.system import MB


def test_type_model_is_the_spec_formula():
    m = TypeModel(gamma=2.5, overhead_mb=40)
    assert m.estimate(10 * MB) == 2.5 * 10 * MB + 40 * MB
    assert TypeModel(1.0, 100, chunk_mb=40).estimate(0) == pytest.approx(140 * MB)  # C whatever the size
    assert TypeModel(1.0, 100, chunk_mb=40).lean_estimate(0) == pytest.approx(110 * MB)


def test_the_chunk_allowance_ramps_up_to_one_block():
    m = TypeModel(gamma=0.1, overhead_mb=30, chunk_mb=40, ramp=10.0)
    assert m.estimate(1 * MB) == pytest.approx(0.1 * MB + 30 * MB + 10 * MB)  # a small file: ρ · size
    assert m.estimate(4 * MB) == pytest.approx(0.4 * MB + 30 * MB + 40 * MB)  # one block: C
    assert m.estimate(600 * MB) == pytest.approx(60 * MB + 30 * MB + 40 * MB)  # then only γ grows
    assert m.lean_estimate(600 * MB) == pytest.approx(60 * MB + 30 * MB + 10 * MB)
    assert m.lean_estimate(1 * MB) == pytest.approx(m.estimate(1 * MB) - 7.5 * MB)


@pytest.mark.parametrize("points", [
    [(1 * MB, 45 * MB)],
    [(1 * MB, 41 * MB), (50 * MB, 80 * MB), (100 * MB, 90 * MB)],
    [(0.1 * MB, 31 * MB), (3 * MB, 75 * MB), (90 * MB, 70 * MB)],
])
def test_envelope_keeps_the_chunk_shape_and_stays_above_every_peak(points):
    prior = TypeModel(0.1, 30, chunk_mb=40, ramp=10.0)
    m = envelope(points, prior)
    assert (m.chunk_mb, m.ramp) == (40, 10.0)
    for size, peak in points:
        assert m.estimate(size) >= peak * (1 + LEARN_MARGIN) - 1


def test_priors_user_override_and_default():
    model = MemoryModel(TypeModel(3.0, 50, "user"), {"EventLogReport": TypeModel(0.2, 90)})
    assert model.estimate("EventLogReport", 100 * MB) == pytest.approx(0.2 * 100 * MB + 90 * MB)
    assert model.estimate("Other", 1 * MB) == pytest.approx(3 * MB + 50 * MB)
    model.override = True  # the user set gamma/overhead: every type uses them
    assert model.estimate("EventLogReport", 100 * MB) == pytest.approx(350 * MB)


@pytest.mark.parametrize("points", [
    [(1 * MB, 60 * MB)],
    [(1 * MB, 60 * MB), (50 * MB, 80 * MB), (100 * MB, 130 * MB)],
    [(20 * MB, 300 * MB), (25 * MB, 310 * MB), (90 * MB, 200 * MB)],
])
def test_envelope_is_never_below_a_measured_peak(points):
    m = envelope(points, TypeModel(3.0, 50))
    for size, peak in points:
        assert m.estimate(size) >= peak * (1 + LEARN_MARGIN) - 1
    assert m.source == "learned"


def test_envelope_learns_a_small_gamma_from_streamed_files():
    pts = [(1 * MB, 70 * MB), (100 * MB, 90 * MB), (600 * MB, 150 * MB)]
    m = envelope(pts, TypeModel(3.0, 50))
    assert m.gamma < 0.2  # the prior's 3.0 would predict 1.8 GB for the 600 MB file
    assert m.estimate(600 * MB) <= 1.3 * 150 * MB


def test_observe_updates_estimates_during_a_run():
    model = MemoryModel(TypeModel(3.0, 50), {"A": TypeModel(3.0, 50)})
    before = model.estimate("A", 10 * MB)
    for size, peak in [(10 * MB, 60 * MB), (40 * MB, 70 * MB), (80 * MB, 75 * MB)]:
        model.observe("A", size, peak)
    assert model.estimate("A", 10 * MB) < before
    assert model.estimate("A", 80 * MB) >= 75 * MB
    assert model.model_for("B").source != "learned"


def test_store_round_trip_and_corrupt_store(tmp_path, caplog):
    path = tmp_path / "models.json"
    model = MemoryModel(TypeModel(3.0, 50))
    model.observe("A", 10 * MB, 60 * MB)
    save_learned(model, "v1", path)
    fresh = MemoryModel(TypeModel(3.0, 50))
    assert load_learned(fresh, "v1", path) == 1
    assert fresh.model_for("A") == model.model_for("A")
    assert load_learned(MemoryModel(TypeModel(3.0, 50)), "v2", path) == 0  # another parser version
    path.write_text("{not json")
    with caplog.at_level("WARNING", logger="oppnda_nb"):
        assert load_learned(MemoryModel(TypeModel(3.0, 50)), "v1", path) == 0
    assert "unreadable" in caplog.text
    save_learned(model, "v1", path)  # a corrupt store is replaced by the next save
    assert "v1" in json.loads(path.read_text())


def test_plan_peak_and_workers_that_fit():
    # kernel 100 + the two largest (50 + 30) = 180; with a budget of 160 the 30 waits next to the 50
    # and the 10 runs instead (admission lets a smaller file start): 160; with 140 none fits next
    # to the 50, so the second worker is idle
    assert plan_peak(100, [10, 50, 30], workers=2) == 180
    assert plan_peak(100, [10, 50, 30], workers=2, budget_bytes=160, idle_bytes=5) == 160
    assert plan_peak(100, [10, 50, 30], workers=2, budget_bytes=140, idle_bytes=5) == 155
    assert workers_that_fit(100, [10, 50, 30], budget_bytes=185, upper=3) == 2
    assert workers_that_fit(100, [200], budget_bytes=150, upper=3) == 0


def test_manager_p_opt_uses_the_estimates_it_is_given():
    rm = ResourceManager(total_ram_mb=1000, eta=0.5, memory_reader=lambda: (0.0, 1000 * MB),
                         base_reader=lambda: 100 * MB, max_workers=8)
    # budget 500 MB; kernel 100 MB; estimates of 150 MB each -> 2 fit
    assert rm.get_optimal_workers(estimates=[150 * MB] * 5) == min(2, rm._clamp_upper())


def test_manager_errors_are_the_project_family():
    with pytest.raises(SettingsError):
        ResourceManager(eta=1.5)
    with pytest.raises(SettingsError):
        ResourceManager(total_ram_mb=-1)


def test_helpers_and_workers_by_start_method():
    from oppnda_nb.memory_model import (FORKSERVER_BYTES, SHARED_WITH_FORKSERVER_BYTES, SPAWN_PRIVATE_BYTES,
                                        SPAWN_SHARED_BYTES, TRACKER_BYTES, helpers_allowance, worker_adjustment)

    assert helpers_allowance([]) == 0.0  # nothing to run: no pool, no helpers
    assert helpers_allowance([20 * MB], "forkserver") == TRACKER_BYTES + FORKSERVER_BYTES
    assert helpers_allowance([20 * MB], "spawn") == helpers_allowance([20 * MB], "fork") == TRACKER_BYTES
    assert worker_adjustment("forkserver") == worker_adjustment("forkserver", 4) == -SHARED_WITH_FORKSERVER_BYTES
    assert worker_adjustment("fork") == 0.0
    # spawned workers share their libraries' pages among themselves: the more, the less each costs
    assert worker_adjustment("spawn") == SPAWN_PRIVATE_BYTES + SPAWN_SHARED_BYTES
    assert worker_adjustment("spawn", 2) == SPAWN_PRIVATE_BYTES + SPAWN_SHARED_BYTES / 2
    assert worker_adjustment("spawn", 0) == worker_adjustment("spawn", 1)
    # the measured idle workers (see memory_model) stay under what is counted for them
    for workers, measured_mb in ((1, 66.2), (2, 58.1), (3, 55.1), (4, 53.6)):
        assert 35 * MB + worker_adjustment("spawn", workers) >= measured_mb * MB
    for workers, measured_mb in ((1, 71.4), (2, 76.2), (3, 81.4), (4, 86.0)):  # forkserver + idle workers
        assert FORKSERVER_BYTES + workers * (35 * MB + worker_adjustment("forkserver")) >= measured_mb * MB
    # the forkserver and 2 workers running the bundled sample's small files (estimates ~36.5 MB each)
    assert FORKSERVER_BYTES + 2 * (36.5 * MB + worker_adjustment("forkserver")) >= 98 * MB
    # what the kernel's PSS fell by, measured, once the pool's processes mapped the same files: a plan
    # takes off less
    from oppnda_nb.memory_model import kernel_sharing_allowance

    for method, drops_mb in (("forkserver", (8.9, 13.1, 9.0)), ("spawn", (6.5, 8.2))):  # kernels sharing <= 0.6 MB
        assert 0 < kernel_sharing_allowance(method, 0.6 * MB) <= min(drops_mb) * MB - 1 * MB
    assert kernel_sharing_allowance("fork", 0.0) == 0.0
    # a Jupyter kernel already sharing 12 MB with the server's processes fell by 3.4 MB only; unknown: nothing
    assert kernel_sharing_allowance("forkserver", 12 * MB) == 0.0 == kernel_sharing_allowance("forkserver", -1.0)
    # two forkserver workers: the shared pages once (in the forkserver), each worker's private part
    ests = [50 * MB, 40 * MB]
    peak = plan_peak(100 * MB, ests, 2, helpers_bytes=helpers_allowance(ests),
                     per_worker_bytes=worker_adjustment("forkserver"))
    assert peak == pytest.approx(100 * MB + TRACKER_BYTES + FORKSERVER_BYTES + 90 * MB - 2 * SHARED_WITH_FORKSERVER_BYTES)


def test_plan_peak_admits_files_as_a_pool_that_reserves_the_kernels_growth():
    ests = [60 * MB, 50 * MB, 10 * MB]
    # admission counts the kernel alone: the 50 MB file waits, the 10 MB one runs next to the largest
    assert plan_peak(100 * MB, ests, 2, 200 * MB) == pytest.approx(170 * MB)
    # admission counts 40 MB the kernel will come to hold: nothing fits next to the largest file, the
    # other worker stays idle
    assert plan_peak(100 * MB, ests, 2, 200 * MB, idle_bytes=5 * MB, admitted_bytes=140 * MB) == pytest.approx(165 * MB)
    assert plan_peak(100 * MB, ests, 2, 200 * MB, admitted_bytes=100 * MB) == plan_peak(100 * MB, ests, 2, 200 * MB)


def test_one_large_file_above_its_prior_raises_gamma_not_the_small_files_estimates():
    prior = TypeModel(0.02, 35, chunk_mb=32, ramp=7.0)
    m = envelope([(84 * MB, 78 * MB)], prior)
    assert m.estimate(84 * MB) >= 78 * MB * (1 + LEARN_MARGIN) - 1
    assert m.estimate(1 * MB) == pytest.approx(prior.estimate(1 * MB), rel=0.01)  # a 1 MB file: as before
    small = envelope([(1 * MB, 60 * MB)], prior)  # a small file above its prior: the overhead moves
    assert small.gamma == prior.gamma and small.estimate(1 * MB) >= 60 * MB * (1 + LEARN_MARGIN) - 1
