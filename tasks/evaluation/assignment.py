"""New points placed in a fitted clustering, and the fitted state's JSON form.

A fitted state (`tasks.evaluation.clustering.ClusteringResult.fitted`) is a plain dict of strings,
ints, floats and nested lists of floats; `fitted_to_json` / `fitted_from_json` round-trip it
exactly so it can ship with a registered model, and `assign` needs nothing else to label new
points in the space of the fit.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
from scipy.special import logsumexp

from tasks.evaluation.clustering import (
    ALGORITHMS,
    FITTED_STATE_VERSION,
    NOISE_LABEL,
    ClusteringError,
    check_features,
)


def _nearest(points: np.ndarray, references: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of and Euclidean distance to the nearest row of ``references`` for each point."""
    squared = (
        np.sum(points**2, axis=1, keepdims=True)
        - 2.0 * points @ references.T
        + np.sum(references**2, axis=1)[None, :]
    )
    index = np.argmin(squared, axis=1)
    distance = np.sqrt(np.maximum(squared[np.arange(len(points)), index], 0.0))
    return index, distance


def _gaussian_log_density(
    z: np.ndarray, mean: np.ndarray, covariance: np.ndarray, covariance_type: str
) -> np.ndarray:
    """log N(z | mean, covariance) for each row of ``z``; covariance is (d,) for 'diag'."""
    d = z.shape[1]
    centred = z - mean
    if covariance_type == "diag":
        mahalanobis = np.sum(centred**2 / covariance, axis=1)
        log_det = np.sum(np.log(covariance))
    else:
        cholesky = np.linalg.cholesky(covariance)
        solved = np.linalg.solve(cholesky, centred.T)
        mahalanobis = np.sum(solved**2, axis=0)
        log_det = 2.0 * np.sum(np.log(np.diag(cholesky)))
    return -0.5 * (d * math.log(2.0 * math.pi) + log_det + mahalanobis)


def assign(fitted_state: dict[str, Any], x_new: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cluster labels of new points under a fitted clustering.

    Args:
        fitted_state: :attr:`ClusteringResult.fitted`, or its JSON round trip.
        x_new: np.ndarray [shape=(m, d)] in the original (unstandardised) space; the stored
            scaler is applied here.

    Returns:
        ``(labels, scores)``, each [shape=(m,)]. Labels are int64 cluster ids as in the fit.
        Scores depend on the algorithm (``fitted_state["score_kind"]`` names it):

        - kmeans: Euclidean distance to the nearest centroid (standardised units; lower = closer).
        - agglomerative: distance to the nearest centroid of the fitted clusters.
        - dbscan: distance to the nearest core point; label ``-1`` when it exceeds ``eps`` or
          when the fit found no core point at all.
        - gmm: posterior probability of the chosen component (in [0, 1]; higher = surer).

    Raises:
        ClusteringError: malformed state or ``x_new`` of the wrong width.
    """
    try:
        algorithm = fitted_state["algorithm"]
        d = int(fitted_state["n_features"])
        mean = np.asarray(fitted_state["mean"], dtype=np.float64)
        scale = np.asarray(fitted_state["scale"], dtype=np.float64)
    except (KeyError, TypeError) as error:
        raise ClusteringError(f"fitted_state is not a clustering state: missing {error}") from None
    x_new = check_features(x_new, name="x_new")
    if x_new.shape[1] != d:
        raise ClusteringError(
            f"x_new has {x_new.shape[1]} dimensions but the clustering was fitted on {d}"
        )
    z = (x_new - mean) / scale

    if algorithm in ("kmeans", "agglomerative"):
        centroids = np.asarray(fitted_state["centroids"], dtype=np.float64)
        cluster_ids = np.asarray(fitted_state["cluster_ids"], dtype=np.int64)
        index, distance = _nearest(z, centroids)
        return cluster_ids[index], distance
    if algorithm == "gmm":
        covariance_type = fitted_state["covariance_type"]
        weights = np.asarray(fitted_state["weights"], dtype=np.float64)
        means = np.asarray(fitted_state["means"], dtype=np.float64)
        covariances = np.asarray(fitted_state["covariances"], dtype=np.float64)
        log_joint = np.stack(
            [
                np.log(weights[k])
                + _gaussian_log_density(z, means[k], covariances[k], covariance_type)
                for k in range(len(weights))
            ],
            axis=1,
        )
        log_posterior = log_joint - logsumexp(log_joint, axis=1, keepdims=True)
        labels = np.argmax(log_posterior, axis=1).astype(np.int64)
        return labels, np.exp(log_posterior[np.arange(len(z)), labels])
    if algorithm == "dbscan":
        core_points = np.asarray(fitted_state["core_points"], dtype=np.float64).reshape(-1, d)
        if core_points.shape[0] == 0:
            return np.full(len(z), NOISE_LABEL, dtype=np.int64), np.full(len(z), np.inf)
        core_labels = np.asarray(fitted_state["core_labels"], dtype=np.int64)
        index, distance = _nearest(z, core_points)
        labels = np.where(distance <= float(fitted_state["eps"]), core_labels[index], NOISE_LABEL)
        return labels.astype(np.int64), distance
    raise ClusteringError(f"fitted_state has unknown algorithm {algorithm!r}; known: {ALGORITHMS}")


def fitted_to_json(fitted_state: dict[str, Any]) -> str:
    """The fitted state as JSON text (floats kept exactly: Python's repr round-trips).

    Raises:
        ClusteringError: the state holds NaN/inf or objects JSON cannot store.
    """
    try:
        return json.dumps(fitted_state, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ClusteringError(f"fitted state is not JSON-serialisable: {error}") from None


def fitted_from_json(text: str) -> dict[str, Any]:
    """Inverse of :func:`fitted_to_json`; checks the state version.

    Raises:
        ClusteringError: not a clustering state, or one written by an incompatible version.
    """
    state = json.loads(text)
    if not isinstance(state, dict) or "algorithm" not in state:
        raise ClusteringError("JSON text is not a clustering state (no 'algorithm' key)")
    if state.get("version") != FITTED_STATE_VERSION:
        raise ClusteringError(
            f"clustering state version {state.get('version')!r} is not supported "
            f"(expected {FITTED_STATE_VERSION}); refit the clustering"
        )
    return state
