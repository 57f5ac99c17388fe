"""Variational autoencoder with MLP encoder and decoder on per-crop feature vectors.

Follows Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014: a diagonal Gaussian
posterior q(z|x), a standard normal prior, the reparameterisation trick and a Gaussian likelihood
(unit variance on standardised inputs). The KL term takes the shared beta / capacity options of
`KLRegularizationConfig`, so beta-VAE (`models.beta_vae`) is this architecture with other loss
settings.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from torch import Tensor

from models.base import Batch, RepresentationModel
from models.config import (
    KLRegularizationConfig,
    MLPArchitectureConfig,
    SuggestingTrial,
    suggest_mlp_architecture,
)
from models.layers import mirrored_mlp_decoder, mlp_gaussian_encoder


class MLPVAEConfig(MLPArchitectureConfig, KLRegularizationConfig):
    """MLP VAE: latent size, hidden widths, dropout, and the KL weighting (beta = 1: plain ELBO)."""


class MLPVAE(RepresentationModel):
    """x (B, D) -> q(z|x) = N(mu, diag(exp(logvar))) -> reconstruction (B, D)."""

    name: ClassVar[str] = "mlp_vae"
    input_kind: ClassVar[Literal["vector", "spectrogram"]] = "vector"
    config_class: ClassVar[type[MLPVAEConfig]] = MLPVAEConfig

    def __init__(
        self,
        config: MLPVAEConfig,
        *,
        input_shape: tuple[int, ...],
        n_conditions: int = 0,
        lyrics_dim: int = 0,
    ) -> None:
        super().__init__(config, input_shape=input_shape)
        (input_dim,) = self.input_shape
        self.encoder = mlp_gaussian_encoder(input_dim, config)
        self.decoder = mirrored_mlp_decoder(config, input_dim)

    @staticmethod
    def search_space(trial: SuggestingTrial) -> dict[str, Any]:
        """Architecture only: the plain VAE keeps beta = 1 (tune beta with `beta_vae`)."""
        return suggest_mlp_architecture(trial)

    def _encode(self, x: Tensor, batch: Batch) -> tuple[Tensor, Tensor]:
        return self.encoder(x)

    def _decode(self, z: Tensor, batch: Batch) -> Tensor:
        return self.decoder(z)
