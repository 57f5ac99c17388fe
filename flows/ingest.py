"""Ingest flow: find audio -> hash -> per batch of files: decode, validate (quarantine bad files)
and extract features -> track table.

Writes `tracks.parquet`, `quarantine.csv` and `fingerprint.json` to the work directory, and
validation records and features to its content-addressed stores; logs the run to MLflow
(experiment "ingest").
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import polars as pl
from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel, ConfigDict, Field

from tasks.audio.decoding import AudioConfig
from tasks.audio.discovery import CollectionPath, discover_sources
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

    sources = discover_sources(config.data)
    logger.info("found %d audio files in %s", sources.height, config.data)
    hashes = hash_files(sources["path"].to_list(), workers=workers)
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
    for path, reason in quarantined.select("path", "reason").iter_rows():
        logger.warning("quarantined %s: %s", path, reason)

    seconds = time.perf_counter() - started
    run_id = log_ingest_run(
        workspace, record, tracks, processed, seconds=seconds, parent_run_id=config.parent_run_id
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
    )
