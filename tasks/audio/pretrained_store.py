"""Pretrained-network features in the ingest: the musicnn embeddings and tag probabilities of
every usable track, in a content-addressed store like the hand-crafted features.

A file is known by the sha256 of its bytes and its pretrained features are kept per network
configuration (`PretrainedConfig.key`: network, patch cap, weights), so a file seen before is
neither decoded nor run through the network again. Decoding is at the network's own rate
(16 kHz), not the analysis rate of the hand-crafted features: the network was trained on it.

The record `pretrained.json` of a work dir says which store its last ingest filled (and the tag
names); training, the baselines and the cluster tags read it from there.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from prefect import task
from prefect.futures import PrefectFuture
from pydantic import BaseModel, ConfigDict, Field

from tasks.audio.decoding import AudioConfig, decode_audio
from tasks.audio.pretrained import (
    PRETRAINED_SAMPLE_RATE,
    PretrainedConfig,
    PretrainedFeatures,
    pretrained_extractor_for,
)
from tasks.core.atomic import replaced_atomically
from tasks.core.caching import cached_on
from tasks.core.workspace import Workspace

# Audio decoded before one batched forward pass: bounds memory for long tracks (10 minutes of
# 16 kHz float32 is 38 MB) while still filling the network's batches with many clips.
MAX_SAMPLES_PER_FORWARD = PRETRAINED_SAMPLE_RATE * 600


class PretrainedRecord(BaseModel):
    """`pretrained.json` of a work dir (and the manifest of its store): which network
    configuration the last ingest ran and the names of its tags, in the order of
    `PretrainedFeatures.patch_tags`' columns."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str = Field(description="`PretrainedConfig.key`: the store the features are in.")
    config: PretrainedConfig
    tag_names: list[str] = Field(description="Tag of each column of the tag probabilities.")

    def write(self, workspace: Workspace) -> Path:
        """Write the record into the work dir and the manifest into the store; return the
        record's path."""
        text = self.model_dump_json(indent=2)
        for path in (workspace.pretrained_manifest(self.key), workspace.pretrained_record):
            with replaced_atomically(path) as tmp:
                tmp.write_text(text)
        return workspace.pretrained_record

    @classmethod
    def read(cls, workspace: Workspace) -> PretrainedRecord | None:
        """The record of `workspace`; None when it was ingested before pretrained features
        existed (or never)."""
        if not workspace.pretrained_record.is_file():
            return None
        return cls.model_validate_json(workspace.pretrained_record.read_text())


def recorded_pretrained_config(workspace: Workspace) -> PretrainedConfig:
    """The network settings the work dir's last ingest used, else the defaults: a later stage
    run alone (e.g. `train`) reuses the store the pipeline filled instead of filling another."""
    record = PretrainedRecord.read(workspace)
    return record.config if record is not None else PretrainedConfig()


def _batch_run_name(parameters: dict[str, Any]) -> str:
    paths = parameters.get("paths") or [""]
    more = f" (+{len(paths) - 1})" if len(paths) > 1 else ""
    return f"musicnn {Path(paths[0]).name[:40]}{more}"


def store_pretrained(
    paths: Sequence[str],
    hashes: Sequence[str],
    audio: AudioConfig,
    config: PretrainedConfig,
    workspace: Workspace,
) -> int:
    """Store the pretrained features of the files that are not in the store yet; return how
    many were computed. The files must have passed validation (decoding them does not fail).

    Clips are decoded at 16 kHz and run through the network in batches across clips, at most
    `MAX_SAMPLES_PER_FORWARD` samples of audio held at a time.

    Raises:
        WeightsMissing: the network's weights are not installed (`make install`).
    """
    key = config.key  # hashes the weights files: once per call, not per file
    missing = [
        (path, sha)
        for path, sha in zip(paths, hashes, strict=True)
        if not workspace.pretrained_file(key, sha).exists()
    ]
    if not missing:
        return 0
    extractor = pretrained_extractor_for(config)
    group: list[tuple[str, np.ndarray]] = []
    held = 0
    for index, (path, sha) in enumerate(missing):
        samples = decode_audio(path, audio, sample_rate=PRETRAINED_SAMPLE_RATE).samples
        group.append((sha, samples))
        held += samples.size
        if held >= MAX_SAMPLES_PER_FORWARD or index == len(missing) - 1:
            features = extractor.batch([clip for _, clip in group])
            for (done, _), one in zip(group, features, strict=True):
                one.save(workspace.pretrained_file(key, done))
            group, held = [], 0
    return len(missing)


@task(
    cache_policy=cached_on(
        "tasks.audio.decoding", "tasks.audio.pretrained", "models.musicnn", __name__
    ),
    persist_result=True,
    retries=1,
    retry_delay_seconds=[1],
    task_run_name=_batch_run_name,
)
def pretrained_batch(
    paths: list[str],
    hashes: list[str],
    audio: AudioConfig,
    config: PretrainedConfig,
    workspace: Workspace,
) -> int:
    """`store_pretrained` as a cached task: a batch seen before (same files, configuration, code
    and work dir) is not even checked against the store."""
    return store_pretrained(paths, hashes, audio, config, workspace)


def gather_pretrained(
    futures: list[PrefectFuture],
    chunks: list[list[tuple[str, str]]],
    audio: AudioConfig,
    config: PretrainedConfig,
    workspace: Workspace,
) -> int:
    """Wait for the `pretrained_batch` runs (one per chunk of (path, sha256)); return how many
    features were computed by this run.

    Prefect's cache knows the inputs, not the files: a batch served from the cache whose files a
    user deleted since is run again here (the store is checked file by file).

    Raises:
        Exception: whatever a batch raised after its retries (WeightsMissing among them).
    """
    computed = 0
    for future, chunk in zip(futures, chunks, strict=True):
        count = future.result()
        if future.state.name != "Cached":
            computed += count  # the batch ran just now: its files are all in the store
            continue
        paths, hashes = [p for p, _ in chunk], [h for _, h in chunk]
        computed += store_pretrained(paths, hashes, audio, config, workspace)
    return computed


def read_pretrained(workspace: Workspace, pretrained_key: str, sha256: str) -> PretrainedFeatures:
    """The pretrained features of one file's content.

    Raises:
        FileNotFoundError: the content has none under `pretrained_key` (the message says what
            to run).
        DamagedFeatureFile: the stored file is damaged (moved aside; the next ingest
            recomputes it).
    """
    path = workspace.pretrained_file(pretrained_key, sha256)
    if not path.is_file():
        raise FileNotFoundError(
            f"no pretrained features for {sha256[:12]} in {path.parent}: run the ingest with "
            "this network configuration first"
        )
    return PretrainedFeatures.load(path)
