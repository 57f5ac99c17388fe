"""Evaluation tasks: baseline representations, clustering every representation with every
algorithm over several seeds, metrics against genre and language, and per-representation plots.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from prefect import task
from pydantic import BaseModel, ConfigDict, Field
from sklearn.decomposition import PCA

from tasks.caching import cached_on
from tasks.clustering import ClusteringError, cluster
from tasks.features import summary_feature_names
from tasks.ingest import feature_path, usable_tracks
from tasks.metrics import aggregate_over_seeds, external_metrics, internal_metrics
from tasks.representation import read_latents, write_latents
from tasks.training import TrackLatents
from tasks.workspace import Workspace


class Representation(BaseModel):
    """One clustered space: a row group of the comparison."""

    model_config = ConfigDict(frozen=True)

    method: str = Field(description="Model-zoo name or baseline (pca, spectral_features, ...).")
    features: str = Field(description="Variant, e.g. 'beta=4', 'fusion=late', 'audio_only'.")
    latents: Path
    latents_sha: str = Field(description="Content hash of the latents (part of the cache key).")
    uses_labels: bool = False
    run_id: str | None = Field(None, description="MLflow run that produced the representation.")
    model_dir: Path | None = None
    standardize: bool = Field(
        True,
        description="Standardise every dimension before clustering. False for spaces whose "
        "units are already comparable and whose per-dimension spread carries information: "
        "latent means of N(0, I)-prior VAEs and PCA scores (see tasks.clustering).",
    )

    @property
    def name(self) -> str:
        return f"{self.method}[{self.features}]"

    @property
    def slug(self) -> str:
        return "".join(
            c if c.isalnum() or c in "-_" else "_" for c in f"{self.method}-{self.features}"
        )


class Labels(BaseModel):
    """Where the per-track truth comes from (genre from the collection, language from lyrics)."""

    model_config = ConfigDict(frozen=True)

    track_ids: list[str]
    genre: list[str | None]
    language: list[str | None]

    @property
    def n_genres(self) -> int:
        return len({g for g in self.genre if g is not None})


def file_sha(path: Path) -> str:
    from tasks.audio import sha256_of

    return sha256_of(path)[:16]


def read_labels(workspace: Workspace) -> Labels:
    tracks = usable_tracks(workspace)
    language = tracks.select("track_id", "language")
    if workspace.lyrics_table.exists():  # detected lyrics language, when the lyrics stage ran
        detected = pl.read_parquet(workspace.lyrics_table).select(
            "track_id", pl.col("language").alias("detected")
        )
        language = language.join(detected, on="track_id", how="left").select(
            "track_id", pl.coalesce("detected", "language").alias("language")
        )
    return Labels(
        track_ids=tracks["track_id"].to_list(),
        genre=tracks["genre"].to_list(),
        language=language["language"].to_list(),
    )


@task(cache_policy=cached_on("tasks.evaluation", "tasks.features"), persist_result=True)
def baseline_representations(
    workspace: Workspace, feature_key: str, fingerprint: str, pca_components: int = 16
) -> list[Representation]:
    """The non-neural baselines, written as latents like any model's.

    - handcrafted: the standardised summary vector (MFCC+delta, chroma, contrast, centroid,
      roll-off, ZCR, RMS, tempo).
    - pca: PCA of the standardised summary vector (16 components, or fewer for tiny sets).
    - spectral_features: the standardised mean log-mel spectrum of each track.
    """
    tracks = usable_tracks(workspace)
    stats, spectra = [], []
    for sha in tracks["sha256"]:
        with np.load(feature_path(workspace, feature_key, sha)) as data:
            stats.append(data["track_stats"])
            spectra.append(data["logmel"].astype(np.float32).mean(axis=(0, 2)))
    names = summary_feature_names_for(workspace, feature_key)
    stats_array = _standardise(np.stack(stats))
    n_components = max(1, min(pca_components, stats_array.shape[0] - 1, stats_array.shape[1]))
    spaces = {
        "handcrafted": (stats_array, f"{len(names)} standardised descriptors"),
        # Not whitened: the variance of a component ranks it; equalising it would give the
        # noisiest components the weight of the first one.
        "pca": (
            PCA(n_components=n_components, random_state=0).fit_transform(stats_array),
            f"PCA({n_components}) of descriptors",
        ),
        "spectral_features": (_standardise(np.stack(spectra)), "mean log-mel spectrum"),
    }
    out = []
    for method, (values, label) in spaces.items():
        path = workspace.root / "baselines" / method / "latents.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        values = values.astype(np.float32)
        write_latents(
            TrackLatents(
                track_ids=tracks["track_id"].to_list(), mu=values, logvar=np.zeros_like(values)
            ),
            path,
        )
        out.append(
            Representation(
                method=method,
                features=label,
                latents=path,
                latents_sha=file_sha(path),
                standardize=method != "pca",
            )
        )
    return out


def summary_feature_names_for(workspace: Workspace, feature_key: str) -> list[str]:
    manifest = workspace.feature_store(feature_key) / "feature_config.json"
    if manifest.exists():
        return json.loads(manifest.read_text())["summary_names"]
    from tasks.features import FeatureConfig

    return summary_feature_names(FeatureConfig())


def _standardise(x: np.ndarray) -> np.ndarray:
    std = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(std > 1e-8, std, 1.0)


def _labels_for(latents: TrackLatents, labels: Labels) -> tuple[list[str | None], list[str | None]]:
    index = {t: i for i, t in enumerate(labels.track_ids)}
    rows = [index.get(t) for t in latents.track_ids]
    genre = [labels.genre[i] if i is not None else None for i in rows]
    language = [labels.language[i] if i is not None else None for i in rows]
    return genre, language


def _scores(
    x: np.ndarray, predicted: np.ndarray, genre: list, language: list, *, standardize: bool = True
) -> dict[str, Any]:
    row: dict[str, Any] = {}
    row.update(internal_metrics(x, predicted, standardize_input=standardize))
    if any(g is not None for g in genre):
        row.update(external_metrics(genre, predicted))
    if any(v is not None for v in language):
        row.update(external_metrics(language, predicted, key_suffix="_language"))
    return {k: v for k, v in row.items() if not k.endswith("_reason") and k != "n_labelled"}


@task(
    cache_policy=cached_on("tasks.evaluation", "tasks.clustering", "tasks.metrics"),
    persist_result=True,
    task_run_name="cluster {representation.method} {representation.features}",
)
def evaluate_representation(
    representation: Representation,
    labels: Labels,
    algorithms: list[str],
    n_clusters: int | None,
    seeds: int,
) -> list[dict[str, Any]]:
    """Metrics of each algorithm and clustering seed on one representation (one row each).

    Rows are pooled across training seeds by `pool_rows` into the rows of
    `tasks.report.build_comparison_table`. VaDE also gets a row for its own mixture
    assignment (algorithm 'mixture'). An algorithm that fails on this space (for example DBSCAN
    finding a single cluster) still gets a row, with the reason in `note`.
    """
    latents = read_latents(representation.latents)
    x = latents.mu
    genre, language = _labels_for(latents, labels)
    identity = {
        "method": representation.method,
        "features": representation.features,
        "uses_labels": representation.uses_labels,
    }
    rows = []
    for algorithm in algorithms:
        per_seed = []
        for seed in range(seeds):
            try:
                result = cluster(
                    x,
                    algorithm=algorithm,
                    n_clusters=n_clusters,
                    seed=seed,
                    standardize_input=representation.standardize,
                )
            except ClusteringError as error:
                per_seed.append({"seed": seed, "note": str(error)})
                continue
            scores = _scores(
                x, result.labels, genre, language, standardize=representation.standardize
            )
            per_seed.append(
                {
                    "seed": seed,
                    "n_clusters": result.n_clusters,
                    "noise_fraction": result.noise_fraction,
                    **scores,
                }
            )
            if algorithm == "dbscan":
                break  # deterministic: more seeds would only repeat the same row
        rows.extend({**identity, "algorithm": algorithm, **row} for row in per_seed)
    if latents.mixture_cluster is not None:
        scores = _scores(
            x, latents.mixture_cluster, genre, language, standardize=representation.standardize
        )
        rows.append(
            {
                **identity,
                "algorithm": "mixture",
                "seed": 0,
                "n_clusters": len(set(latents.mixture_cluster.tolist())),
                "noise_fraction": 0.0,
                **scores,
            }
        )
    return rows


def pool_rows(row_groups: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One aggregated row per (method, features, algorithm, uses_labels) over every training
    seed and clustering seed, so no method is shown by its luckiest training run."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for group in row_groups:
        for row in group:
            key = (row["method"], row["features"], row["algorithm"], row["uses_labels"])
            groups.setdefault(key, []).append(row)
    return [aggregate_over_seeds(rows) for rows in groups.values()]


@task(
    cache_policy=cached_on("tasks.evaluation", "tasks.plots", "tasks.clustering"),
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
) -> list[str]:
    """UMAP/t-SNE maps coloured by genre, cluster and language; cluster x genre/language
    heatmaps; optionally an interactive HTML scatter. Returns the written paths."""
    from tasks import plots

    latents = read_latents(representation.latents)
    genre, language = _labels_for(latents, labels)
    clusters = cluster(
        latents.mu,
        algorithm="kmeans",
        n_clusters=n_clusters,
        seed=0,
        standardize_input=representation.standardize,
    ).labels
    folder = out_dir / representation.slug
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    xy_for_html = None
    for method in methods_2d:
        try:
            xy = plots.embedding_2d(latents.mu, method=method, seed=0)
        except ValueError:
            continue  # too few points for a 2-D map
        xy_for_html = xy if xy_for_html is None else xy_for_html
        for colour, values in (("genre", genre), ("cluster", clusters), ("language", language)):
            if colour != "cluster" and all(v is None for v in values):
                continue
            paths.append(
                plots.scatter_plot(
                    xy,
                    values,
                    f"{representation.name}: {method.upper()} by {colour}",
                    folder / f"{method}_{colour}.png",
                )
            )
    if any(g is not None for g in genre):
        paths.append(
            plots.contingency_heatmap(
                genre,
                clusters,
                f"{representation.name}: cluster x genre",
                folder / "cluster_genre.png",
            )
        )
    if any(v is not None for v in language):
        paths.append(
            plots.contingency_heatmap(
                language,
                clusters,
                f"{representation.name}: cluster x language",
                folder / "cluster_language.png",
            )
        )
    if interactive and xy_for_html is not None:
        hover = pl.DataFrame(
            {
                "track_id": latents.track_ids,
                "genre": [g or "unknown" for g in genre],
                "language": [v or "unknown" for v in language],
                "cluster": [str(c) for c in clusters],
            }
        )
        paths.append(
            plots.interactive_scatter(xy_for_html, hover, "cluster", folder / "interactive.html")
        )
    return [str(p) for p in paths]
