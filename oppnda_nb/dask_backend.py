"""The same job on a Dask cluster, for sweeps that outgrow one machine.

The per-file work (:func:`averaging.summarize_files`) and the grouping/statistics
(:func:`averaging.aggregate`) are the ones the local pool uses, so results are identical;
only the scheduling moves to Dask, whose workers manage their own memory (memory_limit,
spill/pause/terminate thresholds). :func:`local_cluster` sizes a ``LocalCluster`` with the
ResourceManager's P_opt and splits the η budget between its workers.

Needs the ``dask`` extra: ``pip install 'oppnda_nb[dask]'``.
"""
from __future__ import annotations

from .errors import OppndaError


def _distributed():
    try:
        import distributed
    except ImportError:
        raise OppndaError("Dask is not installed: pip install 'oppnda_nb[dask]' (dask[distributed]).") from None
    return distributed


def local_cluster(manager=None, file_paths=None, **kwargs):
    """A ``distributed.LocalCluster`` with P_opt single-threaded workers sharing the η budget."""
    from .resource_manager import ResourceManager

    distributed = _distributed()
    manager = manager or ResourceManager()
    workers = manager.get_optimal_workers(file_paths=file_paths)
    budget = max(manager.budget_bytes(), 256 * 2**20)
    kwargs.setdefault("n_workers", workers)
    kwargs.setdefault("threads_per_worker", 1)
    kwargs.setdefault("memory_limit", int(budget / kwargs["n_workers"]))
    kwargs.setdefault("dashboard_address", ":0")  # any free port, never a clash
    return distributed.LocalCluster(**kwargs)


class DaskJob:
    """The pool's interface (start/stop/wait/listeners/progress/memory) over a Dask cluster.

    Not built yet: Run(..., scheduler=...) raises until it is.
    """

    def __init__(self, *args, client=None, **kwargs):
        raise OppndaError("Running on Dask through Run(scheduler=...) is not available yet.")
