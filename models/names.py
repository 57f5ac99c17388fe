"""The names of the model zoo, importable without torch (the command line checks a model name
before its heavy imports). `models.zoo` registers exactly these, in this order, or fails at
import."""

from __future__ import annotations

MODEL_NAMES: tuple[str, ...] = (
    "ae",
    "mlp_vae",
    "conv_vae",
    "beta_vae",
    "cvae",
    "vade",
    "multimodal_vae",
)
