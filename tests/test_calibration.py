"""Calibration: the fit, the sample, and predictions after calibration against measured peaks."""
from __future__ import annotations

import glob
import os
import random

import pytest
from shared_data import ONE_REPORTS

from oppnda_nb import _testwork as tw
from oppnda_nb import calibration as cal
from oppnda_nb.errors import OppndaError
from oppnda_nb.pool import Job
from oppnda_nb.resource_manager import ResourceManager

MB = 1024 * 1024
HEADS = str(ONE_REPORTS / "large-heads")


def test_fit_recovers_gamma_and_intercept_and_ignores_an_outlier():
    rng = random.Random(1)
    sizes = [rng.uniform(1, 100) * MB for _ in range(20)]
    peaks = [2.5 * s + 7 * MB + rng.uniform(-1, 1) * MB for s in sizes]
    peaks[3] += 300 * MB  # e.g. a first file that paid for imports
    gamma, c = cal.fit_gamma(sizes, peaks)
    assert gamma == pytest.approx(2.5, rel=0.03)
    assert c / MB == pytest.approx(7, abs=2)


def test_fit_never_returns_negative_parameters():
    gamma, c = cal.fit_gamma([1 * MB, 2 * MB, 3 * MB], [30 * MB, 20 * MB, 10 * MB])
    assert gamma == 0.0 and c > 0
    gamma, c = cal.fit_gamma([10 * MB, 20 * MB], [5 * MB, 30 * MB])  # line would cross below 0
    assert gamma > 0 and c == 0.0


def test_sample_spreads_over_sizes(tmp_path):
    paths = []
    for i in range(20):
        p = tmp_path / f"f{i:02d}.txt"
        p.write_bytes(b"x" * (i + 1) * 100)
        paths.append(str(p))
    chosen = cal.sample_files(paths, 5)
    sizes = sorted(os.path.getsize(p) for p in chosen)
    assert len(chosen) == 5 and sizes[0] == 100 and sizes[-1] == 2000
    assert cal.sample_files(paths, 50) == sorted(paths, key=os.path.getsize)


def _sparse(folder, sizes_mb, kind="BigReport"):
    paths = []
    for i, s in enumerate(sizes_mb):
        p = folder / f"TEST_r_{i}_{s}M_{kind}.txt"
        with open(p, "wb") as f:
            f.truncate(int(s * MB))
        paths.append(str(p))
    return paths


def test_calibrate_from_a_run_learns_gamma_and_the_next_run_predicts_it(tmp_path):
    # the work holds 2 × size: the fitted γ must come out near 2 whatever the manager believed before
    files = _sparse(tmp_path, [4, 8, 16, 24, 32])
    m = ResourceManager(gamma=9.0, overhead_mb=300)
    r = Job(files, tw.hold_alloc, (2.0, 0.05), m, workers=1, start_method="forkserver").run()
    c = cal.calibrate(m, r)
    assert c.applied and c.per_type["BigReport"].n == 5
    assert c.gamma == pytest.approx(2.0, rel=0.1) and m.gamma == c.gamma
    assert m.overhead_mb < 300 and m.type_models["BigReport"][0] == pytest.approx(2.0, rel=0.1)
    assert c.gamma_before == 9.0 and "γ 9.00" in c.summary()
    assert c.to_dict()["n_points"] == 5
    # a new run with bigger files: each file's estimate is within 20 % of its measured peak
    big = _sparse(tmp_path, [48, 64], kind="BigReport")
    r2 = Job(big, tw.hold_alloc, (2.0, 0.6), m, workers=1, start_method="forkserver", sample_interval=0.05).run()
    for o in r2.outcomes:
        assert o.estimate_mb == pytest.approx(o.peak_mb, rel=0.2), (o.estimate_mb, o.peak_mb)
    # one worker: the run's predicted peak is within 20 % of the measured one
    assert r2.predicted_peak_mb == pytest.approx(r2.measured_peak_mb, rel=0.2)


def test_calibrate_needs_points():
    with pytest.raises(OppndaError):
        cal.calibrate(ResourceManager(), [])
    with pytest.raises(OppndaError, match="not a folder"):
        cal.calibrate(ResourceManager(), "/no/such/folder")


def _generated_eventlogs(folder, reps):
    """Real EventLogReport text, made large by repeating the shipped 1 MB head."""
    src = glob.glob(os.path.join(HEADS, "*_EventLogReport.txt"))[0]
    data = open(src, "rb").read()
    data = data[: data.rfind(b"\n") + 1]
    out = []
    for n in reps:
        p = folder / f"TEST_EpidemicRouter_{n}_240_5M_EventLogReport.txt"
        with open(p, "wb") as f:
            for _ in range(n):
                f.write(data)
        out.append(str(p))
    return out


@pytest.mark.skipif(not os.path.isdir(HEADS), reason="shared data not present")
def test_calibrate_folder_on_real_parsing_predicts_larger_files(tmp_path):
    sample_dir = tmp_path / "sample"
    sample_dir.mkdir()
    _generated_eventlogs(sample_dir, [1, 2, 4, 8])
    m = ResourceManager()
    c = cal.calibrate_folder(sample_dir, m, sample=4, start_method="forkserver")
    assert len(c.points) == 4 and "EventLogReport" in c.per_type
    assert 0.5 < c.per_type["EventLogReport"].gamma < 20
    big = _generated_eventlogs(tmp_path, [24])
    r = Job(big, cal.read_report_work, (), m, workers=1, start_method="forkserver", sample_interval=0.05).run()
    o = r.outcomes[0]
    assert o.status == "processed"
    # Extrapolating 3x beyond the sample (8 -> 24 MB): the linear model errs on the safe side.
    # Measured here: +6..+8 % with spawn, +22..+24 % with forkserver workers whose server has
    # pandas preloaded (a fresh worker idles lower than the warmed calibration workers). The
    # issue's 20 % goal holds for interpolation (the sample includes a folder's largest file).
    assert o.peak_mb <= o.estimate_mb <= 1.3 * o.peak_mb, (o.estimate_mb, o.peak_mb)


def test_a_job_can_learn_from_its_own_run(tmp_path):
    files = _sparse(tmp_path, [2, 6, 12, 20])
    m = ResourceManager(gamma=7.0)
    r = Job(files, tw.hold_alloc, (2.5, 0.05), m, workers=1, start_method="fork", learn=True).run()
    assert r.calibration is not None and r.calibration.applied
    assert m.gamma == pytest.approx(2.5, rel=0.1)
    assert r.to_summary_dict()["calibration"]["n_points"] == 4


def test_small_or_same_size_files_keep_the_prior_gamma():
    """A 100 KB file's ~10 MB fixed parser cost says nothing about γ: only c is fitted."""
    pts = [cal.CalibrationPoint(f"f{i}", "T", 95_000 + i, 10 * MB, 20 * MB) for i in range(4)]
    overall, per_type = cal.fit(pts, prior_gamma=2.5)
    assert overall.gamma == 2.5 and not overall.gamma_learnt
    assert overall.intercept_mb == pytest.approx((10 * MB - 2.5 * 95_001.5) / MB)
    # a real spread of large sizes is learnt
    pts = [cal.CalibrationPoint(f"g{i}", "T", s * MB, (4 * s + 5) * MB, 20 * MB) for i, s in enumerate([1, 4, 8, 16])]
    overall, _ = cal.fit(pts, prior_gamma=2.5)
    assert overall.gamma_learnt and overall.gamma == pytest.approx(4.0)
