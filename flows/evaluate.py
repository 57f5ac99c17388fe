"""Evaluation flow: baselines + trained representations -> clustering x seeds -> metrics -> report,
plots, MLflow (one child run per row) -> the best unsupervised model becomes `vaemusic@champion`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
from prefect import flow, get_run_logger, unmapped
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel, ConfigDict, Field

from models.zoo import model_class
from registry.champion import CHAMPION_MODEL, champion_objective, promote
from registry.tracking import (
    log_artifact,
    log_metrics,
    log_params,
    set_tags,
    tracked_run,
    tracking_uri,
)
from tasks.clustering import ALGORITHMS, cluster, fitted_to_json
from tasks.evaluation import (
    Labels,
    Representation,
    baseline_representations,
    evaluate_representation,
    file_sha,
    plot_representation,
    pool_rows,
    read_labels,
)
from tasks.ingest import usable_tracks
from tasks.metrics import EXTERNAL_METRICS, INTERNAL_METRICS
from tasks.report import (
    LANGUAGE_METRICS,
    MODEL_METHODS,
    build_comparison_table,
    console_summary,
    default_ranking_metric,
    rank,
    write_reports,
)
from tasks.representation import load_trained_model, read_latents
from tasks.workspace import Workspace

Algorithm = Literal["kmeans", "agglomerative", "dbscan", "gmm"]
# Logged under the same names in every child run, so `mlflow ui` charts them side by side.
METRIC_COLUMNS = (
    *INTERNAL_METRICS,
    *EXTERNAL_METRICS,
    *LANGUAGE_METRICS,
    "n_clusters",
    "noise_fraction",
)


class EvaluateConfig(BaseModel):
    """Parameters of the evaluation flow (rendered as a form in the Prefect dashboard)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data: Path | None = Field(
        None, description="The collection; needed only when the work dir was never ingested."
    )
    workdir: Path = Field(Path("workdir"), description="Work directory.")
    algorithms: list[Algorithm] = Field(default_factory=lambda: list(ALGORITHMS))
    n_clusters: int | None = Field(
        None,
        ge=2,
        description="Clusters; empty = number of genres when known, else chosen by "
        "silhouette (BIC for GMM).",
    )
    seeds: int = Field(3, ge=1, le=20, description="Clustering seeds per configuration.")
    maps: list[Literal["umap", "tsne"]] = Field(default_factory=lambda: ["umap", "tsne"])
    representations: list[Representation] = Field(
        default_factory=list,
        description="What to compare; empty = baselines + every model trained in the work dir.",
    )
    ranking_metric: str | None = Field(None, description="Empty: nmi with labels, else silhouette.")
    promote_champion: bool = Field(
        True, description=f"Register the best unsupervised model as {CHAMPION_MODEL}@champion."
    )
    parent_run_id: str | None = Field(None, description="MLflow parent run (pipeline).")


class EvaluateResult(BaseModel):
    run_id: str
    comparison: Path
    reports: dict[str, Path]
    ranking_metric: str
    best: dict[str, str | float | None]
    champion_version: str | None
    summary: str


def trained_representations(workspace: Workspace) -> list[Representation]:
    """Every model trained in the work dir (folders with model.json and latents.parquet)."""
    found = []
    for description_path in sorted((workspace.root / "models").glob("*/model.json")):
        latents = description_path.parent / "latents.parquet"
        if not latents.exists():
            continue
        description = json.loads(description_path.read_text())
        found.append(
            Representation(
                method=description["method"],
                features=description["features"],
                latents=latents,
                latents_sha=file_sha(latents),
                uses_labels=description["uses_labels"],
                run_id=description.get("run_id"),
                model_dir=description_path.parent,
                standardize=not model_class(description["model"]).latent_units_comparable,
            )
        )
    return found


def _log_rows(table: pl.DataFrame, parent_run_id: str, fingerprint: str) -> None:
    """One child run per comparison row, with the same metric names in every child."""
    for row in table.iter_rows(named=True):
        name = f"{row['method']} [{row['features']}] {row['algorithm']}"
        with tracked_run(
            "evaluation",
            name,
            parent_run_id=parent_run_id,
            tags={
                "method": row["method"],
                "features": row["features"],
                "algorithm": row["algorithm"],
                "uses_labels": str(row["uses_labels"]).lower(),
                "fingerprint": fingerprint,
                "stage": "evaluate",
            },
        ) as child:
            metrics = {}
            for column in METRIC_COLUMNS:
                for key in (column, f"{column}_std"):
                    if row.get(key) is not None:
                        metrics[key] = row[key]
            if row.get("rank") is not None:
                metrics["rank"] = row["rank"]
            log_metrics(child, metrics)


def _champion_files(
    workspace: Workspace,
    best: Representation,
    algorithm: str,
    n_clusters: int | None,
    labels: Labels,
) -> list[Path]:
    """Fitted clustering, reference latents and feature settings that travel with the model."""
    folder = workspace.root / "champion"
    folder.mkdir(parents=True, exist_ok=True)
    latents = read_latents(best.latents)
    fitted = cluster(
        latents.mu,
        algorithm=algorithm,
        n_clusters=n_clusters,
        seed=0,
        standardize_input=best.standardize,
    )
    (folder / "clustering.json").write_text(fitted_to_json(fitted.fitted))
    index = {t: i for i, t in enumerate(labels.track_ids)}
    pl.DataFrame(
        {
            "track_id": latents.track_ids,
            "cluster": fitted.labels.tolist(),
            "genre": [labels.genre[index[t]] if t in index else None for t in latents.track_ids],
            "language": [
                labels.language[index[t]] if t in index else None for t in latents.track_ids
            ],
            "mu": latents.mu.tolist(),
        }
    ).write_parquet(folder / "reference.parquet")
    description = json.loads((best.model_dir / "model.json").read_text())
    features = workspace.feature_store(description["feature_key"]) / "feature_config.json"
    (folder / "feature_config.json").write_text(features.read_text())
    (folder / "model.json").write_text(json.dumps(description, indent=2))
    return [
        folder / n
        for n in ("clustering.json", "reference.parquet", "feature_config.json", "model.json")
    ]


def _overview_plots(
    table: pl.DataFrame, representations: list[Representation], plots_dir: Path
) -> list[Path]:
    from tasks import plots

    paths = [plots.methods_metrics_heatmap(table, plots_dir / "methods_metrics_heatmap.png")]
    for metric in ("nmi", "silhouette", "ari", "nmi_language"):
        if metric in table.columns and table[metric].drop_nulls().len():
            paths.append(plots.metric_bars(table, metric, plots_dir / f"bars_{metric}.png"))
    if any(plots.beta_of_features(f) is not None for f in table["features"].to_list()):
        paths.append(plots.beta_sweep_plot(table, plots_dir / "beta_sweep.png"))
    histories = {}
    for rep in representations:
        history = rep.model_dir / "history.json" if rep.model_dir else None
        if history is not None and history.exists():
            values = json.loads(history.read_text())
            histories[f"{rep.method} [{rep.features}]"] = {
                k: v for k, v in values.items() if k in ("train_loss", "val_loss")
            }
    if histories:
        paths.append(plots.training_curves(histories, plots_dir / "training_curves.png"))
    return paths


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
        from flows.ingest import IngestConfig, ingest_flow

        if config.data is None:
            raise ValueError(
                f"{workspace.root} holds no ingested collection: give `data` (a folder or a "
                "manifest) or run the ingest first"
            )
        ingest_flow(IngestConfig(data=config.data, workdir=config.workdir))
    fingerprint_info = json.loads(workspace.fingerprint_file.read_text())
    fingerprint, feature_key = fingerprint_info["fingerprint"], fingerprint_info["feature_key"]
    labels = read_labels(workspace)
    n_clusters = config.n_clusters or (labels.n_genres if labels.n_genres >= 2 else None)

    representations = list(config.representations) or [
        *baseline_representations(workspace, feature_key, fingerprint),
        *trained_representations(workspace),
    ]
    logger.info(
        "evaluating %d representations x %d algorithms x %d seeds, k=%s",
        len(representations),
        len(config.algorithms),
        config.seeds,
        n_clusters or "chosen by criterion",
    )
    row_groups = evaluate_representation.map(
        representations,
        unmapped(labels),
        unmapped(list(config.algorithms)),
        unmapped(n_clusters),
        unmapped(config.seeds),
    )
    per_representation = row_groups.result()
    table = rank(
        build_comparison_table(pool_rows(per_representation)),
        by=config.ranking_metric,
    )
    ranking_metric = config.ranking_metric or default_ranking_metric(table)
    reports = write_reports(table, workspace.reports)

    best_rep_index = (
        int(np.argmax([(r.method in MODEL_METHODS and not r.uses_labels) for r in representations]))
        if representations
        else 0
    )
    per_rep_plots = plot_representation.map(
        representations,
        unmapped(labels),
        unmapped(n_clusters),
        unmapped(workspace.plots),
        unmapped(list(config.maps)),
        [i == best_rep_index for i in range(len(representations))],
    )
    plot_paths = [Path(p) for group in per_rep_plots.result() for p in group]
    plot_paths += _overview_plots(table, representations, workspace.plots)

    with tracked_run(
        "evaluation",
        f"evaluate {workspace.root.name}",
        parent_run_id=config.parent_run_id,
        tags={"fingerprint": fingerprint, "stage": "evaluate"},
    ) as run_id:
        log_params(
            run_id,
            {
                "algorithms": list(config.algorithms),
                "n_clusters": n_clusters,
                "seeds": config.seeds,
                "ranking_metric": ranking_metric,
                "n_representations": len(representations),
            },
        )
        _log_rows(table, run_id, fingerprint)
        for path in reports.values():
            log_artifact(run_id, path, "report")
        log_artifact(run_id, workspace.plots, "plots")

        champion_version = None
        candidates = table.filter(
            pl.col("rank").is_not_null()
            & pl.col("method").is_in(list(MODEL_METHODS))
            & (pl.col("algorithm") != "mixture")
        ).sort("rank")
        best = candidates.row(0, named=True) if candidates.height else {}
        if best and config.promote_champion:
            champion_version = _maybe_promote(
                run_id,
                workspace,
                representations,
                per_representation,
                best,
                ranking_metric,
                n_clusters,
                labels,
                fingerprint,
                logger,
            )
        set_tags(
            run_id,
            {
                "best_method": best.get("method", ""),
                "best_features": best.get("features", ""),
                "best_algorithm": best.get("algorithm", ""),
            },
        )

    summary = console_summary(table, workspace.reports, tracking_uri())
    logger.info("\n%s", summary)
    return EvaluateResult(
        run_id=run_id,
        comparison=reports["csv"],
        reports=reports,
        ranking_metric=ranking_metric,
        best={k: best.get(k) for k in ("method", "features", "algorithm", ranking_metric)},
        champion_version=champion_version,
        summary=summary,
    )


def _maybe_promote(
    run_id: str,
    workspace: Workspace,
    representations: list[Representation],
    per_representation: list[list[dict]],
    best: dict,
    metric: str,
    n_clusters: int | None,
    labels: Labels,
    fingerprint: str,
    logger,
) -> str | None:
    """Register the best unsupervised zoo model as champion unless the champion is as good on
    the same objective and data; a champion chosen on other data is replaced by this run's."""
    value = best.get(metric)
    if value is None:
        return None
    higher = metric != "davies_bouldin"
    current = champion_objective()
    if current is not None and current[0] == metric and current[2] == fingerprint:
        better = value > current[1] if higher else value < current[1]
        if not better:
            logger.info("champion kept: %s=%.4f is not better than %.4f", metric, value, current[1])
            return None

    # The row pools every training seed; the model that ships is the seed that scored best.
    def seed_score(index: int) -> float:
        values = [
            row[metric]
            for row in per_representation[index]
            if row["algorithm"] == best["algorithm"] and np.isfinite(row.get(metric, np.nan))
        ]
        mean = float(np.mean(values)) if values else -np.inf
        return mean if higher else -mean

    rep = representations[
        max(
            (
                i
                for i, r in enumerate(representations)
                if r.method == best["method"] and r.features == best["features"]
            ),
            key=seed_score,
        )
    ]
    files = _champion_files(workspace, rep, best["algorithm"], n_clusters, labels)
    from models.serving import LatentEncoder
    from tasks.training_data import gather_crops

    model, description = load_trained_model(rep.model_dir)
    tracks = usable_tracks(workspace).head(2)
    arrays = gather_crops(
        workspace,
        description["feature_key"],
        tracks["track_id"].to_list(),
        tracks["sha256"].to_list(),
        description["input_kind"],
    )
    example = np.array(arrays.x[:2], dtype=np.float32)
    version = promote(
        run_id=run_id,
        encoder=LatentEncoder(model, default_condition=description["default_condition"]),
        input_example=example,
        files=files,
        objective=metric,
        value=float(value),
        fingerprint=fingerprint,
        tags={
            "method": best["method"],
            "features": best["features"],
            "algorithm": best["algorithm"],
        },
    )
    logger.info(
        "%s@champion is now version %s: %s [%s] + %s (%s=%.4f)",
        CHAMPION_MODEL,
        version,
        best["method"],
        best["features"],
        best["algorithm"],
        metric,
        value,
    )
    return version
