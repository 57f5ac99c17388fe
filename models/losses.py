"""Loss terms shared by every model, with one reduction convention so losses are comparable.

Convention: every term is summed over features (and latent dimensions) of one track, then averaged
over the batch, i.e. nats per track. Reconstruction is the negative log-likelihood of a Gaussian
with unit variance, constant dropped: 0.5 * ||x - x_hat||^2. Unit variance is the right noise
scale because inputs are standardised before the model sees them.

All terms are computed in float32 even under autocast (fp16/bf16 squares and exponentials
overflow or lose the small KL differences that matter).
"""

from __future__ import annotations

from torch import Tensor

# exp(-10) .. exp(10): standard deviations between ~0.007 and ~150 on standardised data. Wider
# ranges only let a diverging encoder produce inf/NaN before the optimiser can correct it.
LOGVAR_MIN = -10.0
LOGVAR_MAX = 10.0


def clamp_logvar(logvar: Tensor) -> Tensor:
    """Clamp a log-variance into [LOGVAR_MIN, LOGVAR_MAX] (same shape and dtype)."""
    return logvar.clamp(LOGVAR_MIN, LOGVAR_MAX)


def gaussian_reconstruction_loss(reconstruction: Tensor, target: Tensor) -> Tensor:
    """0.5 * squared error summed over all non-batch dims, averaged over the batch.

    reconstruction, target: Tensor [shape=(B, ...)], same shape. Returns a float32 scalar.
    """
    if reconstruction.shape != target.shape:
        raise ValueError(
            f"reconstruction shape {tuple(reconstruction.shape)} differs from target shape "
            f"{tuple(target.shape)}"
        )
    return per_sample_reconstruction_loss(reconstruction, target).mean()


def per_sample_reconstruction_loss(reconstruction: Tensor, target: Tensor) -> Tensor:
    """0.5 * squared error summed over all non-batch dims: Tensor [shape=(B,)], float32."""
    difference = reconstruction.float() - target.float()
    return 0.5 * difference.pow(2).flatten(start_dim=1).sum(dim=1)


def gaussian_kl_to_standard_normal(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) summed over latent dims, averaged over the batch.

    mu, logvar: Tensor [shape=(B, latent_dim)]. Returns a float32 scalar in nats per track.
    """
    mu = mu.float()
    logvar = logvar.float()
    per_sample = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)
    return per_sample.mean()


def capacity_at(step: Tensor | int, *, capacity_max: float, capacity_steps: int) -> float:
    """Linear capacity schedule C(step) = capacity_max * min(1, step / capacity_steps), in nats."""
    progress = min(1.0, float(step) / float(capacity_steps))
    return capacity_max * progress
