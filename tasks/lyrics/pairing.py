"""Pairing lyrics documents with ingested tracks, most certain evidence first.

Methods, in order of certainty (`PAIR_METHODS`):

1. `manifest`  - the track's `lyrics_path` (from the ingest manifest) names this file;
2. `track_id`  - the document carries the track id (a table's `track_id` column);
3. `file_stem` - the file name stem is the track id or the audio file's stem
   (case-insensitive): `blues.00012.lrc` for `blues.00012.wav`;
4. `fuzzy`     - rapidfuzz `token_sort_ratio` between the document's "artist title" (table
   columns, LRC `[ar:]`/`[ti:]` tags, or a file name "Artist - Title") and each track's
   metadata, both reduced to `phonetic_key`s (romanized and spelling-folded), so
   "আমার সোনার বাংলা.txt" scores 100 against the title "Amar Sonar Bangla". Only tried when no
   exact method applies.

   Arabic script writes no short vowels, so its romanization ("حبيبي" -> "hbyby") is far from
   the Latin spelling ("Habibi"). Where either side of a comparison is in Arabic script (Arabic,
   Persian, Urdu), the score is the better of the phonetic-key comparison and a comparison of
   `consonant_skeleton`s: both sides reduced to classes of consonants, without vowels, so
   "حبيبي" and "Habibi" are both "hbb", "قلبي" and "Qalbi" both "klb".

Every pair records its method and score (100 for exact methods). A fuzzy candidate is
accepted only when its score is at least `min_score` and beats the runner-up by more than
`ambiguity_margin`; otherwise the document is left unpaired ("low_score" or "ambiguous") with
its two best candidates: never guessed. Each track gets at most one document and each
document at most one track: pairs are granted in order of certainty (then score), and a
document whose track was already taken is listed as a "conflict" loser. Documents naming a
quarantined track are listed as "track_quarantined", a table row whose `track_id` matches no
track and that gives no name as "unknown_track_id".

The defaults (`min_score` 80, `ambiguity_margin` 8) were checked on generated demo collections
(Bengali-script file names against romanized metadata): right pairs scored >= 81, the best
wrong candidate of a paired file <= 87 but always >= 13 points below the right one, orphan
files <= 59.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field
from rapidfuzz import fuzz, process

from tasks.lyrics.romanize import phonetic_key
from tasks.lyrics.scripts import script_counts
from tasks.lyrics.sources import LyricsDocument, resolve_lyrics_path, split_artist_title

PAIR_METHODS: tuple[str, ...] = ("manifest", "track_id", "file_stem", "fuzzy")
"""Pairing methods, most certain first."""

UNPAIRED_SCHEMA = {
    "lyrics_path": pl.String,
    "reason": pl.String,
    "detail": pl.String,
    "best_track_id": pl.String,
    "best_score": pl.Float64,
    "second_track_id": pl.String,
    "second_score": pl.Float64,
}


class PairingSettings(BaseModel):
    """How sure a fuzzy name match must be before lyrics are given to a track."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_score: float = Field(
        80.0, ge=0, le=100, description="Lowest fuzzy score (0-100) accepted as a pair."
    )
    ambiguity_margin: float = Field(
        8.0,
        ge=0,
        le=100,
        description="A fuzzy best candidate must beat the runner-up by more than this.",
    )


@dataclass(frozen=True)
class Pair:
    track_id: str
    document_index: int
    method: str
    score: float


@dataclass(frozen=True)
class Unpaired:
    document_index: int
    reason: str
    detail: str
    best_track_id: str | None = None
    best_score: float | None = None
    second_track_id: str | None = None
    second_score: float | None = None


@dataclass(frozen=True)
class PairingResult:
    """`pairs` maps track id -> Pair; `unpaired` lists every document no track got."""

    pairs: dict[str, Pair]
    unpaired: list[Unpaired]

    def method_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(PAIR_METHODS, 0)
        for pair in self.pairs.values():
            counts[pair.method] += 1
        return counts

    def unpaired_table(self, documents: list[LyricsDocument]) -> pl.DataFrame:
        rows = [
            {
                "lyrics_path": documents[u.document_index].source,
                "reason": u.reason,
                "detail": u.detail,
                "best_track_id": u.best_track_id,
                "best_score": u.best_score,
                "second_track_id": u.second_track_id,
                "second_score": u.second_score,
            }
            for u in self.unpaired
        ]
        return pl.DataFrame(rows, schema=UNPAIRED_SCHEMA)


@dataclass(frozen=True)
class _Candidate:
    document_index: int
    track_id: str
    method: str
    score: float

    @property
    def order(self) -> tuple[int, float, int]:
        return (PAIR_METHODS.index(self.method), -self.score, self.document_index)


def _track_name(artist: str | None, title: str | None) -> str:
    return " ".join(part for part in (artist, title) if part)


def _document_names(document: LyricsDocument) -> tuple[str | None, str | None]:
    """(artist, title) the document gives, from its fields or else its file name."""
    if document.title or document.artist:
        return document.artist, document.title
    if document.stem:
        return split_artist_title(document.stem)
    return None, None


# Arabic-script letters -> consonant classes (upper case, so the Latin pass leaves them alone).
# Letters that also write vowels (ا و ي ى ی ے), hamza and its seats, ain and ta marbuta have
# no class: Latin spellings write them as vowels, apostrophes, "3" or not at all. They become a
# vowel placeholder so that the consonants around them stay two ("حبيب" is "hbb", not "hb").
_ARABIC_CLASSES = {
    **dict.fromkeys("اأإآٱءؤئويىیےۓةۃع", "a"),
    **dict.fromkeys("بپ", "B"),
    **dict.fromkeys("تطثٹ", "T"),
    **dict.fromkeys("جژزغگ", "J"),
    "چ": "C",
    **dict.fromkeys("حهہ", "H"),
    **dict.fromkeys("خقكک", "K"),
    **dict.fromkeys("دذضظڈ", "D"),
    **dict.fromkeys("رڑ", "R"),
    **dict.fromkeys("سصش", "S"),
    **dict.fromkeys("فڤ", "F"),
    "ل": "L",
    "م": "M",
    **dict.fromkeys("نں", "N"),
}
# Latin spellings -> the same classes, digraphs first. g, j and z share a class because Arabic
# names are romanized through dialects that disagree on them (Egyptian ج is "g", Persian ژ
# "zh"); k, q, c, kh share one because ق and خ are "k" in many of them. Arabizi digits inside
# words stand for letters (7 = ح, 5 = خ, 9 = ق, 6 = ط; 3 = ع and 2 = ء have no class).
_LATIN_CLASSES = (
    ("tch", "C"),
    ("sch", "S"),
    ("kh", "K"),
    ("gh", "J"),
    ("sh", "S"),
    ("ch", "C"),
    ("th", "T"),
    ("dh", "D"),
    ("zh", "J"),
    ("ph", "F"),
    ("ck", "K"),
    ("x", "KS"),
    *(
        (letter, cls)
        for cls, letters in {"B": "bp", "T": "t", "D": "d", "J": "gjz"}.items()
        for letter in letters
    ),
    *(
        (letter, cls)
        for cls, letters in {"K": "kqc", "S": "s", "F": "fv", "H": "h"}.items()
        for letter in letters
    ),
    *((letter, letter.upper()) for letter in "lmnr"),
    *(("7", "H"), ("5", "K"), ("9", "K"), ("6", "T")),
)
_DOUBLED = re.compile(r"(.)\1+")


def consonant_skeleton(text: str) -> str:
    """The consonants of a name as classes, one lower-case letter per sound, words separated by
    spaces: what an Arabic-script spelling and a Latin one still share.

    Vowels, w and y (they write vowels as often as consonants), ain, hamza, diacritics and
    doubled letters are dropped, similar consonants folded (see `_LATIN_CLASSES`), and a
    word-final h too (Persian and Arabic ه often ends a word on a vowel). "حبيبي" and "Habibi"
    give "hbb", "عمرو دياب" and "Amr Diab" give "mr db", "زندگی" and "Zindagi" "jndj".
    """
    words = []
    for word in re.split(r"[^\w]+", unicodedata.normalize("NFC", text).lower()):
        if word.isdecimal():
            words.append(str(int(word)))  # a number ("Track 2", "٢") is kept as one
            continue
        word = "".join(_ARABIC_CLASSES.get(char, char) for char in word)
        for source, target in _LATIN_CLASSES:
            word = word.replace(source, target)
        # Doubled letters fold before the vowels go: "Tamally" has one l, "Habibi" two b's.
        word = "".join(c for c in _DOUBLED.sub(r"\1", word) if c.isupper())
        word = word.removesuffix("H") if len(word) > 1 else word
        if word:
            words.append(word.lower())
    return " ".join(words)


def _has_arabic_script(text: str | None) -> bool:
    return bool(text) and script_counts(text)["Arab"] > 0


def _key_scores(
    queries: list[tuple[str, str]], tracks: list[tuple[str, str]], key: Callable[[str], str]
) -> np.ndarray:
    """Scores (n_queries, n_tracks), 0-100: the best of the full-name comparison and, for
    queries that give only a title (empty second item), the title-only one, under `key`."""
    full = process.cdist(
        [key(name) for name, _ in queries],
        [key(name) for name, _ in tracks],
        scorer=fuzz.token_sort_ratio,
        dtype=np.float32,
        workers=1,
    )
    title_only = process.cdist(
        [key(title) if title else "" for _, title in queries],
        [key(title) for _, title in tracks],
        scorer=fuzz.token_sort_ratio,
        dtype=np.float32,
        workers=1,
    )
    # An empty key on either side scores 0 in rapidfuzz already; a title-only query is empty
    # for documents that name an artist, so this maximum only helps title-only documents.
    return np.maximum(full, title_only)


def _fuzzy_scores(
    documents: list[LyricsDocument], indices: list[int], tracks: pl.DataFrame
) -> np.ndarray:
    """Scores (len(indices), n_tracks), 0-100: phonetic keys everywhere, and the better of that
    and the consonant skeletons where the document's or the track's name is in Arabic script."""
    track_names = [
        (_track_name(a, t), t or "")
        for a, t in zip(tracks["artist"].to_list(), tracks["title"].to_list(), strict=True)
    ]
    queries = []
    for index in indices:
        artist, title = _document_names(documents[index])
        queries.append((_track_name(artist, title), (title or "") if artist is None else ""))
    scores = _key_scores(queries, track_names, phonetic_key)
    arabic_queries = np.array([_has_arabic_script(name) for name, _ in queries])
    arabic_tracks = np.array([_has_arabic_script(name) for name, _ in track_names])
    if arabic_queries.any() or arabic_tracks.any():
        skeletons = _key_scores(queries, track_names, consonant_skeleton)
        use = arabic_queries[:, None] | arabic_tracks[None, :]
        scores = np.where(use, np.maximum(scores, skeletons), scores)
    return scores


@dataclass(frozen=True)
class _TrackIndex:
    """The tracks, looked up the ways the exact methods need."""

    ok: pl.DataFrame
    ok_ids: list[str]
    quarantined: set[str]
    by_id: dict[str, str]  # casefolded id -> id
    by_stem: dict[str, set[str]]  # casefolded id or audio file stem -> ids
    by_manifest: dict[str, list[str]]  # resolved lyrics path -> ids of ok tracks naming it


def _index_tracks(tracks: pl.DataFrame, data_root: Path) -> _TrackIndex:
    tracks = tracks.with_columns(
        pl.col(c).cast(pl.String) for c in ("title", "artist", "lyrics_path")
    )
    ok = tracks.filter(pl.col("status") == "ok")
    ok_ids = ok["track_id"].to_list()
    by_stem: dict[str, set[str]] = {}
    for tid, path in zip(tracks["track_id"].to_list(), tracks["path"].to_list(), strict=True):
        by_stem.setdefault(tid.casefold(), set()).add(tid)
        if path:
            by_stem.setdefault(Path(path).stem.casefold(), set()).add(tid)
    by_manifest: dict[str, list[str]] = {}
    for tid, value in zip(ok_ids, ok["lyrics_path"].to_list(), strict=True):
        resolved = resolve_lyrics_path(value, data_root)
        if resolved is not None:
            by_manifest.setdefault(str(resolved), []).append(tid)
    return _TrackIndex(
        ok=ok,
        ok_ids=ok_ids,
        quarantined=set(tracks.filter(pl.col("status") != "ok")["track_id"].to_list()),
        by_id={tid.casefold(): tid for tid in tracks["track_id"].to_list()},
        by_stem=by_stem,
        by_manifest=by_manifest,
    )


def _exact_match(
    index: int, document: LyricsDocument, tracks: _TrackIndex
) -> list[_Candidate] | Unpaired | None:
    """The exact candidates of one document, the reason it stays unpaired, or None when only a
    fuzzy match can tell."""
    exact = [
        _Candidate(index, tid, "manifest", 100.0)
        for tid in tracks.by_manifest.get(document.source, [])
    ]
    if not exact and document.track_id:
        tid = tracks.by_id.get(document.track_id.casefold())
        if tid is not None:
            exact.append(_Candidate(index, tid, "track_id", 100.0))
    if not exact and document.stem:
        stem_matches = sorted(tracks.by_stem.get(document.stem.casefold(), set()))
        if len(stem_matches) > 1:
            return Unpaired(
                index,
                "ambiguous",
                f"file name matches {len(stem_matches)} tracks: " + ", ".join(stem_matches[:5]),
                stem_matches[0],
                100.0,
                stem_matches[1],
                100.0,
            )
        exact.extend(_Candidate(index, tid, "file_stem", 100.0) for tid in stem_matches)
    usable = [c for c in exact if c.track_id not in tracks.quarantined]
    if usable:
        return usable
    if exact:
        hit = exact[0]
        return Unpaired(
            index,
            "track_quarantined",
            f"names track {hit.track_id} ({hit.method}), which the ingest quarantined",
            hit.track_id,
            hit.score,
        )
    if document.track_id and _document_names(document) == (None, None):
        return Unpaired(index, "unknown_track_id", f"no track has id '{document.track_id}'")
    return None


def _fuzzy_match(
    documents: list[LyricsDocument],
    indices: list[int],
    tracks: _TrackIndex,
    settings: PairingSettings,
) -> tuple[list[_Candidate], list[Unpaired]]:
    """Fuzzy candidates of the documents `indices`: the best-scoring track when it is sure
    enough (`settings`), else the reason (low score, ambiguous) with the two best tracks."""
    if not tracks.ok_ids:
        return [], [Unpaired(i, "low_score", "no ok track to pair with") for i in indices]
    candidates: list[_Candidate] = []
    unpaired: list[Unpaired] = []
    scores = _fuzzy_scores(documents, indices, tracks.ok)
    for row, index in enumerate(indices):
        order = np.argsort(-scores[row], kind="stable")
        best, best_score = tracks.ok_ids[order[0]], float(scores[row, order[0]])
        second = tracks.ok_ids[order[1]] if len(order) > 1 else None
        second_score = float(scores[row, order[1]]) if len(order) > 1 else None
        name = _track_name(*_document_names(documents[index])) or "(no name)"
        if best_score < settings.min_score:
            reason = "low_score"
            detail = f"'{name}': best fuzzy score {best_score:.1f} < {settings.min_score:g}"
        elif second_score is not None and best_score - second_score <= settings.ambiguity_margin:
            reason = "ambiguous"
            detail = (
                f"'{name}': {best} ({best_score:.1f}) and {second} ({second_score:.1f}) "
                f"are within {settings.ambiguity_margin:g} points"
            )
        else:
            candidates.append(_Candidate(index, best, "fuzzy", round(best_score, 2)))
            continue
        unpaired.append(Unpaired(index, reason, detail, best, best_score, second, second_score))
    return candidates, unpaired


def _grant(
    candidates: list[_Candidate], documents: list[LyricsDocument]
) -> tuple[dict[str, Pair], list[Unpaired]]:
    """Pairs granted in order of certainty, then score: each track gets one document, each
    document one track (a manifest may give one file to several tracks); the documents left
    without a track are "conflict" losers."""
    pairs: dict[str, Pair] = {}
    paired_documents: set[int] = set()
    losers: dict[int, _Candidate] = {}
    for candidate in sorted(candidates, key=lambda c: c.order):
        manifest = candidate.method == "manifest"
        if candidate.track_id in pairs or (
            candidate.document_index in paired_documents and not manifest
        ):
            losers.setdefault(candidate.document_index, candidate)
            continue
        pairs[candidate.track_id] = Pair(
            candidate.track_id, candidate.document_index, candidate.method, candidate.score
        )
        paired_documents.add(candidate.document_index)
    conflicts = []
    for index, candidate in sorted(losers.items()):
        if index in paired_documents:
            continue
        winner = pairs.get(candidate.track_id)
        detail = (
            f"track {candidate.track_id} ({candidate.method}, {candidate.score:.1f}) already has "
            f"{documents[winner.document_index].source} ({winner.method}, {winner.score:.1f})"
            if winner
            else f"no free track for {candidate.method} candidate {candidate.track_id}"
        )
        conflicts.append(Unpaired(index, "conflict", detail, candidate.track_id, candidate.score))
    return pairs, conflicts


def pair_lyrics(
    documents: list[LyricsDocument],
    tracks: pl.DataFrame,
    settings: PairingSettings,
    *,
    data_root: Path | None = None,
) -> PairingResult:
    """Pair `documents` with `tracks` (rules in the module docstring).

    `tracks` has at least `track_id`, `path`, `status`, `title`, `artist`, `lyrics_path`
    (the ingest's tracks.parquet); only rows with status "ok" receive lyrics. `data_root`
    resolves relative `lyrics_path` values (default: the current folder).
    """
    index = _index_tracks(tracks, data_root or Path.cwd())
    candidates: list[_Candidate] = []
    unpaired: list[Unpaired] = []
    needs_fuzzy: list[int] = []
    for position, document in enumerate(documents):
        match = _exact_match(position, document, index)
        if match is None:
            needs_fuzzy.append(position)
        elif isinstance(match, Unpaired):
            unpaired.append(match)
        else:
            candidates.extend(match)
    if needs_fuzzy:
        fuzzy, not_sure = _fuzzy_match(documents, needs_fuzzy, index, settings)
        candidates += fuzzy
        unpaired += not_sure
    pairs, conflicts = _grant(candidates, documents)
    unpaired = sorted(unpaired + conflicts, key=lambda u: u.document_index)
    return PairingResult(pairs=pairs, unpaired=unpaired)
