"""The lyrics embedding says how far it is ("embedded n/total lyrics"), and slicing the work for
those lines changes no vector."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest

from tasks.lyrics.embedding import (
    EncoderSettings,
    TransformerLyricsEncoder,
    embed_texts,
    resolve_encoder,
)
from tests.lyrics.tiny_xlmr import build_tiny_xlmr

EMBEDDING_LOGGER = "tasks.lyrics.embedding"
WORDS = [
    "river",
    "night",
    "dance",
    "rain",
    "gaan",
    "bhalobashi",
    "amor",
    "noche",
    "summer",
    "heart",
    "light",
    "fire",
]
# 25 different short texts, 2 of them repeated: 25 distinct lyrics to embed
TEXTS = [f"{WORDS[i % 12]} {WORDS[(i * 5) % 12]} {WORDS[(i * 7 + 3) % 12]} {i}" for i in range(25)]
TEXTS += TEXTS[:2]


@pytest.fixture(scope="module")
def tiny_xlmr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_xlmr(TEXTS * 2, tmp_path_factory.mktemp("tiny-xlmr"))


def progress_counts(caplog: pytest.LogCaptureFixture) -> list[tuple[int, int]]:
    lines = [r.getMessage() for r in caplog.records if r.name == EMBEDDING_LOGGER]
    found = [re.fullmatch(r"embedded (\d+)/(\d+) lyrics", line) for line in lines]
    return [(int(m[1]), int(m[2])) for m in found if m]


def test_transformer_embedding_reports_how_many_lyrics_are_done(
    tiny_xlmr: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = EncoderSettings(model=str(tiny_xlmr), max_tokens=24, batch_size=2)
    encoder = resolve_encoder(settings)
    caplog.set_level(logging.INFO, logger=EMBEDDING_LOGGER)

    run = embed_texts(TEXTS, [None] * len(TEXTS), encoder, settings, tmp_path / "cache")

    counts = progress_counts(caplog)
    assert counts[-1] == (25, 25)  # distinct texts: the repeated ones are embedded once
    assert all(total == 25 for _, total in counts)
    done = [n for n, _ in counts]
    assert done == sorted(set(done))
    assert 3 <= len(counts) <= 11  # a handful of lines, not one per text
    # slicing the work for the progress lines changes no vector
    whole = TransformerLyricsEncoder(tiny_xlmr, max_tokens=24, batch_size=2).embed(TEXTS)
    np.testing.assert_allclose(run.matrix, whole, atol=1e-5)


def test_nothing_to_embed_means_no_progress_lines(
    tiny_xlmr: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = EncoderSettings(model=str(tiny_xlmr), max_tokens=24, batch_size=2)
    encoder = resolve_encoder(settings)
    embed_texts(TEXTS[:4], [None] * 4, encoder, settings, tmp_path)
    caplog.set_level(logging.INFO, logger=EMBEDDING_LOGGER)
    again = embed_texts(TEXTS[:4], [None] * 4, encoder, settings, tmp_path)
    assert again.cached == 4
    assert progress_counts(caplog) == []


def test_the_offline_encoder_reports_its_one_pass(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = EncoderSettings(kind="char-ngram", fallback_dims=4)
    caplog.set_level(logging.INFO, logger=EMBEDDING_LOGGER)
    embed_texts(TEXTS, [None] * len(TEXTS), resolve_encoder(settings), settings, tmp_path)
    assert progress_counts(caplog) == [(len(TEXTS), len(TEXTS))]
