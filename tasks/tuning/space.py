"""What a study searches: the settings that define it and the space a trial draws from.

A trial draws a configuration from three spaces, each declared next to the config it fills:

- the model's own `search_space(trial)` (`models.zoo.search_space`: latent_dim, beta, ...),
- the trainer's `TrainConfig.search_space(trial)` (learning_rate, batch_size, kl_warmup_epochs),
- `ClusteringChoice.search_space(trial)` below (cluster_algorithm, n_clusters).

`SearchSettings` fixes everything else (model, objective, epochs, seed, held-out fraction). These
settings define the study: resuming it with different ones would mix incomparable trials, so
they are stored on the study and checked when it is opened again (`SearchSettings.identity`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import optuna
from pydantic import BaseModel, ConfigDict, Field, model_validator

from models.config import SuggestingTrial
from models.zoo import DEFAULT_CONDITION, Condition, ModelName, model_class, uses_labels
from models.zoo import search_space as model_search_space
from tasks.training.representation import ModelSpec
from tasks.training.trainer import TrainConfig

Objective = Literal["silhouette", "nmi", "ari"]
TunedAlgorithm = Literal["kmeans", "gmm", "agglomerative"]

# Objectives that compare the clusters with the genre labels: a study on one of them uses labels.
EXTERNAL_OBJECTIVES: tuple[str, ...] = ("nmi", "ari")


class ClusteringChoice(BaseModel):
    """How a trial's latents are clustered before they are scored."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    algorithm: TunedAlgorithm = Field("kmeans", description="Clustering algorithm.")
    n_clusters: int = Field(8, ge=2, description="Number of clusters.")

    @staticmethod
    def search_space(
        trial: SuggestingTrial,
        *,
        algorithms: Sequence[str],
        n_clusters_range: tuple[int, int],
        fixed_n_clusters: int | None,
    ) -> dict[str, Any]:
        """`algorithm` from `algorithms` (param `cluster_algorithm`); `n_clusters` fixed when
        given (e.g. the number of genres), else drawn from `n_clusters_range` (both ends
        included)."""
        algorithm = trial.suggest_categorical("cluster_algorithm", list(algorithms))
        if fixed_n_clusters is not None:
            n_clusters = fixed_n_clusters
        else:
            n_clusters = trial.suggest_int("n_clusters", n_clusters_range[0], n_clusters_range[1])
        return {"algorithm": algorithm, "n_clusters": n_clusters}


class SearchSettings(BaseModel):
    """What a study searches and how it scores trials.

    All but `report_every` and `device` define the study (see `identity`). Raises
    pydantic.ValidationError (a ValueError) naming the field for an unknown model or a bad
    `n_clusters_range`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: ModelName = Field(description="Which model of the zoo to tune.")
    objective: Objective = Field(
        "silhouette",
        description="What the study maximises: silhouette (unsupervised) of held-out tracks; "
        "nmi/ari compare with genre labels and mark the study uses_labels=true.",
    )
    epochs: int = Field(15, ge=1, description="Maximum epochs of every trial.")
    seed: int = Field(0, description="Seed of weights, held-out split, sampler and clustering.")
    validation_fraction: float = Field(
        0.2, ge=0.05, lt=0.5, description="Held-out tracks the objective is measured on."
    )
    condition: Condition = Field(
        DEFAULT_CONDITION,
        description="What a conditional model is conditioned on; 'genre' uses labels and marks "
        "the study so.",
    )
    n_clusters: int | None = Field(
        None,
        ge=2,
        description="Fixed number of clusters. Empty: the number of genres for nmi/ari, "
        "tuned within n_clusters_range for silhouette.",
    )
    n_clusters_range: tuple[int, int] = Field(
        (2, 12), description="Range of n_clusters searched when it is tuned (inclusive)."
    )
    cluster_algorithms: tuple[TunedAlgorithm, ...] = Field(
        ("kmeans", "gmm", "agglomerative"),
        min_length=1,
        description="Clustering algorithms searched (param cluster_algorithm).",
    )
    report_every: int | None = Field(
        None,
        ge=1,
        description="Epochs between intermediate objective values; empty: 1 for vector "
        "models, 3 for spectrogram models (their encoding costs more).",
    )
    device: str = Field("auto", description="'auto' (GPU when present), 'cpu' or 'cuda'.")

    @model_validator(mode="after")
    def _check_range(self) -> SearchSettings:
        low, high = self.n_clusters_range
        if not 2 <= low <= high:
            raise ValueError(
                f"n_clusters_range must satisfy 2 <= low <= high; got {self.n_clusters_range}"
            )
        return self

    @property
    def uses_labels(self) -> bool:
        """True when the objective or the model's condition reads the genre labels."""
        return self.objective in EXTERNAL_OBJECTIVES or uses_labels(self.model, self.condition)

    @property
    def chosen_without_labels(self) -> bool:
        """Whether the objective ranks configurations without the genre labels, so that the
        retrained best may compete for the unsupervised champion."""
        return self.objective not in EXTERNAL_OBJECTIVES

    @property
    def metric_name(self) -> str:
        """The objective's name on MLflow runs and in logs, e.g. `validation_silhouette`."""
        return f"validation_{self.objective}"

    @property
    def standardize_latents(self) -> bool:
        """Standardise latent dimensions before clustering, as the evaluation does: not for
        models whose prior puts every latent unit on one scale (`latent_units_comparable`)."""
        return not model_class(self.model).latent_units_comparable

    @property
    def epochs_between_reports(self) -> int:
        if self.report_every is not None:
            return self.report_every
        return 1 if model_class(self.model).input_kind == "vector" else 3

    def identity(self) -> dict[str, Any]:
        """The settings that must match when a study is resumed (reporting and device may
        change)."""
        return self.model_dump(mode="json", exclude={"report_every", "device"})


@dataclass(frozen=True)
class TrialSettings:
    """One point of the search space: what to train and how to cluster it."""

    spec: ModelSpec
    clustering: ClusteringChoice


def suggest_trial_settings(
    trial: SuggestingTrial,
    search: SearchSettings,
    *,
    n_clusters: int | None,
    features_label: str,
    epochs: int | None = None,
) -> TrialSettings:
    """Draw a configuration: model space + trainer space + clustering space.

    n_clusters: fixed cluster count (None: tuned in `search.n_clusters_range`).
    features_label: the run's variant name (it also names its model folder).
    epochs: override of `search.epochs` (the final retraining may train longer).

    Raises pydantic.ValidationError (a ValueError) if a space suggests a value its config rejects.
    """
    overrides = model_search_space(search.model, trial)
    trainer = TrainConfig.search_space(trial)
    clustering = ClusteringChoice.search_space(
        trial,
        algorithms=search.cluster_algorithms,
        n_clusters_range=search.n_clusters_range,
        fixed_n_clusters=n_clusters,
    )
    train = TrainConfig(
        epochs=epochs or search.epochs,
        seed=search.seed,
        validation_fraction=search.validation_fraction,
        device=search.device,
        **trainer,
    )
    spec = ModelSpec(
        model=search.model,
        overrides=overrides,
        train=train,
        condition=search.condition,
        features_label=features_label,
    )
    return TrialSettings(spec=spec, clustering=ClusteringChoice(**clustering))


def settings_from_params(
    params: dict[str, Any],
    search: SearchSettings,
    *,
    n_clusters: int | None,
    features_label: str,
    epochs: int | None = None,
) -> TrialSettings:
    """The configuration a finished trial's `params` stand for (replays the search space)."""
    return suggest_trial_settings(
        optuna.trial.FixedTrial(params),
        search,
        n_clusters=n_clusters,
        features_label=features_label,
        epochs=epochs,
    )
