"""The one pipeline (job.Run): outputs guarded, locked and accounted for; plan = the memory model."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from oppnda_nb import ResourceManager, job, pool
from oppnda_nb.cli import progress_line
from oppnda_nb.averaging import sample_folder
from oppnda_nb.errors import OppndaError
from oppnda_nb.memory_model import helpers_allowance, plan_peak, worker_adjustment
from oppnda_nb.pool import default_start_method as pool_default_start_method
from oppnda_nb.system import MB


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("OPPNDA_CACHE_DIR", str(tmp_path / "cache"))


def _small_folder(dst: Path, n_ttl: int = 2) -> Path:
    """MessageStatsReports of 2 seeds x ``n_ttl`` TTLs x 1 buffer from the bundled sample."""
    dst.mkdir(parents=True, exist_ok=True)
    picked = [p for p in sorted(sample_folder().glob("*MessageStatsReport.txt")) if "_10M_" in p.name]
    ttls = sorted({p.name.split("_")[3] for p in picked})[:n_ttl]
    for p in picked:
        if p.name.split("_")[3] in ttls and p.name.split("_")[1] == "EpidemicRouter":
            shutil.copy(p, dst / p.name)
    assert len(list(dst.iterdir())) >= 2 * n_ttl
    return dst


def test_run_writes_run_json_and_exit_code(tmp_path):
    folder = _small_folder(tmp_path / "in")
    res = job.Run(folder, output=tmp_path / "out", workers=1).run()
    assert res.exit_code == job.EXIT_OK
    data = json.loads((tmp_path / "out" / "run.json").read_text())
    assert data["status"] == "finished" and data["partial"] is False
    assert data["counts"]["processed"] == len(list(folder.iterdir()))
    assert not (tmp_path / "out" / ".oppnda.lock").exists()  # released at the end


def test_a_failed_file_gives_exit_code_1_and_is_named(tmp_path):
    folder = _small_folder(tmp_path / "in")
    bad = folder / "TEST_EpidemicRouter_9_60_10M_MessageStatsReport.txt"
    bad.write_bytes(b"\x00\x01 not a report")
    res = job.Run(folder, output=tmp_path / "out", workers=1).run()
    assert res.exit_code == job.EXIT_INCOMPLETE
    assert bad.name in res.summary()
    assert json.loads((tmp_path / "out" / "run.json").read_text())["partial"] is True


def test_outputs_never_replace_inputs(tmp_path):
    folder = _small_folder(tmp_path / "in")
    first = sorted(folder.iterdir())[0]
    before = first.read_bytes()
    cfg = {"folder": str(folder), "report_types": ["MessageStatsReport"],
           "filename_pattern": {"delimiter": "_", "components": {
               "scenario_name": 0, "router": 1, "seed": 2, "ttl": 3, "buffer": 4, "report_type": 5}},
           "average_groups": [{"name": "x", "group_by": ["router", "ttl", "buffer"],
                               "output_template": "{scenario_name}_{router}_1_{ttl}_{buffer}_{report_type}.txt"}]}
    with pytest.raises(OppndaError, match="replace input"):
        job.Run(config=cfg, output=folder)
    assert first.read_bytes() == before


def test_outputs_never_replace_inputs_through_a_linked_folder(tmp_path):
    folder = _small_folder(tmp_path / "in")
    link = tmp_path / "link"
    link.symlink_to(folder, target_is_directory=True)
    cfg = {"report_types": ["MessageStatsReport"],
           "filename_pattern": {"delimiter": "_", "components": {
               "scenario_name": 0, "router": 1, "seed": 2, "ttl": 3, "buffer": 4, "report_type": 5}},
           "average_groups": [{"name": "x", "group_by": ["router", "ttl", "buffer"],
                               "output_template": "{scenario_name}_{router}_1_{ttl}_{buffer}_{report_type}.txt"}]}
    with pytest.raises(OppndaError, match="replace input"):
        job.Run(folder, config=cfg, output=link)
    # the same names in another folder are no inputs: the run may write them there
    other = tmp_path / "other"
    other.mkdir()
    for p in sorted(folder.iterdir())[:3]:
        (other / p.name).write_text("an earlier output")
    job.Run(folder, config=cfg, output=other)


def test_planned_names_are_computed_only_for_an_output_folder_that_holds_inputs(tmp_path):
    from oppnda_nb.averaging.writers import OutputFolder

    folder = _small_folder(tmp_path / "in")
    inputs = [str(p) for p in sorted(folder.iterdir())]
    asked = []

    def names():
        asked.append(1)
        return [os.path.basename(inputs[0])]

    OutputFolder(tmp_path / "out").check(names, inputs, input_folders=[folder])
    assert asked == []
    with pytest.raises(OppndaError, match="replace input"):
        OutputFolder(folder).check(names, inputs, input_folders=[folder])
    assert asked == [1]


def test_an_unwritable_output_folder_is_refused_before_any_work(tmp_path):
    folder = _small_folder(tmp_path / "in")
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("x")
    with pytest.raises(OppndaError, match="Cannot write into the output folder"):
        job.Run(folder, output=blocker / "out")


def test_a_second_run_into_a_locked_folder_is_refused(tmp_path):
    folder = _small_folder(tmp_path / "in")
    out = tmp_path / "out"
    out.mkdir()
    (out / ".oppnda.lock").write_text(f"{os.getppid()}\n")  # a live process holds it
    with pytest.raises(OppndaError, match="Another run"):
        job.Run(folder, output=out, workers=1).run()
    (out / ".oppnda.lock").write_text("999999999\n")  # stale: no such process
    assert job.Run(folder, output=out, workers=1).run().exit_code == job.EXIT_OK


def test_nothing_matched_is_a_usage_error_that_creates_nothing(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(OppndaError, match="No matching report files"):
        job.Run(empty, output=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_plan_is_the_memory_model(tmp_path):
    import pandas  # noqa: F401  (as in a notebook: the kernel has it already, so the plan adds nothing for it)

    folder = _small_folder(tmp_path / "in")
    rm = ResourceManager(total_ram_mb=4000)
    p = job.plan_folder(folder, rm)
    method = pool_default_start_method()
    assert p.estimates == [rm.model.estimate(k, s) for k, s in zip(p.kinds, p.sizes)]
    # (key:value files only: no curves to average, so the pool phase is the peak)
    held = len(p.files) * job.RESULT_BYTES
    assert p.held_bytes == pytest.approx(held)
    assert p.predicted_peak_bytes == pytest.approx(
        plan_peak(p.kernel_bytes + held - p.kernel_shared_bytes, p.estimates, p.workers,
                  p.budget_bytes, idle_bytes=rm.overhead_mb * MB, helpers_bytes=helpers_allowance(p.estimates, method),
                  per_worker_bytes=worker_adjustment(method, min(p.workers, len(p.estimates))),
                  admitted_bytes=p.kernel_bytes + held))  # (plan_folder plans a run on the local pool)


def test_plan_holds_the_curves_and_averages_them(monkeypatch):
    import pandas  # noqa: F401

    rm = ResourceManager(total_ram_mb=4000)
    files = ["/x/TEST_A_1_60_2M_BufferOccupancyReport.txt", "/x/TEST_A_1_60_2M_MessageStatsReport.txt"]
    p = job.plan(files, rm, sizes=[1 * MB, 1000], workers=1, in_process=True)
    curves = job.CURVE_HELD_FACTOR * 1 * MB
    held = job.CURVE_BASE_BYTES + job.RESULT_BYTES + curves
    assert p.after_pool_bytes == pytest.approx(p.kernel_bytes + held + job.AVERAGING_FACTOR * curves)
    assert p.predicted_peak_bytes == pytest.approx(max(
        p.after_pool_bytes, plan_peak(p.kernel_bytes + held, p.estimates, 1, p.budget_bytes)))
    monkeypatch.delitem(sys.modules, "pandas")  # a kernel that has not imported pandas yet will
    fresh = job.plan(files, rm, sizes=[1 * MB, 1000], workers=1, in_process=True)
    assert fresh.after_pool_bytes - p.after_pool_bytes == pytest.approx(job.PANDAS_BYTES, rel=0.05)  # (alone)
    pooled = job.plan(files, rm, sizes=[1 * MB, 1000], workers=2)
    assert pooled.after_pool_bytes - p.after_pool_bytes == pytest.approx(job.PANDAS_NEXT_TO_POOL_BYTES, rel=0.05)
    assert "recommended workers" in p.text()


def test_plan_counts_pandas_next_to_the_pool_only_after_the_first_curve(monkeypatch):
    # a fixed kernel (and no sharing allowance); a budget large enough for every file together
    rm = ResourceManager(total_ram_mb=400_000, base_reader=lambda: 30 * MB)
    curve, small_curve = "/x/TEST_A_1_60_2M_BufferOccupancyReport.txt", "/x/TEST_A_2_60_2M_BufferOccupancyReport.txt"
    stats = "/x/TEST_A_1_60_2M_MessageStatsReport.txt"
    monkeypatch.delitem(sys.modules, "pandas", raising=False)  # a kernel that has not imported pandas yet
    method = pool_default_start_method()

    def both(files, sizes, workers):
        kw = dict(sizes=sizes, workers=workers, start_method=method)
        return job.plan(files, rm, **kw), job.plan(files, rm, local_pool=True, **kw)

    def phase(p, kernel_and_held, ests, local=True):
        # the kernel shares pages with the pool's processes; the local pool's admission reserves the
        # kernel's planned growth (kernel + held) from the start
        return plan_peak(kernel_and_held - p.kernel_shared_bytes, ests, p.workers,
                         p.budget_bytes, idle_bytes=rm.overhead_mb * MB, helpers_bytes=helpers_allowance(p.estimates, method),
                         per_worker_bytes=worker_adjustment(method, min(p.workers, len(p.estimates))),
                         admitted_bytes=p.kernel_bytes + p.held_bytes if local else kernel_and_held)

    # one large curve file: it runs next to the bare kernel; pandas comes with its summary, next to its
    # idle worker
    eager, waits = both([curve], [600 * MB], 1)
    assert eager.kernel_shared_bytes == waits.kernel_shared_bytes == 0.0
    pandas = job.PANDAS_NEXT_TO_POOL_BYTES
    assert eager.predicted_peak_bytes == pytest.approx(phase(eager, eager.kernel_bytes + eager.held_bytes, eager.estimates,
                                                             local=False))
    idle_worker = job.WORKER_REFERENCE_BYTES + worker_adjustment(method, 1)
    assert waits.predicted_peak_bytes == pytest.approx(max(
        phase(waits, waits.kernel_bytes + waits.held_bytes - pandas, waits.estimates),
        phase(waits, waits.kernel_bytes + waits.held_bytes, []) + idle_worker, waits.after_pool_bytes))
    assert waits.predicted_peak_bytes < eager.predicted_peak_bytes - pandas / 2
    # two curve files and one key:value file on two workers: the smaller curve may be the first summary,
    # the larger one still runs next to pandas then
    files, sizes = [curve, small_curve, stats], [300 * MB, 100 * MB, 1000]
    eager, waits = both(files, sizes, 2)
    rest = [e for f, e in zip(files, waits.estimates) if f != small_curve]
    assert waits.predicted_peak_bytes == pytest.approx(max(
        phase(waits, waits.kernel_bytes + waits.held_bytes - pandas, waits.estimates),
        phase(waits, waits.kernel_bytes + waits.held_bytes, rest), waits.after_pool_bytes))
    assert waits.predicted_peak_bytes <= eager.predicted_peak_bytes
    # key:value files only: pandas comes with averaging, after the pool
    eager, waits = both([stats], [1000], 1)
    assert waits.predicted_peak_bytes == pytest.approx(max(
        phase(waits, waits.kernel_bytes + waits.held_bytes - pandas, waits.estimates), waits.after_pool_bytes))
    assert waits.after_pool_bytes == pytest.approx(eager.after_pool_bytes)


def test_a_run_plans_again_when_a_face_imported_pandas_after_the_plan(tmp_path, monkeypatch):
    folder = _small_folder(tmp_path / "in")
    shutil.copy(next(sample_folder().glob("*MessageDelayReport.txt")), folder)  # a curve: pandas comes later
    import pandas as pd
    monkeypatch.delitem(sys.modules, "pandas")
    run = job.Run(folder, output=tmp_path / "out", workers=1, cache=False)
    before = run.plan
    assert before.held_bytes >= job.PANDAS_NEXT_TO_POOL_BYTES
    sys.modules["pandas"] = pd  # the notebook's live view imports it between the plan and the start
    res = run.run()
    assert run.plan is not before and run.plan.held_bytes == pytest.approx(before.held_bytes - job.PANDAS_NEXT_TO_POOL_BYTES)
    assert run.job.options.planned_peak_bytes == run.plan.predicted_peak_bytes
    assert run.job.options.kernel_reserve_bytes == pytest.approx(run.plan.kernel_bytes + run.plan.held_bytes)
    assert res.plan is run.plan and res.exit_code == job.EXIT_OK


def test_the_kernel_imports_pandas_only_when_a_curve_summary_arrives(tmp_path):
    """What Plan(local_pool=True) stands on: on the local pool, a run's kernel has not imported pandas
    when its pool ends unless a curve summary (a DataFrame) came back (checked in a fresh process)."""
    sample = sample_folder()
    for kind in ("nocurve", "curve"):
        d = tmp_path / kind
        d.mkdir()
        wanted = ("MessageStatsReport", "DeliveredMessagesReport") + (("MessageDelayReport",) if kind == "curve" else ())
        for src in sorted(sample.glob("*_EpidemicRouter_*_10M_*.txt")):
            if src.name.rsplit("_", 1)[1][:-4] in wanted:
                shutil.copy(src, d / src.name)
    code = (
        "import sys\n"
        "from oppnda_nb import job\n"
        "seen = []\n"
        "def on(e):\n"
        "    if e.kind == 'phase' and e.data == 'averaging': seen.append('pandas' in sys.modules)\n"
        "for folder in sys.argv[1:]:\n"
        "    seen.clear()\n"
        "    r = job.Run(folder, output=folder + '-out', workers=1, cache=False)\n"
        "    assert r.plan.workers == 1 and not r.job.options.in_process\n"
        "    r.add_listener(on)\n"
        "    r.run()\n"
        "    print(folder.rsplit('/', 1)[1], seen, 'pandas' in sys.modules)\n")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "nocurve"), str(tmp_path / "curve")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == ["nocurve [False] True", "curve [True] True"]


@pytest.mark.parametrize("again", [False, True])
def test_a_finished_run_nobody_refers_to_is_freed_without_the_cyclic_collector(tmp_path, again):
    """A notebook re-runs and rebinds ``result``: the old run's summaries must go at once, not at the
    next full collection (the pool, the run and the result keep no reference cycle)."""
    import gc
    import weakref

    folder = _small_folder(tmp_path / "in")
    shutil.copy(next(sample_folder().glob("*MessageDelayReport.txt")), folder)  # a curve (a DataFrame)
    if again:  # the unchanged re-run: averages reused, summaries loaded from the cache when asked
        os.utime(folder, None)
        past = time.time() - 3600
        for p in folder.iterdir():
            os.utime(p, (past, past))
        job.Run(folder, output=tmp_path / "first", workers=1, cache=tmp_path / "cache").run()
    gc.collect()
    gc.disable()
    try:
        run = job.Run(folder, output=tmp_path / "out", workers=1, cache=tmp_path / "cache" if again else False)
        res = run.run()
        assert res.reused is again and len(res.job.results) == len(list(folder.iterdir()))
        assert len(res.memory) > 0  # the memory frame, read once
        refs = [weakref.ref(x) for x in (run, res, run.job, res.job, res.job.outcomes[0])]
        del run, res
        job._current = None  # (the module remembers the last run for %oppnda stop)
        assert [r() is None for r in refs] == [True] * len(refs)
    finally:
        gc.enable()


def test_a_run_leaves_the_collector_as_it_found_it(tmp_path):
    """A run freezes the kernel's older objects while it prepares and averages (no full collection
    walks them), and unfreezes them after, also when the preparation fails."""
    import gc

    folder = _small_folder(tmp_path / "in")
    assert gc.get_freeze_count() == 0
    job.Run(folder, output=tmp_path / "out", workers=0).run()
    assert gc.get_freeze_count() == 0 and gc.isenabled()
    with pytest.raises(OppndaError, match="No matching report files"):
        job.Run(tmp_path / "out", config={"report_types": ["NoSuchReport"]}, output=tmp_path / "o2")
    assert gc.get_freeze_count() == 0 and gc.isenabled()


def test_a_run_learns_from_measured_peaks(tmp_path):
    folder = _small_folder(tmp_path / "in")
    rm = ResourceManager()
    res = job.Run(folder, output=tmp_path / "out", manager=rm, workers=1).run()
    measured = [o for o in res.outcomes if o.peak_mb]
    assert measured, "the pool measures each file's worker peak"
    learned = rm.model.learned()
    assert "MessageStatsReport" in learned
    for o in measured:
        assert learned["MessageStatsReport"].estimate(o.size) >= o.peak_mb * MB


def test_folders_and_fifos_named_like_reports_are_skipped_with_a_reason(tmp_path):
    folder = _small_folder(tmp_path / "in")
    (folder / "TEST_EpidemicRouter_7_60_10M_MessageStatsReport.txt").mkdir()
    os.mkfifo(folder / "TEST_EpidemicRouter_8_60_10M_MessageStatsReport.txt")
    run = job.Run(folder, output=tmp_path / "out", workers=1)
    reasons = {Path(p).name: r for p, r in run.skipped}
    assert "a folder" in reasons["TEST_EpidemicRouter_7_60_10M_MessageStatsReport.txt"]
    assert "a FIFO" in reasons["TEST_EpidemicRouter_8_60_10M_MessageStatsReport.txt"]
    assert run.run().exit_code == job.EXIT_OK


def test_a_rerun_reads_only_what_changed(tmp_path):
    folder = _small_folder(tmp_path / "in")
    cache = tmp_path / "summaries"
    past = time.time() - 60  # files written in the last seconds are not cached (their mtime may not change)
    for f in folder.iterdir():
        os.utime(f, (past, past))
    first = job.Run(folder, output=tmp_path / "o1", cache=cache, workers=1).run()
    assert first.job.counts["cached"] == 0
    again = job.Run(folder, output=tmp_path / "o2", cache=cache, workers=1).run()
    n = len(list(folder.iterdir()))
    assert again.job.counts["cached"] == n and again.job.counts["processed"] == n
    for name in ("MessageStatsReport_EpidemicRouter_10_buffer_average.txt",):
        assert (tmp_path / "o1" / name).read_bytes() == (tmp_path / "o2" / name).read_bytes()
    changed = sorted(folder.iterdir())[0]
    changed.write_text(changed.read_text().replace("delivered:", "delivered: 1\nx:", 1))
    os.utime(changed, (past + 5, past + 5))
    third = job.Run(folder, output=tmp_path / "o3", cache=cache, workers=1).run()
    assert third.job.counts["cached"] == n - 1
    off = job.Run(folder, output=tmp_path / "o4", cache=False, workers=1).run()
    assert off.job.counts["cached"] == 0


def _aged(folder: Path, seconds: float = 60) -> None:
    past = time.time() - seconds  # files written in the last seconds are never cached
    for f in folder.iterdir():
        os.utime(f, (past, past))


def _outputs(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.txt"))}


def test_an_unchanged_rerun_reuses_the_averages_and_loads_summaries_on_demand(tmp_path):
    folder = _small_folder(tmp_path / "in")
    _aged(folder)
    cache = tmp_path / "summaries"
    first = job.Run(folder, output=tmp_path / "o1", cache=cache, workers=1).run()
    again_run = job.Run(folder, output=tmp_path / "o2", cache=cache, workers=1)
    assert again_run._memo is not None and again_run.cached == {}  # nothing loaded per file
    again = again_run.run()
    n = len(list(folder.iterdir()))
    assert again.exit_code == job.EXIT_OK and again.job.counts["cached"] == n and again.reused
    assert "averages were reused" in again.summary() and not first.reused
    assert _outputs(tmp_path / "o1") and _outputs(tmp_path / "o2") == _outputs(tmp_path / "o1")
    assert again.tables.keys() == first.tables.keys()
    for name, table in first.tables.items():
        assert again.tables[name].equals(table)
    # the per-file summaries, e.g. for figures, are loaded from the cache when asked for
    assert [repr(s.scalars) for s in again.job.results] == [repr(s.scalars) for s in first.job.results]  # (NaN-safe)
    assert again.summary().count("written twice") == first.summary().count("written twice")


@pytest.mark.parametrize("workers", [0, 1])
def test_summaries_reach_the_cache_while_the_run_proceeds(tmp_path, monkeypatch, workers):
    """A kernel that dies late in a run keeps what was parsed: the summaries are stored in batches
    as files finish, not only after the pool."""
    folder = _small_folder(tmp_path / "in", n_ttl=3)
    _aged(folder)
    monkeypatch.setattr(job, "STORE_BATCH", 2)
    run = job.Run(folder, output=tmp_path / "o1", cache=tmp_path / "summaries", workers=workers)
    seen: list[int] = []
    run.add_listener(lambda e: seen.append(run.cache.stats()["entries"])
                     if e.kind == pool.EventKind.FILE_FINISHED else None)
    res = run.run()
    n = len(run.files)
    assert res.job.counts["processed"] == n >= 6 and len(seen) == n
    assert seen == [k - k % 2 for k in range(1, n + 1)]          # stored every 2 files, while running
    assert run.cache.stats()["entries"] == n and run._memo is None
    assert job.Run(folder, output=tmp_path / "o2", cache=tmp_path / "summaries", workers=workers)._memo is not None


def test_a_rerun_takes_the_unchanged_summaries_from_the_result_it_replaces(tmp_path, monkeypatch):
    """A notebook re-runs ``result = Run(...).run()`` on a folder that grew: the files it had are
    taken from the result still held (shared, not loaded from the database again), the same bytes
    come out, and a file rewritten in place is read again."""
    from oppnda_nb.cache import SummaryCache

    folder = _small_folder(tmp_path / "in", n_ttl=3)
    _aged(folder)
    cache = tmp_path / "summaries"
    result = job.Run(folder, output=tmp_path / "o1", cache=cache, workers=0).run()
    old = {s.path: s for s in result.job.results}
    src = sorted(folder.iterdir())[0]
    new = folder / src.name.replace("_1_", "_999_", 1)  # a new seed's report
    shutil.copy(src, new)
    os.utime(new, (time.time() - 60, time.time() - 60))
    asked: list[int] = []
    real = SummaryCache.get_many
    monkeypatch.setattr(SummaryCache, "get_many", lambda self, keys: asked.append(len(keys)) or real(self, keys))
    result = job.Run(folder, output=tmp_path / "o2", cache=cache, workers=0).run()
    assert asked == [1]                                        # only the new file was looked up
    counts = result.job.counts
    assert counts["processed"] == len(old) + 1 and counts["cached"] == len(old)
    assert all(s is old[s.path] for s in result.job.results if s.path in old)  # shared with the old result
    fresh = job.Run(folder, output=tmp_path / "o3", cache=False, workers=0).run()
    assert _outputs(tmp_path / "o2") and _outputs(tmp_path / "o2") == _outputs(tmp_path / "o3")
    # a report rewritten in place (another mtime) is read again
    changed = sorted(old)[1]
    Path(changed).write_text(Path(changed).read_text().replace("delivered:", "x: 1\ndelivered:", 1))
    os.utime(changed, (time.time() - 30, time.time() - 30))
    third = job.Run(folder, output=tmp_path / "o4", cache=cache, workers=0).run()
    assert third.job.counts["cached"] == len(old)            # the others, and the new one now
    assert [s.scalars.get("x") for s in third.job.results if s.path == changed] == [1.0]
    assert job._recent() is third._recent
    del result, third, fresh
    job._current = None  # (the module remembers the last run for %oppnda stop)
    assert job._recent() is None                              # kept only while a result is


def test_a_result_keeps_no_summary_of_a_file_written_just_before_it_was_read(tmp_path):
    folder = _small_folder(tmp_path / "in")                   # written just now: may still change
    fresh = job.Run(folder, output=tmp_path / "o1", cache=tmp_path / "summaries", workers=0).run()
    assert fresh.job.counts["processed"] > 0 and fresh._recent.entries == {}
    _aged(folder)
    aged = job.Run(folder, output=tmp_path / "o2", cache=tmp_path / "summaries", workers=0).run()
    assert sorted(aged._recent.entries) == sorted(s.path for s in aged.job.results)
    assert job.Run(folder, output=tmp_path / "o3", cache=False, workers=0).run()._recent is None


def test_a_changed_config_or_file_is_not_an_unchanged_rerun(tmp_path):
    folder = _small_folder(tmp_path / "in")
    _aged(folder)
    cache = tmp_path / "summaries"
    job.Run(folder, output=tmp_path / "o1", cache=cache, workers=1).run()
    other = job.Run(folder, output=tmp_path / "o2", cache=cache, workers=1, group_by=["router"])
    assert other._memo is None and len(other.cached) == len(other.files)  # summaries reused, not the averages
    other.run()
    changed = sorted(folder.iterdir())[0]
    changed.write_text(changed.read_text().replace("delivered:", "delivered: 1\nx:", 1))
    os.utime(changed, (time.time() - 30, time.time() - 30))
    third = job.Run(folder, output=tmp_path / "o3", cache=cache, workers=1)
    assert third._memo is None
    assert third.run().job.counts["cached"] == len(third.files) - 1


def test_fresh_or_failed_files_make_no_reusable_run(tmp_path):
    folder = _small_folder(tmp_path / "in")
    cache = tmp_path / "summaries"
    job.Run(folder, output=tmp_path / "o1", cache=cache, workers=1).run()  # files written just now
    assert job.Run(folder, output=tmp_path / "o2", cache=cache, workers=1)._memo is None
    (folder / "TEST_EpidemicRouter_9_60_10M_MessageStatsReport.txt").write_bytes(b"")  # fails to parse
    _aged(folder)
    failed = job.Run(folder, output=tmp_path / "o3", cache=cache, workers=1).run()
    assert failed.job.counts["failed"] == 1
    assert job.Run(folder, output=tmp_path / "o4", cache=cache, workers=1)._memo is None


def test_tiny_key_value_work_runs_in_process_with_the_same_accounting(tmp_path):
    folder = _small_folder(tmp_path / "in")
    (folder / "TEST_EpidemicRouter_9_60_10M_MessageStatsReport.txt").write_bytes(b"")  # fails
    before = {c.pid for c in psutil.Process().children(recursive=True)}
    run = job.Run(folder, output=tmp_path / "out", cache=False)
    assert run.job.options.in_process and run.plan.workers == 1
    lines: list[str] = []
    run.add_listener(lambda e: lines.append(progress_line(e.data)) if e.kind == pool.EventKind.PROGRESS else None)
    res = run.run()
    assert lines and all("in this process (no workers)" in ln and "running on" not in ln for ln in lines)
    assert {c.pid for c in psutil.Process().children(recursive=True)} <= before  # no worker was started
    assert res.job.accounting_ok and res.job.counts["failed"] == 1 and res.exit_code == job.EXIT_INCOMPLETE
    pooled = job.Run(folder, output=tmp_path / "out2", cache=False, workers=2).run()
    assert not pooled.job.workers == 0
    for name in ("MessageStatsReport_EpidemicRouter_10_buffer_average.txt",):
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "out2" / name).read_bytes()


def test_a_run_names_its_phases_after_the_pool(tmp_path):
    run = job.Run(_small_folder(tmp_path / "in"), output=tmp_path / "out", cache=False, workers=1)
    kinds: list[str] = []
    run.add_listener(lambda e: kinds.append(f"{e.kind}:{e.data}" if e.kind == job.PHASE else str(e.kind)))
    run.run()
    tail = [k for k in kinds if k in ("done", "phase:averaging", "phase:writing", job.RUN_DONE)]
    assert tail == ["done", "phase:averaging", "phase:writing", job.RUN_DONE]
    from oppnda_nb.cli import PhaseTracker

    tracker = PhaseTracker()  # what the progress line and the panel follow
    assert tracker(job.Event(job.PHASE, "writing")) and tracker.phase == "writing"


def test_big_averages_are_not_kept_for_reuse(tmp_path, monkeypatch):
    folder = _small_folder(tmp_path / "in")
    _aged(folder)
    monkeypatch.setattr(job, "REUSE_MAX_BYTES", 1)
    job.Run(folder, output=tmp_path / "o1", cache=tmp_path / "c", workers=1).run()
    again = job.Run(folder, output=tmp_path / "o2", cache=tmp_path / "c", workers=1)
    assert again._memo is None and len(again.cached) == len(again.files)  # the summaries are, though


def test_what_a_finished_file_teaches_the_model():
    from oppnda_nb.memory_model import WORKER_REFERENCE_BYTES
    from oppnda_nb.pool import FileOutcome

    spawned = FileOutcome("f", 10, "processed", peak_mb=90.0, baseline_mb=55.0, peak_delta_mb=35.0)
    forked = FileOutcome("f", 10, "processed", peak_mb=61.5, baseline_mb=26.5, peak_delta_mb=35.0)
    assert job.observed_peak(spawned) == job.observed_peak(forked) == WORKER_REFERENCE_BYTES + 35 * MB
    assert job.observed_peak(FileOutcome("f", 10, "processed", peak_mb=70.0)) == 70 * MB
    assert job.observed_peak(FileOutcome("f", 10, "failed")) is None


def test_a_rerun_plans_the_summaries_it_holds_from_the_cache(tmp_path):
    import pandas  # noqa: F401

    folder = _small_folder(tmp_path / "in")
    _aged(folder)
    first = job.Run(folder, output=tmp_path / "o1", cache=tmp_path / "c", workers=1)
    fresh_held = first.plan.after_pool_bytes - first.plan.kernel_bytes
    first.run()
    again = job.Run(folder, output=tmp_path / "o2", cache=tmp_path / "c", workers=1)
    assert again._memo is not None and not again.plan.files  # nothing to parse ...
    assert again.plan.after_pool_bytes - again.plan.kernel_bytes == pytest.approx(fresh_held)  # ... all held


def test_plan_takes_off_what_an_unshared_kernel_will_share_with_the_pool(monkeypatch):
    from oppnda_nb import memory_model

    rm = ResourceManager(total_ram_mb=4000)
    files, sizes = ["/x/TEST_A_1_60_2M_EventLogReport.txt"], [50 * MB]
    monkeypatch.setattr(rm, "base_bytes", lambda: 40 * MB)
    monkeypatch.setattr(rm, "shared_with_others_bytes", lambda: 0.5 * MB)  # a command-line kernel, alone
    alone = job.plan(files, rm, sizes=sizes, workers=1, start_method="forkserver", local_pool=True)
    monkeypatch.setattr(rm, "shared_with_others_bytes", lambda: 12 * MB)   # a Jupyter kernel
    shared = job.plan(files, rm, sizes=sizes, workers=1, start_method="forkserver", local_pool=True)
    assert alone.kernel_shared_bytes == memory_model.KERNEL_SHARED_WITH_POOL_BYTES["forkserver"] > 0
    assert shared.kernel_shared_bytes == 0.0
    assert shared.predicted_peak_bytes - alone.predicted_peak_bytes == pytest.approx(alone.kernel_shared_bytes)
    in_process = job.plan(files, rm, sizes=sizes, workers=1, in_process=True, local_pool=True)
    assert in_process.kernel_shared_bytes == 0.0  # no pool processes


def test_plan_of_the_local_pool_is_at_most_the_budget_unless_one_file_alone_passes_it(monkeypatch):
    rm = ResourceManager(total_ram_mb=400, eta=0.5, base_reader=lambda: 30 * MB)  # a 200 MB budget
    files = [f"/x/TEST_A_{i}_60_2M_EventLogReport.txt" for i in range(4)]
    kw = dict(sizes=[60 * MB] * 4, workers=4, start_method="forkserver")
    free = job.plan(files, rm, **kw)             # as a pool that may run all four together
    local = job.plan(files, rm, local_pool=True, **kw)
    one = job.plan(files, rm, local_pool=True, **{**kw, "workers": 1})  # the largest file alone
    assert free.predicted_peak_bytes > max(free.budget_bytes, one.predicted_peak_bytes)
    assert local.predicted_peak_bytes == pytest.approx(max(local.budget_bytes, one.predicted_peak_bytes))
    # one file that does not fit even alone: the pool runs it anyway (oversize), the plan says so
    big = job.plan(files[:1], rm, sizes=[3000 * MB], workers=4, start_method="forkserver", local_pool=True)
    assert big.predicted_peak_bytes > big.budget_bytes
