"""Figures of the evaluation: embeddings, contingency tables, metric comparisons, training.

Every function takes arrays or polars tables, writes one file and returns its path. Static
figures are PNG drawn with matplotlib's Agg renderer through ``matplotlib.figure.Figure``
directly, never ``pyplot``: pyplot keeps global state that is not thread-safe, and Prefect runs
tasks in threads. The interactive scatter is a self-contained plotly HTML file (plotly.js
embedded, about 5 MB), because the machines that open it may be offline.

Scatter plots are one figure per colouring (genre, cluster, language): each is logged as its
own artifact and read at full size, and a colouring whose labels are all unknown can simply be
skipped by the caller.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import matplotlib

matplotlib.use("Agg")  # headless; Figure objects below never open a window anyway

import numpy as np
import plotly.graph_objects as go
import polars as pl
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from tasks.evaluation.clustering import standardize
from tasks.evaluation.metrics import (
    EXTERNAL_METRICS,
    INTERNAL_METRICS,
    LANGUAGE_METRICS,
    higher_is_better,
)

DPI = 120
UNKNOWN = "unknown"
NOISE = "-1"
UNKNOWN_COLOUR = "#c8c8c8"
NOISE_COLOUR = "#4d4d4d"
# Above this many categories a legend is unreadable; colours alone are shown.
MAX_LEGEND_ENTRIES = 30
# Above this many points plotly's WebGL scatter stays responsive where SVG does not.
WEBGL_THRESHOLD = 5000
UMAP_DEFAULT_NEIGHBOURS = 15
TSNE_DEFAULT_PERPLEXITY = 30.0

# How a representation is drawn in 2-D.
MapMethod = Literal["umap", "tsne"]
MAP_METHODS: tuple[MapMethod, ...] = ("umap", "tsne")


# ----------------------------------------------------------------------------- embeddings


def embedding_2d(
    x: np.ndarray,
    *,
    method: MapMethod,
    seed: int,
    standardize_input: bool = True,
) -> np.ndarray:
    """Two-dimensional embedding of ``x`` [shape=(n, d)] for plotting.

    UMAP uses ``n_neighbors = min(15, n - 1)`` so small data sets still have a valid
    neighbourhood graph; t-SNE uses ``perplexity = min(30, (n - 1) / 3)`` (perplexity is about
    the number of effective neighbours and must stay below n). Inputs are standardised first,
    as for clustering, so the picture shows the space the clusters were found in.

    Returns:
        np.ndarray [shape=(n, 2), dtype=float64].

    Raises:
        ValueError: fewer than 4 points, ``x`` not 2-D, or unknown ``method``.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"x must be a 2-D array (n_points, n_dims); got shape {x.shape}")
    n = x.shape[0]
    if n < 4:
        raise ValueError(f"a 2-D embedding needs at least 4 points; got {n}")
    if standardize_input:
        x = standardize(x)
    if method == "umap":
        from tasks.evaluation.umap_compiled import load_umap

        reducer = load_umap().UMAP(
            n_neighbors=max(2, min(UMAP_DEFAULT_NEIGHBOURS, n - 1)),
            n_components=2,
            random_state=seed,
            n_jobs=1,  # a fixed random_state forces one thread anyway; say so to avoid a warning
            init="spectral" if n > 10 else "random",
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            embedded = reducer.fit_transform(x)
    elif method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = max(1.0, min(TSNE_DEFAULT_PERPLEXITY, (n - 1) / 3))
        embedded = TSNE(
            n_components=2,
            perplexity=perplexity,
            init="pca" if x.shape[1] >= 2 else "random",
            random_state=seed,
        ).fit_transform(x)
    else:
        raise ValueError(f"method must be 'umap' or 'tsne'; got {method!r}")
    return np.asarray(embedded, dtype=np.float64)


# ----------------------------------------------------------------------------- helpers


def _natural_key(text: str) -> tuple[int, float, str]:
    """Numbers in numeric order first, then text; unknown and noise last."""
    if text in (UNKNOWN, NOISE):
        return (2, 0.0, text)
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, 0.0, text)


def _as_text_labels(labels: Sequence[Any] | np.ndarray | pl.Series) -> list[str]:
    values = labels.to_list() if isinstance(labels, pl.Series) else list(np.asarray(labels))
    text = []
    for value in values:
        if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
            text.append(UNKNOWN)
        else:
            text.append(str(value))
    return text


def category_colours(categories: Sequence[str]) -> dict[str, str]:
    """A distinct hex colour per category; ``unknown`` light grey, ``-1`` (noise) dark grey."""
    regular = [c for c in categories if c not in (UNKNOWN, NOISE)]
    if len(regular) <= 10:
        palette = [matplotlib.colormaps["tab10"](i) for i in range(10)]
    elif len(regular) <= 20:
        palette = [matplotlib.colormaps["tab20"](i) for i in range(20)]
    else:
        palette = list(matplotlib.colormaps["turbo"](np.linspace(0.05, 0.95, len(regular))))
    colours = {name: to_hex(palette[i]) for i, name in enumerate(regular)}
    colours[UNKNOWN] = UNKNOWN_COLOUR
    colours[NOISE] = NOISE_COLOUR
    return colours


def save_figure(figure: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def _row_names(table: pl.DataFrame) -> list[str]:
    return [
        f"{row['method']} [{row['features']}] · {row['algorithm']}"
        + (" (labels)" if row["uses_labels"] else "")
        for row in table.iter_rows(named=True)
    ]


def _present_metrics(table: pl.DataFrame, names: Sequence[str]) -> list[str]:
    return [
        name
        for name in names
        if name in table.columns and table[name].fill_nan(None).drop_nulls().len() > 0
    ]


# ----------------------------------------------------------------------------- figures


def scatter_plot(
    xy: np.ndarray, colour_by: Sequence[Any] | np.ndarray, title: str, path: str | Path
) -> Path:
    """Scatter of a 2-D embedding coloured by one labelling (genre, cluster or language).

    Args:
        xy: np.ndarray [shape=(n, 2)].
        colour_by: [shape=(n,)] label per point, shown as text; None/NaN/"" are drawn as
            "unknown" (light grey) and "-1" as noise (dark grey), both under the others.
        title: figure title.
        path: PNG file to write.

    Raises:
        ValueError: shapes disagree.
    """
    xy = np.asarray(xy, dtype=np.float64)
    labels = _as_text_labels(colour_by)
    if xy.ndim != 2 or xy.shape[1] != 2 or xy.shape[0] != len(labels):
        raise ValueError(
            f"xy must be (n, 2) and colour_by (n,); got xy {xy.shape} and {len(labels)} labels"
        )
    categories = sorted(set(labels), key=_natural_key)
    colours = category_colours(categories)
    label_array = np.asarray(labels, dtype=object)
    figure = Figure(figsize=(8, 6))
    axes = figure.add_subplot()
    marker_size = float(np.clip(3000 / max(len(labels), 1), 4, 40))
    drawing_order = [c for c in (UNKNOWN, NOISE) if c in categories] + [
        c for c in categories if c not in (UNKNOWN, NOISE)
    ]
    for category in drawing_order:
        mask = label_array == category
        name = "noise (-1)" if category == NOISE else category
        axes.scatter(
            xy[mask, 0],
            xy[mask, 1],
            s=marker_size,
            c=colours[category],
            label=f"{name} ({mask.sum()})",
            alpha=0.8,
            linewidths=0,
        )
    axes.set_title(title)
    axes.set_xticks([])
    axes.set_yticks([])
    if len(categories) <= MAX_LEGEND_ENTRIES:
        handles, names = axes.get_legend_handles_labels()
        # unknown and noise are drawn first (underneath the others) but listed last
        special = len([c for c in drawing_order if c in (UNKNOWN, NOISE)])
        order = list(range(special, len(handles))) + list(range(special))
        axes.legend(
            [handles[i] for i in order],
            [names[i] for i in order],
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            fontsize=8,
            frameon=False,
        )
    else:
        axes.text(1.01, 1.0, f"{len(categories)} categories", transform=axes.transAxes, va="top")
    return save_figure(figure, path)


def contingency_heatmap(
    labels_true: Sequence[Any] | np.ndarray,
    labels_pred: Sequence[Any] | np.ndarray,
    title: str,
    path: str | Path,
) -> Path:
    """Cluster x class heat map (e.g. cluster x genre, cluster x language).

    Rows are clusters, columns classes; colour is the share of the cluster in each class (rows
    sum to 1, so a pure cluster is one bright cell), the cell text is the count. Points with an
    unknown class are left out, as in :func:`tasks.evaluation.metrics.external_metrics`.

    Raises:
        ValueError: lengths disagree or no point has a known class.
    """
    truth, predicted = _as_text_labels(labels_true), _as_text_labels(labels_pred)
    if len(truth) != len(predicted):
        raise ValueError(f"{len(truth)} true labels but {len(predicted)} cluster labels")
    pairs = [(p, t) for p, t in zip(predicted, truth, strict=True) if t != UNKNOWN]
    if not pairs:
        raise ValueError("no point has a known class; nothing to tabulate")
    clusters = sorted({p for p, _ in pairs}, key=_natural_key)
    classes = sorted({t for _, t in pairs}, key=_natural_key)
    row_of = {name: i for i, name in enumerate(clusters)}
    column_of = {name: i for i, name in enumerate(classes)}
    counts = np.zeros((len(clusters), len(classes)), dtype=np.int64)
    for p, t in pairs:
        counts[row_of[p], column_of[t]] += 1
    shares = counts / counts.sum(axis=1, keepdims=True)

    figure = Figure(figsize=(max(5.0, 0.55 * len(classes) + 3), max(4.0, 0.4 * len(clusters) + 2)))
    axes = figure.add_subplot()
    image = axes.imshow(shares, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    axes.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=8)
    axes.set_yticks(
        range(len(clusters)), ["noise" if c == NOISE else c for c in clusters], fontsize=8
    )
    axes.set_xlabel("class")
    axes.set_ylabel("cluster")
    axes.set_title(f"{title} (n = {len(pairs)})")
    if counts.size <= 400:
        for (i, j), count in np.ndenumerate(counts):
            if count:
                colour = "black" if shares[i, j] > 0.6 else "white"
                axes.text(j, i, str(count), ha="center", va="center", fontsize=7, color=colour)
    figure.colorbar(image, ax=axes, label="share of cluster")
    return save_figure(figure, path)


def metric_bars(table: pl.DataFrame, metric: str, path: str | Path) -> Path:
    """Horizontal bars of one metric for every row of the comparison table, best on top.

    Error bars are ``<metric>_std``; label-using rows are hatched and marked "(labels)".

    Raises:
        ValueError: ``metric`` missing from the table or without any value.
    """
    if metric not in table.columns:
        raise ValueError(f"metric {metric!r} is not a column of the table")
    rows = table.with_columns(pl.col(metric).fill_nan(None)).filter(pl.col(metric).is_not_null())
    if rows.height == 0:
        raise ValueError(f"no row has a value for {metric!r}")
    rows = rows.sort(metric, descending=not higher_is_better(metric))
    values = rows[metric].to_numpy()
    std_column = f"{metric}_std"
    errors = (
        rows[std_column].fill_nan(None).fill_null(0.0).to_numpy()
        if std_column in rows.columns
        else np.zeros(len(values))
    )
    names = _row_names(rows)
    uses_labels = rows["uses_labels"].to_list()
    figure = Figure(figsize=(8, max(2.5, 0.35 * len(names) + 1.2)))
    axes = figure.add_subplot()
    positions = np.arange(len(names))[::-1]  # best at the top
    bars = axes.barh(positions, values, xerr=errors, color="#4c72b0", capsize=3)
    for bar, labelled in zip(bars, uses_labels, strict=True):
        if labelled:
            bar.set_hatch("//")
            bar.set_facecolor("#dd8452")
    axes.set_yticks(positions, names, fontsize=8)
    direction = "higher" if higher_is_better(metric) else "lower"
    axes.set_xlabel(f"{metric} ({direction} is better; mean ± std over seeds)")
    axes.axvline(0.0, color="black", linewidth=0.6)
    return save_figure(figure, path)


def methods_metrics_heatmap(table: pl.DataFrame, path: str | Path) -> Path:
    """Rows x metrics heat map: colour is a relative 0-1 score within each metric.

    Each metric column is min-max scaled over the rows, flipped for Davies-Bouldin, so the
    brightest cell is the best row for that metric whatever its scale; the text is the raw mean.
    Missing values are grey.

    Raises:
        ValueError: the table has no metric with a value.
    """
    metrics = _present_metrics(table, [*INTERNAL_METRICS, *EXTERNAL_METRICS, *LANGUAGE_METRICS])
    if not metrics:
        raise ValueError("the table has no metric values to show")
    values = np.column_stack(
        [table[name].fill_nan(None).cast(pl.Float64).to_numpy() for name in metrics]
    ).astype(np.float64)
    scaled = np.full_like(values, np.nan)
    for j, name in enumerate(metrics):
        column = values[:, j]
        low, high = np.nanmin(column), np.nanmax(column)
        spread = high - low
        score = (column - low) / spread if spread > 0 else np.where(np.isnan(column), np.nan, 1.0)
        scaled[:, j] = score if higher_is_better(name) else 1.0 - score
    names = _row_names(table)
    figure = Figure(figsize=(1.1 * len(metrics) + 4, 0.4 * len(names) + 2))
    axes = figure.add_subplot()
    colour_map = matplotlib.colormaps["viridis"].with_extremes(bad="#dddddd")
    image = axes.imshow(np.ma.masked_invalid(scaled), cmap=colour_map, vmin=0, vmax=1)
    axes.set_aspect("auto")
    axes.set_xticks(range(len(metrics)), metrics, rotation=40, ha="right", fontsize=8)
    axes.set_yticks(range(len(names)), names, fontsize=8)
    for (i, j), value in np.ndenumerate(values):
        if not np.isnan(value):
            text = f"{value:.0f}" if abs(value) >= 100 else f"{value:.3f}"
            colour = "black" if scaled[i, j] > 0.6 else "white"
            axes.text(j, i, text, ha="center", va="center", fontsize=7, color=colour)
    figure.colorbar(image, ax=axes, label="relative score within metric (1 = best)")
    return save_figure(figure, path)


# The beta sweep shows a readable subset; the full set is in the methods x metrics heat map.
BETA_SWEEP_METRICS = ("nmi", "ari", "accuracy", "silhouette", "davies_bouldin", "nmi_language")
_BETA_PATTERN = re.compile(r"(?:^|[\s,;])beta=([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)(?:$|[\s,;])")


def beta_of_features(features: str) -> float | None:
    """The beta of a ``features`` string such as ``"beta=4"`` or ``"beta=0.5, audio_only"``."""
    match = _BETA_PATTERN.search(features)
    return float(match.group(1)) if match else None


def beta_sweep_plot(table: pl.DataFrame, path: str | Path) -> Path:
    """Metrics against beta for the rows whose ``features`` name a ``beta=<value>``.

    One panel per metric of ``BETA_SWEEP_METRICS`` with values among those rows, one line per
    (method, algorithm), error bars from ``<metric>_std``; the beta axis is logarithmic when it
    spans a factor >= 10.

    Raises:
        ValueError: no row has a ``beta=<value>`` feature.
    """
    betas = [beta_of_features(text) for text in table["features"].to_list()]
    rows = table.with_columns(pl.Series("beta", betas, dtype=pl.Float64)).filter(
        pl.col("beta").is_not_null()
    )
    if rows.height == 0:
        raise ValueError("no row has features 'beta=<value>'; nothing to plot for a beta sweep")
    metrics = _present_metrics(rows, BETA_SWEEP_METRICS)
    if not metrics:
        raise ValueError("the beta-sweep rows have no metric values")
    columns = min(3, len(metrics))
    grid_rows = math.ceil(len(metrics) / columns)
    figure = Figure(figsize=(4.5 * columns, 3.4 * grid_rows), layout="constrained")
    beta_values = rows["beta"].to_numpy()
    logarithmic = beta_values.min() > 0 and beta_values.max() / beta_values.min() >= 10
    for index, metric in enumerate(metrics):
        axes = figure.add_subplot(grid_rows, columns, index + 1)
        for (method, algorithm), group in rows.sort("beta").group_by(
            ["method", "algorithm"], maintain_order=True
        ):
            group = group.with_columns(pl.col(metric).fill_nan(None)).filter(
                pl.col(metric).is_not_null()
            )
            if group.height == 0:
                continue
            std_column = f"{metric}_std"
            errors = (
                group[std_column].fill_nan(None).fill_null(0.0).to_numpy()
                if std_column in group.columns
                else None
            )
            axes.errorbar(
                group["beta"].to_numpy(),
                group[metric].to_numpy(),
                yerr=errors,
                marker="o",
                capsize=3,
                label=f"{method} · {algorithm}",
            )
        if logarithmic:
            axes.set_xscale("log")
        axes.set_xlabel("beta")
        axes.set_ylabel(metric)
        axes.grid(alpha=0.3)
        if index == 0:
            axes.legend(fontsize=7)
    figure.suptitle("beta sweep (mean ± std over seeds)")
    return save_figure(figure, path)


def interactive_scatter(xy: np.ndarray, hover: pl.DataFrame, colour: str, path: str | Path) -> Path:
    """Self-contained interactive HTML scatter (plotly.js embedded, works offline, ~5 MB).

    Args:
        xy: np.ndarray [shape=(n, 2)].
        hover: polars DataFrame with n rows (e.g. ``track_id``, ``genre``, ``language``,
            ``cluster``); every column appears in the tooltip.
        colour: the column of ``hover`` that colours the points (one legend entry per value,
            clickable to hide it).
        path: HTML file to write.

    Raises:
        ValueError: shapes disagree or ``colour`` is not a column of ``hover``.
    """
    xy = np.asarray(xy, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2 or xy.shape[0] != hover.height:
        raise ValueError(f"xy must be (n, 2) with n = hover.height; got {xy.shape}, {hover.height}")
    if colour not in hover.columns:
        raise ValueError(f"colour column {colour!r} not in hover columns {hover.columns}")
    labels = np.asarray(_as_text_labels(hover[colour]), dtype=object)
    categories = sorted(set(labels.tolist()), key=_natural_key)
    colours = category_colours(categories)
    tooltips = np.asarray(
        [
            "<br>".join(f"{name}: {value}" for name, value in row.items())
            for row in hover.iter_rows(named=True)
        ],
        dtype=object,
    )
    trace_type = go.Scattergl if len(labels) > WEBGL_THRESHOLD else go.Scatter
    figure = go.Figure()
    for category in categories:
        mask = labels == category
        figure.add_trace(
            trace_type(
                x=xy[mask, 0],
                y=xy[mask, 1],
                mode="markers",
                name=f"{category} ({mask.sum()})",
                marker={"color": colours[category], "size": 7, "opacity": 0.85},
                hovertext=tooltips[mask].tolist(),
                hoverinfo="text",
            )
        )
    figure.update_layout(
        title=f"coloured by {colour}",
        template="plotly_white",
        legend_title_text=colour,
        xaxis={"showticklabels": False},
        yaxis={"showticklabels": False},
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.write_html(path, include_plotlyjs=True, full_html=True)
    return path
