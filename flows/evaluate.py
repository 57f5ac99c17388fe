"""Evaluation flow, in the order of the stage diagram:

    representations (baselines + trained models) -> cluster x algorithms x seeds (mapped)
    -> comparison table, ranked -> reports -> the champion candidate's clustering, fitted once
    -> figures (the candidate's in that clustering's numbering) -> MLflow (one child run per row)
    -> the best unsupervised model becomes `vaemusic@champion` if it beats today's champion
    -> the champion's clusters for people (clusters.csv, playlists, clusters.md, the listening
       map), written after that decision so that they describe the model `predict` uses.

The decisions live in tasks: `tasks.evaluation.champion` chooses the champion and the model
whose interactive map is drawn, `tasks.evaluation.people_files` which model the people's files
describe; `registry.champion` stores the champion.
"""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel, ConfigDict, Field

from flows.ingest import ingest_unless_ingested
from registry.champion import CHAMPION_MODEL
from registry.tracking import tracked_run, tracking_uri
from tasks.audio.ingest import IngestRecord
from tasks.core.artifacts import publish_evaluation_artifacts
from tasks.core.runners import runs_on_threads
from tasks.core.workspace import DEFAULT_WORKDIR, WorkdirPath, Workspace
from tasks.evaluation.champion import (
    ChampionCandidate,
    choose_champion,
    map_representation,
    promote_champion,
)
from tasks.evaluation.clustering import ALGORITHMS, Algorithm, check_n_clusters
from tasks.evaluation.clusters import (
    ChampionClustering,
    clusters_console_lines,
    fit_champion_clustering,
)
from tasks.evaluation.figures import draw_evaluation_figures
from tasks.evaluation.metrics import RankedMetric
from tasks.evaluation.people_files import ChampionClusters, write_champion_clusters
from tasks.evaluation.plots import MAP_METHODS, MapMethod
from tasks.evaluation.report import build_comparison_table, console_summary, rank, write_reports
from tasks.evaluation.representations import (
    Labels,
    Representation,
    baseline_representations,
    evaluate_representations,
    pool_rows,
    read_labels,
    trained_representations,
)
from tasks.evaluation.tracking import EXPERIMENT, log_evaluation, log_latent_quality
from tasks.training.lanes import open_lanes


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
    ingest_unless_ingested(config.data, config.workdir)
    workspace = Workspace.open(config.workdir)
    ingested = IngestRecord.read(workspace)
    labels = read_labels(workspace)
    n_clusters = config.n_clusters or labels.default_n_clusters
    _check_n_clusters_fits(config, n_clusters, labels)

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
    clustering = _candidate_clustering(candidate, n_clusters, labels=labels, workspace=workspace)
    # Figures are drawn in worker lanes on this process's threads (the pipeline's, when it
    # opened them); a cluster's workers draw on their own.
    with open_lanes(None if runs_on_threads() else 1):
        draw_evaluation_figures(
            table,
            representations,
            labels=labels,
            n_clusters=n_clusters,
            workspace=workspace,
            methods_2d=config.maps,
            interactive_for=map_representation(table, representations, per_representation),
            champion=clustering,
        )

    run_id, champion_version = _log_and_promote(
        config,
        workspace=workspace,
        fingerprint=ingested.fingerprint,
        table=table,
        reports=reports,
        representations=representations,
        per_representation=per_representation,
        candidate=candidate,
        clustering=clustering,
        n_clusters=n_clusters,
    )

    # After the promotion: the people's files describe whichever model is the champion now.
    people = write_champion_clusters(
        clustering,
        promoted=champion_version is not None,
        fingerprint=ingested.fingerprint,
        workspace=workspace,
        map_method=config.maps[0] if config.maps else None,
    )
    summary = _console_summary(table, workspace, people)
    logger.info("\n%s", summary)
    publish_evaluation_artifacts(
        workspace=workspace,
        comparison=reports["csv"],
        reports=reports,
        run_id=run_id,
        champion_version=champion_version,
        tracking_uri=tracking_uri(),
    )
    return EvaluateResult(
        run_id=run_id,
        comparison=reports["csv"],
        reports=reports,
        ranking_metric=table["ranked_by"][0],
        best=_best(candidate, table["ranked_by"][0]),
        champion_version=champion_version,
        summary=summary,
    )


def _log_and_promote(
    config: EvaluateConfig,
    *,
    workspace: Workspace,
    fingerprint: str,
    table: pl.DataFrame,
    reports: dict[str, Path],
    representations: list[Representation],
    per_representation: list[list[dict]],
    candidate: ChampionCandidate | None,
    clustering: ChampionClustering | None,
    n_clusters: int | None,
) -> tuple[str, str | None]:
    """The evaluation's MLflow run (settings, one child run per row, the latents' quality on
    their training runs) and the champion's promotion under it; returns (run id, version)."""
    with tracked_run(
        EXPERIMENT,
        f"evaluate {workspace.root.name}",
        parent_run_id=config.parent_run_id,
        tags={"fingerprint": fingerprint, "stage": "evaluate"},
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
            fingerprint=fingerprint,
            candidate=candidate,
        )
        log_latent_quality(representations, per_representation)
        champion_version = None
        if candidate is not None and clustering is not None and config.promote_champion:
            champion_version = promote_champion(
                candidate,
                clustering,
                run_id=run_id,
                workspace=workspace,
                fingerprint=fingerprint,
            )
    return run_id, champion_version


def _check_n_clusters_fits(config: EvaluateConfig, n_clusters: int | None, labels: Labels) -> None:
    """Before any task: a k the collection cannot hold fails once here, not in every clustering
    and plotting task (one traceback each). Also with DBSCAN alone: the figures use k."""
    name = "n_clusters" if config.n_clusters else "n_clusters (when not given: the genres)"
    check_n_clusters(n_clusters, len(labels.track_ids), name=name, points="usable tracks")


def _best(candidate: ChampionCandidate | None, metric: str) -> dict[str, str | float | None]:
    fields = ("method", "features", "algorithm")
    if candidate is None:
        return dict.fromkeys((*fields, metric))
    return {**{name: getattr(candidate, name) for name in fields}, metric: candidate.value}


def _candidate_clustering(
    candidate: ChampionCandidate | None,
    n_clusters: int | None,
    *,
    labels: Labels,
    workspace: Workspace,
) -> ChampionClustering | None:
    """The candidate's clustering, fitted once (what ships if it is promoted); None without one."""
    if candidate is None:
        return None
    return fit_champion_clustering(
        candidate.representation,
        algorithm=candidate.algorithm,
        n_clusters=n_clusters,
        labels=labels,
        workspace=workspace,
    )


def _console_summary(table: pl.DataFrame, workspace: Workspace, people: ChampionClusters) -> str:
    """The ranking's console summary, which model the people's files describe, and where."""
    summary = console_summary(table, workspace.reports, tracking_uri())
    if people.clustering is None:
        return f"{summary}\n{people.origin}"
    where = clusters_console_lines(workspace, people.listening_map)
    return (
        f"{summary}\nchampion's clusters: {people.clustering.description}, from "
        f"{people.origin}\n{where}"
    )
