"""Theme words: one theme per demo genre, and Bangla genitives in both scripts."""

from __future__ import annotations

import pytest

from tasks.demo import GENRES
from tasks.demo.vocabulary import THEMES, Concept, bangla_genitive


def test_every_demo_genre_has_a_theme_of_distinct_words() -> None:
    assert sorted(THEMES) == list(GENRES)
    for concepts in THEMES.values():
        assert len({concept.en for concept in concepts}) == len(concepts) >= 4


@pytest.mark.parametrize(
    ("bengali", "romanized", "genitive"),
    [
        ("নদী", "nodi", ("নদীর", "nodir")),  # after a vowel sign: -র
        ("ছাই", "chhai", ("ছাইয়ের", "chhaiyer")),  # after an independent vowel: -য়ের
        ("মন", "mon", ("মনের", "moner")),  # after a consonant: -ের
        ("যুদ্ধ", "juddho", ("যুদ্ধের", "juddher")),  # romanized final o is dropped
    ],
)
def test_bangla_genitive_in_both_scripts(
    bengali: str, romanized: str, genitive: tuple[str, str]
) -> None:
    concept = Concept("x", "el x", "x", "x", bengali, romanized)
    assert bangla_genitive(concept) == genitive
