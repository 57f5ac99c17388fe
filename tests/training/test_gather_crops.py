"""Gathering a data set's crops: the counting pass reads only a small array of each file, the
gathering pass verifies each whole file once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tasks.audio.features import DamagedFeatureFile, TrackFeatures
from tasks.core.workspace import Workspace
from tasks.training.data import CropSource, gather_crops

KEY = "features-test"


def stored_track(workspace: Workspace, sha: str, n_crops: int) -> Path:
    rng = np.random.default_rng(n_crops)
    path = workspace.feature_file(KEY, sha)
    path.parent.mkdir(parents=True, exist_ok=True)
    TrackFeatures(
        logmel=rng.standard_normal((n_crops, 8, 8)).astype(np.float16),
        mfcc=rng.standard_normal((n_crops, 4, 8)).astype(np.float16),
        crop_stats=rng.standard_normal((n_crops, 5)).astype(np.float32),
        track_stats=rng.standard_normal(5).astype(np.float32),
    ).save(path)
    return path


def test_counting_reads_the_small_array_and_gathering_verifies_the_whole_file(
    tmp_path: Path,
) -> None:
    workspace = Workspace.open(tmp_path / "work")
    stored_track(workspace, "a" * 64, 2)
    damaged = stored_track(workspace, "b" * 64, 3)
    data = bytearray(damaged.read_bytes())
    data[300] ^= 0x01  # one bit inside the log-mel array, not in crop_stats
    damaged.write_bytes(bytes(data))

    # counting does not read (nor verify) the log-mel crops...
    assert CropSource(KEY, "spectrogram").count(workspace, "b" * 64) == 3
    assert damaged.exists()
    # ...the gathering pass reads and verifies them, and names the damaged file
    with pytest.raises(DamagedFeatureFile):
        gather_crops(workspace, KEY, ["a", "b"], ["a" * 64, "b" * 64], "spectrogram")


def test_a_file_too_damaged_to_count_is_named_by_the_counting_pass(tmp_path: Path) -> None:
    workspace = Workspace.open(tmp_path / "work")
    damaged = stored_track(workspace, "c" * 64, 2)
    damaged.write_bytes(damaged.read_bytes()[:100])  # truncated: not a readable zip

    with pytest.raises(DamagedFeatureFile):
        CropSource(KEY, "vector").count(workspace, "c" * 64)
    assert not damaged.exists()  # moved aside, as load_verified does
