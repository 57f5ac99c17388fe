"""Process-wide defaults every entry point applies before Prefect, MLflow or torch are imported.

Each is a `setdefault`: a value the user exported wins.
"""

from __future__ import annotations

import os
from pathlib import Path

RUNTIME_DEFAULTS = {
    # The temporary Prefect server migrates its SQLite database on first start; on a busy 2-core
    # machine that takes longer than Prefect's default 20 s.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",  # machines are offline
    # torch's OpenMP threads otherwise spin-wait, which starves the other core's work.
    "OMP_WAIT_POLICY": "PASSIVE",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # keeps logs readable
}


def apply_runtime_defaults() -> None:
    for name, value in RUNTIME_DEFAULTS.items():
        os.environ.setdefault(name, value)
    if home := os.environ.get("PREFECT_HOME"):
        Path(home).expanduser().mkdir(parents=True, exist_ok=True)  # Prefect makes only the leaf
