"""Config pieces shared by the model zoo, and the duck-typed Optuna trial they are tuned with.

Every model file declares its own frozen pydantic config (a subclass of `ModelConfig`) next to a
`search_space(trial)` static method that returns overrides for that config. The trial is any object
with Optuna's `suggest_int`, `suggest_float` and `suggest_categorical` methods; nothing here imports
Optuna, so the models stay usable without it.

Parameter names suggested here are plain (`latent_dim`, `dropout`, ...): the trainer's own space
(learning rate, batch size) must not reuse them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, PositiveInt


class SuggestingTrial(Protocol):
    """The subset of `optuna.trial.Trial` that search spaces use."""

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int: ...

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float: ...

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...


class ModelConfig(BaseModel):
    """Base of every model config: strict (unknown fields are errors) and frozen (hashable)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    latent_dim: int = Field(16, ge=1, le=512, description="Size of the latent code z.")


class MLPArchitectureConfig(ModelConfig):
    """Widths of a multilayer perceptron encoder; decoders mirror them."""

    hidden_dims: tuple[PositiveInt, ...] = Field(
        (256, 128),
        min_length=1,
        description="Widths of the encoder's hidden layers, input side first; "
        "the decoder uses them in reverse.",
    )
    dropout: float = Field(
        0.1, ge=0.0, lt=1.0, description="Dropout probability after every hidden layer."
    )


class KLRegularizationConfig(BaseModel):
    """How the KL term enters the loss: beta (Higgins et al. 2017), capacity (Burgess et al. 2018).

    loss = reconstruction + kl_weight * beta * KL                      when capacity_max == 0
    loss = reconstruction + kl_weight * beta * |KL - C(step)|          otherwise,
    with C(step) = capacity_max * min(1, step / capacity_steps) in nats, where `step` counts the
    model's optimisation steps (calls of `loss_function` in training mode with gradients on).
    `kl_weight` is the trainer's warm-up factor.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    beta: float = Field(
        1.0, gt=0.0, le=10_000.0, description="Weight of the KL term (beta-VAE; 1 = plain ELBO)."
    )
    capacity_max: float = Field(
        0.0,
        ge=0.0,
        description="Target KL capacity C reached at the end of the schedule, in nats per track "
        "(Burgess et al. 2018); 0 disables the capacity objective.",
    )
    capacity_steps: PositiveInt = Field(
        10_000, description="Optimisation steps over which C grows linearly from 0 to capacity_max."
    )


def suggest_mlp_architecture(trial: SuggestingTrial) -> dict[str, Any]:
    """Suggest `latent_dim`, `hidden_dims` (halving widths) and `dropout` for an MLP model."""
    n_layers = trial.suggest_int("n_hidden_layers", 1, 3)
    first_width = trial.suggest_categorical("hidden_width", [128, 256, 512, 1024])
    return {
        "latent_dim": trial.suggest_categorical("latent_dim", [8, 16, 32, 64]),
        "hidden_dims": tuple(max(first_width // 2**layer, 16) for layer in range(n_layers)),
        "dropout": trial.suggest_float("dropout", 0.0, 0.4),
    }


def suggest_beta(trial: SuggestingTrial, *, low: float = 0.25, high: float = 8.0) -> dict[str, Any]:
    """Suggest a constant `beta` on a log scale."""
    return {"beta": trial.suggest_float("beta", low, high, log=True)}
