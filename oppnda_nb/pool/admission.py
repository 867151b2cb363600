"""The admission rule as pure functions over plain data (no processes, no clocks, no I/O).

When does a file start? — all of:

1. a permit of the :class:`~oppnda_nb.resource_manager.DynamicSemaphore` (checked by the job);
2. memory: ``committed − m_w + max(E_f, m_w) ≤ budget`` (:func:`fits`) where ``E_f`` is the file's
   estimate (a whole worker's peak), ``m_w`` the measured memory of the idle worker that would
   take it, and ``committed = kernel + helpers + Σ_running max(E_i, m_i) + Σ_idle m_j``
   (:func:`committed_bytes`). Counting a running file as max(estimate, measured) never double
   counts a worker and its estimate, and catches a file that grows beyond its estimate;
3. ordering (:func:`choose`): files wait largest first (LPT). When the head does not fit, smaller
   files that fit may overtake it, at most ``max_overtakes`` times; then nothing starts until
   the head fits, so a large file is never starved by small ones;
4. a file that must run alone (its estimate does not fit even with nothing else running, or it
   is retried after its worker died or was stopped by the watchdog) waits at the head until
   nothing runs; nothing starts next to it. If nothing runs at all, the head always starts.

Oversize files (:func:`oversize_decision`): a file whose estimate does not fit alone first gets
its lean estimate; if that does not fit either, it is skipped ("skip") or run alone ("run-alone").

Watchdog (:func:`over_estimate`, :func:`watchdog_victim`): a running worker measured above its
admitted estimate by a margin blocks new admissions; if the pool's memory passes the budget,
the worker furthest above its estimate is stopped and its file retried alone in lean mode.

Batches of small files (:func:`batchable`, :func:`batch_size`, :func:`take_small`): a small,
fresh file comfortably inside the budget leads a batch of further small fresh files taken from
the small end of the queue, each with an estimate at most the lead's (so the lead's admission
holds for every member).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from operator import attrgetter
from typing import Callable, Hashable, Iterable, Sequence, TypeVar

from ..system import MB

C = TypeVar("C")
_estimate_of = attrgetter("estimate")


@dataclass
class Candidate:
    """A queued file as the rule sees it (the job's own task objects have the same attributes)."""

    size: int
    estimate: float  # bytes: a whole worker's peak for this file
    alone: bool = False  # must run alone (a retry after a worker death or a watchdog stop)
    attempts: int = 0  # 0: fresh
    overtaken: int = 0  # how often smaller files overtook it at the head


@dataclass(frozen=True)
class Choice:
    """The file to start: its position in the queue and how it runs."""

    index: int
    alone: bool
    overtook: bool  # it overtook the head (the caller counts one more overtake on the head)
    over_budget: bool  # started although it does not fit (nothing else was running)


class Oversize(str, Enum):
    """What to do with a file whose estimate does not fit the budget alone."""

    FITS = "fits"  # it fits: nothing to do
    LEAN = "lean"  # its lean estimate fits: run it in lean mode
    SKIP = "skip"  # skip it (policy "skip")
    ALONE = "alone"  # run it alone anyway (policy "run-alone")


OVERSIZE_POLICIES = ("skip", "run-alone")


def committed_bytes(kernel: float, running: Iterable[tuple[float, float]], idle: Iterable[float],
                    helpers: float = 0.0) -> float:
    """kernel + helpers + Σ_running max(estimate, measured) + Σ_idle measured (bytes)."""
    return (float(kernel) + float(helpers) + sum(max(e, m) for e, m in running)
            + sum(float(m) for m in idle))


def capped_peak(peak: float, budget: float, planned: float = 0.0) -> float:
    """A predicted peak as this admission bounds it: files start next to others only when all fits
    the budget, so the pool passes the budget only with one file alone, which the caller's plan
    (``planned``) counts; never below that plan."""
    return max(min(float(peak), max(float(budget), float(planned))), float(planned))


def fits(committed: float, m_w: float, estimate: float, budget: float) -> bool:
    """Does a file of ``estimate`` fit on the idle worker measured at ``m_w``?"""
    return committed - m_w + max(estimate, m_w) <= budget


def fits_alone(kernel: float, estimate: float, budget: float) -> bool:
    """Does the file fit with nothing else running (next to the kernel only)?"""
    return kernel + estimate <= budget


def oversize_decision(kernel: float, estimate: float, budget: float, policy: str = "skip",
                      lean_estimate: float | None = None) -> Oversize:
    """FITS when ``estimate`` fits alone; else LEAN when a (smaller) lean estimate fits; else the
    policy: SKIP ("skip") or ALONE ("run-alone")."""
    if policy not in OVERSIZE_POLICIES:
        raise ValueError(f"oversize must be one of {OVERSIZE_POLICIES}, got {policy!r}")
    if fits_alone(kernel, estimate, budget):
        return Oversize.FITS
    if lean_estimate is not None and lean_estimate < estimate and fits_alone(kernel, lean_estimate, budget):
        return Oversize.LEAN
    return Oversize.SKIP if policy == "skip" else Oversize.ALONE


def oversize_reason(name: str, estimate: float, budget: float, kernel: float) -> str:
    """The skip reason of an oversize file: names the file, its estimate and the budget."""
    return (f"{name}: estimated {estimate / MB:.0f} MB does not fit the memory budget of {budget / MB:.0f} MB "
            f"even alone (next to the kernel's {kernel / MB:.0f} MB); skipped. Raise the budget (eta, "
            "total RAM) or use oversize='run-alone'")


def choose(queue: Sequence[C], *, budget: float, committed: float, m_w: float, running: int,
           kernel: float, max_overtakes: int,
           estimate: Callable[[C], float] = _estimate_of) -> Choice | None:
    """The file to start next on an idle worker measured at ``m_w`` (None: nothing may start).

    ``queue`` is in LPT order (largest first); ``estimate(c)`` gives a candidate's current
    estimate (NaN: the caller has taken it out, pass it over); ``running`` is how many files run.
    """
    for i, c in enumerate(queue):
        e = estimate(c)
        if math.isnan(e):
            continue
        if c.alone or not fits_alone(kernel, e, budget):
            if running == 0:
                return Choice(i, True, i > 0, not fits_alone(kernel, e, budget))
            if i == 0:
                return None  # waits for the pool to drain; nothing overtakes it
            continue
        ok = fits(committed, m_w, e, budget)
        if ok or running == 0:
            return Choice(i, False, i > 0, not ok)
        if i == 0 and c.overtaken >= max_overtakes:
            return None
    return None


def batchable(c, est: float, *, enabled: bool, batch_file_bytes: int, workers: int, budget: float,
              kernel: float) -> bool:
    """May ``c`` lead a batch? Small, fresh, not alone, and comfortably inside the budget (a
    full pool of files like it fits next to the kernel)."""
    return (enabled and c.size < batch_file_bytes and c.attempts == 0 and not c.alone
            and kernel + max(1, workers) * est <= budget)


def small_pending(queue: Sequence, batch_file_bytes: int) -> int:
    """How many queued files are below ``batch_file_bytes`` (the queue is sorted by size, descending)."""
    lo, hi = 0, len(queue)
    while lo < hi:
        mid = (lo + hi) // 2
        if queue[mid].size >= batch_file_bytes:
            lo = mid + 1
        else:
            hi = mid
    return len(queue) - lo


def batch_size(small_left: int, workers: int, batch_max_files: int) -> int:
    """n = clamp(small files left / (workers·4), 1, batch_max_files): batches shrink towards the
    end so every worker stays busy and progress stays smooth (the lead counts as one)."""
    return min(batch_max_files, max(1, (small_left + 1) // (max(1, workers) * 4)))


def take_small(queue: Sequence[C], lead_size: int, lead_estimate: float, n: int, *, batch_file_bytes: int,
               batch_max_bytes: int, estimate: Callable[[C], float] = _estimate_of) -> list[int]:
    """Positions (descending) of up to n−1 further members for a batch, from the small end of
    the queue: fresh, not alone, small, estimate ≤ the lead's, all together ≤ batch_max_bytes."""
    take: list[int] = []
    nbytes = lead_size
    i = len(queue) - 1
    while i >= 0 and len(take) < n - 1:
        c = queue[i]
        if c.size >= batch_file_bytes:
            break
        if not c.alone and c.attempts == 0:
            e = estimate(c)
            if not math.isnan(e) and e <= lead_estimate:
                if nbytes + c.size > batch_max_bytes:
                    break
                take.append(i)
                nbytes += c.size
        i -= 1
    return take


def over_estimate(measured: float, estimate: float, margin: float, margin_bytes: float) -> bool:
    """Is a worker measured above its admitted estimate by more than the margin
    (``estimate·(1+margin) + margin_bytes``)?"""
    return measured > estimate * (1.0 + margin) + margin_bytes


def watchdog_victim(running: Iterable[tuple[Hashable, float, float]], total: float, budget: float,
                    margin: float, margin_bytes: float) -> Hashable | None:
    """The worker to stop: when the pool's ``total`` memory passes ``budget``, the one of
    ``(key, estimate, measured)`` furthest above its estimate among those over the margin."""
    if not total > budget:
        return None
    over = [(m - e, k) for k, e, m in running if over_estimate(m, e, margin, margin_bytes)]
    if not over:
        return None
    return max(over, key=lambda x: x[0])[1]


def time_limit(size: int, base_s: float | None, per_mb_s: float) -> float | None:
    """The per-file time limit: ``base_s + per_mb_s · size/MB`` seconds (None: no limit)."""
    if base_s is None:
        return None
    return float(base_s) + float(per_mb_s) * size / MB
