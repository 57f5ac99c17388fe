"""The generic trainer, track-level encoding, and the training flow's MLflow record.

Trainer tests run on small synthetic crop arrays written straight to disk in the layout of
`tasks.training.data.gather_crops` (no ingest, no Prefect). The flow tests share one tiny generated
collection (12 four-second demo tracks, 32x32 crops) on which the training flow trains an MLP-VAE,
a convolutional VAE and a language-conditioned CVAE once; every assertion reads what a user would
find afterwards: the MLflow run, its artifacts, the registry, the files in the work directory.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import torch
from mlflow.tracking import MlflowClient
from torch import Tensor

from flows.train import TrainFlowConfig, train_flow
from models.ae import Autoencoder, AutoencoderConfig
from models.base import Batch, RepresentationModel
from models.vade import VaDE
from models.zoo import build_model, model_class
from registry.models import download_model_files
from tasks.audio.features import FeatureConfig, TrackFeatures, summary_feature_names
from tasks.audio.ingest import IngestRecord
from tasks.core.workspace import Workspace
from tasks.demo import generate_demo_dataset
from tasks.training.checkpoint import WEIGHTS_FILE, load_latent_encoder, load_trained_model
from tasks.training.data import CropArrays, CropBatches, TrackSideInformation
from tasks.training.model_card import ModelCard
from tasks.training.representation import ModelSpec, TrainOutput, read_latents
from tasks.training.trainer import (
    NonFiniteLossError,
    TrainConfig,
    encode_rows,
    encode_tracks,
    seed_everything,
    train_model,
)

CPU = torch.device("cpu")
N_TRACKS = 12
CROPS_PER_TRACK = 8
FEATURE_DIM = 12
TRAIN_TRACKS = np.arange(10)
VALIDATION_TRACKS = np.array([10, 11])
TINY_MLP = {"latent_dim": 4, "hidden_dims": (32,), "dropout": 0.0}
# Quantities that measure the machine, not the optimisation.
TIMING_KEYS = {"examples_per_second"}


# ------------------------------------------------------------------------------ helpers


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    """Tiny models on one thread: on a busy machine two OpenMP threads spin-wait for each other
    and make every step many times slower (see bench/README.md). Restored after the module."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def write_crop_arrays(
    root: Path, x: np.ndarray, track_index: np.ndarray, n_tracks: int
) -> CropArrays:
    """Write x (n_crops, ...) and the owning track of every crop like `gather_crops` does."""
    root.mkdir(parents=True, exist_ok=True)
    np.save(root / "x.npy", x)
    np.save(root / "track_index.npy", track_index.astype(np.int64))
    (root / "track_ids.json").write_text(json.dumps([f"track{i:02d}" for i in range(n_tracks)]))
    return CropArrays(root)


def structured_crops(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Crops with low-dimensional structure: (n_crops, FEATURE_DIM) float32 and their tracks."""
    rng = np.random.default_rng(seed)
    owner = np.repeat(np.arange(N_TRACKS), CROPS_PER_TRACK)
    track_factors = rng.normal(size=(N_TRACKS, 3))
    mixing = rng.normal(size=(3, FEATURE_DIM))
    noise = 0.1 * rng.normal(size=(len(owner), FEATURE_DIM))
    return (track_factors[owner] @ mixing + noise).astype(np.float32), owner


@pytest.fixture
def crop_arrays(tmp_path: Path) -> CropArrays:
    x, owner = structured_crops()
    return write_crop_arrays(tmp_path / "crops", x, owner, N_TRACKS)


def batches_of(
    arrays: CropArrays,
    tracks: np.ndarray,
    *,
    shuffle: bool,
    batch_size: int = 16,
    seed: int = 0,
    **sampling: int | None,
) -> CropBatches:
    """Batches of `tracks`; `sampling`: CropBatches' crops_per_track, max_crops_per_epoch,
    spread."""
    return CropBatches(
        arrays,
        tracks,
        TrackSideInformation(),
        batch_size=batch_size,
        shuffle=shuffle,
        device=CPU,
        seed=seed,
        **sampling,
    )


def train_and_validation(arrays: CropArrays, seed: int = 0) -> tuple[CropBatches, CropBatches]:
    return (
        batches_of(arrays, TRAIN_TRACKS, shuffle=True, seed=seed),
        batches_of(arrays, VALIDATION_TRACKS, shuffle=False, seed=seed),
    )


def tiny_model(name: str, seed: int = 0, **overrides: Any) -> RepresentationModel:
    """A small model on FEATURE_DIM inputs, built after seeding (as `train_representation` does)."""
    seed_everything(seed)
    return build_model(name, input_shape=(FEATURE_DIM,), overrides={**TINY_MLP, **overrides})


def cpu_config(**settings: Any) -> TrainConfig:
    return TrainConfig(**{"device": "cpu", "batch_size": 16, **settings})


# ------------------------------------------------------------------------ non-finite loss


def test_nan_in_the_input_features_stops_training_naming_model_and_epoch(tmp_path: Path) -> None:
    # given features with NaN in one training track (a broken file that slipped through)
    x, owner = structured_crops()
    x[owner == 3] = np.nan
    arrays = write_crop_arrays(tmp_path / "crops", x, owner, N_TRACKS)
    train, validation = train_and_validation(arrays)
    # when the trainer meets it, then it stops at the end of that epoch, naming model, epoch and
    # batch
    with pytest.raises(NonFiniteLossError, match=r"^mlp_vae: .*nan at epoch 1, batch \d+"):
        train_model(tiny_model("mlp_vae"), train, validation, cpu_config(epochs=3))


def test_an_exploding_learning_rate_stops_training_and_says_what_to_lower(
    crop_arrays: CropArrays,
) -> None:
    train, validation = train_and_validation(crop_arrays)
    with pytest.raises(NonFiniteLossError) as raised:
        train_model(
            tiny_model("beta_vae"), train, validation, cpu_config(epochs=3, learning_rate=1e6)
        )
    message = str(raised.value)
    assert message.startswith("beta_vae: ")
    assert "at epoch " in message
    assert "lower learning rate (now 1e+06)" in message


def test_nan_in_the_validation_tracks_stops_training(tmp_path: Path) -> None:
    x, owner = structured_crops()
    x[owner == VALIDATION_TRACKS[-1]] = np.nan
    arrays = write_crop_arrays(tmp_path / "crops", x, owner, N_TRACKS)
    train, validation = train_and_validation(arrays)
    with pytest.raises(NonFiniteLossError, match=r"^mlp_vae: .*epoch 1"):
        train_model(
            tiny_model("mlp_vae"),
            train,
            validation,
            cpu_config(epochs=4, patience=1, kl_warmup_epochs=0),
        )


# ---------------------------------------------------------------- early stopping, restore


class ScriptedValidationAutoencoder(Autoencoder):
    """A real autoencoder whose validation `loss` follows a script, one value per epoch.

    Training and the validation `reconstruction` stay real, so the restored weights can be checked
    against the reconstruction recorded at the best epoch.
    """

    def __init__(self, validation_losses: list[float]) -> None:
        super().__init__(AutoencoderConfig(**TINY_MLP), input_shape=(FEATURE_DIM,))
        self.validation_losses = validation_losses
        self.epoch = 0

    def loss_function(
        self, batch: Batch, outputs: Mapping[str, Tensor], *, kl_weight: float = 1.0
    ) -> dict[str, Tensor]:
        losses = super().loss_function(batch, outputs, kl_weight=kl_weight)
        if not self.training and not torch.is_grad_enabled():  # a validation pass
            losses["loss"] = torch.tensor(self.validation_losses[self.epoch])
        return losses


def validation_reconstruction(model: RepresentationModel, validation: CropBatches) -> float:
    """Mean reconstruction loss per crop over the validation split, in eval mode."""
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in validation:
            losses = model.loss_function(batch, model(batch))
            total += float(losses["reconstruction"]) * len(batch["x"])
            count += len(batch["x"])
    return total / count


def test_rising_validation_loss_stops_early_and_restores_the_best_epoch(
    crop_arrays: CropArrays,
) -> None:
    # given a validation loss that is best at the second epoch and rises afterwards
    seed_everything(0)
    model = ScriptedValidationAutoencoder([5.0, 3.0, 4.0, 6.0, 7.0, 8.0])
    weights_after_epoch: list[dict[str, Tensor]] = []

    def after_epoch(epoch: int, metrics: dict[str, float], trained: RepresentationModel) -> None:
        weights_after_epoch.append(copy.deepcopy(trained.state_dict()))
        model.epoch = epoch + 1

    train, validation = train_and_validation(crop_arrays)
    config = cpu_config(epochs=6, patience=1, kl_warmup_epochs=0, scheduler="none")
    # when training with patience 1
    outcome = train_model(model, train, validation, config, on_epoch=after_epoch)

    # then it stops one epoch after the best one
    assert outcome.stopped_early
    assert outcome.history["val_loss"] == [5.0, 3.0, 4.0]
    assert len(outcome.history["train_loss"]) == 3
    assert outcome.best_epoch == 1
    assert outcome.best_validation_loss == 3.0
    # and the model holds the weights of the best epoch, not those of the last one
    restored = model.state_dict()
    for name, value in weights_after_epoch[1].items():
        assert torch.equal(restored[name], value), name
    assert any(
        not torch.equal(restored[name], value) for name, value in weights_after_epoch[2].items()
    )
    assert validation_reconstruction(model, validation) == pytest.approx(
        outcome.history["val_reconstruction"][1], rel=1e-5
    )
    assert validation_reconstruction(model, validation) != pytest.approx(
        outcome.history["val_reconstruction"][2], rel=1e-5
    )


# --------------------------------------------------------------------------- KL warm-up


def test_crops_per_track_draws_a_fresh_subset_of_every_track_each_epoch(
    crop_arrays: CropArrays,
) -> None:
    batches = batches_of(crop_arrays, TRAIN_TRACKS, shuffle=True, batch_size=7, crops_per_track=3)
    assert batches.examples_per_epoch == 3 * len(TRAIN_TRACKS)
    assert len(batches) == int(np.ceil(3 * len(TRAIN_TRACKS) / 7))
    owner = crop_arrays.track_index
    first, second = ({*np.concatenate([_rows_of(b, crop_arrays) for b in batches])} for _ in "ab")
    for epoch in (first, second):
        assert len(epoch) == 3 * len(TRAIN_TRACKS)  # no crop twice in an epoch
        assert np.bincount(owner[list(epoch)], minlength=N_TRACKS)[TRAIN_TRACKS].tolist() == [
            3
        ] * len(TRAIN_TRACKS)
    assert first != second  # another subset next epoch
    # validation always sees every crop
    validation = batches_of(crop_arrays, VALIDATION_TRACKS, shuffle=False)
    assert validation.examples_per_epoch == CROPS_PER_TRACK * len(VALIDATION_TRACKS)


@pytest.mark.parametrize(
    ("cap", "crops_per_track", "per_track"),
    [
        (None, None, CROPS_PER_TRACK),  # no cap: every crop
        (CROPS_PER_TRACK * 10, None, CROPS_PER_TRACK),  # the epoch fits: every crop
        (25, None, 2),  # 10 tracks share 25 crops: 2 each
        (5, None, 1),  # never fewer than one crop per track
        (25, 1, 1),  # a smaller crops_per_track stands
        (35, 5, 3),  # the cap lowers a larger one
    ],
)
def test_max_crops_per_epoch_gives_every_track_an_equal_share(
    crop_arrays: CropArrays, cap: int | None, crops_per_track: int | None, per_track: int
) -> None:
    batches = batches_of(
        crop_arrays,
        TRAIN_TRACKS,
        shuffle=True,
        batch_size=7,
        crops_per_track=crops_per_track,
        max_crops_per_epoch=cap,
    )
    assert batches.examples_per_epoch == per_track * len(TRAIN_TRACKS)
    rows = np.concatenate([_rows_of(batch, crop_arrays) for batch in batches])
    counts = np.bincount(crop_arrays.track_index[rows], minlength=N_TRACKS)
    assert counts[TRAIN_TRACKS].tolist() == [per_track] * len(TRAIN_TRACKS)
    # Validation and encoding see every crop whatever the cap.
    validation = batches_of(crop_arrays, VALIDATION_TRACKS, shuffle=False, max_crops_per_epoch=1)
    assert validation.examples_per_epoch == CROPS_PER_TRACK * len(VALIDATION_TRACKS)
    # the share the cap imposed, None when the epoch fits
    fits = per_track == (crops_per_track or CROPS_PER_TRACK)
    assert batches.capped_share == (None if fits else per_track)


def test_spread_keeps_the_same_evenly_spread_crops_of_every_track(
    crop_arrays: CropArrays,
) -> None:
    validation = batches_of(crop_arrays, VALIDATION_TRACKS, shuffle=False, batch_size=4, spread=3)
    first, second = (np.concatenate([_rows_of(b, crop_arrays) for b in validation]) for _ in "ab")
    assert first.tolist() == second.tolist()  # a fixed subset: epochs stay comparable
    # 8 crops per track: the centres of 3 equal parts are crops 1, 3 and 6 of each track
    assert first.tolist() == [
        track * CROPS_PER_TRACK + crop for track in VALIDATION_TRACKS for crop in (1, 3, 6)
    ]


def _rows_of(batch: dict[str, torch.Tensor], arrays: CropArrays) -> np.ndarray:
    """Crop rows of a batch, found by their (unique) feature values."""
    x = np.asarray(arrays.x)
    found = [int(np.flatnonzero((x == row).all(axis=1))[0]) for row in batch["x"].numpy()]
    return np.asarray(found)


def test_kl_weight_rises_linearly_over_the_warmup_epochs(crop_arrays: CropArrays) -> None:
    train, validation = train_and_validation(crop_arrays)
    outcome = train_model(
        tiny_model("mlp_vae"), train, validation, cpu_config(epochs=6, kl_warmup_epochs=4)
    )
    history = outcome.history
    assert history["kl_weight"] == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 1.0])
    # the weight really enters the objective: loss = reconstruction + weight * beta * KL
    expected = [
        reconstruction + weight * kl
        for reconstruction, weight, kl in zip(
            history["train_reconstruction"],
            history["kl_weight"],
            history["train_kl"],
            strict=True,
        )
    ]
    assert history["train_loss"] == pytest.approx(expected, rel=1e-4)
    # validation always scores the full objective, so its epochs stay comparable
    assert history["val_loss"] == pytest.approx(
        [r + k for r, k in zip(history["val_reconstruction"], history["val_kl"], strict=True)],
        rel=1e-4,
    )


def test_without_warmup_the_kl_weight_is_one_from_the_start(crop_arrays: CropArrays) -> None:
    train, validation = train_and_validation(crop_arrays)
    outcome = train_model(
        tiny_model("mlp_vae"), train, validation, cpu_config(epochs=2, kl_warmup_epochs=0)
    )
    assert outcome.history["kl_weight"] == [1.0, 1.0]


# ---------------------------------------------------------------------------- determinism


def train_and_encode_tracks(
    arrays: CropArrays, name: str, seed: int
) -> tuple[dict[str, list[float]], np.ndarray]:
    train, validation = train_and_validation(arrays, seed=seed)
    model = tiny_model(name, seed=seed, dropout=0.1)
    outcome = train_model(model, train, validation, cpu_config(epochs=3, seed=seed))
    latents = encode_tracks(
        model, batches_of(arrays, np.arange(N_TRACKS), shuffle=False), arrays.track_ids
    )
    history = {k: v for k, v in outcome.history.items() if k not in TIMING_KEYS}
    return history, latents.mu


def test_same_seed_gives_identical_history_and_latents(crop_arrays: CropArrays) -> None:
    # dropout and sampled z draw from the seeded generators, batches from the seeded order
    first_history, first_latents = train_and_encode_tracks(crop_arrays, "mlp_vae", seed=3)
    second_history, second_latents = train_and_encode_tracks(crop_arrays, "mlp_vae", seed=3)
    assert first_history == second_history
    np.testing.assert_array_equal(first_latents, second_latents)

    other_history, other_latents = train_and_encode_tracks(crop_arrays, "mlp_vae", seed=4)
    assert other_history["train_loss"] != first_history["train_loss"]
    assert not np.allclose(other_latents, first_latents)


# ------------------------------------------------------------------------------ VaDE phases


def test_vade_pretrains_initialises_its_prior_then_trains_jointly(
    crop_arrays: CropArrays,
) -> None:
    model = tiny_model("vade", n_components=3)
    assert isinstance(model, VaDE)
    train, validation = train_and_validation(crop_arrays)
    prior_fits: list[tuple[bool, Tensor]] = []
    fit_prior = model.initialize_prior

    def recording_initialize_prior(latents: Tensor) -> None:
        # the prior must be fitted on the encoder means of the training crops, after pre-training
        assert torch.equal(latents, encode_rows(model, train))
        prior_fits.append((model.pretraining, latents))
        fit_prior(latents)

    model.initialize_prior = recording_initialize_prior  # type: ignore[method-assign]
    outcome = train_model(
        model, train, validation, cpu_config(epochs=2, pretrain_epochs=3, kl_warmup_epochs=0)
    )

    history = outcome.history
    assert len(history["pretrain_train_loss"]) == 3
    assert len(history["pretrain_val_loss"]) == 3
    assert history["pretrain_train_kl"] == [0.0, 0.0, 0.0]  # an autoencoder while pre-training
    assert len(history["train_loss"]) == 2
    assert all(kl > 0 for kl in history["train_kl"])  # the mixture KL in the joint phase
    assert len(prior_fits) == 1
    was_pretraining, latents = prior_fits[0]
    assert was_pretraining
    assert latents.shape == (len(train.rows), 4)
    assert bool(model.prior_initialized)
    assert not model.pretraining


def test_vade_without_pretraining_epochs_skips_phases_one_and_two(
    crop_arrays: CropArrays,
) -> None:
    model = tiny_model("vade", n_components=3)
    train, validation = train_and_validation(crop_arrays)
    outcome = train_model(model, train, validation, cpu_config(epochs=1, pretrain_epochs=0))
    assert not any(key.startswith("pretrain_") for key in outcome.history)
    assert not bool(model.prior_initialized)


# ------------------------------------------------------------------ track-level encoding


class KnownEmbeddings:
    """Stands in for a model: mu = x[:, 0:2], logvar = x[:, 2:4] of every crop."""

    def eval(self) -> KnownEmbeddings:
        return self

    def encode(self, batch: Batch) -> tuple[Tensor, Tensor]:
        return batch["x"][:, 0:2], batch["x"][:, 2:4]


class KnownMixture(KnownEmbeddings):
    """A mixture model whose cluster responsibilities are x[:, 4:6]."""

    def cluster_probabilities(self, batch: Batch) -> Tensor:
        return batch["x"][:, 4:6]


def test_encode_tracks_averages_crops_per_track_by_hand(tmp_path: Path) -> None:
    # crops:      mu        logvar            responsibilities     track
    crops = np.array(
        [
            [1.0, 3.0, 0.0, 0.0, 0.9, 0.1],  # 0
            [5.0, 0.0, 0.0, 0.0, 0.1, 0.9],  # 1
            [3.0, 5.0, 0.0, 0.0, 0.4, 0.6],  # 0
            [-2.0, 2.0, math.log(4.0), 0.0, 0.2, 0.8],  # 2 (its only crop)
            [5.0, 2.0, 0.0, math.log(3.0), 0.1, 0.9],  # 1
            [2.0, 4.0, 0.0, 0.0, 0.4, 0.6],  # 0
        ],
        dtype=np.float32,
    )
    owner = np.array([0, 1, 0, 2, 1, 0])
    arrays = write_crop_arrays(tmp_path / "crops", crops, owner, n_tracks=3)
    batches = batches_of(arrays, np.arange(3), shuffle=False)
    latents = encode_tracks(KnownMixture(), batches, arrays.track_ids)  # type: ignore[arg-type]

    assert latents.track_ids == ["track00", "track01", "track02"]
    np.testing.assert_allclose(latents.mu, [[2.0, 4.0], [5.0, 1.0], [-2.0, 2.0]], atol=1e-6)
    # variance of the mixture of crop posteriors: mean crop variance + variance of crop means
    # track 0: var 1 + spread (2/3, 2/3); track 1: var (1, 2) + spread (0, 1); track 2: (4, 1)
    expected_variance = [[1 + 2 / 3, 1 + 2 / 3], [1.0, 3.0], [4.0, 1.0]]
    np.testing.assert_allclose(np.exp(latents.logvar), expected_variance, rtol=1e-5)
    # responsibilities are averaged before the argmax: track 0 averages (0.57, 0.43) -> 0 although
    # two of its three crops prefer 1 (a majority vote would say 1); tracks 1 and 2 -> 1
    np.testing.assert_array_equal(latents.mixture_cluster, [0, 1, 1])
    assert latents.mu.dtype == np.float32


def test_encode_tracks_groups_interleaved_crops_across_encoding_chunks(tmp_path: Path) -> None:
    # given 700 crops of 3 tracks in random order (encode_tracks encodes 512 crops at a time)
    rng = np.random.default_rng(5)
    owner = rng.permutation(np.repeat([0, 1, 2], [3, 600, 97]))
    crops = rng.normal(size=(len(owner), 6)).astype(np.float32)
    crops[:, 4:6] = rng.dirichlet([1.0, 1.0], size=len(owner))
    arrays = write_crop_arrays(tmp_path / "crops", crops, owner, n_tracks=3)
    batches = batches_of(arrays, np.arange(3), shuffle=False)

    latents = encode_tracks(KnownMixture(), batches, arrays.track_ids)  # type: ignore[arg-type]
    plain = encode_tracks(KnownEmbeddings(), batches, arrays.track_ids)  # type: ignore[arg-type]

    for track in range(3):
        mine = crops[owner == track].astype(np.float64)
        mu, variance = mine[:, 0:2], np.exp(mine[:, 2:4])
        np.testing.assert_allclose(latents.mu[track], mu.mean(axis=0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(
            latents.logvar[track], np.log(variance.mean(axis=0) + mu.var(axis=0)), rtol=1e-4
        )
        assert latents.mixture_cluster[track] == mine[:, 4:6].mean(axis=0).argmax()
    np.testing.assert_array_equal(plain.mu, latents.mu)
    assert plain.mixture_cluster is None  # only mixture models have their own clusters


def test_vade_track_clusters_are_the_argmax_of_crop_averaged_responsibilities(
    crop_arrays: CropArrays,
) -> None:
    model = tiny_model("vade", n_components=3)
    train, validation = train_and_validation(crop_arrays)
    train_model(model, train, validation, cpu_config(epochs=1, pretrain_epochs=1))
    every_crop = batches_of(crop_arrays, np.arange(N_TRACKS), shuffle=False)

    latents = encode_tracks(model, every_crop, crop_arrays.track_ids)

    responsibilities = model.cluster_probabilities(every_crop.batch(every_crop.rows)).numpy()
    owner = crop_arrays.track_index
    expected = [responsibilities[owner == t].mean(axis=0).argmax() for t in range(N_TRACKS)]
    np.testing.assert_array_equal(latents.mixture_cluster, expected)
    embeddings = encode_rows(model, every_crop).numpy()
    expected_mu = [embeddings[owner == t].mean(axis=0) for t in range(N_TRACKS)]
    np.testing.assert_allclose(latents.mu, expected_mu, atol=1e-5)


# ------------------------------------------------------------------ the training flow


TINY_FEATURES = FeatureConfig(n_mels=32, crop_frames=32, crop_hop_frames=32)
FLOW_RUNS: dict[str, dict[str, Any]] = {
    "mlp_vae": {"epochs": 3, "overrides": {"latent_dim": 8, "hidden_dims": [64]}},
    "conv_vae": {"epochs": 2, "overrides": {"latent_dim": 8, "channels": [8, 16]}},
    "cvae": {"epochs": 2, "overrides": {"latent_dim": 8, "hidden_dims": [64]}},
}


def model_input_shape(model: str) -> tuple[int, ...]:
    """(n_mels, crop_frames) for the spectrogram model, (summary vector width,) otherwise."""
    if model == "conv_vae":
        return (TINY_FEATURES.n_mels, TINY_FEATURES.crop_frames)
    return (len(summary_feature_names(TINY_FEATURES)),)


@pytest.fixture(scope="module")
def trained(prefect_api, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Train each model of FLOW_RUNS through the flow on one tiny generated collection."""
    root = tmp_path_factory.mktemp("training-flow")
    data = generate_demo_dataset(root / "data", tracks=12, seed=0, duration_s=4.0).root
    outputs: dict[str, TrainOutput] = {}
    for model, settings in FLOW_RUNS.items():
        outputs[model] = train_flow(
            TrainFlowConfig(
                data=data,
                workdir=root / "work",
                spec=ModelSpec(
                    model=model,
                    overrides=settings["overrides"],
                    train=TrainConfig(
                        epochs=settings["epochs"], batch_size=16, kl_warmup_epochs=1, device="cpu"
                    ),
                ),
                features=TINY_FEATURES,
            )
        )
    return {"workspace": Workspace.open(root / "work"), "outputs": outputs}


@pytest.mark.parametrize("model", list(FLOW_RUNS))
def test_the_run_records_hyperparameters_features_and_data_fingerprint(
    trained: dict[str, Any], model: str
) -> None:
    output: TrainOutput = trained["outputs"][model]
    workspace: Workspace = trained["workspace"]
    run = MlflowClient().get_run(output.run_id)
    params, tags = run.data.params, run.data.tags
    ingested = IngestRecord.read(workspace)

    assert run.info.status == "FINISHED"
    assert tags["method"] == model
    assert tags["fingerprint"] == params["fingerprint"] == ingested.fingerprint
    assert tags["feature_key"] == params["feature_key"] == TINY_FEATURES.key
    assert params["model"] == model
    # every optimiser setting and every model setting, overrides included
    for name in TrainConfig.model_fields:
        assert f"train.{name}" in params, name
    assert params["train.epochs"] == str(FLOW_RUNS[model]["epochs"])
    assert params["train.batch_size"] == "16"
    for name in model_class(model).config_class.model_fields:
        assert f"model_config.{name}" in params, name
    for name, value in FLOW_RUNS[model]["overrides"].items():
        assert json.loads(params[f"model_config.{name}"]) == value
    assert json.loads(params["input_shape"]) == list(model_input_shape(model))
    assert int(params["n_tracks"]) == 12
    assert int(params["parameters"]) > 0


@pytest.mark.parametrize("model", list(FLOW_RUNS))
def test_per_epoch_losses_are_metric_histories(trained: dict[str, Any], model: str) -> None:
    output: TrainOutput = trained["outputs"][model]
    client = MlflowClient()
    epochs_run = int(output.final_metrics["epochs_run"])
    assert 1 <= epochs_run <= FLOW_RUNS[model]["epochs"]
    history = json.loads((output.model_dir / "history.json").read_text())
    for name in ("train_loss", "train_reconstruction", "train_kl", "val_loss", "kl_weight"):
        logged = client.get_metric_history(output.run_id, name)
        assert len(logged) == epochs_run, name
        assert [m.step for m in sorted(logged, key=lambda m: m.step)] == list(range(epochs_run))
        assert [m.value for m in sorted(logged, key=lambda m: m.step)] == pytest.approx(
            history[name]
        )
    metrics = client.get_run(output.run_id).data.metrics
    assert metrics["final_train_loss"] == pytest.approx(history["train_loss"][-1])
    assert metrics["examples_per_second"] > 0


@pytest.mark.parametrize("model", list(FLOW_RUNS))
def test_the_run_holds_plots_latents_and_the_model_folder(
    trained: dict[str, Any], model: str
) -> None:
    output: TrainOutput = trained["outputs"][model]
    client = MlflowClient()
    artifacts = {a.path for a in client.list_artifacts(output.run_id)}
    plots = {a.path for a in client.list_artifacts(output.run_id, "plots")}
    assert {"latents.parquet", "model"} <= artifacts
    assert "plots/training_curves.png" in plots
    # reconstructions only make sense (and are only drawn) for spectrogram models
    assert ("plots/reconstructions.png" in plots) == (model == "conv_vae")
    # the model is its card and safetensors weights: nothing that loads by unpickling
    assert output.model_uri == f"runs:/{output.run_id}/model"
    model_files = {a.path for a in client.list_artifacts(output.run_id, "model")}
    # the MLmodel file (no flavour) and a JSON input example show the signature in MLflow
    assert model_files == {
        "model/model.json",
        f"model/{WEIGHTS_FILE}",
        "model/MLmodel",
        "model/input_example.json",
    }

    card = ModelCard.read(output.model_dir)
    assert card.input_shape == model_input_shape(model)
    assert card.run_id == output.run_id
    latents = read_latents(output.latents)
    assert latents.mu.shape == (12, 8)
    assert latents.track_ids == sorted(latents.track_ids)


def crops_of_every_track(
    workspace: Workspace, feature_key: str, input_kind: str
) -> tuple[list[str], list[np.ndarray]]:
    """The stored crops of each ok track, in track-id order, as the model's input (float32)."""
    tracks = (
        pl.read_parquet(workspace.tracks_table).filter(pl.col("status") == "ok").sort("track_id")
    )
    name = "logmel" if input_kind == "spectrogram" else "crop_stats"
    crops = [
        getattr(TrackFeatures.load(workspace.feature_file(feature_key, sha)), name).astype(
            np.float32
        )
        for sha in tracks["sha256"]
    ]
    return tracks["track_id"].to_list(), crops


@pytest.mark.parametrize("model", ["mlp_vae", "conv_vae"])
def test_the_registered_version_loads_back_and_encodes_like_the_trained_model(
    trained: dict[str, Any], model: str, tmp_path: Path
) -> None:
    output: TrainOutput = trained["outputs"][model]
    assert output.registered_version is not None
    folder = download_model_files(f"models:/vaemusic-{model}/{output.registered_version}", tmp_path)
    registered, registered_card = load_latent_encoder(folder)
    rebuilt, card = load_trained_model(output.model_dir)
    assert card.run_id == output.run_id
    assert registered_card == card

    track_ids, crops = crops_of_every_track(
        trained["workspace"], TINY_FEATURES.key, card.input_kind
    )
    latents = read_latents(output.latents)
    assert latents.track_ids == track_ids
    with torch.no_grad():
        for row, track_crops in enumerate(crops):
            from_registry = registered(torch.from_numpy(track_crops)).numpy()
            from_files = rebuilt.embed({"x": torch.from_numpy(track_crops)}).numpy()
            np.testing.assert_allclose(from_registry, from_files, atol=1e-5)
            # the saved track latent is the mean of the track's crop embeddings
            np.testing.assert_allclose(from_registry.mean(axis=0), latents.mu[row], atol=1e-5)


def test_the_cvae_is_conditioned_on_the_lyrics_language(
    trained: dict[str, Any], tmp_path: Path
) -> None:
    output: TrainOutput = trained["outputs"]["cvae"]
    workspace: Workspace = trained["workspace"]
    run = MlflowClient().get_run(output.run_id)
    assert run.data.params["condition"] == "language"
    assert run.data.tags["uses_labels"] == "false"
    assert output.uses_labels is False

    # tracks without lyrics form their own class, "none"
    tracks = pl.read_parquet(workspace.tracks_table).filter(pl.col("status") == "ok")
    lyrics = pl.read_parquet(workspace.lyrics_table).select("track_id", "language")
    joined = tracks.select("track_id").join(lyrics, on="track_id", how="left")
    languages = {value if value is not None else "none" for value in joined["language"]}
    card = ModelCard.read(output.model_dir)
    assert set(card.condition_classes) == languages
    assert len(languages) >= 2
    assert card.uses_language_condition
    assert json.loads(run.data.params["condition_classes"]) == list(card.condition_classes)
    # the registered encoder conditions on the most frequent language when given none
    folder = download_model_files(f"models:/vaemusic-cvae/{output.registered_version}", tmp_path)
    registered, _ = load_latent_encoder(folder)
    assert registered.default_condition == card.default_condition
