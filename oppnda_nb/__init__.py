"""oppnda_nb: memory-aware pooled processing of ONE simulator reports, from a notebook.

``%load_ext oppnda_nb`` registers the ``%oppnda`` magic. Everything the magic and the
panel do is available as a plain Python API (see README.md).
"""
from __future__ import annotations

__version__ = "0.1.0"

from .errors import OppndaError

__all__ = ["OppndaError", "__version__"]
