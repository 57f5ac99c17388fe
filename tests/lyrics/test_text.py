"""Normalization, romanization, scripts and languages of lyrics lines and tracks."""

from __future__ import annotations

import pytest

from tasks.lyrics.language import (
    UNDETERMINED,
    identify_latin,
    identify_line,
    script_of_text,
    summarize_track,
    words_of,
)
from tasks.lyrics.normalize import clean_line, is_section_tag, normalize_lines
from tasks.lyrics.romanize import phonetic_key, romanize

# ---------------------------------------------------------------------------------------------
# normalization


def test_section_tags_dropped_and_adlibs_kept() -> None:
    lines = [
        "[Chorus]",
        "[Verse 2: Karim]",
        "Chorus:",
        "(Repeat x2)",
        "[কোরাস]",
        "(ooh baby)",
        "[Hook] dance all night (x2)",
        "",
        "   ",
        "verse of my life is long",
    ]
    kept, positions = normalize_lines(lines)
    assert kept == ["(ooh baby)", "dance all night", "verse of my life is long"]
    assert positions == [5, 6, 9]


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("  Hello\u00a0\u00a0world !!! ", "Hello world!"),
        ("\u201cquoted\u201d \u2026 yes", '"quoted"... yes'),
        ("zero\u200bwidth\ufeff", "zerowidth"),
        ("wait.....", "wait..."),
        # NFC: decomposed e + combining acute becomes é
        ("cafe\u0301", "café"),
        # ZWNJ is part of Bengali/Persian spelling and survives
        ("র\u200cয", "র\u200cয"),
    ],
)
def test_clean_line(raw: str, clean: str) -> None:
    assert clean_line(raw) == clean


@pytest.mark.parametrize(
    ("line", "is_tag"),
    [("[Intro]", True), ("Verse 1:", True), ("(Chorus)", True), ("(ooh yeah)", False)],
)
def test_is_section_tag(line: str, is_tag: bool) -> None:
    assert is_section_tag(line) is is_tag


# ---------------------------------------------------------------------------------------------
# romanization


@pytest.mark.parametrize(
    ("text", "latin"),
    [
        ("আমার সোনার বাংলা", "amar sonar bangla"),
        ("আমি তোমায় ভালোবাসি", "ami tomay bhalobasi"),
        ("নদীর গান", "nodir gan"),
        ("যুদ্ধ", "juddho"),
        ("मैं तुमसे प्यार करता हूँ", "main tumse pyar karta hun"),
        ("ज़िंदगी", "zindagi"),
        ("समझना", "samajhna"),
        ("Amar Sonar Bangla", "Amar Sonar Bangla"),
    ],
)
def test_romanize_indic_scripts(text: str, latin: str) -> None:
    assert romanize(text) == latin


def test_romanize_arabic_uses_anyascii() -> None:
    latin = romanize("حبيبي يا نور العين")
    assert latin.isascii()
    assert latin.split()[0] == "hbyby"


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("আমার সোনার বাংলা", "Amar Sonar Bangla"),
        ("ভালোবাসি", "Bhalobashi"),
        ("দীপঙ্কর হক - লড়াইয়ের বসন্ত", "Dipankar Hok - Loraiyer Bosonto"),
    ],
)
def test_phonetic_key_makes_scripts_and_spellings_meet(one: str, other: str) -> None:
    assert phonetic_key(one) == phonetic_key(other)


# ---------------------------------------------------------------------------------------------
# scripts and languages


@pytest.mark.parametrize(
    ("text", "script"),
    [
        ("আমার সোনার বাংলা", "Beng"),
        ("दिल क्या करे", "Deva"),
        ("يا ليل يا عين", "Arab"),
        ("te quiero", "Latn"),
        ("Привет", "Cyrl"),
        ("123 !?", None),
    ],
)
def test_script_of_text(text: str, script: str | None) -> None:
    assert script_of_text(text) == script


def test_words_keep_indic_vowel_signs() -> None:
    assert words_of("আমার সোনার বাংলা, मैं तुमसे") == ["আমার", "সোনার", "বাংলা", "मैं", "तुमसे"]


@pytest.mark.parametrize(
    ("line", "language"),
    [
        # romanized Bangla, romanized Hindi, English, Spanish: all Latin letters
        ("ami tomake bhalobashi", "bn"),
        ("tumi kothay chile ekhon", "bn"),
        ("main tumse pyaar karta hoon", "hi"),
        ("dil kya kare jab koi nahi", "hi"),
        ("i will love you till the end of time", "en"),
        ("te quiero mi amor esta noche", "es"),
        ("corazón", "es"),
        ("habibi enta omri", "ar"),
        # scripts that name their language
        ("আমি তোমায় ভালোবাসি", "bn"),
        ("मैं तुमसे प्यार करता हूँ", "hi"),
        ("حبيبي يا نور العين", "ar"),
        ("دل دیتے ہیں ہم تمہیں ٹوٹا", "ur"),
    ],
)
def test_line_language(line: str, language: str) -> None:
    assert identify_line(line).language == language


@pytest.mark.parametrize("line", ["oh oh oh", "na na na na", "la la la", "yeah"])
def test_vocables_have_no_language(line: str) -> None:
    assert identify_line(line).language is None
    assert identify_latin(line.split()).language is None


def test_code_mixed_line_marks_each_word() -> None:
    analysis = identify_line("ami tomake love kori baby")
    assert analysis.language == "bn"
    assert analysis.word_languages == ("bn", "bn", "en", "bn", "en")
    assert analysis.mixed


def test_mixed_script_line() -> None:
    analysis = identify_line("every night আমি আকাশ খুঁজি")
    assert analysis.language == "bn"
    assert analysis.word_scripts[:2] == ("Latn", "Latn")
    assert set(analysis.word_languages) == {"en", "bn"}


def test_track_in_bengali_script() -> None:
    summary = summarize_track(["আমার সোনার বাংলা", "আমি তোমায় ভালোবাসি", "oh oh oh"])
    assert summary.language == "bn"
    assert summary.script == "Beng"
    assert not summary.romanized
    assert not summary.code_mixed
    # the vocable line takes the track's language instead of a guess
    assert summary.line_languages == ["bn", "bn", "bn"]


def test_track_of_romanized_bangla_is_not_english() -> None:
    summary = summarize_track(
        ["ami tomake bhalobashi", "tumi amar mon", "keno eto dure thako", "oh oh oh"]
    )
    assert summary.language == "bn"
    assert summary.script == "Latn"
    assert summary.romanized
    assert summary.language_mix == {"bn": 1.0}


def test_track_of_romanized_hindi() -> None:
    summary = summarize_track(["main tumse pyaar karta hoon", "tere bina jeena nahi"])
    assert (summary.language, summary.romanized, summary.code_mixed) == ("hi", True, False)


def test_code_mixed_track_banglish_and_english() -> None:
    summary = summarize_track(
        [
            "ami tomake bhalobashi",
            "tumi amar gaan",
            "I miss you every night",
            "baby don't go away tonight",
            "amar mon tomar kache",
        ]
    )
    assert summary.code_mixed
    assert set(summary.language_mix) == {"bn", "en"}
    assert abs(sum(summary.language_mix.values()) - 1) < 1e-3
    # English is the embedded language: the song is a Bangla song
    assert summary.language == "bn"


def test_english_track_with_one_foreign_word_is_not_code_mixed() -> None:
    summary = summarize_track(
        [
            "we were dancing in the summer rain",
            "the night is young and so are we",
            "hold me close and never let me go",
            "my amor is waiting by the sea",
        ]
    )
    assert summary.language == "en"
    assert not summary.code_mixed
    assert not summary.romanized


def test_empty_track() -> None:
    summary = summarize_track([])
    assert summary.language is None
    assert summary.line_languages == []
    assert summary.language_mix == {}
    assert not summary.code_mixed


def test_track_of_only_vocables_is_undetermined() -> None:
    summary = summarize_track(["oh oh", "la la la"])
    assert summary.language is None
    assert summary.line_languages == [UNDETERMINED, UNDETERMINED]
