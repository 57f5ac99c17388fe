"""Which figures an evaluation draws, and where: per-representation maps and heatmaps, one
interactive map, and the overview of the whole comparison. The drawing itself is in
`tasks.evaluation.plots`.

Clusters in a representation's figures: the champion's representation is drawn with the
champion's own fitted clustering (`tasks.evaluation.clusters`), so its maps and heatmaps number
clusters as the registered model, clusters.csv, the playlists and `predict` do; every other
representation is drawn with k-means, seed 0 (its figure titles say which).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import polars as pl
from prefect import task, unmapped

from tasks.core.caching import cached_on
from tasks.core.workspace import Workspace
from tasks.evaluation import plots
from tasks.evaluation.clustering import cluster
from tasks.evaluation.clusters import ChampionClustering, ClusterAssignment
from tasks.evaluation.representations import Labels, Representation, labels_for
from tasks.training.figures import training_curves
from tasks.training.lanes import run_in_lane
from tasks.training.representation import read_latents
from tasks.training.trainer import TrackLatents

OVERVIEW_BAR_METRICS = ("nmi", "silhouette", "ari", "nmi_language")
# Training-history series drawn as curves (the other series are per-term losses).
CURVE_SERIES = ("train_loss", "val_loss")
KMEANS_SOURCE = "k-means, seed 0"


def _maps(
    representation: Representation,
    mu: np.ndarray,
    colourings: dict[str, list],
    folder: Path,
    methods_2d: Sequence[str],
    cluster_source: str,
) -> tuple[list[Path], np.ndarray | None]:
    """2-D maps of `mu` [shape=(n, d)] for each method and colouring with any known value; also
    the first embedding (for the interactive map), or None when `mu` is too small to embed.
    `mu` is standardised as the representation is for clustering: the map shows the space the
    clusters were found in."""
    paths: list[Path] = []
    first_xy = None
    for method in methods_2d:
        try:
            xy = plots.embedding_2d(
                mu, method=method, seed=0, standardize_input=representation.standardize
            )
        except ValueError:
            continue  # too few points for a 2-D map
        first_xy = xy if first_xy is None else first_xy
        for colour, values in colourings.items():
            if colour != "cluster" and all(v is None for v in values):
                continue
            shown = f"cluster ({cluster_source})" if colour == "cluster" else colour
            paths.append(
                plots.scatter_plot(
                    xy,
                    values,
                    f"{representation.name}: {method.upper()} by {shown}",
                    folder / f"{method}_{colour}.png",
                )
            )
    return paths, first_xy


def _cluster_heatmaps(
    representation: Representation,
    clusters: np.ndarray,
    targets: dict[str, list],
    folder: Path,
    source: str,
) -> list[Path]:
    """Cluster x target contingency heatmaps, for the targets with any known value."""
    return [
        plots.contingency_heatmap(
            values,
            clusters,
            f"{representation.name}: cluster ({source}) x {target}",
            folder / f"cluster_{target}.png",
        )
        for target, values in targets.items()
        if any(v is not None for v in values)
    ]


def figure_clusters(
    representation: Representation,
    latents: TrackLatents,
    n_clusters: int | None,
    given: ClusterAssignment | None,
) -> tuple[np.ndarray, str]:
    """The clusters a representation's figures show [shape=(n,)], in `latents`' track order, and
    where they come from (for the titles): `given` (the champion's fitted clustering) when there
    is one, else k-means with seed 0.

    Raises:
        KeyError: a track of `latents` has no cluster in `given`.
    """
    if given is not None:
        return given.labels_of(latents.track_ids), given.source
    fitted = cluster(
        latents.mu,
        algorithm="kmeans",
        n_clusters=n_clusters,
        seed=0,
        standardize_input=representation.standardize,
    )
    return fitted.labels, KMEANS_SOURCE


@task(
    cache_policy=cached_on(
        "tasks.evaluation.figures",
        "tasks.evaluation.plots",
        "tasks.evaluation.clustering",
        "tasks.evaluation.clusters",
    ),
    persist_result=True,
    task_run_name="plots {representation.method} {representation.features}",
)
def plot_representation(
    representation: Representation,
    labels: Labels,
    n_clusters: int | None,
    out_dir: Path,
    methods_2d: list[str],
    interactive: bool,
    given_clusters: ClusterAssignment | None = None,
) -> list[str]:
    """UMAP/t-SNE maps coloured by genre, cluster and language; cluster x genre/language
    heatmaps; with `interactive`, an HTML scatter too. Clusters: `figure_clusters`. Drawn in a
    free lane when lanes are open (`tasks.training.lanes`): matplotlib draws holding the GIL.

    Returns:
        The written paths, under `out_dir / representation.slug`.
    """
    return run_in_lane(
        draw_representation,
        representation,
        labels,
        n_clusters,
        out_dir,
        methods_2d,
        interactive,
        given_clusters,
    )


def draw_representation(
    representation: Representation,
    labels: Labels,
    n_clusters: int | None,
    out_dir: Path,
    methods_2d: list[str],
    interactive: bool,
    given_clusters: ClusterAssignment | None = None,
) -> list[str]:
    """What `plot_representation` draws, in the process it runs in."""
    latents = read_latents(representation.latents)
    genre, language = labels_for(latents, labels)
    clusters, source = figure_clusters(representation, latents, n_clusters, given_clusters)
    folder = out_dir / representation.slug
    folder.mkdir(parents=True, exist_ok=True)
    paths, xy = _maps(
        representation,
        latents.mu,
        {"genre": genre, "cluster": clusters, "language": language},
        folder,
        methods_2d,
        source,
    )
    paths += _cluster_heatmaps(
        representation, clusters, {"genre": genre, "language": language}, folder, source
    )
    if interactive and xy is not None:
        hover = pl.DataFrame(
            {
                "track_id": latents.track_ids,
                "genre": [g or "unknown" for g in genre],
                "language": [v or "unknown" for v in language],
                "cluster": [str(c) for c in clusters],
            }
        )
        paths.append(plots.interactive_scatter(xy, hover, "cluster", folder / "interactive.html"))
    return [str(p) for p in paths]


def _training_histories(
    representations: Sequence[Representation], workspace: Workspace
) -> dict[str, dict]:
    """`{"method [features]": {series: values}}` of every trained model with a history file."""
    histories = {}
    for representation in representations:
        if representation.model_dir is None:
            continue
        history = workspace.model_history(representation.model_dir.name)
        if history.exists():
            values = json.loads(history.read_text())
            histories[f"{representation.method} [{representation.features}]"] = {
                k: v for k, v in values.items() if k in CURVE_SERIES
            }
    return histories


def overview_plots(
    table: pl.DataFrame, representations: Sequence[Representation], workspace: Workspace
) -> list[Path]:
    """Figures of the whole comparison: the methods x metrics heatmap, bars of the main metrics
    that have values, the beta sweep when beta-VAE variants were compared, training curves."""
    plots_dir = workspace.plots
    paths = [plots.methods_metrics_heatmap(table, plots_dir / "methods_metrics_heatmap.png")]
    for metric in OVERVIEW_BAR_METRICS:
        if metric in table.columns and table[metric].drop_nulls().len():
            paths.append(plots.metric_bars(table, metric, plots_dir / f"bars_{metric}.png"))
    if any(plots.beta_of_features(f) is not None for f in table["features"].to_list()):
        paths.append(plots.beta_sweep_plot(table, plots_dir / "beta_sweep.png"))
    histories = _training_histories(representations, workspace)
    if histories:
        paths.append(training_curves(histories, plots_dir / "training_curves.png"))
    return paths


def draw_evaluation_figures(
    table: pl.DataFrame,
    representations: Sequence[Representation],
    *,
    labels: Labels,
    n_clusters: int | None,
    workspace: Workspace,
    methods_2d: Sequence[str],
    interactive_for: Representation | None,
    champion: ChampionClustering | None = None,
) -> list[Path]:
    """Every figure of an evaluation, the per-representation ones in parallel (Prefect tasks).

    Args:
        interactive_for: the one representation that also gets an interactive HTML map
            (`tasks.evaluation.champion.map_representation`); None for no HTML map.
        champion: the champion's fitted clustering; its representation's figures show these
            clusters (None: every representation is drawn with k-means).
    """
    given = champion.assignment() if champion is not None else None
    # The overview is drawn meanwhile, in a lane of its own when lanes are open.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="overview") as background:
        overview = background.submit(
            run_in_lane, overview_plots, table, list(representations), workspace
        )
        per_representation = plot_representation.map(
            list(representations),
            unmapped(labels),
            unmapped(n_clusters),
            unmapped(workspace.plots),
            unmapped(list(methods_2d)),
            [representation is interactive_for for representation in representations],
            [
                given
                if champion is not None and representation == champion.representation
                else None
                for representation in representations
            ],
        )
        paths = [Path(p) for group in per_representation.result() for p in group]
        return paths + overview.result()
