"""Processes of a job: the start context, workers that never import ``__main__``, multiprocessing's
helper processes (forkserver, resource tracker) and its ``pymp-*`` temp folders, termination.

Workers never import the user's ``__main__``: spawn and forkserver children normally re-run the
parent's main script (``init_main_from_path``/``init_main_from_name`` in the preparation data),
so a script without ``if __name__ == "__main__"``, ``python -`` or ``ipython file.ipy`` would run
again in every worker. Like loky's executor, the pool leaves those keys out of the preparation
data of its own workers (only while it starts them; other users of multiprocessing are not
affected), so the work function must come from an importable module.

Helpers are left as they were found: a forkserver or resource tracker the jobs started is
stopped when the last job ends.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import multiprocessing.forkserver as mp_forkserver
import multiprocessing.resource_tracker as mp_tracker
import multiprocessing.spawn as mp_spawn
import shutil
import signal
import sys
import threading
import time
from contextlib import contextmanager
from typing import Iterator, Sequence

log = logging.getLogger("oppnda_nb.pool")

_MAIN_KEYS = ("init_main_from_path", "init_main_from_name", "main_path")
_local = threading.local()
_install_lock = threading.Lock()


def default_start_method() -> str:
    """forkserver where the platform has it (Linux), else the platform's default (spawn).

    Not fork: a forked worker shares the kernel's pages and copies those it touches, so a
    notebook kernel holding gigabytes makes every worker grow by an amount no estimate of the
    file can predict; and forking a multi-threaded process (a Jupyter kernel) can deadlock.
    forkserver workers start from a small clean process that has imported the work's module
    once, so they are cheap to start and their memory is their own. (Python 3.14 made the same
    choice for Linux.)
    """
    return "forkserver" if "forkserver" in mp.get_all_start_methods() else mp.get_start_method()


def _install_preparation_filter() -> None:
    """Wrap ``multiprocessing.spawn.get_preparation_data`` once: while this thread is inside
    :func:`without_main` the main-module keys are left out; otherwise it is unchanged."""
    with _install_lock:
        orig = mp_spawn.get_preparation_data
        if getattr(orig, "_oppnda_filter", False):
            return

        def get_preparation_data(name):
            if getattr(_local, "no_main", False):
                main = sys.modules.get("__main__")
                if main is not None and not hasattr(main, "__spec__"):
                    try:  # IPython's %run namespace has none (multiprocessing reads it); a script's is None
                        main.__spec__ = None
                    except (AttributeError, TypeError):
                        pass
            data = orig(name)
            if getattr(_local, "no_main", False):
                for k in _MAIN_KEYS:
                    data.pop(k, None)
            return data

        get_preparation_data._oppnda_filter = True  # type: ignore[attr-defined]
        mp_spawn.get_preparation_data = get_preparation_data


@contextmanager
def without_main() -> Iterator[None]:
    """Processes started by this thread inside the block do not import ``__main__``."""
    _install_preparation_filter()
    _local.no_main = True
    try:
        yield
    finally:
        _local.no_main = False


@contextmanager
def sigint_blocked() -> Iterator[None]:
    """SIGINT blocked in this thread inside the block: a process forked or spawned here inherits the
    mask, so a Ctrl-C that reaches it before it ignores SIGINT (:func:`worker.worker_main`) waits
    instead of killing it; the worker unblocks once it ignores the signal. (The forkserver forks
    in its own process, which ignores SIGINT itself.)"""
    if not hasattr(signal, "pthread_sigmask"):  # Windows: no POSIX signal masks (and no SIGINT race)
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _forkserver_pid() -> int | None:
    return getattr(getattr(mp_forkserver, "_forkserver", None), "_forkserver_pid", None)


def _tracker_pid() -> int | None:
    return getattr(getattr(mp_tracker, "_resource_tracker", None), "_pid", None)


class Helpers:
    """multiprocessing's helper processes around the jobs of this process: their pids (for the
    memory count) and, when the last running job ends, stopping those the jobs started and
    removing the ``pymp-*`` folders that appeared meanwhile."""

    _lock = threading.Lock()
    _active = 0
    _found: tuple[bool, bool] = (True, True)  # (forkserver, tracker) running before the first job

    def __init__(self, ctx, preload: Sequence[str] = ()):
        self.method = ctx.get_start_method()
        self._released = False
        with Helpers._lock:
            if Helpers._active == 0:
                Helpers._found = (_forkserver_pid() is not None, _tracker_pid() is not None)
            Helpers._active += 1
            if self.method == "forkserver" and _forkserver_pid() is None and preload:
                # a fresh server imports the job's modules once; each worker is a cheap fork of it
                ctx.set_forkserver_preload(list(preload))

    def pids(self) -> list[int]:
        """The live helper processes the job's start method uses: forkserver and resource tracker
        (forkserver), the resource tracker (spawn), none (fork)."""
        if self.method == "forkserver":
            found = (_forkserver_pid(), _tracker_pid())
        elif self.method == "spawn":
            found = (_tracker_pid(),)
        else:
            found = ()
        return [p for p in found if p is not None]

    def release(self) -> None:
        """This job is over: when it is the last, stop the helpers the jobs started. (The only
        ``pymp-*`` folder is this process's own, for the forkserver's socket: multiprocessing
        removes it at exit; :meth:`remove_own_tempdir` covers an exit by SIGTERM.)"""
        with Helpers._lock:
            if self._released:
                return
            self._released = True
            Helpers._active -= 1
            if Helpers._active > 0:
                return
            had_forkserver, had_tracker = Helpers._found
            if not had_forkserver and _forkserver_pid() is not None:
                try:
                    mp_forkserver._forkserver._stop()
                except (AttributeError, OSError, ChildProcessError):
                    log.debug("could not stop the forkserver", exc_info=True)
            if not had_tracker and _tracker_pid() is not None:
                try:
                    mp_tracker._resource_tracker._stop()
                except (AttributeError, OSError, ChildProcessError):
                    log.debug("could not stop the resource tracker", exc_info=True)

    @staticmethod
    def remove_own_tempdir() -> None:
        """Remove this process's ``pymp-*`` folder now (for an exit that skips multiprocessing's
        own clean-up, e.g. SIGTERM)."""
        cfg = mp.current_process()._config
        d = cfg.get("tempdir")
        if d:
            shutil.rmtree(d, ignore_errors=True)
            cfg["tempdir"] = None


def terminate(procs: Sequence, grace: float = 1.0) -> None:
    """SIGTERM every process, SIGKILL those still alive after ``grace`` seconds, reap all."""
    for p in procs:
        try:
            if p.is_alive():
                p.terminate()
        except (OSError, ValueError):
            log.debug("terminate failed", exc_info=True)
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.join(max(0.0, deadline - time.monotonic()))
        except (OSError, ValueError):
            log.debug("join failed", exc_info=True)
    for p in procs:
        try:
            if p.is_alive():
                p.kill()
                p.join(0.5)
        except (OSError, ValueError):
            log.debug("kill failed", exc_info=True)


def signal_name(code: int | None) -> str:
    """How a process ended, in words ("killed by SIGKILL", "exit code 3")."""
    if code is None:
        return "unknown exit"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
