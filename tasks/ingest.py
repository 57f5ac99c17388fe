"""Ingest tasks: hash, validate and decode, extract features, and write the track table."""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from prefect import task

from tasks.audio import AudioConfig, AudioRejected, decode_audio, sha256_of
from tasks.caching import cached_on
from tasks.features import FeatureConfig, TrackFeatures, extractor_for, summary_feature_names
from tasks.workspace import Workspace

CACHED = cached_on("tasks.audio", "tasks.features")

TRACK_SCHEMA = {
    "track_id": pl.String,
    "path": pl.String,
    "sha256": pl.String,
    "duration_s": pl.Float64,
    "sample_rate": pl.Int64,
    "channels": pl.Int64,
    "genre": pl.String,
    "language": pl.String,
    "title": pl.String,
    "artist": pl.String,
    "lyrics_path": pl.String,
    "status": pl.String,
    "reason": pl.String,
}


def hash_files(paths: list[str], *, workers: int) -> list[str | None]:
    """sha256 of each file (None for a file that is missing or unreadable), read in parallel."""

    def one(path: str) -> str | None:
        try:
            return sha256_of(path)
        except OSError:
            return None

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(one, paths))


def audio_store_path(workspace: Workspace, sample_rate: int, sha256: str) -> Path:
    """Decoded mono audio of one file at one analysis rate."""
    folder = workspace.audio_store / f"{sample_rate}hz"
    folder.mkdir(exist_ok=True)
    return folder / f"{sha256}.npy"


def feature_path(workspace: Workspace, feature_key: str, sha256: str) -> Path:
    return workspace.feature_store(feature_key) / f"{sha256}.npz"


@task(
    cache_policy=CACHED,
    persist_result=True,
    retries=2,
    retry_delay_seconds=[1, 5],
    task_run_name="validate {path}",
)
def validate_audio(
    path: str, sha256: str | None, config: AudioConfig, workspace: Workspace
) -> dict[str, Any]:
    """Decode and check one file; store the decoded mono audio. Never raises for bad audio.

    Returns {status, reason, duration_s, sample_rate, channels}; status is "ok" or "quarantined".
    """
    if sha256 is None:
        return {
            "status": "quarantined",
            "reason": "file not found or unreadable",
            "duration_s": None,
            "sample_rate": None,
            "channels": None,
        }
    try:
        audio = decode_audio(path, config)
    except AudioRejected as rejection:
        return {
            "status": "quarantined",
            "reason": str(rejection),
            "duration_s": None,
            "sample_rate": None,
            "channels": None,
        }
    store = audio_store_path(workspace, config.sample_rate, sha256)
    if not store.exists():
        tmp = store.with_suffix(".tmp.npy")
        np.save(tmp, audio.samples)
        tmp.replace(store)
    return {
        "status": "ok",
        "reason": None,
        "duration_s": audio.duration_s,
        "sample_rate": audio.source_sample_rate,
        "channels": audio.channels,
    }


@task(
    cache_policy=CACHED,
    persist_result=True,
    retries=2,
    retry_delay_seconds=[1, 5],
    task_run_name="features {sha256:.12}",
)
def extract_features(sha256: str, config: FeatureConfig, workspace: Workspace) -> str:
    """Compute the features of one decoded track into the feature store; return the file path.

    The store is content-addressed (file hash + feature key), so a file already there is reused
    even when Prefect's cache was cleared.
    """
    target = feature_path(workspace, config.key, sha256)
    if not target.exists():
        samples = np.load(audio_store_path(workspace, config.sample_rate, sha256))
        extractor_for(config)(samples).save(target)
    return str(target)


def write_feature_manifest(workspace: Workspace, config: FeatureConfig) -> Path:
    """`feature_config.json` next to the features: the settings and the summary-vector names."""
    path = workspace.feature_store(config.key) / "feature_config.json"
    path.write_text(
        json.dumps(
            {"config": config.model_dump(), "summary_names": summary_feature_names(config)},
            indent=2,
        )
    )
    return path


def build_track_table(
    sources: pl.DataFrame, hashes: list[str | None], results: list[dict[str, Any]]
) -> pl.DataFrame:
    """One row per audio file found, ok or quarantined, in the order of `sources`."""
    checks = pl.DataFrame(
        results,
        schema={
            "status": pl.String,
            "reason": pl.String,
            "duration_s": pl.Float64,
            "sample_rate": pl.Int64,
            "channels": pl.Int64,
        },
    )
    table = pl.concat(
        [sources, pl.DataFrame({"sha256": hashes}, schema={"sha256": pl.String}), checks],
        how="horizontal",
    )
    return table.select([pl.col(name).cast(dtype) for name, dtype in TRACK_SCHEMA.items()])


def dataset_fingerprint(tracks: pl.DataFrame) -> str:
    """A hash of the usable tracks (ids and contents): equal fingerprints mean equal data."""
    ok = tracks.filter(pl.col("status") == "ok").sort("track_id")
    digest = hashlib.sha256()
    for track_id, sha in ok.select("track_id", "sha256").iter_rows():
        digest.update(f"{track_id}\t{sha}\n".encode())
    return digest.hexdigest()[:16]


def load_track_features(workspace: Workspace, feature_key: str, sha256: str) -> TrackFeatures:
    return TrackFeatures.load(feature_path(workspace, feature_key, sha256))


def usable_tracks(workspace: Workspace) -> pl.DataFrame:
    """The ok tracks of a work dir, one row per track id, sorted by id: the order that every
    latent array, crop index and label list of the later stages follows."""
    return (
        pl.read_parquet(workspace.tracks_table)
        .filter(pl.col("status") == "ok")
        .unique("track_id", keep="first")
        .sort("track_id")
    )
