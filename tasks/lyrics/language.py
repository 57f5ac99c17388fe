"""Script and language of lyrics lines, and the language summary of a track.

Script comes from Unicode ranges (ISO 15924 codes: Latn, Beng, Deva, Arab, ...). Language:

- A word in a script used by one main language gets that language: Bengali script -> bn,
  Devanagari -> hi, Arabic script -> ar (ur when the line has Urdu-only letters such as ے ٹ ڈ,
  fa for Persian-only letters such as پ چ ژ گ without Urdu ones), Hangul -> ko, Thai -> th, ...
  Scripts shared by many languages (Cyrillic, Han) give no language.
- A Latin-script line is *not* assumed to be English. `identify_latin` scores the line for
  English, Spanish, romanized Bangla ("Banglish"), romanized Hindi ("Hinglish") and romanized
  Arabic ("Arabizi") with two deterministic signals:

  1. function-word lexicons (`LATIN_LEXICONS`): each word found in k lexicons adds 1/k to each
     of those languages, so shared words ("na", "ki", "me", "hoy", "tu") count for less;
     English homographs of other languages' words ("son", "sin", "mere", "din", "path") are
     in the English lexicon too, so they never count for one language alone. A word in no
     lexicon may still show its language by its shape (`word_evidence`): English "-ing" and
     contractions, Spanish "-ción/-mente/-idad" and accents (ñ á é í ó ú ¿ ¡), Arabizi digits
     inside words ("3ala", "7abibi");
  2. character-trigram profiles (add-one smoothed log-likelihood, turned into a posterior over
     the five languages) built from the lexicons and the sample lines in `_PROFILE_SAMPLES`;
     weighted by `NGRAM_WEIGHT` < 1 so they break ties and label lines without lexicon words,
     but never outvote one exclusive lexicon word.

  A line with no evidence (only vocables like "oh", "la la la", or very short unknown words)
  gets no language; `summarize_track` then gives it the track's dominant Latin language.

Per word, the language is the script's language, or for Latin words the language whose
lexicon alone holds the word, or else the line's language. The track's `language_mix` is the
share of words per language; the dominant language is the largest share; a track is
code-mixed when two languages each hold at least `MEANINGFUL_SHARE` of the words, or when at
least `MIXED_LINE_SHARE` of its lines are mixed (a line is mixed when a second language holds
at least two of its words and a quarter of them). For a code-mixed track whose largest share
is English, the dominant language is the other meaningful one: English is the usual embedded
language of code-mixed lyrics ("ami tomake love kori" is a Bangla song).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import cache

UNDETERMINED = "und"
"""Line language when nothing identifies it (ISO 639-2 'undetermined')."""

MEANINGFUL_SHARE = 0.2
MIXED_LINE_SHARE = 0.25
NGRAM_WEIGHT = 0.75

# (first code point, last code point, ISO 15924 script)
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
"""The language a word in each script is taken to be (scripts of one main language only)."""

NATIVE_SCRIPT: dict[str, str] = {
    **{language: script for script, language in SCRIPT_LANGUAGE.items()},
    "ur": "Arab",
    "fa": "Arab",
    "ja": "Jpan",
    "en": "Latn",
    "es": "Latn",
}
"""Each language's own script; a language written in Latin letters instead is 'romanized'."""

_URDU_LETTERS = frozenset("ٹڈڑںےۓ")
_PERSIAN_LETTERS = frozenset("پچژگ")


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


# ---------------------------------------------------------------------------------------------
# Latin-script language identification
# ---------------------------------------------------------------------------------------------

LATIN_LANGUAGES: tuple[str, ...] = ("en", "es", "bn", "hi", "ar")
"""Languages `identify_latin` can return; bn, hi and ar here mean romanized text."""

_VOCABLES_TEXT = """
    oh ooh oooh ah aah ahh uh uhh hmm mm mmm yeah yea yeh hey ho whoa woah wo eh ay ayy
    la na da doo dum ba ya yo
"""
VOCABLES = frozenset(_VOCABLES_TEXT.split())
"""Singing syllables that say nothing about the language when a line holds nothing else."""

_LEXICON_TEXT = {
    "en": """
        the a an and or but if of to in on at by for with from up down out into over about
        through i i'm i'll i've i'd me my mine myself you you're you'll your yours he she his
        her him it it's its we we're our us they they're their them this that these those
        there here what when where why how who which is are am was were be been being do does
        did don't doesn't didn't can can't could will won't would should have has had not no
        yes all just so too never always ever again now then tonight night day love heart baby
        feel know want need like go going gonna wanna gotta come say see take make let let's
        get got give hold keep dance dream dreams fire light time life world sky rain sun home
        away back only every forever together alone eyes mind soul girl boy tell still more
        than one run stay fall falling cry sing song music beat rhythm free high low blue road
        long way walk lost found leave gone cold warm true lie lies wild young old kiss touch
        burn shine believe remember tomorrow yesterday moonlight stars star moon ocean river
        sea wind summer winter dark darkness sweet tears smile hands arms nothing something
        everything everybody somebody nobody tonight's ain't till until because while
        heartbeat lonely broken feeling feelings waiting loving running dancing tired morning
        evening sunshine rainbow city street streets midnight angel heaven forget forgive
        wanted needed told know knew think thought chance another other better best
        calling call worries worry miss missing fly flying goodbye hello sorry okay
        son sin era solo path mile pal log mat par rang mere din ye sob pore ache gram dame
        tan bole chai
        """,
    "es": """
        el la los las un una unos unas y o que qué de del en con sin por para al mi mis tu tus
        te me se le lo les nos yo tú él ella nosotros ellos es eres soy son estoy estás está
        estar ser fue era no sí si pero como cómo cuando cuándo donde dónde porque siempre
        nunca todo toda todos nada más mas muy ya aquí allí hoy mañana noche día amor corazón
        corazon vida cielo sol luna mar fuego beso besos boca ojos alma quiero quieres amo
        bailar baila bailando bailamos ven vamos voy dime contigo conmigo ti solo sola sueño
        sueños tiempo mundo camino canción cantar mujer hombre niña vez otra otro tengo tienes
        tiene puedo sé hasta desde entre sobre cada este esta eso esa bien mal así también
        tanto tan siento vuelve volver dolor llorar lágrimas luz estrella estrellas mirada manos
        piel calor fiesta ritmo loco loca bonita mío mía nuestro nuestra deja dejar quédate
        olvidar recuerdo recuerdos besar mirar sentir tierra lluvia viento calle ciudad playa
        madrugada corazones amigo amiga gente canta cantando quiere puede sabes sabe hacer
        hace dame dale mientras aunque mejor nadie alguien juntos despacio perdón
        """,
    "bn": """
        ami amar amake amay amra amader tumi tomar tomake tomay tomra tomader tui tor toke
        apni apnar shey sey ora tara eta ota ei oi shei sei ki keno kothay kotha kothao kobe
        kemon ke na nai nei achhe ache achi achho chilo chhilo hoy hobe holo hoyeche hoye kori
        kore korbo koro koreche korechi bolo boli bole bolbo jabo jai jao jay jete eshe esho
        ashbe asho dekhi dekho dekhe dekhechi bhalo bhalobashi bhalobasha bhalobasa bhalobese
        bhalobeshe bhalobasi mon moner mone prem preme premer hridoy hridoye shopno swapno
        shopne chokh chokhe chokher akash akashe nodi nodir brishti megh batash raat din
        sondhya bhor shokal rater diner aaj aj kal ekhon tokhon jokhon abar shudhu sudhu shob
        sob shobai kichu kono keu jodi tobu tobe kintu ar aar ebong theke diye niye jonno moto
        sathe shathe kache dure priyo priya bondhu gaan gaan sur chai chaina pari parbo jani
        janina bujhi bujhina thako thakbo thaki eka ekla shona sona jibon jiboner pothe pathe
        ghor bari maa hashi kanna kande kadi chole cholo choli dao dite nite phire re je
        amio tumio shudhui sathi shonar sonar bangla banglar matir mati alo andhar dhaka
        gram shohor hawa haoa jhor phool phul pakhi chand tara mone pore bhule bhulo ashe
        shono shuno gan poth pother sotti shotti sotyo adhar amaro tomaro nao tomai
        """,
    "hi": """
        main mein mai mujhe mujhko mera meri mere hum humko hame hamein humara hamara hamari
        tum tumhe tumhein tumko tumse tumhara tumhari tera teri tere tu tujhe tujhko tujhse
        aap aapka aapki woh wo yeh ye vo koi kuch kaun kya kyun kyon kaise kahan kab jab tab
        ab abhi kabhi sab sabhi bhi hai hain hoon hun ho tha thi hota hoti hote hoga hogi raha
        rahi rahe gaya gayi gaye diya kiya liya karna karo karta karti karte kar kehna kaha
        kehta dekha dekho dekhna jaana jana jao aana aaja aao chal chalo chale ruk ruko sun
        suno bolo nahi nahin na mat haan pyaar pyar ishq mohabbat dil dilon jaan jaanam sanam
        yaar yaara dost dard zindagi jeevan duniya zamana khuda rab aankhen aankhon nazar
        nazrein chehra baatein baat raat din subah shaam sapna sapne khwab chaand chand taare
        sitare aasman aasmaan hawa baarish barsaat saath sath pal lamha waqt dhadkan tanha
        akela pehli pehla phir fir aur lekin magar par bas sirf ke ka ki ko se pe liye wala
        wali apna apni apne khushi gham aansu yaad yaadein intezaar milna mile mila milke
        jeena marna tak saare sari pyaari dilbar mehboob junoon rang naach gaana geet dhun
        hoke bina tere mere sapnon kahin wahi yahi dilon raaton baaton
        """,
    "ar": """
        ana enta enti inta inti anta anti habibi habibti habib albi qalbi ya wa fi min ala
        3ala kol kull ahebak ahebek bahebak bahebek hob hubb hayati omri 3omri leil leila
        el al layla ainy aini 3eyoon oyoun inshallah wallah yalla shou eh mesh mish lesh leh ma3
        ma3ak ma3aya hal ahlan marhaba salam shams amar nour noor bahr sahar dunya qamar
        """,
}

LATIN_LEXICONS: dict[str, frozenset[str]] = {
    language: frozenset(text.split()) for language, text in _LEXICON_TEXT.items()
}
"""Function and common lyric words per Latin-script language (lower case, accents kept)."""

_PROFILE_SAMPLES = {
    "en": """i will love you till the end of time, hold me close and never let me go.
        we were dancing in the summer rain, the night is young and so are we.
        every heartbeat brings me back to you, the stars are shining on the open road""",
    "es": """te quiero con todo mi corazón, bailamos esta noche bajo la luna.
        eres la luz de mi vida, nunca me dejes sola en la oscuridad.
        vamos a la playa, el sol y el mar, contigo quiero estar""",
    "bn": """ami tomake bhalobashi, tumi amar praner manush.
        akash bhora surjo tara, bishwe bhora pran, tahari majhkhane ami peyechi mor sthan.
        keno eto dure thako, ekbar kache esho, amar mon shudhu tomake khoje""",
    "hi": """main tumse pyaar karta hoon, tere bina jeena nahi.
        dil kya kare jab kisi se kisi ko pyaar ho jaaye.
        teri aankhon mein sapne hain, chal saath chalein hum kahin""",
    "ar": """habibi ya nour el ain, inta albi w omri.
        ana bahebak ya habibi, ya leil ya 3ein.
        enta omri, wallah ma3ak ya hayati""",
}

_SPANISH_MARKS = frozenset("ñáéíóúü¿¡")
_ARABIZI_DIGITS = re.compile(r"[a-z][2375]|[2375][a-z]")
_ENGLISH_SHAPES = re.compile(r"^[a-z]{2,}ing$|^[a-z]+n't$|^[a-z]+'(?:s|re|ve|ll|d|m)$")
_SPANISH_SHAPES = re.compile(r"^[a-z]{3,}(?:ción|mente|idad)$")


@cache
def _trigram_profiles() -> dict[str, tuple[dict[str, float], float]]:
    """Per language: trigram -> log-probability (add-one smoothed), and the unseen log-prob."""
    profiles = {}
    vocabulary: set[str] = set()
    counts_by_language = {}
    for language in LATIN_LANGUAGES:
        text = " ".join(sorted(LATIN_LEXICONS[language])) + " " + _PROFILE_SAMPLES[language]
        counts: Counter[str] = Counter()
        for word in words_of(text.lower()):
            padded = f" {word} "
            counts.update(padded[i : i + 3] for i in range(len(padded) - 2))
        counts_by_language[language] = counts
        vocabulary.update(counts)
    size = len(vocabulary) + 1
    for language, counts in counts_by_language.items():
        total = sum(counts.values()) + size
        profiles[language] = (
            {gram: math.log((n + 1) / total) for gram, n in counts.items()},
            math.log(1 / total),
        )
    return profiles


def _ngram_posterior(words: list[str]) -> dict[str, float]:
    """Posterior over `LATIN_LANGUAGES` from character trigrams (uniform prior), per-trigram
    averaged so long lines do not become overconfident."""
    grams = []
    for word in words:
        padded = f" {word} "
        grams.extend(padded[i : i + 3] for i in range(len(padded) - 2))
    if not grams:
        return dict.fromkeys(LATIN_LANGUAGES, 1 / len(LATIN_LANGUAGES))
    profiles = _trigram_profiles()
    mean_log = {}
    for language, (logprob, unseen) in profiles.items():
        mean_log[language] = sum(logprob.get(g, unseen) for g in grams) / len(grams)
    # Sharpen by the number of words: more text, more certainty (capped).
    scale = min(len(words), 6) * 2.0
    top = max(mean_log.values())
    weights = {k: math.exp(scale * (v - top)) for k, v in mean_log.items()}
    norm = sum(weights.values())
    return {k: w / norm for k, w in weights.items()}


def lexicon_languages(word: str) -> tuple[str, ...]:
    """Latin languages whose lexicon holds `word` (lower-cased), in `LATIN_LANGUAGES` order."""
    word = word.lower().replace("’", "'")
    return tuple(lang for lang in LATIN_LANGUAGES if word in LATIN_LEXICONS[lang])


def word_evidence(word: str) -> tuple[str, ...]:
    """Latin languages a single word points to: its lexicons, else its shape (English -ing and
    contractions, Spanish -ción/-mente/-idad or accents, Arabizi digits), else none."""
    word = word.lower().replace("’", "'")
    languages = lexicon_languages(word)
    if languages:
        return languages
    if _ENGLISH_SHAPES.match(word):
        return ("en",)
    if _SPANISH_SHAPES.match(word) or any(c in _SPANISH_MARKS for c in word):
        return ("es",)
    if _ARABIZI_DIGITS.search(word):
        return ("ar",)
    return ()


@dataclass(frozen=True)
class LatinGuess:
    """Result of `identify_latin`: the language (None without evidence) and every score."""

    language: str | None
    scores: dict[str, float]
    lexicon_hits: int


def _is_vocable_line(words: list[str]) -> bool:
    lowered = [w.lower() for w in words]
    if all(w in VOCABLES for w in lowered):
        return True
    # "na na na", "lalala": one short syllable repeated is singing, not language.
    return len(set(lowered)) == 1 and len(lowered) >= 2 and len(lowered[0]) <= 3


def identify_latin(words: list[str]) -> LatinGuess:
    """Language of a run of Latin-script words (see the module docstring for the method).

    Returns `LatinGuess(language=None, ...)` when the words hold no evidence: only vocables,
    or no lexicon word and an n-gram posterior below 0.5.
    """
    lowered = [w.lower().replace("’", "'") for w in words]
    scores = dict.fromkeys(LATIN_LANGUAGES, 0.0)
    if not lowered or _is_vocable_line(lowered):
        return LatinGuess(None, scores, 0)
    hits = 0
    for word in lowered:
        languages = word_evidence(word)
        if languages:
            hits += 1
            for language in languages:
                scores[language] += 1 / len(languages)
    content = [w for w in lowered if w not in VOCABLES]
    posterior = _ngram_posterior(content)
    for language, p in posterior.items():
        scores[language] += NGRAM_WEIGHT * p
    best = max(LATIN_LANGUAGES, key=lambda lang: scores[lang])
    if hits == 0 and posterior[best] < 0.5:
        return LatinGuess(None, scores, 0)
    return LatinGuess(best, scores, hits)


# ---------------------------------------------------------------------------------------------
# Lines and tracks
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LineLanguage:
    """Language analysis of one lyrics line.

    `language` is an ISO 639-1 code or None (no evidence); `word_languages` has one entry per
    word of `words_of(line)` (None for words of unknown language); `mixed` is True when a
    second language holds at least two words and a quarter of the line.
    """

    language: str | None
    script: str | None
    words: tuple[str, ...]
    word_scripts: tuple[str | None, ...]
    word_languages: tuple[str | None, ...]
    mixed: bool


def _arabic_script_language(line: str) -> str:
    letters = set(line)
    if letters & _URDU_LETTERS:
        return "ur"
    if letters & _PERSIAN_LETTERS:
        return "fa"
    return "ar"


def identify_line(line: str) -> LineLanguage:
    """Script and language of one (normalized) lyrics line, and of each of its words."""
    words = words_of(line)
    scripts = [script_of_text(w) for w in words]
    latin_words = [w for w, s in zip(words, scripts, strict=True) if s == "Latn"]
    latin = identify_latin(latin_words) if latin_words else LatinGuess(None, {}, 0)
    arabic = _arabic_script_language(line) if "Arab" in scripts else "ar"

    word_languages: list[str | None] = []
    for word, script in zip(words, scripts, strict=True):
        if script == "Latn":
            own = word_evidence(word)
            if len(own) == 1 and word.lower() not in VOCABLES:
                word_languages.append(own[0])
            else:
                word_languages.append(latin.language)
        elif script == "Arab":
            word_languages.append(arabic)
        else:
            word_languages.append(SCRIPT_LANGUAGE.get(script or ""))

    counts = Counter(lang for lang in word_languages if lang is not None)
    if latin_words and latin.language is None and not (set(scripts) - {"Latn", None}):
        language = None  # only vocables or unknown Latin words: let the track decide
    elif counts:
        # Ties go to the line's own Latin guess, else to the first language seen.
        ranked = sorted(
            counts,
            key=lambda lang: (-counts[lang], lang != latin.language, word_languages.index(lang)),
        )
        language = ranked[0]
    else:
        language = None
    known = sum(counts.values())
    second = counts.most_common(2)[1][1] if len(counts) >= 2 else 0
    mixed = second >= 2 and second >= 0.25 * known
    return LineLanguage(
        language=language,
        script=script_of_text(line),
        words=tuple(words),
        word_scripts=tuple(scripts),
        word_languages=tuple(word_languages),
        mixed=mixed,
    )


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

    Lines without evidence take the dominant language of the track's other Latin lines (or of
    the whole track); words of unknown language in them count for that language too.
    """
    analyses = [identify_line(line) for line in lines]
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
