"""Model cards for prediction tests: only the fields a test cares about differ."""

from __future__ import annotations

from typing import Any

from tasks.training.model_card import ModelCard


def card(model: str, **fields: Any) -> ModelCard:
    """A valid card of `model` (vector inputs of width 12, feature key "key") with `fields`."""
    values: dict[str, Any] = {
        "model": model,
        "config": {},
        "input_shape": (12,),
        "feature_key": "key",
        "input_kind": "vector",
        "method": model,
    }
    return ModelCard.model_validate(values | fields)
