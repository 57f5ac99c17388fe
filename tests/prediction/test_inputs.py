"""What new tracks bring to the champion: the files, matching settings, lyrics and languages."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from tasks.audio.decoding import AudioConfig
from tasks.audio.features import FeatureConfig
from tasks.audio.ingest import IngestRecord
from tasks.core.workspace import Workspace
from tasks.lyrics.embedding import (
    CHAR_NGRAM_KIND,
    TRANSFORMER_KIND,
    EncoderSettings,
    ResolvedEncoder,
)
from tasks.prediction.champion import PredictionError
from tasks.prediction.inputs import (
    language_conditions,
    lyrics_plan,
    plan_side_inputs,
    prediction_source,
    prediction_workspace,
    trained_lyrics_encoder_id,
)
from tasks.training.model_card import ModelCard
from tests.prediction.cards import card


def test_single_audio_file_becomes_a_one_row_manifest(tmp_path: Path) -> None:
    workspace = Workspace.open(tmp_path / "predict")
    song = tmp_path / "My Song.wav"
    song.write_bytes(b"RIFF")
    manifest = prediction_source(song, workspace)
    table = pl.read_csv(manifest)
    assert table.rows() == [(str(song.resolve()), "My Song")]
    assert prediction_source(tmp_path, workspace) == tmp_path.resolve()
    with pytest.raises(PredictionError, match="not found"):
        prediction_source(tmp_path / "missing.wav", workspace)


def test_predictions_go_to_the_collections_predict_folder_unless_told(tmp_path: Path) -> None:
    default = prediction_workspace(tmp_path / "work", None)
    assert default.root == (tmp_path / "work" / "predict").resolve()
    assert (
        prediction_workspace(tmp_path / "work", tmp_path / "elsewhere").root
        == (tmp_path / "elsewhere").resolve()
    )


TRANSFORMER_ID = "transformer:tiny@abc123:max32:norm1"
MULTIMODAL = card("multimodal_vae", fingerprint="f00d", lyrics_dim=6)


@pytest.mark.parametrize(
    ("model_card", "trained_id", "available_id", "used", "says"),
    [
        (MULTIMODAL, TRANSFORMER_ID, TRANSFORMER_ID, True, "as in training"),
        (MULTIMODAL, "char-ngram-tfidf-svd:d64:corpus-1", "char-ngram", False, "cannot embed new"),
        (MULTIMODAL, TRANSFORMER_ID, "transformer:other@def:max32:norm1", False, "not the one"),
        (MULTIMODAL, None, TRANSFORMER_ID, False, "cannot tell"),
        (card("mlp_vae"), TRANSFORMER_ID, TRANSFORMER_ID, False, "audio only"),
    ],
)
def test_lyrics_are_used_only_with_the_training_encoder(
    model_card: ModelCard, trained_id: str | None, available_id: str, used: bool, says: str
) -> None:
    kind = CHAR_NGRAM_KIND if available_id.startswith(CHAR_NGRAM_KIND) else TRANSFORMER_KIND
    available = ResolvedEncoder(kind=kind, model_path=None, encoder_id=available_id)
    plan = lyrics_plan(model_card, trained_id, available)
    assert plan.use_lyrics is used
    assert says in plan.message
    assert "\n" not in plan.message


def test_training_encoder_id_comes_from_the_model_or_the_same_collection(tmp_path: Path) -> None:
    collection = Workspace.open(tmp_path)
    with_id = MULTIMODAL.model_copy(update={"lyrics_encoder_id": "x"})
    assert trained_lyrics_encoder_id(with_id, collection) == "x"
    assert trained_lyrics_encoder_id(MULTIMODAL, collection) is None  # no lyrics stage there
    (tmp_path / "lyrics_embeddings.json").write_text(json.dumps({"encoder_id": TRANSFORMER_ID}))
    IngestRecord(
        fingerprint="f00d",
        feature_key="k",
        features=FeatureConfig(),
        audio=AudioConfig(),
        data="songs",
    ).write(collection)
    assert trained_lyrics_encoder_id(MULTIMODAL, collection) == TRANSFORMER_ID
    other_data = MULTIMODAL.model_copy(update={"fingerprint": "beef"})
    assert trained_lyrics_encoder_id(other_data, collection) is None


def test_language_conditions_follow_training_classes() -> None:
    cvae = card("cvae", condition_classes=("bn", "en", "none"), default_condition=1)
    conditions, from_lyrics = language_conditions(
        cvae, ["bn", None, "fr", "en", None], [True, False, True, True, True]
    )
    # bn; no lyrics -> "none"; unseen fr -> default; en; lyrics of unknown language -> "none"
    assert conditions.tolist() == [0, 2, 1, 1, 2]
    assert from_lyrics.tolist() == [True, False, False, True, False]


@pytest.mark.parametrize(
    ("model_card", "kind", "says"),
    [
        (card("mlp_vae"), "none", "reads audio only"),
        (card("cvae", condition_classes=("en", "none")), "language", "language"),
        # a genre CVAE: the genre of a new track is unknown, its default condition stands
        (card("cvae", condition_classes=("jazz", "rock"), uses_labels=True), "none", "audio only"),
        (MULTIMODAL, "none", "cannot tell"),  # no lyrics encoder recorded, other data
    ],
)
def test_the_lyrics_stage_runs_only_when_the_champion_can_use_it(
    tmp_path: Path, model_card: ModelCard, kind: str, says: str
) -> None:
    plan = plan_side_inputs(
        model_card, Workspace.open(tmp_path), EncoderSettings(kind="char-ngram")
    )

    assert plan.kind == kind
    assert plan.needs_lyrics_stage is (kind != "none")
    assert says in plan.message
