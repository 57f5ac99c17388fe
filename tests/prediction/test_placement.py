"""Placing new tracks: nearest collection tracks in the clustering's space."""

from __future__ import annotations

import numpy as np

from tasks.prediction.placement import nearest_reference_tracks


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
