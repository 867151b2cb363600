"""The admission rule as pure functions: ordering, overtakes, batches, oversize, watchdog, time limits."""
from __future__ import annotations

import math

import pytest

from oppnda_nb.pool import admission as adm
from oppnda_nb.pool.admission import Candidate, Oversize
from oppnda_nb.system import MB


def queue(*sizes_estimates, **kw):
    """Candidates in LPT order (the caller's queue is sorted by size, largest first)."""
    return [Candidate(s, e, **kw) for s, e in sizes_estimates]


def test_committed_counts_max_of_estimate_and_measured_and_idle_workers():
    # running: (estimate 100, measured 30) -> 100; (50, 80) -> 80; idle 10; kernel 5; helpers 7
    assert adm.committed_bytes(5, [(100, 30), (50, 80)], [10], helpers=7) == 5 + 7 + 100 + 80 + 10


def test_fits_replaces_the_idle_workers_memory_by_the_larger_of_it_and_the_estimate():
    assert adm.fits(committed=500, m_w=20, estimate=120, budget=600)      # 500 - 20 + 120 = 600
    assert not adm.fits(committed=500, m_w=20, estimate=121, budget=600)
    assert adm.fits(committed=500, m_w=200, estimate=50, budget=500)      # the worker already holds more


def test_head_starts_when_it_fits_largest_first():
    q = queue((300, 300 * MB), (100, 100 * MB))
    c = adm.choose(q, budget=1000 * MB, committed=100 * MB, m_w=0, running=0, kernel=100 * MB, max_overtakes=4)
    assert c == adm.Choice(0, alone=False, overtook=False, over_budget=False)


def test_smaller_files_overtake_a_waiting_head_at_most_max_overtakes_times():
    q = queue((200, 200 * MB), (10, 10 * MB), (9, 10 * MB))
    kw = dict(budget=250 * MB, committed=200 * MB, m_w=0, running=1, kernel=0.0, max_overtakes=2)
    c = adm.choose(q, **kw)
    assert c.index == 1 and c.overtook and not c.alone
    q[0].overtaken = 2  # the caller counted two overtakes: now nothing passes the head
    assert adm.choose(q, **kw) is None


def test_a_file_that_does_not_fit_alone_waits_for_an_empty_pool_and_is_not_overtaken():
    q = queue((400, 400 * MB), (20, 20 * MB))
    kw = dict(budget=250 * MB, committed=20 * MB, m_w=0, kernel=0.0, max_overtakes=4)
    assert adm.choose(q, running=1, **kw) is None
    c = adm.choose(q, running=0, **kw)
    assert c.index == 0 and c.alone and c.over_budget


def test_a_retry_runs_alone_but_others_may_pass_it_when_it_is_not_the_head():
    q = queue((400, 10 * MB), (300, 10 * MB))
    q[1].alone = True
    kw = dict(budget=1000 * MB, committed=20 * MB, m_w=0, kernel=0.0, max_overtakes=4)
    assert adm.choose(q, running=1, **kw).index == 0
    q[0].alone = True
    assert adm.choose(q, running=1, **kw) is None
    assert adm.choose(q, running=0, **kw) == adm.Choice(0, True, False, False)


def test_the_head_always_starts_when_nothing_runs():
    q = queue((100, 900 * MB))
    c = adm.choose(q, budget=800 * MB, committed=0, m_w=0, running=0, kernel=0.0, max_overtakes=0)
    assert c.index == 0 and c.alone and c.over_budget


def test_candidates_without_estimate_are_passed_over():
    q = queue((300, math.nan), (200, 10 * MB))
    c = adm.choose(q, budget=100 * MB, committed=0, m_w=0, running=0, kernel=0.0, max_overtakes=4)
    assert c.index == 1


def test_the_estimate_function_is_asked_at_admission():
    q = queue((300, 1 * MB), (200, 1 * MB))
    asked = []

    def est(c):
        asked.append(c.size)
        return 400 * MB if c.size == 300 else 1 * MB  # a model that learned the big one is heavy

    c = adm.choose(q, budget=500 * MB, committed=200 * MB, m_w=0, running=1, kernel=0.0, max_overtakes=4,
                   estimate=est)
    assert c.index == 1 and asked == [300, 200]


@pytest.mark.parametrize("policy, lean, expected", [
    ("skip", None, Oversize.SKIP),
    ("run-alone", None, Oversize.ALONE),
    ("skip", 150 * MB, Oversize.LEAN),
    ("run-alone", 150 * MB, Oversize.LEAN),
    ("skip", 300 * MB, Oversize.SKIP),      # the lean estimate does not fit either
    ("skip", 600 * MB, Oversize.SKIP),      # a "lean" estimate that is not smaller is not used
])
def test_oversize_decision(policy, lean, expected):
    assert adm.oversize_decision(50 * MB, 500 * MB, 250 * MB, policy, lean) is expected
    assert adm.oversize_decision(50 * MB, 100 * MB, 250 * MB, policy, lean) is Oversize.FITS


def test_oversize_reason_names_the_file_the_estimate_and_the_budget():
    r = adm.oversize_reason("big_EventLogReport.txt", 512 * MB, 240 * MB, 80 * MB)
    assert "big_EventLogReport.txt" in r and "512 MB" in r and "240 MB" in r
    with pytest.raises(ValueError):
        adm.oversize_decision(0, 1, 1, "explode")


def test_batches_lead_member_rules():
    small = Candidate(1500, 10 * MB)
    kw = dict(enabled=True, batch_file_bytes=2000, workers=2, kernel=0.0)
    assert adm.batchable(small, small.estimate, budget=64 * 1024 * MB, **kw)
    assert not adm.batchable(Candidate(5000, 10 * MB), 10 * MB, budget=64 * 1024 * MB, **kw)  # large
    assert not adm.batchable(Candidate(1500, 10 * MB, attempts=1), 10 * MB, budget=64 * 1024 * MB, **kw)  # retry
    assert not adm.batchable(Candidate(1500, 10 * MB, alone=True), 10 * MB, budget=64 * 1024 * MB, **kw)
    assert not adm.batchable(small, small.estimate, budget=64 * 1024 * MB, **{**kw, "enabled": False})
    # a budget that cannot hold a full pool of such files turns batching off
    assert adm.batchable(small, small.estimate, budget=20 * MB, **kw)
    assert not adm.batchable(small, small.estimate, budget=15 * MB, **kw)


def test_batch_size_shrinks_towards_the_end():
    assert adm.batch_size(small_left=1000, workers=2, batch_max_files=64) == 64
    assert adm.batch_size(small_left=80, workers=2, batch_max_files=64) == 10
    assert adm.batch_size(small_left=5, workers=2, batch_max_files=64) == 1


def test_take_small_takes_small_fresh_members_from_the_small_end_within_the_bounds():
    q = [Candidate(5000 + i, 20 * MB) for i in range(4)][::-1] + [Candidate(100 + i, 1 * MB) for i in range(200)][::-1]
    assert adm.small_pending(q, 2000) == 200
    q[-2].attempts = 1  # a retry is never a member
    q[-3].estimate = 5 * MB  # heavier than the lead: not a member
    take = adm.take_small(q, lead_size=250, lead_estimate=2 * MB, n=10, batch_file_bytes=2000, batch_max_bytes=900)
    members = [q[j] for j in take]
    assert take == sorted(take, reverse=True)  # descending positions: the caller deletes them in order
    assert members and all(m.size < 2000 and m.estimate <= 2 * MB and m.attempts == 0 for m in members)
    assert len(members) + 1 <= 10 and 250 + sum(m.size for m in members) <= 900
    assert [m.size for m in members] == sorted(m.size for m in members)  # from the small end
    assert 101 not in [m.size for m in members] and 102 not in [m.size for m in members]
    assert adm.take_small(q, 250, 2 * MB, n=1, batch_file_bytes=2000, batch_max_bytes=900) == []


def test_watchdog_flags_a_worker_above_its_estimate_and_picks_the_worst_when_over_budget():
    assert not adm.over_estimate(145 * MB, 100 * MB, 0.25, 20 * MB)   # within 100·1.25 + 20
    assert adm.over_estimate(146 * MB, 100 * MB, 0.25, 20 * MB)
    rows = [("a", 100 * MB, 300 * MB), ("b", 100 * MB, 200 * MB), ("c", 100 * MB, 90 * MB)]
    assert adm.watchdog_victim(rows, total=900 * MB, budget=800 * MB, margin=0.25, margin_bytes=20 * MB) == "a"
    assert adm.watchdog_victim(rows, total=700 * MB, budget=800 * MB, margin=0.25, margin_bytes=20 * MB) is None
    within = [("c", 100 * MB, 90 * MB)]
    assert adm.watchdog_victim(within, total=900 * MB, budget=800 * MB, margin=0.25, margin_bytes=20 * MB) is None


def test_time_limit_scales_with_size_and_can_be_off():
    assert adm.time_limit(10 * MB, 120.0, 2.0) == pytest.approx(140.0)
    assert adm.time_limit(0, 1.5, 2.0) == 1.5
    assert adm.time_limit(10 * MB, None, 2.0) is None


def test_capped_peak_is_the_budget_unless_the_plan_says_more():
    assert adm.capped_peak(300 * MB, 200 * MB) == 200 * MB                    # admission keeps the pool under it
    assert adm.capped_peak(150 * MB, 200 * MB) == 150 * MB
    assert adm.capped_peak(300 * MB, 200 * MB, 250 * MB) == 250 * MB         # one file alone passes the budget
    assert adm.capped_peak(100 * MB, 200 * MB, 120 * MB) == 120 * MB         # never below the plan
