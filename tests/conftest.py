"""Session-wide real services: one temporary Prefect API and one migrated MLflow SQLite store."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.runtime.environment import apply_runtime_defaults

# The same process defaults as every entry point (OMP_WAIT_POLICY=PASSIVE among them: torch's
# spin-waiting threads make small models 10-70x slower on 2 cores); before torch is imported.
apply_runtime_defaults()

# A throw-away PostgreSQL server, shared by the tests that ask for it (tests/postgres_server.py).
from tests.postgres_server import postgres  # noqa: E402, F401


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that use the real Prefect server carry the `prefect_server` marker (selectable with
    `-m "not prefect_server"`); derived from the fixture, so the marker cannot be forgotten."""
    for item in items:
        if "prefect_api" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.prefect_server)


@pytest.fixture(scope="session", autouse=True)
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real MLflow tracking store in SQLite, migrated once for the whole session."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.chdir(root)  # default artifact root (./mlartifacts) lands in the temporary folder too
    yield uri
    if previous is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = previous


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[None]:
    """A real temporary Prefect server (SQLite), started once per session by tests that need it."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]
