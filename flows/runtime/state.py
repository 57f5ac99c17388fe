"""Where the service keeps its state: the one owner of the `.state` folder's layout.

`serve` writes there and command-line runs look there for a running `serve`, so both must agree
on every path. Imports nothing heavy: the command line reads it before torch, Prefect and MLflow
are loaded.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

# This file is flows/runtime/state.py: three levels below the checkout.
REPO_ROOT = Path(__file__).resolve().parents[2]
# In PREFECT_HOME: the `user:password` the Prefect server of `serve` requires (basic auth).
API_AUTH_FILE = "api-auth"
API_AUTH_USER = "vaemusic"


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


def api_auth_path(prefect_home: Path) -> Path:
    """Where the API auth string of the `serve` server using `prefect_home` is kept."""
    return prefect_home / API_AUTH_FILE


def read_api_auth(prefect_home: Path) -> str | None:
    """The API auth string (`user:password`) kept in `prefect_home`; None when there is none."""
    try:
        return api_auth_path(prefect_home).read_text().strip() or None
    except OSError:
        return None


def ensure_api_auth(prefect_home: Path) -> str:
    """The API auth string of this installation, generated on first use.

    Kept in `prefect_home` readable by its owner only (0600), created so that no other user can
    read it even for a moment; never printed or logged. Clients (worker, deployments, command
    line runs) read it from there; the dashboard asks for it once per browser.
    """
    if existing := read_api_auth(prefect_home):
        return existing
    prefect_home.mkdir(parents=True, exist_ok=True)
    auth = f"{API_AUTH_USER}:{secrets.token_urlsafe(32)}"
    path = api_auth_path(prefect_home)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another serve made it meanwhile (or an empty file): use or replace
        if existing := read_api_auth(prefect_home):
            return existing
        path.unlink()
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as sink:
        sink.write(auth + "\n")
    return auth
