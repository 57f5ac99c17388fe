"""Ingest tasks: hash, validate and decode, extract features, and write the track table.

The stores are content addressed: a file is known by the sha256 of its bytes, its validation
verdict is kept per audio configuration and its features per feature configuration, so a file
seen before is neither decoded nor featurized again, whatever its path. Only verdicts about
content are stored: a file that could not be read (moved away for a moment, not permitted) is
checked again by the next run.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
import torch
from prefect import task
from prefect.cache_policies import CachePolicy
from prefect.futures import PrefectFuture
from prefect.utilities.hashing import hash_objects
from pydantic import BaseModel, ConfigDict, Field

from registry.tracking import log_artifact, log_metrics, log_params, set_tags, tracked_run
from tasks.audio.decoding import AudioConfig, AudioRejected, AudioUnreadable, decode_audio
from tasks.audio.discovery import SourceSettings
from tasks.audio.features import FeatureConfig, TrackFeatures, extractor_for, summary_feature_names
from tasks.core.atomic import replaced_atomically
from tasks.core.caching import cached_on
from tasks.core.hashing import file_sha256
from tasks.core.progress import CountProgress, Logger
from tasks.core.workspace import Workspace

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
    "note": pl.String,
}
"""Columns of tracks.parquet. `reason`: why a quarantined file is not used; `note`: what the
ingest changed about a row (a renamed track id, a refused lyrics path)."""


class FileCheck(BaseModel):
    """What validating one file found: stored as `<sha256>.json` in the validation store of its
    audio configuration, and one row of the track table.

    duration_s is the source duration in seconds, sample_rate the source rate in Hz; both and
    channels are None for a quarantined file.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    status: Literal["ok", "quarantined"]
    reason: str | None = None
    duration_s: float | None = None
    sample_rate: int | None = None
    channels: int | None = None

    @classmethod
    def quarantined(cls, reason: str) -> FileCheck:
        return cls(status="quarantined", reason=reason)


class ReadFailure(FileCheck):
    """A quarantine for a file that could not be read: kept for this run's table only, never
    stored as a verdict on the content."""


class ProcessedFile(FileCheck):
    """A file's check, and what this call did for it (the rest came from the stores)."""

    decoded: bool
    featurized: bool


CHECK_SCHEMA = {
    "status": pl.String,
    "reason": pl.String,
    "duration_s": pl.Float64,
    "sample_rate": pl.Int64,
    "channels": pl.Int64,
}
UNREADABLE = FileCheck.quarantined("file not found or unreadable")


def hash_files(
    paths: list[str | None],
    *,
    workers: int,
    max_bytes: int = SourceSettings().max_file_bytes,
) -> list[str | None]:
    """sha256 of each file, read in parallel; None for no path (a refused entry) and for a file
    that is missing, unreadable, not a regular file (a FIFO or device is never read) or larger
    than `max_bytes`."""

    def one(path: str | None) -> str | None:
        if path is None:
            return None
        try:
            return file_sha256(path, max_bytes=max_bytes)
        except OSError:
            return None

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(one, paths))


def first_path_per_content(paths: list[str], hashes: list[str | None]) -> dict[str, str]:
    """sha256 -> the first path holding that content (unreadable files left out), in order.

    Each content is processed once, however many paths hold it.
    """
    first: dict[str, str] = {}
    for path, sha256 in zip(paths, hashes, strict=True):
        if sha256 is not None:
            first.setdefault(sha256, path)
    return first


def batches(items: list, workers: int, *, most: int = 32) -> list[list]:
    """Consecutive chunks: two per worker (a fair split of the load), at most `most` items each.

    One Prefect task run per file costs tens of milliseconds of API and result-store work; per
    chunk it is spread over the files.
    """
    if not items:
        return []
    size = max(1, min(most, -(-len(items) // (2 * max(1, workers)))))
    return [items[i : i + size] for i in range(0, len(items), size)]


@contextmanager
def torch_threads_per_worker(workers: int) -> Iterator[None]:
    """Share the cores between `workers` parallel feature extractors while the block runs.

    Each extractor would otherwise start one torch thread per core and they would fight for
    them; the previous setting is restored so later stages in this process get every core.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, workers)))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _batch_run_name(parameters: dict[str, Any]) -> str:
    paths = parameters.get("paths") or [""]
    more = f" (+{len(paths) - 1})" if len(paths) > 1 else ""
    return f"audio {Path(paths[0]).name[:40]}{more}"


@dataclass
class UnlessStoresIncomplete(CachePolicy):
    """`base`, extended with the state of the stores a `process_audio` batch reads, and no
    caching at all while a file of the batch has no stored verdict.

    A batch whose file could not be read has no stored verdict for it, so it is never served
    from Prefect's cache: the next run reads the file again. And a feature file removed from the
    store (a damaged one is moved aside when read) changes the key, so it is computed again.
    """

    base: CachePolicy | None = None

    def compute_key(
        self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: Any, **kwargs: Any
    ) -> str | None:
        workspace, hashes = inputs["workspace"], inputs["hashes"]
        audio, features = inputs["audio"], inputs["features"]
        if not all(workspace.validation_record(audio.key, h).exists() for h in hashes):
            return None
        stored = "".join(
            "1" if workspace.feature_file(features.key, h).exists() else "0" for h in hashes
        )
        assert self.base is not None
        base = self.base.compute_key(task_ctx, inputs, flow_parameters, **kwargs)
        return hash_objects(base, stored, raise_on_failure=True)


@task(
    cache_policy=UnlessStoresIncomplete(
        base=cached_on("tasks.audio.decoding", "tasks.audio.features", __name__)
    ),
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
) -> list[ProcessedFile]:
    """Validate files (quarantining bad ones) and store the features of the good ones.

    Never raises for bad audio. Returns one `ProcessedFile` per path: `decoded` and `featurized`
    tell whether this call validated the file and computed its features, or found them in the
    content-addressed stores, so a file seen before is not decoded again unless its features
    are missing. A file is decoded once for both: decoded audio is not kept on disk (2.6 MB per
    30 s track).
    """
    return [
        _process_one(path, sha256, audio, features, workspace)
        for path, sha256 in zip(paths, hashes, strict=True)
    ]


def _process_one(
    path: str, sha256: str, audio: AudioConfig, features: FeatureConfig, workspace: Workspace
) -> ProcessedFile:
    record = workspace.validation_record(audio.key, sha256)
    samples = None
    decoded = not record.exists()
    if decoded:
        check, samples = _validate(path, audio, features.sample_rate)
        if not isinstance(check, ReadFailure):
            _write_text_atomically(record, check.model_dump_json())
    else:
        check = FileCheck.model_validate_json(record.read_text())
    target = workspace.feature_file(features.key, sha256)
    featurized = check.status == "ok" and not target.exists()
    if featurized and samples is None:  # a verdict was stored, the features were not
        check, samples = _validate(path, audio, features.sample_rate)
        featurized = samples is not None
    if featurized:
        extractor_for(features)(samples).save(target)
    fields = check.model_dump(include=set(FileCheck.model_fields))
    return ProcessedFile(**fields, decoded=decoded, featurized=featurized)


def _validate(
    path: str, config: AudioConfig, sample_rate: int
) -> tuple[FileCheck, np.ndarray | None]:
    try:
        audio = decode_audio(path, config, sample_rate=sample_rate)
    except AudioUnreadable as failure:
        return ReadFailure(status="quarantined", reason=str(failure)), None
    except AudioRejected as rejection:
        return FileCheck.quarantined(str(rejection)), None
    check = FileCheck(
        status="ok",
        duration_s=audio.duration_s,
        sample_rate=audio.source_sample_rate,
        channels=audio.channels,
    )
    return check, audio.samples


def _write_text_atomically(path: Path, text: str) -> None:
    with replaced_atomically(path) as tmp:
        tmp.write_text(text)


@dataclass(frozen=True)
class ProcessedCollection:
    """Every distinct content's result, and how many files this run processed itself.

    `validated_now` / `featurized_now` leave out batches Prefect served from its cache (their
    flags tell what their first run did) and files found in the content-addressed stores.
    """

    by_content: dict[str, ProcessedFile]
    validated_now: int
    featurized_now: int

    def checks_for(self, hashes: Sequence[str | None]) -> list[FileCheck]:
        """The check of each file of `hashes`, `UNREADABLE` for a file without a hash."""
        return [UNREADABLE if h is None else self.by_content[h] for h in hashes]


def gather_batches(
    futures: list[PrefectFuture], hashes: list[list[str]], logger: Logger
) -> ProcessedCollection:
    """Wait for the `process_audio` runs (one per batch of `hashes`), logging about ten
    "validated and featurized: done/total files" lines as batches finish.

    Raises:
        Exception: whatever a batch raised after its retries.
    """
    total = sum(len(batch) for batch in hashes)
    progress = CountProgress(logger, total, verb="validated and featurized:", noun="files")
    results: list[list[ProcessedFile]] = []
    for future in futures:
        results.append(future.result())
        progress.advance(len(results[-1]))
    fresh = [
        batch
        for future, batch in zip(futures, results, strict=True)
        if future.state.name != "Cached"
    ]
    return ProcessedCollection(
        by_content={
            h: f
            for chunk, batch in zip(hashes, results, strict=True)
            for h, f in zip(chunk, batch, strict=True)
        },
        validated_now=sum(f.decoded for batch in fresh for f in batch),
        featurized_now=sum(f.featurized for batch in fresh for f in batch),
    )


def build_track_table(
    sources: pl.DataFrame, hashes: list[str | None], checks: list[FileCheck]
) -> pl.DataFrame:
    """One row per audio file found, ok or quarantined, in the order of `sources` (columns and
    types: `TRACK_SCHEMA`). An entry discovery refused (`refused` column) is quarantined with
    that reason."""
    rows = pl.DataFrame(
        [check.model_dump(include=set(CHECK_SCHEMA)) for check in checks], schema=CHECK_SCHEMA
    )
    for column in ("refused", "note"):
        if column not in sources.columns:
            sources = sources.with_columns(pl.lit(None, dtype=pl.String).alias(column))
    table = pl.concat(
        [sources, pl.DataFrame({"sha256": hashes}, schema={"sha256": pl.String}), rows],
        how="horizontal",
    )
    refused = pl.col("refused").is_not_null()
    table = table.with_columns(
        pl.when(refused).then(pl.lit("quarantined")).otherwise(pl.col("status")).alias("status"),
        pl.coalesce(pl.col("refused"), pl.col("reason")).alias("reason"),
        *[
            pl.when(refused).then(None).otherwise(pl.col(c)).alias(c)
            for c in ("duration_s", "sample_rate", "channels")
        ],
    )
    return table.select([pl.col(name).cast(dtype) for name, dtype in TRACK_SCHEMA.items()])


def dataset_fingerprint(tracks: pl.DataFrame) -> str:
    """A hash of the usable tracks (ids and contents): equal fingerprints mean equal data."""
    ok = tracks.filter(pl.col("status") == "ok").sort("track_id")
    digest = hashlib.sha256()
    for track_id, sha in ok.select("track_id", "sha256").iter_rows():
        digest.update(f"{track_id}\t{sha}\n".encode())
    return digest.hexdigest()[:16]


class IngestRecord(BaseModel):
    """`fingerprint.json`: what the last ingest of a work dir used and produced.

    Later stages read the data fingerprint and the feature key from here (`IngestRecord.read`);
    the settings are kept so a reader can tell which audio and feature configuration the stores
    of `feature_key` hold.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    fingerprint: str = Field(description="`dataset_fingerprint` of the track table.")
    feature_key: str = Field(description="Key of the feature store the tracks were featurized in.")
    features: FeatureConfig
    audio: AudioConfig
    data: str = Field(description="The collection that was ingested (folder or manifest).")

    def write(self, workspace: Workspace) -> Path:
        workspace.fingerprint_file.write_text(self.model_dump_json(indent=2))
        return workspace.fingerprint_file

    @classmethod
    def read(cls, workspace: Workspace) -> IngestRecord:
        """The record of `workspace`.

        Raises:
            FileNotFoundError: the work dir was never ingested (the message says what to run).
        """
        if not workspace.fingerprint_file.exists():
            raise FileNotFoundError(
                f"no ingest record ({workspace.fingerprint_file.name}) in {workspace.root}: run "
                f"`python -m flows ingest DATA --workdir {workspace.root}` first"
            )
        return cls.model_validate_json(workspace.fingerprint_file.read_text())


def write_ingest_outputs(
    workspace: Workspace,
    tracks: pl.DataFrame,
    *,
    data: Path,
    audio: AudioConfig,
    features: FeatureConfig,
) -> IngestRecord:
    """Write `tracks.parquet`, `quarantine.csv`, `fingerprint.json` and the feature manifest
    (`feature_config.json`: settings and summary-vector names, next to the features).

    `quarantine.csv` lists every quarantined or refused entry with its reason, and every kept
    track whose row carries a note (a renamed id): nothing the ingest set aside or changed goes
    unreported.
    """
    tracks.write_parquet(workspace.tracks_table)
    tracks.filter((pl.col("status") == "quarantined") | pl.col("note").is_not_null()).select(
        "track_id", "path", "status", "reason", "note"
    ).write_csv(workspace.quarantine_report)
    workspace.feature_manifest(features.key).write_text(
        json.dumps(
            {"config": features.model_dump(), "summary_names": summary_feature_names(features)},
            indent=2,
        )
    )
    record = IngestRecord(
        fingerprint=dataset_fingerprint(tracks),
        feature_key=features.key,
        features=features,
        audio=audio,
        data=str(data),
    )
    record.write(workspace)
    return record


def log_ingest_run(
    workspace: Workspace,
    record: IngestRecord,
    tracks: pl.DataFrame,
    processed: ProcessedCollection,
    *,
    seconds: float,
    parent_run_id: str | None = None,
) -> str:
    """Record the ingest in MLflow (experiment "ingest", or nested under `parent_run_id`):
    settings, counts, hours of audio, seconds per clip and the three output files. Returns the
    run id."""
    ok = tracks.filter(pl.col("status") == "ok")
    with tracked_run(
        "ingest", f"ingest {Path(record.data).name}", parent_run_id=parent_run_id
    ) as run_id:
        log_params(
            run_id,
            {
                "data": record.data,
                "workdir": str(workspace.root),
                "feature_key": record.feature_key,
                "features": record.features.model_dump(),
                "audio": record.audio.model_dump(),
            },
        )
        set_tags(run_id, {"fingerprint": record.fingerprint, "stage": "ingest"})
        log_metrics(
            run_id,
            {
                "n_tracks": tracks.height,
                "n_ok": ok.height,
                "n_quarantined": tracks.height - ok.height,
                "hours_of_audio": float(ok["duration_s"].sum() or 0.0) / 3600,
                "seconds_per_clip": seconds / max(tracks.height, 1),
                "validated_this_run": processed.validated_now,
                "featurized_this_run": processed.featurized_now,
            },
        )
        for path in (
            workspace.tracks_table,
            workspace.quarantine_report,
            workspace.fingerprint_file,
        ):
            log_artifact(run_id, path)
    return run_id


def load_track_features(workspace: Workspace, feature_key: str, sha256: str) -> TrackFeatures:
    """The verified features of one content.

    Raises:
        DamagedFeatureFile: the stored file is damaged (moved aside; the next ingest
            recomputes it).
    """
    return TrackFeatures.load(workspace.feature_file(feature_key, sha256))


def usable_tracks(workspace: Workspace) -> pl.DataFrame:
    """The ok tracks of a work dir, one row per track id, sorted by id: the order that every
    latent array, crop index and label list of the later stages follows."""
    return (
        pl.read_parquet(workspace.tracks_table)
        .filter(pl.col("status") == "ok")
        .unique("track_id", keep="first")
        .sort("track_id")
    )
