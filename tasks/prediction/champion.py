"""The model `predict` uses: its MLflow URI, its registered version, and the downloaded package.

A champion version (`tasks.evaluation.champion.CHAMPION_FILES`, registered by
`registry.champion.promote`) is a plain folder:

- `model.json`: the model card (`tasks.training.model_card.ModelCard`);
- `model.safetensors`: the weights (`tasks.training.checkpoint`), never a pickle;
- `feature_config.json`: `{"config": FeatureConfig fields, "summary_names": [...]}`, the features
  the model was trained on, so new tracks are ingested with the same settings;
- `clustering.json`: the fitted clustering (`tasks.evaluation.clustering.fitted_to_json`);
- `reference.parquet`: the collection's track latents (track_id, cluster, genre, language, title,
  artist, path, mu).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from models.base import InputKind
from models.serving import LatentEncoder
from registry.models import CHAMPION, download_model_files, version_by_alias
from tasks.audio.features import FeatureConfig
from tasks.core.errors import UserInputError
from tasks.core.workspace import Workspace
from tasks.evaluation.assignment import fitted_from_json
from tasks.evaluation.champion import (
    CHAMPION_FILES,
    CLUSTERING_FILE,
    FEATURE_CONFIG_FILE,
    REFERENCE_FILE,
)
from tasks.training.checkpoint import (
    CheckpointError,
    load_latent_encoder,
    pickled_model_files,
    pickled_model_message,
)
from tasks.training.model_card import ModelCard, ModelCardError

MODEL_URI_SCHEMES = ("models:/", "runs:/")


class PredictionError(UserInputError):
    """A prediction input cannot be used; the message names it and says what to do."""


def resolve_model_uri(model: str) -> str:
    """The MLflow URI of `model`: `NAME@ALIAS` -> `models:/NAME@ALIAS`, a bare `NAME` ->
    `models:/NAME@champion`; `models:/...` and `runs:/...` URIs are returned as they are.

    Raises:
        PredictionError: an empty name or one with spaces or slashes that is not a URI.
    """
    model = model.strip()
    if model.startswith(MODEL_URI_SCHEMES):
        return model
    name, _, alias = model.partition("@")
    alias = alias or CHAMPION
    if not name or any(c.isspace() or c in "/:" for c in name + alias):
        raise PredictionError(
            f"--model {model!r}: give NAME@ALIAS (e.g. vaemusic@champion), a models:/ URI or "
            "a runs:/ URI"
        )
    return f"models:/{name}@{alias}"


def model_version_of(model_uri: str) -> str | None:
    """Registered version behind a `models:/NAME@ALIAS` or `models:/NAME/VERSION` URI, else None.

    Raises:
        PredictionError: the alias does not exist (no champion registered yet, or a typo).
    """
    if not model_uri.startswith("models:/"):
        return None
    target = model_uri.removeprefix("models:/")
    if "@" in target:
        name, alias = target.split("@", 1)
        version = version_by_alias(name, alias)
        if version is None:
            raise PredictionError(
                f"no registered model version {name}@{alias}: run the evaluation (python -m "
                "flows evaluate DATA, or python -m flows run) to register a champion first"
            )
        return str(version.version)
    name, _, version_number = target.partition("/")
    return version_number or None


@dataclass(frozen=True)
class ChampionPackage:
    """A downloaded champion: its folder and what its files say.

    card: the model card. feature_config: the FeatureConfig the model was trained on.
    clustering: the fitted clustering state for `tasks.evaluation.clustering.assign`.
    reference: path of reference.parquet (the collection's track latents).
    """

    model_uri: str
    version: str | None
    folder: Path
    card: ModelCard
    feature_config: FeatureConfig
    clustering: dict[str, Any]
    reference: Path

    @property
    def input_kind(self) -> InputKind:
        return self.card.input_kind

    @property
    def algorithm(self) -> str:
        return str(self.clustering["algorithm"])

    @property
    def summary(self) -> str:
        """One line for the log: which model, variant, clustering and inputs."""
        return (
            f"model {self.model_uri} (version {self.version or '-'}): {self.card.method} "
            f"[{self.card.features}], clustering {self.algorithm}, {self.input_kind} inputs"
        )

    def load_encoder(self) -> LatentEncoder:
        """The champion's encoder (crops -> latent means), rebuilt from the card and the
        safetensors weights on the CPU; nothing is unpickled.

        Raises:
            PredictionError: the weights are unreadable or do not fit the card.
        """
        try:
            encoder, _ = load_latent_encoder(self.folder)
        except (CheckpointError, ModelCardError) as error:
            raise PredictionError(f"champion {self.model_uri}: {error}") from error
        return encoder


def read_champion_package(model_uri: str, version: str | None, folder: Path) -> ChampionPackage:
    """Read the files of a downloaded champion folder (see the module docstring).

    Raises:
        PredictionError: a file is missing: a pickled model (registered by an older version
            with MLflow's pytorch flavour; its files are only listed, never read) or not a
            champion package; or the model card is invalid.
    """
    missing = [name for name in CHAMPION_FILES if not (folder / name).is_file()]
    if missing and (pickled := pickled_model_files(folder)):
        raise PredictionError(pickled_model_message(f"model {model_uri}", pickled))
    if missing:
        raise PredictionError(
            f"model {model_uri} has no {', '.join(missing)}: it is not a champion package of "
            "this version (champions registered before weights were stored as safetensors are "
            "not loaded); run the evaluation to register a champion"
        )
    try:
        card = ModelCard.read(folder)
    except ModelCardError as error:
        raise PredictionError(f"model {model_uri}: {error}") from error
    features = json.loads((folder / FEATURE_CONFIG_FILE).read_text())
    return ChampionPackage(
        model_uri=model_uri,
        version=version,
        folder=folder,
        card=card,
        feature_config=FeatureConfig(**features["config"]),
        clustering=fitted_from_json((folder / CLUSTERING_FILE).read_text()),
        reference=folder / REFERENCE_FILE,
    )


@task(name="fetch champion", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def fetch_champion(model_uri: str, version: str | None, workspace: Workspace) -> ChampionPackage:
    """Download the model at `model_uri` (registered `version`, see `model_version_of`) into the
    predict work dir (emptied first) and read its files.

    Raises:
        PredictionError: the model is not a champion package.
    """
    destination = workspace.downloaded_model
    if destination.exists():
        shutil.rmtree(destination)  # a stale file of another version must never be read
    destination.mkdir(parents=True)
    folder = download_model_files(model_uri, destination)
    return read_champion_package(model_uri, version, folder)
