"""The people's files describe the registered champion, the model `predict` uses.

    promotion decided (`tasks.evaluation.champion.promote_champion`)
      -> champion_clusters_source: which model is the champion of this collection now
           promoted this run, or none registered         -> this evaluation's candidate
           the registered champion, chosen on this data   -> the registered package, rebuilt
           a champion chosen on other data, not replaced  -> the candidate (the registered
               (promotion turned off)                         one never saw this collection)
           no candidate, no champion of this data         -> nothing; stale files removed
      -> write_champion_clusters: clusters.csv/.parquet (from the package: its reference
         clusters and latents), playlists, clusters.md and the listening map

Without this step a run whose candidate lost to the registered champion described the loser in
clusters.csv and the playlists, while `predict` placed new tracks with the champion.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict

from registry.champion import CHAMPION_MODEL, ChampionRecord
from registry.models import CHAMPION, version_by_alias
from tasks.core.workspace import Workspace
from tasks.evaluation.assignment import assign
from tasks.evaluation.champion import CLUSTERING_FILE
from tasks.evaluation.cluster_tags import read_track_tags
from tasks.evaluation.clustering import NOISE_LABEL
from tasks.evaluation.clusters import (
    ChampionClustering,
    clusters_table,
    track_facts,
    write_champion_listening_map,
    write_clusters_summary,
    write_playlists,
)
from tasks.evaluation.plots import MapMethod
from tasks.evaluation.representations import Representation, file_sha
from tasks.prediction.champion import ChampionPackage, fetch_champion

Source = Literal["candidate", "registered", "none"]


class ChampionClusters(BaseModel):
    """What the people's files were written from: `clustering` (None when nothing was written),
    the listening map (None without maps or points) and one line saying which model it is."""

    model_config = ConfigDict(frozen=True)

    clustering: ChampionClustering | None
    listening_map: Path | None
    origin: str


def champion_clusters_source(
    *,
    promoted: bool,
    has_candidate: bool,
    registered: ChampionRecord | None,
    fingerprint: str,
) -> Source:
    """Which model the people's files describe after the promotion was decided.

    Args:
        promoted: this evaluation registered its candidate as the champion.
        has_candidate: this evaluation has a candidate (a ranked, shippable trained model).
        registered: the record of today's champion (None: none, or one without a record).
        fingerprint: the fingerprint of the evaluated collection.
    """
    if promoted:
        return "candidate"
    if registered is not None and registered.fingerprint == fingerprint:
        return "registered"
    # No champion, or one chosen on other data (kept only when promotion is turned off): its
    # reference holds none of this collection's tracks, so only the candidate can describe it.
    return "candidate" if has_candidate else "none"


def remove_people_files(workspace: Workspace) -> None:
    """Delete the people's files an earlier evaluation left (table, summary, map, playlists)."""
    table = workspace.clusters_table
    for path in (
        table,
        table.with_suffix(".parquet"),
        workspace.clusters_summary,
        workspace.listening_map,
    ):
        path.unlink(missing_ok=True)
    for playlist in workspace.playlist(0).parent.glob("cluster-*.m3u8"):
        playlist.unlink()


def clustering_from_package(package: ChampionPackage, workspace: Workspace) -> ChampionClustering:
    """The registered champion's clustering of the collection, from its package: the clusters of
    `reference.parquet` (those `predict` compares new tracks with; a track without one is
    assigned with the fitted state), distances in the space the clustering was fitted in
    (`clustering.json`'s standardiser), written as clusters.parquet beside
    `workspace.clusters_table` (the CSV is `write_champion_clusters`'s).

    The track facts (title, artist, path, duration) come from this work dir's track table, so the
    playlists point at this collection's files.
    """
    reference = pl.read_parquet(package.reference)
    mu = np.asarray(reference["mu"].to_list(), dtype=np.float64)
    fitted = package.clustering
    labels = reference["cluster"].to_numpy().copy()
    unassigned = reference["cluster"].is_null().to_numpy()
    if unassigned.any():
        labels[unassigned] = assign(fitted, mu[unassigned])[0]
    labels = labels.astype(np.int64)
    mean = np.asarray(fitted["mean"], dtype=np.float64)
    scale = np.asarray(fitted["scale"], dtype=np.float64)
    table = clusters_table(
        reference["track_id"].to_list(),
        (mu - mean) / scale,
        labels,
        tracks=track_facts(workspace),
        genre=reference["genre"].to_list(),
        language=reference["language"].to_list(),
        tags=read_track_tags(workspace),
    )
    path = workspace.clusters_table.with_suffix(".parquet")
    table.write_parquet(path)
    card = package.card
    return ChampionClustering(
        # reference.parquet holds track_id and mu, all the listening map reads of latents.
        representation=Representation(
            method=card.method,
            features=card.features,
            latents=package.reference,
            latents_sha=file_sha(package.reference),
            model_dir=package.folder,
            standardize=card.standardize_latents,
        ),
        algorithm=package.algorithm,
        n_clusters=len(np.unique(labels[labels != NOISE_LABEL])),
        fitted_state=(package.folder / CLUSTERING_FILE).read_text(),
        table=path,
    )


@task(cache_policy=NO_CACHE)
def write_champion_clusters(
    candidate: ChampionClustering | None,
    *,
    promoted: bool,
    fingerprint: str,
    workspace: Workspace,
    map_method: MapMethod | None,
) -> ChampionClusters:
    """Write the people's files (table, playlists, clusters.md, listening map drawn with
    `map_method`, none when None) of the model that is the champion after the promotion was
    decided (`champion_clusters_source`); remove stale ones when there is none.

    Args:
        candidate: this evaluation's candidate clustering (`fit_champion_clustering`), None
            without a candidate.
        promoted: the candidate was registered as the champion by this evaluation.

    Raises:
        PredictionError: the registered champion is not a readable champion package.
    """
    version = version_by_alias(CHAMPION_MODEL, CHAMPION)
    record = ChampionRecord.from_tags(version.tags or {}) if version is not None else None
    source = champion_clusters_source(
        promoted=promoted,
        has_candidate=candidate is not None,
        registered=record,
        fingerprint=fingerprint,
    )
    if source == "none":
        remove_people_files(workspace)
        return ChampionClusters(
            clustering=None,
            listening_map=None,
            origin="no champion for this collection: no clusters table, playlists or map "
            "(those of an earlier evaluation were removed)",
        )
    if source == "registered":
        assert version is not None  # "registered" needs a registered version
        number = str(version.version)
        package = fetch_champion(f"models:/{CHAMPION_MODEL}/{number}", number, workspace)
        clustering = clustering_from_package(package, workspace)
        origin = f"the registered {CHAMPION_MODEL}@{CHAMPION} (version {number}), kept"
    else:
        assert candidate is not None  # "candidate" needs one
        clustering = candidate
        origin = "this evaluation's candidate" + (
            f", now {CHAMPION_MODEL}@{CHAMPION}" if promoted else " (not registered)"
        )
    get_run_logger().info("clusters for people: %s", origin)
    # clusters.csv is written here only, once the champion is decided: the candidate's
    # clusters.parquet (its figures and package read it) may since describe a losing model.
    clustering.read().write_csv(workspace.clusters_table)
    write_playlists(clustering, workspace)
    write_clusters_summary(clustering, workspace)
    listening_map = None
    if map_method is not None:
        listening_map = write_champion_listening_map(clustering, workspace, method=map_method)
    return ChampionClusters(clustering=clustering, listening_map=listening_map, origin=origin)
