"""The model zoo: name -> class registry, configs by name, and `build_model`.

Configs pick models by name (`"conv_vae"`, `"vade"`, ...); the trainer never imports a model
class directly.
"""

from __future__ import annotations

from typing import Any, Literal

from models.ae import Autoencoder
from models.base import RepresentationModel
from models.beta_vae import BetaVAE
from models.config import ModelConfig, SuggestingTrial
from models.conv_vae import ConvVAE
from models.cvae import ConditionalVAE
from models.mlp_vae import MLPVAE
from models.multimodal_vae import MultimodalVAE
from models.names import MODEL_NAMES
from models.vade import VaDE

MODEL_CLASSES: dict[str, type[RepresentationModel]] = {
    model_class.name: model_class
    for model_class in (
        Autoencoder,
        MLPVAE,
        ConvVAE,
        BetaVAE,
        ConditionalVAE,
        VaDE,
        MultimodalVAE,
    )
}


# The one list of model names (`models.names`, light to import): configs, the command line, the
# pipeline and the reports read it; the classes registered here must be exactly those.
if tuple(MODEL_CLASSES) != MODEL_NAMES:
    raise ImportError(
        f"models.names.MODEL_NAMES {MODEL_NAMES} != the zoo's classes {tuple(MODEL_CLASSES)}"
    )
ModelName = Literal[MODEL_NAMES]  # a closed choice in configs, forms and --help

# What a conditional model is conditioned on: the detected lyrics language (no labels used) or
# the genre label (the run then uses labels and is never ranked with unsupervised runs).
Condition = Literal["language", "genre"]
DEFAULT_CONDITION: Condition = "language"


def uses_labels(name: str, condition: Condition) -> bool:
    """Whether training model `name` with `condition` reads genre labels."""
    return model_class(name).uses_condition and condition == "genre"


def needs_lyrics(name: str, condition: Condition) -> bool:
    """Whether model `name` needs the lyrics stage first: lyrics embeddings, or the detected
    language as its condition."""
    cls = model_class(name)
    return cls.uses_lyrics or (cls.uses_condition and condition == "language")


def model_class(name: str) -> type[RepresentationModel]:
    """The class registered as `name`; ValueError listing the valid names otherwise."""
    try:
        return MODEL_CLASSES[name]
    except KeyError:
        raise ValueError(
            f"unknown model {name!r}; valid names: {', '.join(sorted(MODEL_CLASSES))}"
        ) from None


def config_class(name: str) -> type[ModelConfig]:
    """The pydantic config class of model `name`."""
    return model_class(name).config_class


def default_config(name: str) -> ModelConfig:
    """The default config of model `name`."""
    return config_class(name)()


def search_space(name: str, trial: SuggestingTrial) -> dict[str, Any]:
    """Config overrides for model `name` suggested by an Optuna-like `trial`."""
    return model_class(name).search_space(trial)


def build_model(
    name: str,
    *,
    input_shape: tuple[int, ...],
    overrides: dict[str, Any] | None = None,
    n_conditions: int = 0,
    lyrics_dim: int = 0,
) -> RepresentationModel:
    """Build model `name` from its default config updated with `overrides`.

    input_shape: (D,) for vector models, (n_mels, frames) for spectrogram models (see the class's
    `input_kind`). n_conditions: number of condition classes (cvae). lyrics_dim: width of the
    lyrics embeddings (multimodal_vae).

    Raises ValueError for an unknown name or an unusable shape / n_conditions / lyrics_dim, and
    pydantic.ValidationError (a ValueError) naming the field for a bad override.
    """
    cls = model_class(name)
    config = cls.config_class(**(overrides or {}))
    return cls(config, input_shape=input_shape, n_conditions=n_conditions, lyrics_dim=lyrics_dim)
