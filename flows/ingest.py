"""Ingest flow: find audio -> hash -> per batch of files: decode, validate (quarantine bad files)
and extract features -> track table -> per batch of usable files: the pretrained network's
embeddings and tags.

Writes `tracks.parquet`, `quarantine.csv`, `fingerprint.json` and `pretrained.json` to the work
directory, and validation records and features to its content-addressed stores; logs the run to
MLflow (experiment "ingest").
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import polars as pl
from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel, ConfigDict, Field

from registry.tracking import log_metrics
from tasks.audio.decoding import AudioConfig
from tasks.audio.discovery import CollectionPath, SourceSettings, discover_sources
from tasks.audio.features import FeatureConfig
from tasks.audio.ingest import (
    batches,
    build_track_table,
    first_path_per_content,
    gather_batches,
    hash_files,
    log_ingest_run,
    process_audio,
    torch_threads_per_worker,
    write_ingest_outputs,
)
from tasks.audio.pretrained import PretrainedConfig, pretrained_extractor_for
from tasks.audio.pretrained_store import PretrainedRecord, gather_pretrained, pretrained_batch
from tasks.core.errors import UserInputError
from tasks.core.workspace import DEFAULT_WORKDIR, WorkdirPath, Workspace


class IngestConfig(BaseModel):
    """Parameters of the ingest flow (rendered as a form in the Prefect dashboard)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data: CollectionPath = Field(
        description="A folder in GTZAN layout, or a manifest (.csv/.parquet)."
    )
    workdir: WorkdirPath = DEFAULT_WORKDIR
    audio: AudioConfig = Field(default_factory=AudioConfig)
    features: FeatureConfig = Field(default_factory=FeatureConfig)
    sources: SourceSettings = Field(default_factory=SourceSettings)
    pretrained: PretrainedConfig = Field(
        default_factory=PretrainedConfig,
        description="The pretrained network (musicnn) whose embeddings and tags every usable "
        "track gets.",
    )
    workers: int = Field(0, ge=0, description="Parallel decoders; 0 = one per CPU core.")
    parent_run_id: str | None = Field(
        None, description="MLflow parent run (pipeline); the ingest run is nested under it."
    )


class IngestResult(BaseModel):
    workspace: Workspace
    run_id: str
    fingerprint: str
    feature_key: str
    n_tracks: int
    n_ok: int
    n_quarantined: int
    validated: int = Field(description="Files decoded in this run (the rest came from the cache).")
    featurized: int = Field(description="Tracks whose features were computed in this run.")
    pretrained_key: str = Field(description="Key of the store of the pretrained features.")
    pretrained_now: int = Field(
        description="Tracks whose pretrained features were computed in this run."
    )


@flow(
    name="ingest",
    flow_run_name="ingest {config.data.name}",
    log_prints=True,
    task_runner=ThreadPoolTaskRunner(max_workers=os.cpu_count() or 2),
)
def ingest_flow(config: IngestConfig) -> IngestResult:
    """Ingest the collection `config.data` into `config.workdir` (module docstring)."""
    workers = config.workers or os.cpu_count() or 1
    with torch_threads_per_worker(workers):
        return _ingest(config, workers)


def ingest_unless_ingested(data: Path | None, workdir: Path) -> None:
    """Run the ingest of `data` into `workdir` when the work dir holds no ingested tracks yet, so
    that a later stage (lyrics, evaluate) also runs on a fresh work dir.

    Raises:
        UserInputError: the work dir was never ingested and `data` is None.
    """
    workspace = Workspace.open(workdir)
    if workspace.tracks_table.exists():
        return
    if data is None:
        raise UserInputError(
            f"{workdir} holds no ingested collection: give `data` (a folder or a manifest) "
            "or run the ingest first"
        )
    get_run_logger().info("no ingested tracks in %s: running the ingest first", workspace.root)
    ingest_flow(IngestConfig(data=data, workdir=workdir))


def _ingest(config: IngestConfig, workers: int) -> IngestResult:
    logger = get_run_logger()
    started = time.perf_counter()
    workspace = Workspace.open(config.workdir)
    # Checks the network's weights now (the key hashes them): without them the run stops here
    # with one line, before minutes of decoding, instead of after.
    pretrained_key = config.pretrained.key
    tag_names = pretrained_extractor_for(config.pretrained).tag_names

    sources = discover_sources(config.data, config.sources)
    logger.info("found %d audio files in %s", sources.height, config.data)
    hashes = hash_files(
        sources["path"].to_list(), workers=workers, max_bytes=config.sources.max_file_bytes
    )
    contents = first_path_per_content(sources["path"].to_list(), hashes)
    chunks = batches(list(contents), workers)
    runs = [
        process_audio.submit(
            [contents[h] for h in chunk], chunk, config.audio, config.features, workspace
        )
        for chunk in chunks
    ]
    processed = gather_batches(runs, chunks, logger)
    tracks = build_track_table(sources, hashes, processed.checks_for(hashes))
    record = write_ingest_outputs(
        workspace, tracks, data=config.data, audio=config.audio, features=config.features
    )
    quarantined = tracks.filter(pl.col("status") == "quarantined")
    for track_id, path, reason in quarantined.select("track_id", "path", "reason").iter_rows():
        # A row refused before reading (outside the collection, empty cell) has no path.
        logger.warning("quarantined %s (%s): %s", track_id, path or "no path", reason)

    # Every core for the network: its forward passes run one at a time (the extractor is shared
    # by the batches' threads), which overlap only their decoding.
    with torch_threads_per_worker(1):
        pretrained_now, pretrained_seconds = _pretrained_features(
            config, workspace, contents, tracks
        )
    PretrainedRecord(key=pretrained_key, config=config.pretrained, tag_names=tag_names).write(
        workspace
    )

    seconds = time.perf_counter() - started
    run_id = log_ingest_run(
        workspace, record, tracks, processed, seconds=seconds, parent_run_id=config.parent_run_id
    )
    log_metrics(
        run_id,
        {"pretrained_this_run": pretrained_now, "pretrained_seconds": pretrained_seconds},
    )
    logger.info(
        "ingest: %d ok, %d quarantined (%s) in %.1f s; fingerprint %s",
        tracks.height - quarantined.height,
        quarantined.height,
        workspace.quarantine_report,
        seconds,
        record.fingerprint,
    )
    return IngestResult(
        workspace=workspace,
        run_id=run_id,
        fingerprint=record.fingerprint,
        feature_key=record.feature_key,
        n_tracks=tracks.height,
        n_ok=tracks.height - quarantined.height,
        n_quarantined=quarantined.height,
        validated=processed.validated_now,
        featurized=processed.featurized_now,
        pretrained_key=pretrained_key,
        pretrained_now=pretrained_now,
    )


def _pretrained_features(
    config: IngestConfig, workspace: Workspace, contents: dict[str, str], tracks: pl.DataFrame
) -> tuple[int, float]:
    """Store the pretrained features of every usable content (batched tasks like the audio's);
    returns (computed in this run, seconds).

    Raises:
        WeightsMissing: the network's weights are not installed.
    """
    started = time.perf_counter()
    ok = set(tracks.filter(pl.col("status") == "ok")["sha256"].to_list())
    usable = [(path, sha) for sha, path in contents.items() if sha in ok]
    chunks = batches(usable, config.workers or os.cpu_count() or 1)
    runs = [
        pretrained_batch.submit(
            [path for path, _ in chunk],
            [sha for _, sha in chunk],
            config.audio,
            config.pretrained,
            workspace,
        )
        for chunk in chunks
    ]
    computed = gather_pretrained(runs, chunks, config.audio, config.pretrained, workspace)
    seconds = time.perf_counter() - started
    get_run_logger().info(
        "pretrained %s features: %d of %d usable tracks computed in %.1f s (store %s)",
        config.pretrained.network,
        computed,
        len(usable),
        seconds,
        config.pretrained.key,
    )
    return computed, seconds
