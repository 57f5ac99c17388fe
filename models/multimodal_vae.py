"""Multimodal VAE over an audio feature vector and a lyrics embedding, robust to missing lyrics.

One latent code z explains both modalities: decoders p(audio|z) and p(lyrics|z), a standard normal
prior, and an inference network that fuses the modalities in one of four ways (`fusion`):

- "early": one MLP encoder on [audio, lyrics or a learned "missing lyrics" vector, has-lyrics
  indicator] (early/feature fusion);
- "late": one Gaussian expert per modality combined by a product of experts with a N(0, I) prior
  expert, following Wu & Goodman, "Multimodal Generative Models for Scalable Weakly-Supervised
  Learning" (MVAE), NeurIPS 2018; a missing lyrics expert is simply left out of the product;
- "attention": each modality is projected to `tokens_per_modality` tokens of width
  `attention_dim`; one multi-head attention layer over all tokens (so audio tokens attend to
  lyrics tokens and back; Vaswani et al. 2017) with a key padding mask that hides the lyrics tokens
  of tracks without lyrics; masked mean pooling then a Gaussian head;
- "weighted": per-modality Gaussians averaged with learnable modality weights (softmax over the
  available modalities, so weights renormalise to audio = 1 when lyrics are missing):
  mu = sum_m w_m mu_m, var = sum_m w_m var_m.

Missing lyrics (`lyrics_mask` False) are masked, never replaced by zeros that pretend to be lyrics:
their rows are dropped with `torch.where` before any arithmetic (so even NaN there cannot leak) and
their lyrics reconstruction term is excluded. Loss = audio reconstruction + lyrics_weight *
(audio dims / lyrics dims) * lyrics reconstruction + kl_weight * beta * KL, in nats per track (the
width ratio balances the modalities: a sum over 384 lyrics dimensions would otherwise outweigh
127 audio ones; on the demo it turned audio+lyrics from below its audio-only control to above);
the lyrics term is summed over tracks with lyrics and divided by the batch size, so a track
without lyrics contributes 0, not an average.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field, PositiveInt, model_validator
from torch import Tensor, nn

from models.base import Batch, RepresentationModel
from models.config import (
    KLRegularizationConfig,
    MLPArchitectureConfig,
    SuggestingTrial,
    suggest_beta,
    suggest_mlp_architecture,
)
from models.layers import GaussianHead, mirrored_mlp_decoder, mlp_gaussian_encoder
from models.losses import (
    clamp_logvar,
    gaussian_kl_to_standard_normal,
    gaussian_reconstruction_loss,
    per_sample_reconstruction_loss,
)

Fusion = Literal["early", "late", "attention", "weighted"]
FUSIONS: tuple[Fusion, ...] = ("early", "late", "attention", "weighted")


class MultimodalVAEConfig(MLPArchitectureConfig, KLRegularizationConfig):
    """Audio + lyrics VAE: fusion strategy, MLP widths, lyrics loss weight, attention sizes."""

    fusion: Fusion = Field("late", description="How the encoder combines audio and lyrics.")
    lyrics_weight: float = Field(
        1.0,
        ge=0.0,
        description="Weight of the lyrics reconstruction term relative to the audio one, per "
        "dimension (1: both modalities weigh alike, whatever their widths).",
    )
    attention_dim: PositiveInt = Field(
        64, description="Token width for fusion='attention' (divisible by attention_heads)."
    )
    attention_heads: PositiveInt = Field(4, description="Attention heads for fusion='attention'.")
    tokens_per_modality: PositiveInt = Field(
        4, le=64, description="Tokens each modality is projected to for fusion='attention'."
    )

    @model_validator(mode="after")
    def _heads_divide_width(self) -> MultimodalVAEConfig:
        if self.attention_dim % self.attention_heads:
            raise ValueError(
                f"attention_dim ({self.attention_dim}) must be divisible by attention_heads "
                f"({self.attention_heads})"
            )
        return self


# --------------------------------------------------------------------------- fusion encoders
# Each maps audio (B, D), lyrics (B, L) and has_lyrics (B,) to (mu, logvar), each (B, latent_dim).
# `lyrics` rows with has_lyrics False are already zeroed by torch.where and must not be used.


class EarlyFusionEncoder(nn.Module):
    """One MLP on [audio, lyrics or learned missing vector, has-lyrics indicator]."""

    def __init__(self, config: MultimodalVAEConfig, audio_dim: int, lyrics_dim: int) -> None:
        super().__init__()
        # Learned stand-in for absent lyrics; it starts at 0 = the mean lyrics embedding after
        # standardisation, and the indicator lets the encoder tell it apart from real lyrics.
        self.missing_lyrics = nn.Parameter(torch.zeros(lyrics_dim))
        self.encoder = mlp_gaussian_encoder(audio_dim + lyrics_dim + 1, config)

    def forward(self, audio: Tensor, lyrics: Tensor, has_lyrics: Tensor) -> tuple[Tensor, Tensor]:
        missing = self.missing_lyrics.to(lyrics.dtype).expand_as(lyrics)
        lyrics_or_missing = torch.where(has_lyrics[:, None], lyrics, missing)
        indicator = has_lyrics.to(audio.dtype)[:, None]
        return self.encoder(torch.cat([audio, lyrics_or_missing.to(audio.dtype), indicator], dim=1))


class ProductOfExpertsEncoder(nn.Module):
    """Gaussian experts per modality and a N(0, I) prior expert, multiplied (precision-weighted)."""

    def __init__(self, config: MultimodalVAEConfig, audio_dim: int, lyrics_dim: int) -> None:
        super().__init__()
        self.audio_expert = mlp_gaussian_encoder(audio_dim, config)
        self.lyrics_expert = mlp_gaussian_encoder(lyrics_dim, config)

    def forward(self, audio: Tensor, lyrics: Tensor, has_lyrics: Tensor) -> tuple[Tensor, Tensor]:
        audio_mu, audio_logvar = self.audio_expert(audio)
        lyrics_mu, lyrics_logvar = self.lyrics_expert(lyrics)
        # Precisions in float32: they span e^-10..e^10 and are summed.
        audio_precision = (-audio_logvar.float()).exp()
        lyrics_precision = torch.where(
            has_lyrics[:, None], (-lyrics_logvar.float()).exp(), torch.zeros_like(audio_precision)
        )
        lyrics_weighted_mu = torch.where(
            has_lyrics[:, None],
            lyrics_mu.float() * lyrics_precision,
            torch.zeros_like(audio_precision),
        )
        total_precision = 1.0 + audio_precision + lyrics_precision  # 1.0: the prior expert
        mu = (audio_mu.float() * audio_precision + lyrics_weighted_mu) / total_precision
        return mu, clamp_logvar(-total_precision.log())


class WeightedFusionEncoder(nn.Module):
    """Per-modality Gaussians averaged with softmax weights over the available modalities."""

    def __init__(self, config: MultimodalVAEConfig, audio_dim: int, lyrics_dim: int) -> None:
        super().__init__()
        self.audio_encoder = mlp_gaussian_encoder(audio_dim, config)
        self.lyrics_encoder = mlp_gaussian_encoder(lyrics_dim, config)
        self.modality_logits = nn.Parameter(torch.zeros(2))  # (audio, lyrics)

    def modality_weights(self, has_lyrics: Tensor) -> Tensor:
        """Softmax weights (B, 2) over (audio, lyrics); lyrics weight 0 where lyrics are missing."""
        logits = self.modality_logits.float()[None].expand(has_lyrics.shape[0], 2)
        lyrics_logit = torch.where(
            has_lyrics, logits[:, 1], torch.full_like(logits[:, 1], float("-inf"))
        )
        return torch.softmax(torch.stack([logits[:, 0], lyrics_logit], dim=1), dim=1)

    def forward(self, audio: Tensor, lyrics: Tensor, has_lyrics: Tensor) -> tuple[Tensor, Tensor]:
        audio_mu, audio_logvar = self.audio_encoder(audio)
        lyrics_mu, lyrics_logvar = self.lyrics_encoder(lyrics)
        weights = self.modality_weights(has_lyrics)
        audio_weight, lyrics_weight = weights[:, :1], weights[:, 1:]
        zeros = torch.zeros_like(audio_mu, dtype=torch.float32)
        lyrics_mu = torch.where(has_lyrics[:, None], lyrics_mu.float(), zeros)
        lyrics_var = torch.where(has_lyrics[:, None], lyrics_logvar.float().exp(), zeros)
        mu = audio_weight * audio_mu.float() + lyrics_weight * lyrics_mu
        variance = audio_weight * audio_logvar.float().exp() + lyrics_weight * lyrics_var
        return mu, clamp_logvar(variance.log())


class CrossModalAttentionEncoder(nn.Module):
    """Tokens of both modalities, attention with lyrics key padding, masked mean pooling."""

    def __init__(self, config: MultimodalVAEConfig, audio_dim: int, lyrics_dim: int) -> None:
        super().__init__()
        width, n_tokens = config.attention_dim, config.tokens_per_modality
        self.width, self.n_tokens = width, n_tokens
        # A linear map to n_tokens * width gives every token its own projection, so tokens need
        # no separate position or modality embedding.
        self.audio_to_tokens = nn.Linear(audio_dim, n_tokens * width)
        self.lyrics_to_tokens = nn.Linear(lyrics_dim, n_tokens * width)
        self.input_norm = nn.LayerNorm(width)
        self.attention = nn.MultiheadAttention(
            width, config.attention_heads, dropout=config.dropout, batch_first=True
        )
        self.attention_norm = nn.LayerNorm(width)
        self.feed_forward = nn.Sequential(
            nn.Linear(width, 2 * width),
            nn.SiLU(),
            nn.Dropout(config.dropout),
            nn.Linear(2 * width, width),
        )
        self.feed_forward_norm = nn.LayerNorm(width)
        self.head = GaussianHead(width, config.latent_dim)

    def forward(self, audio: Tensor, lyrics: Tensor, has_lyrics: Tensor) -> tuple[Tensor, Tensor]:
        batch_size = audio.shape[0]
        audio_tokens = self.audio_to_tokens(audio).view(batch_size, self.n_tokens, self.width)
        lyrics_tokens = self.lyrics_to_tokens(lyrics.to(audio.dtype)).view(
            batch_size, self.n_tokens, self.width
        )
        tokens = self.input_norm(torch.cat([audio_tokens, lyrics_tokens], dim=1))
        # True = ignore. Audio tokens are always present, so no row has every key masked
        # (which would make the attention softmax NaN).
        ignore = torch.cat(
            [
                torch.zeros(batch_size, self.n_tokens, dtype=torch.bool, device=audio.device),
                (~has_lyrics)[:, None].expand(batch_size, self.n_tokens),
            ],
            dim=1,
        )
        attended, _ = self.attention(
            tokens, tokens, tokens, key_padding_mask=ignore, need_weights=False
        )
        tokens = self.attention_norm(tokens + attended)
        tokens = self.feed_forward_norm(tokens + self.feed_forward(tokens))
        keep = (~ignore)[:, :, None]
        tokens = tokens.float()
        kept_tokens = torch.where(keep, tokens, torch.zeros_like(tokens))
        pooled = kept_tokens.sum(dim=1) / keep.sum(dim=1).float()
        return self.head(pooled)


_FUSION_ENCODERS: dict[str, type[nn.Module]] = {
    "early": EarlyFusionEncoder,
    "late": ProductOfExpertsEncoder,
    "attention": CrossModalAttentionEncoder,
    "weighted": WeightedFusionEncoder,
}


class MultimodalVAE(RepresentationModel):
    """audio (B, D) + lyrics (B, L) with mask (B,) -> z (B, latent_dim) -> both reconstructions.

    Build with `lyrics_dim` = L. Batches without a `lyrics` key are treated as having no lyrics
    at all (audio-only prediction). Extra outputs: `lyrics_reconstruction` (B, L),
    `lyrics_target` (B, L; normalised lyrics, zero rows where missing), `lyrics_mask` (B,).
    Extra loss terms: `reconstruction_audio`, `reconstruction_lyrics` (`reconstruction` is
    their weighted sum).
    """

    name: ClassVar[str] = "multimodal_vae"
    input_kind: ClassVar[Literal["vector", "spectrogram"]] = "vector"
    config_class: ClassVar[type[MultimodalVAEConfig]] = MultimodalVAEConfig
    uses_lyrics: ClassVar[bool] = True

    lyrics_mean: Tensor
    lyrics_std: Tensor

    def __init__(
        self,
        config: MultimodalVAEConfig,
        *,
        input_shape: tuple[int, ...],
        n_conditions: int = 0,
        lyrics_dim: int = 0,
    ) -> None:
        super().__init__(config, input_shape=input_shape)
        if lyrics_dim < 1:
            raise ValueError(
                f"multimodal_vae needs lyrics_dim >= 1 (width of the lyrics embeddings), "
                f"got {lyrics_dim}"
            )
        (audio_dim,) = self.input_shape
        self.lyrics_dim = lyrics_dim
        # Each reconstruction term is a sum over its dimensions: a 384-d sentence embedding
        # would outvote a 127-d audio summary by its width alone, pulling the shared code towards
        # the lyrics whatever they are worth. Scaled per dimension, `lyrics_weight` 1 gives both
        # modalities one say (MVAE balances its likelihoods the same way).
        self.lyrics_balance = audio_dim / lyrics_dim
        self.fusion: str = config.fusion
        self.register_buffer("lyrics_mean", torch.zeros(lyrics_dim))
        self.register_buffer("lyrics_std", torch.ones(lyrics_dim))
        self.fusion_encoder = _FUSION_ENCODERS[config.fusion](config, audio_dim, lyrics_dim)
        self.audio_decoder = mirrored_mlp_decoder(config, audio_dim)
        self.lyrics_decoder = mirrored_mlp_decoder(config, lyrics_dim)

    @staticmethod
    def search_space(trial: SuggestingTrial) -> dict[str, Any]:
        overrides: dict[str, Any] = {"fusion": trial.suggest_categorical("fusion", list(FUSIONS))}
        overrides |= suggest_mlp_architecture(trial)
        overrides |= suggest_beta(trial, low=0.25, high=4.0)
        overrides["lyrics_weight"] = trial.suggest_float("lyrics_weight", 0.1, 10.0, log=True)
        if overrides["fusion"] == "attention":
            overrides["attention_dim"] = trial.suggest_categorical("attention_dim", [32, 64, 128])
            overrides["attention_heads"] = trial.suggest_categorical("attention_heads", [2, 4])
            overrides["tokens_per_modality"] = trial.suggest_categorical(
                "tokens_per_modality", [2, 4, 8]
            )
        return overrides

    # ----------------------------------------------------------------- lyrics input
    def set_lyrics_normalization(self, mean: Tensor | np.ndarray, std: Tensor | np.ndarray) -> None:
        """Standardisation of lyrics embeddings: scalars or (L,), computed on tracks with lyrics.

        Without it a unit-variance likelihood would all but ignore embeddings whose coordinates
        vary by ~0.05 (unit-norm sentence embeddings).
        """
        self.lyrics_mean.copy_(self._statistic_buffer(mean, "lyrics mean", (self.lyrics_dim,)))
        self.lyrics_std.copy_(self._std_buffer(std, (self.lyrics_dim,)))

    def prepare_lyrics(self, batch: Batch, batch_size: int) -> tuple[Tensor, Tensor]:
        """Normalised lyrics (B, L) float32, rows of tracks without lyrics set to 0; and the mask.

        Raises ValueError for inconsistent keys or shapes.
        """
        device = self.lyrics_mean.device
        lyrics = batch.get("lyrics")
        has_lyrics = batch.get("lyrics_mask")
        if lyrics is None:
            if has_lyrics is not None and bool(has_lyrics.any()):
                raise ValueError(
                    "batch['lyrics_mask'] marks tracks with lyrics but 'lyrics' is absent"
                )
            return (
                torch.zeros(batch_size, self.lyrics_dim, device=device),
                torch.zeros(batch_size, dtype=torch.bool, device=device),
            )
        if has_lyrics is None:
            raise ValueError("batch has 'lyrics' but no 'lyrics_mask' (BoolTensor (B,))")
        if tuple(lyrics.shape) != (batch_size, self.lyrics_dim):
            raise ValueError(
                f"batch['lyrics'] has shape {tuple(lyrics.shape)}, expected "
                f"({batch_size}, {self.lyrics_dim})"
            )
        if tuple(has_lyrics.shape) != (batch_size,):
            raise ValueError(
                f"batch['lyrics_mask'] has shape {tuple(has_lyrics.shape)}, "
                f"expected ({batch_size},)"
            )
        has_lyrics = has_lyrics.bool()
        normalised = (lyrics.float() - self.lyrics_mean) / self.lyrics_std
        # torch.where, not multiplication: 0 * NaN is NaN, a selected-away NaN is gone.
        cleaned = torch.where(has_lyrics[:, None], normalised, torch.zeros_like(normalised))
        return cleaned, has_lyrics

    # ----------------------------------------------------------------- network
    def _encode(self, x: Tensor, batch: Batch) -> tuple[Tensor, Tensor]:
        lyrics, has_lyrics = self.prepare_lyrics(batch, x.shape[0])
        return self.fusion_encoder(x, lyrics, has_lyrics)

    def _decode(self, z: Tensor, batch: Batch) -> Tensor:
        return self.audio_decoder(z)

    def decode_lyrics(self, z: Tensor) -> Tensor:
        """Lyrics reconstruction (normalised units), (B, L), from latent codes (B, latent_dim)."""
        return self.lyrics_decoder(z)

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        """The base outputs (audio as `reconstruction` / `target`) plus `lyrics_reconstruction`,
        `lyrics_target` and `lyrics_mask`."""
        outputs = super().forward(batch)
        lyrics_target, has_lyrics = self.prepare_lyrics(batch, outputs["target"].shape[0])
        return {
            **outputs,
            "lyrics_reconstruction": self.lyrics_decoder(outputs["z"]),
            "lyrics_target": lyrics_target,
            "lyrics_mask": has_lyrics,
        }

    def loss_function(
        self, batch: Batch, outputs: Mapping[str, Tensor], *, kl_weight: float = 1.0
    ) -> dict[str, Tensor]:
        """Audio + masked lyrics reconstruction + beta-weighted KL (see the module docstring)."""
        audio_term = gaussian_reconstruction_loss(outputs["reconstruction"], outputs["target"])
        per_track_lyrics = per_sample_reconstruction_loss(
            outputs["lyrics_reconstruction"], outputs["lyrics_target"]
        )
        has_lyrics = outputs["lyrics_mask"]
        per_track_lyrics = torch.where(
            has_lyrics, per_track_lyrics, torch.zeros_like(per_track_lyrics)
        )
        lyrics_term = per_track_lyrics.sum() / max(per_track_lyrics.shape[0], 1)
        lyrics_scale = self.config.lyrics_weight * self.lyrics_balance
        reconstruction = audio_term + lyrics_scale * lyrics_term
        kl = gaussian_kl_to_standard_normal(outputs["mu"], outputs["logvar"])
        return self.negative_elbo(
            reconstruction,
            kl,
            kl_weight=kl_weight,
            reconstruction_parts={
                "reconstruction_audio": audio_term,
                "reconstruction_lyrics": lyrics_term,
            },
        )
