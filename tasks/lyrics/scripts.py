"""Scripts of lyrics text and its words.

Script comes from Unicode ranges (ISO 15924 codes: Latn, Beng, Deva, Arab, Cyrl, Hani, ...);
words keep the combining marks (Indic vowel signs and viramas, Arabic harakat) that `\\w` misses.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

_SCRIPT_RANGES: tuple[tuple[int, int, str], ...] = (
    (0x0041, 0x005A, "Latn"),
    (0x0061, 0x007A, "Latn"),
    (0x00C0, 0x024F, "Latn"),
    (0x1E00, 0x1EFF, "Latn"),
    (0x0370, 0x03FF, "Grek"),
    (0x0400, 0x052F, "Cyrl"),
    (0x0530, 0x058F, "Armn"),
    (0x0590, 0x05FF, "Hebr"),
    (0x0600, 0x06FF, "Arab"),
    (0x0750, 0x077F, "Arab"),
    (0x08A0, 0x08FF, "Arab"),
    (0xFB50, 0xFDFF, "Arab"),
    (0xFE70, 0xFEFF, "Arab"),
    (0x0900, 0x097F, "Deva"),
    (0xA8E0, 0xA8FF, "Deva"),
    (0x0980, 0x09FF, "Beng"),
    (0x0A00, 0x0A7F, "Guru"),
    (0x0A80, 0x0AFF, "Gujr"),
    (0x0B00, 0x0B7F, "Orya"),
    (0x0B80, 0x0BFF, "Taml"),
    (0x0C00, 0x0C7F, "Telu"),
    (0x0C80, 0x0CFF, "Knda"),
    (0x0D00, 0x0D7F, "Mlym"),
    (0x0D80, 0x0DFF, "Sinh"),
    (0x0E00, 0x0E7F, "Thai"),
    (0x10A0, 0x10FF, "Geor"),
    (0x1100, 0x11FF, "Hang"),
    (0xAC00, 0xD7AF, "Hang"),
    (0x3040, 0x309F, "Hira"),
    (0x30A0, 0x30FF, "Kana"),
    (0x4E00, 0x9FFF, "Hani"),
    (0x3400, 0x4DBF, "Hani"),
    (0x1200, 0x139F, "Ethi"),
)


def script_of_char(char: str) -> str | None:
    """ISO 15924 code of one character's script, None for digits, punctuation and marks."""
    code = ord(char)
    for start, end, script in _SCRIPT_RANGES:
        if start <= code <= end:
            if script == "Latn" and not char.isalpha():
                return None  # × ÷ sit in the Latin-1 range
            return script
    return None


def script_counts(text: str) -> Counter[str]:
    """Letters (and Indic vowel signs) per script in `text`."""
    counts: Counter[str] = Counter()
    for char in text:
        script = script_of_char(char)
        if script is not None and unicodedata.category(char)[0] in "LM":
            counts[script] += 1
    return counts


def script_of_text(text: str) -> str | None:
    """The script with the most letters in `text` (ties: first seen), None without letters."""
    counts = script_counts(text)
    return counts.most_common(1)[0][0] if counts else None


# Word characters: \w misses combining marks, which Indic vowel signs and viramas and Arabic
# harakat are, so those blocks are added; apostrophes and ZWJ/ZWNJ stay inside words.
_WORD = re.compile(r"[\w\u0300-\u036f\u064b-\u065f\u0670\u0900-\u0dff\u200c\u200d'’]+")


def words_of(text: str) -> list[str]:
    """Words of `text`, keeping Indic vowel signs and viramas inside their word."""
    words = []
    for match in _WORD.finditer(text):
        word = match.group(0).strip("'’_")
        if word and any(c.isalpha() or unicodedata.category(c)[0] == "M" for c in word):
            words.append(word)
    return words
