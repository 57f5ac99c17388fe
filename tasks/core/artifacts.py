"""Prefect artifacts: what a finished evaluation or pipeline shows on its run page in the dashboard.

Two per run: the ranking as a table artifact, and a markdown summary with the best row, the
champion, links to the MLflow runs and the report files. The evaluation's keys are stable
(`vaemusic-ranking`, `vaemusic-evaluation-summary`), so the dashboard's Artifacts page keeps one
history per key across runs. The pipeline runs the evaluation as a subflow, whose artifacts
belong to the subflow's run page; the pipeline publishes its own summary
(`vaemusic-pipeline-summary`) and a copy of the ranking without a key, so that its page shows
the outcome too without adding a second version to the ranking's history.

The functions read the files the evaluation wrote (paths, not tables in memory). Outside a flow or
task run they do nothing: the stages also run in scripts and tests without a Prefect API.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from uuid import UUID

import httpx
import polars as pl

from registry.tracking import experiment_of_run
from registry.ui import run_page
from tasks.core.progress import run_logger_or
from tasks.core.redaction import redact_credentials
from tasks.core.workspace import Workspace

RANKING_KEY = "vaemusic-ranking"
EVALUATION_SUMMARY_KEY = "vaemusic-evaluation-summary"
PIPELINE_SUMMARY_KEY = "vaemusic-pipeline-summary"
# Where `python -m flows serve` (and a bare `mlflow ui`) serve the UI of a local store.
LOCAL_MLFLOW_UI = "http://127.0.0.1:5000"
# Metrics shown in the ranking table besides the one it is ranked by, when they have values.
_SHOWN_METRICS = ("silhouette", "nmi", "ari", "nmi_language")
# Lines of the summary's "best rows" list.
_TOP_ROWS = 3

_log = logging.getLogger(__name__)


def mlflow_ui_url(tracking_uri: str) -> str | None:
    """The MLflow UI that shows the runs of `tracking_uri`: the tracking server itself for an
    http(s) URI, `LOCAL_MLFLOW_UI` for a local store (SQLite, folder), None for stores whose UI
    we cannot name (e.g. databricks)."""
    scheme = urlparse(tracking_uri).scheme
    if tracking_uri == "databricks" or scheme.startswith("databricks"):
        return None
    if scheme in ("http", "https"):
        return redact_credentials(tracking_uri).rstrip("/")
    if scheme in ("", "file", "sqlite", "postgresql", "mysql", "mssql") or "+" in scheme:
        return LOCAL_MLFLOW_UI
    return None


def mlflow_run_link(run_id: str, label: str, tracking_uri: str) -> str:
    """A markdown link to the run's page in the MLflow UI, on its model-training pages
    (`registry.ui`); the label and the id as code when the UI or the run is unknown."""
    ui = mlflow_ui_url(tracking_uri)
    if ui is None:
        return f"{label} (`{run_id}`)"
    try:
        experiment = experiment_of_run(run_id)
    except Exception:  # a run this store does not know: name it, do not fail the flow
        return f"{label} (`{run_id}`)"
    return f"[{label}]({run_page(ui, experiment, run_id)})"


def file_link(path: Path) -> str:
    """A markdown link to a local file, with its path shown (copyable where a browser refuses to
    open file:// links from a web page)."""
    path = path.resolve()
    return f"[{path.name}]({path.as_uri()}) (`{path}`)"


def ranking_rows(comparison_csv: Path) -> list[dict[str, Any]]:
    """The comparison table (`comparison.csv`) as table-artifact rows, best first.

    One dict per row: rank (`"3 (labels)"` for rows ranked among those that use labels, empty
    when unranked), method, features, algorithm, k, then the ranking metric and the other shown
    metrics as numbers rounded to 3 decimals (None where missing).
    """
    table = pl.read_csv(comparison_csv)
    by = table["ranked_by"][0]
    metrics = [by, *(m for m in _SHOWN_METRICS if m != by and _has_values(table, m))]
    rows = []
    for row in table.iter_rows(named=True):
        rank = row.get("rank_uses_labels") if row.get("uses_labels") else row.get("rank")
        label = "" if rank is None else f"{rank} (labels)" if row.get("uses_labels") else str(rank)
        rows.append(
            {
                "rank": label,
                "method": row["method"],
                "features": row["features"],
                "algorithm": row["algorithm"],
                "k": _rounded(row.get("n_clusters"), 1),
                **{metric: _rounded(row.get(metric), 3) for metric in metrics},
            }
        )
    return rows


def publish_evaluation_artifacts(
    *,
    workspace: Workspace,
    comparison: Path,
    reports: Mapping[str, Path],
    run_id: str,
    champion_version: str | None,
    tracking_uri: str,
) -> list[UUID]:
    """Publish the evaluation's ranking (table, key `vaemusic-ranking`) and its summary
    (markdown, key `vaemusic-evaluation-summary`) on the current flow run.

    Args:
        comparison: the ranked `comparison.csv`; reports: the files `write_reports` wrote;
        run_id: the evaluation's MLflow run; champion_version: the version promoted now, if any.

    Returns:
        The ids of the artifacts created; empty outside a Prefect run, or when the Prefect API
        refused them (logged as a warning: the evaluation itself succeeded).
    """
    rows = ranking_rows(comparison)
    summary = "\n".join(
        [
            f"# Evaluation of `{workspace.root.name}`",
            *_outcome_lines(rows, comparison, champion_version),
            "",
            "## MLflow",
            f"- {mlflow_run_link(run_id, 'Evaluation run', tracking_uri)}",
            "",
            *_report_lines(workspace, reports),
        ]
    )
    return _publish(
        rows,
        summary,
        table_key=RANKING_KEY,
        summary_key=EVALUATION_SUMMARY_KEY,
        what="Clustering comparison",
    )


def publish_pipeline_artifacts(
    *,
    workspace: Workspace,
    comparison: Path,
    reports: Mapping[str, Path],
    run_id: str,
    evaluation_run_id: str,
    training_runs: Mapping[str, str],
    champion_version: str | None,
    tracking_uri: str,
) -> list[UUID]:
    """Publish the pipeline's summary (markdown, key `vaemusic-pipeline-summary`) and the ranking
    (table, no key: the evaluation subflow published the keyed one) on the current flow run.

    Args:
        run_id: the pipeline's parent MLflow run; evaluation_run_id: its evaluation run;
        training_runs: MLflow run id by run name of every model trained, in training order.
        The others as in `publish_evaluation_artifacts`.

    Returns:
        As `publish_evaluation_artifacts`.
    """
    rows = ranking_rows(comparison)
    trained = [
        f"  - {mlflow_run_link(rid, name, tracking_uri)}" for name, rid in training_runs.items()
    ]
    summary = "\n".join(
        [
            f"# Pipeline on `{workspace.root.name}`",
            *_outcome_lines(rows, comparison, champion_version),
            "",
            "## MLflow",
            f"- {mlflow_run_link(run_id, 'Pipeline run', tracking_uri)} (parent of the others)",
            f"- {mlflow_run_link(evaluation_run_id, 'Evaluation run', tracking_uri)}",
            f"- Training runs ({len(training_runs)}):",
            *trained,
            "",
            *_report_lines(workspace, reports),
        ]
    )
    return _publish(
        rows, summary, table_key=None, summary_key=PIPELINE_SUMMARY_KEY, what="Pipeline"
    )


# --------------------------------------------------------------------------------- the pieces


def _has_values(table: pl.DataFrame, column: str) -> bool:
    return column in table.columns and table[column].drop_nulls().len() > 0


def _rounded(value: Any, decimals: int) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return round(float(value), decimals)


def _shown(value: float | None) -> str:
    return "n/a" if value is None else f"{value:g}"


def _outcome_lines(
    rows: list[dict[str, Any]], comparison: Path, champion_version: str | None
) -> list[str]:
    """What was ranked by what, the best unsupervised rows, and the champion."""
    by = pl.read_csv(comparison, n_rows=1)["ranked_by"][0]
    lines = ["", f"Ranked by **{by}**; best unsupervised clusterings:"]
    best = [row for row in rows if row["rank"] and "labels" not in row["rank"]][:_TOP_ROWS]
    lines += [
        f"- **{row['rank']}.** {row['method']} [{row['features']}] + {row['algorithm']}: "
        f"{by} {_shown(row[by])}, k={_shown(row['k'])}"
        for row in best
    ] or ["- (no unsupervised row has a value)"]
    lines.append("")
    if champion_version is None:
        lines.append("The registered champion did not change.")
    else:
        lines.append(f"New champion: registered model version **{champion_version}**.")
    return lines


def _report_lines(workspace: Workspace, reports: Mapping[str, Path]) -> list[str]:
    """Links to the report files that exist: comparison tables, clusters, playlists, map, plots."""
    files = [*reports.values(), workspace.clusters_table, workspace.clusters_summary]
    files.append(workspace.listening_map)
    lines = ["## Reports", *(f"- {file_link(path)}" for path in files if path.is_file())]
    playlists = sorted(workspace.reports.glob("playlists/*.m3u8"))
    if playlists:
        lines.append(f"- {len(playlists)} playlists in {file_link(playlists[0].parent)}")
    if any(workspace.plots.iterdir()):
        lines.append(f"- figures in {file_link(workspace.plots)}")
    return lines


def _publish(
    rows: list[dict[str, Any]],
    summary: str,
    *,
    table_key: str | None,
    summary_key: str,
    what: str,
) -> list[UUID]:
    from prefect.artifacts import create_markdown_artifact, create_table_artifact
    from prefect.context import FlowRunContext, TaskRunContext

    if FlowRunContext.get() is None and TaskRunContext.get() is None:
        return []
    try:
        return [
            create_table_artifact(rows, key=table_key, description=f"{what}: the ranking"),
            create_markdown_artifact(summary, key=summary_key, description=f"{what}: summary"),
        ]
    except httpx.HTTPError as error:
        run_logger_or(_log).warning(
            "could not publish the Prefect artifacts (%s); the results stand", error
        )
        return []
