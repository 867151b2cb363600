"""Shared pytest fixtures and helpers.

- ``kernel_env``: an environment for kernels that tests start (nbclient, JupyterLab) with its own
  HOME / Jupyter / IPython / matplotlib dirs in tmp, and PYTHONPATH pointing at this checkout, so
  a developer's settings never leak in and the kernel imports the oppnda_nb under test.
  (Used by tests/test_notebooks.py and tests/test_binder.py.)
- ``tiny_folder``: a few real reports of the bundled sample (2 seeds of 2 routers × 1 TTL ×
  1 buffer) copied into tmp_path: a real run of it takes about a second.
- ``many_folder(tmp_path, copies)``: the sample's MessageStatsReports under many seeds (symlinks),
  for runs that must last a few seconds (stop, SIGTERM).
- ``learn_store``: the learned memory models go to tmp (a test never touches the user's cache).
- ``ip``: a real IPython ``InteractiveShell`` with the extension loaded (terminal-like: no kernel).
- ``cli(*args)``: ``python -m oppnda_nb ...`` in a subprocess with this checkout first on the path.
Markers (`e2e`, `slow`) are registered in pyproject.toml.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "oppnda_nb" / "data" / "sample"


@pytest.fixture
def kernel_env(tmp_path: Path) -> dict[str, str]:
    import e2e_support

    return e2e_support.isolated_env(tmp_path / "kernel-state")


@pytest.fixture(autouse=True)
def learn_store(tmp_path_factory, monkeypatch) -> Path:
    """Keep the memory-model store (and any cache) of every test in tmp."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("OPPNDA_CACHE_DIR", str(cache))
    return cache


def copy_tiny(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for f in sorted(SAMPLE.glob("TEST_*Router_[12]_180_10M_*Report.txt")):
        if f.name.split("_")[1] in ("EpidemicRouter", "SprayAndWaitRouter"):
            shutil.copy(f, dest / f.name)
    return dest


@pytest.fixture
def tiny_folder(tmp_path: Path) -> Path:
    return copy_tiny(tmp_path / "tiny")


def sample_copies(dest: Path, copies: int, pattern: str = "*.txt") -> Path:
    """The bundled sample's reports matching ``pattern`` ``copies`` times under other seeds, in
    ``dest`` (symlinks: instant)."""
    dest.mkdir(parents=True)
    for f in sorted(SAMPLE.glob(pattern)):
        parts = f.name.split("_")
        for k in range(copies):
            name = parts.copy()
            name[2] = f"{k}{parts[2]}"
            os.symlink(f, dest / "_".join(name))
    return dest


def many_folder(tmp_path: Path, copies: int) -> Path:
    """The sample's MessageStatsReports again under many seeds."""
    return sample_copies(tmp_path / "many", copies, "*_MessageStatsReport.txt")


def cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    env.update(extra)
    return env


def cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "oppnda_nb", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=cli_env(), timeout=timeout)


@pytest.fixture
def ip():
    """A real InteractiveShell (no kernel: the terminal behaviour) with %oppnda loaded."""
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "oppnda_nb")
    yield shell
    shell.run_line_magic("unload_ext", "oppnda_nb")


def make_files(folder, names_sizes) -> list[str]:
    """Files of the given sizes (bytes of "x") in ``folder``: inputs for the pool's tests."""
    paths = []
    for name, size in names_sizes:
        p = folder / name
        p.write_bytes(b"x" * size)
        paths.append(str(p))
    return paths


def big_manager(**kw):
    """A ResourceManager on a 64 GiB virtual machine nobody else uses (memory never limits)."""
    from oppnda_nb.resource_manager import ResourceManager
    from oppnda_nb.system import MB

    return ResourceManager(memory_reader=lambda: (0.0, 64 * 1024 * MB), **kw)


def analysis_config(tmp_path, raw, report, only=("line_plots",)) -> str:
    """The shipped example with a few metrics, low dpi and only some figure kinds (a fast, real analysis)."""
    from oppnda_nb import figures

    cfg = json.loads(figures.example_config_path().read_text())
    cfg["directories"] = {"report_dir": str(report), "raw_dir": str(raw), "plots_dir": str(tmp_path / "plots")}
    cfg["metrics"] = {"include": ["delivery_prob", "overhead_ratio"], "ignore": []}
    cfg["plot_settings"] = {"general": {"dpi": 30}}
    cfg["enabled_plots"] = {k: k in only for k in cfg["enabled_plots"]}
    path = tmp_path / "analysis_config.json"
    path.write_text(json.dumps(cfg))
    return str(path)
