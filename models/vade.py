"""Variational Deep Embedding (VaDE): a VAE whose prior is a learnable Gaussian mixture.

Follows Jiang, Zheng, Tan, Tang & Zhou, "Variational Deep Embedding: An Unsupervised and Generative
Approach to Clustering", IJCAI 2017. Generative model: c ~ Cat(pi), z ~ N(mu_c, diag(var_c)),
x ~ N(decoder(z), I). Inference: q(z|x) = N(mu, diag(var)) from an MLP encoder and
q(c|x) ~= p(c|z) = gamma.

Training has three phases, driven by the trainer:
1. pre-training as a deterministic autoencoder: `set_pretraining(True)`; then `forward` uses z = mu
   and `loss_function` returns the reconstruction only (the same as `pretrain_loss`);
2. `initialize_prior(latents)`: fit a diagonal sklearn GaussianMixture on the encoder means of the
   training set and copy pi, mu_c, var_c into the prior; this also ends pre-training;
3. joint training of the ELBO below (prior parameters are ordinary `nn.Parameter`s).

The KL term (nats per track, exact for one sample of z):
  KL(q(z, c|x) || p(z, c)) = sum_c gamma_c [0.5 * sum_j (logvar_c,j + (var_j + (mu_j - mu_c,j)^2)
                             / var_c,j) + log gamma_c - log pi_c] - 0.5 * sum_j (1 + logvar_j).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import Field, NonNegativeInt, PositiveInt
from sklearn.mixture import GaussianMixture
from torch import Tensor, nn

from models.base import Batch
from models.config import SuggestingTrial, suggest_mlp_architecture
from models.losses import LOGVAR_MAX, LOGVAR_MIN, clamp_logvar, gaussian_reconstruction_loss
from models.mlp_vae import MLPVAE, MLPVAEConfig

_LOG_2PI = math.log(2.0 * math.pi)


class VaDEConfig(MLPVAEConfig):
    """VaDE: MLP encoder/decoder, number of mixture components, prior initialisation."""

    latent_dim: int = Field(10, ge=1, le=512, description="Size of the latent code z.")
    n_components: int = Field(
        10, ge=2, le=256, description="Number of Gaussian mixture components (clusters) K."
    )
    prior_init_restarts: PositiveInt = Field(
        3, description="GaussianMixture n_init when initialising the prior from encoder means."
    )
    prior_init_seed: NonNegativeInt = Field(
        0, description="random_state of the GaussianMixture that initialises the prior."
    )


class VaDE(MLPVAE):
    """MLP VAE with a GMM prior: x (B, D) -> z (B, latent_dim); gamma (B, K) = q(c|x).

    The encoder and decoder are `MLPVAE`'s; this class adds the prior and the training phases.
    """

    name: ClassVar[str] = "vade"
    config_class: ClassVar[type[VaDEConfig]] = VaDEConfig
    # The learnt mixture prior has its own per-dimension variances: scales are not comparable.
    latent_units_comparable: ClassVar[bool] = False

    prior_initialized: Tensor

    def __init__(
        self,
        config: VaDEConfig,
        *,
        input_shape: tuple[int, ...],
        n_conditions: int = 0,
        lyrics_dim: int = 0,
    ) -> None:
        super().__init__(
            config, input_shape=input_shape, n_conditions=n_conditions, lyrics_dim=lyrics_dim
        )
        self.n_components = config.n_components
        # Mixture weights as logits: softmax keeps pi on the simplex without projection steps.
        self.prior_logits = nn.Parameter(torch.zeros(config.n_components))
        # Spread the means before initialize_prior so that an uninitialised model still has
        # distinguishable components.
        self.prior_means = nn.Parameter(torch.randn(config.n_components, config.latent_dim))
        self.prior_logvars = nn.Parameter(torch.zeros(config.n_components, config.latent_dim))
        self.register_buffer("prior_initialized", torch.zeros((), dtype=torch.bool))
        self.pretraining = False

    @staticmethod
    def search_space(trial: SuggestingTrial) -> dict[str, Any]:
        overrides = suggest_mlp_architecture(trial)
        overrides["n_components"] = trial.suggest_int("n_components", 2, 30)
        return overrides

    # ----------------------------------------------------------------- phases
    def set_pretraining(self, enabled: bool) -> None:
        """Phase 1 switch: z = mu and a reconstruction-only loss while enabled."""
        self.pretraining = bool(enabled)

    def initialize_prior(self, latents: Tensor | np.ndarray) -> None:
        """Phase 2: fit GaussianMixture(K, diag) on encoder means (N, latent_dim), copy it in.

        Also switches pre-training off. Raises ValueError if `latents` has the wrong width, fewer
        rows than components, or non-finite values.
        """
        values = torch.as_tensor(latents).detach().to("cpu", torch.float64).numpy()
        if values.ndim != 2 or values.shape[1] != self.latent_dim:
            raise ValueError(
                f"vade.initialize_prior needs latents of shape (N, {self.latent_dim}), got "
                f"{values.shape}"
            )
        if values.shape[0] < self.n_components:
            raise ValueError(
                f"vade.initialize_prior needs at least n_components={self.n_components} latents, "
                f"got {values.shape[0]}"
            )
        if not np.isfinite(values).all():
            raise ValueError("vade.initialize_prior: latents contain NaN or inf")
        mixture = GaussianMixture(
            n_components=self.n_components,
            covariance_type="diag",
            n_init=self.config.prior_init_restarts,
            random_state=self.config.prior_init_seed,
            reg_covar=1e-6,
        ).fit(values)
        with torch.no_grad():
            self.prior_logits.copy_(torch.as_tensor(np.log(np.maximum(mixture.weights_, 1e-12))))
            self.prior_means.copy_(torch.as_tensor(mixture.means_))
            self.prior_logvars.copy_(
                torch.as_tensor(np.log(mixture.covariances_)).clamp(LOGVAR_MIN, LOGVAR_MAX)
            )
            self.prior_initialized.fill_(True)
        self.pretraining = False

    # ----------------------------------------------------------------- network
    def reparameterize(self, mu: Tensor, logvar: Tensor) -> Tensor:
        if self.pretraining:
            return mu
        return super().reparameterize(mu, logvar)

    # ----------------------------------------------------------------- mixture prior
    def _log_prior_joint(self, z: Tensor) -> Tensor:
        """log p(c) + log p(z|c) for every component: float32 (B, K)."""
        z = z.float()
        log_pi = torch.log_softmax(self.prior_logits.float(), dim=0)
        means = self.prior_means.float()
        logvars = clamp_logvar(self.prior_logvars.float())
        squared = (z[:, None, :] - means[None]).pow(2) / logvars.exp()[None]
        log_likelihood = -0.5 * (_LOG_2PI + logvars[None] + squared).sum(dim=2)
        return log_pi[None] + log_likelihood

    def _log_responsibilities(self, z: Tensor) -> Tensor:
        """log gamma = log p(c|z): float32 (B, K)."""
        return torch.log_softmax(self._log_prior_joint(z), dim=1)

    def mixture_kl(self, mu: Tensor, logvar: Tensor, z: Tensor) -> Tensor:
        """KL(q(z, c|x) || p(z, c)), gamma from the sample z; float32 scalar, mean over batch."""
        with torch.autocast(device_type=z.device.type, enabled=False):
            mu = mu.float()
            logvar = logvar.float()
            log_gamma = self._log_responsibilities(z)
            gamma = log_gamma.exp()
            log_pi = torch.log_softmax(self.prior_logits.float(), dim=0)
            means = self.prior_means.float()
            logvars = clamp_logvar(self.prior_logvars.float())
            inverse_variances = (-logvars).exp()[None]
            component_terms = 0.5 * (
                logvars[None]
                + (logvar.exp()[:, None, :] + (mu[:, None, :] - means[None]).pow(2))
                * inverse_variances
            ).sum(dim=2)
            per_sample = (gamma * (component_terms + log_gamma - log_pi[None])).sum(dim=1)
            per_sample = per_sample - 0.5 * (1.0 + logvar).sum(dim=1)
        return per_sample.mean()

    # ----------------------------------------------------------------- losses
    def pretrain_loss(self, batch: Batch, outputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Phase 1 loss: reconstruction of the decoded means; `kl` is a zero scalar."""
        return self.reconstruction_only_loss(outputs)

    def loss_function(
        self, batch: Batch, outputs: Mapping[str, Tensor], *, kl_weight: float = 1.0
    ) -> dict[str, Tensor]:
        """Negative ELBO with the mixture prior (or `pretrain_loss` while pre-training)."""
        if self.pretraining:
            return self.pretrain_loss(batch, outputs)
        reconstruction = gaussian_reconstruction_loss(outputs["reconstruction"], outputs["target"])
        kl = self.mixture_kl(outputs["mu"], outputs["logvar"], outputs["z"])
        return self.negative_elbo(reconstruction, kl, kl_weight=kl_weight)

    # ----------------------------------------------------------------- clustering
    def cluster_probabilities(self, batch: Batch) -> Tensor:
        """gamma = p(c | z = mu(x)): float32 (B, K), rows sum to 1; eval mode, no gradients."""
        mu = self.embed(batch)
        with torch.no_grad(), torch.autocast(device_type=mu.device.type, enabled=False):
            return self._log_responsibilities(mu).exp()

    def predict_clusters(self, batch: Batch) -> Tensor:
        """Most probable mixture component per track: LongTensor (B,)."""
        return self.cluster_probabilities(batch).argmax(dim=1)
