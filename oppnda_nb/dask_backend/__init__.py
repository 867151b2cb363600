"""The same job on a Dask cluster, for sweeps that outgrow one machine.

:class:`DaskJob` has the local pool's interface (``add_listener``, ``start``, ``stop``, ``wait``,
``progress``, ``memory_frame``) and the same per-file accounting, so :class:`oppnda_nb.job.Run`
swaps it in for ``scheduler=...`` and everything else (selection, cache, averaging, outputs,
the panel's events) stays the same.

The memory model per worker, with Dask's own mechanism: each worker's memory limit plays M_RAM
and η of it is its capacity, declared as the worker resource ``MEMORY`` (MB, 2**20 bytes):
``dask worker ADDRESS --nthreads 1 --memory-limit 4GiB --resources MEMORY=3072``. Each file is
submitted with ``resources={"MEMORY": its estimate in MB}``, so Dask's scheduler never places
more estimated memory on a worker than its capacity. A file whose estimate exceeds every
capacity is skipped (never sent to be killed). Workers without the resource still work, one
file per worker thread, with a warning that says how to start them.

Needs the ``dask`` extra: ``pip install 'oppnda_nb[dask]'``. See ``docs/dask.md``.
"""
from __future__ import annotations

from .cluster import CONNECT_TIMEOUT, RESOURCE, close_owned, connect, local_cluster
from .job import BATCH_FILE_BYTES, BATCH_MAX_FILES, MAX_RETRIES, WINDOW_MIN, WINDOW_PER_THREAD, DaskJob
from .tasks import run_file, run_files, worker_info

__all__ = ["BATCH_FILE_BYTES", "BATCH_MAX_FILES", "CONNECT_TIMEOUT", "MAX_RETRIES", "RESOURCE", "WINDOW_MIN",
           "WINDOW_PER_THREAD", "DaskJob", "close_owned", "connect", "local_cluster", "run_file", "run_files",
           "worker_info"]
