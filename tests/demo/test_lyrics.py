"""Lyrics of the demo set: scripts, romanized and code-mixed Bangla, LRC timing, file names."""

from __future__ import annotations

import re

import numpy as np
import polars as pl
import pytest

from tasks.demo import DemoDataError, DemoDataset
from tasks.demo.lyrics import compose_lyrics, safe_file_stem, song_file_name
from tasks.demo.song_names import SongName
from tasks.demo.vocabulary import SCRIPT_OF_LANGUAGE, THEMES
from tests.demo.demo_files import BENGALI, SHORT_S, TIME_TAG, TRACK_ID_FILE, lyrics_of, sung_lines

DEVANAGARI = re.compile("[\u0900-\u097f]")
ARABIC = re.compile("[\u0600-\u06ff]")
LATIN_WORD = re.compile("[A-Za-z]{2,}")


@pytest.mark.parametrize(
    ("language", "script", "pattern"),
    [
        ("bn", "Beng", BENGALI),
        ("hi", "Deva", DEVANAGARI),
        ("ar", "Arab", ARABIC),
        ("en", "Latn", LATIN_WORD),
        ("es", "Latn", LATIN_WORD),
    ],
)
def test_lyrics_are_written_in_the_promised_script(
    small_set: DemoDataset,
    metadata: pl.DataFrame,
    truth: pl.DataFrame,
    language: str,
    script: str,
    pattern: re.Pattern[str],
) -> None:
    tracks = metadata.filter(
        pl.col("has_lyrics") & (pl.col("language") == language) & (pl.col("script") == script)
    )
    assert tracks.height > 0
    for track_id in tracks["track_id"]:
        lines = sung_lines(lyrics_of(small_set, truth, track_id))
        assert 8 <= len(lines) <= 16
        assert sum(bool(pattern.search(line)) for line in lines) >= len(lines) // 2
        if script != "Beng":
            assert not any(BENGALI.search(line) for line in lines)


def test_romanized_bangla_is_in_latin_letters(
    small_set: DemoDataset, metadata: pl.DataFrame, truth: pl.DataFrame
) -> None:
    tracks = metadata.filter("has_lyrics", "romanized")
    assert tracks.height > 0
    for track_id in tracks["track_id"]:
        text = lyrics_of(small_set, truth, track_id)
        assert not BENGALI.search(text)
        assert re.search(r"\b(amar|tumi|tomar|ami|mon|dake|niye|majhe|gele)\b", text)


def test_code_mixed_lyrics_mix_bangla_and_english_in_lines(
    small_set: DemoDataset, metadata: pl.DataFrame, truth: pl.DataFrame
) -> None:
    tracks = metadata.filter("has_lyrics", "code_mixed")
    assert tracks.height > 0
    english = r"\b(baby|every day|heart|miss|smile|calling|worries|let it go)\b"
    for track_id, script in tracks.select("track_id", "script").rows():
        lines = sung_lines(lyrics_of(small_set, truth, track_id))
        if script == "Beng":
            mixed = [line for line in lines if BENGALI.search(line) and re.search(english, line)]
        else:
            bangla = r"\b(ami|amar|tumi|tomar|kori|ta|na|jeno|aaj|niye|khuji|moto|kache)\b"
            mixed = [line for line in lines if re.search(bangla, line) and re.search(english, line)]
        assert mixed, track_id


def test_lrc_files_carry_increasing_time_tags(small_set: DemoDataset) -> None:
    lrc_files = sorted(small_set.lyrics_dir.glob("*.lrc"))
    assert lrc_files
    for path in lrc_files:
        tagged = [TIME_TAG.match(line) for line in path.read_text(encoding="utf-8").splitlines()]
        seconds = [int(m[1]) * 60 + float(m[2]) for m in tagged if m]
        assert len(seconds) >= 8
        assert seconds == sorted(seconds)
        assert seconds[-1] < SHORT_S
        assert TRACK_ID_FILE.fullmatch(path.name)


def test_two_orphan_lyrics_files_belong_to_no_track(
    small_set: DemoDataset, truth: pl.DataFrame
) -> None:
    orphans = truth.filter(pl.col("track_id").is_null())["lyrics_file"].to_list()
    assert len(orphans) == 2
    assert any(BENGALI.search(name) for name in orphans)
    for name in orphans:
        assert len(sung_lines((small_set.lyrics_dir / name).read_text(encoding="utf-8"))) >= 8


def test_unknown_language_is_named_in_the_error() -> None:
    with pytest.raises(DemoDataError, match="language='fr'"):
        compose_lyrics("rock", "fr", "Latn", False, np.random.default_rng(0), section_tags=False)


@pytest.mark.parametrize(
    ("text", "stem"),
    [
        ("AC/DC - Back: In Black?", "AC DC - Back In Black"),
        ('a  "quoted" <name> | x', "a quoted name x"),
        ("Rahim Das - Amar Nodi", "Rahim Das - Amar Nodi"),
    ],
)
def test_file_stems_lose_characters_file_systems_forbid(text: str, stem: str) -> None:
    assert safe_file_stem(text) == stem


def test_song_file_name_uses_bengali_script_only_where_both_names_have_it() -> None:
    artist = SongName("Rahim Das", "রহিম দাস")
    title = SongName("Amar Nodi", "আমার নদী")
    assert song_file_name(artist, title, bengali=True) == "রহিম দাস - আমার নদী.txt"
    assert song_file_name(artist, title, bengali=False) == "Rahim Das - Amar Nodi.txt"
    assert song_file_name(SongName("Emma Reed"), title, bengali=True) == "Emma Reed - Amar Nodi.txt"


def test_english_theme_words_in_other_languages_only_as_code_mixing() -> None:
    # An English theme word inside another language's song is a cue a surface (char n-gram)
    # encoder matches across languages: it may appear only in Bangla-English code-mixed songs,
    # and there about as rarely as real code-mixing borrows a content word.
    english = sorted({c.en for concepts in THEMES.values() for c in concepts}, key=len)
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, english[::-1])) + r")\b", re.IGNORECASE)
    counts = {"code_mixed": [0, 0], "other": [0, 0]}
    for index in range(240):
        language = ("bn", "es", "hi", "ar")[index % 4]
        code_mixed = language == "bn" and index % 8 == 0
        script = "Latn" if language == "bn" and index % 16 == 0 else SCRIPT_OF_LANGUAGE[language]
        rng = np.random.default_rng([7, index])
        genre = sorted(THEMES)[index % len(THEMES)]
        lyrics = compose_lyrics(genre, language, script, code_mixed, rng, section_tags=False)
        kind = counts["code_mixed" if code_mixed else "other"]
        kind[0] += sum(bool(pattern.search(line)) for line in lyrics.sung_lines)
        kind[1] += len(lyrics.sung_lines)
    assert counts["other"][0] == 0
    assert counts["code_mixed"][1] > 0
    assert counts["code_mixed"][0] <= 0.15 * counts["code_mixed"][1]
    all_lines = counts["code_mixed"][1] + counts["other"][1]
    assert counts["code_mixed"][0] <= 0.05 * all_lines
