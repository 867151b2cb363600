"""Top-level worker functions for the tests of the pool (importable from tests/: spawn works).

Each takes the file path first, like real work. They misbehave on purpose when the file name
contains a marker, so one list of files can mix good and bad ones.
"""
from __future__ import annotations

import os
import signal
import time


def file_size(path: str) -> int:
    """Return the file's size (the cheapest real work)."""
    return os.path.getsize(path)


def read_size(path: str) -> int:
    """Read the whole file and return its length."""
    with open(path, "rb") as f:
        return len(f.read())


def hold_alloc(path: str, gamma: float = 3.0, hold_s: float = 0.3) -> int:
    """Read the file (size S) and hold about ``gamma``·S bytes in total for ``hold_s`` seconds.

    The extra (gamma−1)·S are written (``bytes * n``), so every page is really resident.
    """
    with open(path, "rb") as f:
        data = f.read()
    size = len(data)
    extra = max(0, int((gamma - 1.0) * size))
    blob = b"\x01" * extra
    time.sleep(hold_s)
    n = len(data) + len(blob)
    del data, blob
    return n


def sleep_work(path: str, seconds: float = 0.2) -> str:
    """Sleep, then return the base name."""
    time.sleep(seconds)
    return os.path.basename(path)


def raise_on(path: str, marker: str = "bad") -> int:
    """Raise ValueError when ``marker`` is in the file name, else return the size."""
    if marker in os.path.basename(path):
        raise ValueError(f"cannot parse {os.path.basename(path)}")
    return os.path.getsize(path)


def exit_on(path: str, marker: str = "die", code: int = 3) -> int:
    """``os._exit(code)`` when ``marker`` is in the file name (a worker that dies)."""
    if marker in os.path.basename(path):
        os._exit(code)
    return os.path.getsize(path)


def sigkill_on(path: str, marker: str = "kill") -> int:
    """SIGKILL the worker itself when ``marker`` is in the file name (like the OOM killer)."""
    if marker in os.path.basename(path):
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(5)
    return os.path.getsize(path)


def die_once(path: str, flag_dir: str) -> int:
    """Die (``os._exit``) the first time a file is seen, succeed on the retry."""
    flag = os.path.join(flag_dir, os.path.basename(path) + ".seen")
    if not os.path.exists(flag):
        with open(flag, "w"):
            pass
        os._exit(7)
    return os.path.getsize(path)


def ignore_term_sleep(path: str, seconds: float = 30.0) -> str:
    """Ignore SIGTERM and sleep (the pool must fall back to SIGKILL on stop)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(seconds)
    return os.path.basename(path)


def unpicklable_result(path: str):
    """Return something that cannot be sent back to the parent."""
    return lambda: path


def pid_and_sleep(path: str, seconds: float = 0.1) -> int:
    """Sleep and return the worker's pid (to see which worker ran what)."""
    time.sleep(seconds)
    return os.getpid()


def exit_on_or_raise(path: str) -> int:
    """``die`` in the name: ``os._exit(3)``; ``bad`` in the name: ValueError; else the size."""
    exit_on(path, "die", 3)
    return raise_on(path, "bad")


def lean_flag(path: str, lean: bool = False) -> bool:
    """Return whether the pool asked for lean mode."""
    return lean


def alloc_unless_lean(path: str, mb: int = 300, hold_s: float = 3.0, lean: bool = False) -> str:
    """Hold ``mb`` MB of written pages for ``hold_s`` seconds, unless in lean mode ("lean")."""
    if lean:
        return "lean"
    blob = b"\x01" * (mb * 1024 * 1024)
    time.sleep(hold_s)
    del blob
    return "full"


def read_all(path: str) -> int:
    """Read the file to its end (a FIFO without a writer blocks here)."""
    with open(path, "rb") as f:
        return len(f.read())


def raise_long(path: str, n: int = 5000) -> int:
    """Raise an exception with a very long message."""
    raise ValueError("x" * n)


def executing_keys(dask_worker) -> list:
    """The keys a Dask worker is executing now (for ``client.run``: which worker holds a task)."""
    return [ts.key for ts in dask_worker.state.tasks.values() if ts.state == "executing"]
