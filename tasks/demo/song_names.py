"""Song titles and artist names of the demo data set, in the style of each lyric language.

Titles draw on the genre's theme words (`tasks.demo.vocabulary`); artists come from name pools
per language. Bangla names come in both scripts, so a lyrics file may be named in Bengali script
while metadata.csv holds the romanized name.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tasks.demo.errors import DemoDataError
from tasks.demo.seeding import pick
from tasks.demo.vocabulary import LANGUAGES, bangla_genitive, theme_concepts, two_concepts


@dataclass(frozen=True)
class SongName:
    """A title or an artist name: `latin` goes to metadata.csv, `bengali` (Bangla only) may name
    the lyrics file in Bengali script."""

    latin: str
    bengali: str | None = None


# ----------------------------------------------------------------------------------------------
# Titles and artists.

_ENGLISH_TITLE_ADJECTIVES = (
    "Golden", "Broken", "Electric", "Silent", "Burning", "Wild", "Endless", "Lonely", "Crimson",
    "Velvet", "Hollow", "Distant", "Restless", "Silver", "Fading", "Northern", "Midnight",
    "Secret", "Heavy", "Paper",
)  # fmt: skip
_ENGLISH_TITLE_TAILS = ("Song", "Blues", "Dance", "Road", "Dreams", "Lullaby", "Anthem", "Echoes")
_SPANISH_TITLE_ADJECTIVES = (
    "dorado", "eterno", "perdido", "salvaje", "oscuro", "infinito", "callado", "nuevo",
    "lejano", "ardiente", "sagrado", "rojo",
)  # fmt: skip
_HINDI_TITLE_WORDS = (
    "Dil", "Raat", "Sapna", "Safar", "Baarish", "Chand", "Dhadkan", "Rang", "Ishq", "Zindagi",
    "Awaara", "Roshni", "Tanha", "Khwaab", "Junoon", "Aasmaan", "Dariya", "Mitti", "Hawa", "Dhoop",
)  # fmt: skip
_HINDI_TITLE_LINKS = ("{x} {y}", "{x} Ki {y}", "{x} Se {y}", "Mera {x}", "{x} Re {x}")
_ARABIC_TITLE_WORDS = (
    "Layali", "Qamar", "Habibi", "Nour", "Sahra", "Bahr", "Hob", "Amal", "Leil", "Shams",
    "Watan", "Ward", "Samaa", "Rouh", "Nagham", "Helm", "Ghorba", "Sabah", "Qalb", "Matar",
)  # fmt: skip
_ARABIC_TITLE_LINKS = ("{x} {y}", "{x} el {y}", "Ya {x}", "{x} wa {y}")
_BANGLA_TITLE_ADJECTIVES = (
    ("আমার", "Amar"), ("তোমার", "Tomar"), ("সোনার", "Sonar"), ("রঙিন", "Rongin"),
    ("একলা", "Ekla"), ("নীল", "Nil"), ("পাগল", "Pagol"), ("অচিন", "Achin"), ("দূরের", "Durer"),
    ("মেঘলা", "Meghla"), ("রাঙা", "Ranga"), ("উদাস", "Udas"),
)  # fmt: skip

_ENGLISH_FIRST = (
    "Jack", "Emma", "Liam", "Ava", "Noah", "Mia", "Ethan", "Zoe", "Owen", "Lily", "Caleb", "Ruby",
    "Miles", "Nora", "Felix", "Hazel",
)  # fmt: skip
_ENGLISH_LAST = (
    "Carter", "Hayes", "Brooks", "Reed", "Walsh", "Quinn", "Monroe", "Sutton", "Blake", "Harper",
    "Ellis", "Foster", "Griffin", "Lane", "Porter", "Sloane",
)  # fmt: skip
_ENGLISH_BAND_NOUNS = ("Wolves", "Ravens", "Engines", "Lanterns", "Tides", "Saints", "Comets")
_SPANISH_FIRST = (
    "Lucía", "Mateo", "Sofía", "Diego", "Valentina", "Javier", "Camila", "Andrés", "Isabel",
    "Pablo", "Elena", "Rafael",
)  # fmt: skip
_SPANISH_LAST = (
    "García", "Morales", "Rivera", "Castillo", "Navarro", "Herrera", "Vega", "Romero", "Ortega",
    "Fuentes", "Molina", "Delgado",
)  # fmt: skip
_HINDI_FIRST = (
    "Arjun", "Priya", "Rohan", "Ananya", "Vikram", "Kavya", "Aditya", "Neha", "Kabir", "Isha",
    "Rahul", "Meera",
)  # fmt: skip
_HINDI_LAST = (
    "Sharma", "Mehta", "Kapoor", "Verma", "Malhotra", "Joshi", "Iyer", "Chauhan", "Saxena",
    "Bhatt", "Rao", "Kulkarni",
)  # fmt: skip
_ARABIC_FIRST = (
    "Karim", "Layla", "Omar", "Nadia", "Youssef", "Rania", "Tarek", "Salma", "Hassan", "Mona",
    "Ziad", "Hala",
)  # fmt: skip
_ARABIC_LAST = (
    "Haddad", "Mansour", "Khalil", "Nasser", "Saleh", "Farouk", "Aziz", "Hamdan", "Rashed",
    "Sabbagh", "Jaber", "Touma",
)  # fmt: skip
_BANGLA_FIRST = (
    ("রহিম", "Rahim"), ("সুমন", "Suman"), ("অর্পিতা", "Arpita"), ("তানভীর", "Tanvir"),
    ("নুসরাত", "Nusrat"), ("শুভ", "Shubho"), ("মিতালী", "Mitali"), ("রাজীব", "Rajib"),
    ("ফারহানা", "Farhana"), ("অনুপম", "Anupam"), ("সাবিনা", "Sabina"), ("দীপঙ্কর", "Dipankar"),
    ("পার্থ", "Partho"), ("রুমানা", "Rumana"), ("কাজল", "Kajol"), ("মাহমুদ", "Mahmud"),
)  # fmt: skip
_BANGLA_LAST = (
    ("দাস", "Das"), ("উদ্দিন", "Uddin"), ("সেন", "Sen"), ("হক", "Hok"), ("বসু", "Basu"),
    ("রায়", "Ray"), ("মিত্র", "Mitro"), ("আহমেদ", "Ahmed"), ("সরকার", "Sorkar"), ("বাউল", "Baul"),
    ("ইসলাম", "Islam"), ("ঘোষ", "Ghosh"), ("খান", "Khan"), ("পাল", "Pal"),
)  # fmt: skip

# Orphan lyrics (songs that are not in the collection): artists from outside every pool above,
# titles in a shape the title generator never makes, so no track can share them.
_ORPHAN_SONGS = (
    ("en", SongName("Marlowe Finch"), SongName("Paper Lanterns Over The Harbour")),
    ("en", SongName("Odette Vance"), SongName("Seven Trains To Nowhere")),
    (
        "bn",
        SongName("Nilanjon Mojumdar", "নীলাঞ্জন মজুমদার"),
        SongName("Brishtite Bheja Chithi", "বৃষ্টিতে ভেজা চিঠি"),
    ),
    (
        "bn",
        SongName("Shraboni Bhowal", "শ্রাবণী ভাওয়াল"),
        SongName("Kuasha Ghera Bhor Bela", "কুয়াশা ঘেরা ভোর বেলা"),
    ),
)


def _spanish_adjective(adjective: str, noun_with_article: str) -> str:
    article = noun_with_article.split(" ", 1)[0]
    feminine = article in ("la", "las")
    plural = article in ("los", "las")
    if feminine and adjective.endswith("o"):
        adjective = adjective[:-1] + "a"
    return adjective + ("s" if plural else "")


def compose_title(genre: str, language: str, rng: np.random.Generator) -> SongName:
    """A song title in the style of the language; Bangla titles come in both scripts.

    Titles of Hindi and Arabic songs are romanized (as in most catalogues); the lyrics themselves
    are in Devanagari or Arabic script.

    Raises:
        DemoDataError: on a language outside `LANGUAGES`.
    """
    if language == "bn":
        first, second = two_concepts(genre, rng)
        genitive_bn, genitive_latn = bangla_genitive(first)
        shape = rng.random()
        if shape < 0.45:
            adjective = pick(rng, _BANGLA_TITLE_ADJECTIVES)
            return SongName(f"{adjective[1]} {first.bn_latn.title()}", f"{adjective[0]} {first.bn}")
        if shape < 0.8:
            return SongName(
                f"{genitive_latn.title()} {second.bn_latn.title()}", f"{genitive_bn} {second.bn}"
            )
        adjective = pick(rng, _BANGLA_TITLE_ADJECTIVES)
        return SongName(
            f"{adjective[1]} {genitive_latn.title()} {second.bn_latn.title()}",
            f"{adjective[0]} {genitive_bn} {second.bn}",
        )
    if language == "en":
        (concept,) = theme_concepts(genre, rng, 1)
        noun = concept.en.title()
        shape = rng.random()
        if shape < 0.5:
            return SongName(f"{pick(rng, _ENGLISH_TITLE_ADJECTIVES)} {noun}")
        if shape < 0.8:
            return SongName(f"{noun} {pick(rng, _ENGLISH_TITLE_TAILS)}")
        adjective = pick(rng, _ENGLISH_TITLE_ADJECTIVES)
        return SongName(f"{adjective} {noun} {pick(rng, _ENGLISH_TITLE_TAILS)}")
    if language == "es":
        first, second = two_concepts(genre, rng)
        if rng.random() < 0.6:
            adjective = _spanish_adjective(pick(rng, _SPANISH_TITLE_ADJECTIVES), first.es)
            return SongName(f"{first.es} {adjective}".capitalize())
        return SongName(f"{first.es} y {second.es}".capitalize())
    if language in ("hi", "ar"):
        words, links = (
            (_HINDI_TITLE_WORDS, _HINDI_TITLE_LINKS)
            if language == "hi"
            else (_ARABIC_TITLE_WORDS, _ARABIC_TITLE_LINKS)
        )
        first, second = rng.choice(len(words), size=2, replace=False)
        return SongName(pick(rng, links).format(x=words[first], y=words[second]))
    raise DemoDataError(f"language={language!r} is not one of {LANGUAGES}")


def compose_artist(genre: str, language: str, rng: np.random.Generator) -> SongName:
    """An artist name typical of the language (and, for some genres, a band or DJ name).

    Raises:
        DemoDataError: on a language outside `LANGUAGES`.
    """
    if language == "bn":
        first, last = pick(rng, _BANGLA_FIRST), pick(rng, _BANGLA_LAST)
        return SongName(f"{first[1]} {last[1]}", f"{first[0]} {last[0]}")
    pools = {
        "en": (_ENGLISH_FIRST, _ENGLISH_LAST),
        "es": (_SPANISH_FIRST, _SPANISH_LAST),
        "hi": (_HINDI_FIRST, _HINDI_LAST),
        "ar": (_ARABIC_FIRST, _ARABIC_LAST),
    }
    if language not in pools:
        raise DemoDataError(f"language={language!r} is not one of {LANGUAGES}")
    firsts, lasts = pools[language]
    first = pick(rng, firsts)
    style = rng.random()
    if language == "en" and genre in ("rock", "metal") and style < 0.4:
        return SongName(
            f"The {pick(rng, _ENGLISH_TITLE_ADJECTIVES)} {pick(rng, _ENGLISH_BAND_NOUNS)}"
        )
    if genre == "electronic" and style < 0.3:
        return SongName(f"DJ {first} {pick(rng, lasts)[0]}.")
    if genre == "hiphop" and style < 0.3:
        return SongName(f"MC {first} {pick(rng, lasts)}")
    return SongName(f"{first} {pick(rng, lasts)}")


def orphan_songs(rng: np.random.Generator, count: int = 2) -> list[tuple[str, SongName, SongName]]:
    """`count` songs (language, artist, title) that belong to no track of any demo collection.

    One is English and one is Bangla (whose file is then named in Bengali script), so a pairing
    step meets an unpaired file in each script.
    """
    english = [song for song in _ORPHAN_SONGS if song[0] == "en"]
    bangla = [song for song in _ORPHAN_SONGS if song[0] == "bn"]
    chosen = [pick(rng, english), pick(rng, bangla)]
    rest = [song for song in _ORPHAN_SONGS if song not in chosen]
    while len(chosen) < min(count, len(_ORPHAN_SONGS)):
        chosen.append(rest.pop(int(rng.integers(len(rest)))))
    return chosen[:count]
