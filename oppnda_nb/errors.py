"""The one exception type for mistakes a user can make (bad path, pattern, argument)."""
from __future__ import annotations


class OppndaError(Exception):
    """A user-facing error: the message says what went wrong and what to do.

    The magic turns it into an IPython ``UsageError`` and the command line prints it
    without a traceback.
    """
