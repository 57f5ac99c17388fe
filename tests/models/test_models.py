"""Behaviour of the model zoo: the shared contract, then what is special about each model."""

from __future__ import annotations

import copy
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydantic
import pytest
import torch
from safetensors.torch import load_model, save_model
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture

from models.base import RepresentationModel
from models.multimodal_vae import FUSIONS, WeightedFusionEncoder
from models.vade import VaDE
from models.zoo import MODEL_CLASSES, build_model, config_class, default_config

VECTOR_DIM = 12
SPECTROGRAM_SHAPE = (16, 24)
LYRICS_DIM = 8
N_CONDITIONS = 3
BATCH_SIZE = 32

# Small networks keep the whole file fast on two shared CPU cores.
TINY_OVERRIDES: dict[str, dict[str, Any]] = {
    "ae": {"latent_dim": 4, "hidden_dims": (32,), "dropout": 0.0},
    "mlp_vae": {"latent_dim": 4, "hidden_dims": (32,), "dropout": 0.0},
    "beta_vae": {"latent_dim": 4, "hidden_dims": (32,), "dropout": 0.0},
    "cvae": {"latent_dim": 4, "hidden_dims": (32,), "dropout": 0.0},
    "vade": {"latent_dim": 4, "hidden_dims": (32,), "dropout": 0.0, "n_components": 3},
    "conv_vae": {"latent_dim": 4, "channels": (8, 16)},
    "multimodal_vae": {"latent_dim": 4, "hidden_dims": (32,), "dropout": 0.0},
}
ALL_MODELS = sorted(MODEL_CLASSES)
# Every model plus every fusion strategy of the multimodal VAE.
ALL_VARIANTS = [(name, None) for name in ALL_MODELS if name != "multimodal_vae"] + [
    ("multimodal_vae", fusion) for fusion in FUSIONS
]
VARIANT_IDS = [name if fusion is None else f"{name}-{fusion}" for name, fusion in ALL_VARIANTS]


def input_shape_of(name: str) -> tuple[int, ...]:
    return SPECTROGRAM_SHAPE if MODEL_CLASSES[name].input_kind == "spectrogram" else (VECTOR_DIM,)


def make_model(name: str, fusion: str | None = None, **extra_overrides: Any) -> RepresentationModel:
    overrides = {**TINY_OVERRIDES[name], **extra_overrides}
    if fusion is not None:
        overrides["fusion"] = fusion
        overrides |= {"attention_dim": 16, "attention_heads": 2, "tokens_per_modality": 2}
    return build_model(
        name,
        input_shape=input_shape_of(name),
        overrides=overrides,
        n_conditions=N_CONDITIONS,
        lyrics_dim=LYRICS_DIM,
    )


def make_batch(
    name: str, *, seed: int = 0, batch_size: int = BATCH_SIZE
) -> dict[str, torch.Tensor]:
    """A fixed synthetic batch with low-dimensional structure (so a model can learn it)."""
    generator = torch.Generator().manual_seed(seed)
    factors = torch.randn(batch_size, 3, generator=generator)
    if MODEL_CLASSES[name].input_kind == "spectrogram":
        n_mels, frames = SPECTROGRAM_SHAPE
        mel_profiles = torch.randn(3, n_mels, 1, generator=generator)
        time_profiles = torch.sin(
            torch.linspace(0, 6, frames)[None] * torch.arange(1, 4)[:, None].float()
        )[:, None, :]
        patterns = mel_profiles * time_profiles  # (3, n_mels, frames)
        x = torch.einsum("bk,kmf->bmf", factors, patterns)[:, None]
    else:
        mixing = torch.randn(3, VECTOR_DIM, generator=generator)
        x = factors @ mixing
    x = x + 0.05 * torch.randn(x.shape, generator=generator)
    lyrics_mixing = torch.randn(3, LYRICS_DIM, generator=generator)
    lyrics_mask = torch.arange(batch_size) % 3 != 0  # a third of the tracks have no lyrics
    return {
        "x": x,
        "condition": torch.arange(batch_size) % N_CONDITIONS,
        "lyrics": factors @ lyrics_mixing,
        "lyrics_mask": lyrics_mask,
    }


def seeded_forward(
    model: RepresentationModel, batch: dict[str, torch.Tensor], seed: int = 123
) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return model(batch)


class RecordingTrial:
    """Duck-typed Optuna trial: random suggestions inside the bounds, every call recorded."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        self.params: dict[str, Any] = {}
        self.distributions: dict[str, tuple[Any, ...]] = {}

    def _record(self, name: str, distribution: tuple[Any, ...], value: Any) -> Any:
        assert name not in self.params, f"parameter {name!r} suggested twice"
        self.params[name] = value
        self.distributions[name] = distribution
        return value

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int:
        assert low <= high
        value = low + step * self.random.randint(0, (high - low) // step)
        return self._record(name, ("int", low, high, step, log), value)

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        assert low <= high
        if log:
            assert low > 0
            value = float(np.exp(self.random.uniform(np.log(low), np.log(high))))
        else:
            value = self.random.uniform(low, high)
        return self._record(name, ("float", low, high, step, log), min(max(value, low), high))

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        assert all(isinstance(c, (type(None), bool, int, float, str)) for c in choices)
        return self._record(name, ("categorical", tuple(choices)), self.random.choice(choices))


# --------------------------------------------------------------------------- shared contract


@pytest.fixture(autouse=True, scope="module")
def single_torch_thread() -> Any:
    # Tiny tensors: thread start-up costs more than it saves on a shared two-core machine.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.mark.parametrize(("name", "fusion"), ALL_VARIANTS, ids=VARIANT_IDS)
def test_forward_and_backward_give_contract_shapes_and_loss_terms(
    name: str, fusion: str | None
) -> None:
    torch.manual_seed(0)
    model = make_model(name, fusion)
    batch = make_batch(name, batch_size=6)

    outputs = model(batch)
    losses = model.loss_function(batch, outputs, kl_weight=0.5)
    losses["loss"].backward()

    expected_x_shape = (6, 1, *SPECTROGRAM_SHAPE) if name == "conv_vae" else (6, VECTOR_DIM)
    assert tuple(outputs["reconstruction"].shape) == expected_x_shape
    assert tuple(outputs["target"].shape) == expected_x_shape
    for key in ("mu", "logvar", "z"):
        assert tuple(outputs[key].shape) == (6, model.latent_dim)
    assert {"loss", "reconstruction", "kl"} <= set(losses)
    for term in losses.values():
        assert term.ndim == 0
        assert term.dtype == torch.float32
        assert torch.isfinite(term)
    gradients = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in gradients)
    assert any(g.abs().sum() > 0 for g in gradients)


@pytest.mark.parametrize(("name", "fusion"), ALL_VARIANTS, ids=VARIANT_IDS)
def test_training_on_a_fixed_batch_lowers_the_loss(name: str, fusion: str | None) -> None:
    torch.manual_seed(0)
    model = make_model(name, fusion)
    batch = make_batch(name)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

    def evaluate() -> float:
        with torch.no_grad():
            outputs = seeded_forward(model, batch)
            return float(model.loss_function(batch, outputs)["loss"])

    initial = evaluate()
    for _ in range(60):
        optimizer.zero_grad()
        losses = model.loss_function(batch, model(batch))
        losses["loss"].backward()
        optimizer.step()
    final = evaluate()

    assert final < 0.8 * initial, (initial, final)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_embed_is_deterministic_in_eval_mode_and_restores_training_mode(name: str) -> None:
    torch.manual_seed(0)
    # Dropout on, so a forgotten eval mode would show up as two different embeddings.
    dropout = {"dropout": 0.3} if "dropout" in config_class(name).model_fields else {}
    model = make_model(name, **dropout)
    batch = make_batch(name, batch_size=8)
    model.train()

    first = model.embed(batch)
    second = model.embed(batch)

    assert model.training, "embed must restore the previous mode"
    assert tuple(first.shape) == (8, model.latent_dim)
    assert first.dtype == torch.float32
    assert not first.requires_grad
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    model.eval()
    mu, _ = model.encode(batch)
    torch.testing.assert_close(first, mu.float())


@pytest.mark.parametrize("name", ALL_MODELS)
def test_input_normalization_buffers_standardise_x_and_travel_with_the_model(name: str) -> None:
    torch.manual_seed(0)
    model = make_model(name).eval()
    batch = make_batch(name, batch_size=8)
    raw = {**batch, "x": batch["x"] * 5.0 + 3.0}
    mean = raw["x"].mean(dim=0)
    std = raw["x"].std(dim=0)
    reference = copy.deepcopy(model)  # identity normalisation

    model.set_input_normalization(mean, std)
    outputs = seeded_forward(model, raw)

    expected_target = (raw["x"] - mean) / std
    torch.testing.assert_close(outputs["target"], expected_target)
    torch.testing.assert_close(
        model.embed(raw), reference.embed({**raw, "x": expected_target}), rtol=1e-5, atol=1e-5
    )
    state = model.state_dict()
    torch.testing.assert_close(state["input_mean"], mean)
    torch.testing.assert_close(state["input_std"], std)
    with pytest.raises(ValueError, match="broadcast"):
        model.set_input_normalization(torch.zeros(5), torch.ones(5))
    with pytest.raises(ValueError, match="expected"):
        model({**batch, "x": batch["x"][:, ..., :-1]})


def test_zero_std_features_are_only_centred() -> None:
    model = make_model("ae").eval()
    mean = torch.zeros(VECTOR_DIM)
    std = torch.ones(VECTOR_DIM)
    std[0] = 0.0
    model.set_input_normalization(mean, std)

    target = model(make_batch("ae", batch_size=4))["target"]

    assert torch.isfinite(target).all()
    assert float(model.input_std[0]) == 1.0


@pytest.mark.parametrize("name", ALL_MODELS)
def test_model_rebuilt_from_its_config_and_safetensors_weights_embeds_the_same(
    name: str, tmp_path: Path
) -> None:
    # Registered models are stored this way (never pickled): config + tensors, rebuilt by name.
    torch.manual_seed(0)
    model = make_model(name).eval()
    batch = make_batch(name, batch_size=4)
    model.set_input_normalization(batch["x"].mean(dim=0), batch["x"].std(dim=0) + 0.5)
    save_model(model, str(tmp_path / "weights.safetensors"))

    torch.manual_seed(1)  # other initial weights: everything must come from the file
    restored = build_model(
        name,
        input_shape=input_shape_of(name),
        overrides=model.config.model_dump(mode="json"),
        n_conditions=N_CONDITIONS,
        lyrics_dim=LYRICS_DIM,
    )
    missing, unexpected = load_model(restored, str(tmp_path / "weights.safetensors"))
    restored.eval()

    assert not missing
    assert not unexpected
    torch.testing.assert_close(restored.embed(batch), model.embed(batch))
    assert restored.config == model.config


@pytest.mark.parametrize(("name", "fusion"), ALL_VARIANTS, ids=VARIANT_IDS)
def test_mixed_precision_autocast_keeps_losses_float32_and_finite(
    name: str, fusion: str | None
) -> None:
    # CPU bfloat16 autocast stands in for CUDA AMP: same code path for dtype handling.
    torch.manual_seed(0)
    model = make_model(name, fusion)
    batch = make_batch(name, batch_size=6)

    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        outputs = model(batch)
        losses = model.loss_function(batch, outputs)
    losses["loss"].backward()

    for term in losses.values():
        assert term.dtype == torch.float32
        assert torch.isfinite(term)


@pytest.mark.parametrize("name", ["mlp_vae", "conv_vae", "cvae", "vade", "multimodal_vae"])
def test_kl_weight_zero_leaves_only_reconstruction(name: str) -> None:
    torch.manual_seed(0)
    model = make_model(name)
    batch = make_batch(name, batch_size=6)
    outputs = model(batch)

    losses = model.loss_function(batch, outputs, kl_weight=0.0)

    torch.testing.assert_close(losses["loss"], losses["reconstruction"])
    assert float(losses["kl"].detach()) > 0


def test_autoencoder_is_deterministic_with_zero_kl() -> None:
    model = make_model("ae")
    batch = make_batch("ae", batch_size=6)

    outputs = model(batch)
    losses = model.loss_function(batch, outputs, kl_weight=3.0)

    torch.testing.assert_close(outputs["z"], outputs["mu"])
    assert torch.count_nonzero(outputs["logvar"]) == 0
    assert float(losses["kl"]) == 0.0
    torch.testing.assert_close(losses["loss"], losses["reconstruction"])


def test_extreme_encoder_outputs_are_clamped_to_finite_losses() -> None:
    model = make_model("mlp_vae")
    with torch.no_grad():
        model.encoder.head.logvar.bias.fill_(1e4)
    batch = make_batch("mlp_vae", batch_size=4)

    outputs = model(batch)
    losses = model.loss_function(batch, outputs)

    assert float(outputs["logvar"].detach().max()) <= 10.0
    assert torch.isfinite(losses["loss"])


# --------------------------------------------------------------------------- beta-VAE


def test_beta_multiplies_the_kl_term() -> None:
    torch.manual_seed(0)
    plain = make_model("mlp_vae", beta=1.0)
    weighted = make_model("beta_vae", beta=4.0)
    weighted.load_state_dict(plain.state_dict())
    batch = make_batch("mlp_vae", batch_size=6)

    plain_losses = plain.loss_function(batch, seeded_forward(plain, batch), kl_weight=0.5)
    weighted_losses = weighted.loss_function(batch, seeded_forward(weighted, batch), kl_weight=0.5)

    torch.testing.assert_close(weighted_losses["kl"], plain_losses["kl"])
    torch.testing.assert_close(
        weighted_losses["loss"] - weighted_losses["reconstruction"],
        4.0 * (plain_losses["loss"] - plain_losses["reconstruction"]),
    )
    assert type(weighted).__mro__[1] is type(plain), "beta-VAE is the MLP VAE with another loss"


def test_capacity_schedule_grows_only_with_optimisation_steps() -> None:
    torch.manual_seed(0)
    model = make_model("beta_vae", beta=100.0, capacity_max=10.0, capacity_steps=4)
    batch = make_batch("beta_vae", batch_size=6)
    capacities = []
    for _ in range(6):
        losses = model.loss_function(batch, model(batch))
        capacities.append(float(losses["kl_capacity"]))
        torch.testing.assert_close(
            losses["loss"], losses["reconstruction"] + 100.0 * (losses["kl"] - capacities[-1]).abs()
        )

    with torch.no_grad():  # validation passes do not advance the schedule
        model.loss_function(batch, model(batch))
    model.eval()
    model.loss_function(batch, model(batch))

    assert capacities == [0.0, 2.5, 5.0, 7.5, 10.0, 10.0]
    assert int(model.optimisation_steps) == 6


# --------------------------------------------------------------------------- conv VAE


@pytest.mark.parametrize("input_shape", [(128, 128), (64, 96), (20, 130), (9, 7)])
def test_conv_vae_reconstructs_any_spectrogram_shape(input_shape: tuple[int, int]) -> None:
    torch.manual_seed(0)
    model = build_model(
        "conv_vae",
        input_shape=input_shape,
        overrides={"latent_dim": 4, "channels": (4, 8, 8)},
    )
    x = torch.randn(3, 1, *input_shape)
    model.set_input_normalization(x.mean(dim=(0, 1, 3)), torch.ones(input_shape[0]))  # per mel
    batch = {"x": x}

    outputs = model(batch)
    model.loss_function(batch, outputs)["loss"].backward()

    assert tuple(outputs["reconstruction"].shape) == (3, 1, *input_shape)
    assert tuple(model({"x": x[:, 0]})["reconstruction"].shape) == (3, 1, *input_shape)
    assert tuple(model.embed(batch).shape) == (3, 4)


# --------------------------------------------------------------------------- CVAE


def test_cvae_decoding_depends_on_the_condition() -> None:
    torch.manual_seed(0)
    model = make_model("cvae").eval()
    batch = make_batch("cvae", batch_size=6)
    z = torch.randn(6, model.latent_dim)
    other_condition = (batch["condition"] + 1) % N_CONDITIONS

    decoded = model.decode(z, batch)
    decoded_other = model.decode(z, {**batch, "condition": other_condition})
    outputs = seeded_forward(model, batch)
    outputs_other = seeded_forward(model, {**batch, "condition": other_condition})

    assert not torch.allclose(decoded, decoded_other)
    assert not torch.allclose(outputs["mu"], outputs_other["mu"])
    assert not torch.allclose(outputs["reconstruction"], outputs_other["reconstruction"])


def test_cvae_rejects_missing_or_out_of_range_conditions() -> None:
    model = make_model("cvae")
    batch = make_batch("cvae", batch_size=4)

    with pytest.raises(ValueError, match="condition"):
        model({"x": batch["x"]})
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        model({**batch, "condition": torch.tensor([0, 1, 2, 3])})
    with pytest.raises(ValueError, match="n_conditions"):
        build_model("cvae", input_shape=(VECTOR_DIM,))


# --------------------------------------------------------------------------- VaDE


def blob_data(n_per_cluster: int = 40, seed: int = 0) -> tuple[dict[str, torch.Tensor], np.ndarray]:
    """Three well separated clusters in input space and their labels."""
    generator = torch.Generator().manual_seed(seed)
    centres = 6.0 * torch.randn(3, VECTOR_DIM, generator=generator)
    labels = torch.arange(3).repeat_interleave(n_per_cluster)
    x = centres[labels] + 0.3 * torch.randn(len(labels), VECTOR_DIM, generator=generator)
    return {"x": x}, labels.numpy()


def test_vade_pretraining_phase_is_a_deterministic_autoencoder() -> None:
    torch.manual_seed(0)
    model = make_model("vade")
    batch = make_batch("vade", batch_size=6)
    model.set_pretraining(True)

    outputs = model(batch)
    losses = model.loss_function(batch, outputs)

    torch.testing.assert_close(outputs["z"], outputs["mu"])
    assert float(losses["kl"]) == 0.0
    torch.testing.assert_close(losses["loss"], losses["reconstruction"])
    torch.testing.assert_close(losses["loss"], model.pretrain_loss(batch, outputs)["loss"])


def test_vade_three_phases_recover_separated_clusters() -> None:
    torch.manual_seed(0)
    model = make_model("vade")
    batch, labels = blob_data()
    model.set_input_normalization(batch["x"].mean(dim=0), batch["x"].std(dim=0))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

    model.set_pretraining(True)
    for _ in range(80):
        optimizer.zero_grad()
        model.loss_function(batch, model(batch))["loss"].backward()
        optimizer.step()
    model.initialize_prior(model.embed(batch))
    initial_prior = [p.detach().clone() for p in (model.prior_logits, model.prior_means)]
    initial_prior.append(model.prior_logvars.detach().clone())

    assert not model.pretraining
    assert bool(model.prior_initialized)
    probabilities = model.cluster_probabilities(batch)
    assert tuple(probabilities.shape) == (len(labels), 3)
    torch.testing.assert_close(probabilities.sum(dim=1), torch.ones(len(labels)))
    assert adjusted_rand_score(labels, model.predict_clusters(batch).numpy()) > 0.95

    for _ in range(20):
        optimizer.zero_grad()
        model.loss_function(batch, model(batch))["loss"].backward()
        optimizer.step()

    current_prior = (model.prior_logits, model.prior_means, model.prior_logvars)
    for before, after in zip(initial_prior, current_prior, strict=True):
        assert not torch.allclose(before, after.detach())
    predictions = model.predict_clusters(batch)
    assert predictions.dtype == torch.long
    assert adjusted_rand_score(labels, predictions.numpy()) > 0.95


def test_vade_initialize_prior_copies_the_gaussian_mixture() -> None:
    torch.manual_seed(0)
    model = make_model("vade")
    centres = torch.tensor([[-5.0, 0, 0, 0], [0, 5.0, 0, 0], [0, 0, 0, 5.0]])
    latents = centres.repeat_interleave(50, dim=0) + 0.1 * torch.randn(150, 4)

    model.initialize_prior(latents)

    reference = GaussianMixture(3, covariance_type="diag", n_init=3, random_state=0, reg_covar=1e-6)
    reference.fit(latents.double().numpy())
    torch.testing.assert_close(
        torch.softmax(model.prior_logits.detach(), dim=0).double(),
        torch.from_numpy(reference.weights_),
    )
    torch.testing.assert_close(
        model.prior_means.detach().double(), torch.from_numpy(reference.means_)
    )
    torch.testing.assert_close(
        model.prior_logvars.detach().exp().double(), torch.from_numpy(reference.covariances_)
    )
    for centre in centres:  # and the mixture found the three blobs
        assert torch.cdist(centre[None], model.prior_means.detach()).min() < 0.1
    with pytest.raises(ValueError, match="at least n_components"):
        model.initialize_prior(latents[:2])
    with pytest.raises(ValueError, match="shape"):
        model.initialize_prior(latents[:, :3])


def test_vade_kl_is_non_negative_and_zero_only_at_the_prior() -> None:
    model: VaDE = make_model("vade")  # type: ignore[assignment]
    model.initialize_prior(torch.randn(60, 4))
    component = 1
    mu = model.prior_means.detach()[component].repeat(5, 1)
    logvar = model.prior_logvars.detach()[component].repeat(5, 1)

    kl_elsewhere = model.mixture_kl(mu + 3.0, logvar, mu + 3.0)
    kl_at_component = model.mixture_kl(mu, logvar, mu)

    assert float(kl_elsewhere.detach()) > float(kl_at_component.detach()) >= -1e-5


# --------------------------------------------------------------------------- multimodal VAE


@pytest.mark.parametrize("fusion", FUSIONS)
def test_masked_lyrics_never_influence_outputs_losses_or_gradients(fusion: str) -> None:
    torch.manual_seed(0)
    model = make_model("multimodal_vae", fusion, dropout=0.2)
    batch = make_batch("multimodal_vae", batch_size=9)
    missing = ~batch["lyrics_mask"]
    garbage = batch["lyrics"].clone()
    garbage[missing] = torch.tensor(float("nan"))
    garbage[missing.nonzero()[0]] = 1e6

    def run(lyrics: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], list]:
        model.zero_grad()
        variant = {**batch, "lyrics": lyrics}
        outputs = seeded_forward(model, variant)
        losses = model.loss_function(variant, outputs)
        losses["loss"].backward()
        return outputs, losses, [p.grad.clone() for p in model.parameters()]

    outputs, losses, gradients = run(batch["lyrics"])
    garbage_outputs, garbage_losses, garbage_gradients = run(garbage)

    for key, value in outputs.items():
        torch.testing.assert_close(garbage_outputs[key], value, rtol=0, atol=0, msg=key)
    for key, value in losses.items():
        torch.testing.assert_close(garbage_losses[key], value, rtol=0, atol=0, msg=key)
    for before, after in zip(gradients, garbage_gradients, strict=True):
        torch.testing.assert_close(after, before, rtol=0, atol=0)
    model.eval()
    torch.testing.assert_close(model.embed({**batch, "lyrics": garbage}), model.embed(batch))


# The modules that only lyrics should reach; rows without lyrics must not depend on them.
LYRICS_PATHWAYS = {
    "early": "missing_lyrics",  # the reverse: only rows *without* lyrics may depend on it
    "late": "lyrics_expert",
    "attention": "lyrics_to_tokens",
    "weighted": "lyrics_encoder",
}


@pytest.mark.parametrize("fusion", FUSIONS)
def test_rows_without_lyrics_never_see_the_lyrics_pathway(fusion: str) -> None:
    # Not only the lyrics values: a bias-only "lyrics token" of a missing row would be zeros
    # pretending to be lyrics, which the key padding mask / expert exclusion must prevent.
    torch.manual_seed(0)
    model = make_model("multimodal_vae", fusion).eval()
    batch = make_batch("multimodal_vae", batch_size=9)
    present = batch["lyrics_mask"]
    with torch.no_grad():
        mu, logvar = model.encode(batch)
        pathway = getattr(model.fusion_encoder, LYRICS_PATHWAYS[fusion])
        for parameter in [pathway] if fusion == "early" else pathway.parameters():
            parameter.add_(torch.randn_like(parameter))
        perturbed_mu, perturbed_logvar = model.encode(batch)

    unaffected = present if fusion == "early" else ~present
    torch.testing.assert_close(perturbed_mu[unaffected], mu[unaffected])
    torch.testing.assert_close(perturbed_logvar[unaffected], logvar[unaffected])
    assert not torch.allclose(perturbed_mu[~unaffected], mu[~unaffected])


@pytest.mark.parametrize("fusion", FUSIONS)
def test_present_lyrics_change_the_latent_code(fusion: str) -> None:
    torch.manual_seed(0)
    model = make_model("multimodal_vae", fusion).eval()
    batch = make_batch("multimodal_vae", batch_size=9)
    present = batch["lyrics_mask"]
    changed = batch["lyrics"] + 2.0

    means = model.embed(batch)
    changed_means = model.embed({**batch, "lyrics": changed})

    assert not torch.allclose(means[present], changed_means[present])
    torch.testing.assert_close(changed_means[~present], means[~present])


@pytest.mark.parametrize("fusion", FUSIONS)
def test_multimodal_without_any_lyrics_uses_audio_alone(fusion: str) -> None:
    torch.manual_seed(0)
    model = make_model("multimodal_vae", fusion).eval()
    batch = make_batch("multimodal_vae", batch_size=6)
    no_lyrics = {**batch, "lyrics_mask": torch.zeros(6, dtype=torch.bool)}

    outputs = seeded_forward(model, {"x": batch["x"]})
    losses = model.loss_function({"x": batch["x"]}, outputs)

    assert losses["reconstruction_lyrics"].item() == 0.0
    torch.testing.assert_close(losses["reconstruction"], losses["reconstruction_audio"])
    torch.testing.assert_close(model.embed({"x": batch["x"]}), model.embed(no_lyrics))


def test_product_of_experts_drops_the_missing_lyrics_expert() -> None:
    torch.manual_seed(0)
    model = make_model("multimodal_vae", "late").eval()
    batch = make_batch("multimodal_vae", batch_size=6)
    audio = model.normalize_input(batch["x"])
    with torch.no_grad():
        audio_mu, audio_logvar = model.fusion_encoder.audio_expert(audio)
        mu, logvar = model.encode({"x": batch["x"]})

    audio_precision = (-audio_logvar).exp()
    torch.testing.assert_close(mu, audio_mu * audio_precision / (1 + audio_precision))
    torch.testing.assert_close(logvar, -torch.log1p(audio_precision))


def test_weighted_fusion_renormalises_weights_when_lyrics_are_missing() -> None:
    model = make_model("multimodal_vae", "weighted")
    encoder = model.fusion_encoder
    assert isinstance(encoder, WeightedFusionEncoder)
    with torch.no_grad():
        encoder.modality_logits.copy_(torch.tensor([0.0, 1.0]))

    weights = encoder.modality_weights(torch.tensor([True, False]))

    torch.testing.assert_close(weights[0], torch.softmax(torch.tensor([0.0, 1.0]), dim=0))
    torch.testing.assert_close(weights[1], torch.tensor([1.0, 0.0]))


def test_lyrics_term_is_weighed_per_dimension_against_the_audio_term() -> None:
    """A wide sentence embedding must not outvote the audio by its width alone: lyrics_weight 1
    gives the two reconstruction terms one say per dimension."""
    torch.manual_seed(0)
    model = make_model("multimodal_vae", "late")
    batch = make_batch("multimodal_vae", batch_size=6)
    losses = model.loss_function(batch, model(batch), kl_weight=0.0)
    (audio_dim,) = model.input_shape
    expected = losses["reconstruction_audio"] + losses["reconstruction_lyrics"] * (
        audio_dim / model.lyrics_dim
    )
    torch.testing.assert_close(losses["reconstruction"], expected)


def test_lyrics_normalization_and_masked_lyrics_loss() -> None:
    torch.manual_seed(0)
    model = make_model("multimodal_vae", "early")
    batch = make_batch("multimodal_vae", batch_size=6)
    present = batch["lyrics_mask"]
    mean = batch["lyrics"][present].mean(dim=0)
    std = batch["lyrics"][present].std(dim=0)
    model.set_lyrics_normalization(mean, std)

    outputs = model(batch)
    losses = model.loss_function(batch, outputs)

    torch.testing.assert_close(
        outputs["lyrics_target"][present], (batch["lyrics"][present] - mean) / std
    )
    per_track = 0.5 * (outputs["lyrics_reconstruction"] - outputs["lyrics_target"]).pow(2).sum(1)
    torch.testing.assert_close(losses["reconstruction_lyrics"], per_track[present].sum() / 6)
    with pytest.raises(ValueError, match="lyrics_mask"):
        model({"x": batch["x"], "lyrics": batch["lyrics"]})
    with pytest.raises(ValueError, match="lyrics_dim"):
        build_model("multimodal_vae", input_shape=(VECTOR_DIM,))


# --------------------------------------------------------------------------- zoo


def test_build_model_rejects_unknown_names_listing_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown model 'transformer'") as error:
        build_model("transformer", input_shape=(VECTOR_DIM,))
    for name in MODEL_CLASSES:
        assert name in str(error.value)
    with pytest.raises(ValueError, match="valid names"):
        default_config("nope")


@pytest.mark.parametrize(
    ("name", "overrides", "field"),
    [
        ("mlp_vae", {"latent_dim": 0}, "latent_dim"),
        ("mlp_vae", {"hidden_dims": ()}, "hidden_dims"),
        ("conv_vae", {"channels": (8, -1)}, "channels"),
        ("vade", {"n_components": 1}, "n_components"),
        ("beta_vae", {"beta": -1.0}, "beta"),
        ("multimodal_vae", {"fusion": "concat"}, "fusion"),
        ("multimodal_vae", {"attention_dim": 30, "attention_heads": 4}, "attention_dim"),
        ("ae", {"latent_size": 8}, "latent_size"),
    ],
)
def test_bad_overrides_raise_validation_errors_naming_the_field(
    name: str, overrides: dict[str, Any], field: str
) -> None:
    with pytest.raises(pydantic.ValidationError, match=field):
        build_model(name, input_shape=input_shape_of(name), overrides=overrides, lyrics_dim=4)


@pytest.mark.parametrize(
    ("name", "input_shape"), [("mlp_vae", (4, 4)), ("conv_vae", (64,)), ("ae", (0,))]
)
def test_build_model_rejects_input_shapes_of_the_wrong_kind(
    name: str, input_shape: tuple[int, ...]
) -> None:
    with pytest.raises(ValueError, match="input_shape"):
        build_model(name, input_shape=input_shape)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_configs_are_frozen_and_defaults_build(name: str) -> None:
    config = default_config(name)
    assert isinstance(config, config_class(name))
    with pytest.raises(pydantic.ValidationError):
        config.latent_dim = 3  # type: ignore[misc]
    for field in config_class(name).model_fields.values():
        assert field.description, "every config field is documented"
    model = build_model(
        name, input_shape=input_shape_of(name), n_conditions=N_CONDITIONS, lyrics_dim=LYRICS_DIM
    )
    assert model.config == config
    assert model.latent_dim == config.latent_dim
    assert model.name == name


@pytest.mark.parametrize("name", ALL_MODELS)
def test_search_space_suggests_valid_overrides(name: str) -> None:
    seen_parameters: set[str] = set()
    for seed in range(6):
        trial = RecordingTrial(seed)

        overrides = MODEL_CLASSES[name].search_space(trial)

        config = config_class(name)(**overrides)
        assert trial.params, "the search space suggests at least one parameter"
        assert {"latent_dim"} <= set(overrides)
        seen_parameters |= set(trial.params)
        model = build_model(
            name,
            input_shape=input_shape_of(name),
            overrides=overrides,
            n_conditions=N_CONDITIONS,
            lyrics_dim=LYRICS_DIM,
        )
        assert model.config == config
    expected = {"vade": "n_components", "multimodal_vae": "fusion", "beta_vae": "kl_schedule"}
    if name in expected:
        assert expected[name] in seen_parameters


def test_search_spaces_work_with_a_real_optuna_trial() -> None:
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name in ALL_MODELS:
        # One study per model: the same parameter name may have other bounds in another model.
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        for _ in range(3):
            trial = study.ask()
            config_class(name)(**MODEL_CLASSES[name].search_space(trial))
            study.tell(trial, 0.0)
