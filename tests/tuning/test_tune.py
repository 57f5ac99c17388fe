"""The tuning flow: its config, label-use marking, pruning, resume after a kill.

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

import optuna
import pytest
from optuna.trial import TrialState

from flows.tune import TuneConfig, tune_flow
from registry.models import version_by_alias
from registry.tracking import client, experiment_id
from tasks.audio.features import FeatureConfig
from tasks.demo import generate_demo_dataset
from tasks.tuning.space import SearchSettings
from tasks.tuning.study import StudySettings, study_sessions

SMALL_FEATURES = FeatureConfig(n_mels=32, crop_frames=32, crop_hop_frames=32)


def test_tune_config_declares_each_setting_once_with_a_description() -> None:
    # The flow's form, the command line and the tasks read one declaration of each setting.
    top = set(TuneConfig.model_fields)
    search = set(SearchSettings.model_fields)
    study = set(StudySettings.model_fields)
    assert not top & search
    assert not top & study
    assert not search & study
    for config in (TuneConfig, SearchSettings, StudySettings):
        for name, info in config.model_fields.items():
            assert info.description, f"{config.__name__}.{name} has no description"


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("tune")
    generate_demo_dataset(root / "data", tracks=16, seed=0, duration_s=4.0)
    return root / "data", root / "work"


def _config(
    collection: tuple[Path, Path],
    storage: Path,
    *,
    search: dict[str, Any] | None = None,
    study: dict[str, Any] | None = None,
    **changes: Any,
) -> TuneConfig:
    data, workdir = collection
    search_settings: dict[str, Any] = {
        "model": "mlp_vae",
        "epochs": 2,
        "validation_fraction": 0.35,  # 6 of 16 tracks held out
        "n_clusters_range": (2, 3),
        "device": "cpu",
    }
    study_settings: dict[str, Any] = {
        "storage": f"sqlite:///{storage}",
        "trials": 2,
        "pruner": "none",
    }
    settings: dict[str, Any] = {
        "data": data,
        "workdir": workdir,
        "search": SearchSettings(**(search_settings | (search or {}))),
        "study": StudySettings(**(study_settings | (study or {}))),
        "final_epochs": 2,
        "features": SMALL_FEATURES,
        "retrain_best": False,
        "evaluate": False,
    }
    return TuneConfig(**(settings | changes))


def _study(config: TuneConfig, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=config.study.storage)


class PruneOddTrials(optuna.pruners.BasePruner):
    """Deterministic: odd-numbered trials are pruned at their second report."""

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return trial.number % 2 == 1 and len(trial.intermediate_values) >= 2


@pytest.mark.usefixtures("prefect_api")
def test_pruned_trials_are_marked_in_optuna_and_mlflow(
    collection: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a pruner that stops every odd trial at its second epoch
    monkeypatch.setattr("tasks.tuning.study.make_pruner", lambda *args, **kwargs: PruneOddTrials())
    config = _config(
        collection,
        tmp_path / "optuna.db",
        search={"epochs": 3},
        study={"trials": 3},
        retrain_best=True,
        evaluate=True,
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
    # ... and evaluated with the evaluation flow, which decides the champion with a full package;
    # its run is nested under the session's, in the session's experiment
    evaluations = mlflow.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{result.run_id}' and tags.stage = 'evaluate'",
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
    config = _config(collection, tmp_path / "optuna.db", search={"objective": "nmi", "epochs": 1})

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
    config = _config(collection, tmp_path / "optuna.db", study={"trials": 3, "stale_after_s": 1})
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
    more_trials = config.study.model_copy(update={"trials": 5})
    second = tune_flow(config.model_copy(update={"study": more_trials}))

    # then the same study is topped up to 5 finished trials and the stale trials are failed
    assert second.study.study_name == name
    assert optuna.get_all_study_names(config.study.storage) == [name]
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
    assert study_sessions(study) == [first.run_id, second.run_id]
    assert mlflow.get_run(second.run_id).info.status == "FINISHED"
    # the killed session's runs no longer pretend to be running
    assert mlflow.get_run(dead_session).info.status == "KILLED"
    assert mlflow.get_run(dead_trial_run).info.status == "KILLED"
    assert mlflow.get_run(dead_trial_run).data.tags["stale"] == "true"


@pytest.mark.usefixtures("prefect_api")
def test_on_a_dask_cluster_trials_run_side_by_side_in_worker_processes(
    collection: tuple[Path, Path], tmp_path: Path
) -> None:
    """`tune --task-runner dask --jobs 2`: two trial loops, each in a worker process of the
    cluster, fill one study; the session sees every trial they ran."""
    from tasks.core.runners import task_runner
    from tasks.tuning.storage import process_tag

    config = _config(collection, tmp_path / "optuna.db", study={"trials": 4, "jobs": 2})
    started = time.time()
    result = tune_flow.with_options(task_runner=task_runner("dask", workers=2))(config)
    # The session opened and was summarized in worker processes (wall clock, not perf_counter,
    # whose values only compare within one machine's processes).
    assert 0 < result.study.seconds < time.time() - started
    study = _study(config, result.study.study_name)
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert 4 <= len(finished) <= 5  # a loop may finish the trial it started as the other hit 4
    processes = {trial.user_attrs["process"] for trial in study.trials}
    assert len(processes) == 2
    assert process_tag() not in processes
    assert sorted(result.study.trials_this_session) == [t.number for t in study.trials]
