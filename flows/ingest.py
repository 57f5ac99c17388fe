"""Ingest flow: find audio -> hash -> per batch of files: decode, validate (quarantine bad files)
and extract features -> track table.

Writes `tracks.parquet`, `quarantine.csv` and `fingerprint.json` to the work directory, and
validation records and features to its content-addressed stores; logs the run to MLflow
(experiment "ingest").
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import polars as pl
import torch
from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel, ConfigDict, Field, model_validator

from registry.tracking import log_artifact, log_metrics, log_params, set_tags, tracked_run
from tasks.audio import AudioConfig
from tasks.discovery import CollectionPath, discover_sources
from tasks.features import FeatureConfig
from tasks.ingest import (
    batches,
    build_track_table,
    dataset_fingerprint,
    hash_files,
    process_audio,
    write_feature_manifest,
)
from tasks.workspace import Workspace


class IngestConfig(BaseModel):
    """Parameters of the ingest flow (rendered as a form in the Prefect dashboard)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data: CollectionPath = Field(
        description="A folder in GTZAN layout, or a manifest (.csv/.parquet)."
    )
    workdir: Path = Field(Path("workdir"), description="Where tables, stores and reports go.")
    audio: AudioConfig = Field(default_factory=AudioConfig)
    features: FeatureConfig = Field(default_factory=FeatureConfig)
    workers: int = Field(0, ge=0, description="Parallel decoders; 0 = one per CPU core.")

    @model_validator(mode="after")
    def _one_sample_rate(self) -> IngestConfig:
        if self.audio.sample_rate != self.features.sample_rate:
            raise ValueError(
                f"audio.sample_rate ({self.audio.sample_rate}) and features.sample_rate "
                f"({self.features.sample_rate}) must be equal: features are computed from the "
                "decoded audio"
            )
        return self


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


def _progress(logger, label: str, futures: list, total: int) -> list[list]:
    """Each batch's results in order, logging the files done as batches finish."""
    results, done = [], 0
    step = max(1, len(futures) // 10)
    for i, future in enumerate(futures, start=1):
        results.append(future.result())
        done += len(results[-1])
        if i % step == 0 or i == len(futures):
            logger.info("%s: %d/%d files", label, done, total)
    return results


def _done_now(futures: list, flags: list[list[bool]]) -> int:
    """Files processed in this run: not in a batch served from Prefect's cache (whose results
    tell what its first run did), nor found in the content-addressed stores."""
    return sum(
        sum(batch)
        for future, batch in zip(futures, flags, strict=True)
        if future.state.name != "Cached"
    )


@flow(
    name="ingest",
    flow_run_name="ingest {config.data.name}",
    log_prints=True,
    task_runner=ThreadPoolTaskRunner(max_workers=os.cpu_count() or 2),
)
def ingest_flow(config: IngestConfig) -> IngestResult:
    logger = get_run_logger()
    started = time.perf_counter()
    workers = config.workers or os.cpu_count() or 1
    # Tasks run in parallel threads; keep torch from oversubscribing the cores.
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    try:
        return _ingest(config, workers, started, logger)
    finally:
        torch.set_num_threads(previous_threads)  # later stages in this process get all cores


def _ingest(config: IngestConfig, workers: int, started: float, logger) -> IngestResult:
    workspace = Workspace.open(config.workdir)

    sources = discover_sources(config.data)
    logger.info("found %d audio files in %s", sources.height, config.data)
    paths = sources["path"].to_list()
    hashes = hash_files(paths, workers=workers)

    # Each content is processed once, however many paths hold it; in batches of files per task
    # run, so that the per-run cost of Prefect's API and result store is spread over the files.
    first_path = {}
    for path, sha256 in zip(paths, hashes, strict=True):
        if sha256 is not None:
            first_path.setdefault(sha256, path)
    runs = [
        process_audio.submit(
            [first_path[h] for h in chunk], chunk, config.audio, config.features, workspace
        )
        for chunk in batches(list(first_path), workers)
    ]
    processed = _progress(logger, "validated and featurized", runs, len(first_path))
    by_content = dict(zip(first_path, (f for batch in processed for f in batch), strict=True))
    tracks = build_track_table(sources, hashes, [by_content.get(h) for h in hashes])
    ok = tracks.filter(pl.col("status") == "ok")
    write_feature_manifest(workspace, config.features)
    validated_now = _done_now(runs, [[f["decoded"] for f in batch] for batch in processed])
    featurized_now = _done_now(runs, [[f["featurized"] for f in batch] for batch in processed])

    fingerprint = dataset_fingerprint(tracks)
    tracks.write_parquet(workspace.tracks_table)
    quarantined = tracks.filter(pl.col("status") == "quarantined").select(
        "track_id", "path", "reason"
    )
    quarantined.write_csv(workspace.quarantine_report)
    workspace.fingerprint_file.write_text(
        json.dumps(
            {
                "fingerprint": fingerprint,
                "feature_key": config.features.key,
                "features": config.features.model_dump(),
                "audio": config.audio.model_dump(),
                "data": str(config.data),
            },
            indent=2,
        )
    )
    for row in quarantined.iter_rows(named=True):
        logger.warning("quarantined %s: %s", row["path"], row["reason"])

    elapsed = time.perf_counter() - started
    result_counts = {
        "n_tracks": tracks.height,
        "n_ok": ok.height,
        "n_quarantined": quarantined.height,
    }
    with tracked_run("ingest", f"ingest {Path(config.data).name}") as run_id:
        log_params(
            run_id,
            {
                "data": str(config.data),
                "workdir": str(workspace.root),
                "feature_key": config.features.key,
                "features": config.features.model_dump(),
                "audio": config.audio.model_dump(),
            },
        )
        set_tags(run_id, {"fingerprint": fingerprint, "stage": "ingest"})
        log_metrics(
            run_id,
            {
                **result_counts,
                "hours_of_audio": float(ok["duration_s"].sum() or 0.0) / 3600,
                "seconds_per_clip": elapsed / max(tracks.height, 1),
                "validated_this_run": validated_now,
                "featurized_this_run": featurized_now,
            },
        )
        log_artifact(run_id, workspace.tracks_table)
        log_artifact(run_id, workspace.quarantine_report)
        log_artifact(run_id, workspace.fingerprint_file)

    logger.info(
        "ingest: %d ok, %d quarantined (%s) in %.1f s; fingerprint %s",
        ok.height,
        quarantined.height,
        workspace.quarantine_report,
        elapsed,
        fingerprint,
    )
    return IngestResult(
        workspace=workspace,
        run_id=run_id,
        fingerprint=fingerprint,
        feature_key=config.features.key,
        validated=validated_now,
        featurized=featurized_now,
        **result_counts,
    )
