"""Clustering quality: internal (geometry only), external (against known labels), and seeds.

Internal metrics judge a clustering by the representation alone; external metrics compare it
with known labels (genre, or language for lyrics). Conventions:

- DBSCAN noise (label ``-1``) is left out of internal metrics (noise points belong to no
  cluster, so they have no cohesion or separation), but counts as one more cluster in external
  metrics: a method that calls half the tracks noise must pay for it in purity and accuracy
  instead of being scored only on the easy half.
- Unknown true labels (``None``, NaN, polars null) are left out of external metrics; the number
  of points actually compared is returned as ``n_labelled``.
- A metric that is undefined is NaN, and the dict says why under ``internal_reason`` /
  ``external_reason`` (empty string when all is well).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import numpy as np
import polars as pl
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import (
    adjusted_rand_score,
    calinski_harabasz_score,
    davies_bouldin_score,
    normalized_mutual_info_score,
    silhouette_score,
)

from tasks.evaluation.clustering import NOISE_LABEL, SILHOUETTE_SAMPLE_SIZE, standardize

INTERNAL_METRICS = ("silhouette", "calinski_harabasz", "davies_bouldin")
EXTERNAL_METRICS = ("ari", "nmi", "purity", "accuracy")
# Direction of every metric: True when a larger value is a better clustering.
HIGHER_IS_BETTER = {
    "silhouette": True,
    "calinski_harabasz": True,
    "davies_bouldin": False,
    "ari": True,
    "nmi": True,
    "purity": True,
    "accuracy": True,
}
# External metrics against the lyrics language carry this suffix (``nmi_language``); they share
# the direction of the genre metric they are named after.
LANGUAGE_SUFFIX = "_language"
LANGUAGE_METRICS = tuple(f"{name}{LANGUAGE_SUFFIX}" for name in EXTERNAL_METRICS)
# Every metric a comparison can be ranked by (a closed choice in configs, forms and --help).
RANKED_METRICS: tuple[str, ...] = (*HIGHER_IS_BETTER, *LANGUAGE_METRICS)
RankedMetric = Literal[RANKED_METRICS]


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` (``nmi``, ``davies_bouldin``, ``ari_language``, ...)
    is a better clustering.

    Raises:
        ValueError: ``metric`` is not a metric with a direction; the message lists those that are.
    """
    base = metric.removesuffix(LANGUAGE_SUFFIX)
    if base not in HIGHER_IS_BETTER:
        raise ValueError(f"{metric!r} is not a ranked metric; ranked metrics: {RANKED_METRICS}")
    return HIGHER_IS_BETTER[base]


def is_better(metric: str, new: float, old: float) -> bool:
    """Whether ``new`` is strictly better than ``old`` on ``metric`` (a tie is not better).

    Raises:
        ValueError: ``metric`` has no known direction (see :func:`higher_is_better`).
    """
    return new > old if higher_is_better(metric) else new < old


def internal_metrics(
    x: np.ndarray,
    labels: np.ndarray,
    *,
    standardize_input: bool = True,
    seed: int = 0,
) -> dict[str, Any]:
    """Silhouette, Calinski-Harabasz and Davies-Bouldin of a clustering of ``x``.

    Args:
        x: np.ndarray [shape=(n, d)], the representation that was clustered.
        labels: np.ndarray [shape=(n,)], integer cluster ids, ``-1`` = noise (excluded).
        standardize_input: measure in the standardised space the clustering used (default), so
            the numbers describe what the algorithm saw.
        seed: random state of the subsample on which silhouette is estimated above
            ``SILHOUETTE_SAMPLE_SIZE`` points (silhouette costs O(n^2)).

    Returns:
        ``{"silhouette", "calinski_harabasz", "davies_bouldin"}`` as floats (NaN when undefined),
        and ``"internal_reason"``: why they are NaN, or ``""``.

    Raises:
        ValueError: ``x`` and ``labels`` disagree in length or ``x`` is not 2-D.
    """
    x = np.asarray(x, dtype=np.float64)
    labels = np.asarray(labels)
    if x.ndim != 2 or labels.shape != (x.shape[0],):
        raise ValueError(
            f"x must be (n, d) and labels (n,); got x {x.shape} and labels {labels.shape}"
        )
    if standardize_input and x.shape[0] > 0:
        x = standardize(x)
    kept = labels != NOISE_LABEL
    x, labels = x[kept], labels[kept]
    n_clusters = len(np.unique(labels))
    result: dict[str, Any] = dict.fromkeys(INTERNAL_METRICS, math.nan)
    if n_clusters < 2:
        result["internal_reason"] = (
            f"{n_clusters} cluster(s) among {len(labels)} non-noise points; "
            "internal metrics need at least 2 clusters"
        )
        return result
    if n_clusters >= len(labels):
        result["internal_reason"] = (
            f"every one of the {len(labels)} non-noise points is its own cluster; "
            "internal metrics need a cluster with at least 2 points"
        )
        return result
    sample_size = SILHOUETTE_SAMPLE_SIZE if len(labels) > SILHOUETTE_SAMPLE_SIZE else None
    result["silhouette"] = float(
        silhouette_score(x, labels, sample_size=sample_size, random_state=seed)
    )
    result["calinski_harabasz"] = float(calinski_harabasz_score(x, labels))
    result["davies_bouldin"] = float(davies_bouldin_score(x, labels))
    result["internal_reason"] = ""
    return result


def _is_unknown(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _as_list(labels: Iterable[Any] | np.ndarray | pl.Series) -> list[Any]:
    if isinstance(labels, pl.Series):
        return labels.to_list()
    if isinstance(labels, np.ndarray):
        return labels.tolist()
    return list(labels)


def _codes(values: Sequence[Any]) -> np.ndarray:
    """Integer codes 0..m-1 for hashable values, in order of first appearance."""
    index: dict[Any, int] = {}
    return np.asarray([index.setdefault(value, len(index)) for value in values], dtype=np.int64)


def contingency_table(labels_true: Sequence[Any], labels_pred: Sequence[Any]) -> np.ndarray:
    """Counts [shape=(n_clusters, n_classes)]: row = predicted cluster, column = true class.

    Rows and columns are in order of first appearance; only the counts matter to the metrics.
    """
    clusters, classes = _codes(labels_pred), _codes(labels_true)
    table = np.zeros((clusters.max() + 1, classes.max() + 1), dtype=np.int64)
    np.add.at(table, (clusters, classes), 1)
    return table


def purity_score(contingency: np.ndarray) -> float:
    """Share of points whose cluster's majority class is their own class.

    Every cluster votes for its most common class; more clusters never lower purity (one point
    per cluster gives 1.0), which is why accuracy is reported next to it.
    """
    return float(contingency.max(axis=1).sum() / contingency.sum())


def matched_accuracy(contingency: np.ndarray) -> float:
    """Accuracy under the best one-to-one matching of clusters to classes (Hungarian method).

    ``linear_sum_assignment`` maximises the matched counts on the rectangular contingency table;
    with more clusters than classes the unmatched clusters' points count as errors, with more
    classes than clusters the unmatched classes' points do.
    """
    rows, columns = linear_sum_assignment(contingency, maximize=True)
    return float(contingency[rows, columns].sum() / contingency.sum())


def external_metrics(
    labels_true: Iterable[Any] | np.ndarray | pl.Series,
    labels_pred: Iterable[Any] | np.ndarray | pl.Series,
    *,
    key_suffix: str = "",
) -> dict[str, Any]:
    """ARI, NMI, purity and Hungarian-matched accuracy of a clustering against known labels.

    Args:
        labels_true: [shape=(n,)] class per point (str or int); ``None``/NaN/null = unknown,
            excluded from every metric.
        labels_pred: [shape=(n,)] cluster id per point; ``-1`` (DBSCAN noise) is its own cluster.
        key_suffix: appended to every key, e.g. ``"_language"`` for the language target.

    Returns:
        ``ari``, ``nmi`` (arithmetic normalisation), ``purity``, ``accuracy`` as floats, plus
        ``n_labelled`` (points compared) and ``external_reason`` (why metrics are NaN, or ``""``),
        all with ``key_suffix`` appended.

    Raises:
        ValueError: the two label arrays differ in length.
    """
    truth, predicted = _as_list(labels_true), _as_list(labels_pred)
    if len(truth) != len(predicted):
        raise ValueError(
            f"labels_true has {len(truth)} entries but labels_pred has {len(predicted)}"
        )
    known = [i for i, value in enumerate(truth) if not _is_unknown(value)]
    result: dict[str, Any] = dict.fromkeys(EXTERNAL_METRICS, math.nan)
    result["n_labelled"] = len(known)
    if not known:
        result["external_reason"] = f"none of the {len(truth)} points has a known label"
    else:
        true_codes = _codes([truth[i] for i in known])
        pred_codes = _codes([predicted[i] for i in known])
        contingency = contingency_table(true_codes, pred_codes)
        result["ari"] = float(adjusted_rand_score(true_codes, pred_codes))
        result["nmi"] = float(normalized_mutual_info_score(true_codes, pred_codes))
        result["purity"] = purity_score(contingency)
        result["accuracy"] = matched_accuracy(contingency)
        result["external_reason"] = ""
    return {f"{key}{key_suffix}": value for key, value in result.items()}


def is_number(value: Any) -> bool:
    """True for int and float values (numpy's too), False for booleans and everything else."""
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def aggregate_over_seeds(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and standard deviation over the runs of one setting with different seeds.

    Every numeric key ``m`` becomes ``m`` (mean) and ``m_std`` (sample standard deviation,
    ``ddof=1``; NaN with a single seed, since one run says nothing about the spread). NaN and
    None values (an undefined metric in some seed) are left out of both, so a mean is over the
    seeds where the metric exists; if it exists in none, both are NaN. Non-numeric values
    (names, booleans, reasons) are kept when all rows agree, else their distinct values are
    joined with ``"; "``.
    The key ``seed`` is dropped and ``n_seeds`` (number of rows) is added.

    Raises:
        ValueError: ``rows`` is empty.
    """
    if not rows:
        raise ValueError("aggregate_over_seeds needs at least one row")
    keys: list[str] = []
    for row in rows:
        keys.extend(key for key in row if key not in keys)
    aggregated: dict[str, Any] = {}
    for key in keys:
        if key == "seed":
            continue
        values = [row[key] for row in rows if key in row]
        if all(value is None or is_number(value) for value in values) and any(
            is_number(value) for value in values
        ):
            defined = np.asarray(
                [float(v) for v in values if v is not None and not math.isnan(float(v))]
            )
            aggregated[key] = float(defined.mean()) if defined.size else math.nan
            aggregated[f"{key}_std"] = float(defined.std(ddof=1)) if defined.size > 1 else math.nan
        else:
            distinct: list[Any] = []  # values may be unhashable (dicts of params)
            for value in values:
                if value not in distinct:
                    distinct.append(value)
            if len(distinct) == 1:
                aggregated[key] = distinct[0]
            else:
                aggregated[key] = "; ".join(str(value) for value in distinct if value != "")
    aggregated["n_seeds"] = len(rows)
    return aggregated
