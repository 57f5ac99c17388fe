"""Reading a generated demo set back: sizes of the shared set, patterns, digests, lyric lines."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import polars as pl

from tasks.demo import DemoDataset

SMALL_TRACKS = 24  # with seed 0, enough for every language, script and lyrics-file kind
SHORT_S = 2.0
BENGALI = re.compile("[\u0980-\u09ff]")
TIME_TAG = re.compile(r"^\[(\d{2}):(\d{2}\.\d{2})\]")
TRACK_ID_FILE = re.compile(r"[a-z]+\.\d{5}\.(txt|lrc)")


def file_digests(root: Path) -> dict[str, str]:
    """sha256 of every file below `root`, by path relative to it."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def sung_lines(text: str) -> list[str]:
    """Lyric lines without section tags, LRC headers or time tags."""
    lines = []
    for line in text.splitlines():
        line = TIME_TAG.sub("", line).strip()
        if line and not re.fullmatch(r"\[[^\]]*\]", line):
            lines.append(line)
    return lines


def lyrics_of(dataset: DemoDataset, truth: pl.DataFrame, track_id: str) -> str:
    """Text of the lyrics file paired with `track_id` in lyrics_truth.csv."""
    (name,) = truth.filter(pl.col("track_id") == track_id)["lyrics_file"].to_list()
    return (dataset.lyrics_dir / name).read_text(encoding="utf-8")
