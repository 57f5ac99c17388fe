"""Planning the demo set: genres, languages, lyrics-file kinds and names that pair cleanly."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import polars as pl
import pytest
from anyascii import anyascii
from rapidfuzz import fuzz

from tasks.demo import GENRES, DemoDataError, plan_demo_tracks
from tests.demo.demo_files import BENGALI, TRACK_ID_FILE


def test_genres_rotate_and_stay_balanced_at_any_size() -> None:
    plans = plan_demo_tracks(21, seed=0)
    assert [plan.genre for plan in plans[:8]] == list(GENRES)
    counts = Counter(plan.genre for plan in plans)
    assert max(counts.values()) - min(counts.values()) <= 1


def test_plan_of_track_k_does_not_depend_on_collection_size() -> None:
    assert plan_demo_tracks(30, seed=5)[:12] == plan_demo_tracks(12, seed=5)


def test_about_one_track_in_ten_has_no_lyrics(metadata: pl.DataFrame) -> None:
    without = metadata.filter(~pl.col("has_lyrics")).height
    assert 1 <= without <= 0.2 * metadata.height
    plans = plan_demo_tracks(200, seed=3)
    share = sum(not plan.has_lyrics for plan in plans) / len(plans)
    assert 0.08 <= share <= 0.12


def test_lyrics_file_name_follows_the_lyrics_style() -> None:
    for plan in plan_demo_tracks(80, seed=2):
        if plan.lyrics_style == "none":
            assert plan.lyrics_file is None
        elif plan.lyrics_style in ("track_txt", "track_lrc"):
            suffix = ".lrc" if plan.lyrics_style == "track_lrc" else ".txt"
            assert plan.lyrics_file == f"{plan.track_id}{suffix}"
        elif plan.lyrics_style == "artist_title_bengali":
            assert plan.lyrics_file is not None
            assert BENGALI.search(plan.lyrics_file)
        else:
            assert plan.lyrics_file is not None
            assert not BENGALI.search(plan.lyrics_file)


def test_zero_tracks_is_refused() -> None:
    with pytest.raises(DemoDataError, match="tracks=0"):
        plan_demo_tracks(0)


def test_some_lyrics_files_are_named_by_artist_and_title_in_both_scripts(
    truth: pl.DataFrame,
) -> None:
    names = truth["lyrics_file"].to_list()
    by_track_id = [name for name in names if TRACK_ID_FILE.fullmatch(name)]
    by_song = [name for name in names if not TRACK_ID_FILE.fullmatch(name)]
    assert by_track_id
    assert all(re.search(r"[ _]-[ _]", name) for name in by_song)
    assert any(BENGALI.search(name) for name in by_song)
    assert any(not BENGALI.search(name) for name in by_song)


def _song_key(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9 ]", " ", anyascii(text).lower().replace("_", " ")).split())


def test_artist_title_files_pair_unambiguously_after_romanizing(
    metadata: pl.DataFrame, truth: pl.DataFrame
) -> None:
    """A fuzzy matcher that romanizes file names with anyascii finds the right track for every
    "Artist - Title" file, Bengali-script names included, and scores the orphans lower."""
    songs = {
        track_id: _song_key(f"{artist} - {title}")
        for track_id, artist, title in metadata.select("track_id", "artist", "title").rows()
    }
    paired_scores, orphan_scores = [], []
    for name, track_id in truth.rows():
        if TRACK_ID_FILE.fullmatch(name):
            continue
        key = _song_key(Path(name).stem)
        scores = {candidate: fuzz.ratio(key, song) for candidate, song in songs.items()}
        best = max(scores, key=scores.__getitem__)
        if track_id is None:
            orphan_scores.append(scores[best])
            continue
        runner_up = max(score for candidate, score in scores.items() if candidate != best)
        assert best == track_id, (name, best)
        assert scores[best] - runner_up >= 10, name
        paired_scores.append(scores[best])
    assert len(orphan_scores) == 2
    assert max(orphan_scores) < min(paired_scores)
