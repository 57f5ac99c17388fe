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


def test_a_new_experiment_opens_on_its_runs_and_says_what_it_holds() -> None:
    # Without the kind, MLflow 3's UI may open an experiment on the GenAI traces page.
    experiment = tracking.client().get_experiment(tracking.experiment_id("training"))
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert "kmeans_nmi" in experiment.tags["mlflow.note.content"]


def test_an_older_experiment_is_labelled_and_an_edited_description_is_kept() -> None:
    c = tracking.client()
    old = c.create_experiment("ingest-before-labels")
    edited = c.create_experiment("predict-edited")
    c.set_experiment_tag(edited, "mlflow.note.content", "my own notes")

    tracking.experiment_id("ingest-before-labels")
    tracking.experiment_id("predict-edited")

    assert c.get_experiment(old).tags["mlflow.experimentKind"] == "custom_model_development"
    assert c.get_experiment(edited).tags["mlflow.note.content"] == "my own notes"


def test_a_child_run_is_filed_in_its_parents_experiment() -> None:
    # `mlflow ui` draws a run tree only inside one experiment.
    with (
        tracking.tracked_run("pipeline-tree", "parent") as parent,
        tracking.tracked_run("training", "child", parent_run_id=parent) as child,
    ):
        pass
    c = tracking.client()
    assert c.get_run(child).info.experiment_id == c.get_run(parent).info.experiment_id
    assert c.get_run(child).data.tags["mlflow.parentRunId"] == parent


def test_a_run_description_is_the_note_the_ui_shows() -> None:
    with tracking.tracked_run("runs-test", "described") as run_id:
        tracking.set_description(run_id, "**Champion:** mlp_vae")
    tags = tracking.client().get_run(run_id).data.tags
    assert tags["mlflow.note.content"] == "**Champion:** mlp_vae"


def test_ui_links_open_the_model_training_pages() -> None:
    from registry.ui import run_page, ui_page

    assert ui_page("http://127.0.0.1:5000/") == (
        "http://127.0.0.1:5000/#/?workflowType=machine_learning"
    )
    assert run_page("http://h:5000", "3", "abc") == (
        "http://h:5000/#/experiments/3/runs/abc?workflowType=machine_learning"
    )
    assert ui_page("http://h", "/x?y=1").endswith("/#/x?y=1&workflowType=machine_learning")
