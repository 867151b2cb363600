"""ResourceManager, MemoryEstimator, cgroup reading and DynamicSemaphore against the spec."""
from __future__ import annotations

import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oppnda_nb import system
from oppnda_nb.resource_manager import (
    DynamicSemaphore,
    MemoryEstimator,
    ResourceConfig,
    ResourceManager,
    get_optimal_workers,
)

MB = 1024 * 1024


@pytest.fixture
def cpus(monkeypatch):
    """Pin the CPU count so the clamps are deterministic."""

    def set_cpus(n):
        monkeypatch.setattr(system, "cpu_count", lambda: n)

    set_cpus(8)
    return set_cpus


def manager(total_mb=1000.0, used_mb=0.0, base_mb=100.0, **kw):
    """A manager on a simulated machine: used includes the kernel (base)."""
    return ResourceManager(
        memory_reader=lambda: ((used_mb + base_mb) * MB, total_mb * MB), base_reader=lambda: base_mb * MB, **kw
    )


# -- defaults and formulas ---------------------------------------------------------------
def test_config_defaults_are_the_spec():
    c = ResourceConfig
    assert (c.ETA, c.GAMMA, c.M_OVERHEAD_MB) == (0.75, 3.0, 50)
    assert (c.MIN_WORKERS, c.MAX_WORKERS, c.FALLBACK_WORKERS, c.SAFETY_ENABLED) == (1, 16, 4, True)
    rm = ResourceManager()
    assert (rm.eta, rm.gamma, rm.overhead_mb, rm.min_workers, rm.max_workers) == (0.75, 3.0, 50, 1, 16)


def test_estimate_file_memory():
    est = MemoryEstimator(gamma=3.0, overhead_mb=50)
    assert est.estimate_file_memory(10_000_000) == 3 * 10_000_000 + 50 * MB
    assert MemoryEstimator(gamma=2.5, overhead_mb=0).estimate_file_memory(4) == 10.0


def test_estimate_batch_memory_takes_the_largest_files():
    est = MemoryEstimator(gamma=2.0, overhead_mb=1)
    sizes = [5, 10, 3, 8]
    # the 2 largest: 10 and 8 -> 2*10 + 2*8 + 2 MB
    assert est.estimate_batch_memory(sizes, 2) == 36 + 2 * MB
    assert est.estimate_batch_memory(sizes, 10) == 2 * 26 + 4 * MB
    assert est.estimate_batch_memory(sizes, 0) == 0


def test_optimal_workers_hand_computed(cpus):
    # budget = 0.75*1000 - 0 (others) = 750 MB; base 100 MB; each 100 MB file needs 3*100+50 = 350 MB
    rm = manager(total_mb=1000, base_mb=100)
    sizes = [100 * MB] * 5
    # p=1: 100+350=450 <= 750 ; p=2: 800 > 750
    assert rm.get_optimal_workers(file_sizes=sizes) == 1
    rm = manager(total_mb=2000, base_mb=100)  # budget 1500: p=4 -> 100+1400=1500 fits, p=5 -> 1850
    assert rm.get_optimal_workers(file_sizes=sizes) == 4
    assert rm.warnings == []


def test_optimal_workers_subtracts_other_programs(cpus):
    sizes = [100 * MB] * 5
    alone = manager(total_mb=2000, used_mb=0, base_mb=100)
    busy = manager(total_mb=2000, used_mb=700, base_mb=100)  # others use 700 MB -> budget 800
    assert alone.get_optimal_workers(file_sizes=sizes) == 4
    assert busy.get_optimal_workers(file_sizes=sizes) == 2  # 100 + 2*350 = 800


def test_largest_files_decide(cpus):
    rm = manager(total_mb=2000, base_mb=100)  # budget 1500
    # one 400 MB file (1250 MB) + small ones: the big one leaves room for one small only
    sizes = [400 * MB] + [1 * MB] * 10
    # 100 + 1250 = 1350; + 53 = 1403; + 53 = 1456; +53 = 1509 > 1500
    assert rm.get_optimal_workers(file_sizes=sizes) == 3


def test_clamps_and_file_count(cpus):
    rm = manager(total_mb=100_000, base_mb=100)
    assert rm.get_optimal_workers(file_sizes=[MB] * 100) == 8  # CPU count
    cpus(64)
    assert rm.get_optimal_workers(file_sizes=[MB] * 100) == 16  # MAX_WORKERS
    assert rm.get_optimal_workers(file_sizes=[MB] * 3) == 3  # never more workers than files
    rm = manager(total_mb=100_000, base_mb=100, min_workers=2, max_workers=5)
    assert rm.get_optimal_workers(file_sizes=[MB] * 100) == 5


def test_without_files_uses_typical_report_size(cpus):
    # budget 750 - base 100 = 650; typical 1 MB -> 53 MB per worker -> 12 fit, clamp to 8 CPUs
    assert manager(total_mb=1000, base_mb=100).get_optimal_workers() == 8
    # budget 0.75*300=225 - base 100 = 125 -> 2 workers of 53 MB
    assert manager(total_mb=300, base_mb=100).get_optimal_workers() == 2


def test_not_even_one_worker_fits_warns_with_file_and_shortfall(cpus, tmp_path):
    big = tmp_path / "TEST_EpidemicRouter_1_60_2M_EventLogReport.txt"
    big.write_bytes(b"x" * (2 * MB))
    rm = ResourceManager(
        total_ram_mb=100, gamma=50, memory_reader=lambda: (10 * MB, 100 * MB), base_reader=lambda: 10 * MB
    )
    # budget 75 MB; needs 10 + 50*2 + 50 = 160 MB -> short by 85 MB
    assert rm.get_optimal_workers(file_paths=[str(big)]) == 1
    (warning,) = rm.warnings
    assert big.name in warning and "short by 85 MB" in warning
    status = rm.get_memory_status(file_paths=[str(big)])
    assert status["warnings"] == rm.warnings and status["recommended_workers"] == 1


def test_safety_disabled_uses_cpu_count(cpus):
    rm = manager(total_mb=10, base_mb=100, safety_enabled=False)  # memory would allow none
    assert rm.get_optimal_workers(file_sizes=[10**9] * 20) == 8
    cpus(None)
    assert rm.get_optimal_workers() == ResourceConfig.FALLBACK_WORKERS
    cpus(40)
    assert rm.get_optimal_workers() == 16


def test_without_psutil_falls_back_with_one_warning(cpus, monkeypatch):
    monkeypatch.setattr(system, "psutil", None)
    rm = ResourceManager()
    assert rm.get_optimal_workers() == ResourceConfig.FALLBACK_WORKERS
    assert len(rm.warnings) == 1 and "pip install psutil" in rm.warnings[0]
    status = rm.get_memory_status()
    assert status["psutil_available"] is False and status["recommended_workers"] == 4
    assert len(status["warnings"]) == 1


def test_total_ram_override_is_the_ram_source():
    rm = ResourceManager(total_ram_mb=512)
    assert rm.total_ram_bytes() == 512 * MB
    status = rm.get_memory_status()
    assert status["ram_source"].startswith("override") and status["total_ram_mb"] == 512
    # alone on a virtual machine: nothing else counts against the budget but our own children
    assert status["budget_mb"] == pytest.approx(0.75 * 512 - status["others_mb"])


def test_status_has_the_documented_keys(capsys):
    rm = ResourceManager()
    status = rm.get_memory_status()
    for key in (
        "psutil_available safety_enabled ram_source total_ram_mb available_ram_mb used_percent base_mb "
        "others_mb budget_mb eta gamma overhead_mb cpu_count recommended_workers warnings"
    ).split():
        assert key in status
    assert 0 < status["total_ram_mb"] and 0 <= status["used_percent"] <= 100
    rm.log_status()
    out = capsys.readouterr().out
    assert "RAM source" in out and "recommended workers" in out


def test_module_level_get_optimal_workers(cpus, tmp_path):
    files = []
    for i in range(3):
        f = tmp_path / f"r{i}.txt"
        f.write_text("x: 1\n")
        files.append(str(f))
    assert get_optimal_workers(files) == 3  # plenty of RAM here, 3 files
    assert get_optimal_workers(safety_enabled=False) == 8


def test_bad_parameters_are_rejected():
    with pytest.raises(ValueError):
        ResourceManager(eta=1.5)
    with pytest.raises(ValueError):
        ResourceManager(min_workers=4, max_workers=2)
    with pytest.raises(ValueError):
        ResourceManager(total_ram_mb=0)


# -- cgroups ---------------------------------------------------------------------------
def _proc(tmp_path, text):
    p = tmp_path / "cgroup_self"
    p.write_text(text)
    return p


def test_cgroup_v2_limit(tmp_path):
    root = tmp_path / "cg"
    (root / "user.slice" / "pod").mkdir(parents=True)
    (root / "cgroup.controllers").write_text("memory cpu\n")
    (root / "memory.max").write_text("max\n")
    (root / "user.slice" / "memory.max").write_text(str(4096 * MB) + "\n")
    (root / "user.slice" / "pod" / "memory.max").write_text(str(2048 * MB) + "\n")
    (root / "user.slice" / "pod" / "memory.current").write_text(str(600 * MB))
    (root / "user.slice" / "pod" / "memory.stat").write_text(f"anon 1\ninactive_file {100 * MB}\n")
    lim = system.read_cgroup_limit(root, _proc(tmp_path, "0::/user.slice/pod\n"))
    assert lim.limit_bytes == 2048 * MB and "pod/memory.max" in lim.source
    assert system.cgroup_used_bytes(lim) == 500 * MB


def test_cgroup_v2_max_means_no_limit(tmp_path):
    root = tmp_path / "cg"
    root.mkdir()
    (root / "cgroup.controllers").write_text("memory\n")
    (root / "memory.max").write_text("max\n")
    assert system.read_cgroup_limit(root, _proc(tmp_path, "0::/\n")) is None


def test_cgroup_v1_limit_and_unlimited(tmp_path):
    root = tmp_path / "cg"
    mem = root / "memory" / "docker" / "abc"
    mem.mkdir(parents=True)
    (root / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    (mem / "memory.limit_in_bytes").write_text(str(1024 * MB))
    (mem / "memory.usage_in_bytes").write_text(str(300 * MB))
    (mem / "memory.stat").write_text(f"cache 5\ntotal_inactive_file {50 * MB}\n")
    proc = _proc(tmp_path, "12:cpu:/\n4:memory:/docker/abc\n0::/\n")
    lim = system.read_cgroup_limit(root, proc)
    assert lim.limit_bytes == 1024 * MB and "cgroup" in lim.source
    assert system.cgroup_used_bytes(lim) == 250 * MB
    (mem / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    assert system.read_cgroup_limit(root, proc) is None


def test_cgroup_limit_below_physical_ram_is_m_ram(monkeypatch):
    lim = system.CgroupLimit(1024 * MB, "cgroup /fake/memory.max", None, None)
    monkeypatch.setattr(system, "read_cgroup_limit", lambda *a, **k: lim)
    rm = ResourceManager()
    assert rm.total_ram_bytes() == 1024 * MB
    assert rm.get_memory_status()["ram_source"] == "cgroup /fake/memory.max"


# -- properties ------------------------------------------------------------------------
sizes_st = st.lists(st.integers(min_value=0, max_value=2000 * MB), min_size=1, max_size=30)


def _p(sizes, eta=0.75, gamma=3.0, overhead=50.0, total=8000.0, used=1000.0, base=200.0, cpus=8):
    system_cpu = system.cpu_count
    system.cpu_count = lambda: cpus
    try:
        rm = manager(total_mb=total, used_mb=used, base_mb=base, eta=eta, gamma=gamma, overhead_mb=overhead)
        return rm, rm.get_optimal_workers(file_sizes=sizes)
    finally:
        system.cpu_count = system_cpu


@settings(max_examples=150, deadline=None)
@given(sizes=sizes_st, g1=st.floats(0.5, 10), g2=st.floats(0.5, 10), o1=st.floats(0, 500), o2=st.floats(0, 500))
def test_p_opt_non_increasing_in_gamma_and_overhead(sizes, g1, g2, o1, o2):
    lo_g, hi_g = sorted((g1, g2))
    lo_o, hi_o = sorted((o1, o2))
    assert _p(sizes, gamma=hi_g)[1] <= _p(sizes, gamma=lo_g)[1]
    assert _p(sizes, overhead=hi_o)[1] <= _p(sizes, overhead=lo_o)[1]


@settings(max_examples=150, deadline=None)
@given(sizes=sizes_st, grow=st.lists(st.integers(0, 500 * MB), min_size=30, max_size=30))
def test_p_opt_non_increasing_in_file_sizes(sizes, grow):
    bigger = [s + g for s, g in zip(sizes, grow)]
    assert _p(bigger)[1] <= _p(sizes)[1]


@settings(max_examples=150, deadline=None)
@given(sizes=sizes_st, e1=st.floats(0.1, 0.95), e2=st.floats(0.1, 0.95), r1=st.floats(500, 64000), r2=st.floats(500, 64000))
def test_p_opt_non_decreasing_in_eta_and_ram(sizes, e1, e2, r1, r2):
    lo_e, hi_e = sorted((e1, e2))
    lo_r, hi_r = sorted((r1, r2))
    assert _p(sizes, eta=hi_e)[1] >= _p(sizes, eta=lo_e)[1]
    assert _p(sizes, total=hi_r, used=0)[1] >= _p(sizes, total=lo_r, used=0)[1]


@settings(max_examples=200, deadline=None)
@given(
    sizes=sizes_st,
    eta=st.floats(0.1, 0.95),
    gamma=st.floats(0.5, 10),
    overhead=st.floats(0, 500),
    total=st.floats(500, 64000),
    cpus=st.integers(1, 64),
)
def test_p_opt_within_clamps_and_fits_budget(sizes, eta, gamma, overhead, total, cpus):
    rm, p = _p(sizes, eta=eta, gamma=gamma, overhead=overhead, total=total, used=total * 0.1, cpus=cpus)
    assert ResourceConfig.MIN_WORKERS <= p <= min(ResourceConfig.MAX_WORKERS, cpus, len(sizes))
    if p > ResourceConfig.MIN_WORKERS:
        need = 200 * MB + rm.estimator.estimate_batch_memory(sizes, p)
        budget = eta * total * MB - (total * 0.1) * MB
        assert need <= budget
    else:
        # P_opt at the minimum: either one worker fits, or the shortfall is reported
        need1 = 200 * MB + rm.estimator.estimate_batch_memory(sizes, 1)
        assert need1 <= eta * total * MB - total * 0.1 * MB or rm.warnings


# -- DynamicSemaphore ------------------------------------------------------------------
class FakeMemory:
    def __init__(self, used=0.0, total=100.0):
        self.used, self.total = used, total

    def __call__(self):
        return self.used, self.total


def test_semaphore_never_exceeds_permits():
    sem = DynamicSemaphore(3, memory_reader=FakeMemory(10), check_interval=0.01)
    lock = threading.Lock()
    inside = peak = 0

    def worker():
        nonlocal inside, peak
        for _ in range(20):
            with sem:
                with lock:
                    inside += 1
                    peak = max(peak, inside)
                time.sleep(0.001)
                with lock:
                    inside -= 1

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak == 3 and sem.active == 0


def test_pressure_shrinks_and_relief_restores_permits():
    mem = FakeMemory(used=50, total=100)
    sem = DynamicSemaphore(8, eta=0.75, memory_reader=mem, check_interval=0.01)
    assert sem.current_permits == 8
    mem.used = 87.5  # halfway between eta and 100% -> half the permits
    assert sem.update() == 4
    mem.used = 99.9
    assert sem.update() == 1  # never below 1
    mem.used = 100
    assert sem.update() == 1
    mem.used = 60
    assert sem.update() == 8


def test_relief_wakes_blocked_waiters():
    mem = FakeMemory(used=99, total=100)
    sem = DynamicSemaphore(4, memory_reader=mem, check_interval=0.02)
    assert sem.current_permits == 1
    assert sem.acquire()
    got = []
    waiters = [threading.Thread(target=lambda: got.append(sem.acquire(timeout=5))) for _ in range(3)]
    for t in waiters:
        t.start()
    time.sleep(0.1)
    assert got == []  # all blocked: one permit, taken
    mem.used = 10  # pressure falls
    for t in waiters:
        t.join(5)
    assert got == [True, True, True] and sem.active == 4


def test_acquire_timeout_and_non_blocking():
    sem = DynamicSemaphore(1, memory_reader=FakeMemory(0))
    assert sem.acquire()
    assert sem.acquire(blocking=False) is False
    t0 = time.monotonic()
    assert sem.acquire(timeout=0.05) is False
    assert time.monotonic() - t0 >= 0.05
    sem.release()
    assert sem.acquire(blocking=False) is True
    sem.release()
    with pytest.raises(ValueError):
        sem.release()


def test_blocked_waiters_use_almost_no_cpu():
    import resource

    sem = DynamicSemaphore(1, memory_reader=FakeMemory(0), check_interval=0.1)
    sem.acquire()
    before = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    threads = [threading.Thread(target=sem.acquire, kwargs={"timeout": 1.0}) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # 8 threads waiting ~1 s each: a busy loop would burn ~wall seconds of CPU
    assert cpu < 0.1 * wall


def test_safety_disabled_semaphore_ignores_pressure():
    sem = DynamicSemaphore(4, safety_enabled=False, memory_reader=FakeMemory(100))
    assert sem.update() == 4


def test_manager_semaphore_uses_manager_reading():
    rm = manager(total_mb=1000, used_mb=880, base_mb=0, eta=0.75)  # 88% used
    sem = rm.make_semaphore(8)
    assert sem.current_permits == sem.permits_for(880 * MB, 1000 * MB) < 8
