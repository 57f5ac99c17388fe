"""Building blocks shared by the MLP models: perceptron stacks and Gaussian posterior heads."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from models.config import MLPArchitectureConfig
from models.losses import clamp_logvar


def multilayer_perceptron(
    in_features: int,
    hidden_dims: Sequence[int],
    out_features: int | None = None,
    *,
    dropout: float = 0.0,
) -> nn.Sequential:
    """Linear -> LayerNorm -> SiLU -> Dropout per hidden width, then an optional linear output.

    LayerNorm rather than BatchNorm: it behaves the same for a batch of one (prediction of a single
    track) and in train and eval mode. Without `out_features` the stack ends on the last hidden
    activation (shape (B, hidden_dims[-1])); with it, on a plain linear layer (no activation), as
    reconstructions of standardised data are unbounded.
    """
    layers: list[nn.Module] = []
    width = in_features
    for hidden in hidden_dims:
        layers += [nn.Linear(width, hidden), nn.LayerNorm(hidden), nn.SiLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = hidden
    if out_features is not None:
        layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)


class GaussianHead(nn.Module):
    """Linear map from features (B, F) to a diagonal Gaussian: mu, clamped logvar (B, latent)."""

    def __init__(self, in_features: int, latent_dim: int) -> None:
        super().__init__()
        self.mu = nn.Linear(in_features, latent_dim)
        self.logvar = nn.Linear(in_features, latent_dim)

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        return self.mu(features), clamp_logvar(self.logvar(features))


class MLPGaussianEncoder(nn.Module):
    """MLP body plus Gaussian head: (B, in_features) -> (mu, logvar), each (B, latent_dim)."""

    def __init__(
        self, in_features: int, hidden_dims: Sequence[int], latent_dim: int, *, dropout: float
    ) -> None:
        super().__init__()
        self.body = multilayer_perceptron(in_features, hidden_dims, dropout=dropout)
        self.head = GaussianHead(hidden_dims[-1], latent_dim)

    def forward(self, inputs: Tensor) -> tuple[Tensor, Tensor]:
        return self.head(self.body(inputs))


def mlp_gaussian_encoder(in_features: int, config: MLPArchitectureConfig) -> MLPGaussianEncoder:
    """The Gaussian encoder `config` describes: (B, in_features) -> (mu, logvar), each
    (B, config.latent_dim), through `config.hidden_dims` with `config.dropout`."""
    return MLPGaussianEncoder(
        in_features, config.hidden_dims, config.latent_dim, dropout=config.dropout
    )


def mirrored_mlp_decoder(
    config: MLPArchitectureConfig, out_features: int, *, side_features: int = 0
) -> nn.Sequential:
    """Decoder whose hidden widths mirror the encoder's: (B, latent_dim + side_features) ->
    (B, out_features), linear output.

    side_features: width of side information concatenated to z (the CVAE's one-hot condition).
    """
    return multilayer_perceptron(
        config.latent_dim + side_features,
        config.hidden_dims[::-1],
        out_features,
        dropout=config.dropout,
    )
