"""Romanization of lyrics lines and phonetic keys for matching names across scripts.

Which library does what (deterministic, offline):

- Bengali and Devanagari: `indic-transliteration` (sanscript) to IAST, after a schwa-deletion
  pass on the Indic text, then IAST diacritics folded into the everyday Latin spellings people
  use for Banglish and Hinglish: "আমার সোনার বাংলা" -> "amar sonar bangla", "নদীর" -> "nodir",
  "मैं तुमसे प्यार करता हूँ" -> "main tumse pyar karta hun".
- Everything else that is not Latin (Arabic, Cyrillic, CJK, other Indic scripts...): `anyascii`
  ("حبيبي" -> "hbyby"; Arabic has no written short vowels, so the form is only a consonant
  skeleton, good enough for character n-grams and fuzzy matching).
- Latin text is kept as it is.

Schwa deletion (why: sanscript writes every inherent vowel, "আমার" -> "āmāra", while people write
"amar"): a word-final inherent vowel after a single consonant is dropped in Bengali and Hindi
(not in one-syllable words, not after a conjunct: "ধর্ম" stays "dharma"); Hindi also drops a
medial inherent vowel between an open vowel-bearing syllable and a consonant+vowel syllable,
scanning right to left ("करता" -> "karta", "समझना" -> "samajhna", "ज़िंदगी" -> "zindagi").
Bengali য is "j" (যুদ্ধ -> "juddho"), য় "y", ড়/ঢ় "r", ব "b".
Bengali's short/inherent vowel is written "o" as Banglish does ("মন" -> "mon", "বসন্ত" ->
"bosonto"); Bengali keeps its medial inherent vowels ("শহরের" -> "shohorer"), whose deletion is
too irregular for a rule.

`phonetic_key` folds a Latin string further (case, accents, aspirates, long vowels, doubled
letters, v/b, z/j, ph/f...) so that spellings of one name in different romanizations, or a
romanized file name and a Bengali-script file name, compare as equal or near-equal strings.
"""

from __future__ import annotations

import re
import unicodedata

from anyascii import anyascii
from indic_transliteration import sanscript

from tasks.lyrics.language import script_of_text

# Bengali letters with a nukta are composition exclusions: NFC leaves them as base + U+09BC,
# which sanscript does not know. Rebuild the precomposed letters it does know.
_BENGALI_NUKTA = {
    "\u09af\u09bc": "\u09df",  # য় (ya)
    "\u09a1\u09bc": "\u09dc",  # ড় (rra)
    "\u09a2\u09bc": "\u09dd",  # ঢ় (rha)
}

_INDIC_BLOCKS = {
    # script: (consonants, vowel signs, independent vowels, modifiers, virama, nukta, sanscript id)
    "Beng": (
        {chr(c) for c in range(0x0995, 0x09BA)} | {"\u09dc", "\u09dd", "\u09df"},
        {chr(c) for c in range(0x09BE, 0x09CD)} | {"\u09d7", "\u09e2", "\u09e3"},
        {chr(c) for c in range(0x0985, 0x0995)} | {"\u09e0", "\u09e1"},
        {"\u0981", "\u0982", "\u0983"},
        "\u09cd",
        "\u09bc",
        sanscript.BENGALI,
    ),
    "Deva": (
        {chr(c) for c in range(0x0915, 0x093A)} | {chr(c) for c in range(0x0958, 0x0960)},
        {chr(c) for c in range(0x093E, 0x094D)} | {"\u0962", "\u0963", "\u094e", "\u094f"},
        {chr(c) for c in range(0x0904, 0x0915)} | {"\u0960", "\u0961"},
        {"\u0901", "\u0902", "\u0903"},
        "\u094d",
        "\u093c",
        sanscript.DEVANAGARI,
    ),
}


class _Syllable:
    """One akshara: a consonant cluster (or an independent vowel) with its vowel and marks."""

    __slots__ = ("chars", "consonants", "has_matra", "has_modifier", "has_virama", "is_vowel")

    def __init__(self) -> None:
        self.chars: list[str] = []
        self.consonants = 0
        self.has_matra = False
        self.has_virama = False
        self.has_modifier = False
        self.is_vowel = False

    @property
    def inherent(self) -> bool:
        """Carries the unwritten inherent vowel (a consonant with no vowel sign, no virama)."""
        return self.consonants > 0 and not self.has_matra and not self.has_virama


def _syllables(word: str, script: str) -> list[_Syllable]:
    consonants, matras, vowels, modifiers, virama, nukta, _ = _INDIC_BLOCKS[script]
    syllables: list[_Syllable] = []
    for char in word:
        current = syllables[-1] if syllables else None
        if char in consonants:
            joins_cluster = current is not None and current.has_virama and not current.has_matra
            if joins_cluster:
                current.has_virama = False
                current.consonants += 1
                current.chars.append(char)
                continue
            current = _Syllable()
            current.consonants = 1
            current.chars.append(char)
            syllables.append(current)
        elif current is not None and char == virama:
            current.has_virama = True
            current.chars.append(char)
        elif current is not None and char in matras:
            current.has_matra = True
            current.chars.append(char)
        elif current is not None and (char in modifiers or char == nukta):
            current.has_modifier = current.has_modifier or char in modifiers
            current.chars.append(char)
        else:
            current = _Syllable()
            current.is_vowel = char in vowels
            current.chars.append(char)
            syllables.append(current)
    return syllables


def _delete_schwas(word: str, script: str) -> str:
    """Insert viramas where the inherent vowel is silent (rules in the module docstring)."""
    syllables = _syllables(word, script)
    if len(syllables) < 2:
        return word
    virama = _INDIC_BLOCKS[script][4]
    silent = [False] * len(syllables)

    def voiced(i: int) -> bool:
        s = syllables[i]
        return (s.is_vowel or s.has_matra or s.inherent) and not silent[i]

    last = syllables[-1]
    if last.inherent and last.consonants == 1 and not last.has_modifier:
        silent[-1] = True
    if script == "Deva":
        for i in range(len(syllables) - 2, 0, -1):
            s, after = syllables[i], syllables[i + 1]
            if (
                s.inherent
                and s.consonants == 1
                and not s.has_modifier
                and voiced(i - 1)
                and not syllables[i - 1].has_modifier  # a nasal closes it: zindagi
                and after.consonants == 1
                and voiced(i + 1)
            ):
                silent[i] = True
    return "".join(
        "".join(s.chars) + (virama if silent[i] else "") for i, s in enumerate(syllables)
    )


# IAST -> everyday Latin spelling. Order matters: longer sequences first.
_IAST_FOLDS = [
    ("kṣ", "ksh"),
    ("jñ", "gy"),
    ("ṛ", "ri"),
    ("ṝ", "ri"),
    ("ḷ", "li"),
    ("ś", "sh"),
    ("ṣ", "sh"),
    ("ñ", "n"),
    ("ṅg", "ng"),
    ("ṅ", "ng"),
    ("ṇ", "n"),
    ("ṭ", "t"),
    ("ḍ", "d"),
    ("ḥ", "h"),
    ("ā", "a"),
    ("ī", "i"),
    ("ū", "u"),
    ("ē", "e"),
    ("ō", "o"),
    ("ẏ", "y"),
    ("m̐", "n"),
    ("~", "n"),
    ("|", "."),
]
_IAST_C = re.compile(r"ch|c")  # IAST c = च/চ (ch), ch = छ/ছ (chh)


def _fold_iast(text: str, script: str) -> str:
    text = _IAST_C.sub(lambda m: "chh" if m.group(0) == "ch" else "ch", text)
    if script == "Beng":
        # Bengali speaks (and Banglish writes) the short/inherent vowel as "o": বসন্ত = bosonto.
        text = text.replace("a", "o")
    # Anusvara: Bengali ং is "ng" (বাংলা = bangla); Hindi nasalises (ज़िंदगी = zindagi).
    text = text.replace("ṃ", "ng" if script == "Beng" else "n")
    for source, target in _IAST_FOLDS:
        text = text.replace(source, target)
    if script == "Beng":
        # Bengali has one letter ব for b and v (sanscript writes v); ড়/ঢ় are r sounds.
        text = text.replace("v", "b")
    # Remaining combining marks (e.g. the dot of r̤ for ড়, stray nuktas) carry no sound here.
    text = "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))
    text = "".join(c for c in text if not ("\u0980" <= c <= "\u09ff" or "\u0900" <= c <= "\u097f"))
    return unicodedata.normalize("NFC", text)


_BENGALI_JA = re.compile("(?<!\u09cd)\u09af(?!\u09bc)")  # য not after a virama, no nukta


def _romanize_indic_word(word: str, script: str) -> str:
    if script == "Beng":
        # Bengali য is spoken "j" (যুদ্ধ = juddho, যদি = jodi) except as the ্য sign after a
        # consonant; sanscript reads it as Sanskrit "ya". Spell it as জ for the transliteration.
        word = _BENGALI_JA.sub("\u099c", word)
        for decomposed, composed in _BENGALI_NUKTA.items():
            word = word.replace(decomposed, composed)
    source_scheme = _INDIC_BLOCKS[script][6]
    iast = sanscript.transliterate(_delete_schwas(word, script), source_scheme, sanscript.IAST)
    return _fold_iast(iast, script)


_INDIC_RUN = re.compile(r"[\u0980-\u09ff\u200c\u200d]+|[\u0900-\u097f\u200c\u200d]+")


def romanize(text: str) -> str:
    """A readable Latin form of `text` (any script); Latin text comes back unchanged.

    Bengali and Devanagari runs go through indic-transliteration with schwa deletion and
    diacritic folding, every other non-Latin character through anyascii (see module docstring).
    Lower-cases only what it transliterates; keeps spaces and punctuation.
    """
    if not text:
        return text

    def indic(match: re.Match[str]) -> str:
        run = match.group(0).replace("\u200c", "").replace("\u200d", "")
        script = "Beng" if "\u0980" <= run[0] <= "\u09ff" else "Deva"
        if run in {"।", "॥"}:
            return "."
        return _romanize_indic_word(run, script)

    pieces = _INDIC_RUN.sub(indic, text)
    if pieces.isascii():
        return pieces
    out = []
    for char in pieces:
        if char.isascii() or script_of_text(char) == "Latn":
            out.append(char)
        else:
            out.append(anyascii(char))
    return "".join(out)


_KEY_FOLDS = [
    # consonants that romanizations write differently
    ("ngk", "nk"),  # ঙ্ক: "Dipankar", not "Dipangkar"
    ("ngg", "ng"),
    ("chh", "ch"),
    ("ph", "f"),
    ("sh", "s"),
    ("bh", "b"),
    ("kh", "k"),
    ("gh", "g"),
    ("th", "t"),
    ("dh", "d"),
    ("jh", "j"),
    ("ck", "k"),
    ("q", "k"),
    ("v", "b"),
    ("z", "j"),
    # vowels: long/short, and Bengali's "o" that Sanskrit-style names write "a"
    ("ee", "i"),
    ("oo", "u"),
    ("ou", "o"),
    ("au", "o"),
    ("o", "a"),
]
_REPEATS = re.compile(r"(.)\1+")
_NON_KEY = re.compile(r"[^a-z0-9]+")


def phonetic_key(text: str) -> str:
    """A folded Latin form for fuzzy matching names written in different scripts or spellings.

    Romanizes `text` first, then lower-cases, strips accents and punctuation, and folds
    spelling variants that romanizations disagree on (aspirates, sh/s, v/b, z/j, doubled
    letters, ee/i, oo/u, and o/a: Banglish "Bosonto" and the name-style "Basanta" are one
    word). Words stay separated by single spaces. "Bhalobashi" and "ভালোবাসি" both give
    "balabasi".
    """
    latin = anyascii(romanize(unicodedata.normalize("NFC", text))).lower()
    words = []
    for word in _NON_KEY.split(latin):
        if not word:
            continue
        for source, target in _KEY_FOLDS:
            word = word.replace(source, target)
        words.append(_REPEATS.sub(r"\1", word))
    return " ".join(words)


# ---------------------------------------------------------------------------------------------
# Romanized -> native script (an input view for the multilingual encoders)
# ---------------------------------------------------------------------------------------------

# Everyday Banglish/Hinglish spelling -> ITRANS, which sanscript reads. "aa", "ee", "oo" are the
# long vowels. Banglish writes the inherent vowel "o", so its "a" is mostly আ (long); Hindi's
# word-final "a" is mostly आ (karta = करता), inside a word the inherent vowel.
_ITRANS_LONG = [("aa", "A"), ("ee", "I"), ("oo", "U")]
_HINDI_FINAL_A = re.compile(r"a\b")
_FINAL_VIRAMA = re.compile("[\u09cd\u094d](?=[\\s,.!?;:'\"]|$)")
NATIVE_SCRIPT = {"bn": "Beng", "hi": "Deva"}


def to_native_script(text: str, script: str) -> str:
    """A rough Bengali ("Beng") or Devanagari ("Deva") spelling of romanized `text`.

    Not a faithful transliteration (informal romanization is ambiguous: "sh" is শ or স, "o" is
    the inherent vowel or ো); it only has to put the words in the script the encoder learned
    them in. Word-final viramas are dropped, as both scripts write them.
    """
    scheme = {"Beng": sanscript.BENGALI, "Deva": sanscript.DEVANAGARI}[script]
    latin = unicodedata.normalize("NFC", text).lower()
    for source, target in _ITRANS_LONG:
        latin = latin.replace(source, target)
    latin = latin.replace("a", "A") if script == "Beng" else _HINDI_FINAL_A.sub("A", latin)
    return _FINAL_VIRAMA.sub("", sanscript.transliterate(latin, sanscript.ITRANS, scheme))


def native_script_view(text: str, line_languages: list[str] | None) -> str:
    """`text` with each Latin-script line of Bangla or Hindi (per `line_languages`, one per
    line) written in its native script; other lines as they are. `text` itself when no line
    changes (or the languages do not match the lines)."""
    lines = text.split("\n")
    if not line_languages or len(line_languages) != len(lines):
        return text
    out = []
    for line, language in zip(lines, line_languages, strict=True):
        native = NATIVE_SCRIPT.get(language or "")
        if native and line.strip() and script_of_text(line) == "Latn":
            out.append(to_native_script(line, native))
        else:
            out.append(line)
    return "\n".join(out)
