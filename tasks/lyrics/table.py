"""The lyrics table of a work directory: sources -> pairing -> normalization -> languages.

`build_lyrics_table` writes `lyrics.parquet` (one row per ok track, `LYRICS_SCHEMA`) and
`unpaired_lyrics.csv` (every lyrics document no track got, with the reason and the best
candidates). Tracks without lyrics are rows like the others: `has_lyrics` False, language null.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl
from prefect import task
from pydantic import BaseModel, ConfigDict, Field

from tasks.core.atomic import replaced_atomically
from tasks.core.caching import cached_on
from tasks.core.hashing import file_sha256
from tasks.core.workspace import Workspace
from tasks.lyrics.language import summarize_track
from tasks.lyrics.normalize import normalize_lines
from tasks.lyrics.pairing import PairingSettings, pair_lyrics
from tasks.lyrics.romanize import romanize
from tasks.lyrics.sources import LyricsDocument, LyricsSources, read_lyrics_sources

LYRICS_SCHEMA = {
    "track_id": pl.String,
    "lyrics_path": pl.String,
    "pair_method": pl.String,
    "pair_score": pl.Float64,
    "text": pl.String,
    "text_romanized": pl.String,
    "line_languages": pl.List(pl.String),
    "line_times_s": pl.List(pl.Float64),
    "language": pl.String,
    "script": pl.String,
    "romanized": pl.Boolean,
    "language_mix": pl.String,
    "code_mixed": pl.Boolean,
    "has_lyrics": pl.Boolean,
    "text_sha256": pl.String,
    "note": pl.String,
}
"""Columns of lyrics.parquet. `text` holds the normalized lines joined by newlines (null when
no lyrics file was paired, "" when the paired file has no lyric line); `text_romanized` the
same lines romanized; `line_languages`/`line_times_s` one entry per line (LRC time in seconds
or null); `language` the dominant ISO 639-1 code; `script` the dominant ISO 15924 script;
`language_mix` a JSON object language -> share of words; `pair_score` 0-100; `note` what reading
did to the lyrics (cut at `max_lyrics_bytes`) or why a named file was not read (refused)."""


class LyricsTableSummary(BaseModel):
    """What `build_lyrics_table` wrote and found (the tables themselves stay on disk)."""

    model_config = ConfigDict(frozen=True)

    lyrics_table: Path
    unpaired_lyrics: Path
    lyrics_sha256: str = Field(description="sha256 of lyrics.parquet: keys the embedding cache.")
    n_documents: int = Field(description="Lyrics documents read from the sources.")
    n_tracks: int = Field(description="Rows of lyrics.parquet: the ok tracks.")
    n_with_lyrics: int
    n_romanized: int = Field(description="Tracks whose lyrics are written in Latin romanization.")
    n_code_mixed: int
    pair_counts: dict[str, int] = Field(description="Paired tracks per method (PAIR_METHODS).")
    n_unpaired: int = Field(description="Documents no track got (rows of unpaired_lyrics.csv).")
    unpaired_reasons: dict[str, int]
    languages: dict[str, int] = Field(
        description="Tracks per dominant language, most first; 'none' = tracks without lyrics."
    )


def _row_for(
    track_id: str, document: LyricsDocument | None, method: str | None, score: float | None
) -> dict[str, Any]:
    if document is None:
        return {
            "track_id": track_id,
            "lyrics_path": None,
            "pair_method": None,
            "pair_score": None,
            "text": None,
            "text_romanized": None,
            "line_languages": [],
            "line_times_s": [],
            "language": None,
            "script": None,
            "romanized": False,
            "language_mix": "{}",
            "code_mixed": False,
            "has_lyrics": False,
            "text_sha256": None,
            "note": None,
        }
    lines, positions = normalize_lines(list(document.lines))
    times = [document.line_times_s[p] for p in positions]
    summary = summarize_track(lines)
    text = "\n".join(lines)
    return {
        "track_id": track_id,
        "lyrics_path": document.source,
        "pair_method": method,
        "pair_score": score,
        "text": text,
        "text_romanized": "\n".join(romanize(line) for line in lines),
        "line_languages": summary.line_languages,
        "line_times_s": times,
        "language": summary.language,
        "script": summary.script,
        "romanized": summary.romanized,
        "language_mix": json.dumps(summary.language_mix, ensure_ascii=False),
        "code_mixed": summary.code_mixed,
        "has_lyrics": bool(lines),
        "text_sha256": hashlib.sha256(text.encode()).hexdigest(),
        "note": document.note,
    }


@task(name="lyrics table", cache_policy=cached_on("tasks.lyrics"), persist_result=True)
def build_lyrics_table(
    workspace: Workspace,
    tracks_sha256: str,
    sources: LyricsSources,
    pairing: PairingSettings,
    data_root: Path,
) -> LyricsTableSummary:
    """Pair the lyrics of `sources` with the ok tracks of `workspace` and write the tables.

    `tracks_sha256` (of tracks.parquet) and `sources.fingerprint` only key Prefect's cache (the
    work dir's store id and the source of the lyrics package are in the key too).
    `data_root` resolves relative manifest `lyrics_path`s.

    Raises:
        FileNotFoundError: the work dir has no tracks.parquet (run the ingest first).
    """
    del tracks_sha256  # cache key only
    if not workspace.tracks_table.exists():
        raise FileNotFoundError(
            f"no tracks table in {workspace.root}: run `python -m flows ingest DATA` first"
        )
    tracks = pl.read_parquet(workspace.tracks_table)
    documents = read_lyrics_sources(sources)
    result = pair_lyrics(documents, tracks, pairing, data_root=Path(data_root))

    rows = []
    for track_id in tracks.filter(pl.col("status") == "ok")["track_id"].to_list():
        pair = result.pairs.get(track_id)
        if pair is None:
            rows.append(_row_for(track_id, None, None, None))
        else:
            rows.append(_row_for(track_id, documents[pair.document_index], pair.method, pair.score))
    table = pl.DataFrame(rows, schema=LYRICS_SCHEMA)
    with replaced_atomically(workspace.lyrics_table) as tmp:
        table.write_parquet(tmp)
    unpaired = result.unpaired_table(documents)
    unpaired.write_csv(workspace.unpaired_lyrics)

    with_lyrics = table.filter(pl.col("has_lyrics"))
    languages = Counter(with_lyrics["language"].fill_null("und").to_list())
    languages["none"] = table.height - with_lyrics.height
    return LyricsTableSummary(
        lyrics_table=workspace.lyrics_table,
        unpaired_lyrics=workspace.unpaired_lyrics,
        lyrics_sha256=file_sha256(workspace.lyrics_table),
        n_documents=len(documents),
        n_tracks=table.height,
        n_with_lyrics=with_lyrics.height,
        n_romanized=int(with_lyrics["romanized"].sum()),
        n_code_mixed=int(with_lyrics["code_mixed"].sum()),
        pair_counts=result.method_counts(),
        n_unpaired=unpaired.height,
        unpaired_reasons=dict(Counter(unpaired["reason"].to_list())),
        languages=dict(languages.most_common()),
    )
