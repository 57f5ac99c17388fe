"""Lyric, title and artist vocabularies of the built-in demo data set (see `tasks.demo_data`).

Every genre has a theme: a handful of concepts, each written in every lyric language (English,
Spanish, Hindi in Devanagari, Arabic, Bangla in Bengali script and romanized Bangla). Lines are
short templates per language with the theme words filled in, so the lyrics of one genre share
vocabulary across languages and differ from other genres, as real lyrics roughly do.

Bangla words are kept as (Bengali script, romanized) pairs. The romanized forms are the everyday
"Banglish" spellings, chosen close to what `anyascii` gives for the Bengali text (for example
"নদীর গান" -> anyascii "ndir gan", ours "Nodir Gan"), so a fuzzy matcher that romanizes file names
can pair a Bengali-script "Artist - Title" with the romanized metadata.

Nothing here touches files; `tasks.demo_data` decides which track gets what and writes it.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

LANGUAGES: tuple[str, ...] = ("bn", "en", "es", "hi", "ar")
"""ISO 639-1 codes of the lyric languages."""

SCRIPT_OF_LANGUAGE: dict[str, str] = {
    "bn": "Beng",
    "en": "Latn",
    "es": "Latn",
    "hi": "Deva",
    "ar": "Arab",
}
"""ISO 15924 code of each language's own script (romanized Bangla is written in Latn instead)."""


@dataclass(frozen=True)
class Concept:
    """One theme word in every lyric language.

    `es` carries its article (`la noche`) because Spanish lines need it; `bn` and `bn_latn` are
    the same word in Bengali script and romanized.
    """

    en: str
    es: str
    hi: str
    ar: str
    bn: str
    bn_latn: str


@dataclass(frozen=True)
class SongName:
    """A title or an artist name: `latin` goes to metadata.csv, `bengali` (Bangla only) may name
    the lyrics file in Bengali script."""

    latin: str
    bengali: str | None = None


@dataclass(frozen=True)
class LyricText:
    """Lines of one song (section tags such as `[Chorus]` included) and the lyric lines alone."""

    lines: tuple[str, ...]
    sung_lines: tuple[str, ...]


THEMES: dict[str, tuple[Concept, ...]] = {
    "baul": (
        Concept("river", "el río", "नदी", "النهر", "নদী", "nodi"),
        Concept("boat", "la barca", "नाव", "القارب", "নৌকা", "nouka"),
        Concept("soul", "el alma", "मन", "الروح", "মন", "mon"),
        Concept("path", "el camino", "राह", "الطريق", "পথ", "poth"),
        Concept("song", "la canción", "गीत", "الأغنية", "গান", "gan"),
        Concept("sky", "el cielo", "आसमान", "السماء", "আকাশ", "akash"),
    ),
    "classical": (
        Concept("dawn", "el alba", "सुबह", "الفجر", "ভোর", "bhor"),
        Concept("flower", "la flor", "फूल", "الزهرة", "ফুল", "phul"),
        Concept("garden", "el jardín", "बाग़", "الحديقة", "বাগান", "bagan"),
        Concept("spring", "la primavera", "बसंत", "الربيع", "বসন্ত", "bosonto"),
        Concept("prayer", "la plegaria", "प्रार्थना", "الدعاء", "প্রার্থনা", "prarthona"),
        Concept("eternity", "la eternidad", "अनंत", "الخلود", "অনন্ত", "anonto"),
    ),
    "electronic": (
        Concept("lights", "las luces", "रोशनी", "الأضواء", "আলো", "alo"),
        Concept("night", "la noche", "रात", "الليل", "রাত", "rat"),
        Concept("dance", "el baile", "नाच", "الرقص", "নাচ", "nach"),
        Concept("rhythm", "el ritmo", "ताल", "الإيقاع", "তাল", "tal"),
        Concept("stars", "las estrellas", "तारे", "النجوم", "তারা", "tara"),
        Concept("dream", "el sueño", "सपना", "الحلم", "স্বপ্ন", "swopno"),
    ),
    "hiphop": (
        Concept("street", "la calle", "गली", "الشارع", "রাস্তা", "rasta"),
        Concept("money", "el dinero", "पैसा", "المال", "টাকা", "taka"),
        Concept("crown", "la corona", "ताज", "التاج", "মুকুট", "mukut"),
        Concept("struggle", "la lucha", "संघर्ष", "الكفاح", "লড়াই", "lorai"),
        Concept("truth", "la verdad", "सच", "الحقيقة", "সত্য", "sotyo"),
        Concept("name", "el nombre", "नाम", "الاسم", "নাম", "nam"),
    ),
    "jazz": (
        Concept("midnight", "la medianoche", "आधी रात", "منتصف الليل", "মাঝরাত", "majhrat"),
        Concept("rain", "la lluvia", "बारिश", "المطر", "বৃষ্টি", "brishti"),
        Concept("moon", "la luna", "चाँद", "القمر", "চাঁদ", "chand"),
        Concept("smoke", "el humo", "धुआँ", "الدخان", "ধোঁয়া", "dhoya"),
        Concept("memory", "el recuerdo", "याद", "الذكرى", "স্মৃতি", "smriti"),
        Concept("sorrow", "la tristeza", "ग़म", "الحزن", "দুঃখ", "dukkho"),
    ),
    "metal": (
        Concept("darkness", "la oscuridad", "अंधेरा", "الظلام", "আঁধার", "adhar"),
        Concept("iron", "el hierro", "लोहा", "الحديد", "লোহা", "loha"),
        Concept("war", "la guerra", "युद्ध", "الحرب", "যুদ্ধ", "juddho"),
        Concept("shadow", "la sombra", "साया", "الظل", "ছায়া", "chhaya"),
        Concept("thunder", "el trueno", "गरज", "الرعد", "বজ্র", "bojro"),
        Concept("ashes", "las cenizas", "राख", "الرماد", "ছাই", "chhai"),
    ),
    "reggae": (
        Concept("sunshine", "el sol", "धूप", "الشمس", "রোদ", "rod"),
        Concept("island", "la isla", "द्वीप", "الجزيرة", "দ্বীপ", "dwip"),
        Concept("peace", "la paz", "शांति", "السلام", "শান্তি", "santi"),
        Concept("love", "el amor", "प्यार", "الحب", "ভালোবাসা", "bhalobasa"),
        Concept("sea", "el mar", "समंदर", "البحر", "সাগর", "sagor"),
        Concept("home", "el hogar", "घर", "البيت", "ঘর", "ghor"),
    ),
    "rock": (
        Concept("fire", "el fuego", "आग", "النار", "আগুন", "agun"),
        Concept("storm", "la tormenta", "तूफ़ान", "العاصفة", "ঝড়", "jhor"),
        Concept("freedom", "la libertad", "आज़ादी", "الحرية", "মুক্তি", "mukti"),
        Concept("city", "la ciudad", "शहर", "المدينة", "শহর", "sohor"),
        Concept("guitar", "la guitarra", "गिटार", "الغيتار", "গিটার", "gitar"),
        Concept("voice", "la voz", "आवाज़", "الصوت", "কণ্ঠ", "kontho"),
    ),
}
"""Theme concepts of each genre; the keys are the demo genres."""

# The Bangla genitive: -র after a vowel sign (নদী -> নদীর), -য়ের after an independent vowel
# (ছাই -> ছাইয়ের), -ের after a consonant (মন -> মনের).
_BENGALI_VOWEL_SIGNS = frozenset(
    chr(code) for code in (0x09BE, 0x09BF, 0x09C0, 0x09C1, 0x09C2, 0x09C3, 0x09C7, 0x09C8, 0x09CB)
)
_BENGALI_INDEPENDENT_VOWELS = frozenset(chr(code) for code in range(0x0985, 0x0995))


def bangla_genitive(concept: Concept) -> tuple[str, str]:
    """Genitive ("of the river") of a Bangla word: (Bengali script, romanized).

    নদী -> নদীর / nodir, ছাই -> ছাইয়ের / chhaiyer, মন -> মনের / moner, যুদ্ধ -> যুদ্ধের / juddher.
    """
    if concept.bn[-1] in _BENGALI_VOWEL_SIGNS:
        return concept.bn + "র", concept.bn_latn + "r"
    if concept.bn[-1] in _BENGALI_INDEPENDENT_VOWELS:
        return concept.bn + "য়ের", concept.bn_latn + "yer"
    stem = concept.bn_latn[:-1] if concept.bn_latn.endswith("o") else concept.bn_latn
    return concept.bn + "ের", stem + "er"


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
_CODE_MIXED_LINES = (  # Bangla-English lines: (Bengali script + English, romanized + English)
    ("তুমি আমার {a}, baby don't go", "tumi amar {a}, baby don't go"),
    ("every night আমি {a} খুঁজি", "every night ami {a} khuji"),
    ("{a} is calling, শোনো না", "{a} is calling, shono na"),
    ("আমার heart টা {ag} কাছে", "amar heart ta {ag} kache"),
    ("let it go, {a} নিয়ে চলো", "let it go, {a} niye cholo"),
    ("I miss you, {ag} মতো", "I miss you, {ag} moto"),
    ("তোমার smile যেন {a}", "tomar smile jeno {a}"),
    ("no worries, আজ রাতে {a}", "no worries, aaj rate {a}"),
)

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


_Choice = TypeVar("_Choice")


def _pick(rng: np.random.Generator, items: tuple[_Choice, ...]) -> _Choice:
    return items[int(rng.integers(len(items)))]


def _theme_concepts(genre: str, rng: np.random.Generator, count: int) -> list[Concept]:
    """`count` theme words, mostly from the genre's own theme and sometimes from another genre's,
    so lyric vocabularies overlap between genres the way real ones do."""
    others = [name for name in THEMES if name != genre]
    concepts = []
    for _ in range(count):
        source = genre if rng.random() < 0.8 else others[int(rng.integers(len(others)))]
        concepts.append(_pick(rng, THEMES[source]))
    return concepts


def _two_concepts(genre: str, rng: np.random.Generator) -> tuple[Concept, Concept]:
    """Two different theme words (on a repeat, the second is redrawn from the genre's theme)."""
    first, second = _theme_concepts(genre, rng, 2)
    if first == second:
        choices = tuple(concept for concept in THEMES[genre] if concept != first)
        second = _pick(rng, choices)
    return first, second


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
    """
    if language == "bn":
        first, second = _two_concepts(genre, rng)
        genitive_bn, genitive_latn = bangla_genitive(first)
        shape = rng.random()
        if shape < 0.45:
            adjective = _pick(rng, _BANGLA_TITLE_ADJECTIVES)
            return SongName(f"{adjective[1]} {first.bn_latn.title()}", f"{adjective[0]} {first.bn}")
        if shape < 0.8:
            return SongName(
                f"{genitive_latn.title()} {second.bn_latn.title()}", f"{genitive_bn} {second.bn}"
            )
        adjective = _pick(rng, _BANGLA_TITLE_ADJECTIVES)
        return SongName(
            f"{adjective[1]} {genitive_latn.title()} {second.bn_latn.title()}",
            f"{adjective[0]} {genitive_bn} {second.bn}",
        )
    if language == "en":
        (concept,) = _theme_concepts(genre, rng, 1)
        noun = concept.en.title()
        shape = rng.random()
        if shape < 0.5:
            return SongName(f"{_pick(rng, _ENGLISH_TITLE_ADJECTIVES)} {noun}")
        if shape < 0.8:
            return SongName(f"{noun} {_pick(rng, _ENGLISH_TITLE_TAILS)}")
        adjective = _pick(rng, _ENGLISH_TITLE_ADJECTIVES)
        return SongName(f"{adjective} {noun} {_pick(rng, _ENGLISH_TITLE_TAILS)}")
    if language == "es":
        first, second = _two_concepts(genre, rng)
        if rng.random() < 0.6:
            adjective = _spanish_adjective(_pick(rng, _SPANISH_TITLE_ADJECTIVES), first.es)
            return SongName(f"{first.es} {adjective}".capitalize())
        return SongName(f"{first.es} y {second.es}".capitalize())
    if language in ("hi", "ar"):
        words, links = (
            (_HINDI_TITLE_WORDS, _HINDI_TITLE_LINKS)
            if language == "hi"
            else (_ARABIC_TITLE_WORDS, _ARABIC_TITLE_LINKS)
        )
        first, second = rng.choice(len(words), size=2, replace=False)
        return SongName(_pick(rng, links).format(x=words[first], y=words[second]))
    raise ValueError(f"language={language!r} is not one of {LANGUAGES}")


def compose_artist(genre: str, language: str, rng: np.random.Generator) -> SongName:
    """An artist name typical of the language (and, for some genres, a band or DJ name)."""
    if language == "bn":
        first, last = _pick(rng, _BANGLA_FIRST), _pick(rng, _BANGLA_LAST)
        return SongName(f"{first[1]} {last[1]}", f"{first[0]} {last[0]}")
    pools = {
        "en": (_ENGLISH_FIRST, _ENGLISH_LAST),
        "es": (_SPANISH_FIRST, _SPANISH_LAST),
        "hi": (_HINDI_FIRST, _HINDI_LAST),
        "ar": (_ARABIC_FIRST, _ARABIC_LAST),
    }
    if language not in pools:
        raise ValueError(f"language={language!r} is not one of {LANGUAGES}")
    firsts, lasts = pools[language]
    first = _pick(rng, firsts)
    style = rng.random()
    if language == "en" and genre in ("rock", "metal") and style < 0.4:
        return SongName(
            f"The {_pick(rng, _ENGLISH_TITLE_ADJECTIVES)} {_pick(rng, _ENGLISH_BAND_NOUNS)}"
        )
    if genre == "electronic" and style < 0.3:
        return SongName(f"DJ {first} {_pick(rng, lasts)[0]}.")
    if genre == "hiphop" and style < 0.3:
        return SongName(f"MC {first} {_pick(rng, lasts)}")
    return SongName(f"{first} {_pick(rng, lasts)}")


def orphan_songs(rng: np.random.Generator, count: int = 2) -> list[tuple[str, SongName, SongName]]:
    """`count` songs (language, artist, title) that belong to no track of any demo collection.

    One is English and one is Bangla (whose file is then named in Bengali script), so a pairing
    step meets an unpaired file in each script.
    """
    english = [song for song in _ORPHAN_SONGS if song[0] == "en"]
    bangla = [song for song in _ORPHAN_SONGS if song[0] == "bn"]
    chosen = [_pick(rng, tuple(english)), _pick(rng, tuple(bangla))]
    rest = [song for song in _ORPHAN_SONGS if song not in chosen]
    while len(chosen) < min(count, len(_ORPHAN_SONGS)):
        chosen.append(rest.pop(int(rng.integers(len(rest)))))
    return chosen[:count]


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
    first, second = _theme_concepts(genre, rng, 2)
    if language == "bn":
        romanized = script == "Latn"
        genitive = bangla_genitive(first)[1 if romanized else 0]
        a, b = (first.bn_latn, second.bn_latn) if romanized else (first.bn, second.bn)
        if code_mixed and mixed_line:
            template = _pick(rng, _CODE_MIXED_LINES)[1 if romanized else 0]
            # a code-mixed line sometimes keeps the theme word itself in English
            a = first.en if rng.random() < 0.3 else a
        else:
            template = _pick(rng, _BANGLA_LINES)[1 if romanized else 0]
        return _fill(template, {"a": a, "b": b, "ag": genitive})
    if language == "en":
        template = _pick(rng, _ENGLISH_LINES)
        return _fill(template, {"a": first.en, "A": first.en.capitalize(), "b": second.en})
    if language == "es":
        template = _pick(rng, _SPANISH_LINES)
        return _fill(template, {"a": first.es, "A": first.es.capitalize(), "b": second.es})
    if language == "hi":
        return _pick(rng, _HINDI_LINES).format(a=first.hi, b=second.hi)
    if language == "ar":
        return _pick(rng, _ARABIC_LINES).format(a=first.ar, b=second.ar)
    raise ValueError(f"language={language!r} is not one of {LANGUAGES}")


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
        ValueError: on a language outside `LANGUAGES`.
    """

    mixed_line_count = 0

    def make_line() -> str:
        nonlocal mixed_line_count
        mixed_line = code_mixed and rng.random() < 0.75
        line = _line(language, script, code_mixed, genre, rng, mixed_line=mixed_line)
        if code_mixed and not mixed_line and rng.random() < 0.3:
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
