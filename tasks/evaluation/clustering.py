"""Clustering of representations (latents or baseline features) and assignment of new points.

Four algorithms are offered, all on standardised inputs:

- ``kmeans``: k-means (k-means++, 10 restarts, seeded).
- ``agglomerative``: Ward linkage (merges the pair of clusters that least increases the
  within-cluster sum of squares, i.e. the hierarchical cousin of k-means).
- ``dbscan``: density clustering; ``eps`` comes from the knee of the k-distance curve
  (:func:`choose_dbscan_eps`), points in no dense region are labelled ``-1`` (noise).
- ``gmm``: Gaussian mixture (EM, ``n_init >= 3`` seeded restarts); the covariance type follows
  :func:`choose_covariance_type`.

Why standardise (the default): baseline features mix units (dB, Hz, counts) and an autoencoder's
latent dimensions have arbitrary scales. Every algorithm here is Euclidean, so without
standardisation the widest dimension alone would decide the clusters. Latent means of a VAE with
a fixed N(0, I) prior are the exception: the prior already puts the dimensions on one scale and a
dimension's spread says how informative it is, so callers pass ``standardize_input=False`` there
(see ``RepresentationModel.latent_units_comparable``); the same holds for PCA scores, whose
variances rank the components. Each dimension is centred and divided by its standard deviation
(constant dimensions are only centred). The scaler is part of the fitted state, so new points
are assigned in the same space.

Number of clusters: DBSCAN finds its own. For the others the caller passes ``n_clusters``; the
evaluation passes the number of known classes when labels exist (this fixes k from the labels but
uses them nowhere else), and ``None`` otherwise, in which case :func:`choose_n_clusters` picks k
by silhouette (k-means, agglomerative) or BIC (GMM). ``params["n_clusters_source"]`` records
which happened: ``"given"``, ``"silhouette"``, ``"bic"`` or ``"density"`` (DBSCAN).

Fitted state: :attr:`ClusteringResult.fitted` is a plain dict of strings, ints, floats and
nested lists of floats, so ``tasks.evaluation.assignment.fitted_to_json`` / ``fitted_from_json``
round-trip it exactly and it can be stored next to a registered model; ``assignment.assign``
places new points with nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from sklearn.cluster import DBSCAN, AgglomerativeClustering, KMeans
from sklearn.metrics import silhouette_score
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import NearestNeighbors

from tasks.core.errors import UserInputError

ALGORITHMS = ("kmeans", "agglomerative", "dbscan", "gmm")
Algorithm = Literal["kmeans", "agglomerative", "dbscan", "gmm"]
NOISE_LABEL = -1
FITTED_STATE_VERSION = 1

KMEANS_N_INIT = 10
GMM_N_INIT = 3
# A full covariance matrix is estimated from the points of its component; with fewer than about
# ten points per dimension the estimate is dominated by noise (and singular below one), so 'full'
# is used only when each component can expect that many points, and 'diag' otherwise.
FULL_COVARIANCE_POINTS_PER_DIMENSION = 10
# silhouette_score is O(n^2) in time and memory; above this many points it is estimated on a
# seeded random subset of this size.
SILHOUETTE_SAMPLE_SIZE = 3000
# DBSCAN: a cluster must be able to hold `min_samples` points; capping min_samples at 1/20 of the
# data keeps clusters as small as 5% of the points (e.g. 20 balanced genres) detectable.
DBSCAN_MIN_CLUSTER_FRACTION = 0.05
DBSCAN_MIN_SAMPLES_FLOOR = 4


class ClusteringError(UserInputError):
    """Bad clustering input or parameter; the message says what was wrong and what is allowed."""


@dataclass(frozen=True)
class ClusteringResult:
    """Outcome of :func:`cluster`.

    Attributes:
        algorithm: one of :data:`ALGORITHMS`.
        labels: np.ndarray [shape=(n,), dtype=int64]; cluster id per point, ``-1`` = DBSCAN noise.
            Ids are the model's own (a GMM component that wins no point leaves a gap), so they
            agree with :func:`assign` on the same points.
        n_clusters: number of distinct clusters found, noise excluded.
        noise_fraction: share of points labelled ``-1`` (0.0 for all but DBSCAN).
        params: the parameters used (e.g. ``n_clusters``, ``eps``, ``min_samples``,
            ``covariance_type``, ``n_clusters_source``); JSON-serialisable scalars.
        fitted: JSON-serialisable state for :func:`assign` (see :func:`fitted_to_json`).
    """

    algorithm: str
    labels: np.ndarray
    n_clusters: int
    noise_fraction: float
    params: dict[str, Any] = field(default_factory=dict)
    fitted: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- standardisation


def fit_standardizer(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and scale of ``x`` [shape=(n, d)].

    Returns ``(mean, scale)``, each [shape=(d,)]. Dimensions with zero (or non-finite) spread
    get scale 1, so they are centred to 0 instead of divided by zero.
    """
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
    return mean, scale


def standardize(x: np.ndarray) -> np.ndarray:
    """``x`` [shape=(n, d)] with every dimension at mean 0 and standard deviation 1 (see module)."""
    mean, scale = fit_standardizer(x)
    return (x - mean) / scale


def check_features(x: np.ndarray, name: str = "x") -> np.ndarray:
    array = np.asarray(x, dtype=np.float64)
    if array.ndim != 2:
        raise ClusteringError(
            f"{name} must be a 2-D array (n_points, n_dims); got shape {array.shape}"
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ClusteringError(f"{name} is empty (shape {array.shape}); nothing to cluster")
    if not np.all(np.isfinite(array)):
        raise ClusteringError(f"{name} contains NaN or infinite values; drop or impute them first")
    return array


# ----------------------------------------------------------------------------- choices


def choose_covariance_type(
    n_samples: int, n_features: int, n_components: int
) -> Literal["full", "diag"]:
    """'full' when each component can expect >= 10 points per dimension, else 'diag'.

    With ``n_samples / n_components`` points per component, a full ``d x d`` covariance is only
    trustworthy with many more points than dimensions (see
    ``FULL_COVARIANCE_POINTS_PER_DIMENSION``); 'diag' needs ``d`` variances only and stays stable
    for high-dimensional latents on small data sets.
    """
    points_per_component = n_samples / max(n_components, 1)
    if points_per_component >= FULL_COVARIANCE_POINTS_PER_DIMENSION * n_features:
        return "full"
    return "diag"


def default_min_samples(n_samples: int, n_features: int) -> int:
    """DBSCAN ``min_samples``: ``max(4, 2*d)``, capped at 5% of the points (never below 4).

    ``2*d`` is the usual heuristic for DBSCAN (Sander et al., 1998; Schubert et al., 2017); the
    cap keeps it from exceeding the size of the smallest clusters worth finding on small data
    sets, where ``2*d`` for a 32-d latent would turn every point into noise. Never more than
    ``n_samples - 1``.
    """
    heuristic = max(DBSCAN_MIN_SAMPLES_FLOOR, 2 * n_features)
    cap = max(DBSCAN_MIN_SAMPLES_FLOOR, int(DBSCAN_MIN_CLUSTER_FRACTION * n_samples))
    return max(1, min(heuristic, cap, n_samples - 1))


def k_distances(x: np.ndarray, min_samples: int) -> np.ndarray:
    """Sorted (ascending) distance of every point to its ``min_samples``-th nearest point.

    The point itself counts as the first neighbour, as in DBSCAN's core-point rule (a point is a
    core point when at least ``min_samples`` points, itself included, lie within ``eps``), so a
    point is a core point exactly when its k-distance is <= ``eps``.

    Returns np.ndarray [shape=(n,)].
    """
    nearest = NearestNeighbors(n_neighbors=min_samples).fit(x)
    distances, _ = nearest.kneighbors(x)
    return np.sort(distances[:, -1])


def knee_of_increasing_curve(values: np.ndarray) -> int:
    """Index of the knee of an ascending curve: the point farthest below its chord.

    Both axes are scaled to [0, 1] and the chord joins the first and last points; the knee is the
    point with the largest vertical gap under the chord (Kneedle's difference curve, Satopaa et
    al., 2011), i.e. where the curve turns from flat to steep. A straight or concave curve has
    no point below its chord; the last index is returned then (every point is "flat").
    """
    n = len(values)
    if n < 3:
        return n - 1
    span = values[-1] - values[0]
    if span <= 0:
        return n - 1
    scaled_y = (values - values[0]) / span
    scaled_x = np.linspace(0.0, 1.0, n)
    gap_below_chord = scaled_x - scaled_y
    knee = int(np.argmax(gap_below_chord))
    if gap_below_chord[knee] <= 0:
        return n - 1
    return knee


def choose_dbscan_eps(x: np.ndarray, min_samples: int) -> float:
    """DBSCAN radius from the knee of the sorted k-distance curve (k = ``min_samples``).

    Points inside clusters have small k-distances that grow slowly; noise points and points
    between clusters have large ones. The knee (:func:`knee_of_increasing_curve`, largest gap
    below the chord) separates the two, and its k-distance is ``eps``: every point left of the
    knee becomes a core point. Run on the same (standardised) space DBSCAN sees.

    Args:
        x: np.ndarray [shape=(n, d)].
        min_samples: DBSCAN ``min_samples`` (>= 1 and < n).

    Returns:
        eps > 0 in the units of ``x``. When all k-distances are 0 (duplicated points) the
        smallest positive float is returned so DBSCAN still accepts it.

    Raises:
        ClusteringError: ``min_samples`` outside [1, n - 1] or bad ``x``.
    """
    x = check_features(x)
    n = x.shape[0]
    if not 1 <= min_samples < n:
        raise ClusteringError(
            f"min_samples must be between 1 and n_points - 1 = {n - 1}; got {min_samples}"
        )
    curve = k_distances(x, min_samples)
    eps = float(curve[knee_of_increasing_curve(curve)])
    if eps <= 0:
        positive = curve[curve > 0]
        eps = float(positive[0]) if positive.size else float(np.finfo(np.float64).tiny)
    return eps


def n_clusters_curve(
    x: np.ndarray,
    *,
    criterion: Literal["silhouette", "bic"],
    k_range: tuple[int, int] = (2, 12),
    seed: int = 0,
    standardize_input: bool = True,
) -> dict[int, float]:
    """Score of every k in ``k_range`` (both ends included) under ``criterion``.

    - ``"silhouette"``: silhouette of k-means with k clusters (higher is better).
    - ``"bic"``: Bayesian information criterion of a GMM with k components (lower is better);
      one covariance type for the whole range (the one :func:`choose_covariance_type` picks for
      the largest k), so the BIC values stay comparable.

    k is capped at ``n - 1`` (silhouette needs at least one cluster with two points).

    Raises:
        ClusteringError: unknown criterion, a range with nothing in [2, n - 1], or bad ``x``.
    """
    x = check_features(x)
    if standardize_input:
        x = standardize(x)
    n, d = x.shape
    low, high = int(k_range[0]), min(int(k_range[1]), n - 1)
    low = max(low, 2)
    if low > high:
        raise ClusteringError(
            f"k_range {k_range} has no k in [2, n_points - 1 = {n - 1}]; "
            "give a range inside it or more points"
        )
    scores: dict[int, float] = {}
    if criterion == "silhouette":
        sample_size = SILHOUETTE_SAMPLE_SIZE if n > SILHOUETTE_SAMPLE_SIZE else None
        for k in range(low, high + 1):
            labels = KMeans(n_clusters=k, n_init=KMEANS_N_INIT, random_state=seed).fit_predict(x)
            if len(np.unique(labels)) < 2:
                scores[k] = -1.0  # duplicated points: k-means found one cluster, worst score
                continue
            scores[k] = float(
                silhouette_score(x, labels, sample_size=sample_size, random_state=seed)
            )
    elif criterion == "bic":
        covariance_type = choose_covariance_type(n, d, high)
        for k in range(low, high + 1):
            mixture = GaussianMixture(
                n_components=k,
                covariance_type=covariance_type,
                n_init=GMM_N_INIT,
                random_state=seed,
            ).fit(x)
            scores[k] = float(mixture.bic(x))
    else:
        raise ClusteringError(f"criterion must be 'silhouette' or 'bic'; got {criterion!r}")
    return scores


def choose_n_clusters(
    x: np.ndarray,
    *,
    criterion: Literal["silhouette", "bic"],
    k_range: tuple[int, int] = (2, 12),
    seed: int = 0,
    standardize_input: bool = True,
) -> int:
    """Number of clusters for ``x`` [shape=(n, d)] when no labels say how many there are.

    Silhouette: the k whose k-means clustering has the highest silhouette. BIC: the k whose GMM
    has the lowest BIC. Ties go to the smaller k. See :func:`n_clusters_curve` for details and
    failure modes.
    """
    scores = n_clusters_curve(
        x, criterion=criterion, k_range=k_range, seed=seed, standardize_input=standardize_input
    )
    best = max if criterion == "silhouette" else min
    target = best(scores.values())
    return min(k for k, score in scores.items() if score == target)


# ----------------------------------------------------------------------------- clustering


def _as_floats(array: np.ndarray) -> list[Any]:
    return np.asarray(array, dtype=np.float64).tolist()


def _centroids(x: np.ndarray, labels: np.ndarray) -> tuple[list[int], np.ndarray]:
    cluster_ids = sorted(int(label) for label in np.unique(labels) if label != NOISE_LABEL)
    centroids = np.stack([x[labels == cluster_id].mean(axis=0) for cluster_id in cluster_ids])
    return cluster_ids, centroids


# Each fit returns (labels [shape=(n,)], params to report, state that `assign` needs).
_Fit = tuple[np.ndarray, dict[str, Any], dict[str, Any]]


def _resolve_n_clusters(
    z: np.ndarray, *, algorithm: str, n_clusters: int | None, k_range: tuple[int, int], seed: int
) -> tuple[int, str]:
    """The number of clusters to fit and its source (given, silhouette or bic); ClusteringError
    outside 2..n_points - 1."""
    source = "given"
    if n_clusters is None:
        source = "bic" if algorithm == "gmm" else "silhouette"
        n_clusters = choose_n_clusters(
            z, criterion=source, k_range=k_range, seed=seed, standardize_input=False
        )
    check_n_clusters(n_clusters, z.shape[0])
    return int(n_clusters), source


def check_n_clusters(
    n_clusters: int | None, n_points: int, *, name: str = "n_clusters", points: str = "points"
) -> None:
    """ClusteringError unless 2 <= `n_clusters` <= `n_points` - 1 (None: chosen later, fine).

    Called by :func:`cluster`, and by the evaluation before any clustering task starts, so that a
    too-large k is one error instead of one per representation, algorithm and seed.
    """
    if n_clusters is not None and not 2 <= n_clusters <= n_points - 1:
        raise ClusteringError(
            f"{name} must be between 2 and the number of {points} - 1 = {n_points - 1}; "
            f"got {n_clusters}"
        )


def _fit_kmeans(z: np.ndarray, n_clusters: int, seed: int) -> _Fit:
    model = KMeans(n_clusters=n_clusters, n_init=KMEANS_N_INIT, random_state=seed).fit(z)
    params = {"n_init": KMEANS_N_INIT, "inertia": float(model.inertia_)}
    state = {
        "cluster_ids": list(range(n_clusters)),
        "centroids": _as_floats(model.cluster_centers_),
    }
    return model.labels_.astype(np.int64), params, state


def _fit_agglomerative(z: np.ndarray, n_clusters: int, seed: int) -> _Fit:
    del seed  # Ward linkage is deterministic
    labels = AgglomerativeClustering(n_clusters=n_clusters, linkage="ward").fit(z).labels_
    cluster_ids, centroids = _centroids(z, labels.astype(np.int64))
    state = {"cluster_ids": cluster_ids, "centroids": _as_floats(centroids)}
    return labels.astype(np.int64), {"linkage": "ward"}, state


def _fit_gmm(z: np.ndarray, n_clusters: int, seed: int) -> _Fit:
    covariance_type = choose_covariance_type(z.shape[0], z.shape[1], n_clusters)
    model = GaussianMixture(
        n_components=n_clusters,
        covariance_type=covariance_type,
        n_init=GMM_N_INIT,
        random_state=seed,
    ).fit(z)
    params = {
        "covariance_type": covariance_type,
        "n_init": GMM_N_INIT,
        "converged": bool(model.converged_),
        "bic": float(model.bic(z)),
    }
    state = {
        "covariance_type": covariance_type,
        "weights": _as_floats(model.weights_),
        "means": _as_floats(model.means_),
        "covariances": _as_floats(model.covariances_),
    }
    return model.predict(z).astype(np.int64), params, state


_FIT_WITH_K = {"kmeans": _fit_kmeans, "agglomerative": _fit_agglomerative, "gmm": _fit_gmm}


def _fit_dbscan(z: np.ndarray, min_samples: int | None) -> _Fit:
    n, d = z.shape
    if min_samples is None:
        min_samples = default_min_samples(n, d)
    eps = choose_dbscan_eps(z, min_samples)
    model = DBSCAN(eps=eps, min_samples=min_samples).fit(z)
    labels = model.labels_.astype(np.int64)
    core = model.core_sample_indices_
    params = {"eps": eps, "min_samples": int(min_samples), "eps_criterion": "k-distance knee"}
    state = {
        "eps": eps,
        "core_points": _as_floats(z[core].reshape(len(core), d)),
        "core_labels": [int(label) for label in labels[core]],
    }
    return labels, params, state


def cluster(
    x: np.ndarray,
    *,
    algorithm: str,
    n_clusters: int | None,
    seed: int,
    standardize_input: bool = True,
    min_samples: int | None = None,
    k_range: tuple[int, int] = (2, 12),
) -> ClusteringResult:
    """Cluster the rows of ``x``.

    Args:
        x: np.ndarray [shape=(n, d)], one representation per track.
        algorithm: one of :data:`ALGORITHMS`.
        n_clusters: clusters to find (2 <= k <= n - 1), or ``None`` to choose it with
            :func:`choose_n_clusters` (silhouette for k-means and agglomerative, BIC for GMM).
            Ignored by DBSCAN, which finds its own number.
        seed: random state of k-means, GMM and the k search (agglomerative and DBSCAN are
            deterministic).
        standardize_input: standardise every dimension first (default; see module docstring).
        min_samples: DBSCAN only; default :func:`default_min_samples`.
        k_range: range searched when ``n_clusters`` is ``None``.

    Returns:
        :class:`ClusteringResult`.

    Raises:
        ClusteringError: unknown algorithm, ``n_clusters`` out of range, bad ``x``.
    """
    x = check_features(x)
    if algorithm not in ALGORITHMS:
        raise ClusteringError(f"algorithm must be one of {ALGORITHMS}; got {algorithm!r}")
    d = x.shape[1]
    mean, scale = fit_standardizer(x) if standardize_input else (np.zeros(d), np.ones(d))
    z = (x - mean) / scale

    params: dict[str, Any] = {"standardize": standardize_input}
    if algorithm == "dbscan":
        params["n_clusters_source"] = "density"
        labels, details, state = _fit_dbscan(z, min_samples)
    else:
        n_clusters, params["n_clusters_source"] = _resolve_n_clusters(
            z, algorithm=algorithm, n_clusters=n_clusters, k_range=k_range, seed=seed
        )
        params["n_clusters"] = n_clusters
        labels, details, state = _FIT_WITH_K[algorithm](z, n_clusters, seed)
    params.update(details)
    fitted: dict[str, Any] = {
        "version": FITTED_STATE_VERSION,
        "algorithm": algorithm,
        "n_features": d,
        "mean": _as_floats(mean),
        "scale": _as_floats(scale),
        "score_kind": "posterior_probability" if algorithm == "gmm" else "distance",
        **state,
    }
    return ClusteringResult(
        algorithm=algorithm,
        labels=labels,
        n_clusters=len(np.unique(labels[labels != NOISE_LABEL])),
        noise_fraction=float(np.mean(labels == NOISE_LABEL)),
        params=params,
        fitted=fitted,
    )
