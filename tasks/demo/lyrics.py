"""Lyrics of the demo data set: the lines of a song, as plain text or LRC, and file names.

Lines are short templates per language with the genre's theme words (`tasks.demo.vocabulary`)
filled in: verses and a repeated chorus, 8 to 16 sung lines. Bangla lyrics come in Bengali
script, romanized, or code-mixed with English in either script.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import numpy as np

from tasks.demo.errors import DemoDataError
from tasks.demo.seeding import pick
from tasks.demo.song_names import SongName
from tasks.demo.vocabulary import LANGUAGES, bangla_genitive, theme_concepts


@dataclass(frozen=True)
class LyricText:
    """Lines of one song (section tags such as `[Chorus]` included) and the lyric lines alone."""

    lines: tuple[str, ...]
    sung_lines: tuple[str, ...]


# ----------------------------------------------------------------------------------------------
# Line templates. `{a}` and `{b}` are theme words, `{ag}` the Bangla genitive of `{a}`.

_ENGLISH_LINES = (
    "I walk the {a} alone tonight",
    "{A} is calling out my name",
    "Take me back to the {a}",
    "All I need is {a} and {b}",
    "Lost in the {a} again",
    "We were born in the {a}",
    "Can you feel the {a}?",
    "Nothing but {a} on my mind",
    "Hold on to the {a}, hold on to the {b}",
)
_SPANISH_LINES = (
    "Bajo {a} camino solo",
    "Canto por {a} y por {b}",
    "Siempre busco {a}",
    "En {a} te espero",
    "{A} me llama otra vez",
    "No hay nada como {a}",
    "Dame {a}, dame {b}",
    "Contigo vuelve {a}",
)
_HINDI_LINES = (
    "{a} की याद में खोया हूँ",
    "चलो {a} की ओर",
    "{a} और {b} के बीच",
    "हर {a} में तू है",
    "दिल ने {a} को पुकारा",
    "{a} से {b} तक",
    "आज फिर {a} की बात",
    "मेरे सपनों में {a}",
)
_ARABIC_LINES = (
    "في {a} أغني وحدي",
    "أبحث عن {a}",
    "قلبي مع {a}",
    "تحت {a} أنتظر {b}",
    "{a} و{b}",
    "يا ليل، خذني إلى {a}",
    "كل يوم أحلم ب{a}",
    "لا شيء مثل {a}",
)
_BANGLA_LINES = (  # (Bengali script, romanized)
    ("আমার {a}, তোমার {b}", "amar {a}, tomar {b}"),
    ("{ag} গান গাই আমি", "{ag} gan gai ami"),
    ("তুমি আমার {a}", "tumi amar {a}"),
    ("{a} ডাকে আমায়", "{a} dake amay"),
    ("{ag} মাঝে হারিয়ে যাই", "{ag} majhe hariye jai"),
    ("{a} আর {b} নিয়ে চলি", "{a} ar {b} niye choli"),
    ("ও মন, {a} খুঁজে বেড়াই", "o mon, {a} khuje berai"),
    ("কোথায় গেলে {a}?", "kothay gele {a}?"),
    ("{ag} সাথে {b} জাগে", "{ag} sathe {b} jage"),
)
# Bangla-English lines: (Bengali script + English, romanized + English). Their English words are
# the everyday ones code-mixed lyrics borrow (baby, heart, miss, smile), none of them a theme
# word of any genre (`THEMES`): an English theme word inside a Bangla line is a cue a surface
# encoder could match across languages, so it appears only as often as real code-mixing
# borrows a content word (`_ENGLISH_THEME_WORD`).
_CODE_MIXED_LINES = (
    ("তুমি আমার {a}, baby don't go", "tumi amar {a}, baby don't go"),
    ("every day আমি {a} খুঁজি", "every day ami {a} khuji"),
    ("{a} is calling, শোনো না", "{a} is calling, shono na"),
    ("আমার heart টা {ag} কাছে", "amar heart ta {ag} kache"),
    ("let it go, {a} নিয়ে চলো", "let it go, {a} niye cholo"),
    ("I miss you, {ag} মতো", "I miss you, {ag} moto"),
    ("তোমার smile যেন {a}", "tomar smile jeno {a}"),
    ("no worries, আজ রাতে {a}", "no worries, aaj rate {a}"),
)


# Code-mixed Bangla songs: 3 lines in 4 mix the languages; a mixed line keeps its theme word in
# English with `_ENGLISH_THEME_WORD`, a plain line is an English line with
# `_PLAIN_ENGLISH_LINE`, so about 1 line in 10 of such a song (and about 1 in 100 of all
# non-English lines) carries an English theme word.
_MIXED_LINE = 0.75
_ENGLISH_THEME_WORD = 0.1
_PLAIN_ENGLISH_LINE = 0.1


def _fill(template: str, words: dict[str, str]) -> str:
    line = template.format(**words)
    return line[0].upper() + line[1:] if template.startswith("{A}") else line


def _line(
    language: str,
    script: str,
    code_mixed: bool,
    genre: str,
    rng: np.random.Generator,
    *,
    mixed_line: bool,
) -> str:
    """One lyric line of `genre` in `language`, written in `script`; with `code_mixed` and
    `mixed_line`, a Bangla line with English words in it."""
    first, second = theme_concepts(genre, rng, 2)
    if language == "bn":
        romanized = script == "Latn"
        genitive = bangla_genitive(first)[1 if romanized else 0]
        a, b = (first.bn_latn, second.bn_latn) if romanized else (first.bn, second.bn)
        if code_mixed and mixed_line:
            template = pick(rng, _CODE_MIXED_LINES)[1 if romanized else 0]
            # a code-mixed line now and then keeps the theme word itself in English
            a = first.en if rng.random() < _ENGLISH_THEME_WORD else a
        else:
            template = pick(rng, _BANGLA_LINES)[1 if romanized else 0]
        return _fill(template, {"a": a, "b": b, "ag": genitive})
    if language == "en":
        template = pick(rng, _ENGLISH_LINES)
        return _fill(template, {"a": first.en, "A": first.en.capitalize(), "b": second.en})
    if language == "es":
        template = pick(rng, _SPANISH_LINES)
        return _fill(template, {"a": first.es, "A": first.es.capitalize(), "b": second.es})
    if language == "hi":
        return pick(rng, _HINDI_LINES).format(a=first.hi, b=second.hi)
    if language == "ar":
        return pick(rng, _ARABIC_LINES).format(a=first.ar, b=second.ar)
    raise DemoDataError(f"language={language!r} is not one of {LANGUAGES}")


def compose_lyrics(
    genre: str,
    language: str,
    script: str,
    code_mixed: bool,
    rng: np.random.Generator,
    *,
    section_tags: bool,
) -> LyricText:
    """Lyrics of one song: 8 to 16 sung lines in verses and a repeated chorus.

    Args:
        genre: one of `THEMES`; picks the theme vocabulary.
        language: ISO 639-1 code from `LANGUAGES`.
        script: ISO 15924 code the lines are written in; "Latn" with language "bn" gives
            romanized Bangla.
        code_mixed: Bangla-English: most lines mix Bangla and English words, a few are plain
            Bangla or plain English. Only meaningful with language "bn".
        rng: the track's generator; the same generator state gives the same lyrics.
        section_tags: put `[Verse]` / `[Chorus]` lines before the sections.

    Returns:
        The lines with tags and the sung lines alone (tags excluded, the chorus counted each time).

    Raises:
        DemoDataError: on a language outside `LANGUAGES`.
    """

    mixed_line_count = 0

    def make_line() -> str:
        nonlocal mixed_line_count
        mixed_line = code_mixed and rng.random() < _MIXED_LINE
        line = _line(language, script, code_mixed, genre, rng, mixed_line=mixed_line)
        if code_mixed and not mixed_line and rng.random() < _PLAIN_ENGLISH_LINE:
            # a plain English line now and then, as code-mixed songs have
            line = _line("en", "Latn", False, genre, rng, mixed_line=False)
        mixed_line_count += int(mixed_line)
        return unicodedata.normalize("NFC", line)

    verse_count = int(rng.integers(1, 3))
    verse_length = int(rng.integers(3, 5))
    chorus = [make_line() for _ in range(int(rng.integers(2, 5)))]
    lines: list[str] = []
    sung: list[str] = []
    for verse_index in range(verse_count):
        verse = [make_line() for _ in range(verse_length)]
        if section_tags:
            lines.append(f"[Verse {verse_index + 1}]")
        lines.extend(verse)
        sung.extend(verse)
        if section_tags:
            lines.append("[Chorus]")
        lines.extend(chorus)
        sung.extend(chorus)
    if len(sung) < 8 and section_tags:
        lines.append("[Outro]")
    while len(sung) < 8:  # an outro keeps every song at 8 lines or more (at most 16 without it)
        line = make_line()
        lines.append(line)
        sung.append(line)
    if code_mixed and mixed_line_count == 0:
        # every code-mixed song shows the mixing at least once
        line = _line(language, script, code_mixed, genre, rng, mixed_line=True)
        lines[-1] = sung[-1] = unicodedata.normalize("NFC", line)
    return LyricText(lines=tuple(lines), sung_lines=tuple(sung))


def lrc_text(
    artist: str,
    title: str,
    sung_lines: tuple[str, ...],
    duration_s: float,
    rng: np.random.Generator,
) -> str:
    """LRC lyrics: `[ar:]`/`[ti:]` header, then one `[mm:ss.xx]` time tag per sung line, spread
    over a clip of `duration_s` seconds (the first line 0.5 to 2 s in, scaled to a 30 s clip)."""
    first = rng.uniform(0.5, 2.0) * duration_s / 30.0
    spacing = (duration_s - first) / (len(sung_lines) + 0.5)
    lines = [f"[ar:{artist}]", f"[ti:{title}]"]
    for index, line in enumerate(sung_lines):
        seconds = first + index * spacing
        minutes, rest = divmod(seconds, 60.0)
        lines.append(f"[{int(minutes):02d}:{rest:05.2f}]{line}")
    return "\n".join(lines) + "\n"


def plain_text(lyrics: LyricText) -> str:
    """The text of a .txt lyrics file: every line, section tags included, one per line."""
    return "\n".join(lyrics.lines) + "\n"


def safe_file_stem(text: str) -> str:
    """`text` usable as a file name on every common file system: characters Windows forbids
    become spaces, runs of whitespace one space, and the result is NFC-normalised."""
    cleaned = "".join(" " if char in '/\\:*?"<>|' else char for char in text)
    return unicodedata.normalize("NFC", " ".join(cleaned.split()))


def song_file_name(artist: SongName, title: SongName, *, bengali: bool) -> str:
    """`Artist - Title.txt`, in Bengali script when `bengali` (and both names have it),
    otherwise in Latin letters."""
    if bengali and artist.bengali and title.bengali:
        return f"{safe_file_stem(f'{artist.bengali} - {title.bengali}')}.txt"
    return f"{safe_file_stem(f'{artist.latin} - {title.latin}')}.txt"
