"""The project's exception family for mistakes a user can make (bad path, pattern, argument, setting)."""
from __future__ import annotations


class OppndaError(Exception):
    """A user-facing error: the message says what went wrong and what to do.

    The magic turns it into an IPython ``UsageError`` and the command line prints it
    without a traceback (exit code 2).
    """


class SettingsError(OppndaError, ValueError):
    """A memory or pool setting out of range (η, γ, M_overhead, workers, total RAM)."""
