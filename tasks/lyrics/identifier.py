"""Naming the language of text with py3langid's bundled model, among the languages its script
allows.

py3langid (a maintained fork of langid.py, BSD, pinned by hash in requirements-pretrained.txt)
ships a naive-Bayes byte n-gram model of about 140 languages inside its wheel: offline,
deterministic, about 0.1 ms per lyric line. It is asked only among the languages of the text's
script (`SCRIPT_CANDIDATES`), because a short line scored against every language lands on
look-alikes nobody sings in (romanized Bangla comes out as Zulu or Basque, Portuguese as
Galician). Probabilities are the model's own normalised ones (a softmax tempered by the text
length), which is the same as a softmax over the candidates alone.

Dialect labels fold into their language (`ary` Moroccan and `arz` Egyptian Arabic -> `ar`,
`yue` Cantonese and `wuu` Wu, both written in Chinese characters -> `zh`).
"""

from __future__ import annotations

import copy
import threading

from py3langid.langid import MODEL_FILE, LanguageIdentifier

LATIN_CANDIDATES: tuple[str, ...] = (
    *("en", "es", "fr", "de", "pt", "it", "nl", "sv", "da", "no", "fi", "is", "pl", "cs"),
    *("sk", "sl", "hr", "ro", "hu", "tr", "az", "id", "ms", "tl", "ca", "eu", "ga", "cy"),
    *("et", "lv", "lt", "sq", "vi", "sw", "yo"),
)
"""Latin-script languages the identifier may name: languages with a sizeable body of lyrics.
Left out on purpose: close neighbours of these that the model confuses with them on short
lines (Galician with Portuguese and Spanish, Luxembourgish with German, Afrikaans with Dutch,
Haitian Creole with French), and languages whose n-grams catch romanized South Asian text
(Zulu, Somali, Luganda...)."""

SCRIPT_CANDIDATES: dict[str, tuple[str, ...]] = {
    "Latn": LATIN_CANDIDATES,
    "Arab": ("ar", "ary", "arz", "fa", "ur"),
    "Cyrl": ("ru", "uk", "bg", "sr", "mk", "be", "kk", "ky", "mn", "tg", "tt", "ba"),
    "Hani": ("zh", "yue", "wuu", "ja"),
}
"""Languages the identifier chooses among, per ISO 15924 script of the text."""

_FOLDS = {"ary": "ar", "arz": "ar", "yue": "zh", "wuu": "zh"}

_lock = threading.Lock()
_identifiers: dict[tuple[str, ...], LanguageIdentifier] = {}


def _identifier(candidates: tuple[str, ...]) -> LanguageIdentifier:
    """One identifier per candidate set, built once from the bundled model (about 1 s to
    decompress). `set_languages` changes an identifier in place, so each set gets its own
    shallow copy; classifying only reads, so the copies are safe to share between threads."""
    with _lock:
        if candidates not in _identifiers:
            full = _identifiers.get(())
            if full is None:
                full = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
                _identifiers[()] = full
            restricted = copy.copy(full)
            restricted.set_languages(list(candidates))
            _identifiers[candidates] = restricted
        return _identifiers[candidates]


def rank_languages(text: str, candidates: tuple[str, ...]) -> dict[str, float]:
    """Probability of each candidate language for `text`, dialects folded, best first.

    Empty when the text holds no feature the model knows (it would answer a uniform guess).
    """
    ranking = _identifier(candidates).rank(text)
    if not ranking or ranking[0][1] - ranking[-1][1] < 1e-6:
        return {}
    folded: dict[str, float] = {}
    for language, probability in ranking:
        language = _FOLDS.get(language, language)
        folded[language] = folded.get(language, 0.0) + probability
    return dict(sorted(folded.items(), key=lambda kv: -kv[1]))


def best_language(text: str, script: str) -> tuple[str | None, float]:
    """The most likely language of `text` among those of `script`, and its probability;
    (None, 0.0) for a script the identifier is not asked about or text without features."""
    candidates = SCRIPT_CANDIDATES.get(script)
    ranking = rank_languages(text, candidates) if candidates else {}
    if not ranking:
        return None, 0.0
    language = next(iter(ranking))
    return language, ranking[language]
