"""Theme words of the demo data set: what the songs of each genre sing about, in every language.

Every genre has a theme: a handful of concepts, each written in every lyric language (English,
Spanish, Hindi in Devanagari, Arabic, Bangla in Bengali script and romanized Bangla). Lyric lines
(`tasks.demo.lyrics`) and titles (`tasks.demo.song_names`) fill these words into templates, so
the songs of one genre share vocabulary across languages and differ from other genres, as real
lyrics roughly do.

Bangla words are kept as (Bengali script, romanized) pairs. The romanized forms are the everyday
"Banglish" spellings, chosen close to what `anyascii` gives for the Bengali text (for example
"নদীর গান" -> anyascii "ndir gan", ours "Nodir Gan"), so a fuzzy matcher that romanizes file names
can pair a Bengali-script "Artist - Title" with the romanized metadata.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tasks.demo.seeding import pick

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


def theme_concepts(genre: str, rng: np.random.Generator, count: int) -> list[Concept]:
    """`count` theme words, mostly from the genre's own theme and sometimes from another genre's,
    so lyric vocabularies overlap between genres the way real ones do."""
    others = tuple(name for name in THEMES if name != genre)
    concepts = []
    for _ in range(count):
        source = genre if rng.random() < 0.8 else pick(rng, others)
        concepts.append(pick(rng, THEMES[source]))
    return concepts


def two_concepts(genre: str, rng: np.random.Generator) -> tuple[Concept, Concept]:
    """Two different theme words (on a repeat, the second is redrawn from the genre's theme)."""
    first, second = theme_concepts(genre, rng, 2)
    if first == second:
        choices = tuple(concept for concept in THEMES[genre] if concept != first)
        second = pick(rng, choices)
    return first, second
