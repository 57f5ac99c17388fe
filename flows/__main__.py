"""`python -m flows` and the `vaemusic` command: the command line of `flows.cli`.

Kept free of heavy imports: a mistyped command, model or data path is reported at once
(`flows.runtime.precheck`), and a temporary Prefect server (when a command needs one) starts
booting before torch, Prefect and MLflow are imported by `flows.cli`, so the two overlap.
"""

from __future__ import annotations

import atexit
import os
import sys

from flows.runtime.environment import apply_runtime_defaults
from flows.runtime.precheck import mistake_in

EXIT_USAGE = 2  # as click (and `flows.cli`) exit for a user's mistake


def main() -> None:
    if mistake := mistake_in(sys.argv[1:]):
        print(f"error: {mistake}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    apply_runtime_defaults()
    exit_status = _exit_without_teardown()  # registered first, so its hook runs last
    from flows.runtime import prefect_api

    prefect_api.prepare(sys.argv[1:])
    from flows.cli import app

    try:
        app()
    except KeyboardInterrupt:
        exit_status.code = 130
        sys.exit(130)
    except SystemExit as stop:  # click ends every command, even a successful one, with this
        exit_status.code = _exit_code(stop)
        raise


class _ExitStatus:
    code = 1


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
