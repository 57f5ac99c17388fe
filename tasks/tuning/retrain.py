"""The best configuration of a study retrained, registered and scored like the trials.

The retrain keeps the trials' held-out split: the champion comparison needs the objective
measured on tracks the model did not train on, exactly as the study measured it. Whether the
retrained model becomes `vaemusic@champion` is decided by the evaluation flow (same objective as
the current champion, complete package with reference latents and feature settings), not here.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field

from registry.tracking import log_artifact, log_metrics, log_params, set_tags
from tasks.evaluation.assignment import fitted_to_json
from tasks.training.representation import TrainOutput, read_latents, train_representation
from tasks.tuning.errors import TuningError
from tasks.tuning.objective import HeldOutSplit, ObjectiveScore, score_for_search
from tasks.tuning.space import ClusteringChoice, SearchSettings, settings_from_params
from tasks.tuning.storage import StudyTarget, study_tag
from tasks.tuning.study import session_logger
from tasks.tuning.summary import StudySummary

# Left in FinalModel for readers of earlier results: the champion is chosen by the evaluation flow.
CHAMPION_LEFT_TO_EVALUATION = "left to the evaluation flow"


class FinalModel(BaseModel):
    """The best configuration retrained and registered (`vaemusic-<model>`)."""

    output: TrainOutput
    objective: str = Field(description="Name of the objective, e.g. validation_silhouette.")
    value: float = Field(description="The objective on the held-out tracks of the study.")
    clustering: ClusteringChoice
    champion_version: str | None = Field(
        None, description="Always empty: the evaluation flow decides the champion."
    )
    champion_reason: str = Field(
        CHAMPION_LEFT_TO_EVALUATION, description="Why no champion was decided here."
    )


@task(cache_policy=NO_CACHE, task_run_name="retrain best of {target.name}")
def retrain_best(
    *,
    target: StudyTarget,
    search: SearchSettings,
    summary: StudySummary,
    epochs: int | None,
    experiment: str,
    parent_run_id: str,
) -> FinalModel | None:
    """Retrain the best trial's configuration for `epochs` epochs (None: the trials' epochs),
    register it (`vaemusic-<model>`), score it like the trials, and tag the session's run
    `parent_run_id` with the retrained run (`final_run`).

    Returns None, with a warning, when the study has no completed trial to retrain. Raises
    TuningError when the work dir's tracks changed since the study measured them.
    """
    if summary.best_trial is None:
        session_logger().warning("study %s has no completed trial; nothing to retrain", target.name)
        return None
    split = HeldOutSplit.read(
        target.workspace, validation_fraction=search.validation_fraction, seed=search.seed
    )
    settings = settings_from_params(
        summary.best_params,
        search,
        n_clusters=split.fixed_n_clusters(search),
        features_label=f"tuned-{study_tag(target.name)}",
        epochs=epochs,
    )
    output = train_representation.fn(
        settings.spec,
        target.workspace,
        target.feature_key,
        target.fingerprint,
        experiment=experiment,
        parent_run_id=parent_run_id,
        register=True,
    )
    latents = read_latents(output.latents)
    if latents.track_ids != split.track_ids:
        raise TuningError(
            f"the tracks of {output.latents} are not those of the study; re-run the ingest"
        )
    score = score_for_search(latents.mu, split, settings.clustering, search)
    _log_final_run(output, score, settings.clustering, search, target, summary.best_trial)
    set_tags(parent_run_id, {"final_run": output.run_id})
    return FinalModel(
        output=output,
        objective=search.metric_name,
        value=score.value,
        clustering=settings.clustering,
    )


def _log_final_run(
    output: TrainOutput,
    score: ObjectiveScore,
    clustering: ClusteringChoice,
    search: SearchSettings,
    target: StudyTarget,
    best_trial: int,
) -> None:
    """The held-out score, the fitted clustering (`clustering.json` in the model folder) and the
    study's tags, on the retrained model's run."""
    clustering_file = output.model_dir / "clustering.json"
    clustering_file.write_text(fitted_to_json(score.fitted))
    log_metrics(
        output.run_id,
        {search.metric_name: score.value, "n_clusters_found": score.n_clusters_found},
    )
    log_params(output.run_id, {"clustering": clustering.model_dump()})
    set_tags(
        output.run_id,
        {
            "stage": "tune-final",
            "optuna_study": target.name,
            "optuna_best_trial": best_trial,
            "uses_labels": str(search.uses_labels).lower(),
            "objective": search.metric_name,
        },
    )
    log_artifact(output.run_id, clustering_file)
