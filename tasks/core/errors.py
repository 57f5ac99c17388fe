"""The one error type for mistakes a user can fix.

Each stage raises its own subclass (`DataSourceError`, `PredictionError`, ...) with a message
that names the file or parameter and the fix. The command line prints these as one line and
exits with code 2; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserInputError(ValueError):
    """Bad input, or a missing earlier stage: the message says what and how to fix it.

    A ValueError, so code that validates parameters keeps catching it as one.
    """
