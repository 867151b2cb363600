"""The pooled runner: results, events, admission order, faults, stop, accounting, no leftovers."""
from __future__ import annotations

import _thread
import os
import signal
import threading

import psutil
import pytest

import workfns as tw
from conftest import big_manager, make_files
from oppnda_nb.errors import OppndaError
from oppnda_nb.pool import Event, Job, JobResult
from oppnda_nb.resource_manager import ResourceManager

from oppnda_nb.system import MB
METHODS = ["fork", "forkserver", "spawn"]


class Recorder:
    """A listener that keeps every event (in the order the pool emitted them)."""

    def __init__(self, on=None):
        self.events: list[Event] = []
        self.on = on

    def __call__(self, ev: Event) -> None:
        self.events.append(ev)
        if self.on is not None:
            self.on(ev)

    def kinds(self, kind):
        return [e.data for e in self.events if e.kind == kind]

    def worker_pids(self):
        return {e.data.worker_pid for e in self.events if e.kind == "file_started"}


def helper_pids():
    """Children of this process that are multiprocessing's own helpers (forkserver, resource tracker)."""
    out = set()
    for c in psutil.Process().children(recursive=True):
        try:
            cmd = " ".join(c.cmdline())
        except psutil.Error:
            continue
        if "forkserver" in cmd or "resource_tracker" in cmd:
            out.add(c.pid)
    return out


def assert_no_leftovers(rec: Recorder, result: JobResult):
    pids = rec.worker_pids() | {int(c.split("_")[1]) for c in result.memory.columns if c.startswith("worker_")}
    alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert alive == [], f"worker processes left behind: {alive}"
    extra = {c.pid for c in psutil.Process().children(recursive=True)} - helper_pids()
    assert not extra, f"unexpected child processes: {extra}"


# -- the basics --------------------------------------------------------------------------
def test_results_outcomes_and_events(tmp_path):
    files = make_files(tmp_path, [(f"r{i}.txt", 1000 * (i + 1)) for i in range(6)])
    rec = Recorder()
    job = Job(files, tw.read_size, manager=big_manager(), skipped=[("/x/y.txt", "does not match the pattern")],
              workers=2, sample_interval=0.05, start_method="fork")
    job.add_listener(rec)
    result = job.run()
    assert result.status == "finished" and result.accounting_ok
    assert result.counts == {"processed": 6, "skipped": 1, "failed": 0, "cancelled": 0, "total": 7, "cached": 0}
    assert result.results == [1000 * (i + 1) for i in range(6)]  # input order, real work
    assert [o.path for o in result.outcomes] == files + ["/x/y.txt"]
    assert result.outcomes[-1].reason == "does not match the pattern"
    kinds = [e.kind for e in rec.events]
    assert kinds.count("file_started") == 6 and kinds.count("file_finished") == 6
    assert kinds[-1] == "done" and rec.events[-1].data is result
    last = rec.kinds("progress")[-1]
    assert (last.files_done, last.files_total, last.bytes_done) == (7, 7, sum(1000 * (i + 1) for i in range(6)))
    assert rec.kinds("memory"), "memory samples are sent to listeners"
    for col in ("t", "system_used_mb", "system_available_mb", "kernel_mb", "workers_mb", "budget_mb",
                "predicted_peak_mb", "running"):
        assert col in result.memory.columns
    assert any(c.startswith("worker_") for c in result.memory.columns)
    d = result.to_summary_dict()
    assert d["accounting_ok"] and d["counts"]["processed"] == 6
    assert "6 processed, 1 skipped" in result.summary() and "accounting OK" in result.summary()
    assert_no_leftovers(rec, result)


def test_background_start_wait_and_progress(tmp_path):
    files = make_files(tmp_path, [(f"r{i}.txt", 10) for i in range(4)])
    job = Job(files, tw.sleep_work, (0.1,), manager=big_manager(), workers=2, start_method="fork")
    job.start()
    assert job.running or job.result is not None
    result = job.wait(timeout=60)
    assert not job.running and job.result is result
    assert result.results == [os.path.basename(f) for f in files]
    assert job.progress.files_done == 4 and job.progress.eta_s == 0.0
    with pytest.raises(OppndaError):
        job.start()


def test_user_mistakes_raise_oppnda_error(tmp_path):
    with pytest.raises(OppndaError, match="top-level"):
        Job([], lambda p: p)
    with pytest.raises(OppndaError, match="workers"):
        Job([], tw.read_size, workers=0)
    with pytest.raises(OppndaError, match="start_method"):
        Job([], tw.read_size, start_method="teleport")


def test_worker_count_comes_from_the_manager(tmp_path):
    files = make_files(tmp_path, [(f"r{i}.txt", 100) for i in range(5)])

    class Mgr(ResourceManager):
        def get_optimal_workers(self, file_paths=None, file_sizes=None):
            self.seen = list(file_sizes)
            return 1

    m = Mgr(memory_reader=lambda: (0.0, 64 * 1024 * MB))
    r = Job(files, tw.pid_and_sleep, (0.0,), m, start_method="fork").run()
    assert sorted(m.seen) == [100] * 5
    assert r.workers == 1 and len(set(r.results)) == 1


def test_empty_and_all_skipped():
    r = Job([], tw.read_size, manager=big_manager(), skipped=[("a", "why")]).run()
    assert r.status == "finished" and r.accounting_ok and r.counts["skipped"] == 1


# -- admission control -------------------------------------------------------------------
def _tight_manager(headroom_mb: float, gamma: float):
    """A manager whose budget is the kernel's current memory + headroom (others = 0)."""
    from oppnda_nb.system import ProcessMemoryReader

    kernel = ProcessMemoryReader().read(os.getpid()).mem
    eta = 0.75
    total = (kernel + headroom_mb * MB) / eta
    return ResourceManager(eta=eta, gamma=gamma, overhead_mb=0, memory_reader=lambda: (0.0, total))


def test_oversize_file_runs_alone_with_a_warning(tmp_path):
    # gamma 1000: a 2 MB file is estimated at 1.9 GB, far beyond the 250 MB headroom (whatever the
    # test process's own memory does meanwhile); 20 kB files at 20 MB
    files = make_files(tmp_path, [("big.txt", 2_000_000)] + [(f"s{i}.txt", 20_000) for i in range(6)])
    rec = Recorder()
    # forkserver: a forked worker's PSS holds a share of the (large) test process's pages, which would
    # blur the 250 MB headroom this test is about
    job = Job(files, tw.sleep_work, (0.2,), _tight_manager(250, 1000.0), workers=2, start_method="forkserver",
              sample_interval=0.05, oversize="run-alone")
    job.add_listener(rec)
    r = job.run()
    assert r.accounting_ok and r.counts["processed"] == 7
    assert any("big.txt" in w and "alone" in w for w in r.warnings)
    running = set()
    for ev in rec.events:
        name = getattr(ev.data, "path", "")
        if ev.kind == "file_started":
            if name.endswith("big.txt"):
                assert running == set(), "the oversize file started next to others"
            else:
                assert not any(n.endswith("big.txt") for n in running), "a file started next to the oversize one"
            running.add(name)
        elif ev.kind in ("file_finished", "file_failed"):
            running.discard(name)


def test_large_file_is_not_starved_by_small_ones(tmp_path):
    # A and B are estimated at 200 MB each: they cannot run together in 250 MB. While A runs, B
    # waits at the head; 10 MB files may overtake it at most max_overtakes times.
    files = make_files(tmp_path, [("A.txt", 200_000), ("B.txt", 199_000)] + [(f"s{i:02d}.txt", 10_000) for i in range(12)])
    rec = Recorder()
    job = Job(files, tw.sleep_work, (0.05,), _tight_manager(250, 1000.0), workers=2, start_method="forkserver",
              sample_interval=0.05, max_overtakes=2)
    job.add_listener(rec)
    # A runs long, the small ones are quick: without the bound all 12 would overtake B
    job.work_args = (0.05,)
    r = job.run()
    assert r.accounting_ok and r.counts["processed"] == 14
    started = [os.path.basename(e.data.path) for e in rec.events if e.kind == "file_started"]
    assert started[0] == "A.txt", "largest first"
    overtakers = started[1:started.index("B.txt")]
    assert 0 < len(overtakers) <= 2, started


# -- faults --------------------------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_bad_files_dead_workers_and_accounting(tmp_path, method):
    files = make_files(tmp_path, [("ok1.txt", 10), ("bad1.txt", 20), ("ok2.txt", 30), ("die1.txt", 40),
                                  ("ok3.txt", 50), ("bad2.txt", 60)])
    files.append(str(tmp_path / "missing.txt"))
    rec = Recorder()
    job = Job(files, tw.exit_on_or_raise, manager=big_manager(), workers=2, start_method=method, max_retries=2)
    job.add_listener(rec)
    r = job.run()
    by = {os.path.basename(o.path): o for o in r.outcomes}
    assert r.status == "finished" and r.accounting_ok
    assert [by[n].status for n in ("ok1.txt", "ok2.txt", "ok3.txt")] == ["processed"] * 3
    assert by["ok2.txt"].result == 30
    assert by["bad1.txt"].status == "failed" and by["bad1.txt"].reason == "ValueError: cannot parse bad1.txt"
    assert by["die1.txt"].status == "failed" and by["die1.txt"].attempts == 3
    assert "exit code 3" in by["die1.txt"].reason
    assert by["missing.txt"].status == "failed" and "FileNotFoundError" in by["missing.txt"].reason
    assert r.counts == {"processed": 3, "skipped": 0, "failed": 4, "cancelled": 0, "total": 7, "cached": 0}
    assert r.workers_final == 1  # one worker fewer per death, never below 1
    assert sum("died" in w for w in r.warnings) == 3
    assert_no_leftovers(rec, r)


@pytest.mark.parametrize("method", METHODS)
def test_worker_sigkilled_mid_file_is_retried(tmp_path, method):
    files = make_files(tmp_path, [(f"f{i}.txt", 100 + i) for i in range(4)] + [("victim.txt", 1000)])
    killed = []

    def on(ev):
        if ev.kind == "file_started" and ev.data.path.endswith("victim.txt") and not killed:
            killed.append(ev.data.worker_pid)
            os.kill(ev.data.worker_pid, signal.SIGKILL)

    rec = Recorder(on)
    job = Job(files, tw.sleep_work, (0.3,), manager=big_manager(), workers=2, start_method=method)
    job.add_listener(rec)
    r = job.run()
    victim = r.outcomes[-1]
    assert killed and victim.status == "processed" and victim.attempts == 2
    assert victim.worker_pid != killed[0]
    assert r.accounting_ok and r.counts["processed"] == 5
    assert any("SIGKILL" in w for w in r.warnings)
    assert_no_leftovers(rec, r)


def test_worker_that_dies_once_succeeds_on_retry(tmp_path):
    files = make_files(tmp_path, [("a.txt", 5), ("b.txt", 6)])
    flags = tmp_path / "flags"
    flags.mkdir()
    r = Job(files, tw.die_once, (str(flags),), big_manager(), workers=2, start_method="fork").run()
    assert [o.status for o in r.outcomes] == ["processed", "processed"]
    assert [o.attempts for o in r.outcomes] == [2, 2]
    assert r.workers_final == 1


def test_unpicklable_result_fails_the_file_only(tmp_path):
    files = make_files(tmp_path, [("a.txt", 5)])
    r = Job(files, tw.unpicklable_result, manager=big_manager(), start_method="fork").run()
    assert r.outcomes[0].status == "failed" and "could not be sent" in r.outcomes[0].reason
    assert r.accounting_ok


def test_workers_ignore_sigint(tmp_path):
    files = make_files(tmp_path, [("a.txt", 5)])

    def on(ev):
        if ev.kind == "file_started":
            os.kill(ev.data.worker_pid, signal.SIGINT)

    job = Job(files, tw.sleep_work, (0.3,), manager=big_manager(), start_method="fork")
    job.add_listener(on)
    r = job.run()
    assert r.outcomes[0].status == "processed" and r.outcomes[0].attempts == 1


# -- stop and Ctrl-C -------------------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_stop_mid_run_terminates_everything(tmp_path, method):
    files = make_files(tmp_path, [(f"f{i}.txt", 100 + i) for i in range(8)])
    two_started = threading.Event()
    rec = Recorder(lambda ev: ev.kind == "file_started" and len(rec.kinds("file_started")) >= 2 and two_started.set())
    # the work ignores SIGTERM and would sleep 60 s: only SIGKILL ends it
    job = Job(files, tw.ignore_term_sleep, (60.0,), manager=big_manager(), workers=2, start_method=method)
    job.add_listener(rec)
    job.start()
    assert two_started.wait(60)
    job.stop()
    assert not job.running
    r = job.wait()
    assert r.status == "cancelled" and r.accounting_ok
    assert r.counts["cancelled"] == 8 and r.counts["processed"] == 0
    assert sum("while running" in (o.reason or "") for o in r.outcomes) == 2
    assert_no_leftovers(rec, r)


def test_keyboard_interrupt_returns_a_cancelled_result(tmp_path):
    files = make_files(tmp_path, [(f"f{i}.txt", 100 + i) for i in range(4)])
    rec = Recorder(lambda ev: ev.kind == "file_started" and _thread.interrupt_main())
    job = Job(files, tw.sleep_work, (30.0,), manager=big_manager(), workers=2, start_method="fork")
    job.add_listener(rec)
    r = job.run()  # returns instead of raising
    assert r.status == "cancelled" and r.accounting_ok and r.counts["cancelled"] == 4
    assert any("KeyboardInterrupt" in w for w in r.warnings)
    assert_no_leftovers(rec, r)


def test_a_broken_listener_does_not_break_the_run(tmp_path):
    files = make_files(tmp_path, [("a.txt", 5), ("b.txt", 5)])

    def bad(ev):
        raise RuntimeError("boom")

    job = Job(files, tw.read_size, manager=big_manager(), start_method="fork")
    job.add_listener(bad)
    r = job.run()
    assert r.counts["processed"] == 2 and any("boom" in w for w in job.warnings)


# -- batches of small files ------------------------------------------------------------------
BATCH_METHODS = ["fork", "spawn"]


def _small_files(folder, n, base=100, marked=()):
    """``n`` small files of distinct sizes base..base+n-1; names in ``marked`` (index -> marker)."""
    spec = []
    for i in range(n):
        name = f"{marked[i]}{i}.txt" if i in marked else f"f{i}.txt"
        spec.append((name, base + i))
    return make_files(folder, spec)


def _each_file_once(rec: Recorder, kinds=("file_finished", "file_failed")):
    paths = [o.path for k in kinds for o in rec.kinds(k)]
    return sorted(paths)


@pytest.mark.parametrize("method", BATCH_METHODS)
def test_batches_keep_accounting_with_bad_files_inside(tmp_path, method):
    bad = {i: "bad" for i in (3, 40, 41, 77, 150)}
    files = _small_files(tmp_path, 160, marked=bad)
    rec = Recorder()
    job = Job(files, tw.raise_on, manager=big_manager(), workers=2, start_method=method)
    job.add_listener(rec)
    r = job.run()
    assert job.batches_sent > 0  # small files really went in batches
    assert r.status == "finished" and r.accounting_ok
    assert r.counts == {"processed": 155, "skipped": 0, "failed": 5, "cancelled": 0, "total": 160, "cached": 0}
    for i, o in enumerate(r.outcomes):
        assert o.attempts == 1
        if i in bad:
            assert o.status == "failed" and o.reason == f"ValueError: cannot parse bad{i}.txt"
        else:
            assert o.status == "processed" and o.result == 100 + i
            assert o.peak_delta_mb is not None and o.peak_delta_mb >= 0  # measured per member (Linux)
    # one started and one finished/failed event per file, progress ends at every file
    assert sorted(o.path for o in rec.kinds("file_started")) == sorted(files)
    assert _each_file_once(rec) == sorted(files)
    last = rec.kinds("progress")[-1]
    assert last.files_done == 160 and last.bytes_done == last.bytes_total == sum(100 + i for i in range(160))
    assert_no_leftovers(rec, r)


@pytest.mark.parametrize("method", BATCH_METHODS)
def test_worker_killed_mid_batch_blames_only_the_file_it_ran(tmp_path, method):
    # the smallest file is in the first batch (members come from the small end), after the lead
    files = _small_files(tmp_path, 120, base=200) + make_files(tmp_path, [("kill.txt", 50)])
    rec = Recorder()
    job = Job(files, tw.sigkill_on, manager=big_manager(), workers=2, start_method=method, max_retries=1)
    job.add_listener(rec)
    r = job.run()
    by = {os.path.basename(o.path): o for o in r.outcomes}
    assert r.status == "finished" and r.accounting_ok
    k = by["kill.txt"]
    assert k.status == "failed" and k.attempts == 2 and "SIGKILL" in k.reason
    others = [o for o in r.outcomes if not o.path.endswith("kill.txt")]
    assert all(o.status == "processed" and o.attempts == 1 and o.result == o.size for o in others)
    # it died inside a batch: the files of that batch other than kill.txt went back unpenalised
    assert any("other file(s) of its batch go back to the queue" in w for w in r.warnings)
    assert any("retrying it alone" in w for w in r.warnings)
    assert _each_file_once(rec) == sorted(files)
    assert r.workers_final == 1
    assert_no_leftovers(rec, r)


@pytest.mark.parametrize("method", BATCH_METHODS)
def test_stop_mid_batch_cancels_the_unfinished_members(tmp_path, method):
    files = _small_files(tmp_path, 120)
    some_done = threading.Event()
    rec = Recorder(lambda ev: ev.kind == "file_finished" and len(rec.kinds("file_finished")) >= 6
                   and some_done.set())
    job = Job(files, tw.sleep_work, (0.05,), manager=big_manager(), workers=2, start_method=method)
    job.add_listener(rec)
    job.start()
    assert some_done.wait(60)
    job.stop()
    r = job.wait()
    assert job.batches_sent > 0
    assert r.status == "cancelled" and r.accounting_ok
    c = r.counts
    assert c["processed"] >= 6 and c["cancelled"] > 0 and c["processed"] + c["cancelled"] == 120
    for o in r.outcomes:
        if o.status == "processed":
            assert o.result == os.path.basename(o.path) and o.attempts == 1
        else:
            assert o.status == "cancelled" and "stopped by the user" in o.reason and o.attempts <= 1
    # at most one file per worker was running when it was stopped
    assert sum("while running" in (o.reason or "") for o in r.outcomes) <= 2
    assert_no_leftovers(rec, r)


def test_batch_switch_gives_the_same_results(tmp_path):
    files = _small_files(tmp_path, 80)
    on = Job(files, tw.read_size, manager=big_manager(), workers=2, start_method="fork")
    r_on = on.run()
    off = Job(files, tw.read_size, manager=big_manager(), workers=2, start_method="fork", batch=False)
    r_off = off.run()
    assert on.batches_sent > 0 and off.batches_sent == 0
    assert r_on.results == r_off.results == [100 + i for i in range(80)]
    assert r_on.accounting_ok and r_off.accounting_ok


def test_in_process_run_skips_an_oversize_file_with_its_reason_and_keeps_the_rest(tmp_path):
    files = make_files(tmp_path, [("big.txt", 2_000_000)] + [(f"s{i}.txt", 2_000) for i in range(5)])
    rec = Recorder()
    job = Job(files, tw.file_size, (), _tight_manager(250, 1000.0), in_process=True, sample_interval=0.05,
              oversize="skip")
    job.add_listener(rec)
    r = job.run()
    assert r.accounting_ok
    by_name = {os.path.basename(o.path): o for o in r.outcomes}
    assert str(by_name["big.txt"].status) == "skipped" and "big.txt" in by_name["big.txt"].reason
    assert [str(by_name[f"s{i}.txt"].status) for i in range(5)] == ["processed"] * 5
    assert sorted(by_name[f"s{i}.txt"].result for i in range(5)) == [2_000] * 5
    # every processed file still gets its own event, though they are sent in batches
    assert sorted(os.path.basename(o.path) for o in rec.kinds("file_finished")) == [f"s{i}.txt" for i in range(5)]


def test_outcomes_keep_their_counts_per_status_when_replaced():
    from oppnda_nb.pool.records import FileOutcome, Outcomes, Status

    o = Outcomes()
    o[0] = FileOutcome("a", 1, Status.PROCESSED)
    o[1] = FileOutcome("b", 1, Status.FAILED)
    o.update({2: FileOutcome("c", 1, Status.SKIPPED)})
    o[1] = FileOutcome("b", 1, Status.PROCESSED)  # a retry that worked replaces the failure
    assert {k: v for k, v in o.by_status.items() if v} == {"processed": 2, "skipped": 1}
    assert len(o) == 3


def test_stopping_an_in_process_run_keeps_what_was_done_and_cancels_the_rest(tmp_path):
    # outcomes are recorded in batches: a stop must still count every file processed before it
    files = make_files(tmp_path, [(f"s{i:02d}.txt", 1_000) for i in range(40)])
    rec = Recorder()
    job = Job(files, tw.sleep_work, (0.05,), big_manager(), in_process=True, sample_interval=0.05)
    job.add_listener(rec)
    job.start()
    threading.Timer(0.4, job.stop).start()
    r = job.wait(timeout=30)
    c = r.counts
    assert str(r.status) == "cancelled" and r.accounting_ok
    assert c["processed"] >= 1 and c["cancelled"] >= 1 and c["processed"] + c["cancelled"] == 40
    finished = {o.path for o in rec.kinds("file_finished")}
    assert finished == {o.path for o in r.outcomes if str(o.status) == "processed"}


def test_accounting_checks_every_input_has_exactly_one_outcome():
    from oppnda_nb.pool import FileOutcome, JobResult, Status

    def result(paths, inputs):
        outs = [FileOutcome(p, 1, Status.PROCESSED) for p in paths]
        return JobResult(outs, [], 1, 1.0, 1.0, 1.0, 0.1, "finished", inputs=list(inputs))

    assert result(["a", "b", "c"], ["a", "b", "c"]).accounting_ok
    assert result(["c", "a", "b"], ["a", "b", "c"]).accounting_ok           # any order
    assert not result(["a", "a", "c"], ["a", "b", "c"]).accounting_ok       # one twice, one missing
    assert not result(["a", "b"], ["a", "b", "c"]).accounting_ok            # one missing
    outs = [FileOutcome("a", 1, "lost"), FileOutcome("b", 1, Status.PROCESSED)]
    assert not JobResult(outs, [], 1, 1.0, 1.0, 1.0, 0.1, "finished", inputs=["a", "b"]).accounting_ok  # no status


def test_older_objects_frozen_is_scoped_and_restored():
    """The in-process run keeps the collector off the objects that existed before it and gives
    them back; it leaves a freeze it did not make (a pre-fork server's) and a disabled collector alone."""
    import gc

    from oppnda_nb.pool.scheduler import older_objects_frozen

    assert gc.get_freeze_count() == 0
    with older_objects_frozen():
        assert gc.get_freeze_count() > 0
        kept = []
        kept.append(kept)            # a cycle made inside the block is still collectable
    assert gc.get_freeze_count() == 0
    with pytest.raises(ValueError):
        with older_objects_frozen():
            raise ValueError("the block fails")
    assert gc.get_freeze_count() == 0
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with older_objects_frozen():
            pass
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()
    gc.disable()
    try:
        with older_objects_frozen():
            assert gc.get_freeze_count() == 0
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_in_process_run_leaves_nothing_frozen(tmp_path):
    import gc

    files = make_files(tmp_path, [("a", 100), ("b", 200), ("c", 300)])
    res = Job(files, tw.file_size, in_process=True, manager=big_manager()).run()
    assert res.counts["processed"] == 3
    assert gc.get_freeze_count() == 0
