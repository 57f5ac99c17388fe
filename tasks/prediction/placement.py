"""Placing new tracks in the collection: cluster, score and nearest collection tracks, as a table.

New latents are assigned with `tasks.evaluation.clustering.assign` and compared to the reference
latents of the champion's collection in the clustering's standardised space (the space the
clusters live in). Tracks are named by artist and title where the track tables have them
(`tasks.evaluation.clusters.track_name`), the new ones from the predict work dir's, the
collection's from the champion's reference.parquet. The table is written as `predictions.csv`
and logged as an MLflow run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from pydantic import BaseModel, Field

from registry.tracking import log_artifact, log_metrics, log_params, set_tags, tracked_run
from tasks.core.workspace import Workspace
from tasks.evaluation.assignment import assign
from tasks.evaluation.clustering import NOISE_LABEL
from tasks.evaluation.clusters import track_name
from tasks.prediction.champion import ChampionPackage
from tasks.prediction.inputs import SideInputs

EXPERIMENT = "predict"
NEAREST_SEPARATOR = "; "

PREDICTION_SCHEMA = {
    "path": pl.String,
    "track_id": pl.String,
    "track": pl.String,
    "cluster": pl.Int64,
    "score": pl.Float64,
    "score_kind": pl.String,
    "nearest_tracks": pl.String,
    "nearest_track_ids": pl.String,
    "used_lyrics": pl.Boolean,
    "reason": pl.String,
}
"""Columns of the predictions table, one row per file:

- path: the audio file; track_id: its id in the predict work dir.
- track: 'Artist - Title' (the title alone without an artist), else the file name.
- cluster: the champion's cluster (the numbering of clusters.csv and the playlists); null for a
  quarantined file (`reason` says why), -1 for a DBSCAN noise point (in no cluster).
- score, as `score_kind` says: "distance" (k-means, agglomerative, DBSCAN) is the Euclidean
  distance to the assigned cluster's centre (DBSCAN: to its nearest core track) in the
  clustering's standardised latent units, lower = more typical of the cluster;
  "posterior_probability" (GMM) is the probability that the track belongs to the assigned
  cluster, in [0, 1], higher = surer.
- nearest_tracks: the collection's closest tracks, nearest first, named like `track` (their id
  when the collection's track table had no title); nearest_track_ids: their ids.
- used_lyrics: whether the track's lyrics informed its encoding.
"""
SCORE_LEGEND = {
    "distance": "score = distance to the cluster's centre (DBSCAN: its nearest core track) in "
    "standardised latent units; lower = more typical of the cluster",
    "posterior_probability": "score = probability that the track belongs to its cluster "
    "(0 to 1); higher = surer",
}
NOISE_LEGEND = "cluster -1 = in no cluster (DBSCAN noise)"
NEAREST_LEGEND = "nearest_tracks = the collection's most similar tracks, nearest first"


@dataclass(frozen=True)
class NewTracks:
    """The predict work dir's track table: every file (path, track_id, status, reason, sha256)
    and the ok ones that get encoded, in table order."""

    table: pl.DataFrame

    @classmethod
    def read(cls, workspace: Workspace) -> NewTracks:
        return cls(pl.read_parquet(workspace.tracks_table))

    @property
    def ok(self) -> pl.DataFrame:
        return self.table.filter(pl.col("status") == "ok")

    @property
    def track_ids(self) -> list[str]:
        return self.ok["track_id"].to_list()

    @property
    def shas(self) -> list[str]:
        return self.ok["sha256"].to_list()

    def used_lyrics(self, side: SideInputs) -> dict[str, bool]:
        """track_id -> whether its lyrics informed its encoding, for the ok tracks."""
        ids = self.track_ids
        return dict(zip(ids, side.used_lyrics(len(ids)).tolist(), strict=True))


def nearest_reference_tracks(
    latents: np.ndarray,
    reference_latents: np.ndarray,
    reference_ids: list[str],
    clustering: dict[str, Any],
    k: int,
) -> list[list[str]]:
    """Ids of the `k` reference tracks nearest to each latent, nearest first.

    Distances are Euclidean in the clustering's standardised space (its stored per-dimension mean
    and scale), the space the clusters were found in, so no wide latent dimension dominates.

    Args:
        latents: [shape=(m, d)] new tracks. reference_latents: [shape=(n, d)].
        k: neighbours per track (capped at n).
    """
    if latents.shape[0] == 0 or not reference_ids or k < 1:
        return [[] for _ in range(latents.shape[0])]
    mean = np.asarray(clustering["mean"], dtype=np.float64)
    scale = np.asarray(clustering["scale"], dtype=np.float64)
    new = (np.asarray(latents, dtype=np.float64) - mean) / scale
    reference = (np.asarray(reference_latents, dtype=np.float64) - mean) / scale
    squared = (
        np.sum(new**2, axis=1, keepdims=True)
        - 2.0 * new @ reference.T
        + np.sum(reference**2, axis=1)[None, :]
    )
    k = min(k, len(reference_ids))
    order = np.argsort(squared, axis=1, kind="stable")[:, :k]
    return [[reference_ids[i] for i in row] for row in order]


def reference_names(reference: pl.DataFrame) -> dict[str, str]:
    """track_id -> name (`track_name`) of the collection's tracks; the id where the reference
    has no title (or, from a package registered before titles were kept, no title column)."""
    titles = reference["title"] if "title" in reference.columns else [None] * reference.height
    artists = reference["artist"] if "artist" in reference.columns else [None] * reference.height
    return {
        track_id: track_name(title, artist, track_id)
        for track_id, title, artist in zip(reference["track_id"], titles, artists, strict=True)
    }


def _assignments(
    latents_path: Path, package: ChampionPackage, reference: pl.DataFrame, n_nearest: int
) -> dict[str, tuple[int, float, list[str]]]:
    """track_id -> (cluster, score, nearest ids of `reference`) for the encoded tracks."""
    latents_table = pl.read_parquet(latents_path)
    if latents_table.height == 0:
        return {}
    mu = np.asarray(latents_table["mu"].to_list(), dtype=np.float64)
    labels, scores = assign(package.clustering, mu)
    nearest = nearest_reference_tracks(
        mu,
        np.asarray(reference["mu"].to_list(), dtype=np.float64),
        reference["track_id"].to_list(),
        package.clustering,
        n_nearest,
    )
    return {
        track_id: (int(label), float(score), near)
        for track_id, label, score, near in zip(
            latents_table["track_id"].to_list(), labels, scores, nearest, strict=True
        )
    }


def predictions_table(
    tracks: pl.DataFrame,
    latents_path: Path | None,
    package: ChampionPackage,
    *,
    n_nearest: int,
    used_lyrics: dict[str, bool] | None = None,
) -> pl.DataFrame:
    """One row per ingested file (`PREDICTION_SCHEMA`), in the order of `tracks`.

    Args:
        tracks: the predict work dir's track table (track_id, path, status, reason; title and
            artist when known).
        latents_path: `predict_latents.parquet` of the ok tracks (None when there is none).
        package: the champion (clustering state and reference latents).
        n_nearest: reference tracks listed per track.
        used_lyrics: track_id -> whether its lyrics informed the encoding.
    """
    used_lyrics = used_lyrics or {}
    score_kind = package.clustering.get("score_kind", "distance")
    assigned, names = {}, {}
    if latents_path is not None:
        reference = pl.read_parquet(package.reference)  # once: neighbours and their names
        assigned = _assignments(latents_path, package, reference, n_nearest)
        names = reference_names(reference)
    rows = []
    for row in tracks.iter_rows(named=True):
        result = assigned.get(row["track_id"])
        ok = row["status"] == "ok" and result is not None
        nearest = result[2] if result is not None and ok else []
        rows.append(
            {
                "path": row["path"],
                "track_id": row["track_id"],
                "track": track_name(row.get("title"), row.get("artist"), Path(row["path"]).name),
                "cluster": result[0] if ok else None,
                "score": result[1] if ok else None,
                "score_kind": score_kind if ok else None,
                "nearest_tracks": NEAREST_SEPARATOR.join(names[i] for i in nearest) if ok else None,
                "nearest_track_ids": NEAREST_SEPARATOR.join(nearest) if ok else None,
                "used_lyrics": used_lyrics.get(row["track_id"], False) if ok else None,
                "reason": None if ok else (row["reason"] or "not encoded"),
            }
        )
    return pl.DataFrame(rows, schema=PREDICTION_SCHEMA)


def format_predictions(table: pl.DataFrame) -> str:
    """The predictions as a text table for the terminal (every row, tracks by name), and under
    it a legend of what the score (and a -1 cluster, when there is one) means."""
    shown = table.select(
        "track", "cluster", pl.col("score").round(4), "nearest_tracks", "used_lyrics", "reason"
    )
    with pl.Config(
        tbl_rows=-1,
        tbl_cols=-1,
        fmt_str_lengths=80,
        tbl_width_chars=200,
        tbl_hide_dataframe_shape=True,
        tbl_hide_column_data_types=True,
    ):
        text = str(shown)
    kinds = table["score_kind"].drop_nulls().unique(maintain_order=True).to_list()
    legend = [SCORE_LEGEND.get(kind, f"score = {kind}") for kind in kinds]
    if (table["cluster"] == NOISE_LABEL).any():
        legend.append(NOISE_LEGEND)
    if table["nearest_tracks"].drop_nulls().len():
        legend.append(NEAREST_LEGEND)
    return "\n".join([text, *legend])


def cluster_counts(table: pl.DataFrame) -> dict[str, int]:
    """Tracks per assigned cluster (noise as 'noise'), for logging."""
    counts = table.filter(pl.col("cluster").is_not_null()).group_by("cluster").len().sort("cluster")
    return {
        ("noise" if c == NOISE_LABEL else f"cluster_{c}"): int(n) for c, n in counts.iter_rows()
    }


class PredictionCounts(BaseModel):
    """How the files of one prediction ended up."""

    n_tracks: int = Field(description="Files found.")
    n_assigned: int = Field(description="Files placed in a cluster.")
    n_quarantined: int = Field(description="Files not placed (the reason column says why).")
    n_used_lyrics: int = Field(description="Placed files whose lyrics informed the encoding.")

    @classmethod
    def of(cls, table: pl.DataFrame) -> PredictionCounts:
        assigned = table.filter(pl.col("cluster").is_not_null())
        return cls(
            n_tracks=table.height,
            n_assigned=assigned.height,
            n_quarantined=table.height - assigned.height,
            n_used_lyrics=int(assigned["used_lyrics"].fill_null(False).sum()),
        )


def write_predictions(table: pl.DataFrame, workspace: Workspace, out: Path | None) -> Path:
    """Write the predictions CSV to `out`, else into the predict work dir; return its path."""
    path = (out or workspace.predictions_table).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    table.write_csv(path)
    return path


def log_prediction_run(
    *,
    data: Path,
    package: ChampionPackage,
    workspace: Workspace,
    ingest_run_id: str,
    n_nearest: int,
    table: pl.DataFrame,
    predictions: Path,
    seconds: float,
) -> str:
    """Record one prediction as a run of the `predict` experiment (what model, which data, how
    the files were placed, the predictions CSV); return the run id."""
    with tracked_run(EXPERIMENT, f"predict {Path(data).name}") as run_id:
        log_params(
            run_id,
            {
                "data": str(data),
                "model_uri": package.model_uri,
                "model_version": package.version,
                "method": package.card.method,
                "features": package.card.features,
                "algorithm": package.algorithm,
                "feature_key": package.card.feature_key,
                "predict_dir": str(workspace.root),
                "n_nearest": n_nearest,
            },
        )
        set_tags(
            run_id,
            {
                "stage": "predict",
                "model_version": package.version or "",
                "ingest_run": ingest_run_id,
            },
        )
        counts: dict[str, Any] = PredictionCounts.of(table).model_dump()
        log_metrics(run_id, {**counts, **cluster_counts(table), "seconds": seconds})
        log_artifact(run_id, predictions)
    return run_id
