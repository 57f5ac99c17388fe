"""Evaluation flow, in the order of the stage diagram:

    representations (baselines + trained models) -> cluster x algorithms x seeds (mapped)
    -> comparison table, ranked -> reports -> figures -> MLflow (one child run per row)
    -> the best unsupervised model becomes `vaemusic@champion` if it beats today's champion.

The decisions live in tasks: `tasks.evaluation.champion` chooses the champion and the model
whose interactive map is drawn; `registry.champion` stores it.
"""

from __future__ import annotations

import os
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel, ConfigDict, Field

from registry.champion import CHAMPION_MODEL
from registry.tracking import tracked_run, tracking_uri
from tasks.audio.ingest import IngestRecord
from tasks.core.errors import UserInputError
from tasks.core.workspace import DEFAULT_WORKDIR, WorkdirPath, Workspace
from tasks.evaluation.champion import (
    ChampionCandidate,
    choose_champion,
    map_representation,
    promote_champion,
)
from tasks.evaluation.clustering import ALGORITHMS, Algorithm
from tasks.evaluation.figures import draw_evaluation_figures
from tasks.evaluation.metrics import RankedMetric
from tasks.evaluation.plots import MAP_METHODS, MapMethod
from tasks.evaluation.report import build_comparison_table, console_summary, rank, write_reports
from tasks.evaluation.representations import (
    Representation,
    baseline_representations,
    evaluate_representations,
    pool_rows,
    read_labels,
    trained_representations,
)
from tasks.evaluation.tracking import EXPERIMENT, log_evaluation


class EvaluateConfig(BaseModel):
    """Parameters of the evaluation flow (rendered as a form in the Prefect dashboard)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data: Path | None = Field(
        None, description="The collection; needed only when the work dir was never ingested."
    )
    workdir: WorkdirPath = DEFAULT_WORKDIR
    algorithms: list[Algorithm] = Field(
        default_factory=lambda: list(ALGORITHMS), description="Clustering algorithms compared."
    )
    n_clusters: int | None = Field(
        None,
        ge=2,
        description="Clusters; empty = number of genres when known, else chosen by "
        "silhouette (BIC for GMM).",
    )
    seeds: int = Field(3, ge=1, le=20, description="Clustering seeds per configuration.")
    maps: list[MapMethod] = Field(
        default_factory=lambda: list(MAP_METHODS), description="2-D maps drawn per method."
    )
    representations: list[Representation] = Field(
        default_factory=list,
        description="What to compare; empty = baselines + every model trained in the work dir.",
    )
    ranking_metric: RankedMetric | None = Field(
        None, description="Empty: nmi with labels, else silhouette."
    )
    promote_champion: bool = Field(
        True, description=f"Register the best unsupervised model as {CHAMPION_MODEL}@champion."
    )
    parent_run_id: str | None = Field(None, description="MLflow parent run (pipeline).")


class EvaluateResult(BaseModel):
    """What an evaluation produced; `best` is the champion candidate's row (method, features,
    algorithm and its ranking-metric value; all None when no trained model was ranked)."""

    run_id: str
    comparison: Path
    reports: dict[str, Path]
    ranking_metric: str
    best: dict[str, str | float | None]
    champion_version: str | None
    summary: str


@flow(
    name="evaluate",
    flow_run_name="evaluate {config.workdir.name}",
    log_prints=True,
    task_runner=ThreadPoolTaskRunner(max_workers=os.cpu_count() or 2),
)
def evaluate_flow(config: EvaluateConfig) -> EvaluateResult:
    logger = get_run_logger()
    workspace = Workspace.open(config.workdir)
    if not workspace.tracks_table.exists():
        _ingest_first(config)
    ingested = IngestRecord.read(workspace)
    labels = read_labels(workspace)
    n_clusters = config.n_clusters or labels.default_n_clusters

    representations = list(config.representations) or [
        *baseline_representations(workspace, ingested.feature_key, ingested.fingerprint),
        *trained_representations(workspace),
    ]
    per_representation = evaluate_representations(
        representations,
        labels=labels,
        algorithms=config.algorithms,
        n_clusters=n_clusters,
        seeds=config.seeds,
    )
    table = rank(build_comparison_table(pool_rows(per_representation)), by=config.ranking_metric)
    reports = write_reports(table, workspace.reports)
    candidate = choose_champion(table, representations, per_representation)
    draw_evaluation_figures(
        table,
        representations,
        labels=labels,
        n_clusters=n_clusters,
        workspace=workspace,
        methods_2d=config.maps,
        interactive_for=map_representation(table, representations, per_representation),
    )

    with tracked_run(
        EXPERIMENT,
        f"evaluate {workspace.root.name}",
        parent_run_id=config.parent_run_id,
        tags={"fingerprint": ingested.fingerprint, "stage": "evaluate"},
    ) as run_id:
        log_evaluation(
            run_id,
            table=table,
            settings={
                "algorithms": list(config.algorithms),
                "n_clusters": n_clusters,
                "seeds": config.seeds,
                "ranking_metric": table["ranked_by"][0],
                "n_representations": len(representations),
            },
            reports=reports,
            plots_dir=workspace.plots,
            fingerprint=ingested.fingerprint,
            candidate=candidate,
        )
        champion_version = None
        if candidate is not None and config.promote_champion:
            champion_version = promote_champion(
                candidate,
                run_id=run_id,
                workspace=workspace,
                n_clusters=n_clusters,
                labels=labels,
                fingerprint=ingested.fingerprint,
            )

    summary = console_summary(table, workspace.reports, tracking_uri())
    logger.info("\n%s", summary)
    return EvaluateResult(
        run_id=run_id,
        comparison=reports["csv"],
        reports=reports,
        ranking_metric=table["ranked_by"][0],
        best=_best(candidate, table["ranked_by"][0]),
        champion_version=champion_version,
        summary=summary,
    )


def _best(candidate: ChampionCandidate | None, metric: str) -> dict[str, str | float | None]:
    fields = ("method", "features", "algorithm")
    if candidate is None:
        return dict.fromkeys((*fields, metric))
    return {**{name: getattr(candidate, name) for name in fields}, metric: candidate.value}


def _ingest_first(config: EvaluateConfig) -> None:
    """Ingest `config.data` into a work dir that was never ingested."""
    from flows.ingest import IngestConfig, ingest_flow

    if config.data is None:
        raise UserInputError(
            f"{config.workdir} holds no ingested collection: give `data` (a folder or a "
            "manifest) or run the ingest first"
        )
    ingest_flow(IngestConfig(data=config.data, workdir=config.workdir))
