"""Language of Latin-script lyrics lines: our romanized-language detector and py3langid.

Romanized Bangla ("Banglish"), romanized Hindi ("Hinglish") and romanized Arabic ("Arabizi") have
no library that knows them, so `identify_latin` scores a run of Latin words for English, Spanish
and those three with two deterministic signals:

1. function-word lexicons (`LATIN_LEXICONS`): each word found in k lexicons adds 1/k to each of
   those languages, so shared words ("na", "ki", "me", "hoy", "tu") count for less; English
   homographs of other languages' words ("son", "sin", "mere", "din", "path") are in the English
   lexicon too, so they never count for one language alone. A word in no lexicon may still show
   its language by its shape (`word_evidence`): English "-ing" and contractions, Spanish
   "-ción/-mente/-idad" and accents (ñ á é í ó ú ¿ ¡), Arabizi digits inside words ("3ala",
   "7abibi");
2. character-trigram profiles (add-one smoothed log-likelihood, turned into a posterior over the
   five languages) built from the lexicons and the sample lines in `_PROFILE_SAMPLES`; weighted
   by `NGRAM_WEIGHT` < 1 so they break ties and label lines without lexicon words, but never
   outvote one exclusive lexicon word.

A line with no evidence (only vocables like "oh", "la la la", or very short unknown words) gets
no language from it.

Every other Latin-script language (French, German, Portuguese, Italian, Turkish, ...) is named
by py3langid (`tasks.lyrics.identifier`). `decide_latin` weighs the two per line:

- our romanized language wins outright when more than half of the line's words are its
  exclusive lexicon words ("ami tomake love kori baby"), or half of them and py3langid is not
  sure (< `SURE`): py3langid knows no romanized Bangla or Hindi and gives such lines low,
  scattered probabilities. With fewer such words it still wins unless py3langid is sure ("je
  t'aime mon amour" is French although "je" and "mon" are Bangla words);
- otherwise a language py3langid names with probability >= `IDENTIFIER_MIN` wins, except that
  English or Spanish from our detector stays when py3langid is not sure and either names the
  other of the two or our lexicons cover half the line: our lexicons are steadier on short
  lines, and Spanish shares many short words with Portuguese and Italian;
- below that, our detector's answer stands (possibly none).

A line is `settled` when the evidence is strong (our lexicon majority, or py3langid sure and
agreeing with the result); `tasks.lyrics.language.summarize_track` lets the track's text
overrule the lines that are not.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from functools import cache

from tasks.lyrics.identifier import LATIN_CANDIDATES, rank_languages
from tasks.lyrics.scripts import words_of

NGRAM_WEIGHT = 0.75
IDENTIFIER_MIN = 0.6
"""Lowest py3langid probability that names a Latin line's language against our detector."""
SURE = 0.9
"""py3langid probability above which its answer settles a line on its own."""

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


ROMANIZED_LANGUAGES: tuple[str, ...] = ("bn", "hi", "ar")
"""Languages of `LATIN_LANGUAGES` that have a script of their own (written here romanized)."""


@dataclass(frozen=True)
class LatinDecision:
    """Language of a Latin-script line (None without evidence), and whether the evidence is
    strong enough that the track should not overrule it."""

    language: str | None
    settled: bool


def exclusive_shares(words: list[str]) -> dict[str, float]:
    """Per language of `LATIN_LANGUAGES`: share of the non-vocable `words` whose evidence
    (`word_evidence`) points to that language alone."""
    content = [w.lower() for w in words if w.lower() not in VOCABLES]
    counts: Counter[str] = Counter()
    for word in content:
        evidence = word_evidence(word)
        if len(evidence) == 1:
            counts[evidence[0]] += 1
    return {lang: n / len(content) for lang, n in counts.items()} if content else {}


def decide_latin(words: list[str]) -> LatinDecision:
    """Language of a run of Latin-script words: our detector or py3langid (rules in the module
    docstring)."""
    ours = identify_latin(words)
    if ours.language is None and _is_vocable_line([w.lower() for w in words]):
        return LatinDecision(None, settled=False)
    own_share = exclusive_shares(words).get(ours.language or "", 0.0)
    ranking = rank_languages(" ".join(words), LATIN_CANDIDATES)
    theirs, probability = next(iter(ranking.items()), (None, 0.0))
    if ours.language in ROMANIZED_LANGUAGES and own_share > 0:
        # py3langid cannot know romanized Bangla or Hindi: only its sure answer outweighs
        # a line that is not mostly our lexicon words.
        if own_share > 0.5 or (own_share == 0.5 and probability < SURE):
            return LatinDecision(ours.language, settled=True)
        if probability < SURE:
            return LatinDecision(ours.language, settled=False)
    if theirs is None or probability < IDENTIFIER_MIN:
        return LatinDecision(ours.language, settled=False)
    if theirs == ours.language:
        return LatinDecision(theirs, settled=probability >= SURE)
    # English and Spanish are ours to tell apart too, and our lexicons are steadier on short
    # lines; a line half made of their words is not overruled by a hesitant py3langid.
    ours_steady = ours.language in ("en", "es") and (own_share >= 0.5 or theirs in ("en", "es"))
    if ours_steady and probability < SURE:
        return LatinDecision(ours.language, settled=False)
    return LatinDecision(theirs, settled=probability >= SURE)
