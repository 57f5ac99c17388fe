"""Ingest on inputs an attacker or a careless user gives: paths out of the collection, broken
manifests, duplicate names, FIFOs and devices, files that vanish for a moment, damaged stores."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import soundfile as sf

from flows.ingest import IngestConfig, ingest_flow
from tasks.audio.decoding import AudioConfig, AudioRejected, AudioUnreadable, decode_audio
from tasks.audio.discovery import DataSourceError, SourceSettings, discover_sources
from tasks.audio.features import DamagedFeatureFile, FeatureConfig, TrackFeatures
from tasks.audio.ingest import (
    UNREADABLE,
    FileCheck,
    _process_one,
    build_track_table,
    hash_files,
    load_track_features,
)
from tasks.core.hashing import FileTooLarge, NotARegularFile, file_sha256
from tasks.core.workspace import Workspace

SR = 22050
SMALL = FeatureConfig(n_mels=32, crop_frames=32, crop_hop_frames=32)


def tone(seconds: float, freq: float = 440.0, *, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_manifest(path: Path, rows: dict[str, list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(rows).write_csv(path)
    return path


@pytest.fixture
def songs(tmp_path: Path) -> Path:
    root = tmp_path / "coll"
    (root / "audio").mkdir(parents=True)
    for name, freq in (("a", 220), ("b", 330)):
        sf.write(root / "audio" / f"{name}.wav", tone(2, freq), SR)
    return root


def by_id(sources: pl.DataFrame) -> dict[str, dict]:
    return {row["track_id"]: row for row in sources.iter_rows(named=True)}


# ---- 4: manifest paths stay inside the collection ------------------------------------------


def test_manifest_paths_outside_the_collection_are_refused_row_by_row(songs: Path) -> None:
    outside = songs.parent / "elsewhere.wav"
    sf.write(outside, tone(2), SR)
    manifest = write_manifest(
        songs / "manifest.csv",
        {
            "audio_path": ["audio/a.wav", "/etc/passwd", "../elsewhere.wav", "audio/b.wav"],
            "lyrics_path": ["/etc/passwd", None, None, "../../root/.bashrc"],
        },
    )
    rows = by_id(discover_sources(manifest))

    assert rows["a"]["path"] == str(songs / "audio" / "a.wav")
    assert rows["a"]["refused"] is None
    assert rows["a"]["lyrics_path"] is None  # never handed to the lyrics stage
    assert "lyrics_path '/etc/passwd' is outside" in rows["a"]["note"]
    assert rows["b"]["lyrics_path"] is None
    for track_id, number in (("passwd", 2), ("elsewhere", 3)):
        assert rows[track_id]["path"] is None  # nothing later opens it
        assert rows[track_id]["refused"].startswith(f"row {number}: audio_path ")
        assert "outside the manifest's folder" in rows[track_id]["refused"]

    allowed = by_id(discover_sources(manifest, SourceSettings(allow_outside_paths=True)))
    assert allowed["elsewhere"]["path"] == str(outside)
    assert allowed["a"]["lyrics_path"] == "/etc/passwd"


def test_refused_rows_are_quarantined_with_their_reason(songs: Path) -> None:
    manifest = write_manifest(songs / "m.csv", {"audio_path": ["audio/a.wav", "/etc/passwd"]})
    sources = discover_sources(manifest)
    hashes = hash_files(sources["path"].to_list(), workers=1)
    assert hashes[1] is None  # the refused row was not even hashed
    checks = [FileCheck(status="ok", duration_s=2.0, sample_rate=SR, channels=1), UNREADABLE]
    tracks = build_track_table(sources, hashes, checks)
    refused = tracks.filter(pl.col("track_id") == "passwd").row(0, named=True)
    assert refused["status"] == "quarantined"
    assert "outside the manifest's folder" in refused["reason"]


# ---- 9: manifest errors are one line, good rows kept --------------------------------------


def test_an_empty_audio_path_cell_refuses_that_row_only(songs: Path) -> None:
    manifest = songs / "m.csv"
    manifest.write_text("audio_path,genre\naudio/a.wav,rock\n,jazz\naudio/b.wav,pop\n")
    rows = by_id(discover_sources(manifest))
    assert rows["a"]["path"]
    assert rows["b"]["path"]
    assert rows["row2"]["refused"] == "row 2: empty audio_path"
    assert rows["row2"]["genre"] == "jazz"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("m.csv", "audio_path,genre\n", "has no rows"),
        ("m.csv", "", "is empty (0 bytes)"),
        ("m.csv", 'audio_path,genre\naudio/a.wav,"rock\naudio/b.wav,jazz\n', "no closing quote"),
        ("metadata.csv", "id,genre\na,rock\n", "has no 'track_id' column"),
        ("metadata.csv", 'track_id,genre\na,"rock\nb,jazz\n', "cannot read metadata file"),
        ("metadata.csv", "", "is empty (0 bytes)"),
    ],
)
def test_broken_manifests_and_metadata_fail_in_one_line(
    songs: Path, name: str, content: str, message: str
) -> None:
    (songs / name).write_text(content)
    data = songs / name if name == "m.csv" else songs / "audio"
    if name == "metadata.csv":
        shutil.move(songs / name, data / name)
    with pytest.raises(DataSourceError, match=re.escape(message)) as error:
        discover_sources(data)
    assert "\n" not in str(error.value)


def test_semicolon_separated_metadata_is_read(songs: Path) -> None:
    (songs / "audio" / "metadata.csv").write_text("track_id;genre;title\na;rock;First\n")
    rows = by_id(discover_sources(songs / "audio"))
    assert (rows["a"]["genre"], rows["a"]["title"]) == ("rock", "First")


# ---- 7: unique ids, renames reported ------------------------------------------------------


def test_same_name_with_two_extensions_keeps_both_files_and_reports_the_rename(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "gtzan" / "blues"
    folder.mkdir(parents=True)
    sf.write(folder / "song.wav", tone(2), SR)
    sf.write(folder / "song.flac", tone(2, 330), SR)
    sf.write(folder / "other.wav", tone(2, 550), SR)
    sources = discover_sources(tmp_path / "gtzan")
    ids = sources["track_id"].to_list()
    assert ids == ["blues/song.flac", "blues/song.wav", "other"]
    notes = dict(zip(ids, sources["note"].to_list(), strict=True))
    assert "renamed to 'blues/song.wav'" in notes["blues/song.wav"]
    assert notes["other"] is None


def test_duplicate_manifest_ids_stay_unique_and_are_reported(songs: Path) -> None:
    manifest = write_manifest(
        songs / "m.csv",
        {"audio_path": ["audio/a.wav", "audio/b.wav", "audio/a.wav"], "track_id": ["x"] * 3},
    )
    sources = discover_sources(manifest)
    assert sources["track_id"].n_unique() == 3
    assert sources["note"].is_not_null().all()


# ---- 10 and 11: FIFOs, devices, directories and links ---------------------------------------


def test_fifos_and_devices_are_never_read(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    # Before: open() of a FIFO without a writer blocks for ever, /dev/zero never ends.
    with pytest.raises(NotARegularFile, match="FIFO"):
        file_sha256(fifo)
    with pytest.raises(NotARegularFile, match="character device"):
        file_sha256("/dev/zero")
    assert hash_files([str(fifo), "/dev/zero", None], workers=2) == [None, None, None]
    with pytest.raises(AudioUnreadable, match="not a regular file"):
        decode_audio(fifo, AudioConfig(), sample_rate=SR)


def test_files_over_the_size_limit_are_refused_unread(songs: Path) -> None:
    wav = songs / "audio" / "a.wav"
    with pytest.raises(FileTooLarge):
        file_sha256(wav, max_bytes=100)
    assert hash_files([str(wav)], workers=1, max_bytes=100) == [None]
    rows = by_id(discover_sources(songs / "audio", SourceSettings(max_file_bytes=100)))
    assert "file too large" in rows["a"]["refused"]


def test_odd_entries_in_a_folder_are_listed_as_skipped(songs: Path) -> None:
    audio = songs / "audio"
    (audio / "folder.wav").mkdir()
    (audio / "loop.wav").symlink_to(audio / "loop.wav")
    (audio / "dangling.mp3").symlink_to(audio / "gone.mp3")
    os.mkfifo(audio / "pipe.flac")
    rows = by_id(discover_sources(audio))
    assert rows["a"]["refused"] is None
    expected = {
        "folder": "a directory named like an audio file",
        "loop": "symbolic link loop",
        "dangling": "dangling symbolic link",
        "pipe": "not a regular file: a FIFO",
    }
    for track_id, reason in expected.items():
        assert rows[track_id]["path"] is None
        assert rows[track_id]["refused"].startswith("skipped ")
        assert reason in rows[track_id]["refused"]


def test_an_mp3_holding_only_an_id3_tag_has_no_audio_frames(tmp_path: Path) -> None:
    path = tmp_path / "tag.mp3"
    path.write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x0a" + b"TIT2" + bytes(6))
    with pytest.raises(AudioRejected, match="no audio frames"):
        decode_audio(path, AudioConfig(), sample_rate=SR)


# ---- 5: a long file costs what its analysis window costs -----------------------------------


def test_only_the_central_window_of_a_long_file_is_decoded(tmp_path: Path) -> None:
    path = tmp_path / "long.wav"
    samples = np.concatenate(
        [np.zeros(SR * 20, np.float32), tone(4), np.zeros(SR * 20, np.float32)]
    )
    sf.write(path, samples, SR)
    decoded = decode_audio(path, AudioConfig(analysis_window_s=4.0), sample_rate=SR)
    assert decoded.duration_s == pytest.approx(44.0)
    assert decoded.analysed_s == pytest.approx(4.0)
    assert len(decoded.samples) == 4 * SR
    assert np.abs(decoded.samples).max() > 0.25  # the tone in the middle, not the silent start


def test_peak_memory_does_not_grow_with_file_length(tmp_path: Path) -> None:
    import tracemalloc

    peaks = {}
    for seconds in (10, 80):
        path = tmp_path / f"{seconds}.wav"
        sf.write(path, np.tile(tone(1), seconds), SR)
        tracemalloc.start()
        decode_audio(path, AudioConfig(analysis_window_s=5.0), sample_rate=SR)
        peaks[seconds] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    # Before: the whole file was decoded, 8x the samples for the 8x longer file.
    assert peaks[80] < 1.3 * peaks[10], peaks


# ---- 6 and 8: read failures are re-checked, damaged feature files recomputed ---------------


def test_a_read_failure_is_not_stored_as_a_verdict(songs: Path, tmp_path: Path) -> None:
    wav = songs / "audio" / "a.wav"
    workspace = Workspace.open(tmp_path / "work")
    sha = file_sha256(wav)
    moved = tmp_path / "away.wav"
    wav.rename(moved)  # moved away between hashing and decoding

    gone = _process_one(str(wav), sha, AudioConfig(), SMALL, workspace)
    assert (gone.status, gone.reason) == ("quarantined", "file not found")
    assert not workspace.validation_record(AudioConfig().key, sha).exists()

    moved.rename(wav)
    back = _process_one(str(wav), sha, AudioConfig(), SMALL, workspace)
    assert (back.status, back.decoded, back.featurized) == ("ok", True, True)


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_damaged_feature_file_names_itself_and_is_moved_aside(
    tmp_path: Path, damage: str
) -> None:
    path = tmp_path / "f.npz"
    rng = np.random.default_rng(0)
    TrackFeatures(
        logmel=rng.standard_normal((2, 8, 8)).astype(np.float16),
        mfcc=rng.standard_normal((2, 4, 8)).astype(np.float16),
        crop_stats=rng.standard_normal((2, 5)).astype(np.float32),
        track_stats=rng.standard_normal(5).astype(np.float32),
    ).save(path)
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[300] ^= 0x01  # one bit inside the log-mel array
    path.write_bytes(bytes(data))

    with pytest.raises(DamagedFeatureFile, match=str(path)) as error:
        TrackFeatures.load(path)
    assert "\n" not in str(error.value)
    assert not path.exists()
    assert path.with_name("f.npz.damaged").exists()


def test_the_next_ingest_rechecks_what_it_could_not_read_and_recomputes_damaged_features(
    prefect_api, songs: Path, tmp_path: Path
) -> None:
    config = IngestConfig(data=songs / "audio", workdir=tmp_path / "work", features=SMALL)
    first = ingest_flow(config)
    assert (first.n_ok, first.validated) == (2, 2)
    tracks = pl.read_parquet(first.workspace.tracks_table).sort("track_id")
    sha_a, sha_b = tracks["sha256"].to_list()

    # A run that could not read a file stores no verdict for it (as _process_one does):
    # the next run must not be served the old outcome from Prefect's cache.
    first.workspace.validation_record(config.audio.key, sha_a).unlink()
    again = ingest_flow(config)
    assert again.validated == 1

    # A feature file damaged on disk is detected when read, then recomputed by the next ingest.
    feature = first.workspace.feature_file(first.feature_key, sha_b)
    feature.write_bytes(feature.read_bytes()[:200])
    with pytest.raises(DamagedFeatureFile, match=sha_b):
        load_track_features(first.workspace, first.feature_key, sha_b)
    repaired = ingest_flow(config)
    assert repaired.featurized == 1
    assert load_track_features(first.workspace, first.feature_key, sha_b).logmel.shape[1] == 32
