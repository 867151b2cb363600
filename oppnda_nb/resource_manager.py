"""Memory-aware worker allocation, predictive memory estimation and adaptive concurrency.

Names, defaults and formulas follow the spec (PERFORMANCE.md):

    M(t)  ≈ M_base + Σ_{i=1..P} (γ · size(r_i) + M_overhead)       (r_i: the i-th largest file)
    P_opt = max{p | M(t)|_{P=p} ≤ η · M_RAM − M_others}

M_RAM is the smallest of physical RAM and any cgroup limit (or an explicit
``total_ram_mb``); M_others is what the rest of the machine uses now, so that "the system
never exceeds η of RAM" holds when other programs run too.
"""
from __future__ import annotations

import math
import os
import threading
import time
import warnings as _warnings
from typing import Callable, Iterable, Sequence

from . import system
from .errors import SettingsError
from .memory_model import MemoryModel, TypeModel, workers_that_fit
from .system import MB

MemoryReader = Callable[[], "tuple[float, float]"]


class ResourceConfig:
    """Defaults of the spec. Edit (or subclass) to change them for every manager."""

    ETA = 0.75  # η: maximum fraction of RAM the system may use
    GAMMA = 3.0  # γ: DataFrame expansion factor (bytes in memory per byte on disk)
    M_OVERHEAD_MB = 50  # per-worker overhead (interpreter, imports, buffers)
    MIN_WORKERS = 1
    MAX_WORKERS = 16
    FALLBACK_WORKERS = 4  # used when psutil is unavailable
    SAFETY_ENABLED = True
    #: Size assumed for a report when no file paths are given (ONE's per-run reports are
    #: mostly a few KB to a few MB; 1 MB errs on the side of caution for planning).
    TYPICAL_REPORT_MB = 1.0


class MemoryEstimator:
    """Predicts worker memory from file sizes: γ · size + M_overhead per file."""

    def __init__(self, gamma: float = ResourceConfig.GAMMA, overhead_mb: float = ResourceConfig.M_OVERHEAD_MB):
        if gamma < 0 or overhead_mb < 0:
            raise SettingsError(f"gamma and overhead_mb must be >= 0, got gamma={gamma}, overhead_mb={overhead_mb}")
        self.gamma = float(gamma)
        self.overhead_mb = float(overhead_mb)

    @property
    def overhead_bytes(self) -> float:
        return self.overhead_mb * MB

    def estimate_file_memory(self, file_size_bytes: float) -> float:
        """Peak bytes of one worker parsing one file: γ · size + M_overhead."""
        return self.gamma * float(file_size_bytes) + self.overhead_bytes

    def estimate_batch_memory(self, file_sizes: Iterable[float], num_workers: int) -> float:
        """Worst-case bytes of ``num_workers`` workers: Σ over the largest files running together."""
        largest = sorted((float(s) for s in file_sizes), reverse=True)[: max(0, int(num_workers))]
        return sum(self.estimate_file_memory(s) for s in largest)


def _file_sizes(file_paths: Iterable[str | os.PathLike] | None) -> list[int]:
    sizes = []
    for p in file_paths or ():
        try:
            sizes.append(os.path.getsize(p))
        except OSError:
            sizes.append(0)  # a vanished file is reported by the pool, not here
    return sizes


class ResourceManager:
    """Plans how many worker processes fit in memory, and reports the machine's state."""

    def __init__(
        self,
        eta: float | None = None,
        gamma: float | None = None,
        overhead_mb: float | None = None,
        safety_enabled: bool | None = None,
        total_ram_mb: float | None = None,
        min_workers: int | None = None,
        max_workers: int | None = None,
        memory_reader: MemoryReader | None = None,
        base_reader: Callable[[], float] | None = None,
    ):
        cfg = ResourceConfig
        self.eta = float(cfg.ETA if eta is None else eta)
        if not 0 < self.eta <= 1:
            raise SettingsError(f"eta must be in (0, 1], got {self.eta}")
        self.estimator = MemoryEstimator(
            cfg.GAMMA if gamma is None else gamma, cfg.M_OVERHEAD_MB if overhead_mb is None else overhead_mb
        )
        self.safety_enabled = bool(cfg.SAFETY_ENABLED if safety_enabled is None else safety_enabled)
        self.min_workers = int(cfg.MIN_WORKERS if min_workers is None else min_workers)
        self.max_workers = int(cfg.MAX_WORKERS if max_workers is None else max_workers)
        if self.min_workers < 1 or self.max_workers < self.min_workers:
            raise SettingsError(
                f"need 1 <= min_workers <= max_workers, got min={self.min_workers} max={self.max_workers}"
            )
        if total_ram_mb is not None and total_ram_mb <= 0:
            raise SettingsError(f"total_ram_mb must be > 0, got {total_ram_mb}")
        self.total_ram_mb = total_ram_mb
        self._memory_reader = memory_reader
        self._base_reader = base_reader
        self._cgroup = None if total_ram_mb is not None else system.read_cgroup_limit()
        self.warnings: list[str] = []
        #: the one memory model (per report type); explicit gamma/overhead_mb override every type
        self.model = MemoryModel(TypeModel(self.gamma, self.overhead_mb, "user"),
                                 override=gamma is not None or overhead_mb is not None)

    # -- parameters --------------------------------------------------------------------
    @property
    def gamma(self) -> float:
        return self.estimator.gamma

    @gamma.setter
    def gamma(self, value: float) -> None:
        """Setting γ (a slider, ``%config``) is the user's override: every type then uses it."""
        self.estimator.gamma = float(value)
        self._user_model()

    @property
    def overhead_mb(self) -> float:
        return self.estimator.overhead_mb

    @overhead_mb.setter
    def overhead_mb(self, value: float) -> None:
        self.estimator.overhead_mb = float(value)
        self._user_model()

    def _user_model(self) -> None:
        self.model.default = TypeModel(self.gamma, self.overhead_mb, "user")
        self.model.override = True

    @property
    def psutil_available(self) -> bool:
        return system.psutil is not None or self._memory_reader is not None

    # -- reading memory ----------------------------------------------------------------
    @property
    def ram_source(self) -> str:
        if self.total_ram_mb is not None:
            return "override (total_ram_mb)"
        if self._memory_reader is not None:
            return "injected reader"
        if system.psutil is None:
            return "unknown (psutil missing)"
        if self._cgroup is not None and self._cgroup.limit_bytes < system.psutil.virtual_memory().total:
            return self._cgroup.source
        return "physical RAM (psutil)"

    def memory_reader(self) -> tuple[float, float]:
        """(used, total) bytes of the machine as this manager sees it (M_RAM = total).

        With ``total_ram_mb`` the job behaves as if it ran alone on a machine of that size:
        "used" is this process and its children (PSS: pages shared with forked workers count once). Under a cgroup limit, "used" is what the
        cgroup is charged, less reclaimable page cache.
        """
        if self._memory_reader is not None:
            used, total = self._memory_reader()
            return float(used), float(total)
        if self.total_ram_mb is not None:
            return system.process_tree_bytes(), self.total_ram_mb * MB
        if system.psutil is None:
            return 0.0, 0.0
        vm = system.psutil.virtual_memory()
        used, total = float(vm.total - vm.available), float(vm.total)
        if self._cgroup is not None and self._cgroup.limit_bytes < total:
            cg_used = system.cgroup_used_bytes(self._cgroup)
            total = float(self._cgroup.limit_bytes)
            used = float(cg_used) if cg_used is not None else min(used, total)
        return used, total

    def total_ram_bytes(self) -> float:
        """M_RAM."""
        return self.memory_reader()[1]

    def base_bytes(self) -> float:
        """M_base: this process's memory, read as the pool's monitor reads it (PSS where the system
        has it, else USS, else RSS), so the plan and the measured peak count the kernel alike."""
        if self._base_reader is not None:
            return float(self._base_reader())
        m = system.shared_reader().read(os.getpid()) if system.psutil is not None else None
        return m.mem if m is not None else system.process_memory_bytes(method="rss")

    def shared_with_others_bytes(self) -> float:
        """What this process's PSS counts of pages it shares with other processes (PSS - USS); -1
        when unknown (no PSS here, or the kernel's memory is given by a caller's reader)."""
        return -1.0 if self._base_reader is not None else system.shared_with_others_bytes(os.getpid())

    def others_bytes(self, own_bytes: float | None = None, reading: tuple[float, float] | None = None) -> float:
        """M_others: memory used by everything but ``own_bytes`` (default M_base), never < 0."""
        used, _ = reading if reading is not None else self.memory_reader()
        own = self.base_bytes() if own_bytes is None else own_bytes
        return max(0.0, used - own)

    def budget_bytes(self, own_bytes: float | None = None) -> float:
        """η · M_RAM − M_others: what this process and its workers may use together."""
        reading = self.memory_reader()
        return self.eta * reading[1] - self.others_bytes(own_bytes, reading)

    @staticmethod
    def process_memory_bytes(pid: int | None = None) -> float:
        """One process's memory: USS/PSS where the OS gives it, RSS otherwise."""
        return system.process_memory_bytes(pid)

    # -- planning ----------------------------------------------------------------------
    def _clamp_upper(self) -> int:
        cpus = system.cpu_count()
        return max(self.min_workers, min(self.max_workers, cpus or ResourceConfig.FALLBACK_WORKERS))

    def get_optimal_workers(
        self, file_paths: Sequence[str | os.PathLike] | None = None, file_sizes: Sequence[float] | None = None,
        *, estimates: Sequence[float] | None = None,
    ) -> int:
        """P_opt = max{p | M_base + Σ_{i≤p}(γ·size(r_i) + M_overhead) ≤ η·M_RAM − M_others}.

        Clamped to [MIN_WORKERS, min(MAX_WORKERS, CPUs)] and never more workers than files.
        Without files, every worker is assumed to parse a TYPICAL_REPORT_MB file. Where not
        even one worker fits, the answer is MIN_WORKERS and ``self.warnings`` says why.
        ``estimates`` (bytes per file, from the per-type memory model) replace γ·size + M_overhead.
        """
        self.warnings = []
        sizes = list(file_sizes) if file_sizes is not None else (_file_sizes(file_paths) if file_paths is not None else None)
        if estimates is not None:
            estimates = [float(e) for e in estimates]
        n_files = len(estimates) if estimates is not None else (None if sizes is None else len(sizes))

        def cap_by_files(p: int) -> int:
            return p if n_files is None else min(p, max(1, n_files))

        if system.psutil is None and self._memory_reader is None:
            self.warnings.append(
                "psutil is not installed: memory cannot be measured, using FALLBACK_WORKERS="
                f"{ResourceConfig.FALLBACK_WORKERS}. Install it with `pip install psutil`."
            )
            return cap_by_files(max(self.min_workers, min(self.max_workers, ResourceConfig.FALLBACK_WORKERS)))
        upper = self._clamp_upper()
        if not self.safety_enabled:
            return cap_by_files(upper)

        reading = self.memory_reader()
        base = self.base_bytes()
        budget = self.eta * reading[1] - self.others_bytes(base, reading)
        if sizes is None and estimates is None:
            per_worker = self.estimator.estimate_file_memory(ResourceConfig.TYPICAL_REPORT_MB * MB)
            fits = int((budget - base) // per_worker) if per_worker > 0 and budget > base else 0
            largest_desc = f"a typical {ResourceConfig.TYPICAL_REPORT_MB:g} MB report"
            first_need = base + per_worker
        else:
            ests = estimates if estimates is not None else [self.estimator.estimate_file_memory(x) for x in sizes]
            fits = workers_that_fit(base, ests, budget, upper)
            largest_desc = self._largest_description(file_paths, sizes, ests)
            first_need = base + max(ests, default=0.0)
        if fits < 1 and (n_files is None or n_files):
            shortfall = first_need - budget
            self.warnings.append(
                f"Even one worker does not fit: {largest_desc} needs an estimated "
                f"{first_need / MB:.0f} MB (with the kernel) but the budget is {budget / MB:.0f} MB "
                f"(short by {shortfall / MB:.0f} MB). Running with MIN_WORKERS={self.min_workers}; "
                "raise eta, lower gamma/overhead, or free memory."
            )
        return cap_by_files(max(self.min_workers, min(fits, upper)))

    @staticmethod
    def _largest_description(file_paths, sizes, estimates) -> str:
        """The file that needs the most memory (largest estimate), by name and size where known."""
        if not estimates:
            return "no file"
        i = max(range(len(estimates)), key=estimates.__getitem__)
        name = os.path.basename(os.fspath(file_paths[i])) if file_paths is not None else f"#{i}"
        size = f" ({sizes[i] / MB:.1f} MB)" if sizes is not None else ""
        return f"the largest file {name}{size}"

    # -- reporting ---------------------------------------------------------------------
    def get_memory_status(
        self, file_paths: Sequence[str | os.PathLike] | None = None, file_sizes: Sequence[float] | None = None
    ) -> dict:
        """The machine's memory state and the recommendation, as a plain dict."""
        workers = self.get_optimal_workers(file_paths=file_paths, file_sizes=file_sizes)
        used, total = self.memory_reader()
        base = self.base_bytes()
        others = max(0.0, used - base)
        return {
            "psutil_available": self.psutil_available,
            "safety_enabled": self.safety_enabled,
            "ram_source": self.ram_source,
            "total_ram_mb": total / MB,
            "available_ram_mb": max(0.0, total - used) / MB,
            "used_percent": 100.0 * used / total if total else float("nan"),
            "base_mb": base / MB,
            "others_mb": others / MB,
            "budget_mb": (self.eta * total - others) / MB,
            "eta": self.eta,
            "gamma": self.gamma,
            "overhead_mb": self.overhead_mb,
            "min_workers": self.min_workers,
            "max_workers": self.max_workers,
            "cpu_count": system.cpu_count(),
            "recommended_workers": workers,
            "warnings": list(self.warnings),
        }

    def format_status(self, status: dict | None = None) -> str:
        """The status as a short readable block (what ``log_status`` prints)."""
        s = status or self.get_memory_status()
        lines = [
            "oppnda_nb memory status",
            f"  RAM source        : {s['ram_source']}",
            f"  total RAM (M_RAM) : {s['total_ram_mb']:.0f} MB",
            f"  available         : {s['available_ram_mb']:.0f} MB ({s['used_percent']:.1f}% used)",
            f"  kernel (M_base)   : {s['base_mb']:.0f} MB",
            f"  others (M_others) : {s['others_mb']:.0f} MB",
            f"  budget η·M_RAM−M_others : {s['budget_mb']:.0f} MB",
            f"  η={s['eta']:g}  γ={s['gamma']:g}  M_overhead={s['overhead_mb']:g} MB  "
            f"workers in [{s['min_workers']}, {s['max_workers']}]  CPUs={s['cpu_count']}",
            f"  safety            : {'on' if s['safety_enabled'] else 'OFF'}",
            f"  recommended workers: {s['recommended_workers']}",
        ]
        lines += [f"  warning: {w}" for w in s["warnings"]]
        return "\n".join(lines)

    def log_status(self, file_paths: Sequence[str | os.PathLike] | None = None) -> None:
        """Print the memory status block."""
        print(self.format_status(self.get_memory_status(file_paths=file_paths)))

    def make_semaphore(self, initial_permits: int) -> "DynamicSemaphore":
        """A DynamicSemaphore that reads memory the way this manager does."""
        return DynamicSemaphore(
            initial_permits, eta=self.eta, safety_enabled=self.safety_enabled, memory_reader=self.memory_reader
        )


def get_optimal_workers(file_paths: Sequence[str | os.PathLike] | None = None, safety_enabled: bool = True) -> int:
    """Convenience: ``ResourceManager(safety_enabled=...).get_optimal_workers(file_paths)``."""
    rm = ResourceManager(safety_enabled=safety_enabled)
    workers = rm.get_optimal_workers(file_paths=file_paths)
    for w in rm.warnings:
        _warnings.warn(w, RuntimeWarning, stacklevel=2)
    return workers


def _default_reader() -> tuple[float, float]:
    return ResourceManager().memory_reader()


class DynamicSemaphore:
    """A semaphore whose permits shrink under memory pressure and grow back when it eases.

    With used fraction u above η, permits = max(1, floor(initial · (1 − (u − η)/(1 − η)))):
    the shrink is proportional to the excess. Waiters block on a condition variable and
    re-read memory at most every ``check_interval`` seconds, so they cost almost no CPU.
    """

    def __init__(
        self,
        initial_permits: int,
        eta: float = ResourceConfig.ETA,
        safety_enabled: bool = True,
        memory_reader: MemoryReader | None = None,
        check_interval: float = 0.1,
    ):
        if initial_permits < 1:
            raise SettingsError("initial_permits must be >= 1")
        self.initial_permits = int(initial_permits)
        self.eta = float(eta)
        self.safety_enabled = safety_enabled
        self.check_interval = float(check_interval)
        self._reader = memory_reader or _default_reader
        self._cond = threading.Condition()
        self._permits = self.initial_permits
        self._active = 0
        self._last_check = 0.0
        self.update()

    @property
    def current_permits(self) -> int:
        return self._permits

    @property
    def active(self) -> int:
        return self._active

    def permits_for(self, used: float, total: float) -> int:
        """Permits for a reading: all of them at or below η, proportionally fewer above."""
        if not self.safety_enabled or total <= 0:
            return self.initial_permits
        frac = used / total
        if frac <= self.eta:
            return self.initial_permits
        excess = min(1.0, (frac - self.eta) / max(1e-9, 1.0 - self.eta))
        return max(1, math.floor(self.initial_permits * (1.0 - excess)))

    def update(self) -> int:
        """Re-read memory now and adjust the permits; wakes waiters when permits grow."""
        reading = self._reader() if self.safety_enabled else (0.0, 0.0)
        with self._cond:
            self._last_check = time.monotonic()
            new = self.permits_for(*reading)
            grew = new > self._permits
            self._permits = new
            if grew:
                self._cond.notify_all()
            return new

    def _maybe_update(self) -> None:
        # called with the lock held; the reader is cheap (one psutil call)
        if self.safety_enabled and time.monotonic() - self._last_check >= self.check_interval:
            self._last_check = time.monotonic()
            new = self.permits_for(*self._reader())
            if new > self._permits:
                self._cond.notify_all()
            self._permits = new

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Take a permit; False when not blocking (or on timeout) and none is free."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                self._maybe_update()
                if self._active < self._permits:
                    self._active += 1
                    return True
                if not blocking:
                    return False
                wait = self.check_interval if self.safety_enabled else None
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    wait = remaining if wait is None else min(wait, remaining)
                self._cond.wait(wait)

    def release(self) -> None:
        with self._cond:
            if self._active <= 0:
                raise ValueError("DynamicSemaphore released more times than acquired")
            self._active -= 1
            self._cond.notify()

    def __enter__(self) -> "DynamicSemaphore":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
