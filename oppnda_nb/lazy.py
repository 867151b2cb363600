"""Package attributes imported on first use (PEP 562), so a light caller (``status``) never pays for
the heavy rooms (pandas) of a package it only plans with."""
from __future__ import annotations

from importlib import import_module
from typing import Callable, Mapping


def module_getattr(package: str, namespace: dict, table: Mapping[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` for ``package``: ``table`` maps a public name to the submodule that
    defines it; the first access imports it and keeps it in the package's ``namespace``."""
    def __getattr__(name: str):
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(f".{module}", package), name)
        namespace[name] = value
        return value

    return __getattr__
