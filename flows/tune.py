"""Tuning flow: ingest (cached) -> lyrics if the model uses them -> Optuna study (one MLflow child
run per trial, pruning, resumable) -> best configuration retrained and registered -> evaluation,
which may make it the champion.

`study.trials = N` means "until the study holds N finished (complete + pruned) trials":
re-running the same config resumes an interrupted study and tops it up; a larger N extends it.
Trials left RUNNING by a killed process are marked FAIL on resume (see
`tasks.tuning.storage.fail_stale_trials`).

MLflow: every session (one call of this flow) is one run in the "tuning" experiment with the
trials it ran as child runs and the retrained best model as one more child; a resumed study
therefore spans several session runs, one user attr `mlflow_session:<run id>` each on the study
(`tasks.tuning.study.study_sessions`). Parallel: `study.jobs` runs trials in threads of this
process; several processes, on one machine or several, may also share one storage such as
PostgreSQL (each with its own session run; a test runs two at once). Watch a study with
`optuna-dashboard <storage URL>`.
"""

from __future__ import annotations

import time

from prefect import flow
from pydantic import BaseModel, ConfigDict, Field

from flows.evaluate import EvaluateConfig, evaluate_flow
from flows.ingest import IngestConfig, ingest_flow
from models.zoo import needs_lyrics
from registry.tracking import tracked_run
from tasks.audio.discovery import CollectionPath
from tasks.audio.features import FeatureConfig
from tasks.core.runners import on_callers_cluster, runs_on_threads
from tasks.core.workspace import DEFAULT_WORKDIR, WorkdirPath
from tasks.tuning.retrain import FinalModel, retrain_best
from tasks.tuning.space import SearchSettings
from tasks.tuning.study import (
    StudySettings,
    locate_study,
    open_session,
    run_trials,
    summarize_session,
    trial_runners,
)
from tasks.tuning.summary import StudySummary, session_tags


class TuneConfig(BaseModel):
    """Parameters of the tuning flow (rendered as a form in the Prefect dashboard)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data: CollectionPath = Field(description="A GTZAN-layout folder or a manifest (.csv/.parquet).")
    workdir: WorkdirPath = DEFAULT_WORKDIR
    search: SearchSettings = Field(
        description="What the study searches and how trials are scored (the model to tune, "
        "objective, epochs, ...); a study can only be resumed with the same search."
    )
    study: StudySettings = Field(
        default_factory=StudySettings,
        description="How this session runs the study: trials, parallel jobs, pruner, storage.",
    )
    final_epochs: int | None = Field(
        None,
        ge=1,
        description="Epochs of the best configuration's retrain; empty: the trials' epochs, so "
        "the retrain reproduces what the study measured (longer training changes the score).",
    )
    retrain_best: bool = Field(True, description="Retrain the best configuration and register it.")
    evaluate: bool = Field(
        True,
        description="Evaluate the retrained model with the rest of the work dir; it becomes "
        "champion only if it beats the current one on the same objective and data.",
    )
    features: FeatureConfig = Field(
        default_factory=FeatureConfig, description="Features the trials train on (ingest)."
    )
    experiment: str = Field("tuning", description="MLflow experiment.")
    parent_run_id: str | None = Field(None, description="MLflow parent run (pipeline).")


class TuneResult(BaseModel):
    """What a tuning session did and where its products are."""

    run_id: str = Field(description="MLflow run of this session of the study.")
    study: StudySummary
    final: FinalModel | None = Field(description="The best configuration retrained, if asked.")
    dashboard_command: str
    wall_seconds: float


@flow(
    name="tune",
    flow_run_name="tune {config.search.model} on {config.data.name}",
    log_prints=True,
)
def tune_flow(config: TuneConfig) -> TuneResult:
    started = time.perf_counter()
    search = config.search
    ingested = on_callers_cluster(ingest_flow)(
        IngestConfig(data=config.data, workdir=config.workdir, features=config.features)
    )
    if needs_lyrics(search.model, search.condition):
        from flows.lyrics import LyricsConfig, lyrics_flow

        on_callers_cluster(lyrics_flow)(LyricsConfig(data=config.data, workdir=config.workdir))
    target = locate_study(
        config.study,
        search,
        workspace=ingested.workspace,
        feature_key=ingested.feature_key,
        fingerprint=ingested.fingerprint,
    )
    with tracked_run(
        config.experiment,
        f"tune {target.name}",
        parent_run_id=config.parent_run_id,
        tags=session_tags(target, search),
    ) as run_id:
        session = open_session(
            target=target, search=search, settings=config.study, parent_run_id=run_id
        )
        # In this process (trials in `jobs` threads), or `jobs` trial loops on a cluster's workers.
        trials = [
            run_trials.submit(
                target=target,
                search=search,
                settings=settings,
                experiment=config.experiment,
                parent_run_id=run_id,
            )
            for settings in trial_runners(config.study, on_threads=runs_on_threads())
        ]
        summary = summarize_session(
            target=target,
            search=search,
            settings=config.study,
            session=session,
            trials=[number for future in trials for number in future.result()],
        )
        final = None
        if config.retrain_best:
            final = retrain_best.submit(
                target=target,
                search=search,
                summary=summary,
                epochs=config.final_epochs,
                experiment=config.experiment,
                parent_run_id=run_id,
            ).result()
    if config.evaluate and final is not None:
        on_callers_cluster(evaluate_flow)(
            EvaluateConfig(
                data=config.data,
                workdir=config.workdir,
                parent_run_id=run_id,
                # Hyperparameters chosen against labels must not crown an "unsupervised" champion.
                promote_champion=search.chosen_without_labels,
            )
        )
    return TuneResult(
        run_id=run_id,
        study=summary,
        final=final,
        dashboard_command=target.dashboard_command,
        wall_seconds=time.perf_counter() - started,
    )
