"""Which Optuna storage holds the studies, as a URL: the default one, how it is shown, and making
it usable by optuna-dashboard.

Apart from `storage` (which imports the search space, and with it the models and Prefect) so
that `serve` can point optuna-dashboard at the same storage as `tune` without loading torch and
Prefect in its own process.
"""

from __future__ import annotations

import warnings

from tasks.core.redaction import redact_credentials
from tasks.core.workspace import Workspace


def default_storage_url(workspace: Workspace) -> str:
    """`sqlite:///<workdir>/optuna.db` (absolute path)."""
    return f"sqlite:///{workspace.optuna_db}"


def display_url(url: str) -> str:
    """The storage URL with any password hidden (for logs and tags); also for a URL that
    SQLAlchemy cannot parse, which error messages show."""
    return redact_credentials(url)


def create_storage_tables(url: str) -> None:
    """Create Optuna's tables in the storage at `url` if it has none (a new SQLite file is
    created). optuna-dashboard opens a storage without creating them, so it fails on one that no
    study has used yet; an existing storage is left as it is.

    Raises sqlalchemy's ArgumentError for a URL it cannot parse, ImportError for a missing DB
    driver, and Optuna's or SQLAlchemy's errors when the database cannot be reached.
    """
    import optuna  # here: `display_url` alone must not cost Optuna's import

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.RDBStorage(url, skip_compatibility_check=True).engine.dispose()
