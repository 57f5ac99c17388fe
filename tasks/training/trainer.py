"""One trainer for every model of the zoo, and track-level encoding of the latents.

Adam/AdamW, cosine or plateau learning-rate schedule, KL warm-up, gradient clipping, early
stopping on a held-out split of tracks with restore of the best weights, mixed precision on a GPU,
deterministic seeds, and a clear failure when the loss stops being finite. VaDE gets its three
phases (pre-training as an autoencoder, GMM initialisation of the prior, joint training).
"""

from __future__ import annotations

import copy
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from models.base import RepresentationModel
from tasks.core.errors import RunFailure
from tasks.core.progress import Logger, interactive_terminal, run_logger_or
from tasks.training.data import CropBatches
from tasks.training.lanes import share_idle_cores

_log = logging.getLogger(__name__)

# "pretrain": VaDE's autoencoder phase before its prior is fitted; "train": the full objective.
Phase = Literal["pretrain", "train"]

# Called after every training epoch with (epoch, metrics of the epoch, the model); may raise to stop
# (Optuna pruning raises TrialPruned).
EpochCallback = Callable[[int, dict[str, float], RepresentationModel], None]


class TrainConfig(BaseModel):
    """Optimisation settings shared by every model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    epochs: int = Field(40, ge=1, description="Maximum number of epochs.")
    batch_size: int = Field(64, ge=2, description="Crops per mini-batch.")
    learning_rate: float = Field(1e-3, gt=0, description="Peak learning rate.")
    weight_decay: float = Field(1e-5, ge=0, description="Weight decay (decoupled for AdamW).")
    optimizer: Literal["adam", "adamw"] = Field("adamw", description="Optimiser.")
    scheduler: Literal["cosine", "plateau", "none"] = Field("cosine", description="LR schedule.")
    patience: int = Field(8, ge=1, description="Early stopping: epochs without improvement.")
    validation_fraction: float = Field(0.15, ge=0, lt=0.5, description="Held-out tracks.")
    gradient_clip_norm: float = Field(5.0, gt=0, description="Max gradient norm.")
    kl_warmup_epochs: int = Field(
        5, ge=0, description="Epochs over which the KL weight rises to 1."
    )
    pretrain_epochs: int = Field(10, ge=0, description="VaDE: autoencoder pre-training epochs.")
    crops_per_track: int | None = Field(
        None,
        ge=1,
        description="Crops of each training track seen per epoch, drawn anew every epoch "
        "(an epoch then costs this share of the crops); empty: every crop.",
    )
    max_crops_per_epoch: int | None = Field(
        None,
        ge=1,
        description="Cap on the crops an epoch sees: past it, every training track gives the "
        "same number of crops (at least one), drawn anew every epoch; empty: no cap.",
    )
    seed: int = Field(0, description="Seed of weights, split and batch order.")
    device: str = Field("auto", description="'auto' (GPU when present), 'cpu' or 'cuda'.")
    mixed_precision: bool = Field(True, description="Automatic mixed precision (GPU only).")

    @staticmethod
    def search_space(trial: Any) -> dict[str, Any]:
        """Optimiser overrides suggested by an Optuna-like trial."""
        return {
            "learning_rate": trial.suggest_float("learning_rate", 1e-4, 3e-3, log=True),
            "batch_size": trial.suggest_categorical("batch_size", [32, 64, 128]),
            "kl_warmup_epochs": trial.suggest_int("kl_warmup_epochs", 0, 10),
        }


class NonFiniteLossError(RunFailure, RuntimeError):
    """The loss became NaN or infinite; the message names the model, epoch and what to try.

    A `RunFailure` (one line, exit code 1), not the user's mistake: the settings were valid, the
    training diverged. A RuntimeError, so a tuning study ends the trial and goes on.
    """


@dataclass(frozen=True)
class TrainingProgress:
    """Asks `train_model` to say how far it is (without it, training is silent: tuning trials
    and benchmarks run many trainings nobody watches epoch by epoch).

    One log line every `every` epochs (default: max(1, epochs // 10)), plus the first and the
    last epoch, with the epoch's loss terms, to `logger` (default: Prefect's run logger inside
    a run, else this module's logger). `bar`: draw a progress bar on stderr; default only at an
    interactive terminal (never in CI or worker logs).
    """

    label: str  # what is trained, as the lines name it (the run name)
    every: int | None = None
    bar: bool | None = None
    logger: Logger | None = None

    def epochs_between_lines(self, epochs: int) -> int:
        return max(1, self.every or epochs // 10)


class _EpochReport:
    """The lines (and the bar) of one training phase, as `TrainingProgress` asks for them."""

    def __init__(self, progress: TrainingProgress, phase: Phase, epochs: int) -> None:
        self.epochs = epochs
        self.every = progress.epochs_between_lines(epochs)
        self.name = progress.label if phase == "train" else f"{progress.label} ({phase})"
        self.logger = progress.logger or run_logger_or(_log)
        self.last_logged = -1
        self.last: tuple[int, dict[str, float], float] | None = None  # epoch, losses, seconds
        self.bar = None
        if progress.bar if progress.bar is not None else interactive_terminal():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=epochs, desc=self.name, unit="epoch", leave=False)

    @staticmethod
    def losses(record: dict[str, float]) -> dict[str, float]:
        """The loss terms of an epoch's record (`train_*`/`val_*`, any phase prefix)."""
        return {
            name.removeprefix("pretrain_"): value
            for name, value in record.items()
            if name.removeprefix("pretrain_").startswith(("train_", "val_"))
        }

    def epoch_done(self, epoch: int, record: dict[str, float], seconds: float) -> None:
        losses = self.losses(record)
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in losses.items() if k.endswith("loss")})
            self.bar.update(1)
        number = epoch + 1
        if number == 1 or number % self.every == 0 or number == self.epochs:
            self._log_epoch(epoch, losses, seconds)
        self.last = (epoch, losses, seconds)

    def _log_epoch(self, epoch: int, losses: dict[str, float], seconds: float) -> None:
        terms = ", ".join(f"{name} {value:.4g}" for name, value in losses.items())
        self.logger.info(
            "%s: epoch %d/%d: %s (%.1f s)", self.name, epoch + 1, self.epochs, terms, seconds
        )
        self.last_logged = epoch

    def finish(self, outcome: TrainingOutcome, patience: int) -> None:
        """The last epoch's line if it was not logged, and why training stopped early."""
        if self.bar is not None:
            self.bar.close()
        last = self.last
        if last is not None and last[0] != self.last_logged:
            self._log_epoch(*last)
        if outcome.stopped_early and last is not None:
            self.logger.info(
                "%s: stopped early after epoch %d (no improvement in %d epochs); keeping the "
                "weights of epoch %d",
                self.name,
                last[0] + 1,
                patience,
                outcome.best_epoch + 1,
            )


@dataclass
class TrainingOutcome:
    history: dict[str, list[float]] = field(default_factory=dict)
    best_epoch: int = -1
    best_validation_loss: float = math.inf
    stopped_early: bool = False
    seconds: float = 0.0
    examples_per_second: float = 0.0


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _kl_weight(epoch: int, warmup: int) -> float:
    return 1.0 if warmup == 0 else min(1.0, (epoch + 1) / warmup)


def _mean_losses(
    model: RepresentationModel, batches: CropBatches, kl_weight: float, use_amp: bool
) -> dict[str, float]:
    sums: dict[str, float] = {}
    n = 0
    model.eval()
    with torch.no_grad():
        for batch in batches:
            with torch.autocast(batches.device.type, enabled=use_amp):
                outputs = model(batch)
                losses = model.loss_function(batch, outputs, kl_weight=kl_weight)
            size = batch["x"].shape[0]
            for name, value in losses.items():
                sums[name] = sums.get(name, 0.0) + float(value) * size
            n += size
    return {name: total / max(n, 1) for name, total in sums.items()}


def _optimizer_and_schedule(
    model: RepresentationModel, config: TrainConfig, epochs: int
) -> tuple[torch.optim.Optimizer, Any]:
    """The optimiser of `config` over `model`'s parameters and its learning-rate schedule (None
    for a constant rate); a cosine schedule spans `epochs`."""
    optimizer_class = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    # One fused kernel per step instead of ~10 small ops per parameter tensor: on the CPU a
    # small MLP-family model's loop took 24 % less (the same losses to ~1e-8).
    devices = {parameter.device.type for parameter in model.parameters()}
    optimizer = optimizer_class(
        model.parameters(),
        lr=config.learning_rate,
        weight_decay=config.weight_decay,
        fused=True if devices <= {"cpu", "cuda"} else None,
    )
    if config.scheduler == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs, 1))
    elif config.scheduler == "plateau":
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=3)
    else:
        scheduler = None
    return optimizer, scheduler


@dataclass
class _EpochStep:
    """What one epoch of optimisation needs besides the model and the batches."""

    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    config: TrainConfig
    phase: Phase
    use_amp: bool


def _train_one_epoch(
    model: RepresentationModel, train: CropBatches, step: _EpochStep, epoch: int, kl_weight: float
) -> tuple[dict[str, float], int]:
    """One pass over `train`; returns (sum over crops of each loss term x batch size, crops seen).

    The batches' loss terms stay on the device until the epoch ends: one transfer per term and
    epoch instead of a host round-trip per term and step (each stalls a GPU's queue). A
    non-finite loss is found then, with its batch.

    Raises:
        NonFiniteLossError: a batch loss is NaN or infinite.
    """
    model.train()
    terms: dict[str, list[torch.Tensor]] = {}
    sizes: list[int] = []
    for batch in train:
        share_idle_cores()  # in a training lane: the cores of lanes that have gone idle
        with torch.autocast(train.device.type, enabled=step.use_amp):
            outputs = model(batch)
            losses = (
                model.pretrain_loss(batch, outputs)
                if step.phase == "pretrain"
                else model.loss_function(batch, outputs, kl_weight=kl_weight)
            )
        step.optimizer.zero_grad(set_to_none=True)
        step.scaler.scale(losses["loss"]).backward()
        step.scaler.unscale_(step.optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), step.config.gradient_clip_norm)
        step.scaler.step(step.optimizer)
        step.scaler.update()
        sizes.append(batch["x"].shape[0])
        for name, value in losses.items():
            terms.setdefault(name, []).append(value.detach().float())
    if not sizes:
        return {}, 0
    per_batch = {name: torch.stack(values).double().cpu() for name, values in terms.items()}
    finite = torch.isfinite(per_batch["loss"])
    if not bool(finite.all()):
        index = int((~finite).nonzero()[0])
        raise NonFiniteLossError(
            f"{model.name}: the training loss became {per_batch['loss'][index].item()} at epoch "
            f"{epoch + 1}, batch {index + 1} ({step.phase}). Try a lower learning rate (now "
            f"{step.config.learning_rate:g}), a smaller beta, or check the input features."
        )
    weights = torch.tensor(sizes, dtype=torch.float64)
    sums = {name: float((values * weights).sum()) for name, values in per_batch.items()}
    return sums, sum(sizes)


def _validation_losses(
    model: RepresentationModel, validation: CropBatches, phase: Phase, use_amp: bool
) -> dict[str, float]:
    """Mean validation loss terms per crop: the pre-training loss in VaDE's pre-training phase,
    else the full objective (KL weight 1, so that epochs are comparable)."""
    if phase != "pretrain":
        return _mean_losses(model, validation, 1.0, use_amp)
    model.eval()
    with torch.no_grad():
        total, n = 0.0, 0
        for batch in validation:
            total += float(model.pretrain_loss(batch, model(batch))["loss"]) * len(batch["x"])
            n += len(batch["x"])
    return {"loss": total / max(n, 1)}


@dataclass
class _EarlyStopping:
    """Keeps the best weights seen and says when `patience` epochs brought no improvement."""

    patience: int
    best_state: dict[str, torch.Tensor] | None = None
    best_loss: float = math.inf
    stale: int = 0

    def should_stop(
        self, monitored: float, epoch: int, model: RepresentationModel, outcome: TrainingOutcome
    ) -> bool:
        # An improvement must beat the best by a relative 1e-4, so noise does not reset patience.
        if self.best_state is None or monitored < self.best_loss - 1e-4 * abs(self.best_loss):
            self.best_loss, self.stale = monitored, 0
            self.best_state = copy.deepcopy(model.state_dict())
            outcome.best_epoch = epoch
            return False
        self.stale += 1
        return self.stale >= self.patience


def _epoch_record(
    model: RepresentationModel,
    validation: CropBatches | None,
    step: _EpochStep,
    epoch: int,
    sums: dict[str, float],
    seen: int,
    seconds: float,
    kl_weight: float,
) -> tuple[dict[str, float], float]:
    """An epoch's metrics (history names, `pretrain_` prefixed in that phase) and the loss that
    early stopping monitors: the validation loss when there is a split, else the training loss.

    Raises:
        NonFiniteLossError: the validation loss is NaN or infinite.
    """
    prefix = "pretrain_" if step.phase == "pretrain" else ""
    record = {f"{prefix}train_{k}": v / max(seen, 1) for k, v in sums.items()}
    record[f"{prefix}examples_per_second"] = seen / max(seconds, 1e-9)
    record[f"{prefix}learning_rate"] = step.optimizer.param_groups[0]["lr"]
    record[f"{prefix}kl_weight"] = kl_weight
    monitored = record[f"{prefix}train_loss"]
    if validation is not None and len(validation.rows):
        val = _validation_losses(model, validation, step.phase, step.use_amp)
        record.update({f"{prefix}val_{k}": v for k, v in val.items()})
        monitored = val["loss"]
        if not math.isfinite(monitored):
            raise NonFiniteLossError(
                f"{model.name}: the validation loss became {monitored} at epoch {epoch + 1} "
                f"({step.phase}). Try a lower learning rate (now "
                f"{step.config.learning_rate:g}), or check the validation tracks' features."
            )
    return record, monitored


def _run_epochs(
    model: RepresentationModel,
    train: CropBatches,
    validation: CropBatches | None,
    config: TrainConfig,
    *,
    phase: Phase,
    outcome: TrainingOutcome,
    on_epoch: EpochCallback | None = None,
    progress: TrainingProgress | None = None,
) -> None:
    """Run one phase of training, recording each epoch's metrics in `outcome.history`.

    "train": up to `config.epochs` with KL warm-up, `on_epoch` after each epoch, and early
    stopping after `config.patience` epochs without improvement of the monitored loss
    (validation when there is a split), restoring the best weights. "pretrain" (VaDE's
    autoencoder phase): exactly `config.pretrain_epochs`, metrics prefixed `pretrain_`, no
    warm-up, no callback, no early stopping. With `progress`, the epochs are reported as it
    asks (see `TrainingProgress`).

    Raises:
        NonFiniteLossError: a training or validation loss is NaN or infinite.
    """
    pretraining = phase == "pretrain"
    epochs = config.pretrain_epochs if pretraining else config.epochs
    early_stopping = not pretraining
    use_amp = config.mixed_precision and train.device.type == "cuda"
    optimizer, scheduler = _optimizer_and_schedule(model, config, epochs)
    step = _EpochStep(
        optimizer=optimizer,
        scaler=torch.amp.GradScaler(train.device.type, enabled=use_amp),
        config=config,
        phase=phase,
        use_amp=use_amp,
    )
    stopping = _EarlyStopping(patience=config.patience)
    warmup = 0 if pretraining else config.kl_warmup_epochs
    report = _EpochReport(progress, phase, epochs) if progress is not None else None

    for epoch in range(epochs):
        kl_weight = _kl_weight(epoch, warmup)
        started = time.perf_counter()
        sums, seen = _train_one_epoch(model, train, step, epoch, kl_weight)
        elapsed = time.perf_counter() - started
        outcome.seconds += elapsed
        record, monitored = _epoch_record(
            model, validation, step, epoch, sums, seen, elapsed, kl_weight
        )
        if report is not None:  # the epoch's wall time, validation included
            report.epoch_done(epoch, record, time.perf_counter() - started)
        for name, value in record.items():
            outcome.history.setdefault(name, []).append(float(value))
        if on_epoch is not None and not pretraining:
            on_epoch(epoch, record, model)

        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(monitored)
        elif scheduler is not None:
            scheduler.step()
        # Before the KL weight reaches 1 the objective keeps changing; do not judge it yet.
        if (
            epoch + 1 >= warmup
            and early_stopping
            and stopping.should_stop(monitored, epoch, model, outcome)
        ):
            outcome.stopped_early = True
            break
    if report is not None:
        report.finish(outcome, config.patience)
    if stopping.best_state is not None:
        model.load_state_dict(stopping.best_state)
        outcome.best_validation_loss = stopping.best_loss
    elif early_stopping and outcome.history.get("train_loss"):
        # Fewer epochs than the KL warm-up: nothing was judged, the last weights stand.
        outcome.best_epoch = len(outcome.history["train_loss"]) - 1


def train_model(
    model: RepresentationModel,
    train: CropBatches,
    validation: CropBatches | None,
    config: TrainConfig,
    *,
    on_epoch: EpochCallback | None = None,
    progress: TrainingProgress | None = None,
) -> TrainingOutcome:
    """Train `model` in place (best weights restored) and return its history.

    History keys: `train_loss`, `train_reconstruction`, `train_kl` (+ model-specific terms),
    `val_*` when there is a validation split, `examples_per_second`, `learning_rate`; VaDE's
    pre-training phase is recorded with the prefix `pretrain_`. Silent unless `progress` asks
    for log lines (and a bar at a terminal).

    Raises:
        NonFiniteLossError: the loss became NaN or infinite.
    """
    outcome = TrainingOutcome()
    model.to(train.device)
    seen_examples = 0
    if hasattr(model, "initialize_prior") and config.pretrain_epochs > 0:
        model.set_pretraining(True)
        _run_epochs(
            model, train, validation, config, phase="pretrain", outcome=outcome, progress=progress
        )
        seen_examples += train.examples_per_epoch * config.pretrain_epochs
        model.initialize_prior(encode_rows(model, train))
    _run_epochs(
        model,
        train,
        validation,
        config,
        phase="train",
        outcome=outcome,
        on_epoch=on_epoch,
        progress=progress,
    )
    seen_examples += train.examples_per_epoch * len(outcome.history.get("train_loss", []))
    outcome.examples_per_second = seen_examples / max(outcome.seconds, 1e-9)
    return outcome


def encode_rows(model: RepresentationModel, batches: CropBatches) -> torch.Tensor:
    """Latent means of every crop of `batches`, in row order: (n_crops, latent_dim) on the CPU."""
    step = batches.inference_rows
    parts = [
        model.embed(batches.batch(batches.rows[i : i + step]))
        for i in range(0, len(batches.rows), step)
    ]
    return torch.cat(parts).float().cpu()


@dataclass
class TrackLatents:
    """Track-level latents: crop means averaged per track.

    mu: [shape=(n_tracks, latent_dim)]; logvar: log of the mean crop variance plus the variance of
    the crop means (the variance of the track's mixture of crop posteriors).
    mixture_cluster: VaDE's own cluster per track (argmax of crop-averaged responsibilities).
    """

    track_ids: list[str]
    mu: np.ndarray
    logvar: np.ndarray
    mixture_cluster: np.ndarray | None = None


def encode_tracks(
    model: RepresentationModel, batches: CropBatches, track_ids: list[str]
) -> TrackLatents:
    """Encode every crop and aggregate per track (rows of `batches` must cover all tracks)."""
    model.eval()
    mus, variances, responsibilities = [], [], []
    with torch.no_grad():
        step = batches.inference_rows
        for start in range(0, len(batches.rows), step):
            batch = batches.batch(batches.rows[start : start + step])
            mu, logvar = model.encode(batch)
            mus.append(mu.float().cpu())
            variances.append(logvar.float().exp().cpu())
            if hasattr(model, "cluster_probabilities"):
                responsibilities.append(model.cluster_probabilities(batch).float().cpu())
    mu = torch.cat(mus).numpy()
    var = torch.cat(variances).numpy()
    owner = batches.track_index[batches.rows]
    n_tracks = len(track_ids)
    counts = np.bincount(owner, minlength=n_tracks)[:, None].clip(min=1)

    def per_track(values: np.ndarray) -> np.ndarray:
        sums = np.zeros((n_tracks, values.shape[1]))
        np.add.at(sums, owner, values)
        return sums / counts

    track_mu = per_track(mu)
    spread = per_track(np.square(mu)) - np.square(track_mu)
    track_logvar = np.log(np.maximum(per_track(var) + spread, 1e-12))
    mixture = None
    if responsibilities:
        mixture = per_track(torch.cat(responsibilities).numpy()).argmax(axis=1)
    return TrackLatents(
        track_ids=list(track_ids),
        mu=track_mu.astype(np.float32),
        logvar=track_logvar.astype(np.float32),
        mixture_cluster=mixture,
    )
