"""Pretrained (musicnn) features in the ingest: stored per content and network configuration,
computed once, and a clear stop when the weights are not installed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import soundfile as sf

from flows.ingest import IngestConfig, ingest_flow
from tasks.audio.decoding import AudioConfig
from tasks.audio.features import FeatureConfig
from tasks.audio.pretrained import PretrainedConfig, PretrainedFeatures, WeightsMissing
from tasks.audio.pretrained_store import PretrainedRecord, read_pretrained, store_pretrained
from tasks.core.workspace import Workspace

SR = 22050
# Small features keep the audio part of the ingest fast; the network's part is what is tested.
SMALL_FEATURES = FeatureConfig(n_mels=32, n_mfcc=8, crop_frames=32, crop_hop_frames=32)


def tone(seconds: float, freq: float, seed: int) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    noise = 0.05 * np.random.default_rng(seed).standard_normal(t.size)
    return (0.3 * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32)


@pytest.fixture
def collection(tmp_path: Path) -> Path:
    """Two usable clips (7 s: two 3 s patches; 2 s: shorter than one patch) and a broken one."""
    root = tmp_path / "songs" / "genres_original"
    (root / "rock").mkdir(parents=True)
    (root / "jazz").mkdir(parents=True)
    sf.write(root / "rock" / "rock.00000.wav", tone(7, 220, 0), SR)
    sf.write(root / "jazz" / "jazz.00000.wav", tone(2, 880, 1), SR)
    (root / "jazz" / "broken.wav").write_bytes(b"")
    return tmp_path / "songs"


def ingest(collection: Path, workdir: Path, **settings) -> object:
    return ingest_flow(
        IngestConfig(data=collection, workdir=workdir, features=SMALL_FEATURES, **settings)
    )


def test_ingest_stores_embeddings_and_tags_of_every_usable_track_once(
    prefect_api, collection: Path, tmp_path: Path
) -> None:
    # given a collection with two usable clips and a broken file
    workdir = tmp_path / "work"
    # when it is ingested
    first = ingest(collection, workdir)
    # then each usable content has per-patch embeddings and tags under the configuration's key
    workspace = Workspace.open(workdir)
    record = PretrainedRecord.read(workspace)
    assert record is not None
    assert record.key == first.pretrained_key == PretrainedConfig().key
    assert len(record.tag_names) == 50
    assert workspace.pretrained_manifest(record.key).is_file()
    tracks = pl.read_parquet(workspace.tracks_table)
    ok = tracks.filter(pl.col("status") == "ok").sort("duration_s")
    assert first.pretrained_now == ok.height == 2
    patches = [read_pretrained(workspace, record.key, sha) for sha in ok["sha256"]]
    assert [p.patch_embeddings.shape for p in patches] == [(1, 200), (2, 200)]
    assert all(p.patch_tags.shape[1] == 50 for p in patches)
    assert all(((p.patch_tags >= 0) & (p.patch_tags <= 1)).all() for p in patches)
    bad = tracks.filter(pl.col("status") == "quarantined")["sha256"].drop_nulls()
    assert not any(workspace.pretrained_file(record.key, sha).exists() for sha in bad)

    # when it is ingested again, then nothing is computed again
    assert ingest(collection, workdir).pretrained_now == 0

    # when one file of the store is deleted, then exactly that one is computed again
    workspace.pretrained_file(record.key, ok["sha256"][0]).unlink()
    assert ingest(collection, workdir).pretrained_now == 1
    assert workspace.pretrained_file(record.key, ok["sha256"][0]).is_file()

    # when the patch cap changes, then the features go to another store
    capped = ingest(collection, workdir, pretrained=PretrainedConfig(max_patches=1))
    assert capped.pretrained_key != record.key
    assert capped.pretrained_now == 2
    longest = read_pretrained(workspace, capped.pretrained_key, ok["sha256"][1])
    assert longest.patch_embeddings.shape == (1, 200)
    assert PretrainedRecord.read(workspace).key == capped.pretrained_key


def test_store_computes_only_the_missing_contents(tmp_path: Path) -> None:
    workspace = Workspace.open(tmp_path / "work")
    paths = []
    for i, freq in enumerate((330.0, 440.0)):
        path = tmp_path / f"clip{i}.wav"
        sf.write(path, tone(3.5, freq, i), SR)
        paths.append(str(path))
    config = PretrainedConfig()
    shas = ["a" * 64, "b" * 64]
    assert store_pretrained(paths[:1], shas[:1], AudioConfig(), config, workspace) == 1
    stored = PretrainedFeatures.load(workspace.pretrained_file(config.key, shas[0]))
    assert store_pretrained(paths, shas, AudioConfig(), config, workspace) == 1
    # the stored file was not rewritten by the second call
    again = PretrainedFeatures.load(workspace.pretrained_file(config.key, shas[0]))
    np.testing.assert_array_equal(stored.patch_embeddings, again.patch_embeddings)


def test_ingest_without_weights_stops_with_one_line_before_any_output(
    prefect_api, collection: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given weights that were never installed
    monkeypatch.setenv("VAEMUSIC_WEIGHTS_DIR", str(tmp_path / "no-weights"))
    # when the collection is ingested, then the run stops naming the fix, and writes nothing
    with pytest.raises(WeightsMissing, match="make install"):
        ingest(collection, tmp_path / "work")
    assert not Workspace.open(tmp_path / "work").tracks_table.exists()
