"""What every job (the local pool's, Dask's) does with its listeners and threads: the work runs in one
thread (``_main``), its events reach the listeners from another (``_dispatch_loop``), so a slow or
broken listener never holds the work up."""
from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any, Callable

from ..errors import OppndaError
from .records import Event, EventKind, Progress, bounded

log = logging.getLogger("oppnda_nb.pool")


class EventedJob:
    """Listeners, the event queue and the two threads of a job. A subclass calls :meth:`_init_events`
    in its ``__init__`` and has ``_main`` (which ends by putting ``None`` on ``_events``),
    ``_progress()``, ``_lock`` and ``warnings``."""

    _thread_name = "oppnda-job"
    _lock: Any
    warnings: list[str]

    def _init_events(self) -> None:
        self._listeners: list[Callable[[Event], None]] = []
        self._events: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._dispatcher: threading.Thread | None = None
        self._t0: float | None = None

    def add_listener(self, callback: Callable[[Event], None]) -> None:
        """Call ``callback(event)`` for every event (from a background thread)."""
        self._listeners.append(callback)

    def start(self):
        """Start the job in background threads; returns at once."""
        if self._thread is not None:
            raise OppndaError("this job was already started; create a new job to run again")
        self._t0 = time.monotonic()
        self._dispatcher = threading.Thread(target=self._dispatch_loop, name=f"{self._thread_name}-events",
                                            daemon=True)
        self._dispatcher.start()
        self._thread = threading.Thread(target=self._main, name=self._thread_name, daemon=True)
        self._thread.start()
        return self

    def _main(self) -> None:  # pragma: no cover - every subclass has its own
        raise NotImplementedError

    def _progress(self) -> Progress:  # pragma: no cover - every subclass has its own
        raise NotImplementedError

    @property
    def progress(self) -> Progress:
        with self._lock:
            return self._progress()

    def _emit(self, kind: EventKind, data: Any) -> None:
        self._events.put(Event(kind, data))

    def _emit_many(self, events: list[Event]) -> None:
        if events:
            self._events.put(events)

    def _dispatch_loop(self) -> None:
        errors = 0
        while True:
            item = self._events.get()
            if item is None:
                return
            for ev in (item if isinstance(item, list) else (item,)):
                for cb in list(self._listeners):
                    try:
                        cb(ev)
                    except Exception as exc:  # a broken listener must not break the run
                        errors += 1
                        log.debug("listener %r failed", cb, exc_info=True)
                        if errors <= 3:
                            self.warnings.append(bounded(f"listener {cb!r} raised {type(exc).__name__}: {exc}"))
