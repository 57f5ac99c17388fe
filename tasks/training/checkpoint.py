"""A trained model on disk: its card (`model.json`) and its weights (`model.safetensors`).

The same two files make up a model folder in the work dir and a registered model version, so
loading a model is always: read the card, rebuild the architecture from the zoo, load the weights.
Weights are safetensors, a format of raw tensors that cannot carry code: a folder downloaded from
the tracking store is never unpickled.
"""

from __future__ import annotations

from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_model, save_model

from models.base import RepresentationModel
from models.serving import LatentEncoder
from tasks.core.errors import UserInputError
from tasks.training.model_card import ModelCard

WEIGHTS_FILE = "model.safetensors"


class CheckpointError(UserInputError):
    """A model folder cannot be loaded; the message names the file and what to do."""


def weights_path(folder: str | Path) -> Path:
    """Where the weights of the model in `folder` are."""
    return Path(folder) / WEIGHTS_FILE


def save_trained_model(model: RepresentationModel, card: ModelCard, folder: Path) -> list[Path]:
    """Write `model`'s weights and `card` into `folder`; return both paths (weights, card), the
    files a registered version of the model carries."""
    folder.mkdir(parents=True, exist_ok=True)
    weights = weights_path(folder)
    # save_model (not save_file) de-duplicates tensors that share storage.
    save_model(model, str(weights))
    return [weights, card.write(folder)]


def load_trained_model(folder: str | Path) -> tuple[RepresentationModel, ModelCard]:
    """Rebuild the model saved in `folder` (card + safetensors weights), on the CPU, in eval mode.

    Raises:
        ModelCardError: the folder has no valid `model.json`.
        CheckpointError: no `model.safetensors` (for example a folder written by a version that
            stored pickled `model.pt` files: retrain it), or the file is not a safetensors file,
            or its tensors do not fit the architecture the card describes.
    """
    card = ModelCard.read(folder)
    weights = weights_path(folder)
    if not weights.is_file():
        raise CheckpointError(
            f"{weights} not found: the model folder has no safetensors weights (folders written "
            "before weights were stored as safetensors must be retrained)"
        )
    model = card.build_model()
    does_not_fit = f"{weights} does not fit the {card.model} described in its model.json"
    try:
        missing, unexpected = load_model(model, str(weights), strict=False, device="cpu")
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{weights} is not a loadable safetensors file: {error}") from error
    except RuntimeError as error:  # load_state_dict: a tensor of another shape
        raise CheckpointError(f"{does_not_fit}: {error}") from error
    if missing or unexpected:
        raise CheckpointError(
            f"{does_not_fit} (missing {sorted(missing)}, unexpected {sorted(unexpected)})"
        )
    return model.eval(), card


def load_latent_encoder(folder: str | Path) -> tuple[LatentEncoder, ModelCard]:
    """The model in `folder` wrapped as `x -> latent means` (`models.serving.LatentEncoder`),
    with the card's default condition for conditional models."""
    model, card = load_trained_model(folder)
    return LatentEncoder(model, default_condition=card.default_condition), card
