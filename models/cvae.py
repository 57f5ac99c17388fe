"""Conditional VAE: encoder and decoder both see a one-hot metadata condition.

Follows Sohn, Lee & Yan, "Learning Structured Output Representation using Deep Conditional
Generative Models", NeurIPS 2015: q(z|x, c) and p(x|z, c) with a standard normal prior. Here the
condition is a track-level metadata class (for example the detected lyrics language), so the
latent code is encouraged to hold what the condition does not explain. `n_conditions` (number of
classes) is given at build time; the batch carries `condition`, LongTensor (B,) in
[0, n_conditions).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from models.base import Batch, RepresentationModel
from models.config import (
    KLRegularizationConfig,
    MLPArchitectureConfig,
    SuggestingTrial,
    suggest_beta,
    suggest_mlp_architecture,
)
from models.layers import mirrored_mlp_decoder, mlp_gaussian_encoder


class CVAEConfig(MLPArchitectureConfig, KLRegularizationConfig):
    """Conditional MLP VAE: latent size, hidden widths, dropout, KL weighting."""


class ConditionalVAE(RepresentationModel):
    """[x (B, D), onehot(c) (B, K)] -> z (B, latent_dim); [z, onehot(c)] -> x_hat (B, D)."""

    name: ClassVar[str] = "cvae"
    input_kind: ClassVar[Literal["vector", "spectrogram"]] = "vector"
    config_class: ClassVar[type[CVAEConfig]] = CVAEConfig
    uses_condition: ClassVar[bool] = True

    def __init__(
        self,
        config: CVAEConfig,
        *,
        input_shape: tuple[int, ...],
        n_conditions: int = 0,
        lyrics_dim: int = 0,
    ) -> None:
        super().__init__(config, input_shape=input_shape)
        if n_conditions < 1:
            raise ValueError(
                f"cvae needs n_conditions >= 1 (number of condition classes, e.g. detected lyrics "
                f"languages), got {n_conditions}"
            )
        self.n_conditions = n_conditions
        (input_dim,) = self.input_shape
        self.encoder = mlp_gaussian_encoder(input_dim + n_conditions, config)
        self.decoder = mirrored_mlp_decoder(config, input_dim, side_features=n_conditions)

    @staticmethod
    def search_space(trial: SuggestingTrial) -> dict[str, Any]:
        return {**suggest_mlp_architecture(trial), **suggest_beta(trial, low=0.25, high=4.0)}

    def condition_one_hot(self, batch: Batch, like: Tensor) -> Tensor:
        """One-hot condition (B, n_conditions) in the dtype/device of `like`.

        Raises ValueError if `condition` is missing, not 1-D, or outside [0, n_conditions).
        """
        condition = batch.get("condition")
        if condition is None:
            raise ValueError("cvae needs batch['condition'] (LongTensor (B,) of class indices)")
        if condition.ndim != 1 or condition.shape[0] != like.shape[0]:
            raise ValueError(
                f"batch['condition'] must have shape ({like.shape[0]},), got "
                f"{tuple(condition.shape)}"
            )
        condition = condition.long()
        if condition.numel() and (condition.min() < 0 or condition.max() >= self.n_conditions):
            raise ValueError(
                f"batch['condition'] values must lie in [0, {self.n_conditions}), got "
                f"min {int(condition.min())}, max {int(condition.max())}"
            )
        return F.one_hot(condition, self.n_conditions).to(dtype=like.dtype)

    def _encode(self, x: Tensor, batch: Batch) -> tuple[Tensor, Tensor]:
        return self.encoder(torch.cat([x, self.condition_one_hot(batch, x)], dim=1))

    def _decode(self, z: Tensor, batch: Batch) -> Tensor:
        return self.decoder(torch.cat([z, self.condition_one_hot(batch, z)], dim=1))
