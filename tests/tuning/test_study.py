"""A study session: where the study is, how many trials run, when repeated failures stop it."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from pydantic import ValidationError

from tasks.core.workspace import Workspace
from tasks.tuning.space import SearchSettings
from tasks.tuning.study import StudySettings, TuningError, locate_study, optimize_until


def test_a_storage_that_is_not_a_url_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError, match=r"storage\n.*'optuna\.db' is not a SQLAlchemy URL"):
        StudySettings(storage="optuna.db")
    assert StudySettings(storage="postgresql://u:secret@db/optuna").storage is not None


def test_study_name_and_storage_default_to_model_fingerprint_and_workdir(tmp_path: Path) -> None:
    workspace = Workspace.open(tmp_path)
    data = {"workspace": workspace, "feature_key": "k", "fingerprint": "f00d"}

    default = locate_study(StudySettings(), SearchSettings(model="vade"), **data)
    on_labels = locate_study(StudySettings(), SearchSettings(model="vade", objective="ari"), **data)
    named = locate_study(
        StudySettings(study_name="mine", storage="sqlite:///x.db"),
        SearchSettings(model="ae"),
        **data,
    )

    assert default.name == "vade-f00d"
    assert default.storage_url == f"sqlite:///{tmp_path.resolve() / 'optuna.db'}"
    assert on_labels.name == "vade-f00d-ari"  # never resumes the silhouette study
    assert (named.name, named.storage_url) == ("mine", "sqlite:///x.db")


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
