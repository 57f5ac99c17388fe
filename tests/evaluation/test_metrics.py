"""Metrics: known small cases, unknown labels, noise, and aggregation over seeds."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from sklearn.datasets import make_blobs

from tasks.evaluation.metrics import aggregate_over_seeds, external_metrics, internal_metrics


def test_perfect_clustering_scores_one_on_every_external_metric() -> None:
    truth = ["rock", "rock", "jazz", "jazz", "pop", "pop"]
    metrics = external_metrics(truth, [0, 0, 1, 1, 2, 2])
    for name in ("ari", "nmi", "purity", "accuracy"):
        assert metrics[name] == pytest.approx(1.0), name
    assert metrics["n_labelled"] == 6
    assert metrics["external_reason"] == ""


def test_renamed_clusters_still_score_one() -> None:
    truth = np.array([0, 0, 1, 1, 2, 2])
    metrics = external_metrics(truth, np.array([7, 7, 3, 3, 5, 5]))
    for name in ("ari", "nmi", "purity", "accuracy"):
        assert metrics[name] == pytest.approx(1.0), name


def test_purity_and_accuracy_of_a_hand_computed_case() -> None:
    # cluster 0 = {a, a, a, b, b}, cluster 1 = {a, a}
    # purity: majorities 3 + 2 = 5 of 7
    # accuracy: greedy would take 0->a (3) and leave 1 with b (0) = 3/7, the best one-to-one
    # matching is 0->b (2) and 1->a (2) = 4/7
    truth = ["a", "a", "a", "b", "b", "a", "a"]
    predicted = [0, 0, 0, 0, 0, 1, 1]
    metrics = external_metrics(truth, predicted)
    assert metrics["purity"] == pytest.approx(5 / 7)
    assert metrics["accuracy"] == pytest.approx(4 / 7)


def test_hungarian_matching_with_more_clusters_than_classes() -> None:
    # three pure clusters, two classes: purity is perfect, but only two clusters can be matched
    truth = ["a", "a", "a", "a", "b", "b"]
    predicted = [0, 0, 1, 1, 2, 2]
    metrics = external_metrics(truth, predicted)
    assert metrics["purity"] == pytest.approx(1.0)
    assert metrics["accuracy"] == pytest.approx(4 / 6)


def test_hungarian_matching_with_fewer_clusters_than_classes() -> None:
    truth = ["a", "b", "c", "a", "b", "c"]
    predicted = [0, 0, 0, 1, 1, 1]
    metrics = external_metrics(truth, predicted)
    assert metrics["accuracy"] == pytest.approx(2 / 6)
    assert metrics["purity"] == pytest.approx(2 / 6)
    assert metrics["ari"] <= 1e-9  # no agreement beyond chance


def test_unknown_labels_are_excluded() -> None:
    truth = ["a", None, "a", "b", float("nan"), "b"]
    predicted = [0, 1, 0, 1, 0, 1]
    metrics = external_metrics(truth, predicted)
    assert metrics["n_labelled"] == 4
    for name in ("ari", "nmi", "purity", "accuracy"):
        assert metrics[name] == pytest.approx(1.0), name


def test_polars_nulls_are_unknown_labels() -> None:
    truth = pl.Series("genre", ["a", "a", None, "b", "b", None])
    metrics = external_metrics(truth, np.array([0, 0, 0, 1, 1, 1]))
    assert metrics["n_labelled"] == 4
    assert metrics["accuracy"] == pytest.approx(1.0)


def test_no_known_label_gives_nan_with_a_reason() -> None:
    metrics = external_metrics([None, None, None], [0, 1, 1])
    assert all(math.isnan(metrics[name]) for name in ("ari", "nmi", "purity", "accuracy"))
    assert "none of the 3 points" in metrics["external_reason"]


def test_noise_counts_as_its_own_cluster() -> None:
    truth = ["a", "a", "b", "b"]
    predicted = [0, -1, 1, -1]
    metrics = external_metrics(truth, predicted)
    # clusters {a}, {b} and noise {a, b}: purity 3/4, best one-to-one matching 2/4
    assert metrics["purity"] == pytest.approx(3 / 4)
    assert metrics["accuracy"] == pytest.approx(2 / 4)


def test_key_suffix_names_the_target() -> None:
    metrics = external_metrics(["en", "hi"], [0, 1], key_suffix="_language")
    assert set(metrics) == {
        "ari_language",
        "nmi_language",
        "purity_language",
        "accuracy_language",
        "n_labelled_language",
        "external_reason_language",
    }


def test_external_metrics_reject_different_lengths() -> None:
    with pytest.raises(ValueError, match="labels_true has 3"):
        external_metrics(["a", "b", "c"], [0, 1])


@pytest.fixture(scope="module")
def separated_blobs() -> tuple[np.ndarray, np.ndarray]:
    return make_blobs(
        n_samples=90, centers=3, n_features=4, cluster_std=0.3, center_box=(-20, 20), random_state=0
    )


def test_well_separated_blobs_score_well_internally(separated_blobs) -> None:
    x, truth = separated_blobs
    good = internal_metrics(x, truth)
    shuffled = internal_metrics(x, np.random.default_rng(0).permutation(truth))
    assert good["silhouette"] > 0.8
    assert good["davies_bouldin"] < 0.3
    assert good["calinski_harabasz"] > 100 * shuffled["calinski_harabasz"]
    assert shuffled["silhouette"] < 0.1
    assert good["internal_reason"] == ""


def test_single_cluster_gives_nan_with_a_reason(separated_blobs) -> None:
    x, _ = separated_blobs
    metrics = internal_metrics(x, np.zeros(len(x), dtype=int))
    assert all(
        math.isnan(metrics[name]) for name in ("silhouette", "calinski_harabasz", "davies_bouldin")
    )
    assert "at least 2 clusters" in metrics["internal_reason"]


def test_all_noise_gives_nan_with_a_reason(separated_blobs) -> None:
    x, _ = separated_blobs
    metrics = internal_metrics(x, np.full(len(x), -1))
    assert math.isnan(metrics["silhouette"])
    assert "0 non-noise points" in metrics["internal_reason"]


def test_noise_points_are_left_out_of_internal_metrics(separated_blobs) -> None:
    x, truth = separated_blobs
    with_noise = truth.copy()
    with_noise[::10] = -1
    kept = with_noise != -1
    # standardise once on the whole data, as the clustering did, then compare on kept points
    expected = internal_metrics(x, with_noise)
    mean, std = x.mean(axis=0), x.std(axis=0)
    direct = internal_metrics((x[kept] - mean) / std, truth[kept], standardize_input=False)
    assert expected["silhouette"] == pytest.approx(direct["silhouette"])
    assert expected["davies_bouldin"] == pytest.approx(direct["davies_bouldin"])


def test_aggregate_gives_mean_and_sample_std() -> None:
    rows = [
        {"method": "conv_vae", "seed": 0, "nmi": 0.5, "n_clusters": 4, "uses_labels": False},
        {"method": "conv_vae", "seed": 1, "nmi": 0.7, "n_clusters": 5, "uses_labels": False},
        {"method": "conv_vae", "seed": 2, "nmi": 0.6, "n_clusters": 4, "uses_labels": False},
    ]
    aggregated = aggregate_over_seeds(rows)
    assert aggregated["nmi"] == pytest.approx(0.6)
    assert aggregated["nmi_std"] == pytest.approx(0.1)
    assert aggregated["n_clusters"] == pytest.approx(13 / 3)
    assert aggregated["method"] == "conv_vae"
    assert aggregated["uses_labels"] is False
    assert aggregated["n_seeds"] == 3
    assert "seed" not in aggregated


def test_aggregate_skips_undefined_values_and_handles_one_seed() -> None:
    rows = [
        {"silhouette": 0.4, "internal_reason": ""},
        {"silhouette": float("nan"), "internal_reason": "1 cluster(s)"},
    ]
    aggregated = aggregate_over_seeds(rows)
    assert aggregated["silhouette"] == pytest.approx(0.4)
    assert math.isnan(aggregated["silhouette_std"])
    assert aggregated["internal_reason"] == "1 cluster(s)"
    single = aggregate_over_seeds([{"ari": 0.3}])
    assert single["ari"] == pytest.approx(0.3)
    assert math.isnan(single["ari_std"])


def test_aggregate_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one row"):
        aggregate_over_seeds([])
