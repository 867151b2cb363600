"""Reading the machine: RAM (psutil, cgroup v1/v2 limits, an explicit override), CPUs, and the
memory of a process (read one way: :class:`ProcessMemoryReader`).

Containers and Binder pods show the host's RAM to psutil but kill the process at the
cgroup limit, so the RAM the planner may use (M_RAM) is the smallest of the two.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

try:  # psutil is a dependency, but the spec asks for a working fallback without it
    import psutil
except ImportError:  # pragma: no cover - exercised by monkeypatching in tests
    psutil = None

log = logging.getLogger("oppnda_nb.system")

#: one mebibyte; the only definition (everything else imports it from here)
MB = 1024 * 1024

#: cgroup v1 reports "no limit" as a huge number (PAGE_COUNTER_MAX rounded to pages);
#: anything at or above this is treated as unlimited.
_CGROUP_V1_UNLIMITED = 1 << 60


@dataclass(frozen=True)
class CgroupLimit:
    """A cgroup memory limit and where it was read (for the status block)."""

    limit_bytes: int
    source: str  # e.g. "cgroup v2 /sys/fs/cgroup/memory.max"
    usage_file: Path | None = None
    stat_file: Path | None = None


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except (OSError, ValueError):
        return None
    if text == "max" or not text:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _own_cgroup_paths(proc_cgroup: Path) -> tuple[str | None, str | None]:
    """The (v1 memory, v2 unified) cgroup paths of this process from /proc/self/cgroup."""
    v1 = v2 = None
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None, None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hier, controllers, path = parts
        if hier == "0" and controllers == "":
            v2 = path
        elif "memory" in controllers.split(","):
            v1 = path
    return v1, v2


def _ancestors(mount: Path, cgroup_path: str | None) -> list[Path]:
    """The cgroup directory of this process and each parent up to the mount point."""
    dirs = [mount]
    if cgroup_path:
        rel = cgroup_path.strip("/")
        parts = [p for p in rel.split("/") if p]
        for i in range(1, len(parts) + 1):
            d = mount.joinpath(*parts[:i])
            if d.is_dir():
                dirs.append(d)
    return dirs


def read_cgroup_limit(
    root: Path | str = "/sys/fs/cgroup", proc_cgroup: Path | str = "/proc/self/cgroup"
) -> CgroupLimit | None:
    """The tightest cgroup v1 or v2 memory limit that applies to this process, if any.

    v2: ``memory.max`` ("max" means no limit); v1: ``memory/memory.limit_in_bytes``
    (a huge number means no limit). The process's own cgroup and all its parents are
    checked, because a limit set on a parent applies to the children too.
    """
    root, proc_cgroup = Path(root), Path(proc_cgroup)
    v1_path, v2_path = _own_cgroup_paths(proc_cgroup)
    best: CgroupLimit | None = None

    def consider(limit: int | None, source: Path, usage: Path, stat: Path) -> None:
        nonlocal best
        if limit is None or limit <= 0 or limit >= _CGROUP_V1_UNLIMITED:
            return
        if best is None or limit < best.limit_bytes:
            best = CgroupLimit(limit, f"cgroup {source}", usage, stat)

    v1_mount = root / "memory"
    if (v1_mount / "memory.limit_in_bytes").exists():
        for d in _ancestors(v1_mount, v1_path):
            f = d / "memory.limit_in_bytes"
            consider(_read_int(f), f, d / "memory.usage_in_bytes", d / "memory.stat")
    if (root / "cgroup.controllers").exists() or (root / "memory.max").exists():
        for d in _ancestors(root, v2_path):
            f = d / "memory.max"
            consider(_read_int(f), f, d / "memory.current", d / "memory.stat")
    return best


def cgroup_used_bytes(limit: CgroupLimit) -> int | None:
    """Memory charged to the cgroup, less reclaimable page cache (``inactive_file``)."""
    if limit.usage_file is None:
        return None
    usage = _read_int(limit.usage_file)
    if usage is None:
        return None
    inactive = 0
    try:
        for line in limit.stat_file.read_text().splitlines():  # type: ignore[union-attr]
            key, _, value = line.partition(" ")
            if key in ("inactive_file", "total_inactive_file"):
                inactive = max(inactive, int(value))
    except (OSError, ValueError, AttributeError):
        pass
    return max(0, usage - inactive)


def cpu_count() -> int | None:
    """CPUs this process may run on (affinity-aware), or None when unknown."""
    if hasattr(os, "sched_getaffinity"):
        try:
            return len(os.sched_getaffinity(0)) or None
        except OSError:
            pass
    return os.cpu_count()


MEMORY_METHODS = ("auto", "pss", "uss", "rss")


def resolve_memory_method(method: str = "auto") -> str:
    """The measure to use: "auto" is PSS where the OS gives it (Linux), USS otherwise (macOS,
    Windows), RSS as the last resort; "none" without psutil. Decided on this process."""
    if method not in MEMORY_METHODS:
        raise ValueError(f"method must be one of {', '.join(MEMORY_METHODS)}, got {method!r}")
    if psutil is None:
        return "none"
    if method != "auto":
        return method
    try:
        full = psutil.Process().memory_full_info()
    except (psutil.AccessDenied, OSError, AttributeError):
        return "rss"
    if getattr(full, "pss", 0):
        return "pss"
    if getattr(full, "uss", 0):
        return "uss"
    return "rss"


@dataclass
class ProcessMemory:
    """One reading of one process: ``mem`` by the reader's method (bytes) and its RSS."""

    mem: float
    rss: float


class ProcessMemoryReader:
    """THE way this package reads a process's memory ("pss", "uss" or "rss"; "auto" picks PSS,
    then USS, then RSS). The monitor, the workers and the ResourceManager all use it.

    RSS double counts pages shared between the kernel and forked workers; USS counts what the
    process would free on exit; PSS splits shared pages, so PSS sums over a tree add up.
    PSS/USS cost ~1 ms per process (page-table walk), RSS ~15 µs, so a process is read in full
    at most every ``full_every`` seconds; in between its PSS/USS is carried forward by the
    change of its RSS (private memory grows and shrinks the same in both; pages a forked worker
    newly shares count fully in RSS, so the carried value errs on the high side).
    """

    def __init__(self, method: str = "auto", full_every: float = 1.0):
        self.method = resolve_memory_method(method)
        self.full_every = float(full_every)
        self._procs: dict[int, "psutil.Process"] = {}
        self._full: dict[int, tuple[float, float, float]] = {}  # pid -> (time, mem, rss) of the last full read

    def read(self, pid: int | None = None, rss: float | None = None) -> ProcessMemory | None:
        """The memory of ``pid`` (default: this process), None when it is gone (zombies too).

        ``rss``: the process's RSS if the caller already knows it (a worker reads its own
        through /proc cheaply); used for the carry-forward between full reads.
        """
        if psutil is None:
            return None
        pid = os.getpid() if pid is None else int(pid)
        proc = self._procs.get(pid)
        try:
            if proc is None:
                proc = self._procs[pid] = psutil.Process(pid)
            if self.method in ("pss", "uss"):
                now = time.monotonic()
                last = self._full.get(pid)
                if last is not None and now - last[0] < self.full_every:
                    now_rss = float(proc.memory_info().rss) if rss is None else float(rss)
                    return ProcessMemory(max(0.0, last[1] + now_rss - last[2]), now_rss)
                full = proc.memory_full_info()
                mem, full_rss = float(getattr(full, self.method) or 0.0), float(full.rss)
                if not mem:  # the OS gave no such figure for this process
                    mem = float(getattr(full, "uss" if self.method == "pss" else "pss", 0.0) or full_rss)
                self._full[pid] = (now, mem, full_rss)
                return ProcessMemory(mem, full_rss)
            now_rss = float(proc.memory_info().rss)
            return ProcessMemory(now_rss, now_rss)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            self.forget(pid)
            return None
        except (psutil.AccessDenied, OSError) as exc:
            log.debug("full memory read of %s failed (%s); using RSS", pid, exc)
            try:
                now_rss = float(proc.memory_info().rss)  # type: ignore[union-attr]
                return ProcessMemory(now_rss, now_rss)
            except (psutil.Error, OSError):
                return None

    def forget(self, pid: int) -> None:
        """Drop what is cached about ``pid`` (it ended)."""
        self._procs.pop(pid, None)
        self._full.pop(pid, None)


_shared: dict[str, ProcessMemoryReader] = {}


def shared_reader(method: str = "auto") -> ProcessMemoryReader:
    """The process-wide reader for ``method`` (full reads at most once a second per process, RSS
    carried in between). The pool's monitor and :func:`process_tree_bytes` share it, so the
    job's own memory and a virtual machine's "used" agree at any moment (no phantom "others")."""
    key = resolve_memory_method(method)
    reader = _shared.get(key)
    if reader is None:
        reader = _shared.setdefault(key, ProcessMemoryReader(key))
    return reader


def process_memory_bytes(pid: int | None = None, *, method: str = "uss") -> float:
    """Memory of one process now by ``method`` (see :class:`ProcessMemoryReader`); 0.0 when it is
    gone. "uss" falls back to PSS, then RSS; "pss" to USS, then RSS."""
    m = ProcessMemoryReader(method, full_every=0.0).read(pid)
    return 0.0 if m is None else m.mem


def shared_with_others_bytes(pid: int | None = None) -> float:
    """What a process's PSS counts of pages it shares with other processes (PSS - USS), read now;
    -1.0 when the system does not tell (no psutil, no PSS)."""
    if psutil is None:
        return -1.0
    try:
        full = psutil.Process(pid).memory_full_info()
    except (psutil.Error, OSError):
        return -1.0
    pss, uss = getattr(full, "pss", None), getattr(full, "uss", None)
    return -1.0 if not pss or uss is None else max(0.0, float(pss) - float(uss))


def process_tree_bytes(pid: int | None = None, *, method: str = "pss") -> float:
    """Memory of a process and all its descendants (PSS by default: shared pages counted once),
    through :func:`shared_reader`."""
    if psutil is None:
        return 0.0
    try:
        proc = psutil.Process(pid) if pid is not None else psutil.Process()
        procs = [proc] + proc.children(recursive=True)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0.0
    reader = shared_reader(method)
    total = 0.0
    for p in procs:
        m = reader.read(p.pid)
        total += 0.0 if m is None else m.mem
    return total
