"""The tracking store can be opened on a background thread while a flow logs to it."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry import tracking


def test_a_background_open_and_a_run_on_a_new_store_do_not_collide(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A new SQLite file: the first client migrates it; both threads must not migrate at once.
    uri = f"sqlite:///{tmp_path / 'fresh.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    tracking.open_store_in_background()
    with tracking.tracked_run("ingest", "while the store opens") as run_id:
        tracking.log_metrics(run_id, {"n_ok": 3.0})
    run = tracking.client().get_run(run_id)
    assert run.data.metrics == {"n_ok": 3.0}
    assert run.info.status == "FINISHED"
