"""Convolutional VAE on log-mel spectrogram crops.

Follows Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014, with the convolutional
encoder / transposed-convolution decoder layout of DCGAN-style VAEs (Radford et al., 2016: strided
convolutions, batch normalisation, leaky ReLU). Shape-agnostic: the encoder's output shape is found
with a dummy pass at build time, and the decoder output is cropped (or zero-padded) to the input
shape, so (128, 128), (64, 96) or (20, 130) crops all work. Takes the shared beta / capacity loss
options (`KLRegularizationConfig`).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt
from torch import Tensor, nn

from models.base import Batch, RepresentationModel, evaluation_mode
from models.config import KLRegularizationConfig, ModelConfig, SuggestingTrial, suggest_beta
from models.layers import GaussianHead


class ConvVAEConfig(ModelConfig, KLRegularizationConfig):
    """Convolutional VAE: channels per stride-2 stage, dropout before the latent heads, beta."""

    channels: tuple[PositiveInt, ...] = Field(
        (32, 64, 128, 256),
        min_length=1,
        max_length=6,
        description="Output channels of each stride-2 convolution stage (each halves both "
        "spatial sizes, rounding up); the decoder mirrors them with transposed convolutions.",
    )
    dropout: float = Field(
        0.0, ge=0.0, lt=1.0, description="Dropout on the flattened encoder features."
    )


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    # kernel 3, stride 2, padding 1: out = ceil(in / 2) for every in >= 1.
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.LeakyReLU(0.2),
    )


def _transposed_conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    # kernel 3, stride 2, padding 1, output_padding 1: out = 2 * in, undoing one encoder stage.
    return nn.Sequential(
        nn.ConvTranspose2d(
            in_channels,
            out_channels,
            kernel_size=3,
            stride=2,
            padding=1,
            output_padding=1,
            bias=False,
        ),
        nn.BatchNorm2d(out_channels),
        nn.LeakyReLU(0.2),
    )


def crop_or_pad_to(images: Tensor, height: int, width: int) -> Tensor:
    """Crop (top-left anchored) or zero-pad (B, C, h, w) to (B, C, height, width)."""
    images = images[..., :height, :width]
    missing_height = height - images.shape[-2]
    missing_width = width - images.shape[-1]
    if missing_height > 0 or missing_width > 0:
        images = F.pad(images, (0, max(missing_width, 0), 0, max(missing_height, 0)))
    return images


class ConvVAE(RepresentationModel):
    """x (B, 1, n_mels, frames) -> z (B, latent_dim) -> reconstruction (B, 1, n_mels, frames).

    Batch normalisation needs more than one value per channel in training mode, so train with
    batches of at least 2 crops.
    """

    name: ClassVar[str] = "conv_vae"
    input_kind: ClassVar[Literal["vector", "spectrogram"]] = "spectrogram"
    config_class: ClassVar[type[ConvVAEConfig]] = ConvVAEConfig
    # Layout of the activations. oneDNN (CPU) and cuDNN with mixed precision (GPU) run these
    # convolutions fastest channels-last: on the shared 2-core CPU an epoch took 1.0 - 1.5x less
    # time than NCHW, with the same losses and clusters (bench/conv_vae.py). A speed choice, so
    # not part of the config (nor of cache keys); the weights stay contiguous, as safetensors
    # needs them. Benchmarks set it per instance to compare.
    memory_format: torch.memory_format = torch.channels_last

    def __init__(
        self,
        config: ConvVAEConfig,
        *,
        input_shape: tuple[int, ...],
        n_conditions: int = 0,
        lyrics_dim: int = 0,
    ) -> None:
        super().__init__(config, input_shape=input_shape)
        channels = (1, *config.channels)
        self.encoder = nn.Sequential(
            *(_conv_block(channels[i], channels[i + 1]) for i in range(len(channels) - 1))
        )
        self.encoded_shape = self._encoder_output_shape()
        flat_features = int(torch.tensor(self.encoded_shape).prod())
        self.encoder_dropout = nn.Dropout(config.dropout)
        self.head = GaussianHead(flat_features, config.latent_dim)

        self.decoder_input = nn.Linear(config.latent_dim, flat_features)
        reversed_channels = config.channels[::-1]
        # The last stage keeps the first stage's width; a 3x3 convolution then maps to 1 channel.
        upsampling = [
            _transposed_conv_block(reversed_channels[i], reversed_channels[i + 1])
            for i in range(len(reversed_channels) - 1)
        ]
        upsampling.append(_transposed_conv_block(reversed_channels[-1], reversed_channels[-1]))
        self.decoder = nn.Sequential(
            *upsampling, nn.Conv2d(reversed_channels[-1], 1, kernel_size=3, padding=1)
        )

    def _encoder_output_shape(self) -> tuple[int, int, int]:
        # Eval mode: a batch of one would break batch norm's training statistics, and the dummy
        # pass must not touch the running statistics.
        with evaluation_mode(self.encoder), torch.no_grad():
            encoded = self.encoder(torch.zeros(1, *self.example_shape))
        channels, height, width = encoded.shape[1:]
        return int(channels), int(height), int(width)

    @staticmethod
    def search_space(trial: SuggestingTrial) -> dict[str, Any]:
        n_stages = trial.suggest_int("n_conv_stages", 2, 4)
        base_channels = trial.suggest_categorical("base_channels", [16, 32, 64])
        return {
            "latent_dim": trial.suggest_categorical("latent_dim", [8, 16, 32, 64]),
            "channels": tuple(base_channels * 2**stage for stage in range(n_stages)),
            "dropout": trial.suggest_float("dropout", 0.0, 0.3),
            **suggest_beta(trial),
        }

    def _encode(self, x: Tensor, batch: Batch) -> tuple[Tensor, Tensor]:
        features = self.encoder(x.contiguous(memory_format=self.memory_format))
        features = features.flatten(start_dim=1)
        return self.head(self.encoder_dropout(features))

    def _decode(self, z: Tensor, batch: Batch) -> Tensor:
        feature_maps = self.decoder_input(z).view(-1, *self.encoded_shape)
        decoded = self.decoder(feature_maps.contiguous(memory_format=self.memory_format))
        n_mels, frames = self.input_shape
        return crop_or_pad_to(decoded, n_mels, frames)
