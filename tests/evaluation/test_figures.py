"""Which clusters a representation's figures show: the champion's own, else k-means."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tasks.evaluation import figures
from tasks.evaluation.clustering import cluster
from tasks.evaluation.clusters import ClusterAssignment
from tasks.evaluation.figures import KMEANS_SOURCE, draw_representation, figure_clusters
from tasks.evaluation.representations import Labels, Representation
from tasks.training import lanes
from tasks.training.lanes import run_in_lane
from tasks.training.representation import write_latents
from tasks.training.trainer import TrackLatents

TRACK_IDS = [f"t{i}" for i in range(9)]


@pytest.fixture
def latents() -> TrackLatents:
    rng = np.random.default_rng(0)
    mu = np.repeat(np.eye(3) * 10, 3, axis=0) + rng.normal(scale=0.1, size=(9, 3))
    return TrackLatents(track_ids=TRACK_IDS, mu=mu, logvar=np.zeros_like(mu))


def _representation() -> Representation:
    return Representation(
        method="mlp_vae", features="default", latents=Path("/nowhere.parquet"), latents_sha="x"
    )


def test_the_champions_figures_number_clusters_as_its_fitted_clustering(latents) -> None:
    # Bug: the champion's maps and heatmaps were re-clustered by k-means, so their cluster
    # numbers differed from the registered model's, clusters.csv's and predict's.
    fitted = [7, 7, 7, 2, 2, 2, 5, 5, 5]  # e.g. a GMM's own ids, given in another track order
    given = ClusterAssignment(
        track_ids=TRACK_IDS[::-1],
        clusters=fitted[::-1],
        source="gmm, the best model's fitted clustering",
    )
    clusters, source = figure_clusters(_representation(), latents, 3, given)
    assert clusters.tolist() == fitted
    assert source == "gmm, the best model's fitted clustering"


def test_other_representations_are_drawn_with_kmeans(latents) -> None:
    clusters, source = figure_clusters(_representation(), latents, 3, None)
    expected = cluster(latents.mu, algorithm="kmeans", n_clusters=3, seed=0).labels
    assert clusters.tolist() == expected.tolist()
    assert source == KMEANS_SOURCE


def test_a_given_clustering_of_other_tracks_is_refused(latents) -> None:
    given = ClusterAssignment(track_ids=["other"], clusters=[0], source="gmm")
    with pytest.raises(KeyError):
        figure_clusters(_representation(), latents, 3, given)


def test_figures_drawn_in_a_worker_lane_are_those_drawn_here(
    latents, tmp_path, monkeypatch
) -> None:
    """The evaluation draws a representation's figures in a free lane (matplotlib holds the GIL,
    so threads of one process draw on one core): a worker process writes the same images, byte
    for byte, as this process."""
    write_latents(latents, tmp_path / "latents.parquet")
    representation = Representation(
        method="mlp_vae",
        features="default",
        latents=tmp_path / "latents.parquet",
        latents_sha="x",
    )
    labels = Labels(
        track_ids=TRACK_IDS,
        genre=["rock", "rock", "rock", "jazz", "jazz", "jazz", "pop", "pop", None],
        language=[None] * 9,
    )
    arguments = (representation, labels, 3)
    here = draw_representation(*arguments, tmp_path / "here", ["tsne"], True)
    drawn_by = []

    def recorded(function, *args, **kwargs):
        drawn_by.append(function)
        return run_in_lane(function, *args, **kwargs)

    monkeypatch.setattr(figures, "run_in_lane", recorded)
    with lanes.open_lanes(2), lanes._own_lane:  # this process's lane is taken: a worker draws
        assert lanes.lanes_open()
        there = figures.plot_representation.fn(*arguments, tmp_path / "there", ["tsne"], True)
    assert drawn_by == [draw_representation]  # the task handed its body to a lane
    names = sorted(Path(p).relative_to(tmp_path / "here").as_posix() for p in here)
    assert names == sorted(Path(p).relative_to(tmp_path / "there").as_posix() for p in there)
    assert {"mlp_vae-default/tsne_genre.png", "mlp_vae-default/cluster_genre.png"} <= set(names)
    images = [name for name in names if name.endswith(".png")]  # the HTML map has random ids
    assert len(images) >= 3
    for name in images:
        assert (tmp_path / "here" / name).read_bytes() == (tmp_path / "there" / name).read_bytes()
