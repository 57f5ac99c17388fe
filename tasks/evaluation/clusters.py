"""The champion's clustering, for people: which songs went together, by name.

    champion candidate -> fit_champion_clustering: fitted once (seed 0, the representation's
        standardisation); the same fitted state ships in the champion package and colours the
        champion's figures, so evaluate's tables, figures and playlists and `predict` share one
        numbering of clusters
      -> clusters.csv and clusters.parquet: one row per track (`CLUSTER_TABLE_SCHEMA`)
      -> write_playlists: one M3U8 playlist per cluster, most typical track first
      -> write_clusters_summary: clusters.md, each cluster's size, common genres and languages,
         characteristic tags and most typical tracks
      -> write_champion_listening_map: the listening map (`tasks.evaluation.listening_map`)
         of the 2-D map of the champion's latents, with the rows above

A cluster's characteristic tags (`characteristic_tags`) are the pretrained network's tags whose
mean probability over its tracks stands most above the collection's mean; they come from the
ingest's pretrained store, whatever representation the clustering was fitted on.

Cluster ids are the fitted model's own (`tasks.evaluation.clustering.ClusteringResult.labels`),
the ids `predict` assigns; -1 is DBSCAN noise (a track in no cluster).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict

from tasks.core.workspace import Workspace
from tasks.evaluation.assignment import fitted_from_json, fitted_to_json
from tasks.evaluation.cluster_tags import (
    MIN_TAG_GAIN,
    MIN_TAG_LIFT,
    TrackTags,
    cluster_tags_column,
    read_track_tags,
)
from tasks.evaluation.clustering import NOISE_LABEL, ClusteringResult, cluster
from tasks.evaluation.listening_map import REQUIRED_COLUMNS as MAP_COLUMNS
from tasks.evaluation.listening_map import write_listening_map
from tasks.evaluation.plots import MapMethod, embedding_2d
from tasks.evaluation.representations import Labels, Representation, labels_for
from tasks.training.representation import read_latents

# A track farther from its cluster's centre than this percentile of the cluster's distances is
# an outlier: about the farthest tenth of each cluster, whatever the cluster's spread.
OUTLIER_PERCENTILE = 90.0
TYPICAL_TRACKS_LISTED = 5
SHARES_LISTED = 3
# Track-table columns the people's table carries over (absent ones are left empty).
TRACK_COLUMNS = {
    "title": pl.String,
    "artist": pl.String,
    "path": pl.String,
    "duration_s": pl.Float64,
}
CLUSTER_TABLE_SCHEMA = {
    "track_id": pl.String,
    **TRACK_COLUMNS,
    "genre": pl.String,
    "language": pl.String,
    "cluster": pl.Int64,
    "distance": pl.Float64,
    "typical": pl.Boolean,
    "cluster_tags": pl.String,
}
"""Columns of clusters.csv / clusters.parquet, one row per track, sorted by cluster (noise last)
and, within a cluster, from the most typical track outwards.

title, artist, path (the audio file, absolute) and duration_s (seconds) come from the track
table; genre is the collection's, language the lyrics' detected language where the lyrics stage
ran (else the collection's); all are empty where unknown. `cluster` is the fitted model's id
(-1: DBSCAN noise). `distance` is the Euclidean distance to the cluster's centre, the mean of its
tracks in the space the clustering was fitted in (standardised where the representation is), so
it is comparable within a cluster; empty for noise. `typical` is False for outliers: tracks
farther from the centre than `OUTLIER_PERCENTILE` % of their cluster, and every noise track.
`cluster_tags` are the cluster's characteristic tags (`characteristic_tags`, most characteristic
first, joined by ", "), the same on every row of a cluster: empty ("") when no tag stands clearly
above the collection's average, null for noise and where the work dir has no pretrained tags."""


class ChampionClustering(BaseModel):
    """The champion's fitted clustering of the collection, and where its table is.

    `fitted_state` is the JSON text of `ClusteringResult.fitted` (`fitted_to_json`): the state
    the champion package ships for `predict`. `table` is clusters.parquet (`CLUSTER_TABLE_SCHEMA`).
    """

    model_config = ConfigDict(frozen=True)

    representation: Representation
    algorithm: str
    n_clusters: int
    fitted_state: str
    table: Path

    @property
    def fitted(self) -> dict[str, Any]:
        return fitted_from_json(self.fitted_state)

    @property
    def description(self) -> str:
        """e.g. 'mlp_vae[default], gmm, 8 clusters' (for titles and summaries)."""
        return f"{self.representation.name}, {self.algorithm}, {self.n_clusters} clusters"

    def read(self) -> pl.DataFrame:
        return pl.read_parquet(self.table)

    def assignment(self) -> ClusterAssignment:
        """The champion's clusters, for its figures."""
        table = self.read()
        return ClusterAssignment(
            track_ids=table["track_id"].to_list(),
            clusters=table["cluster"].to_list(),
            source=f"{self.algorithm}, the best model's fitted clustering",
        )


class ClusterAssignment(BaseModel):
    """Given clusters of a representation's tracks (a figure draws these instead of its own)."""

    model_config = ConfigDict(frozen=True)

    track_ids: list[str]
    clusters: list[int]
    source: str

    def labels_of(self, track_ids: Sequence[str]) -> np.ndarray:
        """The cluster of each of `track_ids` [shape=(n,)].

        Raises:
            KeyError: a track has no cluster here (another collection).
        """
        by_track = dict(zip(self.track_ids, self.clusters, strict=True))
        return np.asarray([by_track[t] for t in track_ids], dtype=np.int64)


def track_name(title: str | None, artist: str | None, fallback: str) -> str:
    """'Artist - Title', the title alone without an artist, `fallback` without a title."""
    if not title:
        return fallback
    return f"{artist} - {title}" if artist else title


# ----------------------------------------------------------------------------- the table


def distances_to_centres(z: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Euclidean distance of each point of `z` [shape=(n, d)] to the mean of its cluster.

    Returns:
        np.ndarray [shape=(n,)]; NaN for noise points (label -1).
    """
    distances = np.full(len(labels), np.nan)
    for cluster_id in np.unique(labels):
        if cluster_id == NOISE_LABEL:
            continue
        members = labels == cluster_id
        centre = z[members].mean(axis=0)
        distances[members] = np.linalg.norm(z[members] - centre, axis=1)
    return distances


def typical_flags(distances: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """True for a track within the `OUTLIER_PERCENTILE`-th percentile of its cluster's distances;
    False for the farther ones (outliers) and for noise. [shape=(n,), bool]"""
    typical = np.zeros(len(labels), dtype=bool)
    for cluster_id in np.unique(labels):
        if cluster_id == NOISE_LABEL:
            continue
        members = labels == cluster_id
        limit = np.percentile(distances[members], OUTLIER_PERCENTILE)
        typical[members] = distances[members] <= limit
    return typical


def track_facts(workspace: Workspace) -> pl.DataFrame:
    """track_id and `TRACK_COLUMNS` of the track table (an absent column left empty)."""
    tracks = pl.read_parquet(workspace.tracks_table).unique("track_id", keep="first")
    return tracks.select(
        "track_id",
        *[
            pl.col(name).cast(dtype) if name in tracks.columns else pl.lit(None, dtype).alias(name)
            for name, dtype in TRACK_COLUMNS.items()
        ],
    )


def clusters_table(
    track_ids: Sequence[str],
    z: np.ndarray,
    labels: np.ndarray,
    *,
    tracks: pl.DataFrame,
    genre: Sequence[str | None],
    language: Sequence[str | None],
    tags: TrackTags | None = None,
) -> pl.DataFrame:
    """The people's table (`CLUSTER_TABLE_SCHEMA`) of a clustering.

    Args:
        track_ids, genre, language: [shape=(n,)], one per point.
        z: np.ndarray [shape=(n, d)], the points in the space the clustering was fitted in.
        labels: np.ndarray [shape=(n,)], the fitted cluster ids.
        tracks: track_id and `TRACK_COLUMNS` (tracks missing here get empty facts).
        tags: the tracks' tag probabilities (`read_track_tags`); None leaves `cluster_tags` null.
    """
    distances = distances_to_centres(z, labels)
    table = pl.DataFrame(
        {
            "track_id": list(track_ids),
            "genre": list(genre),
            "language": list(language),
            "cluster": labels.tolist(),
            "distance": distances.tolist(),
            "typical": typical_flags(distances, labels).tolist(),
            "cluster_tags": cluster_tags_column(track_ids, labels, tags),
        },
        schema_overrides={
            "genre": pl.String,
            "language": pl.String,
            "cluster": pl.Int64,
            "cluster_tags": pl.String,
        },
    ).with_columns(pl.col("distance").fill_nan(None))
    return (
        table.join(tracks, on="track_id", how="left")
        .select(list(CLUSTER_TABLE_SCHEMA))
        .sort(
            [pl.col("cluster") == NOISE_LABEL, "cluster", "distance", "track_id"],
            nulls_last=True,
        )
    )


@task(cache_policy=NO_CACHE, task_run_name="clusters {representation.method}")
def fit_champion_clustering(
    representation: Representation,
    *,
    algorithm: str,
    n_clusters: int | None,
    labels: Labels,
    workspace: Workspace,
) -> ChampionClustering:
    """Fit the champion's clustering once and write its people's table as clusters.parquet
    (beside `workspace.clusters_table`), which its figures and the champion package read.
    clusters.csv is written only once the champion is decided
    (`tasks.evaluation.people_files.write_champion_clusters`): this candidate may lose.

    The clustering is fitted on the whole collection with seed 0 and the representation's
    standardisation, so that new tracks are assigned in the space the evaluation measured.

    Raises:
        ClusteringError: the latents cannot be clustered with these settings.
    """
    latents = read_latents(representation.latents)
    fitted: ClusteringResult = cluster(
        latents.mu,
        algorithm=algorithm,
        n_clusters=n_clusters,
        seed=0,
        standardize_input=representation.standardize,
    )
    mean = np.asarray(fitted.fitted["mean"], dtype=np.float64)
    scale = np.asarray(fitted.fitted["scale"], dtype=np.float64)
    genre, language = labels_for(latents, labels)
    table = clusters_table(
        latents.track_ids,
        (np.asarray(latents.mu, dtype=np.float64) - mean) / scale,
        fitted.labels,
        tracks=track_facts(workspace),
        genre=genre,
        language=language,
        tags=read_track_tags(workspace),
    )
    path = workspace.clusters_table.with_suffix(".parquet")
    table.write_parquet(path)
    return ChampionClustering(
        representation=representation,
        algorithm=algorithm,
        n_clusters=fitted.n_clusters,
        fitted_state=fitted_to_json(fitted.fitted),
        table=path,
    )


# ----------------------------------------------------------------------------- playlists


def _extinf(row: dict[str, Any]) -> str:
    """`#EXTINF:<seconds>,<Artist> - <Title>`; -1 seconds when the duration is unknown."""
    seconds = round(row["duration_s"]) if row["duration_s"] is not None else -1
    name = track_name(row["title"], row["artist"], Path(row["path"]).stem)
    return f"#EXTINF:{seconds},{' '.join(name.split())}"  # one line, whatever the tags hold


def playlist_text(rows: pl.DataFrame, playlist: Path) -> str:
    """An extended M3U playlist of `rows` (`CLUSTER_TABLE_SCHEMA`, in their order), paths
    relative to `playlist`'s folder with forward slashes (absolute where no relative path exists,
    e.g. another drive). Rows without a path are left out."""
    lines = ["#EXTM3U"]
    for row in rows.filter(pl.col("path").is_not_null()).iter_rows(named=True):
        try:
            location = Path(os.path.relpath(row["path"], playlist.parent)).as_posix()
        except ValueError:
            location = Path(row["path"]).as_posix()
        lines += [_extinf(row), location]
    return "\n".join(lines) + "\n"


@task(cache_policy=NO_CACHE)
def write_playlists(clustering: ChampionClustering, workspace: Workspace) -> list[Path]:
    """One playlist per cluster (`workspace.playlist(n)`), ordered from the most typical track
    outwards; noise tracks get none. Playlists of an earlier evaluation are removed first, so
    that a cluster that no longer exists leaves no playlist behind.

    Returns:
        The written playlists, by cluster id.
    """
    table = clustering.read()
    folder = workspace.playlist(0).parent
    for stale in folder.glob("cluster-*.m3u8"):
        stale.unlink()
    paths = []
    for (cluster_id,), rows in table.filter(pl.col("cluster") != NOISE_LABEL).group_by(
        "cluster", maintain_order=True
    ):
        path = workspace.playlist(int(cluster_id))
        path.write_text(playlist_text(rows, path), encoding="utf-8")
        paths.append(path)
    return paths


# ----------------------------------------------------------------------------- the summary


def _shares(values: pl.Series) -> str:
    """'rock 75%, jazz 25%' of the known values (most common first), 'not known' without any."""
    known = values.drop_nulls()
    if known.len() == 0:
        return "not known"
    counts = known.value_counts(sort=True).head(SHARES_LISTED)
    return ", ".join(
        f"{value} {count / known.len():.0%}" for value, count in counts.iter_rows()
    ) + (" (of the tracks where known)" if known.len() < values.len() else "")


def _names(rows: pl.DataFrame) -> list[str]:
    return [
        track_name(
            row["title"], row["artist"], Path(row["path"]).stem if row["path"] else row["track_id"]
        )
        for row in rows.iter_rows(named=True)
    ]


def _tags_line(rows: pl.DataFrame) -> list[str]:
    """The cluster's tags line of the summary; none where the table has no tags."""
    if "cluster_tags" not in rows.columns or rows["cluster_tags"].null_count() == rows.height:
        return []
    tags = rows["cluster_tags"].drop_nulls()[0]
    return [f"- Tags: {tags or 'none stands clearly above the collection average'}"]


def _tags_note(table: pl.DataFrame) -> str:
    if "cluster_tags" not in table.columns or table["cluster_tags"].null_count() == table.height:
        return ""
    return (
        " Tags are the pretrained network's (musicnn) tags whose mean probability in the "
        f"cluster is highest relative to the collection's (at least {MIN_TAG_LIFT:g}x and "
        f"{MIN_TAG_GAIN:g} above it), most characteristic first."
    )


def clusters_summary_text(table: pl.DataFrame, *, model: str, playlists: Path) -> str:
    """Markdown describing each cluster of `table` (`CLUSTER_TABLE_SCHEMA`): size, most common
    genres and languages with their shares, characteristic tags (where the table has them), most
    typical tracks by name, and its playlist.

    Args:
        model: what was clustered and how, e.g. `ChampionClustering.description`.
        playlists: the playlists folder, named relative to the summary's folder.
    """
    lines = [
        "# Clusters of the champion",
        "",
        f"{model}; {table.height} tracks. Every track with its cluster: clusters.csv. A track "
        f"is an outlier when it lies farther from its cluster's centre than "
        f"{OUTLIER_PERCENTILE:.0f}% of the cluster's tracks. One playlist per cluster in "
        f"{playlists.as_posix()}/, most typical track first.{_tags_note(table)}",
    ]
    for (cluster_id,), rows in table.group_by("cluster", maintain_order=True):
        if cluster_id == NOISE_LABEL:
            lines += ["", f"## No cluster (noise): {rows.height} tracks", ""]
            lines.append("Tracks in no dense region; listed in clusters.csv with cluster -1.")
            continue
        playlist = f"{playlists.as_posix()}/cluster-{cluster_id:02d}.m3u8"
        typical = _names(rows.filter(pl.col("typical")).head(TYPICAL_TRACKS_LISTED))
        lines += [
            "",
            f"## Cluster {cluster_id}: {rows.height} tracks",
            "",
            f"- Genres: {_shares(rows['genre'])}",
            f"- Languages: {_shares(rows['language'])}",
            *_tags_line(rows),
            f"- Most typical: {'; '.join(typical)}",
            f"- Playlist: [{playlist}]({playlist})",
        ]
    return "\n".join(lines) + "\n"


@task(cache_policy=NO_CACHE)
def write_clusters_summary(clustering: ChampionClustering, workspace: Workspace) -> Path:
    """Write `workspace.clusters_summary` (`clusters_summary_text`); return its path."""
    path = workspace.clusters_summary
    playlists = Path(os.path.relpath(workspace.playlist(0).parent, path.parent))
    text = clusters_summary_text(
        clustering.read(), model=clustering.description, playlists=playlists
    )
    path.write_text(text, encoding="utf-8")
    return path


def clusters_console_lines(workspace: Workspace, listening_map: Path | None) -> str:
    """Where the champion's clusters are, for the evaluation's console summary; `listening_map`
    is the page this evaluation drew (None: none)."""
    lines = [
        f"songs by cluster: {workspace.clusters_table} (and .parquet)",
        f"clusters described: {workspace.clusters_summary}",
        f"playlists: {workspace.playlist(0).parent}/",
    ]
    if listening_map is not None:
        lines.append(f"listening map: {listening_map}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the map


def listening_map_points(
    clustering: ChampionClustering, *, method: MapMethod
) -> pl.DataFrame | None:
    """The points of the listening map (`tasks.evaluation.listening_map.REQUIRED_COLUMNS`):
    track_id, title, artist, audio_path (the absolute path of the audio file), genre, language,
    cluster (int), typical (bool), x, y (the 2-D map of the champion's latents by `method`, seed
    0, in the space the clustering was fitted in), from the most typical track of each cluster
    outwards.

    Tracks without an audio file (nothing to play) are left out; a track without a title is
    titled by its file name so that every point names a song.

    Returns:
        The table; None when there are too few tracks for a 2-D map (< 4) or none has a file.
    """
    representation = clustering.representation
    # Only track_id and mu: a latents file and a champion package's reference.parquet both have
    # them, so a registered champion's map is drawn from its own reference latents.
    latents = pl.read_parquet(representation.latents, columns=["track_id", "mu"])
    try:
        xy = embedding_2d(
            np.asarray(latents["mu"].to_list(), dtype=np.float32),
            method=method,
            seed=0,
            standardize_input=representation.standardize,
        )
    except ValueError:
        return None
    coordinates = pl.DataFrame(
        {"track_id": latents["track_id"].to_list(), "x": xy[:, 0].tolist(), "y": xy[:, 1].tolist()}
    )
    table = clustering.read().filter(pl.col("path").is_not_null())
    if table.height == 0:
        return None
    file_names = pl.Series([Path(path).stem for path in table["path"]], dtype=pl.String)
    return (
        table.with_columns(
            pl.coalesce("title", file_names).alias("title"), pl.col("path").alias("audio_path")
        )
        .join(coordinates, on="track_id", how="inner", maintain_order="left")
        .select(MAP_COLUMNS)
    )


def listening_map_title(clustering: ChampionClustering) -> str:
    """The map's heading: what the dots are and which model placed them."""
    return (
        "Your collection on a map: tracks that sound alike lie close together "
        f"({clustering.description})"
    )


@task(cache_policy=NO_CACHE)
def write_champion_listening_map(
    clustering: ChampionClustering, workspace: Workspace, *, method: MapMethod
) -> Path | None:
    """Write `workspace.listening_map` for the champion (`listening_map_points`); None when
    there is nothing to map."""
    points = listening_map_points(clustering, method=method)
    if points is None:
        return None
    return write_listening_map(
        points, workspace.listening_map, title=listening_map_title(clustering)
    )
