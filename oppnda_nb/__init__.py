"""oppnda_nb: memory-aware pooled processing of ONE simulator reports, from a notebook.

``%load_ext oppnda_nb`` registers the ``%oppnda`` magic. Everything the magic and the
panel do is available as a plain Python API (see README.md).
"""
from __future__ import annotations

__version__ = "0.1.0"

from .errors import OppndaError
from .resource_manager import (
    DynamicSemaphore,
    MemoryEstimator,
    ResourceConfig,
    ResourceManager,
    get_optimal_workers,
)

__all__ = [
    "DynamicSemaphore",
    "MemoryEstimator",
    "OppndaError",
    "ResourceConfig",
    "ResourceManager",
    "__version__",
    "get_optimal_workers",
    "load_ipython_extension",
    "unload_ipython_extension",
]

def load_ipython_extension(ip) -> None:
    """``%load_ext oppnda_nb``: register the ``%oppnda`` magic (imports are lazy).

    IPython itself answers a second ``%load_ext`` with "already loaded" (use ``%reload_ext``).
    """
    from . import magics

    magics.register(ip)


def unload_ipython_extension(ip) -> None:
    """``%unload_ext oppnda_nb`` (and the first half of ``%reload_ext``)."""
    from . import magics

    magics.unregister(ip)
