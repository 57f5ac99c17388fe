"""The champion's clustering for people: songs by name, distances and outliers, playlists, the
cluster descriptions and the listening map's points."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tasks.core.workspace import Workspace
from tasks.evaluation.assignment import assign
from tasks.evaluation.clustering import NOISE_LABEL
from tasks.evaluation.clusters import (
    CLUSTER_TABLE_SCHEMA,
    ChampionClustering,
    clusters_console_lines,
    clusters_table,
    distances_to_centres,
    fit_champion_clustering,
    listening_map_points,
    typical_flags,
    write_clusters_summary,
    write_playlists,
)
from tasks.evaluation.listening_map import REQUIRED_COLUMNS
from tasks.evaluation.representations import Labels, Representation, file_sha
from tasks.training.representation import read_latents, write_latents
from tasks.training.trainer import TrackLatents

GENRES = ("rock", "jazz", "folk")
PER_GENRE = 6


@pytest.fixture
def collection(tmp_path: Path) -> tuple[Workspace, Representation, Labels]:
    """18 tracks in three well-separated groups, with audio files, titles and artists; t00 has
    no title, t01 no artist, t17 no file."""
    workspace = Workspace.open(tmp_path / "work")
    music = tmp_path / "music"
    music.mkdir()
    n = len(GENRES) * PER_GENRE
    track_ids = [f"t{i:02d}" for i in range(n)]
    paths = []
    for track_id in track_ids:
        path = music / f"{track_id} song.wav"
        path.write_bytes(b"")
        paths.append(str(path))
    paths[-1] = None
    pl.DataFrame(
        {
            "track_id": track_ids,
            "path": paths,
            "status": ["ok"] * n,
            "duration_s": [30.4 + i for i in range(n)],
            "title": [None] + [f"Song {i}" for i in range(1, n)],
            "artist": ["Ada", None] + [f"Artist {i % 4}" for i in range(2, n)],
        },
        schema_overrides={"path": pl.String, "title": pl.String, "artist": pl.String},
    ).write_parquet(workspace.tracks_table)
    rng = np.random.default_rng(0)
    centres = np.repeat(np.eye(len(GENRES), 3) * 20, PER_GENRE, axis=0)
    mu = (centres + rng.normal(scale=1.0, size=(n, 3))).astype(np.float32)
    latents = workspace.root / "latents.parquet"
    write_latents(TrackLatents(track_ids=track_ids, mu=mu, logvar=np.zeros_like(mu)), latents)
    representation = Representation(
        method="mlp_vae",
        features="default",
        latents=latents,
        latents_sha=file_sha(latents),
        standardize=False,
    )
    labels = Labels(
        track_ids=track_ids,
        genre=[GENRES[i // PER_GENRE] for i in range(n)],
        language=["en"] * (n - 3) + [None] * 3,
    )
    return workspace, representation, labels


def _fit(collection, algorithm: str = "gmm") -> ChampionClustering:
    workspace, representation, labels = collection
    return fit_champion_clustering.fn(
        representation, algorithm=algorithm, n_clusters=3, labels=labels, workspace=workspace
    )


def test_every_track_gets_a_row_with_its_name_file_labels_and_fitted_cluster(collection) -> None:
    workspace, representation, _ = collection
    clustering = _fit(collection)

    table = pl.read_parquet(workspace.clusters_table.with_suffix(".parquet"))
    assert table.columns == list(CLUSTER_TABLE_SCHEMA)
    assert clustering.read().equals(table)
    # clusters.csv waits for the champion's decision (`write_champion_clusters`).
    assert not workspace.clusters_table.exists()
    assert table.height == len(GENRES) * PER_GENRE
    by_track = {row["track_id"]: row for row in table.iter_rows(named=True)}
    assert by_track["t02"]["title"] == "Song 2"
    assert by_track["t02"]["artist"] == "Artist 2"
    assert by_track["t02"]["path"].endswith("t02 song.wav")
    assert by_track["t02"]["genre"] == "rock"
    assert by_track["t17"]["language"] is None
    # One numbering: the table's clusters are those the shipped state assigns to the same tracks.
    latents = read_latents(representation.latents)
    assigned, _ = assign(clustering.fitted, latents.mu)
    assert [by_track[t]["cluster"] for t in latents.track_ids] == assigned.tolist()
    # One genre per cluster, and each cluster listed from its most typical track outwards.
    assert table.group_by("cluster").agg(pl.col("genre").n_unique())["genre"].to_list() == [1] * 3
    for _, rows in table.group_by("cluster", maintain_order=True):
        assert rows["distance"].to_list() == sorted(rows["distance"].to_list())
    assert clustering.assignment().source == "gmm, the best model's fitted clustering"


def test_distances_are_measured_to_the_mean_of_the_cluster() -> None:
    z = np.array([[0.0, 0.0], [2.0, 0.0], [10.0, 10.0], [10.0, 14.0], [50.0, 50.0]])
    labels = np.array([0, 0, 1, 1, NOISE_LABEL])
    distances = distances_to_centres(z, labels)
    np.testing.assert_allclose(distances[:4], [1.0, 1.0, 2.0, 2.0])
    assert np.isnan(distances[-1])


def test_an_outlier_is_farther_from_its_centre_than_nine_tenths_of_its_cluster() -> None:
    distances = np.array([*range(1, 11), 3.0, 3.0, np.nan], dtype=np.float64)
    labels = np.array([0] * 10 + [1, 1, NOISE_LABEL])
    typical = typical_flags(distances, labels)
    assert typical[:10].tolist() == [True] * 9 + [False]  # 10 > the 90th percentile, 9.1
    assert typical[10:12].tolist() == [True, True]  # no spread, no outlier
    assert not typical[-1]  # noise is never typical


def test_noise_tracks_are_outliers_without_a_distance_and_listed_last() -> None:
    z = np.array([[0.0], [1.0], [2.0], [10.0], [11.0], [50.0]])
    labels = np.array([0, 0, 0, 1, 1, NOISE_LABEL])
    tracks = pl.DataFrame({"track_id": ["n"]}).with_columns(
        pl.lit(None, pl.String).alias("title"),
        pl.lit(None, pl.String).alias("artist"),
        pl.lit(None, pl.String).alias("path"),
        pl.lit(None, pl.Float64).alias("duration_s"),
    )
    table = clusters_table(
        ["a", "b", "c", "d", "e", "n"],
        z,
        labels,
        tracks=tracks,
        genre=[None] * 6,
        language=[None] * 6,
    )
    assert table["cluster"].to_list() == [0, 0, 0, 1, 1, NOISE_LABEL]
    assert table["track_id"].to_list()[0] == "b"  # the centre of cluster 0 comes first
    noise = table.row(-1, named=True)
    assert (noise["distance"], noise["typical"]) == (None, False)


def test_each_cluster_gets_a_playlist_a_media_player_opens(collection) -> None:
    workspace, _, _ = collection
    stale = workspace.playlist(7)
    stale.write_text("#EXTM3U\n")
    clustering = _fit(collection)

    paths = write_playlists.fn(clustering, workspace)

    assert not stale.exists()
    table = clustering.read()
    assert sorted(paths) == sorted(workspace.playlist(c) for c in table["cluster"].unique())
    for path in paths:
        lines = path.read_text(encoding="utf-8").splitlines()
        assert lines[0] == "#EXTM3U"
        infos, files = lines[1::2], lines[2::2]
        cluster_id = int(path.stem.removeprefix("cluster-"))
        rows = table.filter((pl.col("cluster") == cluster_id) & pl.col("path").is_not_null())
        assert len(files) == rows.height
        for info, location, row in zip(infos, files, rows.iter_rows(named=True), strict=True):
            assert not Path(location).is_absolute()
            assert (path.parent / location).resolve() == Path(row["path"]).resolve()
            assert info.startswith(f"#EXTINF:{round(row['duration_s'])},")
    text = "\n".join(p.read_text(encoding="utf-8") for p in paths)
    assert ",Artist 2 - Song 2\n" in text
    assert ",Song 1\n" in text  # no artist: the title alone
    assert ",t00 song\n" in text  # no title: the file name


def test_the_summary_describes_each_cluster_by_genre_language_and_typical_songs(
    collection,
) -> None:
    workspace, _, _ = collection
    clustering = _fit(collection)
    text = write_clusters_summary.fn(clustering, workspace).read_text(encoding="utf-8")

    table = clustering.read()
    for cluster_id in table["cluster"].unique():
        assert f"## Cluster {cluster_id}: {PER_GENRE} tracks" in text
        assert f"playlists/cluster-{cluster_id:02d}.m3u8" in text
        most_typical = table.filter(pl.col("cluster") == cluster_id).row(0, named=True)
        if most_typical["title"]:
            assert most_typical["title"] in text
    assert "rock 100%" in text
    assert "en 100%" in text
    assert "en 100% (of the tracks where known)" in text  # folk: three tracks without language
    assert "mlp_vae[default], gmm, 3 clusters" in text


def test_the_console_names_the_table_summary_and_playlists(collection) -> None:
    workspace, _, _ = collection
    lines = clusters_console_lines(workspace, None)
    assert str(workspace.clusters_summary) in lines
    assert str(workspace.playlist(0).parent) in lines
    assert "listening map" not in lines
    assert str(workspace.listening_map) in clusters_console_lines(
        workspace, workspace.listening_map
    )


def test_the_listening_map_points_are_the_table_on_a_map(collection) -> None:
    clustering = _fit(collection)
    points = listening_map_points(clustering, method="tsne")

    assert points is not None
    assert tuple(points.columns) == REQUIRED_COLUMNS
    assert points.height == len(GENRES) * PER_GENRE - 1  # t17 has no file to play
    assert all(Path(p).is_absolute() for p in points["audio_path"])
    assert points.filter(pl.col("track_id") == "t00")["title"].to_list() == ["t00 song"]
    assert points.select(pl.col("x", "y").is_finite().all()).row(0) == (True, True)
    table = clustering.read().filter(pl.col("path").is_not_null())
    assert points["track_id"].to_list() == table["track_id"].to_list()  # most typical first
    assert points["cluster"].to_list() == table["cluster"].to_list()
