"""Mistakes in tuning that a user can fix; the command line prints them as one line."""

from __future__ import annotations

from tasks.core.errors import UserInputError


class TuningError(UserInputError):
    """The study cannot start or go on (too few tracks, no genre labels for a label objective,
    trials failing one after another, data changed under the study); the message names the
    cause and the fix."""


class StudyMismatchError(TuningError):
    """An existing study was created with other settings than the ones asked for now."""
