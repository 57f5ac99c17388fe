"""Deterministic autoencoder baseline on per-crop feature vectors.

Follows the classical bottleneck autoencoder (Hinton & Salakhutdinov, "Reducing the dimensionality
of data with neural networks", Science 2006) with an MLP encoder and a mirrored decoder. It is the
non-variational reference point: z = mu, logvar = 0, and the loss is the reconstruction term alone
(`kl` is reported as 0 so its loss dict has the same keys as the VAEs').
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor

from models.base import Batch, RepresentationModel
from models.config import MLPArchitectureConfig, SuggestingTrial, suggest_mlp_architecture
from models.layers import mirrored_mlp_decoder, multilayer_perceptron


class AutoencoderConfig(MLPArchitectureConfig):
    """Deterministic MLP autoencoder: latent size, hidden widths, dropout."""


class Autoencoder(RepresentationModel):
    """MLP autoencoder: x (B, D) -> z (B, latent_dim) -> reconstruction (B, D)."""

    name: ClassVar[str] = "ae"
    input_kind: ClassVar[Literal["vector", "spectrogram"]] = "vector"
    config_class: ClassVar[type[AutoencoderConfig]] = AutoencoderConfig
    stochastic_latent: ClassVar[bool] = False
    latent_units_comparable: ClassVar[bool] = False  # no prior: arbitrary scales

    def __init__(
        self,
        config: AutoencoderConfig,
        *,
        input_shape: tuple[int, ...],
        n_conditions: int = 0,
        lyrics_dim: int = 0,
    ) -> None:
        super().__init__(config, input_shape=input_shape)
        (input_dim,) = self.input_shape
        self.encoder = multilayer_perceptron(
            input_dim, config.hidden_dims, config.latent_dim, dropout=config.dropout
        )
        self.decoder = mirrored_mlp_decoder(config, input_dim)

    @staticmethod
    def search_space(trial: SuggestingTrial) -> dict[str, Any]:
        return suggest_mlp_architecture(trial)

    def _encode(self, x: Tensor, batch: Batch) -> tuple[Tensor, Tensor]:
        mu = self.encoder(x)
        return mu, torch.zeros_like(mu)

    def _decode(self, z: Tensor, batch: Batch) -> Tensor:
        return self.decoder(z)

    def loss_function(
        self, batch: Batch, outputs: Mapping[str, Tensor], *, kl_weight: float = 1.0
    ) -> dict[str, Tensor]:
        """Reconstruction only; `kl` is a zero scalar and `kl_weight` has no effect."""
        return self.reconstruction_only_loss(outputs)
