"""How the champion is chosen, and the package it ships in.

    ranked comparison table
      -> choose_champion: the best-ranked unsupervised zoo-model row, and of the training seeds
         pooled in that row, the one that scored best with the row's algorithm
      -> should_replace: only when better on the same objective and data as today's champion
      -> write_champion_package (the clustering fitted once by
         `tasks.evaluation.clusters.fit_champion_clustering`) -> registry.champion.promote

The replacement rule lives here, not in `registry/`: it needs each metric's direction, which
`tasks.evaluation.metrics` owns, and the registry (the MLflow door) imports no task code. The
registry stores and reads a typed `ChampionRecord`; this module decides.

The package is the folder `predict` downloads: every file in `CHAMPION_FILES`. This module owns
that list; the prediction stage reads it from here.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict

from models.zoo import MODEL_NAMES
from registry.champion import CHAMPION_MODEL, ChampionRecord, current_champion, promote
from registry.models import INPUT_EXAMPLE_FILE, MLMODEL_FILE
from tasks.core.workspace import Workspace
from tasks.evaluation.clusters import ChampionClustering
from tasks.evaluation.metrics import higher_is_better, is_better
from tasks.evaluation.representations import MIXTURE_ALGORITHM, Representation
from tasks.lyrics.embedding import embeddings_sidecar
from tasks.training.checkpoint import WEIGHTS_FILE, weights_path
from tasks.training.model_card import ModelCard
from tasks.training.representation import read_latents

CLUSTERING_FILE = "clustering.json"
REFERENCE_FILE = "reference.parquet"
FEATURE_CONFIG_FILE = "feature_config.json"
# Everything a champion version holds; `predict` needs all of them.
CHAMPION_FILES = (
    ModelCard.FILE_NAME,
    WEIGHTS_FILE,
    FEATURE_CONFIG_FILE,
    CLUSTERING_FILE,
    REFERENCE_FILE,
)
# Shipped when the model folder has them, so the champion version shows its signature and input
# example in MLflow like the training versions do; `predict` does not read them.
CHAMPION_DESCRIPTION_FILES = (MLMODEL_FILE, INPUT_EXAMPLE_FILE)

RowsPerRepresentation = Sequence[Sequence[Mapping[str, Any]]]
"""`evaluate_representation`'s rows, one list per representation, in the representations' order."""


class ChampionCandidate(BaseModel):
    """The model this evaluation would ship: one comparison row and the training seed of it."""

    model_config = ConfigDict(frozen=True)

    method: str
    features: str
    algorithm: str
    metric: str
    value: float
    representation: Representation

    def record(self, fingerprint: str) -> ChampionRecord:
        """What the candidate is chosen on, in the form the registry stores."""
        return ChampionRecord(objective=self.metric, value=self.value, fingerprint=fingerprint)

    @property
    def tags(self) -> dict[str, str]:
        return {"method": self.method, "features": self.features, "algorithm": self.algorithm}


def _same_row(representation: Representation, row: Mapping[str, Any]) -> bool:
    # uses_labels too: a genre-conditioned model of the same name and variant is another row.
    return (
        representation.method == row["method"]
        and representation.features == row["features"]
        and representation.uses_labels == row["uses_labels"]
    )


def best_training_seed(
    row: Mapping[str, Any],
    representations: Sequence[Representation],
    per_representation: RowsPerRepresentation,
) -> Representation:
    """The representation pooled into comparison row `row` that scored best on the row's
    ranking metric with the row's algorithm (mean over clustering seeds).

    A row pools every training seed of a model, so that no method is shown by its luckiest run;
    the model that ships is still one run, the best one. Ties go to the first representation.

    Raises:
        ValueError: no representation belongs to `row`.
    """
    metric, direction = row["ranked_by"], 1.0 if higher_is_better(row["ranked_by"]) else -1.0

    def score(rows: Sequence[Mapping[str, Any]]) -> float:
        values = [
            float(r[metric])
            for r in rows
            if r["algorithm"] == row["algorithm"] and _finite(r.get(metric))
        ]
        return direction * sum(values) / len(values) if values else -math.inf

    seeds = [
        (representation, rows)
        for representation, rows in zip(representations, per_representation, strict=True)
        if _same_row(representation, row)
    ]
    if not seeds:
        raise ValueError(f"no representation belongs to the row {row['method']}[{row['features']}]")
    return max(seeds, key=lambda seed: score(seed[1]))[0]


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def choose_champion(
    table: pl.DataFrame,
    representations: Sequence[Representation],
    per_representation: RowsPerRepresentation,
) -> ChampionCandidate | None:
    """The best-ranked row of `table` that is an unsupervised zoo model clustered by a fitted
    algorithm, with its best training seed; None when there is no such row.

    VaDE's own mixture assignment is ranked but cannot ship: prediction assigns new tracks with a
    clustering fitted by `tasks.evaluation.clustering`.

    Args:
        table: ranked comparison (`tasks.evaluation.report.rank`).
        representations: what was evaluated; `per_representation[i]` are the rows of the i-th.
    """
    rows = table.filter(
        pl.col("rank").is_not_null()
        & pl.col("method").is_in(list(MODEL_NAMES))
        & (pl.col("algorithm") != MIXTURE_ALGORITHM)
    ).sort("rank", maintain_order=True)
    if rows.height == 0:
        return None
    row = rows.row(0, named=True)
    return ChampionCandidate(
        method=row["method"],
        features=row["features"],
        algorithm=row["algorithm"],
        metric=row["ranked_by"],
        value=row[row["ranked_by"]],
        representation=best_training_seed(row, representations, per_representation),
    )


def map_representation(
    table: pl.DataFrame,
    representations: Sequence[Representation],
    per_representation: RowsPerRepresentation,
) -> Representation | None:
    """The representation worth an interactive map: the champion candidate's, or when no zoo
    model is ranked, the best training seed of the table's top row; None for an empty table."""
    candidate = choose_champion(table, representations, per_representation)
    if candidate is not None:
        return candidate.representation
    if table.height == 0:
        return None
    return best_training_seed(table.row(0, named=True), representations, per_representation)


def should_replace(current: ChampionRecord | None, candidate: ChampionRecord) -> bool:
    """Whether `candidate` replaces today's champion: always when there is none or it was chosen
    on another objective or other data (its value says nothing about this data), else only when
    strictly better in the metric's direction (`tasks.evaluation.metrics.is_better`)."""
    if current is None or (current.objective, current.fingerprint) != (
        candidate.objective,
        candidate.fingerprint,
    ):
        return True
    return is_better(candidate.objective, candidate.value, current.value)


def write_champion_package(workspace: Workspace, clustering: ChampionClustering) -> list[Path]:
    """Write the champion package of `clustering.representation` into `workspace.champion_dir`.

    The clustering is the one evaluation fitted for people (`fit_champion_clustering`): its
    fitted state is `clustering.json`, its clusters are those of `reference.parquet` (track_id,
    cluster, genre, language, title, artist, path, mu), so that `predict`, clusters.csv, the
    playlists and the champion's figures number clusters alike.

    Returns:
        The paths of `CHAMPION_FILES`, in that order, then those of
        `CHAMPION_DESCRIPTION_FILES` the model folder has and, for a multimodal champion, the
        lyrics embeddings' sidecar (`lyrics_embeddings.json`).

    Raises:
        ValueError: the representation is not a trained model (no model folder).
        ModelCardError, FileNotFoundError: the model folder or the feature store lacks a file.
    """
    representation = clustering.representation
    if representation.model_dir is None:
        raise ValueError(f"{representation.name} has no model folder: only trained models ship")
    folder = workspace.champion_dir
    card = ModelCard.read(representation.model_dir)
    card.write(folder)
    shutil.copyfile(weights_path(representation.model_dir), folder / WEIGHTS_FILE)
    shutil.copyfile(workspace.feature_manifest(card.feature_key), folder / FEATURE_CONFIG_FILE)
    (folder / CLUSTERING_FILE).write_text(clustering.fitted_state)

    latents = read_latents(representation.latents)
    mu = pl.DataFrame(
        {"track_id": latents.track_ids, "mu": latents.mu.tolist()},
        schema={"track_id": pl.String, "mu": pl.List(pl.Float64)},
    )
    mu.join(clustering.read(), on="track_id", how="left", maintain_order="left").select(
        "track_id", "cluster", "genre", "language", "title", "artist", "path", "mu"
    ).write_parquet(folder / REFERENCE_FILE)
    optional = {name: representation.model_dir / name for name in CHAMPION_DESCRIPTION_FILES}
    if card.is_multimodal:
        # The encoder id and language means the lyrics were embedded and centred with, so that
        # `predict` treats new lyrics alike without the training work dir.
        sidecar = embeddings_sidecar(workspace.lyrics_embeddings)
        optional[sidecar.name] = sidecar
    shipped = []
    for name, source in optional.items():
        if source.is_file():
            shutil.copyfile(source, folder / name)
            shipped.append(folder / name)
    return [folder / name for name in CHAMPION_FILES] + shipped


@task(cache_policy=NO_CACHE, task_run_name="champion {candidate.method} {candidate.features}")
def promote_champion(
    candidate: ChampionCandidate,
    clustering: ChampionClustering,
    *,
    run_id: str,
    workspace: Workspace,
    fingerprint: str,
) -> str | None:
    """Register `candidate` as `vaemusic@champion` (package logged under `run_id`) unless today's
    champion is as good on the same objective and data (`should_replace`). `clustering` is the
    candidate's fitted clustering (`fit_champion_clustering`), shipped as it is.

    Returns:
        The new version, or None when the champion was kept.
    """
    logger = get_run_logger()
    record = candidate.record(fingerprint)
    current = current_champion()
    if not should_replace(current, record):
        logger.info(
            "champion kept: %s=%.4f is not better than %.4f",
            record.objective,
            record.value,
            current.value if current else math.nan,
        )
        return None
    files = write_champion_package(workspace, clustering)
    version = promote(run_id=run_id, files=files, record=record, tags=candidate.tags)
    logger.info(
        "%s@champion is now version %s: %s [%s] + %s (%s=%.4f)",
        CHAMPION_MODEL,
        version,
        candidate.method,
        candidate.features,
        candidate.algorithm,
        record.objective,
        record.value,
    )
    return version
