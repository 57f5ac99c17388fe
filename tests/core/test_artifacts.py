"""The Prefect artifacts of an evaluation and of a pipeline, read back from a real Prefect server as
the dashboard shows them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from prefect.runtime import flow_run

from registry.tracking import experiment_of_run, tracked_run
from registry.ui import run_page
from tasks.core.artifacts import (
    EVALUATION_SUMMARY_KEY,
    PIPELINE_SUMMARY_KEY,
    RANKING_KEY,
    mlflow_ui_url,
    publish_evaluation_artifacts,
    publish_pipeline_artifacts,
    ranking_rows,
)
from tasks.core.workspace import Workspace
from tasks.evaluation.report import build_comparison_table, rank, write_reports

TRACKING_URI = "http://mlflow.example:5000"
ROWS = [
    {"method": "conv_vae", "features": "default", "algorithm": "kmeans", "silhouette": 0.41},
    {"method": "mlp_vae", "features": "default", "algorithm": "kmeans", "silhouette": 0.52},
    {"method": "pca", "features": "PCA(16)", "algorithm": "gmm", "silhouette": None},
    {"method": "cvae", "features": "genre", "algorithm": "kmeans", "silhouette": 0.9},
]


@pytest.fixture
def evaluated(tmp_path: Path) -> tuple[Workspace, dict[str, Path]]:
    """A work dir as the evaluation leaves it: ranked comparison files, a playlist, a figure."""
    workspace = Workspace.open(tmp_path / "work")
    rows = [
        {**row, "uses_labels": row["method"] == "cvae", "n_clusters": 3, "n_seeds": 3}
        for row in ROWS
    ]
    reports = write_reports(rank(build_comparison_table(rows)), workspace.reports)
    workspace.playlist(0).write_text("#EXTM3U\n")
    workspace.clusters_table.write_text("track_id,cluster\n")
    (workspace.plots / "map.png").write_bytes(b"png")
    return workspace, reports


def read_artifacts(flow_run_id: str) -> dict[str | None, Any]:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(flow_run_id)])
            )
        )
    return {(a.key, a.type): a.data for a in found}


def published_in_a_flow(
    publish: Callable[..., Any], evaluated: tuple[Workspace, dict[str, Path]], **arguments: Any
) -> dict[str | None, Any]:
    """The artifacts `publish` creates from the `evaluated` work dir inside a real flow run."""
    workspace, reports = evaluated

    @flow(name=f"artifacts-{publish.__name__}-test")
    def publishing() -> str:
        publish(
            workspace=workspace,
            comparison=reports["csv"],
            reports=reports,
            tracking_uri=TRACKING_URI,
            **arguments,
        )
        return flow_run.get_id()

    return read_artifacts(publishing())


def real_run(experiment: str) -> tuple[str, str]:
    """(run id, experiment id) of a finished run in the session's real MLflow store."""
    with tracked_run(experiment, "artifact-link-test") as run_id:
        pass
    return run_id, experiment_of_run(run_id)


def table_of(data: Any) -> list[dict[str, Any]]:
    return json.loads(data) if isinstance(data, str) else data


def test_ranking_rows_are_best_first_with_label_using_rows_marked(evaluated) -> None:
    _, reports = evaluated
    rows = ranking_rows(reports["csv"])
    assert [(r["rank"], r["method"]) for r in rows] == [
        ("1", "mlp_vae"),
        ("2", "conv_vae"),
        ("", "pca"),  # no value: not ranked
        ("1 (labels)", "cvae"),
    ]
    assert rows[0]["silhouette"] == 0.52
    assert rows[2]["silhouette"] is None
    assert rows[0]["k"] == 3


def test_an_evaluation_run_publishes_the_ranking_and_a_summary_with_links(
    prefect_api, evaluated
) -> None:
    workspace, reports = evaluated
    run_id, experiment = real_run("evaluation")

    artifacts = published_in_a_flow(
        publish_evaluation_artifacts, evaluated, run_id=run_id, champion_version="7"
    )

    table = table_of(artifacts[(RANKING_KEY, "table")])
    assert [row["method"] for row in table] == ["mlp_vae", "conv_vae", "pca", "cvae"]
    summary = artifacts[(EVALUATION_SUMMARY_KEY, "markdown")]
    assert "Ranked by **silhouette**" in summary
    assert "- **1.** mlp_vae [default] + kmeans: silhouette 0.52, k=3" in summary
    assert "cvae" not in summary  # label-using rows are not "best unsupervised"
    assert "version **7**" in summary
    # the run's page, on the UI's model-training pages (not its GenAI overview)
    assert f"[Evaluation run]({run_page(TRACKING_URI, experiment, run_id)})" in summary
    assert "workflowType=machine_learning" in summary
    for path in (reports["markdown"], reports["csv"], workspace.clusters_table):
        assert f"]({path.resolve().as_uri()})" in summary
    assert "1 playlists in" in summary
    assert "figures in" in summary
    assert workspace.listening_map.name not in summary  # not written: not linked


def test_a_pipeline_run_publishes_its_summary_and_an_unkeyed_ranking(
    prefect_api, evaluated
) -> None:
    (parent, experiment), (evaluation_run, _) = real_run("pipeline"), real_run("pipeline")
    trained = {"conv_vae-default": real_run("pipeline")[0], "mlp_vae-default": "not-a-run"}

    artifacts = published_in_a_flow(
        publish_pipeline_artifacts,
        evaluated,
        run_id=parent,
        evaluation_run_id=evaluation_run,
        training_runs=trained,
        champion_version=None,
    )

    assert len(table_of(artifacts[(None, "table")])) == len(ROWS)
    summary = artifacts[(PIPELINE_SUMMARY_KEY, "markdown")]
    assert f"[Pipeline run]({run_page(TRACKING_URI, experiment, parent)})" in summary
    assert f"[Evaluation run]({run_page(TRACKING_URI, experiment, evaluation_run)})" in summary
    conv = trained["conv_vae-default"]
    assert f"[conv_vae-default]({run_page(TRACKING_URI, experiment, conv)})" in summary
    assert "mlp_vae-default (`not-a-run`)" in summary  # a run the store does not know
    assert "Training runs (2)" in summary
    assert "did not change" in summary


def test_outside_a_flow_run_nothing_is_published(evaluated, monkeypatch) -> None:
    # scripts and tests call the stages without a Prefect API: no artifact call may happen
    import prefect.artifacts

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("an artifact was created outside a flow run")

    monkeypatch.setattr(prefect.artifacts, "create_table_artifact", refuse)
    monkeypatch.setattr(prefect.artifacts, "create_markdown_artifact", refuse)
    workspace, reports = evaluated
    created = publish_evaluation_artifacts(
        workspace=workspace,
        comparison=reports["csv"],
        reports=reports,
        run_id="abc",
        champion_version=None,
        tracking_uri=TRACKING_URI,
    )
    assert created == []


@pytest.mark.parametrize(
    ("tracking_uri", "ui"),
    [
        ("http://mlflow.example:5000/", "http://mlflow.example:5000"),
        ("sqlite:////tmp/mlflow.db", "http://127.0.0.1:5000"),
        ("/tmp/mlruns", "http://127.0.0.1:5000"),
        ("postgresql+psycopg://u@h/db", "http://127.0.0.1:5000"),
        ("databricks", None),
        ("databricks://profile", None),
    ],
)
def test_run_links_point_at_the_ui_that_shows_the_store(tracking_uri: str, ui: str | None) -> None:
    assert mlflow_ui_url(tracking_uri) == ui
