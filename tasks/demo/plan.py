"""Planning the demo data set: every decision about a track that is not audio.

Genre, lyric language and script, title, artist and how (or whether) its lyrics file is provided
are fixed here, before any file is written, from generators seeded per track and per block
(`tasks.demo.seeding`), so the plan of track k never depends on how many tracks are asked for.
"""

from __future__ import annotations

from typing import Literal, TypeVar

import numpy as np
from anyascii import anyascii
from pydantic import BaseModel, ConfigDict, Field

from tasks.demo.errors import DemoDataError
from tasks.demo.lyrics import safe_file_stem, song_file_name
from tasks.demo.seeding import Stream, stream_rng
from tasks.demo.song_names import SongName, compose_artist, compose_title
from tasks.demo.styles import GENRES, STYLES
from tasks.demo.vocabulary import SCRIPT_OF_LANGUAGE

_Item = TypeVar("_Item")

LyricsStyle = Literal["none", "track_txt", "track_lrc", "artist_title", "artist_title_bengali"]
"""How a track's lyrics are provided: not at all, `<track_id>.txt`, `<track_id>.lrc`, or a file
named "Artist - Title" (in Latin letters, or in Bengali script for Bangla songs)."""

# How lyrics files are provided and how Bangla lyrics are written. Tracks take these in turn from
# seeded blocks (Bangla tracks and the others each have their own sequence): the first items of
# every block are one of each kind, so even a collection of a few dozen tracks has every kind,
# and the whole block fixes the proportions (exactly 1 in 10 without lyrics, for instance).
_LYRICS_STYLES_HEAD: tuple[LyricsStyle, ...] = ("none", "track_txt", "track_lrc", "artist_title")
_LYRICS_STYLES_TAIL: tuple[LyricsStyle, ...] = ("track_txt",) * 3 + (
    "track_lrc",
    "artist_title",
    "artist_title",
)
_BANGLA_LYRICS_STYLES_HEAD: tuple[LyricsStyle, ...] = (
    "none",
    "track_txt",
    "track_lrc",
    "artist_title_bengali",
)
_BANGLA_LYRICS_STYLES_TAIL: tuple[LyricsStyle, ...] = ("track_txt",) * 3 + (
    "track_lrc",
    "artist_title",
    "artist_title_bengali",
)
# Bangla lyrics: (script, code-mixed). Plain Bengali script 1/2, romanized 1/4, Bangla-English
# code-mixed in Bengali or Latin letters 1/8 each.
_BANGLA_VARIANTS_HEAD = (("Beng", False), ("Latn", False), ("Beng", True), ("Latn", True))
_BANGLA_VARIANTS_TAIL = (("Beng", False),) * 3 + (("Latn", False),)


class DemoTrack(BaseModel):
    """Everything decided about one track before any audio is made."""

    model_config = ConfigDict(frozen=True)

    index: int = Field(description="Position in the collection, from 0.")
    track_id: str = Field(description="`<genre>.NNNNN`, numbered per genre from 00000.")
    genre: str
    title: str = Field(description="Title in Latin letters (romanized for bn, hi, ar).")
    artist: str = Field(description="Artist in Latin letters (romanized for bn, hi, ar).")
    title_bengali: str | None = Field(description="Bengali-script title of Bangla songs.")
    artist_bengali: str | None = Field(description="Bengali-script artist of Bangla songs.")
    language: str = Field(description="ISO 639-1 code of the lyrics.")
    script: str = Field(description="ISO 15924 code of the script the lyrics are written in.")
    romanized: bool = Field(description="A non-Latin-script language written in Latin letters.")
    code_mixed: bool = Field(description="Bangla-English code-mixed lyrics.")
    lyrics_style: LyricsStyle = Field(description="How the lyrics file is provided.")
    lyrics_file: str | None = Field(description="File name under lyrics/, None without lyrics.")

    @property
    def has_lyrics(self) -> bool:
        return self.lyrics_style != "none"


def plan_demo_tracks(tracks: int, seed: int = 0) -> list[DemoTrack]:
    """Decide genre, language, script, title, artist and lyrics file of each track; no I/O.

    Genres rotate (track k has genre `GENRES[k % 8]`), so they stay balanced at any size. Track
    k's plan depends only on `seed`, k and the plans of tracks before it (titles are kept
    unique), so it is the same whatever `tracks` is.

    Raises:
        DemoDataError: if `tracks` < 1.
    """
    if tracks < 1:
        raise DemoDataError(f"tracks={tracks} must be at least 1")
    used_titles: set[str] = set()
    seen = {True: 0, False: 0}  # Bangla tracks and the others so far
    plans = []
    for index in range(tracks):
        genre = GENRES[index % len(GENRES)]
        number = index // len(GENRES)
        rng = stream_rng(seed, Stream.METADATA, index)
        language = _language_of(seed, genre, number)
        is_bangla = language == "bn"
        script, code_mixed, style = _script_and_lyrics_style(seed, language, seen[is_bangla])
        seen[is_bangla] += 1
        title, artist = _unique_song(genre, language, rng, used_titles)
        track_id = f"{genre}.{number:05d}"
        plans.append(
            DemoTrack(
                index=index,
                track_id=track_id,
                genre=genre,
                title=title.latin,
                artist=artist.latin,
                title_bengali=title.bengali,
                artist_bengali=artist.bengali,
                language=language,
                script=script,
                romanized=language == "bn" and script == "Latn",
                code_mixed=code_mixed,
                lyrics_style=style,
                lyrics_file=_lyrics_file_name(style, track_id, title, artist, rng),
            )
        )
    return plans


def _script_and_lyrics_style(
    seed: int, language: str, ordinal: int
) -> tuple[str, bool, LyricsStyle]:
    """Script, code-mixing and lyrics style of the `ordinal`-th Bangla track (`language` "bn")
    or the `ordinal`-th of the other tracks: the two kinds take turns in sequences of their own."""
    if language != "bn":
        style = _take_in_turn(
            seed, Stream.LYRICS_STYLES, ordinal, _LYRICS_STYLES_HEAD, _LYRICS_STYLES_TAIL
        )
        return SCRIPT_OF_LANGUAGE[language], False, style
    script, code_mixed = _take_in_turn(
        seed, Stream.BANGLA_VARIANTS, ordinal, _BANGLA_VARIANTS_HEAD, _BANGLA_VARIANTS_TAIL
    )
    style = _take_in_turn(
        seed,
        Stream.BANGLA_LYRICS_STYLES,
        ordinal,
        _BANGLA_LYRICS_STYLES_HEAD,
        _BANGLA_LYRICS_STYLES_TAIL,
    )
    return script, code_mixed, style


def _take_in_turn(
    seed: int, stream: Stream, ordinal: int, head: tuple[_Item, ...], tail: tuple[_Item, ...]
) -> _Item:
    """The `ordinal`-th item of a sequence of seeded blocks, each a shuffle of `head` followed
    by a shuffle of `tail`."""
    block, position = divmod(ordinal, len(head) + len(tail))
    rng = stream_rng(seed, stream, block)
    items = [head[i] for i in rng.permutation(len(head))] + [
        tail[i] for i in rng.permutation(len(tail))
    ]
    return items[position]


def _language_of(seed: int, genre: str, number: int) -> str:
    """Language of the `number`-th track of `genre`, by a golden-ratio sequence over the genre's
    language weights: frequencies follow the weights closely even for a few tracks per genre."""
    weights = STYLES[genre].language_weights
    offset = stream_rng(seed, Stream.LANGUAGE, GENRES.index(genre)).random()
    quantile = (offset + number * 0.6180339887498949) % 1.0
    cumulative = np.cumsum(list(weights.values()))
    position = int(np.searchsorted(cumulative / cumulative[-1], quantile, side="right"))
    return list(weights)[min(position, len(weights) - 1)]


def _song_key(text: str) -> str:
    return " ".join(anyascii(text).lower().split())


def _unique_song(
    genre: str,
    language: str,
    rng: np.random.Generator,
    used_titles: set[str],
) -> tuple[SongName, SongName]:
    """Title and artist with a title no earlier track has (compared after romanizing), so
    pairing lyrics files by "Artist - Title" is never ambiguous."""
    for attempt in range(200):
        title = compose_title(genre, language, rng)
        artist = compose_artist(genre, language, rng)
        if attempt >= 100:  # the vocabulary is exhausted for this language: number the title
            suffix = f" {attempt - 98}"
            title = SongName(title.latin + suffix, title.bengali and title.bengali + suffix)
        title_key = _song_key(title.latin)
        if title_key not in used_titles:
            used_titles.add(title_key)
            return title, artist
    raise RuntimeError("no unique title found in 200 draws")  # unreachable: numbered titles


def _lyrics_file_name(
    style: LyricsStyle,
    track_id: str,
    title: SongName,
    artist: SongName,
    rng: np.random.Generator,
) -> str | None:
    """File name under lyrics/ (None without lyrics). "Artist - Title" names in Latin letters
    sometimes come lower-cased, with underscores or stripped of accents, as real folders do."""
    if style == "none":
        return None
    if style == "track_txt":
        return f"{track_id}.txt"
    if style == "track_lrc":
        return f"{track_id}.lrc"
    if style == "artist_title_bengali" and title.bengali and artist.bengali:
        return song_file_name(artist, title, bengali=True)
    stem = f"{artist.latin} - {title.latin}"
    variant = rng.random()
    if variant < 0.2:
        stem = stem.lower()
    elif variant < 0.3:
        stem = stem.replace(" ", "_")
    elif variant < 0.4:
        stem = anyascii(stem)  # accents lost, as when a file passes through an old tool
    return f"{safe_file_stem(stem)}.txt"
