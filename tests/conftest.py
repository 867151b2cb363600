"""Shared pytest fixtures.

What is in here (keep it small; every test file shares it):
- ``kernel_env``: an environment for kernels that tests start (nbclient, JupyterLab) with its own
  HOME / Jupyter / IPython / matplotlib dirs in tmp, and PYTHONPATH pointing at this checkout, so
  a developer's settings never leak in and the kernel imports the oppnda_nb under test.
  (Used by tests/test_notebooks.py and tests/test_binder.py.)
Markers (`e2e`, `slow`) are registered in pyproject.toml.
"""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def kernel_env(tmp_path: Path) -> dict[str, str]:
    import e2e_support

    return e2e_support.isolated_env(tmp_path / "kernel-state")
