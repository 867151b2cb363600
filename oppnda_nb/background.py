"""The blocking half of work that runs in a background thread: ``wait`` and ``run`` (Ctrl-C stops it
and returns the partial result). A subclass starts its thread in ``start()``, sets ``self._done`` and
``self.result`` when the work is over, and says in ``stop()`` how to stop."""
from __future__ import annotations

import threading
from typing import Any

from .errors import OppndaError


class Background:
    """``wait()`` and ``run()`` over a subclass's ``start()``, ``stop()``, ``_thread``, ``_done``, ``result``."""

    #: what the messages call it ("the run", "the analysis", ...)
    _what = "the job"
    _thread: threading.Thread | None
    _done: threading.Event
    result: Any

    def start(self):  # pragma: no cover - every subclass has its own
        raise NotImplementedError

    def stop(self, *args, **kwargs) -> None:  # pragma: no cover - every subclass has its own
        raise NotImplementedError

    def _after_done(self) -> None:
        """Called by :meth:`wait` once the work is over (e.g. to let an event thread finish)."""

    def wait(self, timeout: float | None = None):
        """The result once the work is over (TimeoutError if it is still going after ``timeout`` s)."""
        if self._thread is None:
            raise OppndaError(f"{self._what.capitalize()} was not started; call start() or run().")
        if not self._done.wait(timeout):
            raise TimeoutError(f"{self._what} is still going after {timeout} s")
        self._after_done()
        assert self.result is not None
        return self.result

    def run(self):
        """Start and wait to the end; Ctrl-C stops the work and returns the partial result."""
        self.start()
        try:
            while not self._done.wait(0.1):
                pass
        except KeyboardInterrupt:
            self.stop()
        return self.wait()
