"""The same job on a Dask cluster, for sweeps that outgrow one machine.

The per-file work (:func:`averaging.summarize_files`) and the grouping/statistics
(:func:`averaging.aggregate`) are the ones the local pool uses, so results are identical;
only the scheduling moves to Dask, whose workers manage their own memory (memory_limit,
spill/pause/terminate thresholds). :func:`local_cluster` sizes a ``LocalCluster`` with the
ResourceManager's P_opt and splits the η budget between its workers.

Needs the ``dask`` extra: ``pip install 'oppnda_nb[dask]'``.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from . import averaging
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


def run_on_dask(
    folder=None,
    *,
    client=None,
    config: Any = None,
    pattern: Any = None,
    group_by: Any = None,
    output=None,
    files_per_task: int = 64,
    write: bool = True,
) -> "averaging.AverageResult":
    """Summarise every report of ``folder`` on a Dask cluster, then average and write as locally.

    ``client``: a ``distributed.Client`` (default: the current one, else a :func:`local_cluster`
    that is closed at the end). Small files are sent in tasks of ``files_per_task`` files.
    Per-file errors are collected, never fatal, exactly as in the local pool.
    """
    from .job import default_output
    from .averaging import sample_folder

    distributed = _distributed()
    t0 = time.perf_counter()
    cfg = averaging.prepare_config(config, pattern, group_by)
    if folder is None and cfg.folder is None:
        folder = sample_folder()
    in_dir = cfg.resolve_folder(folder)
    files, skipped = averaging.select_files(in_dir, cfg)
    if not files:
        raise OppndaError(f"No matching report files in {in_dir}: check the folder and the name pattern.")

    own_cluster = None
    if client is None:
        try:
            client = distributed.get_client()
        except ValueError:
            own_cluster = local_cluster(file_paths=files)
            client = distributed.Client(own_cluster)
    try:
        chunks = [files[i : i + files_per_task] for i in range(0, len(files), files_per_task)]
        settings = cfg.settings()
        futures = client.map(averaging.summarize_files, chunks, settings=settings, pure=False)
        parts = client.gather(futures)
    finally:
        if own_cluster is not None:
            client.close()
            own_cluster.close()
    rows = [row for part in parts for row in part]
    res = averaging.aggregate([s for _, s, _ in rows if s is not None], cfg)
    res.errors = [(p, r or "unknown error") for p, s, r in rows if s is None]
    res.skipped, res.folder = skipped, in_dir
    if write:
        res.write_oppnda(Path(output) if output is not None else default_output(in_dir))
    res.seconds = time.perf_counter() - t0
    return res
