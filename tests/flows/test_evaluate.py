"""The evaluation flow on a hand-made work dir: which model gets the interactive map, and the
champion's clusters for people (table, playlists, descriptions, listening map)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from flows.evaluate import EvaluateConfig, evaluate_flow
from tasks.audio.decoding import AudioConfig
from tasks.audio.features import FeatureConfig
from tasks.audio.ingest import IngestRecord
from tasks.core.workspace import Workspace
from tasks.evaluation.representations import Representation, file_sha
from tasks.training.representation import write_latents
from tasks.training.trainer import TrackLatents

GENRES = ("rock", "jazz", "blues")
TRACKS_PER_GENRE = 8


def _ingested_workspace(root: Path) -> Workspace:
    """A work dir as the ingest leaves it (track table and record), without audio."""
    workspace = Workspace.open(root)
    track_ids = [f"{genre}{i}" for genre in GENRES for i in range(TRACKS_PER_GENRE)]
    music = root / "music"
    music.mkdir()
    for track_id in track_ids:
        (music / f"{track_id}.wav").write_bytes(b"")  # a path to play; never decoded here
    pl.DataFrame(
        {
            "track_id": track_ids,
            "path": [str(music / f"{t}.wav") for t in track_ids],
            "status": ["ok"] * len(track_ids),
            "duration_s": [30.0] * len(track_ids),
            "genre": [t.rstrip("0123456789") for t in track_ids],
            "language": [None] * len(track_ids),
            "title": [f"Song {t}" for t in track_ids],
            "artist": ["Band"] * len(track_ids),
            "sha256": [f"{i:064x}" for i in range(len(track_ids))],
        },
        schema_overrides={"language": pl.String},
    ).write_parquet(workspace.tracks_table)
    IngestRecord(
        fingerprint="hand-made",
        feature_key="unused",
        features=FeatureConfig(),
        audio=AudioConfig(),
        data=str(root),
    ).write(workspace)
    return workspace


def _model(workspace: Workspace, method: str, mu: np.ndarray) -> Representation:
    track_ids = pl.read_parquet(workspace.tracks_table)["track_id"].to_list()
    path = workspace.root / f"{method}.parquet"
    mu = mu.astype(np.float32)
    write_latents(TrackLatents(track_ids=track_ids, mu=mu, logvar=np.zeros_like(mu)), path)
    return Representation(
        method=method, features="default", latents=path, latents_sha=file_sha(path)
    )


def test_the_interactive_map_is_drawn_for_the_best_model_not_the_first(
    prefect_api, tmp_path: Path
) -> None:
    # Bug: the HTML map went to the first unsupervised zoo model in the list, whatever its rank.
    workspace = _ingested_workspace(tmp_path / "work")
    rng = np.random.default_rng(0)
    n = len(GENRES) * TRACKS_PER_GENRE
    noise = _model(workspace, "ae", rng.normal(size=(n, 4)))
    centres = np.repeat(np.eye(len(GENRES), 4) * 10, TRACKS_PER_GENRE, axis=0)
    by_genre = _model(workspace, "mlp_vae", centres + rng.normal(scale=0.1, size=(n, 4)))

    result = evaluate_flow(
        EvaluateConfig(
            workdir=workspace.root,
            algorithms=["kmeans"],
            seeds=1,
            maps=["tsne"],
            representations=[noise, by_genre],
            promote_champion=False,
        )
    )

    assert result.best["method"] == "mlp_vae"
    assert result.champion_version is None
    assert (workspace.plots / by_genre.slug / "interactive.html").is_file()
    assert not (workspace.plots / noise.slug / "interactive.html").exists()
    assert (workspace.plots / noise.slug / "tsne_genre.png").is_file()

    # The champion's clusters, for people: every song by name, a playlist per cluster, a
    # description of each cluster and a map to listen to; the console says where they are.
    clusters = pl.read_csv(workspace.clusters_table)
    assert clusters.height == n
    assert set(clusters["title"]) == {f"Song {t}" for t in clusters["track_id"]}
    assert clusters.group_by("cluster").agg(pl.col("genre").n_unique())["genre"].max() == 1
    for cluster_id in clusters["cluster"].unique():
        playlist = workspace.playlist(cluster_id).read_text(encoding="utf-8")
        assert playlist.startswith("#EXTM3U\n#EXTINF:30,Band - Song ")
    summary = workspace.clusters_summary.read_text(encoding="utf-8")
    assert f"## Cluster 0: {TRACKS_PER_GENRE} tracks" in summary
    assert "mlp_vae[default], kmeans, 3 clusters" in summary
    assert workspace.listening_map.is_file()
    assert str(workspace.clusters_summary) in result.summary
    assert str(workspace.playlist(0).parent) in result.summary
    assert str(workspace.listening_map) in result.summary
