"""Retraining the best configuration of a study."""

from __future__ import annotations

from pathlib import Path

from tasks.core.workspace import Workspace
from tasks.tuning.retrain import retrain_best
from tasks.tuning.space import SearchSettings
from tasks.tuning.study import StudySettings, locate_study
from tasks.tuning.summary import StudySummary


def test_a_study_without_a_completed_trial_has_nothing_to_retrain(tmp_path: Path) -> None:
    target = locate_study(
        StudySettings(),
        SearchSettings(model="mlp_vae"),
        workspace=Workspace.open(tmp_path),
        feature_key="k",
        fingerprint="f",
    )
    summary = StudySummary(
        study_name=target.name,
        storage=target.display_storage,
        objective="silhouette",
        uses_labels=False,
        best_value=None,
        best_trial=None,
        best_params={},
        n_complete=0,
        n_pruned=2,
        n_failed=1,
        n_running=0,
        trials_this_session=[0, 1, 2],
        stale_trials_failed=[],
        seconds=1.0,
    )
    final = retrain_best.fn(
        target=target,
        search=SearchSettings(model="mlp_vae"),
        summary=summary,
        epochs=None,
        experiment="tuning",
        parent_run_id="unused",
    )
    assert final is None
