"""The same averaging job on a Dask LocalCluster gives the same numbers and files as the local pool."""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")

from oppnda_nb import averaging  # noqa: E402
from oppnda_nb.dask_backend import local_cluster, run_on_dask  # noqa: E402
from oppnda_nb.job import average_folder  # noqa: E402
from oppnda_nb.resource_manager import ResourceManager  # noqa: E402
from shared_data import REFERENCE  # noqa: E402

REF = REFERENCE


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as c:
        with distributed.Client(c) as cl:
            yield cl


def test_dask_matches_local_averaging_on_the_sample(client, tmp_path):
    bad = tmp_path / "in"
    shutil.copytree(averaging.sample_folder(), bad)
    (bad / "TEST_EpidemicRouter_9_60_2M_MessageStatsReport.txt").write_bytes(b"")  # a bad file
    local = average_folder(folder=bad, output=tmp_path / "local", workers=1)
    remote = run_on_dask(bad, client=client, output=tmp_path / "dask", files_per_task=16)
    assert remote.files_read == local.files_read == 240
    assert [Path(p).name for p, _ in remote.errors] == ["TEST_EpidemicRouter_9_60_2M_MessageStatsReport.txt"]
    for name, table in local.tables.items():
        pd.testing.assert_frame_equal(remote.tables[name], table)
    local_files = sorted(p.name for p in (tmp_path / "local").glob("*.txt"))
    assert local_files and local_files == sorted(p.name for p in (tmp_path / "dask").glob("*.txt"))
    for n in local_files:
        assert (tmp_path / "local" / n).read_bytes() == (tmp_path / "dask" / n).read_bytes()


@pytest.mark.skipif(not REF.is_dir(), reason="shared reference data not present")
def test_dask_reproduces_oppnda_reference(client, tmp_path):
    run_on_dask(config=REF / "averager_config.json", folder=REF / "reports", client=client, output=tmp_path)
    expected = sorted((REF / "expected").iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == [p.name for p in expected]
    for p in expected:
        assert (tmp_path / p.name).read_bytes() == p.read_bytes(), p.name


def test_local_cluster_splits_the_budget():
    rm = ResourceManager(total_ram_mb=2048)
    with local_cluster(rm, processes=False) as cluster:
        n = len(cluster.workers)
        assert 1 <= n <= 16
        limit = next(iter(cluster.workers.values())).memory_manager.memory_limit
        assert limit * n <= 0.75 * 2048 * 2**20 + 1
