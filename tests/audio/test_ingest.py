"""Ingest on a folder mixing good audio with every kind of broken file users send us."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest
import soundfile as sf

from flows.ingest import IngestConfig, ingest_flow
from tasks.audio.decoding import AudioConfig
from tasks.audio.features import FeatureConfig, TrackFeatures
from tasks.audio.ingest import IngestRecord, ProcessedFile, _process_one, batches, gather_batches
from tasks.core.workspace import Workspace

SR = 22050


def tone(
    seconds: float, freq: float, *, sr: int = SR, channels: int = 1, seed: int = 0
) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    mono = 0.3 * np.sin(2 * np.pi * freq * t) + 0.02 * rng.standard_normal(t.size)
    return np.stack([mono] * channels, axis=1).astype(np.float32)


GOOD = {
    "rock/rock.00000.wav": lambda p: sf.write(p, tone(4, 220), SR),
    "rock/rock.00001.wav": lambda p: sf.write(p, tone(4, 330, seed=1), SR),
    "jazz/jazz.00000.wav": lambda p: sf.write(p, tone(4, 440, seed=2), SR),
    "jazz/stereo 48k.flac": lambda p: sf.write(p, tone(4, 550, sr=48000, channels=2), 48000),
    "jazz/আমার গান.wav": lambda p: sf.write(p, tone(4, 660, seed=3), SR),
}


def _truncated(path: Path) -> None:
    sf.write(path, tone(4, 200), SR, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _nan(path: Path) -> None:
    samples = tone(4, 300)
    samples[1000:1100] = np.nan
    sf.write(path, samples, SR, subtype="FLOAT")


BAD = {
    "rock/zero.wav": (lambda p: p.write_bytes(b""), "empty file"),
    "rock/truncated.wav": (_truncated, "truncated"),
    "rock/random.ogg": (
        lambda p: p.write_bytes(np.random.default_rng(0).bytes(4000)),
        "cannot decode",
    ),
    "jazz/notes.mp3": (lambda p: p.write_text("these are my notes, not a song"), "cannot decode"),
    "jazz/short.wav": (lambda p: sf.write(p, tone(0.2, 440), SR), "too short"),
    "jazz/silent.wav": (lambda p: sf.write(p, np.zeros((SR * 3, 1), np.float32), SR), "silent"),
    "jazz/nan.wav": (_nan, "NaN"),
}


@pytest.fixture
def collection(tmp_path: Path) -> Path:
    root = tmp_path / "songs"
    for name, write in GOOD.items():
        (root / "genres_original" / name).parent.mkdir(parents=True, exist_ok=True)
        write(root / "genres_original" / name)
    for name, (write, _) in BAD.items():
        write(root / "genres_original" / name)
    return root


def test_every_good_file_kept_and_every_bad_file_quarantined_with_reason(
    prefect_api, collection: Path, tmp_path: Path
) -> None:
    config = IngestConfig(
        data=collection,
        workdir=tmp_path / "work",
        features=FeatureConfig(n_mels=32, crop_frames=32, crop_hop_frames=32),
    )
    result = ingest_flow(config)

    tracks = pl.read_parquet(result.workspace.tracks_table)
    assert tracks.height == len(GOOD) + len(BAD)
    by_name = {
        Path(p).name: row
        for p, row in zip(tracks["path"], tracks.iter_rows(named=True), strict=True)
    }
    for name in GOOD:
        row = by_name[Path(name).name]
        assert row["status"] == "ok", row
        assert row["genre"] == name.split("/")[0]
        features = TrackFeatures.load(
            result.workspace.feature_store(result.feature_key) / f"{row['sha256']}.npz"
        )
        assert features.logmel.shape[1:] == (32, 32)
        assert np.isfinite(features.track_stats).all()
    for name, (_, reason) in BAD.items():
        row = by_name[Path(name).name]
        assert row["status"] == "quarantined", row
        assert reason.lower() in row["reason"].lower(), row["reason"]
    stereo = by_name["stereo 48k.flac"]
    assert (stereo["sample_rate"], stereo["channels"]) == (48000, 2)
    report = pl.read_csv(result.workspace.quarantine_report)
    assert report.height == len(BAD)
    assert (result.n_ok, result.n_quarantined) == (len(GOOD), len(BAD))

    # later stages find the data fingerprint and the feature store in the ingest record
    record = IngestRecord.read(result.workspace)
    assert (record.fingerprint, record.feature_key) == (result.fingerprint, result.feature_key)
    assert record.features == config.features
    assert record.data == str(collection)


def test_a_work_dir_never_ingested_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="python -m flows ingest"):
        IngestRecord.read(Workspace.open(tmp_path))


def test_cache_reruns_nothing_and_processes_only_added_files(
    prefect_api, collection: Path, tmp_path: Path
) -> None:
    features = FeatureConfig(n_mels=32, crop_frames=32, crop_hop_frames=32)
    config = IngestConfig(data=collection, workdir=tmp_path / "work", features=features)
    first = ingest_flow(config)
    assert first.validated == len(GOOD) + len(BAD)
    assert first.featurized == len(GOOD)

    again = ingest_flow(config)
    assert (again.validated, again.featurized) == (0, 0)
    assert again.fingerprint == first.fingerprint

    sf.write(collection / "genres_original" / "rock" / "rock.00002.wav", tone(4, 247, seed=9), SR)
    added = ingest_flow(config)
    assert (added.validated, added.featurized) == (1, 1)
    assert added.n_ok == len(GOOD) + 1
    assert added.fingerprint != first.fingerprint

    # New feature settings recompute features but not the validation.
    other = ingest_flow(
        config.model_copy(update={"features": features.model_copy(update={"n_mels": 24})})
    )
    assert (other.validated, other.featurized) == (0, len(GOOD) + 1)


def test_manifest_source_with_missing_file(prefect_api, collection: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.csv"
    pl.DataFrame(
        {
            "audio_path": ["songs/genres_original/rock/rock.00000.wav", "songs/missing.wav"],
            "genre": ["rock", "pop"],
            "title": ["First", "Gone"],
        }
    ).write_csv(manifest)
    result = ingest_flow(
        IngestConfig(
            data=manifest,
            workdir=tmp_path / "work2",
            features=FeatureConfig(n_mels=32, crop_frames=32, crop_hop_frames=32),
        )
    )
    tracks = pl.read_parquet(result.workspace.tracks_table).sort("track_id")
    assert tracks["status"].to_list() == ["quarantined", "ok"]
    assert "not found" in tracks["reason"][0]
    assert tracks.filter(pl.col("status") == "ok")["title"].to_list() == ["First"]


def test_the_analysis_rate_is_one_setting_and_a_new_rate_does_not_revalidate(
    tmp_path: Path,
) -> None:
    path = tmp_path / "song.wav"
    sf.write(path, tone(4, 440, sr=44100), 44100)
    workspace = Workspace.open(tmp_path / "work")
    audio = AudioConfig()
    small = {"n_mels": 32, "crop_frames": 32, "crop_hop_frames": 32, "max_crops": 64}
    at_22k = FeatureConfig(**small)
    at_16k = FeatureConfig(sample_rate=16000, **small)

    first = _process_one(str(path), "sha", audio, at_22k, workspace)
    second = _process_one(str(path), "sha", audio, at_16k, workspace)

    assert (first.decoded, first.featurized) == (True, True)
    # The verdict on the file does not depend on the analysis rate; the features do.
    assert (second.decoded, second.featurized) == (False, True)
    crops = {
        rate: TrackFeatures.load(workspace.feature_file(config.key, "sha")).logmel.shape[0]
        for rate, config in ((22050, at_22k), (16000, at_16k))
    }
    assert crops[16000] < crops[22050]  # fewer frames of 512 samples in 4 s at 16 kHz


@pytest.mark.parametrize(
    ("n_files", "workers", "sizes"),
    [(0, 2, []), (3, 2, [1, 1, 1]), (36, 2, [9] * 4), (1000, 2, [32] * 31 + [8])],
)
def test_batches_spread_files_over_workers_and_cap_their_size(
    n_files: int, workers: int, sizes: list[int]
) -> None:
    chunks = batches(list(range(n_files)), workers)
    assert [len(chunk) for chunk in chunks] == sizes
    assert [item for chunk in chunks for item in chunk] == list(range(n_files))


def test_gathering_batches_counts_files_and_what_this_run_did(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def batch(size: int, state: str, start: int) -> tuple[SimpleNamespace, list[str]]:
        files = [ProcessedFile(status="ok", decoded=True, featurized=True)] * size
        future = SimpleNamespace(result=lambda: files, state=SimpleNamespace(name=state))
        return future, [f"h{start + i}" for i in range(size)]

    # 3 fresh batches of 4 files and one batch of 8 served from Prefect's cache
    runs = [batch(4, "Completed", 0), batch(4, "Completed", 4), batch(8, "Cached", 8)]
    runs.append(batch(4, "Completed", 16))
    logger = logging.getLogger("tests.ingest.gather")
    caplog.set_level(logging.INFO, logger=logger.name)
    collection = gather_batches([f for f, _ in runs], [h for _, h in runs], logger)
    assert len(collection.by_content) == 20
    assert (collection.validated_now, collection.featurized_now) == (12, 12)
    lines = [r.getMessage() for r in caplog.records if r.name == logger.name]
    assert lines[0] == "validated and featurized: 4/20 files"
    assert lines[-1] == "validated and featurized: 20/20 files"
    assert len(lines) == 4  # one per batch here: each crosses a tenth of the files
