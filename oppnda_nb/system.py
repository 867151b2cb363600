"""Reading the machine: RAM (psutil, cgroup v1/v2 limits, an explicit override) and CPUs.

Containers and Binder pods show the host's RAM to psutil but kill the process at the
cgroup limit, so the RAM the planner may use (M_RAM) is the smallest of the two.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

try:  # psutil is a dependency, but the spec asks for a working fallback without it
    import psutil
except ImportError:  # pragma: no cover - exercised by monkeypatching in tests
    psutil = None

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


def process_memory_bytes(pid: int | None = None, *, method: str = "uss") -> float:
    """Memory of one process by ``method``: "uss" (falls back to PSS, then RSS), "pss" (falls
    back to USS, then RSS) or "rss".

    RSS double counts pages shared between the kernel and forked workers; USS counts only what
    the process would free on exit; PSS splits shared pages fairly, so PSS sums over a process
    tree add up to its real memory. Returns 0.0 for a process that is gone.
    """
    if psutil is None:
        return 0.0
    try:
        proc = psutil.Process(pid) if pid is not None else psutil.Process()
        if method != "rss":
            order = ("uss", "pss") if method == "uss" else ("pss", "uss")
            try:
                full = proc.memory_full_info()
                for field in order:
                    value = getattr(full, field, None)
                    if value:
                        return float(value)
            except (psutil.AccessDenied, OSError):
                pass
        return float(proc.memory_info().rss)
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied, OSError):
        return 0.0


def process_tree_bytes(pid: int | None = None, *, method: str = "pss") -> float:
    """Memory of a process and all its descendants (PSS by default: shared pages counted once)."""
    if psutil is None:
        return 0.0
    try:
        proc = psutil.Process(pid) if pid is not None else psutil.Process()
        procs = [proc] + proc.children(recursive=True)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0.0
    return sum(process_memory_bytes(p.pid, method=method) for p in procs)
