"""The evaluation flow on a hand-made work dir: which model gets the interactive map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from flows.evaluate import EvaluateConfig, evaluate_flow
from tasks.audio.decoding import AudioConfig
from tasks.audio.features import FeatureConfig
from tasks.audio.ingest import IngestRecord
from tasks.core.workspace import Workspace
from tasks.evaluation.representations import Representation, file_sha
from tasks.training.representation import write_latents
from tasks.training.trainer import TrackLatents

GENRES = ("rock", "jazz", "blues")
TRACKS_PER_GENRE = 8


def _ingested_workspace(root: Path) -> Workspace:
    """A work dir as the ingest leaves it (track table and record), without audio."""
    workspace = Workspace.open(root)
    track_ids = [f"{genre}{i}" for genre in GENRES for i in range(TRACKS_PER_GENRE)]
    pl.DataFrame(
        {
            "track_id": track_ids,
            "status": ["ok"] * len(track_ids),
            "genre": [t.rstrip("0123456789") for t in track_ids],
            "language": [None] * len(track_ids),
            "sha256": [f"{i:064x}" for i in range(len(track_ids))],
        },
        schema_overrides={"language": pl.String},
    ).write_parquet(workspace.tracks_table)
    IngestRecord(
        fingerprint="hand-made",
        feature_key="unused",
        features=FeatureConfig(),
        audio=AudioConfig(),
        data=str(root),
    ).write(workspace)
    return workspace


def _model(workspace: Workspace, method: str, mu: np.ndarray) -> Representation:
    track_ids = pl.read_parquet(workspace.tracks_table)["track_id"].to_list()
    path = workspace.root / f"{method}.parquet"
    mu = mu.astype(np.float32)
    write_latents(TrackLatents(track_ids=track_ids, mu=mu, logvar=np.zeros_like(mu)), path)
    return Representation(
        method=method, features="default", latents=path, latents_sha=file_sha(path)
    )


def test_the_interactive_map_is_drawn_for_the_best_model_not_the_first(
    prefect_api, tmp_path: Path
) -> None:
    # Bug: the HTML map went to the first unsupervised zoo model in the list, whatever its rank.
    workspace = _ingested_workspace(tmp_path / "work")
    rng = np.random.default_rng(0)
    n = len(GENRES) * TRACKS_PER_GENRE
    noise = _model(workspace, "ae", rng.normal(size=(n, 4)))
    centres = np.repeat(np.eye(len(GENRES), 4) * 10, TRACKS_PER_GENRE, axis=0)
    by_genre = _model(workspace, "mlp_vae", centres + rng.normal(scale=0.1, size=(n, 4)))

    result = evaluate_flow(
        EvaluateConfig(
            workdir=workspace.root,
            algorithms=["kmeans"],
            seeds=1,
            maps=["tsne"],
            representations=[noise, by_genre],
            promote_champion=False,
        )
    )

    assert result.best["method"] == "mlp_vae"
    assert result.champion_version is None
    assert (workspace.plots / by_genre.slug / "interactive.html").is_file()
    assert not (workspace.plots / noise.slug / "interactive.html").exists()
    assert (workspace.plots / noise.slug / "tsne_genre.png").is_file()
