"""The contract every model of the zoo follows (in the spirit of AntixK/PyTorch-VAE).

A model takes a batch dict and returns an outputs dict; the generic trainer only ever calls
`forward`, `loss_function`, `embed` and `set_input_normalization`, so any model can be swapped in by
name.

Batch keys (all tensors on the model's device):
- `x`: float input, Tensor [shape=(B, D)] for `input_kind == "vector"`, or
  [shape=(B, 1, n_mels, frames)] (or (B, n_mels, frames)) of log-mel values for "spectrogram".
- `condition` (optional): LongTensor [shape=(B,)], class index in [0, n_conditions) (CVAE).
- `lyrics` (optional): FloatTensor [shape=(B, L)] lyrics embeddings, with
  `lyrics_mask`: BoolTensor [shape=(B,)], False where the track has no lyrics; those rows are
  arbitrary (even NaN) and never influence any output or loss.

Outputs of `forward` (at least): `reconstruction` (shape of the normalised input), `target` (the
normalised input the reconstruction is scored against), `mu`, `logvar`, `z` (each (B, latent_dim)).

Losses follow `models.losses`: nats per track (sum over features, mean over batch), in float32.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor, nn

from models.config import KLRegularizationConfig, ModelConfig, SuggestingTrial
from models.losses import (
    capacity_at,
    gaussian_kl_to_standard_normal,
    gaussian_reconstruction_loss,
)

Batch = Mapping[str, Tensor]
InputKind = Literal["vector", "spectrogram"]

# Standard deviations below this are treated as constant features: they are centred but not
# scaled, instead of being blown up by a division by ~0.
_MIN_STD = 1e-8


@contextmanager
def evaluation_mode(module: nn.Module) -> Iterator[None]:
    """Put `module` in eval mode for the block and restore its previous mode afterwards."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


class RepresentationModel(nn.Module):
    """Base class of the zoo: normalisation buffers, reparameterisation, default VAE loss, embed.

    Subclasses set the class attributes below, implement `_encode` and `_decode`, and may
    override `forward`/`loss_function` (AE, VaDE, multimodal do).

    Constructor (same for every model, so `build_model` can treat them alike):
    `Model(config, *, input_shape, n_conditions=0, lyrics_dim=0)`; `input_shape` is (D,) for
    vector models and (n_mels, frames) for spectrogram models. Arguments a model does not use are
    ignored.
    """

    name: ClassVar[str]
    input_kind: ClassVar[InputKind]
    config_class: ClassVar[type[ModelConfig]]
    # False for the deterministic autoencoder: z = mu and no KL term.
    stochastic_latent: ClassVar[bool] = True
    # Cluster the latent means as they are (True) or standardise every dimension first (False).
    # With a fixed N(0, I) prior the KL term puts every latent dimension on one scale, and the
    # spread of a dimension's posterior means measures how much information it carries (a unit
    # that encodes little has means near 0 and posterior variance near 1). Standardising would
    # stretch those weak units to the same weight as the informative ones. Models without that
    # prior (plain autoencoder, learnt mixture prior) have arbitrary per-dimension scales.
    latent_units_comparable: ClassVar[bool] = True
    uses_condition: ClassVar[bool] = False
    uses_lyrics: ClassVar[bool] = False

    input_mean: Tensor
    input_std: Tensor
    optimisation_steps: Tensor

    def __init__(self, config: ModelConfig, *, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        if not isinstance(config, self.config_class):
            raise TypeError(
                f"{self.name} expects a {self.config_class.__name__}, got {type(config).__name__}"
            )
        self.config = config
        self.latent_dim: int = config.latent_dim
        self.input_shape: tuple[int, ...] = _validated_input_shape(
            input_shape, self.input_kind, self.name
        )
        # Per-example shape of x inside the model: spectrograms carry their channel axis.
        self.example_shape: tuple[int, ...] = (
            (1, *self.input_shape) if self.input_kind == "spectrogram" else self.input_shape
        )
        self.register_buffer("input_mean", torch.zeros(self.example_shape))
        self.register_buffer("input_std", torch.ones(self.example_shape))
        # Drives schedules that live in the loss (KL capacity); saved with the model.
        self.register_buffer("optimisation_steps", torch.zeros((), dtype=torch.long))

    # ----------------------------------------------------------------- search space
    @staticmethod
    def search_space(trial: SuggestingTrial) -> dict[str, Any]:
        """Config overrides suggested by `trial`; each model declares its own next to its config."""
        raise NotImplementedError

    # ----------------------------------------------------------------- normalisation
    def set_input_normalization(self, mean: Tensor | np.ndarray, std: Tensor | np.ndarray) -> None:
        """Store the standardisation applied to `x` in `forward`, `encode` and `embed`.

        mean, std: broadcastable to the per-example input shape: a scalar, (D,) for vectors;
        for spectrograms a scalar, (n_mels,) (per mel band), (n_mels, 1), (n_mels, frames) or
        (1, n_mels, frames). Features whose std is ~0 are only centred.

        Raises ValueError if a shape does not fit or a value is not finite / std is negative.
        """
        self.input_mean.copy_(self._statistic_buffer(mean, "mean", self.example_shape))
        self.input_std.copy_(self._std_buffer(std, self.example_shape))

    def normalize_input(self, x: Tensor) -> Tensor:
        """Validate the shape of `x` and standardise it: float32 (B, *example_shape)."""
        if self.input_kind == "spectrogram" and x.ndim == 3:
            x = x.unsqueeze(1)
        if tuple(x.shape[1:]) != self.example_shape:
            raise ValueError(
                f"{self.name}: batch['x'] has shape {tuple(x.shape)}, expected "
                f"(B, {', '.join(str(size) for size in self.example_shape)})"
            )
        return (x.float() - self.input_mean) / self.input_std

    def _statistic_buffer(
        self, value: Tensor | np.ndarray, what: str, example_shape: tuple[int, ...]
    ) -> Tensor:
        tensor = torch.as_tensor(value, dtype=torch.float32).detach()
        if self.input_kind == "spectrogram" and tensor.ndim == 1 and len(example_shape) == 3:
            tensor = tensor[:, None]  # one value per mel band
        try:
            tensor = torch.broadcast_to(tensor, example_shape).clone()
        except RuntimeError as error:
            raise ValueError(
                f"{self.name}: normalisation {what} of shape {tuple(tensor.shape)} does not "
                f"broadcast to the input shape {example_shape}"
            ) from error
        if not torch.isfinite(tensor).all():
            raise ValueError(f"{self.name}: normalisation {what} contains NaN or inf")
        return tensor

    def _std_buffer(self, std: Tensor | np.ndarray, example_shape: tuple[int, ...]) -> Tensor:
        tensor = self._statistic_buffer(std, "std", example_shape)
        if (tensor < 0).any():
            raise ValueError(f"{self.name}: normalisation std must be >= 0")
        return torch.where(tensor > _MIN_STD, tensor, torch.ones_like(tensor))

    # ----------------------------------------------------------------- encoder / decoder
    def _encode(self, x: Tensor, batch: Batch) -> tuple[Tensor, Tensor]:
        """Normalised x -> (mu, logvar), each (B, latent_dim); logvar already clamped."""
        raise NotImplementedError

    def _decode(self, z: Tensor, batch: Batch) -> Tensor:
        """z (B, latent_dim) -> reconstruction of the normalised x, shape (B, *example_shape)."""
        raise NotImplementedError

    def encode(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """Posterior (mu, logvar), each (B, latent_dim), in the current train/eval mode."""
        return self._encode(self.normalize_input(batch["x"]), batch)

    def decode(self, z: Tensor, batch: Batch | None = None) -> Tensor:
        """Reconstruction (normalised units) of latent codes z (B, latent_dim).

        `batch` supplies side information some decoders need (`condition` for the CVAE).
        """
        return self._decode(z, batch or {})

    def reparameterize(self, mu: Tensor, logvar: Tensor) -> Tensor:
        """z = mu + sigma * eps (a fresh sample in train and eval mode); z = mu for the AE."""
        if not self.stochastic_latent:
            return mu
        std = torch.exp(0.5 * logvar.float())
        return mu.float() + std * torch.randn_like(std)

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        target = self.normalize_input(batch["x"])
        mu, logvar = self._encode(target, batch)
        z = self.reparameterize(mu, logvar)
        reconstruction = self._decode(z, batch)
        return {
            "reconstruction": reconstruction,
            "target": target,
            "mu": mu,
            "logvar": logvar,
            "z": z,
        }

    # ----------------------------------------------------------------- loss
    def loss_function(
        self, batch: Batch, outputs: Mapping[str, Tensor], *, kl_weight: float = 1.0
    ) -> dict[str, Tensor]:
        """Negative ELBO with beta / capacity: `loss`, `reconstruction`, `kl` (float32 scalars).

        `kl_weight` is the trainer's warm-up factor; it multiplies the config's beta. With a
        capacity schedule the dict also holds `kl_capacity` (the current C in nats).
        """
        reconstruction = gaussian_reconstruction_loss(outputs["reconstruction"], outputs["target"])
        kl = gaussian_kl_to_standard_normal(outputs["mu"], outputs["logvar"])
        return self.negative_elbo(reconstruction, kl, kl_weight=kl_weight)

    def negative_elbo(
        self,
        reconstruction: Tensor,
        kl: Tensor,
        *,
        kl_weight: float,
        reconstruction_parts: Mapping[str, Tensor] | None = None,
    ) -> dict[str, Tensor]:
        """`loss` = reconstruction + kl_weight * `kl_penalty(kl)`, with the terms it is made of.

        reconstruction, kl: float32 scalars in nats per track. `reconstruction_parts` (named
        pieces of the reconstruction, e.g. per modality) are reported after `kl`, followed by
        the penalty's extra terms (`kl_capacity`). Advances the KL schedule like `kl_penalty`.
        """
        penalty, extra_terms = self.kl_penalty(kl)
        return {
            "loss": reconstruction + kl_weight * penalty,
            "reconstruction": reconstruction,
            "kl": kl,
            **(reconstruction_parts or {}),
            **extra_terms,
        }

    @staticmethod
    def reconstruction_only_loss(outputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Loss terms without a KL term (autoencoder, VaDE pre-training): `loss` = `reconstruction`,
        and `kl` is a zero scalar so that the dict has the same keys as the VAEs'."""
        reconstruction = gaussian_reconstruction_loss(outputs["reconstruction"], outputs["target"])
        return {
            "loss": reconstruction,
            "reconstruction": reconstruction,
            "kl": torch.zeros((), device=reconstruction.device),
        }

    def kl_penalty(self, kl: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """beta * KL, or beta * |KL - C(step)| with a capacity schedule; advances the step counter.

        The step counts calls in training mode with gradients enabled, i.e. optimisation steps;
        validation passes do not move the schedule.
        """
        # Read the step before counting this one: the first optimisation step sees C = 0.
        regularization = self.config
        capacity_on = (
            isinstance(regularization, KLRegularizationConfig) and regularization.capacity_max > 0
        )
        step = int(self.optimisation_steps.item()) if capacity_on else 0
        if self.training and torch.is_grad_enabled():
            self.optimisation_steps += 1
        if not isinstance(regularization, KLRegularizationConfig):
            return kl, {}
        if not capacity_on:
            return regularization.beta * kl, {}
        capacity = capacity_at(
            step,
            capacity_max=regularization.capacity_max,
            capacity_steps=regularization.capacity_steps,
        )
        penalty = regularization.beta * (kl - capacity).abs()
        return penalty, {"kl_capacity": torch.tensor(capacity, device=kl.device)}

    # ----------------------------------------------------------------- embeddings
    def embed(self, batch: Batch) -> Tensor:
        """Deterministic latent means, float32 (B, latent_dim), for clustering.

        Always computed in eval mode (dropout off, batch-norm running statistics) and without
        gradients; the module's previous mode is restored afterwards.
        """
        with evaluation_mode(self), torch.no_grad():
            mu, _ = self.encode(batch)
        return mu.float()


def _validated_input_shape(
    input_shape: tuple[int, ...], input_kind: InputKind, model_name: str
) -> tuple[int, ...]:
    shape = tuple(int(size) for size in input_shape)
    expected_rank = 1 if input_kind == "vector" else 2
    if len(shape) != expected_rank or any(size < 1 for size in shape):
        expected = "(D,)" if input_kind == "vector" else "(n_mels, frames)"
        raise ValueError(
            f"{model_name} takes {input_kind} inputs: input_shape must be {expected} of positive "
            f"sizes, got {input_shape!r}"
        )
    return shape
