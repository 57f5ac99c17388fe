"""The tuning flow: search spaces, label-use marking, pruning, resume after a kill.

Flow tests share one tiny collection (16 four-second demo tracks, small crops) and its work dir,
so the ingest runs once; every test has its own Optuna storage.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import torch
from optuna.trial import TrialState

from flows.tune import TuneConfig, tune_flow
from models.zoo import MODEL_CLASSES, build_model, model_class
from registry.models import version_by_alias
from registry.tracking import client, experiment_id
from tasks.clustering import ALGORITHMS
from tasks.demo_data import generate_demo_dataset
from tasks.features import FeatureConfig
from tasks.training import TrainConfig
from tasks.tuning import (
    ClusteringChoice,
    HeldOutSplit,
    SearchSettings,
    StudyMismatchError,
    TuningError,
    make_storage,
    open_study,
    optimize_until,
    score_latents,
    settings_from_params,
    suggest_trial_settings,
)

SMALL_FEATURES = FeatureConfig(n_mels=32, crop_frames=32, crop_hop_frames=32)


# ----------------------------------------------------------------------------- search spaces


class RecordingTrial:
    """Wraps an Optuna trial and remembers which parameter names each space suggested."""

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial = trial
        self.names: list[str] = []

    def suggest_int(self, name: str, low: int, high: int, **kwargs: Any) -> int:
        self.names.append(name)
        return self.trial.suggest_int(name, low, high, **kwargs)

    def suggest_float(self, name: str, low: float, high: float, **kwargs: Any) -> float:
        self.names.append(name)
        return self.trial.suggest_float(name, low, high, **kwargs)

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        self.names.append(name)
        return self.trial.suggest_categorical(name, choices)


def _example_batch(name: str, input_shape: tuple[int, ...]) -> dict[str, torch.Tensor]:
    cls = model_class(name)
    batch = {"x": torch.randn(4, *input_shape)}
    if cls.uses_condition:
        batch["condition"] = torch.tensor([0, 1, 2, 0])
    if cls.uses_lyrics:
        batch["lyrics"] = torch.randn(4, 16)
        batch["lyrics_mask"] = torch.tensor([True, False, True, True])
    return batch


@pytest.mark.parametrize("name", sorted(MODEL_CLASSES))
def test_every_model_search_space_yields_a_model_that_trains_one_step(name: str) -> None:
    # given random draws from the model's space + the trainer's + the clustering's
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1), direction="maximize")
    cls = model_class(name)
    input_shape = (32, 32) if cls.input_kind == "spectrogram" else (40,)
    search = SearchSettings(model=name, n_clusters_range=(2, 6))
    for _ in range(3):
        trial = study.ask()
        settings = suggest_trial_settings(trial, search, n_clusters=None, features_label="t")
        # when the suggested overrides build the model
        model = build_model(
            name,
            input_shape=input_shape,
            overrides=settings.spec.overrides,
            n_conditions=3 if cls.uses_condition else 0,
            lyrics_dim=16 if cls.uses_lyrics else 0,
        )
        batch = _example_batch(name, input_shape)
        loss = model.loss_function(batch, model(batch))["loss"]
        # then it trains, with trainer and clustering settings inside their declared ranges
        assert torch.isfinite(loss)
        loss.backward()
        train = settings.spec.train
        assert 1e-4 <= train.learning_rate <= 3e-3
        assert train.batch_size in (32, 64, 128)
        assert 0 <= train.kl_warmup_epochs <= 10
        assert train.epochs == search.epochs
        assert train.validation_fraction == search.validation_fraction
        assert settings.clustering.algorithm in ("kmeans", "gmm", "agglomerative")
        assert 2 <= settings.clustering.n_clusters <= 6
        assert {"cluster_algorithm", "n_clusters", "learning_rate"} <= set(trial.params)
        # and a finished trial's params replay to the same configuration
        replay = settings_from_params(trial.params, search, n_clusters=None, features_label="t")
        assert replay == settings
        study.tell(trial, 0.0)


@pytest.mark.parametrize("name", sorted(MODEL_CLASSES))
def test_model_trainer_and_clustering_spaces_use_distinct_parameter_names(name: str) -> None:
    trial = RecordingTrial(optuna.create_study().ask())
    model_class(name).search_space(trial)
    model_names = set(trial.names)
    trial.names.clear()
    TrainConfig.search_space(trial)
    trainer_names = set(trial.names)
    trial.names.clear()
    ClusteringChoice.search_space(
        trial, algorithms=("kmeans", "gmm"), n_clusters_range=(2, 5), fixed_n_clusters=None
    )
    clustering_names = set(trial.names)
    assert model_names
    assert trainer_names
    assert clustering_names == {"cluster_algorithm", "n_clusters"}
    assert not model_names & trainer_names
    assert not (model_names | trainer_names) & clustering_names


def test_fixed_cluster_count_is_not_searched() -> None:
    trial = optuna.create_study().ask()
    choice = ClusteringChoice.search_space(
        trial, algorithms=("gmm",), n_clusters_range=(2, 12), fixed_n_clusters=10
    )
    assert choice == {"algorithm": "gmm", "n_clusters": 10}
    assert "n_clusters" not in trial.params
    assert set(ALGORITHMS) >= {"kmeans", "gmm", "agglomerative"}


def test_search_settings_reject_bad_model_and_range() -> None:
    with pytest.raises(ValueError, match="unknown model"):
        SearchSettings(model="no_such_model")
    with pytest.raises(ValueError, match="n_clusters_range"):
        SearchSettings(model="mlp_vae", n_clusters_range=(5, 3))


def test_resuming_a_study_with_other_settings_is_refused(tmp_path: Path) -> None:
    storage = make_storage(f"sqlite:///{tmp_path / 'optuna.db'}", stale_after_s=60)
    first = SearchSettings(model="mlp_vae", epochs=5)
    kwargs = {"fingerprint": "abc", "feature_key": "k", "pruner": optuna.pruners.NopPruner()}
    open_study(storage, "s", first, **kwargs)
    assert open_study(storage, "s", first, **kwargs).user_attrs["uses_labels"] is False
    with pytest.raises(StudyMismatchError, match="epochs: study has 5, asked 6"):
        open_study(storage, "s", SearchSettings(model="mlp_vae", epochs=6), **kwargs)
    with pytest.raises(StudyMismatchError, match="fingerprint"):
        open_study(storage, "s", first, **{**kwargs, "fingerprint": "other"})


def _split(genres: list[str]) -> HeldOutSplit:
    n = len(genres)
    return HeldOutSplit(
        track_ids=[f"t{i}" for i in range(n)],
        shas=[""] * n,
        train=np.arange(0, n, 2),
        validation=np.arange(1, n, 2),
        genres=genres,
    )


def test_held_out_score_separates_good_from_useless_latents() -> None:
    # given 20 tracks of two genres; the training tracks are the even ones
    genres = ["rock", "rock", "jazz", "jazz"] * 5
    split = _split(genres)
    rng = np.random.default_rng(0)
    centres = np.where(np.array(genres)[:, None] == "rock", 5.0, -5.0)
    separated = centres + rng.normal(size=(20, 3))
    choice = ClusteringChoice(algorithm="kmeans", n_clusters=2)

    # then latents that separate the genres score high on the held-out tracks ...
    good = score_latents(separated, split, choice, "silhouette", seed=0)
    assert good.value > 0.7
    assert good.n_clusters_found == 2
    assert score_latents(separated, split, choice, "nmi", seed=0).value == pytest.approx(1.0)
    # ... and latents that put every held-out track in one cluster get the worst value
    collapsed = separated.copy()
    collapsed[split.validation] = separated[split.train[0]]
    useless = score_latents(collapsed, split, choice, "silhouette", seed=0)
    assert useless.value == -1.0
    assert "cluster" in useless.reason


def test_trials_count_finished_ones_and_failed_ones_are_replaced() -> None:
    # given an objective whose second trial fails and third is pruned
    study = optuna.create_study(direction="maximize")

    def objective(trial: optuna.Trial) -> float:
        value = trial.suggest_float("x", 0.0, 1.0)
        if trial.number == 1:
            raise ValueError("n_clusters too large")
        if trial.number == 2:
            raise optuna.TrialPruned
        return value

    # when 4 trials are asked for
    optimize_until(
        study, objective, target_finished=4, jobs=1, timeout_s=None, max_consecutive_failures=3
    )
    # then the failed trial is replaced: 4 complete + pruned, 5 in all
    states = [t.state for t in study.trials]
    assert states.count(TrialState.COMPLETE) + states.count(TrialState.PRUNED) == 4
    assert states[1] == TrialState.FAIL
    assert study.trials[1].user_attrs["error"] == "ValueError: n_clusters too large"
    assert len(states) == 5
    # and asking for 4 again runs nothing
    optimize_until(
        study, objective, target_finished=4, jobs=1, timeout_s=None, max_consecutive_failures=3
    )
    assert len(study.trials) == 5


def test_repeated_failures_stop_the_study_with_the_cause() -> None:
    study = optuna.create_study(direction="maximize")

    def objective(trial: optuna.Trial) -> float:
        raise RuntimeError("the training loss became nan")

    with pytest.raises(TuningError, match=r"3 trials in a row failed.*loss became nan"):
        optimize_until(
            study, objective, target_finished=10, jobs=1, timeout_s=None, max_consecutive_failures=3
        )
    assert len(study.trials) == 3


# ----------------------------------------------------------------------------- flows


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("tune")
    generate_demo_dataset(root / "data", tracks=16, seed=0, duration_s=4.0)
    return root / "data", root / "work"


def _config(collection: tuple[Path, Path], storage: Path, **changes: Any) -> TuneConfig:
    data, workdir = collection
    settings: dict[str, Any] = {
        "model": "mlp_vae",
        "data": data,
        "workdir": workdir,
        "storage": f"sqlite:///{storage}",
        "trials": 2,
        "epochs": 2,
        "final_epochs": 2,
        "features": SMALL_FEATURES,
        "validation_fraction": 0.35,  # 6 of 16 tracks held out
        "n_clusters_range": (2, 3),
        "pruner": "none",
        "retrain_best": False,
        "evaluate": False,
        "device": "cpu",
    }
    return TuneConfig(**(settings | changes))


def _study(config: TuneConfig, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=config.storage)


class PruneOddTrials(optuna.pruners.BasePruner):
    """Deterministic: odd-numbered trials are pruned at their second report."""

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return trial.number % 2 == 1 and len(trial.intermediate_values) >= 2


@pytest.mark.usefixtures("prefect_api")
def test_pruned_trials_are_marked_in_optuna_and_mlflow(
    collection: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a pruner that stops every odd trial at its second epoch
    monkeypatch.setattr("tasks.tuning.make_pruner", lambda *args, **kwargs: PruneOddTrials())
    config = _config(
        collection, tmp_path / "optuna.db", trials=3, epochs=3, retrain_best=True, evaluate=True
    )

    # when the default (unsupervised) study runs
    result = tune_flow(config)

    # then trials 0 and 2 completed and trial 1 was pruned, in Optuna ...
    summary = result.study
    study = _study(config, summary.study_name)
    states = {t.number: t.state for t in study.trials}
    assert states == {0: TrialState.COMPLETE, 1: TrialState.PRUNED, 2: TrialState.COMPLETE}
    assert (summary.n_complete, summary.n_pruned, summary.n_failed) == (2, 1, 0)
    mlflow = client()
    for trial in study.trials:
        run = mlflow.get_run(trial.user_attrs["mlflow_run_id"])
        # ... and in MLflow: each trial is a child of the study's run
        assert run.data.tags["mlflow.parentRunId"] == result.run_id
        assert run.data.tags["optuna_trial"] == str(trial.number)
        history = mlflow.get_metric_history(run.info.run_id, "validation_silhouette")
        if trial.state == TrialState.PRUNED:
            assert run.info.status == "KILLED"
            assert run.data.tags["pruned"] == "true"
            assert [m.step for m in history] == [0, 1]
        else:
            assert run.info.status == "FINISHED"
            assert run.data.tags["optuna_state"] == "COMPLETE"
            assert [m.step for m in history] == [0, 1, 2]
            assert run.data.metrics["final_validation_silhouette"] == pytest.approx(trial.value)
            assert -1.0 <= trial.value <= 1.0
        assert "optuna.learning_rate" in run.data.params
        # the default objective uses no labels
        assert trial.user_attrs["uses_labels"] is False
        assert run.data.tags["uses_labels"] == "false"
    assert study.user_attrs["uses_labels"] is False

    # the study's run holds the best parameters, the trial table and the plots
    parent = mlflow.get_run(result.run_id)
    assert parent.data.tags["uses_labels"] == "false"
    assert parent.data.params["best.learning_rate"] == str(study.best_params["learning_rate"])
    assert parent.data.metrics["best_validation_silhouette"] == pytest.approx(study.best_value)
    assert parent.data.metrics["n_pruned"] == 1
    artifacts = {a.path for a in mlflow.list_artifacts(result.run_id)}
    plots = {a.path for a in mlflow.list_artifacts(result.run_id, "plots")}
    assert "trials.csv" in artifacts
    assert {
        "plots/optimization_history.png",
        "plots/intermediate_values.png",
        "plots/parameter_importance.png",
    } <= plots

    # the best configuration was retrained, registered and judged against the champion
    final = result.final
    assert final is not None
    assert final.output.registered_version is not None
    assert final.clustering.algorithm == study.best_params["cluster_algorithm"]
    final_run = mlflow.get_run(final.output.run_id)
    assert final_run.data.tags["mlflow.parentRunId"] == result.run_id
    assert final_run.data.tags["stage"] == "tune-final"
    assert final.champion_version is None
    assert final.champion_reason == "left to the evaluation flow"
    # ... and evaluated with the evaluation flow, which decides the champion with a full package
    evaluations = mlflow.search_runs(
        [mlflow.get_experiment_by_name("evaluation").experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{result.run_id}'",
    )
    assert len(evaluations) == 1
    assert version_by_alias("vaemusic") is not None
    # trial models live in MLflow only; the work dir keeps the tuned model alone
    model_dirs = [p.name for p in (collection[1] / "models").iterdir()]
    assert not [name for name in model_dirs if "-trial" in name]
    assert final.output.model_dir.name in model_dirs


@pytest.mark.usefixtures("prefect_api")
def test_label_objective_marks_study_and_every_trial(
    collection: tuple[Path, Path], tmp_path: Path
) -> None:
    config = _config(collection, tmp_path / "optuna.db", objective="nmi", epochs=1)

    result = tune_flow(config)

    study = _study(config, result.study.study_name)
    assert result.study.study_name.endswith("-nmi")
    assert result.study.uses_labels is True
    assert study.user_attrs["uses_labels"] is True
    assert len(study.trials) == 2
    mlflow = client()
    assert mlflow.get_run(result.run_id).data.tags["uses_labels"] == "true"
    for trial in study.trials:
        assert trial.user_attrs["uses_labels"] is True
        assert 0.0 <= trial.value <= 1.0
        # nmi compares with the genres, so the cluster count is the number of genres
        assert "n_clusters" not in trial.params
        run = mlflow.get_run(trial.user_attrs["mlflow_run_id"])
        assert run.data.tags["uses_labels"] == "true"
        assert "final_validation_nmi" in run.data.metrics


def _dead_process_tag() -> str:
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    return f"{socket.gethostname()}:{finished.pid}"


@pytest.mark.usefixtures("prefect_api")
def test_rerun_with_more_trials_resumes_the_study_past_killed_trials(
    collection: tuple[Path, Path], tmp_path: Path
) -> None:
    # given a study with 3 finished trials ...
    config = _config(collection, tmp_path / "optuna.db", trials=3, stale_trial_seconds=1)
    first = tune_flow(config)
    name = first.study.study_name
    assert first.study.trials_this_session == [0, 1, 2]
    # ... and two trials left RUNNING: one by a tune process that was killed, one by something
    # that left no trace of its process (its heartbeat-less start is older than the limit)
    study = _study(config, name)
    killed = study.ask()
    killed.set_user_attr("process", _dead_process_tag())
    mlflow = client()
    tuning = experiment_id("tuning")
    dead_session = mlflow.create_run(tuning, run_name="tune (killed)").info.run_id
    dead_trial_run = mlflow.create_run(tuning, run_name="trial (killed)").info.run_id
    killed.set_user_attr("mlflow_parent_run_id", dead_session)
    killed.set_user_attr("mlflow_run_id", dead_trial_run)
    untraced = study.ask()
    time.sleep(1.5)

    # when the same command is run again asking for 5 trials
    second = tune_flow(config.model_copy(update={"trials": 5}))

    # then the same study is topped up to 5 finished trials and the stale trials are failed
    assert second.study.study_name == name
    assert optuna.get_all_study_names(config.storage) == [name]
    study = _study(config, name)
    states = {t.number: t.state for t in study.trials}
    assert sorted(second.study.stale_trials_failed) == [killed.number, untraced.number]
    assert states[killed.number] == states[untraced.number] == TrialState.FAIL
    finished = [n for n, s in states.items() if s in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 5
    assert len(second.study.trials_this_session) == 2
    assert min(second.study.trials_this_session) > untraced.number
    assert second.study.n_running == 0
    # each session has its own MLflow run, both recorded on the study
    assert study.user_attrs["mlflow_parent_runs"] == [first.run_id, second.run_id]
    assert mlflow.get_run(second.run_id).info.status == "FINISHED"
    # the killed session's runs no longer pretend to be running
    assert mlflow.get_run(dead_session).info.status == "KILLED"
    assert mlflow.get_run(dead_trial_run).info.status == "KILLED"
    assert mlflow.get_run(dead_trial_run).data.tags["stale"] == "true"
