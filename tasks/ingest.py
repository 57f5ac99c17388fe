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


def audio_store_path(workspace: Workspace, audio_key: str, sha256: str) -> Path:
    """Decoded mono audio of one file under one audio configuration."""
    return workspace.audio_store(audio_key) / f"{sha256}.npy"


def validation_record_path(workspace: Workspace, audio_key: str, sha256: str) -> Path:
    """What validating one file under one audio configuration found (ok or why not)."""
    return workspace.audio_store(audio_key) / f"{sha256}.json"


def feature_path(workspace: Workspace, feature_key: str, sha256: str) -> Path:
    return workspace.feature_store(feature_key) / f"{sha256}.npz"


def batches(items: list, workers: int, *, most: int = 32) -> list[list]:
    """Consecutive chunks: about four per worker (even load), at most `most` items each.

    One Prefect task run per file costs tens of milliseconds of API and result-store work; per
    chunk it is spread over the files.
    """
    if not items:
        return []
    size = max(1, min(most, -(-len(items) // (4 * max(1, workers)))))
    return [items[i : i + size] for i in range(0, len(items), size)]


def _batch_name(verb: str):
    def name(parameters: dict[str, Any]) -> str:
        files = parameters.get("paths") or parameters.get("hashes") or []
        first = Path(str(files[0])).name if files else ""
        return f"{verb} {first[:40]} (+{len(files) - 1})" if len(files) > 1 else f"{verb} {first}"

    return name


@task(
    cache_policy=CACHED,
    persist_result=True,
    retries=2,
    retry_delay_seconds=[1, 5],
    task_run_name=_batch_name("validate"),
)
def validate_audio(
    paths: list[str], hashes: list[str], config: AudioConfig, workspace: Workspace
) -> list[dict[str, Any]]:
    """Decode and check files (content hashes given); store each one's decoded mono audio.

    Never raises for bad audio. Per file: {status, reason, duration_s, sample_rate, channels,
    decoded}; status is "ok" or "quarantined", decoded is False when the audio store already
    had the file (the store is content-addressed, so a file seen before is never decoded again).
    """
    return [
        _validate_one(path, sha256, config, workspace)
        for path, sha256 in zip(paths, hashes, strict=True)
    ]


def _validate_one(path: str, sha256: str, config: AudioConfig, workspace: Workspace) -> dict:
    record = validation_record_path(workspace, config.key, sha256)
    if record.exists():
        return json.loads(record.read_text()) | {"decoded": False}
    try:
        audio = decode_audio(path, config)
    except AudioRejected as rejection:
        check = _quarantined(str(rejection))
    else:
        _write_atomically(audio_store_path(workspace, config.key, sha256), audio.samples)
        check = {
            "status": "ok",
            "reason": None,
            "duration_s": audio.duration_s,
            "sample_rate": audio.source_sample_rate,
            "channels": audio.channels,
        }
    record.write_text(json.dumps(check))
    return check | {"decoded": True}


def _quarantined(reason: str) -> dict[str, Any]:
    return {
        "status": "quarantined",
        "reason": reason,
        "duration_s": None,
        "sample_rate": None,
        "channels": None,
    }


def _write_atomically(path: Path, samples: np.ndarray) -> None:
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, samples)
    tmp.replace(path)  # a killed run never leaves half a file under the final name


@task(
    cache_policy=CACHED,
    persist_result=True,
    retries=2,
    retry_delay_seconds=[1, 5],
    task_run_name=_batch_name("features"),
)
def extract_features(
    hashes: list[str], audio_key: str, config: FeatureConfig, workspace: Workspace
) -> list[bool]:
    """Compute the features of decoded tracks into the feature store.

    Returns, per track, whether its features were computed now (False: the content-addressed
    store had them, e.g. after Prefect's cache was cleared).
    """
    computed = []
    for sha256 in hashes:
        target = feature_path(workspace, config.key, sha256)
        computed.append(not target.exists())
        if computed[-1]:
            samples = np.load(audio_store_path(workspace, audio_key, sha256))
            extractor_for(config)(samples).save(target)
    return computed


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
    sources: pl.DataFrame, hashes: list[str | None], results: list[dict[str, Any] | None]
) -> pl.DataFrame:
    """One row per audio file found, ok or quarantined, in the order of `sources`.

    A file without a hash (None result) could not be read at all.
    """
    unreadable = _quarantined("file not found or unreadable")
    checks = pl.DataFrame(
        [unreadable if result is None else result for result in results],
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
