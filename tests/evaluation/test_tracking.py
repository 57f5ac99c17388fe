"""What an evaluation leaves in MLflow: rows comparable by their settings, training runs sortable
by the clustering quality of their latents, and a pipeline parent run with the headline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from registry.tracking import client, tracked_run
from tasks.core.workspace import Workspace
from tasks.evaluation.report import build_comparison_table, rank, write_reports
from tasks.evaluation.representations import Representation
from tasks.evaluation.tracking import (
    latent_quality,
    log_comparison_rows,
    log_latent_quality,
    log_pipeline_outcome,
)


def _row(method: str, features: str, algorithm: str, nmi: float, silhouette: float) -> dict:
    return {
        "method": method,
        "features": features,
        "algorithm": algorithm,
        "uses_labels": False,
        "nmi": nmi,
        "silhouette": silhouette,
        "n_clusters": 4,
        "n_seeds": 2,
    }


@pytest.fixture
def table():
    return rank(
        build_comparison_table(
            [
                _row("mlp_vae", "default", "kmeans", 0.6, 0.2),
                _row("mlp_vae", "default", "gmm", 0.5, 0.3),
                _row("pca", "PCA(4) of descriptors", "kmeans", 0.4, 0.4),
            ]
        ),
        by="nmi",
    )


def _representation(run_id: str | None, method: str = "mlp_vae") -> Representation:
    return Representation(
        method=method,
        features="default",
        latents=Path("/nowhere.parquet"),
        latents_sha="x",
        run_id=run_id,
    )


def _seed_rows(algorithm: str, nmi: list[float]) -> list[dict[str, Any]]:
    return [
        {"algorithm": algorithm, "seed": s, "nmi": v, "silhouette": 0.1} for s, v in enumerate(nmi)
    ]


def test_each_row_logs_its_settings_as_params_for_the_compare_view(table) -> None:
    with tracked_run("evaluation", "evaluate") as parent:
        log_comparison_rows(
            table,
            parent_run_id=parent,
            fingerprint="abc",
            settings={"n_clusters": None, "seeds": 3},
        )
    children = client().search_runs(
        [client().get_run(parent).info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent}' and params.algorithm = 'gmm'",
    )
    assert len(children) == 1
    assert children[0].data.params == {
        "method": "mlp_vae",
        "features": "default",
        "algorithm": "gmm",
        "uses_labels": "false",
        "k": "auto",
        "seeds": "3",
        "n_seeds": "2",
        "ranking_metric": "nmi",
    }


def test_latent_quality_is_the_mean_of_the_kmeans_rows() -> None:
    rows = _seed_rows("kmeans", [0.2, 0.4]) + _seed_rows("gmm", [0.9])
    quality = latent_quality(rows)
    assert quality["kmeans_nmi"] == pytest.approx(0.3)
    assert quality["kmeans_silhouette"] == pytest.approx(0.1)
    assert latent_quality(_seed_rows("gmm", [0.9])) == {}


def test_training_runs_get_the_clustering_quality_of_their_latents() -> None:
    # given a finished training run, a baseline without a run, and a run of another store
    with tracked_run("training", "mlp_vae-seed0") as training_run:
        pass
    representations = [
        _representation(training_run),
        _representation(None, "pca"),
        _representation("0" * 32),
    ]
    rows = [_seed_rows("kmeans", [0.5, 0.7])] * 3

    logged = log_latent_quality(representations, rows)

    assert logged == 1
    metrics = client().get_run(training_run).data.metrics
    assert metrics["kmeans_nmi"] == pytest.approx(0.6)
    assert "kmeans_silhouette" in metrics


def test_the_pipeline_parent_carries_the_headline_and_the_report(table, tmp_path: Path) -> None:
    workspace = Workspace.open(tmp_path / "work")
    reports = write_reports(table, workspace.reports)
    (workspace.plots / "big.png").write_bytes(b"png")
    workspace.listening_map.write_text("<html></html>")
    with tracked_run("pipeline", "pipeline quick") as parent:
        log_pipeline_outcome(
            parent,
            comparison=reports["csv"],
            best={"method": "mlp_vae", "features": "default", "algorithm": "gmm", "nmi": 0.5},
            reports=reports,
            workspace=workspace,
            training_runs={"mlp_vae-seed0": "run-1"},
        )
    run = client().get_run(parent)
    # the champion's row (gmm), not the top-ranked one
    assert run.data.metrics == {"best_nmi": 0.5, "best_silhouette": 0.3, "n_methods": 2.0}
    assert run.data.tags["best"] == "mlp_vae [default] gmm"
    assert run.data.tags["report"] == str(reports["markdown"])
    description = run.data.tags["mlflow.note.content"]
    assert "**Champion:** mlp_vae [default] gmm (nmi 0.500, silhouette 0.300)" in description
    assert f"**Listening map:** `{workspace.listening_map}`" in description
    artifacts = {a.path for a in client().list_artifacts(parent, "report")}
    assert {f"report/{path.name}" for path in reports.values()} <= artifacts
    assert "report/plots" not in artifacts
    assert "report/listening_map.html" in artifacts
    assert {a.path for a in client().list_artifacts(parent)} >= {"training_runs.json"}


def test_without_a_champion_the_headline_is_the_top_ranked_row(table, tmp_path: Path) -> None:
    workspace = Workspace.open(tmp_path / "work")
    reports = write_reports(table, workspace.reports)
    with tracked_run("pipeline", "pipeline, nothing trained") as parent:
        log_pipeline_outcome(
            parent,
            comparison=reports["csv"],
            best={"method": None, "features": None, "algorithm": None, "nmi": None},
            reports=reports,
            workspace=workspace,
            training_runs={},
        )
    assert client().get_run(parent).data.metrics["best_nmi"] == 0.6
