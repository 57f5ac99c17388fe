"""`python -m flows` and the `vaemusic` command: the command line of `flows.cli`.

Kept free of heavy imports: a mistyped command, model or data path is reported at once
(`flows.runtime.precheck`), and a temporary Prefect server (when a command needs one) starts
booting before torch, Prefect and MLflow are imported by `flows.cli`, so the two overlap.

Ctrl-C and SIGTERM stop a command cleanly and soon, whatever it is doing (`_StopOnSignals`).
"""

from __future__ import annotations

import atexit
import os
import select
import signal
import sys
import threading
import time
from typing import NoReturn

from flows.runtime import prefect_api
from flows.runtime.environment import apply_runtime_defaults
from flows.runtime.precheck import mistake_in
from tasks.core.errors import log_one_line_errors_without_traceback
from tasks.core.workdir_lock import remove_partial_files_of_held_locks

EXIT_USAGE = 2  # as click (and `flows.cli`) exit for a user's mistake
# A stopped command exits as a shell reports a process ended by the signal: 128 + its number.
STOP_SIGNALS = {signal.SIGINT: 130, signal.SIGTERM: 143}
# How long a stopped command may take to unwind (Prefect marks the run crashed, exit hooks drain
# the logs and stop the temporary server) before it is ended regardless.
STOP_GRACE_S = 5.0


def main() -> None:
    if mistake := mistake_in(sys.argv[1:]):
        print(f"error: {mistake}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    apply_runtime_defaults()
    log_one_line_errors_without_traceback()
    exit_status = _exit_without_teardown()  # registered first, so its hook runs last
    stopper = _StopOnSignals(exit_status)
    if sys.argv[1:2] != ["serve"]:  # serve stops its services on Ctrl-C itself
        stopper.install()
    try:
        prefect_api.prepare(sys.argv[1:])
        from flows.cli import app

        app()
    except KeyboardInterrupt:
        exit_status.code = 130
        sys.exit(130)
    except SystemExit as stop:  # click ends every command, even a successful one, with this
        exit_status.code = _exit_code(stop)
        raise
    finally:
        if stopper.signum is not None:
            stopper.finish()
        stopper.armed = False  # the command is done: a signal now must not break the exit hooks


class _ExitStatus:
    code = 1


class Interrupted(BaseException):
    """Raised in the main thread by SIGINT or SIGTERM; a BaseException, so that no `except
    Exception` swallows it and click does not turn it into "Aborted!" with exit code 1."""


class _StopOnSignals:
    """Ctrl-C or SIGTERM: one line, exit code 130 or 143, partial files removed, the temporary
    Prefect server stopped, within `STOP_GRACE_S`; a second signal ends the command at once.

    The main thread's handler raises `Interrupted`, which unwinds the flow (Prefect marks its run
    crashed) up to `main`. That alone is not enough: during a flow Prefect's own SIGTERM handler
    replaces ours, and a main thread waiting for a task that never returns (reading a FIFO)
    never unwinds: Prefect's task runner waits for its threads. So a watcher thread also learns
    of every signal (through the interpreter's wakeup fd, written whichever Python handler is
    installed) and ends the process itself when the grace period is over.
    """

    def __init__(self, exit_status: _ExitStatus) -> None:
        self.exit_status = exit_status
        self.signum: int | None = None
        self.armed = True
        self._cleaned = threading.Lock()

    def install(self) -> None:
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)  # required by set_wakeup_fd
        signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._raise_stop)
        threading.Thread(target=self._watch, args=(read_fd,), name="stop", daemon=True).start()

    def _raise_stop(self, signum: int, frame: object) -> None:
        self.signum = self.signum or signum
        if self.armed:
            raise Interrupted(signal.Signals(signum).name)

    def _watch(self, read_fd: int) -> None:
        deadline = None
        while True:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not select.select([read_fd], [], [], timeout)[0]:
                self._end_now()  # the grace period is over
            for signum in os.read(read_fd, 64):
                if signum not in STOP_SIGNALS:
                    continue
                if deadline is not None:
                    self._end_now()
                self.signum = self.signum or signum
                deadline = time.monotonic() + STOP_GRACE_S

    def finish(self) -> NoReturn:
        """In the main thread, the run unwound: exit through the exit hooks (they drain Prefect's
        logs and stop the temporary server) with the signal's code."""
        self._clean_up_and_say()
        self.exit_status.code = STOP_SIGNALS[self.signum]
        sys.exit(self.exit_status.code)

    def _end_now(self) -> NoReturn:
        prefect_api.stop_temporary_server()
        self._clean_up_and_say()
        os._exit(STOP_SIGNALS[self.signum])

    def _clean_up_and_say(self) -> None:
        if not self._cleaned.acquire(blocking=False):
            return  # done, or being done by the other thread
        remove_partial_files_of_held_locks()
        name = signal.Signals(self.signum).name
        print(
            f"stopped by {name}: run the same command again to resume where it stopped",
            file=sys.stderr,
            flush=True,
        )


def _exit_without_teardown() -> _ExitStatus:
    """Exit once every other exit hook has run, skipping the interpreter's final teardown.

    With torch, Prefect, MLflow and SQLAlchemy loaded, that teardown (freeing every module) takes
    1.5-2.5 s on a 2-core machine and does nothing a user needs: Prefect's log and event workers
    have drained, the temporary server has stopped and logs are flushed by the hooks registered
    later, which run earlier (atexit runs hooks in reverse order of registration).
    """
    status = _ExitStatus()

    def leave() -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status.code)

    atexit.register(leave)
    return status


def _exit_code(stop: SystemExit) -> int:
    if stop.code is None:
        return 0
    return stop.code if isinstance(stop.code, int) else 1


if __name__ == "__main__":
    main()
