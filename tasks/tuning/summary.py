"""Where a study stands after a session, and what the session's MLflow run records about it.

Every session (one call of the tuning flow) is one run in the tuning experiment, tagged with
`session_tags`; the trials it ran are its child runs. At the end it holds the best parameters,
the trial counts, the trials table (`trials.csv`) and the study's plots (`plots/`).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import optuna
import polars as pl
from optuna.trial import TrialState
from pydantic import BaseModel, Field

from registry.tracking import log_artifact, log_metrics, log_params, log_table, set_tags
from tasks.tuning.plots import (
    intermediate_values_plot,
    optimization_history_plot,
    parameter_importance_plot,
)
from tasks.tuning.space import SearchSettings
from tasks.tuning.storage import StudyTarget


class StudySummary(BaseModel):
    """Where a study stands after this session."""

    study_name: str
    storage: str = Field(description="Storage URL, password hidden.")
    objective: str
    uses_labels: bool
    best_value: float | None
    best_trial: int | None
    best_params: dict[str, Any]
    n_complete: int
    n_pruned: int
    n_failed: int
    n_running: int
    trials_this_session: list[int]
    stale_trials_failed: list[int]
    seconds: float

    def describe(self) -> str:
        """One log line: best value, trial counts, trials run this session."""
        best = f"{self.best_value:.4f}" if self.best_value is not None else "n/a"
        return (
            f"study {self.study_name}: best validation_{self.objective}={best} "
            f"(trial {self.best_trial}); {self.n_complete} complete, {self.n_pruned} pruned, "
            f"{self.n_failed} failed; {len(self.trials_this_session)} trials this session"
        )


def session_tags(target: StudyTarget, search: SearchSettings) -> dict[str, str]:
    """Tags of a session's MLflow run: which study, data and objective, and whether it used
    labels."""
    return {
        "stage": "tune",
        "optuna_study": target.name,
        "optuna_storage": target.display_storage,
        "method": search.model,
        "fingerprint": target.fingerprint,
        "objective": search.metric_name,
        "uses_labels": str(search.uses_labels).lower(),
    }


def summarize(
    study: optuna.Study,
    target: StudyTarget,
    search: SearchSettings,
    *,
    session_trials: list[int],
    stale: list[int],
    started: float,
) -> StudySummary:
    """Count the study's trials by state and find its best. `started`: `time.time()` when the
    session began (wall clock: on a Dask cluster the session opens and ends in other processes,
    where `perf_counter` values mean nothing to each other)."""
    counts = {state: 0 for state in TrialState}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state] += 1
    completed = counts[TrialState.COMPLETE] > 0
    best = study.best_trial if completed else None
    return StudySummary(
        study_name=study.study_name,
        storage=target.display_storage,
        objective=search.objective,
        uses_labels=bool(study.user_attrs.get("uses_labels", search.uses_labels)),
        best_value=best.value if best else None,
        best_trial=best.number if best else None,
        best_params=dict(best.params) if best else {},
        n_complete=counts[TrialState.COMPLETE],
        n_pruned=counts[TrialState.PRUNED],
        n_failed=counts[TrialState.FAIL],
        n_running=counts[TrialState.RUNNING],
        trials_this_session=sorted(session_trials),
        stale_trials_failed=stale,
        seconds=max(0.0, time.time() - started),
    )


def trials_table(study: optuna.Study) -> pl.DataFrame:
    """One row per trial: number, state, value, duration_s, last_epoch, params (JSON),
    mlflow_run_id, error."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        duration = trial.duration.total_seconds() if trial.duration is not None else None
        steps = trial.intermediate_values
        rows.append(
            {
                "number": trial.number,
                "state": trial.state.name,
                "value": trial.value,
                "duration_s": duration,
                "last_epoch": (max(steps) + 1) if steps else None,
                "params": json.dumps(trial.params, sort_keys=True, default=str),
                "mlflow_run_id": trial.user_attrs.get("mlflow_run_id"),
                "error": trial.user_attrs.get("error"),
            }
        )
    schema = {
        "number": pl.Int64,
        "state": pl.String,
        "value": pl.Float64,
        "duration_s": pl.Float64,
        "last_epoch": pl.Int64,
        "params": pl.String,
        "mlflow_run_id": pl.String,
        "error": pl.String,
    }
    return pl.DataFrame(rows, schema=schema)


def log_study(run_id: str, study: optuna.Study, summary: StudySummary, out_dir: Path) -> None:
    """Best parameters, counts, the trials table and the plots (drawn into `out_dir`), on the
    session's MLflow run `run_id`."""
    metric = f"validation_{summary.objective}"
    if summary.best_params:
        log_params(run_id, {"best": summary.best_params})
    log_metrics(
        run_id,
        {
            f"best_{metric}": summary.best_value if summary.best_value is not None else math.nan,
            "n_complete": summary.n_complete,
            "n_pruned": summary.n_pruned,
            "n_failed": summary.n_failed,
            "session_seconds": summary.seconds,
        },
    )
    set_tags(run_id, {"best_trial": summary.best_trial if summary.best_trial is not None else ""})
    log_table(run_id, trials_table(study), "trials.csv")
    out_dir.mkdir(parents=True, exist_ok=True)
    trials = study.get_trials(deepcopy=False)
    plots = [
        optimization_history_plot(trials, metric, out_dir / "optimization_history.png"),
        intermediate_values_plot(trials, metric, out_dir / "intermediate_values.png"),
    ]
    importance = parameter_importance_plot(study, out_dir / "parameter_importance.png")
    if isinstance(importance, Path):
        plots.append(importance)
    else:
        set_tags(run_id, {"parameter_importance": importance})
    for path in plots:
        log_artifact(run_id, path, "plots")
