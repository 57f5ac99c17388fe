"""Process-wide defaults every entry point applies before Prefect, MLflow or torch are imported.

The one list of them: the command line applies them to its own process, and `serve` passes them
to every process it starts (server, worker, flow runs, MLflow UI), also when it is called from
Python rather than from the command line. Each is a default: a value the user exported wins.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from flows.runtime.state import read_api_auth
from tasks.core.redaction import install_log_redaction

RUNTIME_DEFAULTS = {
    # The temporary Prefect server migrates its SQLite database on first start; on a busy 2-core
    # machine that takes longer than Prefect's default 20 s.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    # No usage reports: machines are often offline, and a service may run unattended.
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    # torch's OpenMP threads otherwise spin-wait, which starves the other core's work.
    "OMP_WAIT_POLICY": "PASSIVE",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # keeps logs readable
}


def with_runtime_defaults(env: Mapping[str, str]) -> dict[str, str]:
    """A copy of `env` with each default it does not set itself added."""
    return {**RUNTIME_DEFAULTS, **env}


def apply_runtime_defaults() -> None:
    """Add the defaults to this process's environment, create `PREFECT_HOME` when it is set, and
    mask credentials in every log record (`tasks.core.redaction`)."""
    install_log_redaction()
    for name, value in RUNTIME_DEFAULTS.items():
        os.environ.setdefault(name, value)
    if home := os.environ.get("PREFECT_HOME"):
        Path(home).expanduser().mkdir(parents=True, exist_ok=True)  # Prefect makes only the leaf


def serve_api_auth(prefect_home: Path) -> str | None:
    """The auth string a client of the `serve` server with this Prefect home must send.

    For a command-line run that found a running `serve` (`flows.runtime.prefect_api`): the user's
    `PREFECT_API_AUTH_STRING` when exported, else the one `serve` keeps in `prefect_home`, which
    is also exported so that child processes (a local Dask cluster) send it too. None when
    neither exists (a server that requires none).
    """
    auth = os.environ.get("PREFECT_API_AUTH_STRING") or read_api_auth(prefect_home)
    if auth:
        os.environ["PREFECT_API_AUTH_STRING"] = auth
    return auth
