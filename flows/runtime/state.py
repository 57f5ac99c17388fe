"""Where the service keeps its state: the one owner of the `.state` folder's layout.

`serve` writes there and command-line runs look there for a running `serve`, so both must agree
on every path. Imports nothing heavy: the command line reads it before torch, Prefect and MLflow
are loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# This file is flows/runtime/state.py: three levels below the checkout.
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ServiceState:
    """The state folder of one `serve`: Prefect's home (database, results) and the service logs."""

    root: Path

    @classmethod
    def of_repo(cls, repo_root: Path = REPO_ROOT) -> ServiceState:
        """The default: `<repo_root>/.state`, which `make clean` removes."""
        return cls(repo_root.resolve() / ".state")

    @classmethod
    def chosen(cls, state_dir: Path | None, repo_root: Path = REPO_ROOT) -> ServiceState:
        """`state_dir` (made absolute: children run elsewhere) if given, else the repo's default."""
        return cls(state_dir.resolve()) if state_dir else cls.of_repo(repo_root)

    @property
    def prefect_home(self) -> Path:
        """`PREFECT_HOME` of the server, worker and flow runs; also holds the serve record."""
        return self.root / "prefect"

    @property
    def log_dir(self) -> Path:
        """One `<service>.log` per started process (`prefect-server.log`, `mlflow-ui.log`, ...)."""
        return self.root / "logs"
