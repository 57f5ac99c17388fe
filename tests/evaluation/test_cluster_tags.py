"""The pretrained network's tags name the champion's clusters: in clusters.csv and clusters.md."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from tasks.evaluation.cluster_tags import TrackTags, characteristic_tags
from tasks.evaluation.clusters import (
    CLUSTER_TABLE_SCHEMA,
    TRACK_COLUMNS,
    clusters_summary_text,
    clusters_table,
)

NAMES = ["rock", "strings", "classical", "slow", "electronic", "dance"]
#                rock strings classical slow electronic dance
PROBABILITIES = np.array(
    [
        [0.60, 0.10, 0.10, 0.20, 0.05, 0.010],  # cluster 0: rock
        [0.70, 0.10, 0.10, 0.20, 0.05, 0.010],
        [0.10, 0.80, 0.60, 0.50, 0.05, 0.010],  # cluster 1: strings, classical, slow
        [0.10, 0.70, 0.70, 0.40, 0.05, 0.010],
        [0.30, 0.30, 0.30, 0.30, 0.05, 0.012],  # cluster 2: like the average, and a rare tag
        [0.30, 0.30, 0.30, 0.30, 0.05, 0.030],  # dance 0.021 vs 0.013: 1.6x, only 0.008 above
        [0.30, 0.20, 0.20, 0.20, 0.50, 0.010],  # noise: electronic, no cluster
    ]
)
LABELS = np.array([0, 0, 1, 1, 2, 2, -1])


def no_facts(track_ids: list[str]) -> pl.DataFrame:
    """Tracks without title, artist, file or duration."""
    return pl.DataFrame({"track_id": track_ids}).with_columns(
        pl.lit(None, dtype).alias(name) for name, dtype in TRACK_COLUMNS.items()
    )


def test_each_cluster_gets_the_tags_most_above_the_collection_average() -> None:
    # collection means: rock 0.343, strings 0.357, classical 0.329, slow 0.3, electronic 0.114
    tags = characteristic_tags(LABELS, PROBABILITIES, NAMES)
    # rock: 0.65 / 0.343 = 1.9x
    assert tags[0] == ["rock"]
    # classical 0.65/0.329 = 1.98x, strings 0.75/0.357 = 2.1x, slow 0.45/0.3 = 1.5x
    assert tags[1] == ["strings", "classical", "slow"]
    # nothing clearly above average: the rare tag's lift is noise (gain < MIN_TAG_GAIN)
    assert tags[2] == []
    assert -1 not in tags


def test_no_more_than_the_top_three_are_listed() -> None:
    probabilities = np.array([[0.9] * 5 + [0.0], [0.0] * 5 + [0.9]])
    names = ["a", "b", "c", "d", "e", "f"]
    tags = characteristic_tags(np.array([0, 1]), probabilities, names)
    assert tags == {0: ["a", "b", "c"], 1: ["f"]}


def test_the_table_and_summary_carry_each_clusters_tags() -> None:
    ids = [f"t{i}" for i in range(len(LABELS))]
    table = clusters_table(
        ids,
        np.random.default_rng(0).normal(size=(len(LABELS), 2)),
        LABELS,
        tracks=no_facts(ids),
        genre=[None] * len(ids),
        language=[None] * len(ids),
        tags=TrackTags(track_ids=ids, probabilities=PROBABILITIES, names=NAMES),
    )
    assert list(table.columns) == list(CLUSTER_TABLE_SCHEMA)
    by_track = dict(table.select("track_id", "cluster_tags").iter_rows())
    assert by_track["t2"] == by_track["t3"] == "strings, classical, slow"
    assert by_track["t0"] == "rock"
    assert by_track["t4"] == ""  # known, but nothing stands out
    assert by_track["t6"] is None  # noise
    text = clusters_summary_text(table, model="m", playlists=Path("playlists"))
    assert "- Tags: strings, classical, slow" in text
    assert "- Tags: none stands clearly above the collection average" in text


def test_without_pretrained_tags_the_column_is_empty_and_the_summary_silent() -> None:
    ids = ["a", "b", "c", "d"]
    table = clusters_table(
        ids,
        np.arange(8, dtype=float).reshape(4, 2),
        np.array([0, 0, 1, 1]),
        tracks=no_facts(ids),
        genre=[None] * 4,
        language=[None] * 4,
    )
    assert table["cluster_tags"].null_count() == 4
    assert "Tags" not in clusters_summary_text(table, model="m", playlists=Path("p"))
