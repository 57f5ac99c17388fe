"""What an evaluation records in MLflow: its settings, one child run per comparison row, the
reports and the figures, and which row would be the champion.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl

from registry.tracking import log_artifact, log_metrics, log_params, set_tags, tracked_run
from tasks.evaluation.champion import ChampionCandidate
from tasks.evaluation.metrics import EXTERNAL_METRICS, INTERNAL_METRICS, LANGUAGE_METRICS

EXPERIMENT = "evaluation"
# Logged under the same names in every child run, so `mlflow ui` charts them side by side.
METRIC_COLUMNS = (
    *INTERNAL_METRICS,
    *EXTERNAL_METRICS,
    *LANGUAGE_METRICS,
    "n_clusters",
    "noise_fraction",
)


def _row_metrics(row: Mapping[str, Any]) -> dict[str, float]:
    """Every defined metric of a comparison row and its spread over seeds, and the rank."""
    keys = [key for column in METRIC_COLUMNS for key in (column, f"{column}_std")] + ["rank"]
    return {key: row[key] for key in keys if row.get(key) is not None}


def log_comparison_rows(table: pl.DataFrame, *, parent_run_id: str, fingerprint: str) -> None:
    """One child run of `parent_run_id` per comparison row, tagged with the row's identity."""
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
    log_comparison_rows(table, parent_run_id=run_id, fingerprint=fingerprint)
    for path in reports.values():
        log_artifact(run_id, path, "report")
    log_artifact(run_id, plots_dir, "plots")
    best = candidate.tags if candidate else {}
    set_tags(
        run_id, {f"best_{key}": best.get(key, "") for key in ("method", "features", "algorithm")}
    )
