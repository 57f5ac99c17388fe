"""Language of lyrics lines and the language summary of a track.

Per script (ISO 15924, `tasks.lyrics.scripts`):

- A script used by one main language names it: Bengali script -> bn, Devanagari -> hi,
  Tamil -> ta, Hangul -> ko, Hiragana/Katakana -> ja, Thai -> th, ... (`SCRIPT_LANGUAGE`).
- Scripts shared by several languages ask py3langid's bundled model among that script's
  languages (`tasks.lyrics.identifier`): Arabic script -> ar / fa / ur (Urdu-only letters such
  as ے ٹ ڈ settle ur, Persian letters پ چ ژ گ rule Arabic out), Cyrillic -> ru / uk / bg / ...,
  Chinese characters -> zh, or ja when the line has kana.
- Latin script is not assumed to be English: `tasks.lyrics.latin_language.decide_latin` weighs
  our romanized Bangla / Hindi / Arabic detector (lexicons and trigram profiles, the only thing
  that knows them) against py3langid, which names French, German, Portuguese, Turkish, ...

Per word, the language is its script's language in the line, except that a Latin word whose
lexicon evidence points to one of our languages alone keeps it (the English words of a Banglish
line) unless the line is in a language py3langid named (French "mon" is not Bangla "mon").

Short lines are hard for every identifier, so the track decides what a line cannot
(`summarize_track`): for each shared script, py3langid reads all of the track's text in that
script, and when it is sure of a language that the line's own text does not rule out, the
unsettled lines take it ("la vie en rose" alone could be anything; in a French song it is
French). Lines with no evidence (vocables, very short unknown words) take the track's dominant
Latin language.

The track's `language_mix` is the share of words per language; the dominant language is the
largest share; a track is code-mixed when two languages each hold at least `MEANINGFUL_SHARE`
of the words, or when at least `MIXED_LINE_SHARE` of its lines are mixed (a line is mixed when
a second language holds at least two of its words and a quarter of them). For a code-mixed
track whose largest share is English, the dominant language is the other meaningful one:
English is the usual embedded language of code-mixed lyrics ("ami tomake love kori" is a
Bangla song).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from tasks.lyrics.identifier import SCRIPT_CANDIDATES, best_language, rank_languages
from tasks.lyrics.latin_language import (
    LATIN_LANGUAGES,
    LATIN_LEXICONS,
    NGRAM_WEIGHT,
    VOCABLES,
    LatinGuess,
    decide_latin,
    identify_latin,
    lexicon_languages,
    word_evidence,
)
from tasks.lyrics.scripts import script_counts, script_of_char, script_of_text, words_of

__all__ = [
    "LATIN_LANGUAGES",
    "LATIN_LEXICONS",
    "MEANINGFUL_SHARE",
    "MIXED_LINE_SHARE",
    "NATIVE_SCRIPT",
    "NGRAM_WEIGHT",
    "SCRIPT_LANGUAGE",
    "UNDETERMINED",
    "VOCABLES",
    "LatinGuess",
    "LineLanguage",
    "TrackLanguage",
    "identify_latin",
    "identify_line",
    "lexicon_languages",
    "script_counts",
    "script_of_char",
    "script_of_text",
    "summarize_track",
    "word_evidence",
    "words_of",
]

UNDETERMINED = "und"
"""Line language when nothing identifies it (ISO 639-2 'undetermined')."""

MEANINGFUL_SHARE = 0.2
MIXED_LINE_SHARE = 0.25
SURE = 0.9
"""py3langid probability at which a line's shared-script language is settled on its own."""
TRACK_SURE = 0.8
"""py3langid probability on a track's whole text in one script that lets it decide the lines
that are not settled."""
TRACK_LATIN_LINE_SHARE = 1 / 3
"""Share of the track's Latin lines that must already carry the track's py3langid language
before it overrules the others: long romanized Bangla or Hindi text fools py3langid into some
confident look-alike, but its lines carry our lexicon languages, not that one."""
NOT_RULED_OUT = 0.1
"""Lowest probability the line's own text must give the track's language to take it."""

SCRIPT_LANGUAGE: dict[str, str] = {
    "Beng": "bn",
    "Deva": "hi",
    "Arab": "ar",
    "Hebr": "he",
    "Grek": "el",
    "Armn": "hy",
    "Geor": "ka",
    "Guru": "pa",
    "Gujr": "gu",
    "Orya": "or",
    "Taml": "ta",
    "Telu": "te",
    "Knda": "kn",
    "Mlym": "ml",
    "Sinh": "si",
    "Thai": "th",
    "Hang": "ko",
    "Hira": "ja",
    "Kana": "ja",
    "Ethi": "am",
}
"""The language a word in each script is taken to be when nothing else tells (Arabic script:
when py3langid finds no feature in the text)."""

NATIVE_SCRIPT: dict[str, str] = {
    **{language: script for script, language in SCRIPT_LANGUAGE.items()},
    **dict.fromkeys(SCRIPT_CANDIDATES["Cyrl"], "Cyrl"),
    "ur": "Arab",
    "fa": "Arab",
    "ja": "Jpan",
    "zh": "Hani",
    "en": "Latn",
    "es": "Latn",
}
"""Each language's own script; a language written in Latin letters instead is 'romanized'.
Languages not listed (French, German, ...) are written in Latin letters."""

_URDU_LETTERS = frozenset("ٹڈڑںےۓ")
_PERSIAN_LETTERS = frozenset("پچژگ")
_SHARED_SCRIPTS = ("Latn", "Arab", "Cyrl", "Hani")


@dataclass(frozen=True)
class LineLanguage:
    """Language analysis of one lyrics line.

    `language` is an ISO 639-1 code or None (no evidence); `word_languages` has one entry per
    word of `words_of(line)` (None for words of unknown language); `mixed` is True when a
    second language holds at least two words and a quarter of the line; `unsettled_scripts`
    are the shared scripts (Latn, Arab, Cyrl, Hani) whose words' language the line alone could
    not settle, which `summarize_track` may decide from the whole track; `script_languages`
    pairs each shared script of the line with the language decided for its words.
    """

    language: str | None
    script: str | None
    words: tuple[str, ...]
    word_scripts: tuple[str | None, ...]
    word_languages: tuple[str | None, ...]
    mixed: bool
    script_languages: tuple[tuple[str, str | None], ...] = ()
    unsettled_scripts: tuple[str, ...] = ()


def _text_in(script: str, words: tuple[str, ...], scripts: tuple[str | None, ...]) -> str:
    return " ".join(w for w, s in zip(words, scripts, strict=True) if s == script)


def _shared_script_language(
    script: str, text: str, line_scripts: set[str | None]
) -> tuple[str | None, bool]:
    """(language, settled) of the words of one shared non-Latin script in a line."""
    if script == "Hani" and line_scripts & {"Hira", "Kana"}:
        return "ja", True  # kana: Japanese, whose kanji are these characters
    if script == "Arab":
        letters = set(text)
        if letters & _URDU_LETTERS:
            return "ur", True
        candidates = ("fa", "ur") if letters & _PERSIAN_LETTERS else SCRIPT_CANDIDATES["Arab"]
        ranking = rank_languages(text, candidates)
        if not ranking:
            return ("fa" if letters & _PERSIAN_LETTERS else "ar"), False
        language, probability = next(iter(ranking.items()))
        return language, probability >= SURE
    language, probability = best_language(text, script)
    return language, probability >= SURE


def _word_languages(
    words: tuple[str, ...],
    scripts: tuple[str | None, ...],
    script_languages: dict[str, str | None],
) -> list[str | None]:
    """Each word's language: its script's language in the line; a Latin word whose own evidence
    points to one of our languages alone keeps it, unless py3langid named the line's Latin
    language (then that evidence is a coincidence of spelling)."""
    latin = script_languages.get("Latn")
    ours = latin is None or latin in LATIN_LANGUAGES
    languages: list[str | None] = []
    for word, script in zip(words, scripts, strict=True):
        if script == "Latn":
            own = word_evidence(word)
            keep = ours and len(own) == 1 and word.lower() not in VOCABLES
            languages.append(own[0] if keep else latin)
        elif script in script_languages:
            languages.append(script_languages[script])
        else:
            languages.append(SCRIPT_LANGUAGE.get(script or ""))
    return languages


def _line_result(
    line: str,
    words: tuple[str, ...],
    scripts: tuple[str | None, ...],
    script_languages: dict[str, str | None],
    unsettled: tuple[str, ...],
) -> LineLanguage:
    word_languages = _word_languages(words, scripts, script_languages)
    latin = script_languages.get("Latn")
    counts = Counter(lang for lang in word_languages if lang is not None)
    if "Latn" in scripts and latin is None and not (set(scripts) - {"Latn", None}):
        language = None  # only vocables or unknown Latin words: let the track decide
    elif counts:
        # Ties go to the line's own Latin language, else to the first language seen.
        ranked = sorted(
            counts,
            key=lambda lang: (-counts[lang], lang != latin, word_languages.index(lang)),
        )
        language = ranked[0]
    else:
        language = None
    known = sum(counts.values())
    second = counts.most_common(2)[1][1] if len(counts) >= 2 else 0
    return LineLanguage(
        language=language,
        script=script_of_text(line),
        words=words,
        word_scripts=scripts,
        word_languages=tuple(word_languages),
        mixed=second >= 2 and second >= 0.25 * known,
        script_languages=tuple(script_languages.items()),
        unsettled_scripts=unsettled,
    )


def identify_line(line: str) -> LineLanguage:
    """Script and language of one (normalized) lyrics line, and of each of its words."""
    words = tuple(words_of(line))
    scripts = tuple(script_of_text(w) for w in words)
    script_languages: dict[str, str | None] = {}
    unsettled: list[str] = []
    for script in dict.fromkeys(s for s in scripts if s in _SHARED_SCRIPTS):
        if script == "Latn":
            decision = decide_latin([w for w, s in zip(words, scripts, strict=True) if s == script])
            language, settled = decision.language, decision.settled
        else:
            language, settled = _shared_script_language(
                script, _text_in(script, words, scripts), set(scripts)
            )
        script_languages[script] = language
        if not settled:
            unsettled.append(script)
    return _line_result(line, words, scripts, script_languages, tuple(unsettled))


def _settle_from_track(lines: list[str], analyses: list[LineLanguage]) -> list[LineLanguage]:
    """For each shared script, the unsettled lines take the language py3langid is sure of on
    the track's whole text in that script, when their own text does not rule it out."""
    analyses = list(analyses)
    for script in _SHARED_SCRIPTS:
        open_rows = [i for i, a in enumerate(analyses) if script in a.unsettled_scripts]
        if not open_rows:
            continue
        rows = [i for i, a in enumerate(analyses) if script in a.word_scripts]
        text = " ".join(_text_in(script, analyses[i].words, analyses[i].word_scripts) for i in rows)
        track_language, probability = best_language(text, script)
        if track_language is None or probability < TRACK_SURE:
            continue
        if script == "Latn":
            carrying = sum(
                dict(analyses[i].script_languages).get(script) == track_language for i in rows
            )
            if carrying < TRACK_LATIN_LINE_SHARE * len(rows):
                continue
        candidates = SCRIPT_CANDIDATES[script]
        for i in open_rows:
            analysis = analyses[i]
            script_languages = dict(analysis.script_languages)
            current = script_languages.get(script)
            if current is None or current == track_language:
                continue
            own_text = _text_in(script, analysis.words, analysis.word_scripts)
            if rank_languages(own_text, candidates).get(track_language, 0.0) < NOT_RULED_OUT:
                continue
            script_languages[script] = track_language
            analyses[i] = _line_result(
                lines[i],
                analysis.words,
                analysis.word_scripts,
                script_languages,
                tuple(s for s in analysis.unsettled_scripts if s != script),
            )
    return analyses


@dataclass(frozen=True)
class TrackLanguage:
    """Language summary of one track's lyrics.

    `line_languages` has one code per line (`UNDETERMINED` when nothing tells);
    `language_mix` maps language -> share of words (sums to 1, empty without words);
    `script` is the ISO 15924 script most words of the dominant language are written in;
    `romanized` is True when the dominant language has a non-Latin script of its own but most
    of its words are written in Latin letters.
    """

    line_languages: list[str]
    language: str | None
    script: str | None
    romanized: bool
    language_mix: dict[str, float]
    code_mixed: bool


def summarize_track(lines: list[str]) -> TrackLanguage:
    """Per-line languages and the track-level language, script, mix and code-mixed flag.

    Lines that could not settle their language alone take the one py3langid is sure of on the
    track's text in their script (module docstring); lines without evidence take the dominant
    language of the track's other Latin lines (or of the whole track); words of unknown
    language in them count for that language too.
    """
    analyses = _settle_from_track(lines, [identify_line(line) for line in lines])
    known: Counter[str] = Counter()
    known_latin: Counter[str] = Counter()
    for analysis in analyses:
        for lang, script in zip(analysis.word_languages, analysis.word_scripts, strict=True):
            if lang is not None:
                known[lang] += 1
                known_latin[lang] += script == "Latn"
    known_latin = +known_latin  # drop zero counts
    fill = (known_latin or known).most_common(1)
    fill_language = fill[0][0] if fill else None

    line_languages: list[str] = []
    word_counts: Counter[str] = Counter()
    romanized_words: Counter[str] = Counter()
    script_letters: Counter[str] = Counter()
    scripts_by_language: dict[str, Counter[str]] = {}
    for analysis in analyses:
        language = analysis.language or fill_language
        line_languages.append(language or UNDETERMINED)
        for lang, script in zip(analysis.word_languages, analysis.word_scripts, strict=True):
            lang = lang or language
            if lang is None:
                continue
            word_counts[lang] += 1
            if script is not None:
                scripts_by_language.setdefault(lang, Counter())[script] += 1
            if script == "Latn" and NATIVE_SCRIPT.get(lang, "Latn") != "Latn":
                romanized_words[lang] += 1
        script_letters.update(script_counts(" ".join(analysis.words)))

    total = sum(word_counts.values())
    ranked_languages = sorted(word_counts.items(), key=lambda kv: -kv[1])
    mix = {lang: round(n / total, 4) for lang, n in ranked_languages} if total else {}
    dominant = next(iter(mix), None)
    meaningful = [lang for lang, share in mix.items() if share >= MEANINGFUL_SHARE]
    mixed_lines = sum(a.mixed for a in analyses)
    code_mixed = len(meaningful) >= 2 or (
        bool(analyses) and mixed_lines / len(analyses) >= MIXED_LINE_SHARE
    )
    if code_mixed and dominant == "en":
        # English is the usual embedded language of code-mixed lyrics (Banglish, Hinglish,
        # Spanglish): the song's language is the other one when it has a meaningful share.
        others = [lang for lang in meaningful if lang != "en"]
        dominant = others[0] if others else dominant
    romanized = bool(
        dominant
        and NATIVE_SCRIPT.get(dominant, "Latn") != "Latn"
        and romanized_words[dominant] * 2 > word_counts[dominant]
    )
    # The track's script is the one its dominant language is written in (a Bangla song with
    # English phrases is in Bengali script); without a language, the one with most letters.
    dominant_scripts = scripts_by_language.get(dominant or "", Counter()) or script_letters
    return TrackLanguage(
        line_languages=line_languages,
        language=dominant,
        script=dominant_scripts.most_common(1)[0][0] if dominant_scripts else None,
        romanized=romanized,
        language_mix=mix,
        code_mixed=code_mixed,
    )
