"""Lyrics embeddings: XLM-RoBERTa through transformers, or the offline char n-gram encoder.

Transformer encoder (`kind="transformer"`): `AutoTokenizer`/`AutoModel` loaded with
`local_files_only=True` from a local folder or the Hugging Face cache (no hub is reachable).
A text is tokenized without truncation and cut into chunks of at most `max_tokens` tokens
(special tokens included, capped by the model's position table); each chunk is mean-pooled
over its tokens with the attention mask, and the text's embedding is the token-weighted mean
of its chunks, so long lyrics are averaged, never silently cut. Chunks are batched (sorted by
length to pad less), run on CPU or CUDA (fp16 autocast on CUDA). The input is the original
text (XLM-R reads every script).

Offline encoder (`kind="char-ngram"`, and the fallback when the configured model is neither a
local folder nor in the HF cache): TF-IDF over character n-grams (scikit-learn, analyzer
`char_wb`, n-grams 2-4, sublinear tf) of the original text plus its romanized form, reduced
with TruncatedSVD to `fallback_dims` dimensions, capped by the data (at most the number of
texts and the number of n-grams - 1). The romanized half puts Bangla in Bengali script and
Banglish in one space. The fitted reduction depends on the whole corpus, so its encoder id
includes a digest of the corpus: an unchanged corpus is served from the cache, a changed one
is re-fitted (cheap: no model).

Both are L2-normalized when `normalize` is set (default), so the two encoders give vectors of
one scale. Embeddings are cached in `workspace.embedding_store/<encoder>/<sha256 of the input
text>.npy`; the encoder id (model, revision or weights digest, chunk size, normalization) is
part of the path, so changing any of them never returns stale vectors, and unchanged lyrics
are never embedded twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
from prefect import task
from pydantic import BaseModel, ConfigDict, Field

from tasks.core.caching import cached_on
from tasks.core.errors import UserInputError
from tasks.core.progress import CountProgress, run_logger_or
from tasks.core.workspace import Workspace

_log = logging.getLogger(__name__)

CHAR_NGRAM_KIND = "char-ngram"
TRANSFORMER_KIND = "transformer"


class EncoderSettings(BaseModel):
    """Which text encoder embeds the lyrics, and how."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["transformer", "char-ngram"] = Field(
        TRANSFORMER_KIND,
        description="'transformer' (falls back to 'char-ngram' when the model is not available "
        "offline) or 'char-ngram' to use the offline encoder directly.",
    )
    model: str = Field(
        "xlm-roberta-base",
        description="Hugging Face model name (must already be in the local HF cache) or a local "
        "folder with config, weights and tokenizer.",
    )
    batch_size: int = Field(8, ge=1, le=1024, description="Chunks per forward pass.")
    max_tokens: int = Field(
        256,
        ge=8,
        le=8192,
        description="Tokens per chunk, special tokens included; longer lyrics are split into "
        "chunks whose embeddings are averaged (capped by the model's position table).",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="'auto' uses CUDA when available, else the CPU."
    )
    fallback_dims: int = Field(
        64, ge=1, le=4096, description="Dimensions of the offline char n-gram encoder (SVD)."
    )
    normalize: bool = Field(True, description="L2-normalize every embedding.")


class ResolvedEncoder(BaseModel):
    """The encoder a run will really use.

    `encoder_id` names it in caches and outputs (for the char n-gram encoder the corpus digest
    is appended when embedding); `notice` is the one-line explanation of a fallback, else None.
    """

    model_config = ConfigDict(frozen=True)

    kind: Literal["transformer", "char-ngram"]
    model_path: str | None
    encoder_id: str
    notice: str | None = None


def _digest_model_folder(folder: Path) -> str:
    """Short digest of a local model: config/tokenizer files in full, weight files by size plus
    their first and last MiB (hashing gigabytes every run would be slow; retrained weights
    differ in those bytes too)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        digest.update(path.name.encode())
        size = path.stat().st_size
        digest.update(str(size).encode())
        with path.open("rb") as handle:
            if size <= 4 << 20:
                digest.update(handle.read())
            else:
                digest.update(handle.read(1 << 20))
                handle.seek(-(1 << 20), 2)
                digest.update(handle.read())
    return digest.hexdigest()[:12]


def _char_ngram_base_id(settings: EncoderSettings) -> str:
    dims, norm = settings.fallback_dims, int(settings.normalize)
    return f"char-ngram-tfidf-svd:char_wb2-4:d{dims}:norm{norm}"


def resolve_encoder(settings: EncoderSettings) -> ResolvedEncoder:
    """Decide which encoder to use, without loading it.

    A transformer model is used when `settings.model` is a local folder or a snapshot in the
    Hugging Face cache. Otherwise the offline char n-gram encoder is used and `notice` says
    why in one line. A local folder that exists but cannot be loaded is an error at load time
    (not a silent fallback).
    """
    if settings.kind == CHAR_NGRAM_KIND:
        return ResolvedEncoder(
            kind=CHAR_NGRAM_KIND, model_path=None, encoder_id=_char_ngram_base_id(settings)
        )
    suffix = f":max{settings.max_tokens}:norm{int(settings.normalize)}"
    local = Path(settings.model).expanduser()
    if local.is_dir():
        local = local.resolve()
        return ResolvedEncoder(
            kind=TRANSFORMER_KIND,
            model_path=str(local),
            encoder_id=f"transformer:{local.name}@{_digest_model_folder(local)}{suffix}",
        )
    try:
        from huggingface_hub import snapshot_download

        snapshot = Path(snapshot_download(repo_id=settings.model, local_files_only=True))
    except (OSError, ValueError):
        snapshot = None
    if snapshot is not None and (snapshot / "config.json").exists():
        return ResolvedEncoder(
            kind=TRANSFORMER_KIND,
            model_path=str(snapshot),
            encoder_id=f"transformer:{settings.model}@{snapshot.name[:12]}{suffix}",
        )
    notice = (
        f"lyrics encoder '{settings.model}' is not available offline (not a local folder and "
        f"not in the Hugging Face cache); using the offline char n-gram TF-IDF + SVD encoder "
        f"({settings.fallback_dims} dims) instead"
    )
    return ResolvedEncoder(
        kind=CHAR_NGRAM_KIND,
        model_path=None,
        encoder_id=_char_ngram_base_id(settings),
        notice=notice,
    )


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
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, np.asarray(vector, dtype=np.float32))
        tmp.replace(path)


# ---------------------------------------------------------------------------------------------
# Transformer encoder
# ---------------------------------------------------------------------------------------------


def chunk_token_ids(token_ids: Sequence[int], body_tokens: int) -> list[list[int]]:
    """Split token ids (no special tokens) into consecutive chunks of at most `body_tokens`;
    an empty text gives one empty chunk (its embedding is that of the special tokens)."""
    if body_tokens < 1:
        raise ValueError(f"body_tokens must be >= 1, got {body_tokens}")
    ids = list(token_ids)
    if not ids:
        return [[]]
    return [ids[start : start + body_tokens] for start in range(0, len(ids), body_tokens)]


def _l2_normalize(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.where(norms > 0, norms, 1.0)).astype(np.float32)


class TransformerLyricsEncoder:
    """A transformers encoder loaded from a local folder (mean pooling, chunk averaging).

    Raises:
        ValueError: the folder holds no loadable tokenizer/model (the message names it), or
            device "cuda" is asked for on a machine without CUDA.
    """

    def __init__(
        self,
        model_path: str | Path,
        *,
        max_tokens: int = 256,
        batch_size: int = 8,
        device: str = "auto",
        normalize: bool = True,
    ) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(model_path), local_files_only=True)
            self.model = AutoModel.from_pretrained(str(model_path), local_files_only=True)
        except (OSError, ValueError) as error:
            raise UserInputError(
                f"cannot load the lyrics encoder from {model_path}: {error}".splitlines()[0]
            ) from error
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        elif device == "cuda" and not torch.cuda.is_available():
            raise UserInputError(
                "encoder device 'cuda' requested but no CUDA device is available: "
                "use device 'auto' or 'cpu'"
            )
        self.device = torch.device(device)
        self.model.to(self.device).eval()
        config = self.model.config
        positions = getattr(config, "max_position_embeddings", None) or max_tokens
        # RoBERTa-family position ids start after the padding index: two slots are not usable.
        usable = positions - 2 if "roberta" in (config.model_type or "") else positions
        self.max_tokens = max(3, min(max_tokens, usable))
        self.batch_size = batch_size
        self.normalize = normalize
        self.dim = int(config.hidden_size)
        self.chunks_run = 0  # forward-pass chunks since construction (for tests and logs)

    def _special(self) -> tuple[list[int], list[int]]:
        tok = self.tokenizer
        start = tok.cls_token_id if tok.cls_token_id is not None else tok.bos_token_id
        end = tok.sep_token_id if tok.sep_token_id is not None else tok.eos_token_id
        return ([start] if start is not None else []), ([end] if end is not None else [])

    def token_chunks(self, text: str) -> list[list[int]]:
        """The chunks (with special tokens) `text` is embedded as."""
        start, end = self._special()
        ids = self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
        body = self.max_tokens - len(start) - len(end)
        return [start + chunk + end for chunk in chunk_token_ids(ids, body)]

    def embed_chunks(self, chunks: list[list[int]]) -> np.ndarray:
        """Mean-pooled embedding of each token-id chunk, shape (n_chunks, dim), float32."""
        import torch

        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        out = np.zeros((len(chunks), self.dim), dtype=np.float32)
        order = sorted(range(len(chunks)), key=lambda i: len(chunks[i]))
        for begin in range(0, len(order), self.batch_size):
            batch = order[begin : begin + self.batch_size]
            width = max(len(chunks[i]) for i in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                ids[row, : len(chunks[i])] = torch.tensor(chunks[i], dtype=torch.long)
                mask[row, : len(chunks[i])] = 1
            ids, mask = ids.to(self.device), mask.to(self.device)
            with (
                torch.inference_mode(),
                torch.autocast(
                    device_type="cuda", dtype=torch.float16, enabled=self.device.type == "cuda"
                ),
            ):
                hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)
            out[batch] = pooled.float().cpu().numpy()
            self.chunks_run += len(batch)
        return out

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of `texts`, shape (len(texts), dim), float32 (rules in the module doc)."""
        per_text = [self.token_chunks(text) for text in texts]
        flat = [chunk for chunks in per_text for chunk in chunks]
        chunk_vectors = self.embed_chunks(flat) if flat else np.zeros((0, self.dim), np.float32)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        position = 0
        for row, chunks in enumerate(per_text):
            weights = np.array([len(c) for c in chunks], dtype=np.float64)
            block = chunk_vectors[position : position + len(chunks)]
            out[row] = (weights[:, None] * block).sum(0) / weights.sum()
            position += len(chunks)
        return _l2_normalize(out) if self.normalize else out


# ---------------------------------------------------------------------------------------------
# Offline encoder
# ---------------------------------------------------------------------------------------------


def char_ngram_embeddings(texts: Sequence[str], *, dims: int, normalize: bool) -> np.ndarray:
    """TF-IDF char_wb 2-4 n-grams + TruncatedSVD, shape (len(texts), d) with
    d = min(dims, len(texts), n_ngrams - 1) (at least 1), float32. Deterministic."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    if not texts:
        return np.zeros((0, dims), dtype=np.float32)
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True)
    try:
        tfidf = vectorizer.fit_transform(texts)
    except ValueError:  # no n-gram at all (every text empty)
        return np.zeros((len(texts), 1), dtype=np.float32)
    n_features = tfidf.shape[1]
    if n_features <= 1:
        reduced = tfidf.toarray()
    else:
        components = max(1, min(dims, len(texts), n_features - 1))
        svd = TruncatedSVD(n_components=components, algorithm="randomized", random_state=0)
        reduced = svd.fit_transform(tfidf)
    reduced = reduced.astype(np.float32)
    return _l2_normalize(reduced) if normalize else reduced


def char_ngram_input(text: str, romanized: str | None) -> str:
    """What the char n-gram encoder reads: the text and, when it differs, its romanized form."""
    if romanized and romanized != text:
        return f"{text}\n{romanized}"
    return text


# ---------------------------------------------------------------------------------------------
# Embedding a set of texts with the cache
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EmbeddingRun:
    """Embeddings of a batch of texts: `matrix` (n, dim) float32, the encoder id that made them,
    and how many were computed now versus read from the cache."""

    matrix: np.ndarray
    encoder_id: str
    computed: int
    cached: int


def embed_texts(
    texts: Sequence[str],
    romanized: Sequence[str | None],
    encoder: ResolvedEncoder,
    settings: EncoderSettings,
    cache_root: Path,
) -> EmbeddingRun:
    """Embed `texts` with `encoder`, reading and filling the cache in `cache_root`.

    `romanized` (same length) is only used by the char n-gram encoder. The transformer is
    loaded only when some text is not in the cache.
    """
    if len(romanized) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(romanized)} romanized forms")
    if encoder.kind == CHAR_NGRAM_KIND:
        inputs = [char_ngram_input(t, r) for t, r in zip(texts, romanized, strict=True)]
        keys = [text_sha256(text) for text in inputs]
        corpus = hashlib.sha256("\n".join(sorted(set(keys))).encode()).hexdigest()[:12]
        encoder_id = f"{encoder.encoder_id}:corpus-{corpus}"
    else:
        inputs = list(texts)
        keys = [text_sha256(text) for text in inputs]
        encoder_id = encoder.encoder_id
    cache = EmbeddingCache(cache_root, encoder_id)
    found = [cache.get(key) for key in keys]
    missing = [i for i, vector in enumerate(found) if vector is None]
    if missing:
        if encoder.kind == CHAR_NGRAM_KIND:
            # The reduction is fitted on the whole corpus: compute all, store all.
            matrix = char_ngram_embeddings(
                inputs, dims=settings.fallback_dims, normalize=settings.normalize
            )
            for key, vector in zip(keys, matrix, strict=True):
                cache.put(key, vector)
            _progress(len(inputs)).advance(len(inputs))
            return EmbeddingRun(matrix, encoder_id, computed=len(inputs), cached=0)
        _embed_missing(inputs, keys, missing, found, encoder, settings, cache)
    dim = found[0].shape[0] if found else _width_without_texts(encoder)
    matrix = np.stack(found).astype(np.float32) if found else np.zeros((0, dim), np.float32)
    return EmbeddingRun(matrix, encoder_id, computed=len(missing), cached=len(keys) - len(missing))


def _progress(total: int) -> CountProgress:
    return CountProgress(run_logger_or(_log), total, verb="embedded", noun="lyrics")


def _embed_missing(
    inputs: Sequence[str],
    keys: Sequence[str],
    missing: Sequence[int],
    found: list[np.ndarray | None],
    encoder: ResolvedEncoder,
    settings: EncoderSettings,
    cache: EmbeddingCache,
) -> None:
    """Embed the texts at positions `missing` (identical ones once) into `cache` and `found`, in
    about ten slices, each cached when done and followed by an "embedded n/total lyrics" line."""
    model = TransformerLyricsEncoder(
        encoder.model_path or settings.model,
        max_tokens=settings.max_tokens,
        batch_size=settings.batch_size,
        device=settings.device,
        normalize=settings.normalize,
    )
    positions: dict[str, list[int]] = {}
    for i in missing:
        positions.setdefault(keys[i], []).append(i)
    unique, progress = list(positions), _progress(len(positions))
    # A multiple of the batch size: slices of one-chunk texts add no half-empty forward pass.
    slice_size = settings.batch_size * max(1, -(-len(unique) // (10 * settings.batch_size)))
    for start in range(0, len(unique), slice_size):
        part = unique[start : start + slice_size]
        vectors = model.embed([inputs[positions[key][0]] for key in part])
        for key, vector in zip(part, vectors, strict=True):
            cache.put(key, vector)
            for i in positions[key]:
                found[i] = vector
        progress.advance(len(part))


def _width_without_texts(encoder: ResolvedEncoder) -> int:
    """Embedding width when there is nothing to embed: the model's hidden size (read from its
    config.json, no loading), or 0 for the char n-gram encoder (it has no fixed width)."""
    if encoder.kind == TRANSFORMER_KIND and encoder.model_path:
        config = Path(encoder.model_path) / "config.json"
        if config.exists():
            return int(json.loads(config.read_text()).get("hidden_size", 0))
    return 0


# ---------------------------------------------------------------------------------------------
# The embeddings table
# ---------------------------------------------------------------------------------------------


def write_lyrics_embeddings(
    path: Path, track_ids: Sequence[str], matrix: np.ndarray, encoder_id: str
) -> Path:
    table = pl.DataFrame(
        {
            "track_id": list(track_ids),
            "embedding": [row.tolist() for row in matrix.astype(np.float32)],
            "encoder_id": [encoder_id] * len(track_ids),
        },
        schema={
            "track_id": pl.String,
            "embedding": pl.List(pl.Float32),
            "encoder_id": pl.String,
        },
    )
    tmp = path.with_suffix(".tmp.parquet")
    table.write_parquet(tmp)
    tmp.replace(path)
    # The sidecar keeps the encoder and the width even when no track has lyrics (no rows).
    embeddings_sidecar(path).write_text(
        json.dumps(
            {"encoder_id": encoder_id, "rows": int(matrix.shape[0]), "dim": int(matrix.shape[1])},
            indent=2,
        )
    )
    return path


def embeddings_sidecar(path: Path) -> Path:
    """`lyrics_embeddings.json` next to the table: encoder id, rows, dim."""
    return path.with_suffix(".json")


def read_lyrics_embeddings(
    workspace: Workspace, track_ids: list[str]
) -> tuple[np.ndarray, np.ndarray, str]:
    """Lyrics embeddings aligned with `track_ids`.

    Returns `(embeddings, has_lyrics, encoder_id)`: embeddings `np.ndarray [shape=(n, dim),
    float32]`, has_lyrics `np.ndarray [shape=(n,), bool]`. Rows of tracks without lyrics (or
    unknown ids) are zeros AND flagged False: consumers must mask them, a zero vector is not
    a lyric. `dim` is the encoder's width even when no track has lyrics (then every
    row is zero), 0 only for a fallback encoder that never saw any text.

    Raises:
        FileNotFoundError: the lyrics stage has not run in this work dir.
    """
    path = workspace.lyrics_embeddings
    if not path.exists():
        raise FileNotFoundError(
            f"no lyrics embeddings in {workspace.root}: run `python -m flows lyrics DATA "
            f"--workdir {workspace.root}` first"
        )
    table = pl.read_parquet(path)
    sidecar = embeddings_sidecar(path)
    meta = json.loads(sidecar.read_text()) if sidecar.exists() else {}
    if table.height:
        encoder_id = table["encoder_id"][0]
        stored = np.asarray(table["embedding"].to_list(), dtype=np.float32)
    else:
        encoder_id = meta.get("encoder_id", "")
        stored = np.zeros((0, int(meta.get("dim", 0))), dtype=np.float32)
    index = {tid: row for row, tid in enumerate(table["track_id"].to_list())}
    out = np.zeros((len(track_ids), stored.shape[1]), dtype=np.float32)
    has_lyrics = np.zeros(len(track_ids), dtype=bool)
    for row, tid in enumerate(track_ids):
        source = index.get(tid)
        if source is not None:
            out[row] = stored[source]
            has_lyrics[row] = True
    return out, has_lyrics, encoder_id


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

    def served_from_cache(self) -> EmbeddedLyrics:
        """As a run that Prefect served from its cache sees it: nothing embedded now."""
        return self.model_copy(update={"computed": 0, "cached": self.shape[0]})


@task(name="lyrics embeddings", cache_policy=cached_on("tasks.lyrics"), persist_result=True)
def embed_lyrics_table(
    workspace: Workspace, lyrics_sha256: str, encoder: ResolvedEncoder, settings: EncoderSettings
) -> EmbeddedLyrics:
    """Embed the lyrics of every track with lyrics in `workspace.lyrics_table` and write
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
    )
    path = write_lyrics_embeddings(
        workspace.lyrics_embeddings, table["track_id"].to_list(), run.matrix, run.encoder_id
    )
    return EmbeddedLyrics(
        embeddings=path,
        encoder_id=run.encoder_id,
        encoder_kind=encoder.kind,
        shape=run.matrix.shape,
        computed=run.computed,
        cached=run.cached,
    )
