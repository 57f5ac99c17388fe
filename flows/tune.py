"""Tuning flow: ingest (cached) -> lyrics if the model uses them -> Optuna study (one MLflow child
run per trial, pruning, resumable) -> best configuration retrained, registered, maybe champion.

`--trials N` means "until the study holds N finished (complete + pruned) trials": re-running the
same command resumes an interrupted study and tops it up; a larger N extends it. Trials left
RUNNING by a killed process are marked FAIL on resume (see `tasks.tuning.fail_stale_trials`).

MLflow: every session (one call of this flow) is one run in the "tuning" experiment with the
trials it ran as child runs and the retrained best model as one more child; a resumed study
therefore spans several session runs, listed in the study's user attr `mlflow_parent_runs`.
Parallel: `jobs` runs trials in threads of this process; several processes may also share one
storage (each with its own session run). Watch a study with `optuna-dashboard <storage URL>`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_run_logger
from pydantic import BaseModel, ConfigDict, Field

from flows.ingest import IngestConfig, ingest_flow
from flows.train import ModelName
from registry.tracking import set_tags, tracked_run
from tasks.discovery import CollectionPath
from tasks.features import FeatureConfig
from tasks.representation import needs_lyrics
from tasks.tuning import (
    FinalModel,
    Objective,
    PrunerKind,
    SearchSettings,
    StudySummary,
    TunedAlgorithm,
    default_storage_url,
    default_study_name,
    display_url,
    retrain_best,
    run_study,
)


class TuneConfig(BaseModel):
    """Parameters of the tuning flow (rendered as a form in the Prefect dashboard)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: ModelName = Field(description="Which model of the zoo to tune.")
    data: CollectionPath = Field(description="A GTZAN-layout folder or a manifest (.csv/.parquet).")
    workdir: Path = Field(Path("workdir"), description="Work directory.")
    trials: int = Field(
        20, ge=1, description="Run until the study holds this many complete + pruned trials."
    )
    objective: Objective = Field(
        "silhouette",
        description="silhouette (unsupervised) of held-out tracks; nmi/ari compare with genre "
        "labels and mark the study uses_labels=true.",
    )
    timeout_s: float | None = Field(
        None, gt=0, description="Start no new trial after this many seconds (this session)."
    )
    storage: str | None = Field(
        None, description="Optuna storage (SQLAlchemy URL); empty: sqlite:///<workdir>/optuna.db."
    )
    study_name: str | None = Field(
        None, description="Empty: <model>-<data fingerprint>[-<objective> when not silhouette]."
    )
    epochs: int = Field(15, ge=1, description="Maximum epochs per trial.")
    final_epochs: int | None = Field(
        None,
        ge=1,
        description="Epochs of the best configuration's retrain; empty: the trials' epochs, so "
        "the retrain reproduces what the study measured (longer training changes the score).",
    )
    jobs: int = Field(1, ge=1, description="Trials in parallel (threads of this process).")
    seed: int = Field(0, description="Seed of weights, held-out split, sampler and clustering.")
    pruner: PrunerKind = Field("median", description="median, hyperband or none.")
    pruner_startup_trials: int = Field(
        5, ge=0, description="Median pruner: trials completed before any is pruned."
    )
    pruner_warmup_epochs: int = Field(
        3, ge=0, description="Epochs before a trial may be pruned (hyperband: minimum resource)."
    )
    report_every: int | None = Field(
        None,
        ge=1,
        description="Epochs between intermediate values; empty: 1 (vector models), 3 (conv).",
    )
    validation_fraction: float = Field(
        0.2, ge=0.05, lt=0.5, description="Held-out tracks the objective is measured on."
    )
    n_clusters: int | None = Field(
        None,
        ge=2,
        description="Fixed cluster count; empty: number of genres for nmi/ari, tuned in "
        "n_clusters_range for silhouette.",
    )
    n_clusters_range: tuple[int, int] = Field((2, 12), description="Tuned n_clusters range.")
    cluster_algorithms: tuple[TunedAlgorithm, ...] = Field(
        ("kmeans", "gmm", "agglomerative"), min_length=1, description="Algorithms searched."
    )
    condition: Literal["language", "genre"] = Field(
        "language", description="CVAE condition (genre uses labels; the study is marked so)."
    )
    features: FeatureConfig = Field(default_factory=FeatureConfig)
    device: str = Field("auto", description="'auto' (GPU when present), 'cpu' or 'cuda'.")
    retrain_best: bool = Field(
        True,
        description="Retrain the best configuration and register it.",
    )
    evaluate: bool = Field(
        True,
        description="Evaluate the retrained model with the rest of the work dir; it becomes "
        "champion only if it beats the current one on the same objective and data.",
    )
    stale_trial_seconds: int = Field(
        60,
        ge=1,
        description="A RUNNING trial silent this long (heartbeat) is from a dead process.",
    )
    max_consecutive_failures: int = Field(
        5, ge=1, description="Stop the study after this many failed trials in a row."
    )
    experiment: str = Field("tuning", description="MLflow experiment.")
    parent_run_id: str | None = Field(None, description="MLflow parent run (pipeline).")

    def search_settings(self) -> SearchSettings:
        return SearchSettings(
            model=self.model,
            objective=self.objective,
            epochs=self.epochs,
            seed=self.seed,
            validation_fraction=self.validation_fraction,
            condition=self.condition,
            n_clusters=self.n_clusters,
            n_clusters_range=self.n_clusters_range,
            cluster_algorithms=self.cluster_algorithms,
            report_every=self.report_every,
            device=self.device,
        )


class TuneResult(BaseModel):
    """What a tuning session did and where its products are."""

    run_id: str = Field(description="MLflow run of this session of the study.")
    study: StudySummary
    final: FinalModel | None = Field(description="The best configuration retrained, if asked.")
    dashboard_command: str
    wall_seconds: float


@flow(name="tune", flow_run_name="tune {config.model} on {config.data.name}", log_prints=True)
def tune_flow(config: TuneConfig) -> TuneResult:
    logger = get_run_logger()
    started = time.perf_counter()
    search = config.search_settings()
    ingested = ingest_flow(
        IngestConfig(data=config.data, workdir=config.workdir, features=config.features)
    )
    if needs_lyrics(config.model, config.condition):
        from flows.lyrics import LyricsConfig, lyrics_flow

        lyrics_flow(LyricsConfig(data=config.data, workdir=config.workdir))
    workspace = ingested.workspace
    storage_url = config.storage or default_storage_url(workspace)
    study_name = config.study_name or default_study_name(
        config.model, ingested.fingerprint, config.objective
    )
    dashboard = f"optuna-dashboard {display_url(storage_url)}"
    tags = {
        "stage": "tune",
        "optuna_study": study_name,
        "optuna_storage": display_url(storage_url),
        "method": config.model,
        "fingerprint": ingested.fingerprint,
        "objective": f"validation_{config.objective}",
        "uses_labels": str(search.uses_labels).lower(),
    }
    with tracked_run(
        config.experiment, f"tune {study_name}", parent_run_id=config.parent_run_id, tags=tags
    ) as run_id:
        summary = run_study(
            workspace=workspace,
            feature_key=ingested.feature_key,
            fingerprint=ingested.fingerprint,
            search=search,
            storage_url=storage_url,
            study_name=study_name,
            trials=config.trials,
            jobs=config.jobs,
            timeout_s=config.timeout_s,
            pruner=config.pruner,
            pruner_startup_trials=config.pruner_startup_trials,
            pruner_warmup_epochs=config.pruner_warmup_epochs,
            stale_after_s=config.stale_trial_seconds,
            max_consecutive_failures=config.max_consecutive_failures,
            experiment=config.experiment,
            parent_run_id=run_id,
        )
        logger.info(
            "study %s: best validation_%s=%s (trial %s); %d complete, %d pruned, %d failed; "
            "%d trials this session",
            study_name,
            config.objective,
            f"{summary.best_value:.4f}" if summary.best_value is not None else "n/a",
            summary.best_trial,
            summary.n_complete,
            summary.n_pruned,
            summary.n_failed,
            len(summary.trials_this_session),
        )
        final = None
        if config.retrain_best and summary.best_trial is not None:
            final = retrain_best(
                workspace=workspace,
                feature_key=ingested.feature_key,
                fingerprint=ingested.fingerprint,
                search=search,
                summary=summary,
                study_name=study_name,
                epochs=config.final_epochs or config.epochs,
                experiment=config.experiment,
                parent_run_id=run_id,
            )
            set_tags(run_id, {"final_run": final.output.run_id})
    if config.evaluate and final is not None:
        _evaluate(config, run_id, logger)
    logger.info("inspect the study with: %s", dashboard)
    return TuneResult(
        run_id=run_id,
        study=summary,
        final=final,
        dashboard_command=dashboard,
        wall_seconds=time.perf_counter() - started,
    )


def _evaluate(config: TuneConfig, run_id: str, logger: Any) -> None:
    """Compare the retrained model with the rest of the work dir in the evaluation flow."""
    try:
        from flows.evaluate import EvaluateConfig, evaluate_flow
    except ImportError as error:
        logger.warning("evaluation flow not available (%s); skipped", error)
        return
    evaluate_flow(
        EvaluateConfig(
            data=config.data,
            workdir=config.workdir,
            parent_run_id=run_id,
            # Hyperparameters chosen against labels must not crown an "unsupervised" champion.
            promote_champion=config.objective == "silhouette",
        )
    )
