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


def validation_record_path(workspace: Workspace, audio_key: str, sha256: str) -> Path:
    """What validating one file under one audio configuration found (ok or why not)."""
    return workspace.validation_store(audio_key) / f"{sha256}.json"


def feature_path(workspace: Workspace, feature_key: str, sha256: str) -> Path:
    return workspace.feature_store(feature_key) / f"{sha256}.npz"


def batches(items: list, workers: int, *, most: int = 32) -> list[list]:
    """Consecutive chunks: two per worker (a fair split of the load), at most `most` items each.

    One Prefect task run per file costs tens of milliseconds of API and result-store work; per
    chunk it is spread over the files.
    """
    if not items:
        return []
    size = max(1, min(most, -(-len(items) // (2 * max(1, workers)))))
    return [items[i : i + size] for i in range(0, len(items), size)]


def _batch_run_name(parameters: dict[str, Any]) -> str:
    paths = parameters.get("paths") or [""]
    more = f" (+{len(paths) - 1})" if len(paths) > 1 else ""
    return f"audio {Path(paths[0]).name[:40]}{more}"


@task(
    cache_policy=CACHED,
    persist_result=True,
    retries=2,
    retry_delay_seconds=[1, 5],
    task_run_name=_batch_run_name,
)
def process_audio(
    paths: list[str],
    hashes: list[str],
    audio: AudioConfig,
    features: FeatureConfig,
    workspace: Workspace,
) -> list[dict[str, Any]]:
    """Validate files (quarantining bad ones) and store the features of the good ones.

    Never raises for bad audio. Per file: {status, reason, duration_s, sample_rate, channels,
    decoded, featurized}: status is "ok" or "quarantined"; decoded and featurized tell whether
    this call validated the file and computed its features, or found them in the
    content-addressed stores (validation records per audio configuration, features per feature
    configuration), so a file seen before is not decoded again unless its features are missing.
    A file is decoded once for both: decoded audio is not kept on disk (2.6 MB per 30 s track).
    """
    return [
        _process_one(path, sha256, audio, features, workspace)
        for path, sha256 in zip(paths, hashes, strict=True)
    ]


def _process_one(
    path: str, sha256: str, audio: AudioConfig, features: FeatureConfig, workspace: Workspace
) -> dict[str, Any]:
    record = validation_record_path(workspace, audio.key, sha256)
    samples = None
    decoded = not record.exists()
    if decoded:
        check, samples = _validate(path, audio)
        _write_text_atomically(record, json.dumps(check))
    else:
        check = json.loads(record.read_text())
    target = feature_path(workspace, features.key, sha256)
    featurized = check["status"] == "ok" and not target.exists()
    if featurized:
        if samples is None:
            samples = decode_audio(path, audio).samples
        extractor_for(features)(samples).save(target)
    return check | {"decoded": decoded, "featurized": featurized}


def _validate(path: str, config: AudioConfig) -> tuple[dict[str, Any], np.ndarray | None]:
    try:
        audio = decode_audio(path, config)
    except AudioRejected as rejection:
        return quarantined(str(rejection)), None
    check = {
        "status": "ok",
        "reason": None,
        "duration_s": audio.duration_s,
        "sample_rate": audio.source_sample_rate,
        "channels": audio.channels,
    }
    return check, audio.samples


def quarantined(reason: str) -> dict[str, Any]:
    return {
        "status": "quarantined",
        "reason": reason,
        "duration_s": None,
        "sample_rate": None,
        "channels": None,
    }


def _write_text_atomically(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)  # a killed run never leaves half a record under the final name


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
    unreadable = quarantined("file not found or unreadable")
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
