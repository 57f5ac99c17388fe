"""The evaluation flow on a hand-made work dir: which model gets the interactive map, and the
champion's clusters for people (table, playlists, descriptions, listening map)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from flows.evaluate import EvaluateConfig, evaluate_flow
from models.zoo import build_model
from registry.champion import CHAMPION_MODEL
from registry.models import download_model_files
from tasks.audio.decoding import AudioConfig
from tasks.audio.features import FeatureConfig
from tasks.audio.ingest import IngestRecord
from tasks.core.errors import UserInputError
from tasks.core.workspace import Workspace
from tasks.evaluation.champion import REFERENCE_FILE
from tasks.evaluation.representations import Representation, file_sha
from tasks.training.checkpoint import save_trained_model
from tasks.training.model_card import ModelCard
from tasks.training.representation import write_latents
from tasks.training.trainer import TrackLatents

GENRES = ("rock", "jazz", "blues")
TRACKS_PER_GENRE = 8


def _ingested_workspace(root: Path, fingerprint: str = "hand-made") -> Workspace:
    """A work dir as the ingest leaves it (track table and record), without audio."""
    workspace = Workspace.open(root)
    track_ids = [f"{genre}{i}" for genre in GENRES for i in range(TRACKS_PER_GENRE)]
    music = root / "music"
    music.mkdir()
    for track_id in track_ids:
        (music / f"{track_id}.wav").write_bytes(b"")  # a path to play; never decoded here
    pl.DataFrame(
        {
            "track_id": track_ids,
            "path": [str(music / f"{t}.wav") for t in track_ids],
            "status": ["ok"] * len(track_ids),
            "duration_s": [30.0] * len(track_ids),
            "genre": [t.rstrip("0123456789") for t in track_ids],
            "language": [None] * len(track_ids),
            "title": [f"Song {t}" for t in track_ids],
            "artist": ["Band"] * len(track_ids),
            "sha256": [f"{i:064x}" for i in range(len(track_ids))],
        },
        schema_overrides={"language": pl.String},
    ).write_parquet(workspace.tracks_table)
    IngestRecord(
        fingerprint=fingerprint,
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


def _trained(workspace: Workspace, method: str, mu: np.ndarray) -> Representation:
    """A trained model as the training leaves it (card, weights, latents): it can be promoted."""
    folder = workspace.models_root / f"{method}-seed0"
    model = build_model(method, input_shape=(8,))
    card = ModelCard(
        model=method,
        config=model.config.model_dump(mode="json"),
        input_shape=(8,),
        feature_key="unused",
        input_kind="vector",
        method=method,
        run_id=f"run-{method}",
        fingerprint=IngestRecord.read(workspace).fingerprint,
    )
    save_trained_model(model, card, folder)
    workspace.feature_manifest("unused").write_text(json.dumps({"config": {}, "summary_names": []}))
    representation = _model(workspace, method, mu)
    return representation.model_copy(update={"model_dir": folder, "standardize": False})


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

    # The champion's clusters, for people: every song by name, a playlist per cluster, a
    # description of each cluster and a map to listen to; the console says where they are.
    clusters = pl.read_csv(workspace.clusters_table)
    assert clusters.height == n
    assert set(clusters["title"]) == {f"Song {t}" for t in clusters["track_id"]}
    assert clusters.group_by("cluster").agg(pl.col("genre").n_unique())["genre"].max() == 1
    for cluster_id in clusters["cluster"].unique():
        playlist = workspace.playlist(cluster_id).read_text(encoding="utf-8")
        assert playlist.startswith("#EXTM3U\n#EXTINF:30,Band - Song ")
    summary = workspace.clusters_summary.read_text(encoding="utf-8")
    assert f"## Cluster 0: {TRACKS_PER_GENRE} tracks" in summary
    assert "mlp_vae[default], kmeans, 3 clusters" in summary
    assert workspace.listening_map.is_file()
    assert str(workspace.clusters_summary) in result.summary
    assert str(workspace.playlist(0).parent) in result.summary
    assert str(workspace.listening_map) in result.summary


def test_a_kept_champion_is_the_model_the_clusters_for_people_describe(
    prefect_api, tmp_path: Path
) -> None:
    # Bug: clusters.csv, the playlists and clusters.md described this evaluation's candidate even
    # when it lost to the registered champion, which is the model `predict` uses.
    workspace = _ingested_workspace(tmp_path / "work", fingerprint=f"kept-{uuid.uuid4().hex}")
    rng = np.random.default_rng(1)
    n = len(GENRES) * TRACKS_PER_GENRE
    centres = np.repeat(np.eye(len(GENRES), 4) * 10, TRACKS_PER_GENRE, axis=0)
    by_genre = _trained(workspace, "mlp_vae", centres + rng.normal(scale=0.1, size=(n, 4)))
    noise = _trained(workspace, "ae", rng.normal(size=(n, 4)))

    def evaluate(representation: Representation) -> str | None:
        config = EvaluateConfig(
            workdir=workspace.root,
            algorithms=["kmeans"],
            seeds=1,
            maps=["tsne"],
            representations=[representation],
        )
        return evaluate_flow(config).champion_version

    champion = evaluate(by_genre)
    assert champion is not None
    assert evaluate(noise) is None  # worse on the same objective and data: the champion stays

    registered = download_model_files(f"models:/{CHAMPION_MODEL}/{champion}", tmp_path / "dl")
    reference = pl.read_parquet(registered / REFERENCE_FILE).select("track_id", "cluster")
    clusters = pl.read_csv(workspace.clusters_table).select("track_id", "cluster")
    assert clusters.sort("track_id").equals(reference.sort("track_id"))
    summary = workspace.clusters_summary.read_text(encoding="utf-8")
    assert summary.splitlines()[2].startswith("mlp_vae[default], kmeans, 3 clusters;")
    assert "mlp_vae[default]" in workspace.listening_map.read_text(encoding="utf-8")


def test_a_work_dir_never_ingested_without_data_is_one_line_naming_the_fix(
    prefect_api, tmp_path: Path
) -> None:
    with pytest.raises(UserInputError, match="holds no ingested collection: give `data`"):
        evaluate_flow(EvaluateConfig(workdir=tmp_path / "fresh"))


def test_too_many_clusters_fail_once_before_any_clustering_task(
    prefect_api, tmp_path: Path
) -> None:
    # Bug: `--n-clusters 500` on 40 tracks failed in every clustering and plotting task, each
    # logging its traceback, before the one-line error.
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    workspace = _ingested_workspace(tmp_path / "work")
    n = len(GENRES) * TRACKS_PER_GENRE
    latents = _model(workspace, "ae", np.random.default_rng(0).normal(size=(n, 4)))
    config = EvaluateConfig(
        workdir=workspace.root, n_clusters=500, representations=[latents], maps=["tsne"]
    )

    state = evaluate_flow(config, return_state=True)

    assert state.is_failed()
    expected = f"n_clusters must be between 2 and the number of usable tracks - 1 = {n - 1}; "
    with pytest.raises(UserInputError, match=expected):
        state.result()
    with get_client(sync_client=True) as client:
        tasks = client.read_task_runs(
            flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[state.state_details.flow_run_id])
            )
        )
    assert tasks == []
