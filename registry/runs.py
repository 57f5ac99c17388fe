"""Finding runs and reading or ending their status, by explicit run id.

Tuning needs these because the trainer creates each trial's run itself: the study finds that run
by name under its session run, and ends runs as KILLED when a trial is pruned or its process
died.
"""

from __future__ import annotations

from typing import Literal

from mlflow.exceptions import MlflowException

from registry.tracking import client, experiment_id, experiment_of_run

RunEndStatus = Literal["FINISHED", "FAILED", "KILLED"]


def find_child_run(experiment: str, parent_run_id: str, run_name: str) -> str | None:
    """The id of the newest run named `run_name` whose parent is `parent_run_id`; None when
    there is none yet.

    Children are filed in their parent's experiment (`registry.tracking.tracked_run`), so that
    is where they are looked for; `experiment` (created if missing) only when the parent is
    unknown to the store.
    """
    try:
        home = experiment_of_run(parent_run_id)
    except MlflowException:
        home = experiment_id(experiment)
    runs = client().search_runs(
        [home],
        filter_string=(
            f"tags.mlflow.parentRunId = '{parent_run_id}' and tags.mlflow.runName = '{run_name}'"
        ),
        max_results=1,
        order_by=["attributes.start_time DESC"],
    )
    return runs[0].info.run_id if runs else None


def end_run(run_id: str, status: RunEndStatus) -> None:
    """End run `run_id` with `status` (its end time is now)."""
    client().set_terminated(run_id, status=status)


def run_status(run_id: str) -> str | None:
    """RUNNING, SCHEDULED, FINISHED, FAILED or KILLED; None when the run is unknown to the
    tracking store (deleted, or recorded in another store)."""
    try:
        return client().get_run(run_id).info.status
    except MlflowException:
        return None
