"""The model card: what a trained model is, written next to its weights as `model.json`.

Training writes one card per model folder; evaluation reads it to list and rank trained models,
the champion package carries it, and prediction reads it to rebuild the encoder and to ingest new
tracks the way the model was trained. `ModelCard.read` and `ModelCard.write` are the only code
that knows the file's name and format. Cards written before this class existed (the same 14 keys,
some optional ones missing in older files) still read, and so do cards written before models
could read pretrained features (no `inputs`: the descriptors).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from models.base import InputKind, RepresentationModel
from models.zoo import Condition, ModelName, build_model, model_class
from tasks.audio.pretrained import PretrainedConfig
from tasks.core.errors import UserInputError
from tasks.training.data import DEFAULT_INPUTS, ModelInputs

# The condition class that training gives tracks without a detected lyrics language.
NO_LANGUAGE_CONDITION = "none"


class ModelCardError(UserInputError):
    """A model card is missing or unreadable; the message names the file."""


class ModelCard(BaseModel):
    """Everything needed to rebuild a trained model and to feed it the inputs it was trained on.

    The weights live beside the card (`tasks.training.checkpoint`); the card alone rebuilds the
    untrained architecture (`build_model`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    FILE_NAME: ClassVar[str] = "model.json"

    model: ModelName = Field(description="Model-zoo name, the class that `build_model` builds.")
    config: dict[str, Any] = Field(description="The model's full config (ModelConfig fields).")
    input_shape: tuple[int, ...] = Field(
        description="Shape of one crop: (D,) for vector models, (n_mels, frames) otherwise."
    )
    condition_classes: tuple[str, ...] = Field(
        (), description="Condition vocabulary, index = class id; empty for unconditioned models."
    )
    default_condition: int = Field(
        0, ge=0, description="Class id used when a track's condition is unknown (most frequent)."
    )
    lyrics_dim: int = Field(0, ge=0, description="Width of the lyrics embeddings; 0 = no lyrics.")
    lyrics_encoder_id: str | None = Field(
        None, description="Lyrics encoder the embeddings came from (multimodal models)."
    )
    feature_key: str = Field(description="Feature-store key of the features trained on.")
    input_kind: InputKind = Field(description="'vector' (crop statistics) or 'spectrogram'.")
    inputs: ModelInputs = Field(
        DEFAULT_INPUTS,
        description="What a vector model read per crop: 'descriptors' (the feature store's "
        "crop statistics) or 'musicnn' (the pretrained store's patch embeddings).",
    )
    pretrained: PretrainedConfig | None = Field(
        None, description="The network configuration of the pretrained inputs (musicnn only)."
    )
    pretrained_key: str | None = Field(
        None, description="Pretrained-store key of the features trained on (musicnn only)."
    )
    method: str = Field(description="Method name shown in reports (the model name).")
    features: str = Field("default", description="Variant shown in reports (e.g. 'beta=4').")
    uses_labels: bool = Field(False, description="Whether training read genre labels.")
    run_id: str | None = Field(None, description="MLflow run that trained the model.")
    fingerprint: str = Field("", description="Fingerprint of the data set trained on.")

    @classmethod
    def path_in(cls, folder: str | Path) -> Path:
        """Where the card of the model in `folder` is."""
        return Path(folder) / cls.FILE_NAME

    @classmethod
    def read(cls, folder_or_file: str | Path) -> ModelCard:
        """Read the card of a model folder (or the card file itself).

        Raises:
            ModelCardError: no card there, or its content is not a valid card.
        """
        path = Path(folder_or_file)
        if path.is_dir():
            path = cls.path_in(path)
        if not path.is_file():
            raise ModelCardError(f"{path} not found: the folder holds no trained model")
        try:
            return cls.model_validate_json(path.read_text())
        except ValueError as error:
            raise ModelCardError(f"{path} is not a valid model card: {error}") from error

    def write(self, folder: str | Path) -> Path:
        """Write the card into `folder` (created if needed); return the file's path."""
        path = self.path_in(folder)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.model_dump(mode="json"), indent=2))
        return path

    @property
    def model_class(self) -> type[RepresentationModel]:
        return model_class(self.model)

    @property
    def is_multimodal(self) -> bool:
        """The model reads lyrics embeddings next to the audio."""
        return self.model_class.uses_lyrics

    @property
    def uses_condition(self) -> bool:
        """The model takes a condition class per track (CVAE)."""
        return self.model_class.uses_condition

    @property
    def condition(self) -> Condition | None:
        """What the model is conditioned on: the genre label or the detected lyrics language."""
        if not self.uses_condition:
            return None
        return "genre" if self.uses_labels else "language"

    @property
    def uses_language_condition(self) -> bool:
        """A conditional model whose condition is the lyrics language (no labels used)."""
        return self.condition == "language"

    @property
    def standardize_latents(self) -> bool:
        """Whether latents are standardised before clustering: when latent dimensions of this
        model do not share units (the autoencoder's unregularised code)."""
        return not self.model_class.latent_units_comparable

    def build_model(self) -> RepresentationModel:
        """The model's architecture, untrained (weights: `tasks.training.checkpoint`).

        Raises:
            ValueError: the config or shapes no longer fit the model class (the model code
                changed since training).
        """
        return build_model(
            self.model,
            input_shape=self.input_shape,
            overrides=self.config,
            n_conditions=len(self.condition_classes),
            lyrics_dim=self.lyrics_dim,
        )
