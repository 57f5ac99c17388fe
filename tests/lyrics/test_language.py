"""Languages beyond the demo's five: py3langid names them, our detector keeps the romanized
ones, and the track settles what a short line cannot."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tasks.lyrics.identifier import LATIN_CANDIDATES, rank_languages
from tasks.lyrics.language import identify_line, summarize_track

FRENCH = [
    "je t'aime mon amour",
    "la nuit tombe sur la ville",
    "tu es toujours dans mon coeur",
    "je ne veux pas te perdre",
    "la vie en rose",
    "il pleut sur mes souvenirs",
]
GERMAN = [
    "ich liebe dich so sehr",
    "die Nacht ist kalt und lang",
    "du bist mein Herz",
    "wir tanzen bis zum Morgen",
    "wo bist du jetzt",
]
PORTUGUESE = [
    "eu te amo meu amor",
    "a noite cai sobre a cidade",
    "você está no meu coração",
    "vamos dançar até o amanhecer",
    "saudade de você",
    "meu coração chora",
]
ITALIAN = [
    "ti amo amore mio",
    "la notte scende sulla città",
    "sei sempre nel mio cuore",
    "balliamo fino al mattino",
    "torna da me",
    "piove sui miei ricordi",
]


@pytest.mark.parametrize(
    ("line", "language"),
    [
        ("tu es toujours dans mon coeur", "fr"),
        ("je t'aime mon amour", "fr"),  # "je" and "mon" are Banglish words too
        ("ich will dich nicht verlieren", "de"),
        ("für immer und ewig", "de"),
        ("você está no meu coração", "pt"),
        ("vamos dançar até o amanhecer", "pt"),
        ("la notte scende sulla città", "it"),
        ("sei sempre nel mio cuore", "it"),  # "sei" is Bangla too
        # Arabic script: Arabic, Persian (no Persian-only letter in the first), Urdu
        ("قلبي معك كل يوم", "ar"),
        ("من تو را دوست دارم", "fa"),
        ("دلم برای تو تنگ شده", "fa"),
        ("میں تم سے پیار کرتا ہوں", "ur"),
        # scripts of one language, and scripts the identifier is asked about
        ("நான் உன்னை காதலிக்கிறேன்", "ta"),
        ("ты в моём сердце навсегда", "ru"),
        ("ніч темна і холодна", "uk"),
        ("夜晚的城市很安静", "zh"),
        ("君を愛してる", "ja"),
        ("夜の街は静かだ", "ja"),
    ],
)
def test_languages_beyond_the_demo_are_named(line: str, language: str) -> None:
    assert identify_line(line).language == language


@pytest.mark.parametrize(
    ("lines", "language"),
    [(FRENCH, "fr"), (GERMAN, "de"), (PORTUGUESE, "pt"), (ITALIAN, "it")],
)
def test_every_line_of_a_song_gets_the_song_language(lines: list[str], language: str) -> None:
    summary = summarize_track(lines)
    assert summary.language == language
    assert summary.line_languages == [language] * len(lines)
    assert summary.script == "Latn"
    assert not summary.romanized
    assert not summary.code_mixed
    assert summary.language_mix == {language: 1.0}


def test_short_line_alone_is_not_named_but_takes_its_song_language() -> None:
    # alone, "la vie en rose" reads as Spanish to our lexicons and py3langid is unsure
    assert identify_line("la vie en rose").language != "fr"
    assert summarize_track(FRENCH).line_languages[FRENCH.index("la vie en rose")] == "fr"


def test_french_words_are_not_counted_as_bangla() -> None:
    analysis = identify_line("je t'aime mon amour")
    assert analysis.word_languages == ("fr", "fr", "fr", "fr")
    assert not analysis.mixed


def test_code_mixed_banglish_track_stays_bangla() -> None:
    summary = summarize_track(
        [
            "ami tomake love kori baby",
            "tumi amar heart ta niye gele",
            "every night ami tomar kotha bhabi",
            "I miss you so much tonight",
            "keno eto dure thako tumi",
            "amar mon shudhu tomake khoje",
        ]
    )
    assert summary.language == "bn"
    assert summary.romanized
    assert summary.code_mixed
    assert set(summary.language_mix) == {"bn", "en"}


def test_hinglish_track_stays_hindi() -> None:
    summary = summarize_track(
        [
            "main tumse pyaar karta hoon",
            "tere bina jeena nahi",
            "baby tu meri jaan hai",
            "chal saath chalein hum kahin",
            "teri aankhon mein sapne hain",
        ]
    )
    assert (summary.language, summary.romanized) == ("hi", True)
    assert set(summary.line_languages) == {"hi"}


def test_arabizi_line_stays_arabic() -> None:
    assert identify_line("wallah ma3ak ya hayati").language == "ar"


def test_short_russian_line_takes_its_song_language() -> None:
    lines = ["я тебя люблю", "ночь темна и холодна", "ты в моём сердце навсегда"]
    assert summarize_track(lines).line_languages == ["ru", "ru", "ru"]


def test_identifier_gives_the_same_answers_from_many_threads() -> None:
    # Prefect runs tasks in threads: the shared identifiers must only be read
    texts = FRENCH + GERMAN + PORTUGUESE + ITALIAN
    alone = [rank_languages(text, LATIN_CANDIDATES) for text in texts]
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(lambda t: rank_languages(t, LATIN_CANDIDATES), texts * 4))
    assert together == alone * 4
