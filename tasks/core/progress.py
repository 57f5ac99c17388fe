"""How long stages say how far they are: where the lines go, and when a progress bar is drawn.

Lines go to Prefect's run logger inside a flow or task run (they show in the run's log in the
dashboard), else to the calling module's logger, which stays quiet unless the program configures
logging. A bar is drawn only at an interactive terminal: in CI logs, worker logs and files every
redraw would be one more line.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import IO

Logger = logging.Logger | logging.LoggerAdapter


def run_logger_or(fallback: logging.Logger) -> Logger:
    """Prefect's logger of the current flow or task run; `fallback` outside any run."""
    from prefect.context import FlowRunContext, TaskRunContext
    from prefect.logging import get_run_logger

    if FlowRunContext.get() is None and TaskRunContext.get() is None:
        return fallback
    return get_run_logger()


def interactive_terminal(
    stream: IO[str] | None = None, environ: Mapping[str, str] | None = None
) -> bool:
    """True when `stream` (default stderr) is a terminal a person watches: a TTY outside CI.

    CI systems set `CI`; some of them (and `script`, `docker run -t`) give a pseudo-terminal
    whose log nobody watches live.
    """
    stream = sys.stderr if stream is None else stream
    environ = os.environ if environ is None else environ
    if environ.get("CI", "").lower() not in ("", "0", "false"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class CountProgress:
    """Logs "`verb` done/total `noun`" about `lines` times over a count, and at the end.

    Example: `CountProgress(logger, 1000, verb="embedded", noun="lyrics")` logs "embedded
    100/1000 lyrics", ..., "embedded 1000/1000 lyrics" as `advance` is called.
    """

    def __init__(
        self, logger: Logger, total: int, *, verb: str, noun: str, lines: int = 10
    ) -> None:
        self.logger = logger
        self.total = total
        self.verb = verb
        self.noun = noun
        self.done = 0
        self._step = max(1, -(-total // max(lines, 1)))  # ceil: never more than `lines` lines
        self._next = self._step

    def advance(self, count: int = 1) -> None:
        """Count `count` more items done; log when a step or the total is reached."""
        self.done += count
        if self.done >= self._next or self.done >= self.total:
            self.logger.info("%s %d/%d %s", self.verb, self.done, self.total, self.noun)
            self._next = (self.done // self._step + 1) * self._step
