"""Placing new tracks: nearest collection tracks in the clustering's space, tracks named by artist
and title, a printed table that says what its score means."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from tasks.audio.features import FeatureConfig
from tasks.evaluation.clustering import NOISE_LABEL
from tasks.prediction.champion import ChampionPackage
from tasks.prediction.placement import (
    NEAREST_LEGEND,
    NEAREST_SEPARATOR,
    NOISE_LEGEND,
    SCORE_LEGEND,
    format_predictions,
    nearest_reference_tracks,
    predictions_table,
)
from tests.prediction.cards import card


def test_nearest_tracks_are_ranked_in_the_clustering_space() -> None:
    # Dimension 0 varies over ~100 units in the collection, dimension 1 over ~0.1: raw distances
    # rank by dimension 0 alone (a, c, b for the first query); the clustering's scaler makes
    # a unit step in dimension 1 count a thousand times more.
    reference = np.array([[0.0, 0.0], [3.0, 1.0], [100.0, 1.0]])
    clustering = {"mean": [0.0, 0.0], "scale": [100.0, 0.1]}
    query = np.array([[0.0, 1.0], [100.0, 0.0]])
    nearest = nearest_reference_tracks(query, reference, ["a", "c", "b"], clustering, 2)
    assert nearest == [["c", "b"], ["a", "b"]]
    everything = nearest_reference_tracks(query, reference, ["a", "c", "b"], clustering, 10)
    assert everything[0] == ["c", "b", "a"]  # k is capped at the collection size


# ------------------------------------------------------------------------- the predictions table


def _package(folder: Path, reference: pl.DataFrame, clustering: dict) -> ChampionPackage:
    reference.write_parquet(folder / "reference.parquet")
    return ChampionPackage(
        model_uri="models:/vaemusic@champion",
        version="1",
        folder=folder,
        card=card("mlp_vae"),
        feature_config=FeatureConfig(),
        clustering=clustering,
        reference=folder / "reference.parquet",
    )


KMEANS_STATE = {
    "algorithm": "kmeans",
    "n_features": 2,
    "mean": [0.0, 0.0],
    "scale": [1.0, 1.0],
    "score_kind": "distance",
    "cluster_ids": [0, 1],
    "centroids": [[0.0, 0.0], [10.0, 10.0]],
}


def _predicted(tmp_path: Path, reference: pl.DataFrame, state: dict = KMEANS_STATE):
    tracks = pl.DataFrame(
        {
            "track_id": ["new1", "new2", "bad"],
            "path": ["/music/a.wav", "/music/b.wav", "/music/bad.wav"],
            "status": ["ok", "ok", "quarantined"],
            "reason": [None, None, "cannot decode"],
            "title": ["Blue", None, None],
            "artist": ["Ada", None, None],
        }
    )
    latents = tmp_path / "predict_latents.parquet"
    pl.DataFrame({"track_id": ["new1", "new2"], "mu": [[0.5, 0.0], [9.0, 9.5]]}).write_parquet(
        latents
    )
    package = _package(tmp_path, reference, state)
    return predictions_table(tracks, latents, package, n_nearest=2)


REFERENCE = pl.DataFrame(
    {
        "track_id": ["r1", "r2", "r3"],
        "cluster": [0, 0, 1],
        "title": ["Red", None, "Green"],
        "artist": ["Bo", None, None],
        "mu": [[0.0, 0.0], [1.0, 0.0], [10.0, 10.0]],
    }
)


def test_predictions_name_new_and_collection_tracks_by_artist_and_title(tmp_path: Path) -> None:
    table = _predicted(tmp_path, REFERENCE)
    assert table["track"].to_list() == ["Ada - Blue", "b.wav", "bad.wav"]
    assert table["cluster"].to_list() == [0, 1, None]
    # nearest first; a collection track without a title is named by its id
    assert table["nearest_tracks"].to_list() == [
        f"Bo - Red{NEAREST_SEPARATOR}r2",
        f"Green{NEAREST_SEPARATOR}r2",
        None,
    ]
    assert table["nearest_track_ids"].to_list()[:2] == [
        f"r1{NEAREST_SEPARATOR}r2",
        f"r3{NEAREST_SEPARATOR}r2",
    ]


def test_a_package_without_titles_names_collection_tracks_by_id(tmp_path: Path) -> None:
    # Champions registered before titles were kept in reference.parquet still predict.
    table = _predicted(tmp_path, REFERENCE.drop("title", "artist"))
    assert table["nearest_tracks"][0] == f"r1{NEAREST_SEPARATOR}r2"


def test_the_printed_table_names_tracks_and_explains_its_score(tmp_path: Path) -> None:
    text = format_predictions(_predicted(tmp_path, REFERENCE))
    assert "Ada - Blue" in text
    assert "new1" not in text  # ids are not shown
    assert text.splitlines()[-2] == SCORE_LEGEND["distance"]
    assert text.splitlines()[-1] == NEAREST_LEGEND
    assert NOISE_LEGEND not in text


def test_a_gmm_score_is_explained_as_a_probability_and_noise_as_no_cluster(tmp_path) -> None:
    table = _predicted(tmp_path, REFERENCE).with_columns(
        pl.lit("posterior_probability").alias("score_kind"),
        pl.Series("cluster", [0, NOISE_LABEL, None], dtype=pl.Int64),
    )
    text = format_predictions(table)
    assert SCORE_LEGEND["posterior_probability"] in text
    assert SCORE_LEGEND["distance"] not in text
    assert NOISE_LEGEND in text
