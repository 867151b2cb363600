"""Dask clusters: connect to one (a Client, an address, a cluster object, or N local workers),
or start a local one sized by the ResourceManager."""
from __future__ import annotations

import logging
import math
import os
from typing import Any, Sequence

from ..errors import OppndaError
from ..resource_manager import ResourceManager
from ..system import MB

log = logging.getLogger("oppnda_nb.dask")

#: the worker resource that carries a worker's memory capacity (MB) and a task's estimate (MB)
RESOURCE = "MEMORY"
#: seconds to wait for a scheduler to answer and for at least one worker to be there
CONNECT_TIMEOUT = 10.0



def _distributed():
    try:
        import distributed
    except ImportError:
        raise OppndaError("Dask is not installed: pip install 'oppnda_nb[dask]' (dask[distributed]).") from None
    return distributed




def local_cluster(manager: ResourceManager | None = None, file_paths: Sequence[str] | None = None, **kwargs):
    """A ``distributed.LocalCluster`` of single-threaded process workers sized by the ResourceManager.

    ``n_workers`` defaults to P_opt. Each worker's memory limit plays M_RAM:
    ``budget / (η · n)``, so its capacity η·limit (the ``MEMORY`` resource, MB) sums over the
    workers to the machine's budget η·M_RAM − M_others.
    """
    distributed = _distributed()
    manager = manager or ResourceManager()
    if "n_workers" not in kwargs:
        kwargs["n_workers"] = manager.get_optimal_workers(file_paths=file_paths) if file_paths else \
            manager.get_optimal_workers()
    n = max(1, int(kwargs["n_workers"]))
    kwargs["n_workers"] = n
    budget = max(manager.budget_bytes(), 256 * MB)
    capacity = budget / n
    kwargs.setdefault("threads_per_worker", 1)
    kwargs.setdefault("memory_limit", int(capacity / manager.eta))
    kwargs.setdefault("resources", {RESOURCE: math.floor(capacity / MB)})
    kwargs.setdefault("dashboard_address", ":0")  # any free port, never a clash
    return distributed.LocalCluster(**kwargs)


def connect(scheduler: Any, manager: ResourceManager | None = None,
            file_paths: Sequence[str] | None = None) -> tuple[Any, bool]:
    """``(client, owned)`` for ``scheduler``: a ``distributed.Client`` (owned False), an address
    ``"tcp://HOST:PORT"``, a Dask cluster object, or an int N (a :func:`local_cluster` of N
    workers); ``owned``: the caller closes the client (and a cluster it started) at the end."""
    distributed = _distributed()
    if isinstance(scheduler, distributed.Client):
        return scheduler, False
    if isinstance(scheduler, bool):
        raise OppndaError(f"scheduler must be a Dask Client, an address or a number of workers, got {scheduler!r}")
    if isinstance(scheduler, int):
        if scheduler < 1:
            raise OppndaError(f"the number of Dask workers must be >= 1, got {scheduler}")
        cluster = local_cluster(manager, file_paths, n_workers=scheduler)
        client = distributed.Client(cluster)
        client._oppnda_cluster = cluster  # closed with the client (close_owned)
        return client, True
    if isinstance(scheduler, (str, os.PathLike)):
        address = os.fspath(scheduler)
        try:
            return distributed.Client(address, timeout=CONNECT_TIMEOUT), True
        except (OSError, TimeoutError) as exc:
            raise OppndaError(f"Could not connect to the Dask scheduler at {address} ({type(exc).__name__}: {exc}). "
                              "Start one with `dask scheduler` and give its address (tcp://HOST:PORT).") from None
    if hasattr(scheduler, "scheduler_address"):  # a cluster object (LocalCluster, SLURMCluster, ...)
        return distributed.Client(scheduler), True
    raise OppndaError(f"scheduler must be a Dask Client, an address tcp://HOST:PORT, a cluster or a number of "
                      f"workers, got {type(scheduler).__name__}")


def close_owned(client: Any) -> None:
    """Close a client from :func:`connect` (and the local cluster it started)."""
    cluster = getattr(client, "_oppnda_cluster", None)
    try:
        client.close(timeout=5)
    except Exception:
        log.warning("closing the Dask client failed", exc_info=True)
    if cluster is not None:
        try:
            cluster.close(timeout=10)
        except Exception:
            log.warning("closing the local Dask cluster failed", exc_info=True)


