"""Lyrics sources read what the collection holds, and a bounded amount of it."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import polars as pl
import pytest

from tasks.audio.discovery import SourceSettings
from tasks.lyrics.sources import (
    LyricsSourceError,
    discover_lyrics_sources,
    read_lyrics_file,
    read_lyrics_sources,
    read_lyrics_table,
)


@pytest.fixture
def collection(tmp_path: Path) -> Path:
    root = tmp_path / "coll"
    (root / "lyrics").mkdir(parents=True)
    (root / "lyrics" / "a.txt").write_text("la la la\nsecond line\n")
    (tmp_path / "secret.txt").write_text("root:x:0:0:do not copy me\n")
    return root


def test_table_paths_outside_the_table_folder_are_refused_and_reported(
    collection: Path,
) -> None:
    table = collection / "manifest.csv"
    pl.DataFrame(
        {
            "track_id": ["a", "b", "c"],
            "lyrics_path": ["lyrics/a.txt", "/etc/passwd", "../secret.txt"],
        }
    ).write_csv(table)
    documents = {d.track_id: d for d in read_lyrics_table(table)}

    assert documents["a"].lines[0] == "la la la"
    for track_id, value in (("b", "/etc/passwd"), ("c", "../secret.txt")):
        refused = documents[track_id]
        assert refused.lines == ()  # nothing of the file is copied
        assert refused.source == f"{table}#row={'abc'.index(track_id)}"
        assert f"{value!r} is outside the table's folder" in refused.note
        assert "--allow-outside-paths" in refused.note
    text = "\n".join(line for d in documents.values() for line in d.lines)
    assert "root:" not in text

    allowed = read_lyrics_table(table, SourceSettings(allow_outside_paths=True))
    assert any("do not copy me" in line for d in allowed for line in d.lines)


def test_tracks_table_lyrics_paths_outside_the_collection_are_not_read(
    collection: Path, tmp_path: Path
) -> None:
    tracks = tmp_path / "tracks.parquet"
    pl.DataFrame(
        {
            "track_id": ["a", "b"],
            "lyrics_path": [str(collection / "lyrics" / "a.txt"), str(tmp_path / "secret.txt")],
        }
    ).write_parquet(tracks)
    (collection / "lyrics" / "a.txt").rename(collection / "a.txt")  # not in the lyrics folder
    sources = discover_lyrics_sources(collection, None, tracks)
    assert sources.files == ()  # a.txt moved out of the named path; secret.txt refused
    pl.DataFrame(
        {"track_id": ["a", "b"], "lyrics_path": ["a.txt", str(tmp_path / "secret.txt")]}
    ).write_parquet(tracks)
    sources = discover_lyrics_sources(collection, None, tracks)
    assert sources.files == ((collection / "a.txt").resolve(),)


def test_a_huge_lyrics_file_is_cut_with_a_note_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "huge.txt"
    line = "na na na na na na na na na na na na na na na na na na na hey\n"
    with open(path, "w") as handle:
        for _ in range(20 * 1024 * 1024 // len(line)):  # 20 MB
            handle.write(line)
    tracemalloc.start()
    document = read_lyrics_file(path, max_bytes=64 * 1024)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    kept = "\n".join(document.lines)
    assert len(kept.encode()) <= 64 * 1024
    assert document.lines[-1] == line.strip()  # cut at a line end, never mid-line
    assert "cut to the first" in document.note
    assert str(path.stat().st_size) in document.note
    assert peak < 4 * 1024 * 1024, peak  # before: the 20 MB file was read whole


def test_long_text_in_a_table_cell_is_cut_with_a_note(tmp_path: Path) -> None:
    table = tmp_path / "lyrics.csv"
    pl.DataFrame({"track_id": ["a"], "lyrics": ["word " * 5000]}).write_csv(table)
    (document,) = read_lyrics_table(table, SourceSettings(max_lyrics_bytes=1024))
    assert len("\n".join(document.lines).encode()) <= 1024
    assert "max_lyrics_bytes is 1024" in document.note


def test_a_fifo_named_as_lyrics_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    with pytest.raises(LyricsSourceError, match="not a regular file"):
        read_lyrics_file(fifo)


def test_documents_keep_their_notes_through_discovery(collection: Path) -> None:
    (collection / "lyrics" / "b.txt").write_text("x" * 2000 + "\n" + "y" * 2000)
    sources = discover_lyrics_sources(collection, None, collection / "none.parquet")
    sources = sources.model_copy(update={"settings": SourceSettings(max_lyrics_bytes=1024)})
    notes = {Path(d.source).name: d.note for d in read_lyrics_sources(sources)}
    assert notes["a.txt"] is None
    assert "cut" in notes["b.txt"]
