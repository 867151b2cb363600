"""The one memory model: how much memory a worker needs for one file, and the run's peak.

Per report type t (or any other kind label the caller uses) a worker's peak while it works on a
file of ``size`` bytes is modelled as the spec's formula with per-type parameters, plus the chunk
allowance of a streamed type::

    E_t(size) = γ_t · size + M_overhead_t + min(ρ_t · size, C_t)      (bytes, the whole worker)

``M_overhead_t`` holds the interpreter and the imports; ``C_t`` is what parsing one block costs
(reached once the file is about one block long: it grows as ``ρ_t · size`` below that, so a small
file is not charged a whole block); ``γ_t`` what still grows with the file (running aggregates,
distinct IDs). Without ``ρ_t`` the model is the spec's line. Priors are measured on real ONE output (the
report registry gives them); the spec's ``gamma``/``overhead_mb``, when the user sets them, override
every type. Measured peaks update a type's model during a run (:meth:`MemoryModel.observe`):
conservatively, the learned line stays above every peak seen.

:func:`plan_peak` is the one prediction of a run's peak: P_opt, the pool's plan, the panel, the
calibration report, Dask's per-task demand and the plotted predicted peak all call it.
"""
from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from .system import MB

log = logging.getLogger("oppnda_nb.memory")

#: the margin learned models keep above the largest peak seen (fraction of the peak)
LEARN_MARGIN = 0.10
#: a file this large has passed every chunk ramp: what it needs beyond its prior grows with the file
LARGE_FILE_BYTES = 8 * MB
#: observations kept per type (the newest; enough for a stable envelope)
MAX_OBSERVATIONS = 64


@dataclass(frozen=True)
class TypeModel:
    """γ, M_overhead (MB) and the chunk allowance C (MB, reached at ρ MB per MB of file) of one
    report type; ``source`` says where they come from."""

    gamma: float
    overhead_mb: float
    source: str = "prior"  # "prior" | "user" | "learned"
    chunk_mb: float = 0.0  # C: what parsing one block costs a streamed type (0: not streamed)
    ramp: float | None = None  # ρ: C is reached at size·ρ (None: C counts whatever the size)

    def chunk_bytes(self, size: float) -> float:
        """min(ρ · size, C) in bytes: the block allowance a file of ``size`` bytes needs."""
        cap = self.chunk_mb * MB
        return cap if self.ramp is None else min(self.ramp * float(size), cap)

    def estimate(self, size: float) -> float:
        """γ · size + M_overhead + min(ρ · size, C), in bytes."""
        return self.gamma * float(size) + self.overhead_mb * MB + self.chunk_bytes(size)

    def lean_estimate(self, size: float) -> float:
        """The estimate when streamed in lean mode (a quarter of the chunk allowance)."""
        return self.estimate(size) - 0.75 * self.chunk_bytes(size)


def envelope(points: Sequence[tuple[float, float]], prior: TypeModel) -> TypeModel:
    """The lowest line of the prior's shape that lies above every (size, peak) point (+margin).

    With sizes that differ enough to identify a slope, γ is the steepest slope from the smallest
    file to any larger one (never below 0) and M_overhead is raised until every point is under
    the line. Otherwise, what a large file (:data:`LARGE_FILE_BYTES` or more) needs beyond the prior
    is taken as growing with the file (γ rises, so small files keep their estimates); for small
    files only M_overhead moves. A learned model can fall below a cautious prior (that is the
    point of learning) but never below what was measured.
    """
    if not points:
        return prior
    # the chunk allowance keeps the prior's shape: the line is fitted to what is left above it
    pts = sorted((float(s), float(p) * (1 + LEARN_MARGIN) - prior.chunk_bytes(s)) for s, p in points)
    s0, p0 = pts[0]
    gamma, slope_known = prior.gamma, False
    if pts[-1][0] > 0 and pts[-1][0] - s0 >= 0.5 * pts[-1][0] and pts[-1][0] >= 1 * MB:
        slopes = [(p - p0) / (s - s0) for s, p in pts[1:] if s - s0 > 0.25 * pts[-1][0]]
        if slopes:
            gamma, slope_known = max(0.0, max(slopes)), True
    large = [(s, p) for s, p in pts if s >= LARGE_FILE_BYTES]
    if not slope_known and large:
        gamma = max([gamma] + [(p - prior.overhead_mb * MB) / s for s, p in large])
    overhead = max(p - gamma * s for s, p in pts)
    # a worker never costs less than its baseline
    floor = min(prior.overhead_mb * MB, min(p - prior.chunk_bytes(s) for s, p in points))
    return TypeModel(gamma, max(floor, overhead) / MB, "learned", prior.chunk_mb, prior.ramp)


class MemoryModel:
    """Per-type models with priors, the user's override, and learning from measured peaks.

    ``default`` is the model of a type without a prior (the spec's γ and M_overhead).
    ``override``: the user set γ/M_overhead explicitly, so every type uses ``default``.
    Thread-safe: the pool's scheduler reads estimates while outcomes are observed.
    """

    def __init__(self, default: TypeModel, priors: Mapping[str, TypeModel] | None = None, *,
                 override: bool = False, learned: Mapping[str, TypeModel] | None = None):
        self.default = default
        self.priors = dict(priors or {})
        self.override = bool(override)
        self._learned: dict[str, TypeModel] = dict(learned or {})
        self._points: dict[str, list[tuple[float, float]]] = {}
        self._lock = threading.Lock()

    def model_for(self, kind: str | None) -> TypeModel:
        """The model in force for ``kind``: learned, else the user's override, else the prior."""
        with self._lock:
            learned = self._learned.get(kind or "")
        if learned is not None:
            return learned
        if self.override:
            return self.default
        return self.priors.get(kind or "", self.default)

    def estimate(self, kind: str | None, size: float) -> float:
        """Estimated peak bytes of one worker processing a ``size``-byte file of ``kind``."""
        return self.model_for(kind).estimate(size)

    def lean_estimate(self, kind: str | None, size: float) -> float:
        """Estimated peak bytes when the file is streamed in lean mode (smaller chunks)."""
        return self.model_for(kind).lean_estimate(size)

    def observe(self, kind: str | None, size: float, peak_bytes: float) -> TypeModel:
        """Learn from one measured worker peak; returns the model now in force for ``kind``."""
        if not (peak_bytes and math.isfinite(peak_bytes)) or peak_bytes <= 0:
            return self.model_for(kind)
        key = kind or ""
        base = self.default if self.override else self.priors.get(key, self.default)
        with self._lock:
            pts = self._points.setdefault(key, [])
            pts.append((float(size), float(peak_bytes)))
            del pts[:-MAX_OBSERVATIONS]
            old = self._learned.get(key)
            new = envelope(pts, base)
            if old is not None and len(pts) < 3 and new.estimate(size) < old.estimate(size):
                new = old  # too few points in this run to overrule what earlier runs learned
            self._learned[key] = new
        return new

    def learned(self) -> dict[str, TypeModel]:
        """The learned models (what a store keeps between runs)."""
        with self._lock:
            return dict(self._learned)


#: multiprocessing's resource tracker (a small interpreter), part of every pool's own memory (PSS
#: measured 9.1-10.1 MB)
TRACKER_BYTES = 11 * MB
#: a pool worker's own memory before any file (PSS after its imports; benchmarks/bench_worker_memory.py
#: measures 26-27 MB): the part of every estimate that a worker of another engine (Dask) has already
WORKER_BASELINE_BYTES = 26 * MB
#: a worker before a file as the estimates count it: the baseline plus what it may keep from earlier
#: files before it retires (8 MB). Measured peaks are learned as this plus the file's own rise above
#: the worker's baseline, so what is learned does not depend on how many workers share pages or on
#: the start method (a spawned worker's baseline is 28 MB higher).
WORKER_REFERENCE_BYTES = 35 * MB
#: Workers started from the forkserver share its pages (the imports): PSS counts them once for the
#: whole pool. Measured next to a kernel without pandas (2 cores, Linux; the forkserver and its
#: workers together): idle workers that ran nothing, 71.4 MB with 1 worker, 76.2 with 2, 81.4 with
#: 3, 86.0 with 4 (~66.5 MB + ~5 MB per worker); but a worker that has run files maps more of the
#: libraries and keeps some heap (up to 8 MB before it retires): running the bundled sample's 240
#: small files, the forkserver and 2 workers held 96-98 MB. So the forkserver counts 60 MB and each
#: running worker 19 MB plus its file's rise: an estimate (measured as one worker next to the
#: forkserver, 35 MB before a file) holds 16 MB of shared pages.
FORKSERVER_BYTES = 60 * MB
SHARED_WITH_FORKSERVER_BYTES = 16 * MB
#: a spawned worker imports everything itself; the libraries' pages are shared among the workers
#: (PSS splits them). Measured idle (next to a kernel without pandas): 66.2 MB with 1 worker, 58.1
#: each with 2, 55.1 with 3, 53.6 with 4, i.e. ~50 MB + 16.2 MB / workers: above the 35 MB an
#: estimate counts before a file, 16 MB private plus 17 MB shared by the workers (rounded up)
SPAWN_PRIVATE_BYTES = 16 * MB
SPAWN_SHARED_BYTES = 17 * MB


#: the kernel's own PSS falls once the pool's processes map the same files (the Python executable,
#: numpy, ...): PSS splits those pages among them. Measured (the kernel before the pool -> while a
#: file runs), kernels that shared no pages with another process (PSS - USS <= 0.6 MB): forkserver
#: 36.1 -> 27.2 MB (a command-line kernel), 71.8 -> 58.7 (pandas imported), 64.2 -> 55.2 (IPython);
#: spawn 36.1 -> 29.6, 71.8 -> 63.6. A Jupyter kernel that already shared 12 MB with the server's
#: processes fell only 112.3 -> 108.9. What a plan may take off such an unshared kernel for the
#: pool's phases (a forked pool shares even more; it is not counted):
KERNEL_SHARED_WITH_POOL_BYTES = {"forkserver": 6 * MB, "spawn": 5 * MB}
#: a kernel sharing more than this with other processes already gets no such allowance
KERNEL_ALONE_SHARED_BYTES = 2 * MB


def kernel_sharing_allowance(start_method: str, already_shared_bytes: float) -> float:
    """What the kernel's PSS will fall by while the pool's processes run (see
    :data:`KERNEL_SHARED_WITH_POOL_BYTES`): only for a kernel that shares (almost) nothing yet."""
    if not 0 <= already_shared_bytes <= KERNEL_ALONE_SHARED_BYTES:
        return 0.0
    return KERNEL_SHARED_WITH_POOL_BYTES.get(start_method, 0.0)


def helpers_allowance(estimates: Iterable[float], start_method: str = "forkserver") -> float:
    """Memory of the pool's helper processes before they can be measured: the resource tracker, and
    the forkserver with the pages its workers share; 0 when there is no file to run."""
    if not any(True for _ in estimates):
        return 0.0
    return TRACKER_BYTES + (FORKSERVER_BYTES if start_method == "forkserver" else 0.0)


def worker_adjustment(start_method: str = "forkserver", workers: int = 1) -> float:
    """What one of ``workers`` running workers costs beyond (or below) its estimate under
    ``start_method``: the shared pages a forkserver worker's estimate holds are in
    :func:`helpers_allowance` already (minus), a spawned worker carries its own imports, whose
    library pages it shares with the other workers (plus), a forked one shares the kernel's (0)."""
    if start_method == "forkserver":
        return -SHARED_WITH_FORKSERVER_BYTES
    if start_method == "spawn":
        return SPAWN_PRIVATE_BYTES + SPAWN_SHARED_BYTES / max(1, int(workers))
    return 0.0


def plan_peak(kernel_bytes: float, estimates: Iterable[float], workers: int,
              budget_bytes: float = math.inf, idle_bytes: float = 0.0, helpers_bytes: float = 0.0,
              per_worker_bytes: float = 0.0, admitted_bytes: float | None = None) -> float:
    """M(t) of the spec with per-file estimates: kernel + helpers + Σ of the largest files that run together.

    Each worker gets the largest estimate that still fits ``budget_bytes`` next to those already
    counted (the pool never starts a file that does not fit next to others, and a smaller one may
    run instead; the first always runs). The fit is judged as the pool's admission at its most
    permissive (kernel and raw estimates, no helpers), so the plan never runs fewer files together
    than the pool may, and stays an upper bound; ``admitted_bytes`` (default ``kernel_bytes``) is
    what the admission counts for the kernel at the least (a pool that reserves the kernel's planned
    growth counts it from the start). Workers left without a file count ``idle_bytes`` each;
    ``helpers_bytes`` is the pool's helper processes (forkserver, resource tracker);
    ``per_worker_bytes`` is added to each running estimate (:func:`worker_adjustment`). This is the
    run's predicted peak, in bytes.
    """
    ests = sorted((float(e) for e in estimates), reverse=True)
    total, k = float(kernel_bytes) + float(helpers_bytes), 0
    admitted = float(kernel_bytes if admitted_bytes is None else admitted_bytes)  # what admission counts at the least
    slots = max(1, int(workers))
    for e in ests:
        if k >= slots:
            break
        if k > 0 and admitted + e > budget_bytes:
            continue                     # it waits; a smaller file may run next to the others
        total += max(0.0, e + float(per_worker_bytes))
        admitted += e
        k += 1
    idle = max(0, min(slots, len(ests)) - k)
    return total + idle * float(idle_bytes)


def workers_that_fit(kernel_bytes: float, estimates: Iterable[float], budget_bytes: float, upper: int) -> int:
    """P_opt before clamping: the largest p with kernel + Σ_{i≤p} E_i ≤ budget (E sorted, largest first)."""
    total, fits = float(kernel_bytes), 0
    for e in sorted((float(x) for x in estimates), reverse=True)[: max(0, int(upper))]:
        total += e
        if total > budget_bytes:
            break
        fits += 1
    return fits


# ------------------------------------------------------------------------------ the store

def cache_dir() -> Path:
    """Where oppnda_nb keeps what it learns: ``$OPPNDA_CACHE_DIR``, else ``$XDG_CACHE_HOME/oppnda_nb``,
    else ``~/.cache/oppnda_nb`` (``%LOCALAPPDATA%\\oppnda_nb`` on Windows)."""
    env = os.environ.get("OPPNDA_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.environ.get("LOCALAPPDATA") or Path.home() / ".cache"
    return Path(base) / "oppnda_nb"


def store_path() -> Path:
    """The learned memory models: ``<cache_dir>/memory-models.json``."""
    return cache_dir() / "memory-models.json"


def load_learned(model: MemoryModel, key: str, path: Path | None = None) -> int:
    """Load the models learned by earlier runs for parser version ``key``; returns how many.

    A missing store is normal; a corrupt one is logged as a warning and ignored (it is rewritten
    by the next save). Nothing learned is applied where the user overrides γ/M_overhead.
    """
    path = path or store_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        entries = data.get(key, {}) if isinstance(data, dict) else {}
        learned = {str(t): TypeModel(float(m["gamma"]), float(m["overhead_mb"]), "learned",
                                     float(m.get("chunk_mb", 0.0)),
                                     None if m.get("ramp") is None else float(m["ramp"]))
                   for t, m in entries.items()}
    except FileNotFoundError:
        return 0
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        log.warning("the memory-model store %s is unreadable (%s); starting from the priors", path, exc)
        return 0
    if model.override:
        return 0
    with model._lock:
        for t, m in learned.items():
            model._learned.setdefault(t, m)
    return len(learned)


def save_learned(model: MemoryModel, key: str, path: Path | None = None) -> None:
    """Merge the model's learned types into the store (atomically; other versions' entries kept)."""
    learned = model.learned()
    if not learned or model.override:
        return
    path = path or store_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            data = data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            data = {}
        section = data.get(key) if isinstance(data.get(key), dict) else {}
        section.update({t: {k: v for k, v in asdict(m).items() if k != "source"} for t, m in learned.items()})
        data[key] = section
        fd, tmp = tempfile.mkstemp(dir=str(path.parent), prefix=".memory-models-", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("could not save the learned memory models to %s: %s", path, exc)
