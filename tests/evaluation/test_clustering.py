"""Clustering: every algorithm finds obvious blobs, assigns new points, and survives JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score
from sklearn.metrics.pairwise import euclidean_distances

from tasks.evaluation.assignment import assign, fitted_from_json, fitted_to_json
from tasks.evaluation.clustering import (
    ALGORITHMS,
    ClusteringError,
    choose_covariance_type,
    choose_dbscan_eps,
    choose_n_clusters,
    cluster,
    default_min_samples,
    knee_of_increasing_curve,
    standardize,
)

CENTRES = np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 10.0, 0.0], [0.0, 0.0, 10.0]])


@pytest.fixture(scope="module")
def blobs() -> tuple[np.ndarray, np.ndarray]:
    """Four tight, far-apart blobs of 40 points in 3-D; the last dimension's unit is 100x."""
    x, y = make_blobs(n_samples=160, centers=CENTRES, cluster_std=0.5, random_state=0)
    return x * np.array([1.0, 1.0, 100.0]), y


@pytest.fixture(scope="module")
def fitted(blobs: tuple[np.ndarray, np.ndarray]) -> dict[str, object]:
    x, _ = blobs
    return {
        algorithm: cluster(x, algorithm=algorithm, n_clusters=4, seed=0) for algorithm in ALGORITHMS
    }


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_algorithm_recovers_the_blobs(algorithm, blobs, fitted) -> None:
    _, truth = blobs
    result = fitted[algorithm]
    clustered = result.labels != -1
    assert result.labels.shape == truth.shape
    assert result.labels.dtype == np.int64
    assert result.n_clusters == 4
    assert result.noise_fraction < 0.1
    assert adjusted_rand_score(truth[clustered], result.labels[clustered]) == pytest.approx(1.0)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_new_points_near_a_blob_get_that_blobs_cluster(algorithm, blobs, fitted) -> None:
    _, truth = blobs
    result = fitted[algorithm]
    rng = np.random.default_rng(1)
    scale = np.array([1.0, 1.0, 100.0])
    for blob, centre in enumerate(CENTRES):
        new_points = (centre + rng.normal(0.0, 0.1, size=(5, 3))) * scale
        labels, scores = assign(result.fitted, new_points)
        training_labels = result.labels[(truth == blob) & (result.labels != -1)]
        expected = np.bincount(training_labels).argmax()
        assert labels.tolist() == [expected] * 5
        assert scores.shape == (5,)
        assert np.all(np.isfinite(scores))


def test_assign_reproduces_the_fitted_labels_of_a_gmm(blobs, fitted) -> None:
    x, _ = blobs
    labels, probabilities = assign(fitted["gmm"].fitted, x)
    np.testing.assert_array_equal(labels, fitted["gmm"].labels)
    assert np.all((probabilities > 0.5) & (probabilities <= 1.0))


def test_dbscan_assigns_far_away_points_to_noise(fitted) -> None:
    far = np.array([[50.0, 50.0, 5000.0], [-40.0, 30.0, -3000.0]])
    labels, distances = assign(fitted["dbscan"].fitted, far)
    assert labels.tolist() == [-1, -1]
    assert np.all(distances > fitted["dbscan"].params["eps"])


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_fitted_state_round_trips_through_json(algorithm, blobs, fitted) -> None:
    x, _ = blobs
    state = fitted[algorithm].fitted
    text = fitted_to_json(state)
    restored = fitted_from_json(text)
    assert restored == json.loads(json.dumps(state))
    before = assign(state, x[:20])
    after = assign(restored, x[:20])
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_allclose(before[1], after[1])


def test_fitted_from_json_rejects_other_versions_and_non_states(fitted) -> None:
    state = dict(fitted["kmeans"].fitted, version=999)
    with pytest.raises(ClusteringError, match="version"):
        fitted_from_json(json.dumps(state))
    with pytest.raises(ClusteringError, match="algorithm"):
        fitted_from_json("[1, 2, 3]")


def test_params_record_how_each_algorithm_was_configured(fitted) -> None:
    assert fitted["agglomerative"].params["linkage"] == "ward"
    assert fitted["gmm"].params["covariance_type"] in ("full", "diag")
    assert fitted["gmm"].params["n_init"] >= 3
    assert fitted["dbscan"].params["eps"] > 0
    assert fitted["dbscan"].params["min_samples"] >= 4
    assert fitted["kmeans"].params["n_clusters_source"] == "given"
    assert fitted["dbscan"].params["n_clusters_source"] == "density"


def test_standardisation_stops_a_wide_noise_dimension_from_deciding_the_clusters() -> None:
    rng = np.random.default_rng(0)
    truth = np.repeat([0, 1], 50)
    informative = truth + rng.normal(0.0, 0.05, 100)  # two groups, 1 unit apart
    wide_noise = rng.uniform(-1000.0, 1000.0, 100)  # no structure, huge scale
    x = np.column_stack([informative, wide_noise])
    standardised = cluster(x, algorithm="kmeans", n_clusters=2, seed=0)
    raw = cluster(x, algorithm="kmeans", n_clusters=2, seed=0, standardize_input=False)
    assert adjusted_rand_score(truth, standardised.labels) == pytest.approx(1.0)
    assert adjusted_rand_score(truth, raw.labels) < 0.2


def test_standardize_leaves_constant_dimensions_at_zero() -> None:
    x = np.column_stack([np.arange(5.0), np.full(5, 7.0)])
    z = standardize(x)
    np.testing.assert_allclose(z[:, 1], 0.0)
    assert z[:, 0].std() == pytest.approx(1.0)


def test_dbscan_eps_lies_between_within_and_between_cluster_distances() -> None:
    x, truth = make_blobs(
        n_samples=200, centers=CENTRES[:, :2][:3] * 2, cluster_std=0.5, random_state=3
    )
    distances = euclidean_distances(x)
    same = truth[:, None] == truth[None, :]
    np.fill_diagonal(distances, np.inf)
    nearest_within = np.where(same, distances, np.inf).min(axis=1)
    closest_between = np.where(same, np.inf, distances).min()
    eps = choose_dbscan_eps(x, min_samples=4)
    assert np.median(nearest_within) < eps < closest_between


def test_dbscan_reports_scattered_points_as_noise() -> None:
    x, _ = make_blobs(n_samples=150, centers=CENTRES, cluster_std=0.4, random_state=1)
    rng = np.random.default_rng(2)
    scattered = rng.uniform(-20.0, 30.0, size=(8, 3))
    scattered = scattered[np.min(euclidean_distances(scattered, CENTRES), axis=1) > 6.0]
    assert len(scattered) >= 3
    result = cluster(np.vstack([x, scattered]), algorithm="dbscan", n_clusters=None, seed=0)
    assert result.n_clusters == 4
    noise = result.labels == -1
    assert np.all(noise[len(x) :]), "every scattered point should be noise"
    assert result.noise_fraction == pytest.approx(noise.mean())
    assert result.noise_fraction >= len(scattered) / (len(x) + len(scattered))


def test_dbscan_ignores_n_clusters_and_finds_its_own(blobs) -> None:
    x, _ = blobs
    result = cluster(x, algorithm="dbscan", n_clusters=2, seed=0)
    assert result.n_clusters == 4
    assert "n_clusters" not in result.params


def test_knee_is_where_a_flat_curve_turns_steep() -> None:
    curve = np.concatenate([np.linspace(1.0, 1.5, 90), np.linspace(3.0, 20.0, 10)])
    assert 85 <= knee_of_increasing_curve(curve) <= 90
    assert knee_of_increasing_curve(np.ones(10)) == 9


def test_choose_dbscan_eps_rejects_min_samples_out_of_range(blobs) -> None:
    x, _ = blobs
    with pytest.raises(ClusteringError, match="min_samples"):
        choose_dbscan_eps(x, min_samples=len(x))


def test_choose_dbscan_eps_stays_positive_on_duplicated_points() -> None:
    x = np.vstack([np.zeros((10, 2)), np.ones((10, 2))])
    assert choose_dbscan_eps(x, min_samples=4) > 0


@pytest.mark.parametrize("criterion", ["silhouette", "bic"])
def test_choose_n_clusters_finds_the_number_of_blobs(criterion, blobs) -> None:
    x, _ = blobs
    assert choose_n_clusters(x, criterion=criterion, k_range=(2, 7), seed=0) == 4


def test_cluster_without_n_clusters_chooses_it(blobs) -> None:
    x, _ = blobs
    result = cluster(x, algorithm="agglomerative", n_clusters=None, seed=0, k_range=(2, 6))
    assert result.n_clusters == 4
    assert result.params["n_clusters_source"] == "silhouette"


def test_covariance_type_follows_points_per_dimension() -> None:
    assert choose_covariance_type(n_samples=1000, n_features=2, n_components=4) == "full"
    assert choose_covariance_type(n_samples=300, n_features=32, n_components=10) == "diag"


def test_default_min_samples_is_two_d_capped_by_the_data_size() -> None:
    assert default_min_samples(n_samples=1000, n_features=3) == 6
    assert default_min_samples(n_samples=1000, n_features=1) == 4
    assert default_min_samples(n_samples=200, n_features=32) == 10


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"algorithm": "spectral", "n_clusters": 3}, "algorithm must be one of"),
        ({"algorithm": "kmeans", "n_clusters": 1}, "n_clusters must be between"),
        ({"algorithm": "gmm", "n_clusters": 500}, "n_clusters must be between"),
    ],
)
def test_bad_parameters_are_named_in_the_error(kwargs, message, blobs) -> None:
    x, _ = blobs
    with pytest.raises(ClusteringError, match=message):
        cluster(x, seed=0, **kwargs)


def test_bad_inputs_are_rejected(fitted) -> None:
    with pytest.raises(ClusteringError, match="NaN"):
        cluster(
            np.array([[0.0, np.nan], [1.0, 2.0], [3.0, 4.0]]),
            algorithm="kmeans",
            n_clusters=2,
            seed=0,
        )
    with pytest.raises(ClusteringError, match="2-D"):
        cluster(np.zeros(10), algorithm="kmeans", n_clusters=2, seed=0)
    with pytest.raises(ClusteringError, match="dimensions"):
        assign(fitted["kmeans"].fitted, np.zeros((2, 5)))
