"""On first use: package attributes (PEP 562) and dataclass fields, so a light caller (``status``, a
sweep of key:value reports) never pays for the heavy rooms (pandas) it does not look at."""
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


class OnFirstRead:
    """A dataclass field that may be given a function: it is called once, when the field is first
    read (a run's memory samples become a DataFrame, importing pandas, only if someone looks)."""

    def __set_name__(self, owner, name: str) -> None:
        self._slot = f"_{name}_value"

    def __get__(self, obj, objtype=None):
        if obj is None:
            return None                                  # the field's default
        value = obj.__dict__.get(self._slot)
        if callable(value):
            value = obj.__dict__[self._slot] = value()
        return value

    def __set__(self, obj, value) -> None:
        obj.__dict__[self._slot] = value
