"""What to train (`ModelSpec`): names, variants and the labels rule, from the model zoo."""

from __future__ import annotations

import pydantic
import pytest

from tasks.training.representation import ModelSpec


@pytest.mark.parametrize(
    ("label", "overrides", "expected"),
    [
        ("", {}, ""),
        ("", {"latent_dim": 8, "beta": 4}, "beta=4, latent_dim=8"),
        ("my variant", {"beta": 4}, "my variant"),
    ],
)
def test_runs_with_different_overrides_get_different_variant_labels(
    label: str, overrides: dict, expected: str
) -> None:
    spec = ModelSpec(model="beta_vae", features_label=label, overrides=overrides)
    assert spec.variant == expected
    assert spec.features == (expected or "default")


@pytest.mark.parametrize(
    ("model", "condition", "uses_labels"),
    [("cvae", "genre", True), ("cvae", "language", False), ("mlp_vae", "genre", False)],
)
def test_only_a_genre_conditioned_model_uses_labels(
    model: str, condition: str, uses_labels: bool
) -> None:
    assert ModelSpec(model=model, condition=condition).uses_labels is uses_labels


def test_the_run_name_is_safe_as_a_folder_name() -> None:
    spec = ModelSpec(model="beta_vae", features_label="beta=4, fusion/late")
    assert spec.run_name == "beta_vae-beta4,_fusion_late-seed0"
    assert spec.features == "beta=4, fusion/late"
    assert ModelSpec(model="ae").features == "default"


def test_an_unknown_model_or_condition_is_refused_with_the_choices() -> None:
    with pytest.raises(pydantic.ValidationError, match="conv_vae"):
        ModelSpec(model="resnet")
    with pytest.raises(pydantic.ValidationError, match="genre"):
        ModelSpec(model="cvae", condition="mood")
