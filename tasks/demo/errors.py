"""The one exception of the demo generator, for mistakes a caller can make."""

from __future__ import annotations

from tasks.core.errors import UserInputError


class DemoDataError(UserInputError):
    """A parameter of the demo generator is out of range, or the output folder is not free."""
