"""The model card: one typed reader and writer of `model.json`, old files included."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.training.model_card import ModelCard, ModelCardError

# A model.json exactly as the version before the typed card wrote it (14 keys, lists not tuples).
LEGACY_CVAE = {
    "model": "cvae",
    "config": {"latent_dim": 8, "hidden_dims": [64]},
    "input_shape": [38],
    "condition_classes": ["bn", "en", "none"],
    "default_condition": 1,
    "lyrics_dim": 0,
    "lyrics_encoder_id": None,
    "feature_key": "abc123",
    "input_kind": "vector",
    "method": "cvae",
    "features": "condition=language",
    "uses_labels": False,
    "run_id": "0123456789abcdef",
    "fingerprint": "f00d",
}


def test_a_card_written_by_the_previous_version_still_reads(tmp_path: Path) -> None:
    (tmp_path / "model.json").write_text(json.dumps(LEGACY_CVAE, indent=2))

    card = ModelCard.read(tmp_path)

    assert card.model == "cvae"
    assert card.input_shape == (38,)
    assert card.condition_classes == ("bn", "en", "none")
    assert card.default_condition == 1
    assert card.condition == "language"
    assert card.uses_language_condition
    assert ModelCard.read(tmp_path / "model.json") == card


def test_older_cards_without_optional_keys_get_their_defaults(tmp_path: Path) -> None:
    old = {k: v for k, v in LEGACY_CVAE.items() if k not in ("lyrics_encoder_id", "run_id")}
    (tmp_path / "model.json").write_text(json.dumps(old))

    card = ModelCard.read(tmp_path)

    assert card.lyrics_encoder_id is None
    assert card.run_id is None


def test_write_then_read_gives_the_same_card_and_the_same_keys(tmp_path: Path) -> None:
    card = ModelCard.model_validate(LEGACY_CVAE)

    path = card.write(tmp_path / "new-folder")

    assert path == tmp_path / "new-folder" / "model.json"
    assert ModelCard.read(path.parent) == card
    written = json.loads(path.read_text())
    # readers of the old format still work: every old key with its value, and the keys added
    # since (pretrained inputs) at their defaults
    assert {k: written[k] for k in LEGACY_CVAE} == LEGACY_CVAE
    assert {k: v for k, v in written.items() if k not in LEGACY_CVAE} == {
        "inputs": "descriptors",
        "pretrained": None,
        "pretrained_key": None,
    }


@pytest.mark.parametrize(
    ("model", "uses_labels", "multimodal", "condition", "standardize"),
    [
        ("ae", False, False, None, True),  # unregularised code: dimensions have no common unit
        ("mlp_vae", False, False, None, False),
        ("cvae", True, False, "genre", False),
        ("cvae", False, False, "language", False),
        ("multimodal_vae", False, True, None, False),
    ],
)
def test_derived_facts_follow_the_model_class(
    model: str, uses_labels: bool, multimodal: bool, condition: str | None, standardize: bool
) -> None:
    card = ModelCard.model_validate({**LEGACY_CVAE, "model": model, "uses_labels": uses_labels})

    assert card.is_multimodal is multimodal
    assert card.condition == condition
    assert card.uses_condition is (condition is not None)
    assert card.standardize_latents is standardize


def test_the_card_rebuilds_the_architecture() -> None:
    model = ModelCard.model_validate(LEGACY_CVAE).build_model()

    assert model.name == "cvae"
    assert model.input_shape == (38,)
    assert model.config.latent_dim == 8


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "not found"),
        ("{not json", "not a valid model card"),
        (json.dumps({**LEGACY_CVAE, "model": "resnet"}), "not a valid model card"),
        (json.dumps({**LEGACY_CVAE, "surprise": 1}), "not a valid model card"),
    ],
)
def test_a_missing_or_broken_card_names_the_file(
    tmp_path: Path, content: str | None, says: str
) -> None:
    if content is not None:
        (tmp_path / "model.json").write_text(content)

    with pytest.raises(ModelCardError, match=says) as error:
        ModelCard.read(tmp_path)

    assert str(tmp_path / "model.json") in str(error.value)
