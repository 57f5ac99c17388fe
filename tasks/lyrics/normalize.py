"""Clean-up of lyrics lines: Unicode NFC, whitespace and punctuation, section tags.

What changes, and why:

- Unicode NFC, so the same word typed on two keyboards compares equal (Bengali and Devanagari
  vowel signs, accented Latin letters).
- Invisible characters that only break matching (zero-width space, BOM, soft hyphen, bidi
  marks, control characters) are removed. ZWJ/ZWNJ are kept: they change how Bengali,
  Devanagari and Persian words are written.
- Typographic quotes, dashes and ellipses become their ASCII forms, runs of the same
  punctuation collapse ("!!!" -> "!", "....." -> "..."), spaces before , . ! ? ; : go,
  runs of whitespace become one space.
- Section tags are not lyrics: a line that is only a square-bracket tag ("[Chorus]",
  "[Verse 2: Artist]", "[কোরাস]") or a round/curly-bracket or "Name:" tag with a section word
  ("(Chorus)", "Chorus:", "{Repeat x2}") is dropped, a leading tag before text is cut
  ("[Hook] la la" -> "la la"), and repeat marks at the end ("(x2)", "x3") are cut. Round
  brackets around anything else are ad-libs and are kept ("(ooh baby)").
- Empty lines are dropped (stanza breaks carry no meaning for the embeddings or languages).
"""

from __future__ import annotations

import re
import unicodedata

_INVISIBLE = dict.fromkeys(
    [0x200B, 0xFEFF, 0x00AD, 0x200E, 0x200F, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2060]
)
_TYPOGRAPHY = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u00ab": '"',
        "\u00bb": '"',
        "\u2013": "-",
        "\u2014": "-",
        "\u2015": "-",
        "\u2212": "-",
        "\u2026": "...",
    }
)
_SECTION_WORDS = (
    r"chorus|pre-?chorus|post-?chorus|verse|bridge|intro|outro|hook|refrain|interlude|"
    r"instrumental|break|breakdown|solo|repeat|coda|drop|coro|estribillo|verso|puente|"
    r"antara|mukhda|sthayi|x\s*\d+|\d+\s*x"
)
_BRACKET_TAG = re.compile(r"^\[[^\[\]]{1,60}\]$")
_NAMED_TAG = re.compile(
    rf"^(?:[({{]\s*(?:{_SECTION_WORDS})\b[^)}}]{{0,40}}[)}}]|(?:{_SECTION_WORDS})\b[^:]{{0,30}}:)$",
    re.IGNORECASE,
)
_LEADING_TAG = re.compile(
    rf"^(?:\[[^\[\]]{{1,60}}\]|[({{]\s*(?:{_SECTION_WORDS})\b[^)}}]{{0,40}}[)}}])\s*",
    re.IGNORECASE,
)
_REPEAT_MARK = re.compile(
    r"(?:^|\s+)(?:[\[(]\s*)?(?:x\s*\d+|\d+\s*x)(?:\s*[\])])?\s*$", re.IGNORECASE
)
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.!?;:\u0964])")
_REPEATED_PUNCT = re.compile(r"([!?,;:\u0964])\1+")
_LONG_DOTS = re.compile(r"\.{4,}")
_WHITESPACE = re.compile(r"\s+")


def is_section_tag(line: str) -> bool:
    """True when a (stripped) line is only a section marker such as "[Chorus]" or "Verse 2:"."""
    line = line.strip()
    return bool(_BRACKET_TAG.match(line) or _NAMED_TAG.match(line))


def clean_line(line: str) -> str:
    """One line in NFC with invisible characters, typography and spacing cleaned up.

    Section tags are not removed here (see `normalize_lines`).
    """
    line = unicodedata.normalize("NFC", line).translate(_INVISIBLE).translate(_TYPOGRAPHY)
    line = "".join(
        " " if unicodedata.category(c) in {"Cc", "Zl", "Zp"} or c in "\t\u00a0" else c for c in line
    )
    line = _WHITESPACE.sub(" ", line).strip()
    line = _LONG_DOTS.sub("...", line)
    line = _REPEATED_PUNCT.sub(r"\1", line)
    return _SPACE_BEFORE_PUNCT.sub(r"\1", line)


def normalize_lines(lines: list[str]) -> tuple[list[str], list[int]]:
    """Clean `lines`, drop section tags and empty lines.

    Returns the kept lines and, for each, its index in `lines` (so per-line data such as LRC
    timings can follow the lines that survive).
    """
    kept, positions = [], []
    for position, raw in enumerate(lines):
        line = clean_line(raw)
        if not line or is_section_tag(line):
            continue
        line = _LEADING_TAG.sub("", line)
        line = _REPEAT_MARK.sub("", line).strip()
        if not line or not any(c.isalnum() for c in line):
            continue
        kept.append(line)
        positions.append(position)
    return kept, positions
