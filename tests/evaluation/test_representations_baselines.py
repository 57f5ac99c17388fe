"""The baselines of the comparison, the pretrained embedding among them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from prefect import flow

from tasks.audio.features import TrackFeatures
from tasks.audio.ingest import TRACK_SCHEMA
from tasks.audio.pretrained import PretrainedConfig, PretrainedFeatures
from tasks.audio.pretrained_store import PretrainedRecord
from tasks.core.workspace import Workspace
from tasks.evaluation.representations import (
    baseline_representations,
    descriptor_and_pretrained_baselines,
)
from tasks.training.representation import read_latents

N_TRACKS = 6
FEATURE_KEY = "f" * 12
PRETRAINED_KEY = "p" * 12


def write_stores(root: Path, *, with_record: bool) -> tuple[Workspace, np.ndarray]:
    """Six ok tracks with descriptor features and pretrained features; returns the work dir and
    each track's mean patch embedding (rows in track order)."""
    workspace = Workspace.open(root)
    rng = np.random.default_rng(0)
    rows, pooled = [], []
    for i in range(N_TRACKS):
        sha = f"{i:064x}"
        stats = rng.normal(size=(3, 10)).astype(np.float32)
        TrackFeatures(
            logmel=rng.normal(size=(3, 8, 4)).astype(np.float16),
            mfcc=np.zeros((3, 4, 4), np.float16),
            crop_stats=stats,
            track_stats=stats.mean(axis=0),
        ).save(workspace.feature_file(FEATURE_KEY, sha))
        patches = rng.normal(loc=i, size=(1 + i % 3, 200)).astype(np.float32)
        PretrainedFeatures(patches, rng.uniform(size=(len(patches), 50)).astype(np.float32)).save(
            workspace.pretrained_file(PRETRAINED_KEY, sha)
        )
        pooled.append(patches.mean(axis=0))
        rows.append({"track_id": f"t{i}", "sha256": sha, "status": "ok"})
    pl.DataFrame(rows).select(
        pl.col(name).cast(dtype) if name in rows[0] else pl.lit(None, dtype).alias(name)
        for name, dtype in TRACK_SCHEMA.items()
    ).write_parquet(workspace.tracks_table)
    if with_record:
        PretrainedRecord(
            key=PRETRAINED_KEY, config=PretrainedConfig(), tag_names=[f"t{i}" for i in range(50)]
        ).write(workspace)
    return workspace, np.stack(pooled)


def test_the_musicnn_baseline_is_the_standardised_mean_patch_embedding(tmp_path: Path) -> None:
    workspace, pooled = write_stores(tmp_path, with_record=True)
    baselines = descriptor_and_pretrained_baselines.fn(workspace, FEATURE_KEY, "fp", PRETRAINED_KEY)
    by_method = {b.method: b for b in baselines}
    # today's rows stay
    assert set(by_method) == {"handcrafted", "pca", "spectral_features", "musicnn"}
    latents = read_latents(by_method["musicnn"].latents)
    assert latents.track_ids == [f"t{i}" for i in range(N_TRACKS)]
    std = pooled.std(axis=0)
    expected = (pooled - pooled.mean(axis=0)) / np.where(std > 1e-8, std, 1.0)
    np.testing.assert_allclose(latents.mu, expected, rtol=1e-4, atol=1e-4)


def test_a_work_dir_without_pretrained_features_keeps_its_rows_and_says_why(
    prefect_api, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with_record, _ = write_stores(tmp_path / "new", with_record=True)
    without, _ = write_stores(tmp_path / "old", with_record=False)

    @flow
    def baselines_of(workspace: Workspace) -> list[str]:
        return [b.method for b in baseline_representations(workspace, FEATURE_KEY, "fp")]

    assert "musicnn" in baselines_of(with_record)
    assert baselines_of(without) == ["handcrafted", "pca", "spectral_features"]
    assert "musicnn baseline is left out" in caplog.text
