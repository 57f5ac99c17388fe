"""End to end: the quick pipeline on a tiny generated collection, then a cached re-run."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import get_args

import numpy as np
import polars as pl
import pytest
from mlflow.tracking import MlflowClient

from flows.pipeline import PipelineConfig, pipeline_flow
from models.multimodal_vae import Fusion
from models.zoo import MODEL_NAMES
from registry.champion import CHAMPION_MODEL
from registry.models import version_by_alias
from registry.tracking import tracked_run
from tasks.audio.features import FeatureConfig
from tasks.core.workspace import Workspace
from tasks.demo import DemoSettings
from tasks.evaluation.metrics import EXTERNAL_METRICS, INTERNAL_METRICS
from tasks.evaluation.report import METHODS
from tasks.training.comparison import model_specs

TINY_FEATURES = FeatureConfig(n_mels=32, crop_frames=32, crop_hop_frames=32, max_crops=6)


@pytest.fixture(scope="module")
def pipeline_run(prefect_api, tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp("pipeline") / "work"
    config = PipelineConfig(
        workdir=workdir,
        demo=DemoSettings(tracks=16, duration_s=4.0),
        features=TINY_FEATURES,
        max_epochs=2,
        evaluation_seeds=2,
        maps=["tsne"],
    )
    first = pipeline_flow(config)
    return config, first


@pytest.mark.parametrize("profile", ["quick", "full"])
def test_the_comparison_trains_every_model_of_the_zoo_and_every_fusion(profile: str) -> None:
    specs = model_specs(profile)
    assert {spec.model for spec in specs} == set(MODEL_NAMES)
    fusions = {spec.overrides["fusion"] for spec in specs if spec.model == "multimodal_vae"}
    assert fusions == set(get_args(Fusion))


def _training_runs(client: MlflowClient) -> int:
    experiment = client.get_experiment_by_name("pipeline")
    return len(
        client.search_runs(
            [experiment.experiment_id], filter_string="tags.stage = 'train'", max_results=1000
        )
    )


def _registered_versions(client: MlflowClient) -> dict[str, int]:
    return {
        model.name: len(client.search_model_versions(f"name = '{model.name}'"))
        for model in client.search_registered_models()
        if model.name.startswith(CHAMPION_MODEL)
    }


def test_report_has_every_method_and_algorithm(pipeline_run) -> None:
    _, result = pipeline_run
    table = pl.read_csv(result.comparison)
    methods = {spec.model for spec in model_specs("quick")} | {
        "pca",
        "spectral_features",
        "handcrafted",
        "musicnn",
        "lyrics",
    }
    assert set(table["method"]) == methods
    # lyrics alone place the songs by the genre themes across languages, above chance
    lyrics_row = table.filter((pl.col("method") == "lyrics") & (pl.col("algorithm") == "kmeans"))
    assert lyrics_row["nmi"][0] > 0.3
    # the VAE family on the pretrained embeddings, next to today's rows
    on_musicnn = set(table.filter(pl.col("features").str.starts_with("musicnn"))["method"])
    assert {"mlp_vae", "vade", "multimodal_vae"} <= on_musicnn
    assert set(table["method"]) <= set(METHODS)
    assert {"kmeans", "agglomerative", "dbscan", "gmm", "mixture"} <= set(table["algorithm"])
    for column in (
        *INTERNAL_METRICS,
        *EXTERNAL_METRICS,
        "nmi_std",
        "uses_labels",
        "n_clusters",
    ):
        assert column in table.columns
    reports = Path(result.comparison).parent
    assert (reports / "comparison.md").read_text().count("|") > 50
    assert (reports / "comparison.tex").exists()
    plots = list((reports / "plots").rglob("*.png"))
    assert any(p.name == "beta_sweep.png" for p in plots)
    assert any(p.name == "tsne_genre.png" for p in plots)
    assert any(p.name == "cluster_language.png" for p in plots)
    assert list((reports / "plots").rglob("interactive.html"))


def test_label_using_rows_are_never_ranked_with_unsupervised(pipeline_run) -> None:
    _, result = pipeline_run
    table = pl.read_csv(result.comparison)
    genre_cvae = table.filter(pl.col("features") == "condition=genre")
    assert genre_cvae.height > 0
    assert genre_cvae["uses_labels"].to_list() == [True] * genre_cvae.height
    assert genre_cvae["rank"].null_count() == genre_cvae.height
    # every unsupervised row that found structure is ranked; rows that found none are listed apart
    unsupervised = table.filter(~pl.col("uses_labels") & pl.col("found_structure"))
    assert unsupervised["rank"].null_count() == 0
    no_structure = table.filter(~pl.col("found_structure"))
    assert no_structure["rank"].null_count() == no_structure.height
    assert result.best["features"] != "condition=genre"


def test_everything_is_in_mlflow_and_a_champion_is_registered(pipeline_run) -> None:
    _, result = pipeline_run
    client = MlflowClient()
    evaluation = client.get_run(result.run_id)
    parent_id = evaluation.data.tags["mlflow.parentRunId"]
    assert client.get_run(parent_id).data.tags["stage"] == "pipeline"
    children = client.search_runs(
        [evaluation.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{result.run_id}'",
        max_results=500,
    )
    table = pl.read_csv(result.comparison)
    assert len(children) == table.height
    assert all(
        "silhouette" in child.data.metrics
        for child in children
        if child.data.tags["algorithm"] != "dbscan"
    )
    # settings as params: MLflow's compare view and parallel coordinates plot read params
    assert all(
        {"method", "features", "algorithm", "k", "seeds"} <= set(c.data.params) for c in children
    )
    champion = version_by_alias(CHAMPION_MODEL)
    assert champion is not None
    assert champion.tags["objective"] == result.ranking_metric
    assert result.ranking_metric in champion.description


def test_a_pipeline_run_is_one_tree_with_the_headline_on_its_parent(pipeline_run) -> None:
    _, result = pipeline_run
    client = MlflowClient()
    parent = client.get_run(client.get_run(result.run_id).data.tags["mlflow.parentRunId"])
    experiment = client.get_experiment(parent.info.experiment_id)
    assert experiment.name == "pipeline"
    # the experiment opens on its runs in MLflow 3's UI and says what it holds
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert "nested" in experiment.tags["mlflow.note.content"]
    nested = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
        max_results=500,
    )
    stages = [run.data.tags["stage"] for run in nested]
    assert sorted(set(stages)) == ["evaluate", "ingest", "lyrics", "train"]
    assert stages.count("train") == len(model_specs("quick"))
    # training runs carry the clustering quality of their latents (sortable in the experiment)
    assert all("kmeans_nmi" in r.data.metrics for r in nested if r.data.tags["stage"] == "train")
    table = pl.read_csv(result.comparison)
    assert parent.data.metrics["n_methods"] == table["method"].n_unique()
    assert parent.data.metrics[f"best_{result.ranking_metric}"] == pytest.approx(
        result.best[result.ranking_metric]
    )
    assert {"best_nmi", "best_silhouette"} <= set(parent.data.metrics)
    assert parent.data.tags["report"].endswith("comparison.md")
    report = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert "report/comparison.md" in report


def test_second_run_trains_nothing_and_registers_nothing(pipeline_run) -> None:
    config, first = pipeline_run
    client = MlflowClient()
    before = _training_runs(client)
    versions = _registered_versions(client)
    second = pipeline_flow(config)
    assert _training_runs(client) == before
    assert _registered_versions(client) == versions
    assert pl.read_csv(second.comparison).equals(pl.read_csv(first.comparison))


def test_a_diverged_training_is_left_out_and_the_others_go_on(pipeline_run) -> None:
    from prefect import flow

    from flows.ingest import IngestConfig, ingest_flow
    from flows.pipeline import _train_each
    from tasks.demo.collection import demo_collection
    from tasks.training.comparison import pretrained_config
    from tasks.training.representation import ModelSpec
    from tasks.training.trainer import TrainConfig

    config, _ = pipeline_run
    workspace = Workspace.open(config.workdir)
    diverging = ModelSpec(
        model="mlp_vae",
        train=TrainConfig(learning_rate=1e12, epochs=2, seed=7),
        features_label="diverging",
    )
    sound = ModelSpec(model="mlp_vae", train=TrainConfig(epochs=1, seed=7), features_label="sound")

    @flow
    def train_both() -> tuple[dict[str, str], dict[str, str]]:
        ingested = ingest_flow(  # cached: the pipeline's own ingest
            IngestConfig(
                data=demo_collection(workspace.demo_data, config.demo),
                workdir=config.workdir,
                features=TINY_FEATURES,
                pretrained=pretrained_config("quick"),
            )
        )
        with tracked_run("pipeline", "diverged test") as run_id:
            return _train_each([diverging, sound], ingested, run_id)

    trained, diverged = train_both()
    assert list(trained) == [sound.run_name]
    assert list(diverged) == [diverging.run_name]
    assert "learning rate" in diverged[diverging.run_name]


@pytest.fixture(scope="module")
def dask_cluster() -> Iterator[str]:
    """A real local Dask cluster of two worker processes (one thread each), on loopback."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def test_on_a_dask_cluster_evaluation_ranks_as_on_threads_and_training_gives_the_same_model(
    pipeline_run, dask_cluster, tmp_path: Path
) -> None:
    """`--task-runner dask --dask-address ...` on `evaluate` and `train`: the clusterings, plots
    and the training run in the cluster's worker processes, spread over both, and give what the
    thread runner gave. (A copy of the work dir: the cached results of the first run would
    answer for the same one.)"""
    from flows.evaluate import EvaluateConfig, evaluate_flow
    from flows.train import TrainFlowConfig, train_flow
    from tasks.core.runners import task_runner
    from tasks.training.representation import read_latents

    config, first = pipeline_run
    workdir = tmp_path / "work"
    shutil.copytree(config.workdir, workdir)
    address = dask_cluster.scheduler.address

    def on_cluster(flow):
        return flow.with_options(task_runner=task_runner("dask", address=address))

    evaluated = on_cluster(evaluate_flow)(
        EvaluateConfig(workdir=workdir, seeds=config.evaluation_seeds, maps=config.maps)
    )
    # Rows of the first run's models (another test may have trained one more into the work dir).
    key, shown = ["method", "features", "algorithm"], ["nmi", "silhouette", "ari"]
    expected = pl.read_csv(first.comparison).select(*key, *shown)
    on_dask = pl.read_csv(evaluated.comparison).select(*key, *shown)
    assert on_dask.join(expected, on=key, how="semi").sort(key).equals(expected.sort(key))
    executed = dask_cluster.run(lambda dask_worker: dask_worker.state.executed_count)
    assert len(executed) == 2
    assert all(count > 0 for count in executed.values())  # both workers clustered or drew

    spec = next(s for s in model_specs("quick", 2, 4) if s.model == "mlp_vae")
    trained = on_cluster(train_flow)(
        TrainFlowConfig(
            data=Workspace.open(config.workdir).demo_data,
            workdir=workdir,
            spec=spec,
            features=TINY_FEATURES,
            experiment="dask test",
        )
    )
    on_threads = read_latents(Workspace.open(config.workdir).model_latents(spec.run_name))
    on_dask = read_latents(trained.latents)
    assert on_dask.track_ids == on_threads.track_ids
    np.testing.assert_allclose(on_dask.mu, on_threads.mu, rtol=1e-4, atol=1e-5)
