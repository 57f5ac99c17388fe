"""A trained model on disk: its card (`model.json`) and its weights (`model.safetensors`).

The same two files make up a model folder in the work dir and a registered model version, so
loading a model is always: read the card, rebuild the architecture from the zoo, load the weights.
Weights are safetensors, a format of raw tensors that cannot carry code: a folder downloaded from
the tracking store is never unpickled. A folder in the old format (a pickled module, as MLflow's
pytorch flavour or `torch.save` wrote it) is refused by name (`pickled_model_files`), unread.
The folder also holds an `MLmodel` file and an input example (`registry.models`), read by MLflow's
UI only, for the signature it shows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model

from models.base import RepresentationModel
from models.serving import LatentEncoder
from registry.models import MLMODEL_FILE, describe_model_folder
from tasks.core.errors import UserInputError
from tasks.training.model_card import ModelCard

WEIGHTS_FILE = "model.safetensors"
# What pickles look like in a model folder: torch.save / MLflow pytorch and pyfunc / joblib files.
_PICKLE_SUFFIXES = frozenset({".pt", ".pth", ".pkl", ".pickle", ".joblib", ".bin", ".ckpt"})


class CheckpointError(UserInputError):
    """A model folder cannot be loaded; the message names the file and what to do."""


def weights_path(folder: str | Path) -> Path:
    """Where the weights of the model in `folder` are."""
    return Path(folder) / WEIGHTS_FILE


def save_trained_model(model: RepresentationModel, card: ModelCard, folder: Path) -> list[Path]:
    """Write `model`'s weights, `card` and the MLflow description of its serving interface into
    `folder`; return the paths (weights, card, MLmodel, input example), the files a registered
    version of the model carries."""
    folder.mkdir(parents=True, exist_ok=True)
    weights = weights_path(folder)
    # save_model (not save_file) de-duplicates tensors that share storage.
    save_model(model, str(weights))
    inputs, outputs = serving_example(model, card)
    described = describe_model_folder(folder, inputs=inputs, outputs=outputs)
    return [weights, card.write(folder), *described]


def serving_example(
    model: RepresentationModel, card: ModelCard
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """What the served encoder (`models.serving.LatentEncoder`) takes and gives, for one track:
    `x` float32 (1, *card.input_shape) (a crop of zeros), `condition` int64 (1,) for conditional
    models (the card's default class); latent means float32 (1, latent_dim)."""
    inputs = {"x": np.zeros((1, *card.input_shape), dtype=np.float32)}
    if model.uses_condition:
        inputs["condition"] = np.full((1,), card.default_condition, dtype=np.int64)
    return inputs, np.zeros((1, model.latent_dim), dtype=np.float32)


def pickled_model_files(folder: str | Path) -> list[str]:
    """Files of `folder` that hold or announce a pickled model: pickle-era weights (`model.pth`,
    `data/model.pth`, `python_model.pkl`, ...; relative paths, sorted) and, last, an `MLmodel`
    that lists an MLflow flavour (whose loaders unpickle). Only names and the YAML are read."""
    root = Path(folder)
    found = sorted(
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and path.suffix.lower() in _PICKLE_SUFFIXES
    )
    mlmodel = root / MLMODEL_FILE
    if mlmodel.is_file():
        try:
            flavors = (yaml.safe_load(mlmodel.read_text(errors="replace")) or {}).get("flavors")
        except (yaml.YAMLError, AttributeError):
            flavors = None
        if flavors:
            found.append(f"{MLMODEL_FILE} (flavour {', '.join(sorted(map(str, flavors)))})")
    return found


def pickled_model_message(where: str, pickled: list[str]) -> str:
    """The one line that refuses a pickle-era model (see `pickled_model_files`)."""
    return (
        f"{where} holds a pickled model ({', '.join(pickled)}): only safetensors weights with a "
        "model card (model.json) are loaded, never a pickle, which could run code; retrain the "
        "model with this version (python -m flows run DATA) to register one that loads"
    )


def load_trained_model(folder: str | Path) -> tuple[RepresentationModel, ModelCard]:
    """Rebuild the model saved in `folder` (card + safetensors weights), on the CPU, in eval mode.

    Raises:
        ModelCardError: the folder has no valid `model.json`.
        CheckpointError: no `model.safetensors` (for example a folder written by a version that
            stored pickled `model.pt` files: retrain it), or the file is not a safetensors file,
            or its tensors do not fit the architecture the card describes.
    """
    weights = weights_path(folder)
    if not weights.is_file() and (pickled := pickled_model_files(folder)):
        raise CheckpointError(pickled_model_message(str(folder), pickled))
    card = ModelCard.read(folder)
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
