"""What is compared and how it scores: the baselines and the trained models as representations,
the labels they are judged against, and every representation clustered with every algorithm over
several seeds (the rows of the comparison table).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from prefect import get_run_logger, task, unmapped
from prefect.futures import as_completed
from pydantic import BaseModel, ConfigDict, Field
from sklearn.decomposition import PCA

from tasks.audio.features import load_verified, summary_feature_names
from tasks.audio.ingest import usable_tracks
from tasks.audio.pretrained_store import PretrainedRecord, read_pretrained
from tasks.core.caching import cached_on
from tasks.core.hashing import file_sha256
from tasks.core.progress import CountProgress
from tasks.core.workspace import Workspace
from tasks.evaluation.clustering import ClusteringError, cluster
from tasks.evaluation.metrics import (
    LANGUAGE_SUFFIX,
    aggregate_over_seeds,
    external_metrics,
    internal_metrics,
)
from tasks.lyrics.embedding import lyrics_baseline_space
from tasks.training.model_card import ModelCard
from tasks.training.representation import read_latents, write_latents
from tasks.training.trainer import TrackLatents

# The algorithm name of the rows that score VaDE's own mixture assignment (no clustering fitted).
MIXTURE_ALGORITHM = "mixture"


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
        "latent means of N(0, I)-prior VAEs and PCA scores (see tasks.evaluation.clustering).",
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

    @property
    def default_n_clusters(self) -> int | None:
        """The number of known genres, the grouping the clusters are compared with; None (choose
        k by a criterion) when fewer than two genres are known."""
        return self.n_genres if self.n_genres >= 2 else None


def file_sha(path: Path) -> str:
    """A short content hash of `path`: what changes a representation's cache key."""
    return file_sha256(path)[:16]


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


def baseline_representations(
    workspace: Workspace, feature_key: str, fingerprint: str, pca_components: int = 16
) -> list[Representation]:
    """The baselines, written as latents like any model's.

    - handcrafted: the standardised summary vector (MFCC+delta, chroma, contrast, centroid,
      roll-off, ZCR, RMS, tempo).
    - pca: PCA of the standardised summary vector (16 components, or fewer for tiny sets).
    - spectral_features: the standardised mean log-mel spectrum of each track.
    - lyrics: the lyrics embeddings of the tracks with lyrics (`lyrics_baseline`).
    - musicnn: the standardised mean over each track's 3 s patches of the pretrained network's
      200-d penultimate embedding, from the store of the work dir's last ingest
      (`pretrained.json`); left out, with a warning, for a work dir ingested before pretrained
      features existed.

    Must run inside a flow run (it runs a cached task).
    """
    record = PretrainedRecord.read(workspace)
    if record is None:
        get_run_logger().warning(
            "no pretrained features in %s (ingested before they existed): the musicnn baseline "
            "is left out; run the ingest again to add it",
            workspace.root,
        )
    baselines = descriptor_and_pretrained_baselines(
        workspace, feature_key, fingerprint, record.key if record else None, pca_components
    )
    lyrics = lyrics_baseline(workspace)
    return baselines if lyrics is None else [*baselines, lyrics]


def lyrics_baseline(workspace: Workspace) -> Representation | None:
    """The lyrics-only row: the tracks with lyrics, placed by their lyrics embeddings alone (as
    the multimodal models read them), to show what the lyrics say about the genres across
    languages. None without lyrics. Not cached: it only copies the lyrics stage's vectors."""
    space = lyrics_baseline_space(workspace)
    if space is None:
        return None
    track_ids, values, label = space
    path = workspace.baseline_latents("lyrics")
    write_latents(TrackLatents(track_ids=track_ids, mu=values, logvar=np.zeros_like(values)), path)
    return Representation(
        method="lyrics",
        features=f"{label}, {len(track_ids)} tracks with lyrics",
        latents=path,
        latents_sha=file_sha(path),
        # Unit vectors of one encoder: their dimensions are on one scale already.
        standardize=False,
    )


@task(
    cache_policy=cached_on(
        "tasks.evaluation.representations", "tasks.audio.features", "tasks.audio.pretrained"
    ),
    persist_result=True,
)
def descriptor_and_pretrained_baselines(
    workspace: Workspace,
    feature_key: str,
    fingerprint: str,
    pretrained_key: str | None,
    pca_components: int = 16,
) -> list[Representation]:
    """`baseline_representations` for the pretrained store `pretrained_key` (None: no musicnn
    row), cached on the keys of both stores."""
    tracks = usable_tracks(workspace)
    stats, spectra = [], []
    for sha in tracks["sha256"]:
        with load_verified(workspace.feature_file(feature_key, sha)) as data:
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
    if pretrained_key is not None:
        pooled = [
            read_pretrained(workspace, pretrained_key, sha).embedding_mean
            for sha in tracks["sha256"]
        ]
        spaces["musicnn"] = (_standardise(np.stack(pooled)), "mean musicnn embedding (200-d)")
    out = []
    for method, (values, label) in spaces.items():
        path = workspace.baseline_latents(method)
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


def trained_representations(workspace: Workspace) -> list[Representation]:
    """Every model trained in the work dir, in folder-name order: each folder of
    `workspace.models_root` with a model card and latents (a training that did not finish has
    none and is left out).

    Raises:
        ModelCardError: a folder's `model.json` is unreadable.
    """
    found = []
    for folder in sorted(path for path in workspace.models_root.iterdir() if path.is_dir()):
        latents = workspace.model_latents(folder.name)
        if not (ModelCard.path_in(folder).is_file() and latents.is_file()):
            continue
        card = ModelCard.read(folder)
        found.append(
            Representation(
                method=card.method,
                features=card.features,
                latents=latents,
                latents_sha=file_sha(latents),
                uses_labels=card.uses_labels,
                run_id=card.run_id,
                model_dir=folder,
                standardize=card.standardize_latents,
            )
        )
    return found


def summary_feature_names_for(workspace: Workspace, feature_key: str) -> list[str]:
    manifest = workspace.feature_manifest(feature_key)
    if manifest.exists():
        return json.loads(manifest.read_text())["summary_names"]
    from tasks.audio.features import FeatureConfig

    return summary_feature_names(FeatureConfig())


def _standardise(x: np.ndarray) -> np.ndarray:
    std = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(std > 1e-8, std, 1.0)


def labels_for(latents: TrackLatents, labels: Labels) -> tuple[list[str | None], list[str | None]]:
    """(genre, language) of every track of `latents`, in its order; None where unknown."""
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
        row.update(external_metrics(language, predicted, key_suffix=LANGUAGE_SUFFIX))
    return {k: v for k, v in row.items() if not k.endswith("_reason") and k != "n_labelled"}


@task(
    cache_policy=cached_on(
        "tasks.evaluation.representations",
        "tasks.evaluation.clustering",
        "tasks.evaluation.metrics",
    ),
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
    `tasks.evaluation.report.build_comparison_table`. VaDE also gets a row for its own mixture
    assignment (algorithm 'mixture'). An algorithm that fails on this space (for example DBSCAN
    finding a single cluster) still gets a row, with the reason in `note`.
    """
    latents = read_latents(representation.latents)
    x = latents.mu
    genre, language = labels_for(latents, labels)
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
            # Deterministic: more seeds would only repeat the same row (and fake a spread of 0).
            # Ward linkage is, once k is given; with k searched, the search uses the seed.
            if algorithm == "dbscan" or (algorithm == "agglomerative" and n_clusters is not None):
                break
        rows.extend({**identity, "algorithm": algorithm, **row} for row in per_seed)
    if latents.mixture_cluster is not None:
        scores = _scores(
            x, latents.mixture_cluster, genre, language, standardize=representation.standardize
        )
        rows.append(
            {
                **identity,
                "algorithm": MIXTURE_ALGORITHM,
                "seed": 0,
                "n_clusters": len(set(latents.mixture_cluster.tolist())),
                "noise_fraction": 0.0,
                **scores,
            }
        )
    return rows


def evaluate_representations(
    representations: Sequence[Representation],
    *,
    labels: Labels,
    algorithms: Sequence[str],
    n_clusters: int | None,
    seeds: int,
) -> list[list[dict[str, Any]]]:
    """`evaluate_representation` on every representation in parallel (Prefect tasks), logging
    "clustered n/total representations" about ten times as they finish (in any order).

    Must run inside a flow run (it logs to the run and submits tasks).

    Returns:
        The rows of each representation, in the order of `representations`.

    Raises:
        The first error of a failed task, in the order of `representations`.
    """
    logger = get_run_logger()
    logger.info(
        "evaluating %d representations x %d algorithms x %d seeds, k=%s",
        len(representations),
        len(algorithms),
        seeds,
        n_clusters or "chosen by criterion",
    )
    futures = evaluate_representation.map(
        list(representations),
        unmapped(labels),
        unmapped(list(algorithms)),
        unmapped(n_clusters),
        unmapped(seeds),
    )
    progress = CountProgress(logger, len(futures), verb="clustered", noun="representations")
    for _ in as_completed(list(futures)):
        progress.advance()
    return [future.result() for future in futures]


def pool_rows(row_groups: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One aggregated row per (method, features, algorithm, uses_labels) over every training
    seed and clustering seed, so no method is shown by its luckiest training run."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for group in row_groups:
        for row in group:
            key = (row["method"], row["features"], row["algorithm"], row["uses_labels"])
            groups.setdefault(key, []).append(row)
    return [aggregate_over_seeds(rows) for rows in groups.values()]
