"""What an evaluation records in MLflow: its settings, one child run per comparison row, the
reports and the figures, which row would be the champion, the clustering quality of each trained
model's latents (on its training run), and the headline of a pipeline run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from registry.runs import run_status
from registry.tracking import (
    log_artifact,
    log_dict,
    log_metrics,
    log_params,
    set_description,
    set_tags,
    tracked_run,
)
from tasks.core.workspace import Workspace
from tasks.evaluation.champion import ChampionCandidate
from tasks.evaluation.metrics import EXTERNAL_METRICS, INTERNAL_METRICS, LANGUAGE_METRICS
from tasks.evaluation.representations import Representation

EXPERIMENT = "evaluation"
# Logged under the same names in every child run, so `mlflow ui` charts them side by side.
METRIC_COLUMNS = (
    *INTERNAL_METRICS,
    *EXTERNAL_METRICS,
    *LANGUAGE_METRICS,
    "n_clusters",
    "noise_fraction",
)
# The algorithm whose scores a training run carries: the one every representation gets, with a
# fixed k, so the training experiment can be sorted by it.
LATENT_QUALITY_ALGORITHM = "kmeans"
# The parent run of a pipeline shows these of the champion's row as `best_<metric>`.
HEADLINE_METRICS = ("nmi", "silhouette")


def _row_metrics(row: Mapping[str, Any]) -> dict[str, float]:
    """Every defined metric of a comparison row and its spread over seeds, and the rank."""
    keys = [key for column in METRIC_COLUMNS for key in (column, f"{column}_std")] + ["rank"]
    return {key: row[key] for key in keys if row.get(key) is not None}


def _row_params(row: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """A row's settings as params (what MLflow's compare view and parallel coordinates plot):
    which space, which algorithm, the k asked for ('auto' = chosen by a criterion), the
    clustering seeds per training run and the runs pooled into the row."""
    return {
        "method": row["method"],
        "features": row["features"],
        "algorithm": row["algorithm"],
        "uses_labels": str(row["uses_labels"]).lower(),
        "k": settings.get("n_clusters") or "auto",
        "seeds": settings.get("seeds", ""),
        "n_seeds": row.get("n_seeds", ""),
        "ranking_metric": row.get("ranked_by", settings.get("ranking_metric", "")),
    }


def log_comparison_rows(
    table: pl.DataFrame,
    *,
    parent_run_id: str,
    fingerprint: str,
    settings: Mapping[str, Any] | None = None,
) -> None:
    """One child run of `parent_run_id` per comparison row: its identity as tags and params
    (`_row_params`, with the evaluation's `settings`), its metrics."""
    for row in table.iter_rows(named=True):
        with tracked_run(
            EXPERIMENT,
            f"{row['method']} [{row['features']}] {row['algorithm']}",
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
            log_params(child, _row_params(row, settings or {}))
            log_metrics(child, _row_metrics(row))


def log_evaluation(
    run_id: str,
    *,
    table: pl.DataFrame,
    settings: Mapping[str, Any],
    reports: Mapping[str, Path],
    plots_dir: Path,
    fingerprint: str,
    candidate: ChampionCandidate | None,
) -> None:
    """Log one evaluation to its run: `settings` as params, the rows as child runs, the reports
    (artifact folder `report`) and figures (`plots`), and the champion candidate as `best_*`
    tags (empty when no trained model was ranked)."""
    log_params(run_id, settings)
    log_comparison_rows(table, parent_run_id=run_id, fingerprint=fingerprint, settings=settings)
    for path in reports.values():
        log_artifact(run_id, path, "report")
    log_artifact(run_id, plots_dir, "plots")
    best = candidate.tags if candidate else {}
    set_tags(
        run_id, {f"best_{key}": best.get(key, "") for key in ("method", "features", "algorithm")}
    )


def latent_quality(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """The mean over clustering seeds of every metric of one representation's k-means rows, as
    `kmeans_<metric>` (`kmeans_nmi`, `kmeans_silhouette`, ...); empty without k-means rows."""
    chosen = [row for row in rows if row.get("algorithm") == LATENT_QUALITY_ALGORITHM]
    quality = {}
    for metric in METRIC_COLUMNS:
        values = [float(row[metric]) for row in chosen if _finite(row.get(metric))]
        if values:
            quality[f"{LATENT_QUALITY_ALGORITHM}_{metric}"] = sum(values) / len(values)
    return quality


def log_latent_quality(
    representations: Sequence[Representation],
    per_representation: Sequence[Sequence[Mapping[str, Any]]],
) -> int:
    """Log `latent_quality` to the training run of each trained representation, so the
    training runs can be sorted by how well their latents cluster.

    Representations without a run (baselines), or whose run is not in this tracking store (a
    model folder trained against another store), are left out.

    Args:
        representations: what was evaluated; `per_representation[i]` are the unpooled rows
            (one per algorithm and clustering seed) of the i-th, as `evaluate_representations`
            returns them.

    Returns:
        The number of training runs that got metrics.
    """
    logged = 0
    for representation, rows in zip(representations, per_representation, strict=True):
        quality = latent_quality(rows)
        if (
            representation.run_id is None
            or not quality
            or run_status(representation.run_id) is None
        ):
            continue
        log_metrics(representation.run_id, quality)
        logged += 1
    return logged


def log_pipeline_outcome(
    run_id: str,
    *,
    comparison: Path,
    best: Mapping[str, Any],
    reports: Mapping[str, Path],
    workspace: Workspace,
    training_runs: Mapping[str, str],
) -> None:
    """The headline of a pipeline run on its parent run `run_id`.

    Logs `best_nmi` and `best_silhouette` of the champion's comparison row (the top-ranked row
    when no trained model was ranked) and `n_methods`, tags `best` and `report` (the path of the
    Markdown report), describes the run in Markdown, logs the report folder (without the
    figures, which the evaluation run holds) as artifacts under `report/`, and `training_runs.json`
    (model folder name -> training run id; a model served from the cache was trained, and
    nested, under an earlier pipeline run).

    Args:
        comparison: the comparison table (CSV) the evaluation wrote.
        best: the evaluation's `best` (method, features, algorithm; None values when no trained
            model was ranked).
        reports: the report files by format (`markdown` is the one linked).
    """
    table = pl.read_csv(comparison)
    row = headline_row(table, best)
    metrics: dict[str, float] = {"n_methods": float(table["method"].n_unique())}
    if row is not None:
        metrics |= {
            f"best_{metric}": row[metric]
            for metric in (*HEADLINE_METRICS, row.get("ranked_by") or "")
            if _finite(row.get(metric))
        }
    log_metrics(run_id, metrics)
    report = reports.get("markdown") or comparison
    label = f"{row['method']} [{row['features']}] {row['algorithm']}" if row is not None else "none"
    set_tags(run_id, {"best": label, "report": str(report)})
    set_description(run_id, _headline_markdown(label, metrics, report, workspace))
    for path in sorted(workspace.reports.iterdir()):
        if path != workspace.plots:
            log_artifact(run_id, path, "report" if path.is_file() else f"report/{path.name}")
    log_dict(run_id, dict(training_runs), "training_runs.json")


def headline_row(table: pl.DataFrame, best: Mapping[str, Any]) -> dict[str, Any] | None:
    """The comparison row of the champion candidate `best`; without one, the top-ranked row;
    None for an empty table."""
    if best.get("method") is not None:
        champion = table.filter(
            (pl.col("method") == best["method"])
            & (pl.col("features") == best["features"])
            & (pl.col("algorithm") == best["algorithm"])
            & ~pl.col("uses_labels")
        )
        if champion.height:
            return champion.row(0, named=True)
    if "rank" in table.columns:
        table = table.sort("rank", nulls_last=True, maintain_order=True)
    return table.row(0, named=True) if table.height else None


def _headline_markdown(
    label: str, metrics: Mapping[str, float], report: Path, workspace: Workspace
) -> str:
    scores = ", ".join(
        f"{name.removeprefix('best_')} {value:.3f}"
        for name, value in metrics.items()
        if name.startswith("best_")
    )
    lines = [
        f"**Champion:** {label}" + (f" ({scores})" if scores else ""),
        f"**Methods compared:** {int(metrics['n_methods'])}",
        f"**Report:** `{report}` (also under this run's artifacts, `report/`)",
    ]
    for title, path in (
        ("Clusters, by song", workspace.clusters_summary),
        ("Listening map", workspace.listening_map),
    ):
        if path.exists():
            lines.append(f"**{title}:** `{path}`")
    return "\n\n".join(lines)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
