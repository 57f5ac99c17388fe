"""The error types a user sees as one line rather than a traceback.

`UserInputError`: a mistake the user can fix; each stage raises its own subclass
(`DataSourceError`, `PredictionError`, ...) with a message that names the file or parameter and
the fix. The command line prints these as one line and exits with code 2.
`RunFailure`: a run that could not finish though the command was right (a full disk, a diverging
training); one line, exit code 1. Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any


class UserInputError(ValueError):
    """Bad input, or a missing earlier stage: the message says what and how to fix it.

    A ValueError, so code that validates parameters keeps catching it as one.
    """


class RunFailure(Exception):
    """A run that could not finish for a reason outside the command line (a full disk, a training
    whose loss diverged): the message says what happened and what to try. The command line
    prints it as one line and exits with code 1; a re-run resumes from what was finished."""


# errno values meaning "no room to write": a full disk, a user's disk quota, the process's file
# size limit (`ulimit -f`).
OUT_OF_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class OutOfSpaceError(RunFailure):
    """A write failed for lack of space (see OUT_OF_SPACE)."""

    @classmethod
    def from_os_error(cls, error: OSError, workdir: Path) -> OutOfSpaceError:
        """The one-line message: which folder, how much is free there, what to do."""
        # A write through an open file (numpy, zipfile) names no file: the work dir, then.
        folder = Path(error.filename).parent if error.filename else Path(workdir)
        folder = folder.expanduser().resolve()
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        advice = (
            "partial files were removed; make room (or choose another --workdir) and run the same "
            "command again: it resumes where it stopped"
        )
        if error.errno == errno.EFBIG:
            import resource  # POSIX only, and only a limit set there gives EFBIG

            limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
            shown = "none" if limit == resource.RLIM_INFINITY else _size(limit)
            return cls(
                f"a file in {folder} outgrew the largest file this process may write (the file "
                f"size limit, `ulimit -f`: {shown}); {advice}"
            )
        usage = shutil.disk_usage(folder)
        quota = " (your disk quota is used up)" if error.errno == errno.EDQUOT else ""
        return cls(
            f"no space left to write in {folder}{quota}: {_size(usage.free)} free of "
            f"{_size(usage.total)} on that disk; {advice}"
        )


def out_of_space(error: BaseException) -> OSError | None:
    """The OSError for lack of space that caused `error` (itself, or one it was raised from)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError) and current.errno in OUT_OF_SPACE:
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _size(n_bytes: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n_bytes < 1000 or unit == "TB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1000
    raise AssertionError("unreachable")


class _OneLineErrorRecords:
    """Wraps the log record factory: a record of one of our one-line errors keeps its message
    (which names the error) but not its traceback, which only repeats it."""

    def __init__(self, make_record: Callable[..., logging.LogRecord]) -> None:
        self.make_record = make_record

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.make_record(*args, **kwargs)
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, (UserInputError, RunFailure)) or (
            error is not None and out_of_space(error) is not None  # reported as OutOfSpaceError
        ):
            record.exc_info = None
            record.exc_text = None
        return record


def log_one_line_errors_without_traceback() -> None:
    """From now on, log records of a `UserInputError`, a `RunFailure` or an OSError for lack of
    space (which the command line reports as `OutOfSpaceError`) carry no traceback: Prefect
    logs a failed task's or flow's exception with it, and a user who made a mistake would read
    two tracebacks before the command's one-line error (idempotent)."""
    current = logging.getLogRecordFactory()
    if not isinstance(current, _OneLineErrorRecords):
        logging.setLogRecordFactory(_OneLineErrorRecords(current))
