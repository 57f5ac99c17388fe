"""beta-VAE: the MLP VAE with a weighted KL term, optionally with a growing KL capacity.

Follows Higgins et al., "beta-VAE: Learning Basic Visual Concepts with a Constrained Variational
Framework", ICLR 2017 (loss = reconstruction + beta * KL, beta > 1 for more disentangled codes) and
Burgess et al., "Understanding disentangling in beta-VAE", 2018 (loss = reconstruction +
gamma * |KL - C|, with the capacity C raised linearly during training; gamma is `beta` here).
beta is a parameter of the loss, not a new architecture: `BetaVAE` is `MLPVAE` with other defaults
and a search space over the loss settings.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from models.config import SuggestingTrial, suggest_mlp_architecture
from models.mlp_vae import MLPVAE, MLPVAEConfig


class BetaVAEConfig(MLPVAEConfig):
    """MLP VAE whose default beta is 4 (Higgins et al.); set capacity_max > 0 for Burgess et al."""

    beta: float = Field(
        4.0,
        gt=0.0,
        le=10_000.0,
        description="Weight of the KL term (Higgins: beta, typically 2-16) or of |KL - C| "
        "(Burgess: gamma, typically 100-1000) when capacity_max > 0.",
    )


class BetaVAE(MLPVAE):
    """Same network as `MLPVAE`; only the loss settings differ."""

    name: ClassVar[str] = "beta_vae"
    config_class: ClassVar[type[BetaVAEConfig]] = BetaVAEConfig

    @staticmethod
    def search_space(trial: SuggestingTrial) -> dict[str, Any]:
        """Architecture plus the KL schedule: constant beta, or a capacity schedule with gamma."""
        overrides = suggest_mlp_architecture(trial)
        schedule = trial.suggest_categorical("kl_schedule", ["constant_beta", "capacity"])
        if schedule == "constant_beta":
            overrides["beta"] = trial.suggest_float("beta", 1.0, 16.0, log=True)
            overrides["capacity_max"] = 0.0
        else:
            overrides["beta"] = trial.suggest_float("capacity_gamma", 10.0, 1000.0, log=True)
            overrides["capacity_max"] = trial.suggest_float("capacity_max", 5.0, 50.0)
            overrides["capacity_steps"] = trial.suggest_int("capacity_steps", 500, 20_000, log=True)
        return overrides
