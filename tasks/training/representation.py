"""Train one representation model on the feature store, encode every track, log it all to MLflow.

The task is cached on its inputs (model spec, data fingerprint, feature key, work dir id): a
pipeline re-run on unchanged data does not retrain, it returns the same run and files.

A trained model's folder (`Workspace.model_dir(run_name)`) holds its card and weights
(`tasks.training.checkpoint`), its track latents, its training history and plots; the card and
weights are also logged under the run's `model/` artifact folder and registered as a version of
`vaemusic-<model>`.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from prefect import task
from pydantic import BaseModel, ConfigDict, Field, model_validator

from models.base import RepresentationModel
from models.zoo import (
    DEFAULT_CONDITION,
    Condition,
    ModelName,
    build_model,
    model_class,
    uses_labels,
)
from registry.models import content_digest, log_model_folder, register_model
from registry.tracking import (
    log_artifact,
    log_metric_histories,
    log_metrics,
    log_params,
    set_tags,
    tracked_run,
)
from tasks.audio.features import resolve_device
from tasks.audio.ingest import usable_tracks
from tasks.audio.pretrained_store import PretrainedRecord
from tasks.core.caching import cached_on
from tasks.core.workspace import Workspace
from tasks.training.checkpoint import save_trained_model
from tasks.training.data import (
    DEFAULT_INPUTS,
    CropArrays,
    CropBatches,
    ModelInputs,
    TrackSideInformation,
    gather_crops,
    inference_batch_size,
    normalization_statistics,
    split_tracks,
)
from tasks.training.lanes import lanes_open, run_in_lane
from tasks.training.model_card import NO_LANGUAGE_CONDITION, ModelCard
from tasks.training.trainer import (
    EpochCallback,
    TrackLatents,
    TrainConfig,
    TrainingOutcome,
    TrainingProgress,
    encode_tracks,
    seed_everything,
    train_model,
)

REGISTERED_PREFIX = "vaemusic"
# Loss terms summarised as final_* metrics and drawn as training curves.
_LOSS_SUFFIXES = ("_loss", "_reconstruction", "_kl")


class ModelSpec(BaseModel):
    """What to train: a zoo model, its overrides, the side information it uses."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: ModelName = Field(description="Which model of the zoo to train.")
    overrides: dict[str, Any] = Field(default_factory=dict, description="Model config overrides.")
    train: TrainConfig = Field(default_factory=TrainConfig)
    condition: Condition = Field(
        DEFAULT_CONDITION, description="CVAE condition; 'genre' uses labels and marks the run so."
    )
    features_label: str = Field(
        "", description="Variant shown in reports (e.g. 'beta=4'); empty: made of the overrides."
    )
    audio_only: bool = Field(
        False,
        description="Multimodal model trained with every track's lyrics masked out: the "
        "audio-only control of the same architecture.",
    )
    inputs: ModelInputs = Field(
        DEFAULT_INPUTS,
        description="What a vector model reads per crop: 'descriptors' (hand-crafted summary "
        "of each crop) or 'musicnn' (the pretrained network's 200-d embedding of each 3 s "
        "patch). Spectrogram models read log-mel crops.",
    )

    @model_validator(mode="after")
    def _inputs_fit_the_model(self) -> ModelSpec:
        if self.inputs != DEFAULT_INPUTS and model_class(self.model).input_kind != "vector":
            raise ValueError(
                f"inputs={self.inputs!r} is for vector models; {self.model} reads log-mel crops "
                "(inputs='descriptors')"
            )
        return self

    @property
    def uses_labels(self) -> bool:
        return uses_labels(self.model, self.condition)

    @property
    def variant(self) -> str:
        """`features_label`, else one made of the overrides (`"beta=4, latent_dim=8"`), led by
        the inputs when they are not the descriptors (`"musicnn, beta=4"`): runs with different
        overrides or inputs must not share a name (and a model folder)."""
        variant = self.features_label or ", ".join(
            f"{key}={value}" for key, value in sorted(self.overrides.items())
        )
        if self.inputs == DEFAULT_INPUTS or variant.startswith(self.inputs):
            return variant
        return f"{self.inputs}, {variant}" if variant else self.inputs

    @property
    def features(self) -> str:
        """The variant as reports show it."""
        return self.variant or "default"

    @property
    def run_name(self) -> str:
        """Also the model folder's name: only characters that are safe in paths and globs."""
        parts = [self.model, self.variant, f"seed{self.train.seed}"]
        name = "-".join(p.replace("=", "").replace("+", "_") for p in parts if p)
        return re.sub(r"[^A-Za-z0-9_.,-]+", "_", name)


class TrainOutput(BaseModel):
    """Where a trained model's products are."""

    run_id: str
    model_uri: str = Field(description="runs:/RUN/model: the logged card + weights folder.")
    model_dir: Path
    latents: Path
    registered_version: str | None = None
    method: str
    features: str
    uses_labels: bool
    final_metrics: dict[str, float]

    @property
    def loss_summary(self) -> str:
        """The final losses in one line (`final_train_loss=1.23, final_val_loss=1.4`)."""
        return ", ".join(
            f"{k}={v:.3g}"
            for k, v in self.final_metrics.items()
            if k.startswith("final_") and k.endswith("loss")
        )


def read_latents(path: Path) -> TrackLatents:
    table = pl.read_parquet(path)
    mixture = table["mixture_cluster"].to_numpy() if "mixture_cluster" in table.columns else None
    return TrackLatents(
        track_ids=table["track_id"].to_list(),
        mu=np.asarray(table["mu"].to_list(), dtype=np.float32),
        logvar=np.asarray(table["logvar"].to_list(), dtype=np.float32),
        mixture_cluster=mixture,
    )


def write_latents(latents: TrackLatents, path: Path) -> None:
    columns: dict[str, Any] = {
        "track_id": latents.track_ids,
        "mu": latents.mu.tolist(),
        "logvar": latents.logvar.tolist(),
    }
    if latents.mixture_cluster is not None:
        columns["mixture_cluster"] = latents.mixture_cluster.astype(np.int64)
    pl.DataFrame(columns).write_parquet(path)


def side_information(
    model_cls: type[RepresentationModel],
    spec: ModelSpec,
    workspace: Workspace,
    tracks: pl.DataFrame,
) -> tuple[TrackSideInformation, list[str]]:
    """Per-track condition classes (CVAE) and lyrics embeddings (multimodal) for `tracks`, and
    the condition vocabulary ('none' stands for tracks without a detected language)."""
    side = TrackSideInformation()
    vocabulary: list[str] = []
    track_ids = tracks["track_id"].to_list()
    if model_cls.uses_condition:
        if spec.condition == "genre":
            values = tracks["genre"].to_list()
        else:
            lyrics = pl.read_parquet(workspace.lyrics_table).select("track_id", "language")
            values = (
                tracks.select("track_id")
                .join(lyrics, on="track_id", how="left")["language"]
                .to_list()
            )
        values = [v if v is not None else NO_LANGUAGE_CONDITION for v in values]
        vocabulary = sorted(set(values))
        side.condition = np.array([vocabulary.index(v) for v in values], dtype=np.int64)
    if model_cls.uses_lyrics:
        from tasks.lyrics.embedding import read_lyrics_embeddings

        embeddings, has_lyrics, side.lyrics_encoder_id = read_lyrics_embeddings(
            workspace, track_ids
        )
        side.lyrics = embeddings.astype(np.float32)
        side.lyrics_mask = has_lyrics.astype(bool) & (not spec.audio_only)
    return side, vocabulary


def _training_plots(
    workspace: Workspace,
    run_name: str,
    history: dict[str, list[float]],
    model: RepresentationModel,
    validation: CropBatches,
) -> list[Path]:
    """Loss curves and, for spectrogram models, a few validation crops next to their
    reconstructions, written into the model folder."""
    from tasks.training.figures import reconstruction_examples, training_curves

    out = workspace.model_dir(run_name)
    curves = {k: v for k, v in history.items() if k.endswith(_LOSS_SUFFIXES)}
    paths = [training_curves({run_name: curves}, out / "training_curves.png")]
    if model.input_kind == "spectrogram" and len(validation.rows):
        batch = validation.batch(validation.rows[: min(4, len(validation.rows))])
        model.eval()
        with torch.no_grad():
            mu, _ = model.encode(batch)
            reconstruction = model.decode(mu, batch)
        original = model.normalize_input(batch["x"]).squeeze(1).cpu().numpy()
        paths.append(
            reconstruction_examples(
                original, reconstruction.squeeze(1).cpu().numpy(), out / "reconstructions.png"
            )
        )
    return paths


@dataclass
class PreparedTraining:
    """A model ready to train: built, normalised on its training crops, with its batches."""

    model: RepresentationModel
    tracks: pl.DataFrame  # the usable tracks, in latent order
    arrays: CropArrays
    side: TrackSideInformation
    vocabulary: list[str]  # condition classes (empty for unconditioned models)
    batches: dict[str, CropBatches]  # "train", "val" and "all" tracks
    train_tracks: np.ndarray
    val_tracks: np.ndarray
    device: torch.device
    pretrained: PretrainedRecord | None = None  # the store of musicnn inputs, else None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.arrays.x.shape[1:])

    @property
    def lyrics_dim(self) -> int:
        return self.side.lyrics.shape[1] if self.side.lyrics is not None else 0

    @property
    def validation(self) -> CropBatches | None:
        """The held-out batches, None when the collection is too small to hold tracks out."""
        return self.batches["val"] if len(self.val_tracks) else None

    @property
    def default_condition(self) -> int:
        """The most frequent condition class in training (0 for unconditioned models)."""
        if not self.vocabulary or self.side.condition is None:
            return 0
        return int(Counter(self.side.condition.tolist()).most_common(1)[0][0])


def pretrained_inputs(
    spec: ModelSpec, workspace: Workspace, pretrained_key: str | None
) -> PretrainedRecord | None:
    """The pretrained store a spec on pretrained inputs reads: the work dir's last ingest's
    (`pretrained.json`), which must be the store `pretrained_key` names when one is given; None
    for a spec on descriptors.

    Raises:
        FileNotFoundError: the work dir has no pretrained features, or not those of
            `pretrained_key` (the message says what to run).
    """
    if spec.inputs == DEFAULT_INPUTS:
        return None
    record = PretrainedRecord.read(workspace)
    if record is None or (pretrained_key is not None and record.key != pretrained_key):
        wanted = f"store {pretrained_key}" if pretrained_key else "a pretrained store"
        raise FileNotFoundError(
            f"{spec.run_name} reads {spec.inputs} features but {workspace.root} holds no "
            f"{wanted}: run the ingest (`python -m flows ingest DATA --workdir "
            f"{workspace.root}`) first"
        )
    return record


def prepare_training(
    spec: ModelSpec, workspace: Workspace, feature_key: str, pretrained_key: str | None = None
) -> PreparedTraining:
    """Crops (of the descriptors or of the pretrained store, by `spec.inputs`) and side
    information of the ok tracks, the track split, batches, and the model with input (and
    lyrics) normalisation from the training tracks alone."""
    model_cls = model_class(spec.model)
    tracks = usable_tracks(workspace)
    pretrained = pretrained_inputs(spec, workspace, pretrained_key)
    arrays = gather_crops(
        workspace,
        feature_key,
        tracks["track_id"].to_list(),
        tracks["sha256"].to_list(),
        model_cls.input_kind,
        inputs=spec.inputs,
        pretrained_key=pretrained.key if pretrained else None,
    )
    side, vocabulary = side_information(model_cls, spec, workspace, tracks)
    seed_everything(spec.train.seed)
    device = resolve_device(spec.train.device)
    train_tracks, val_tracks = split_tracks(
        tracks.height, spec.train.validation_fraction, spec.train.seed
    )

    def batches_of(
        rows: np.ndarray, *, shuffle: bool, batch_size: int, spread: int | None = None
    ) -> CropBatches:
        return CropBatches(
            arrays,
            rows,
            side,
            batch_size=batch_size,
            shuffle=shuffle,
            device=device,
            seed=spec.train.seed,
            crops_per_track=spec.train.crops_per_track,
            max_crops_per_epoch=spec.train.max_crops_per_epoch,
            spread=spread,
        )

    train = batches_of(train_tracks, shuffle=True, batch_size=spec.train.batch_size)
    inference = inference_batch_size(arrays.x.shape[1:], spec.train.batch_size)
    batches = {
        "train": train,
        # Past the epoch cap, validation reads the training's share of each of its tracks: a
        # fixed subset, so that epochs stay comparable (at 1,000 demo tracks it was a third of
        # the conv VAE's time outside its training loop).
        "val": batches_of(
            val_tracks, shuffle=False, batch_size=inference, spread=train.capped_share
        ),
        "all": batches_of(np.arange(tracks.height), shuffle=False, batch_size=inference),
    }
    model = build_model(
        spec.model,
        input_shape=tuple(arrays.x.shape[1:]),
        overrides=spec.overrides,
        n_conditions=len(vocabulary),
        lyrics_dim=side.lyrics.shape[1] if side.lyrics is not None else 0,
    )
    mean, std = normalization_statistics(arrays.x, batches["train"].rows, model_cls.input_kind)
    model.set_input_normalization(mean, std)
    if side.lyrics is not None and side.lyrics_mask.any():
        with_lyrics = side.lyrics[side.lyrics_mask]
        model.set_lyrics_normalization(with_lyrics.mean(axis=0), with_lyrics.std(axis=0))
    return PreparedTraining(
        model=model,
        tracks=tracks,
        arrays=arrays,
        side=side,
        vocabulary=vocabulary,
        batches=batches,
        train_tracks=train_tracks,
        val_tracks=val_tracks,
        device=device,
        pretrained=pretrained,
    )


def _run_params(
    spec: ModelSpec, prepared: PreparedTraining, feature_key: str, fingerprint: str
) -> dict[str, Any]:
    """What the training run logs as MLflow params (nested dicts become dotted keys)."""
    model = prepared.model
    return {
        "model": spec.model,
        "model_config": model.config.model_dump(),
        "train": spec.train.model_dump(),
        "condition": spec.condition if prepared.vocabulary else None,
        "condition_classes": prepared.vocabulary,
        "feature_key": feature_key,
        "inputs": spec.inputs,
        "pretrained_key": prepared.pretrained.key if prepared.pretrained else None,
        "fingerprint": fingerprint,
        "input_shape": list(prepared.input_shape),
        "n_tracks": prepared.tracks.height,
        "n_train_tracks": len(prepared.train_tracks),
        "n_crops": len(prepared.arrays.track_index),
        "lyrics_dim": prepared.lyrics_dim,
        "device": str(prepared.device),
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def _final_metrics(outcome: TrainingOutcome) -> dict[str, float]:
    """The run's summary metrics: last value of every loss term (`final_*`), best epoch, speed."""
    final = {f"final_{k}": v[-1] for k, v in outcome.history.items() if k.endswith(_LOSS_SUFFIXES)}
    final |= {
        "best_epoch": outcome.best_epoch,
        "training_seconds": outcome.seconds,
        "examples_per_second": outcome.examples_per_second,
        "epochs_run": len(outcome.history.get("train_loss", [])),
        "stopped_early": float(outcome.stopped_early),
    }
    if np.isfinite(outcome.best_validation_loss):
        final["best_val_loss"] = outcome.best_validation_loss
    return {k: float(v) for k, v in final.items()}


def _model_card(
    spec: ModelSpec, prepared: PreparedTraining, feature_key: str, fingerprint: str, run_id: str
) -> ModelCard:
    return ModelCard(
        model=spec.model,
        config=prepared.model.config.model_dump(mode="json"),
        input_shape=prepared.input_shape,
        condition_classes=tuple(prepared.vocabulary),
        default_condition=prepared.default_condition,
        lyrics_dim=prepared.lyrics_dim,
        lyrics_encoder_id=prepared.side.lyrics_encoder_id,
        feature_key=feature_key,
        input_kind=prepared.model.input_kind,
        inputs=spec.inputs,
        pretrained=prepared.pretrained.config if prepared.pretrained else None,
        pretrained_key=prepared.pretrained.key if prepared.pretrained else None,
        method=spec.model,
        features=spec.features,
        uses_labels=spec.uses_labels,
        run_id=run_id,
        fingerprint=fingerprint,
    )


def _version_description(spec: ModelSpec, fingerprint: str, final: dict[str, float]) -> str:
    """A registered version in one line: `beta_vae [beta=4] seed 0; data 3f2a9c1d0b7e;
    best_val_loss = 1.234`."""
    metric = "best_val_loss" if "best_val_loss" in final else "final_train_loss"
    loss = f"; {metric} = {final[metric]:.4g}" if metric in final else ""
    return f"{spec.model} [{spec.features}] seed {spec.train.seed}; data {fingerprint[:12]}{loss}"


def _run_tags(spec: ModelSpec, feature_key: str, fingerprint: str) -> dict[str, str]:
    return {
        "method": spec.model,
        "features": spec.features,
        "inputs": spec.inputs,
        "uses_labels": str(spec.uses_labels).lower(),
        "fingerprint": fingerprint,
        "feature_key": feature_key,
        "stage": "train",
    }


@dataclass
class FittedModel:
    """What `fit_representation` made (its files are in the model folder), for MLflow."""

    params: dict[str, Any]
    history: dict[str, list[float]]
    final_metrics: dict[str, float]
    plots: list[Path]
    latents: Path
    files: list[Path]  # weights, card and serving description: a registered version's files


def fit_representation(
    spec: ModelSpec,
    workspace: Workspace,
    feature_key: str,
    fingerprint: str,
    run_id: str,
    *,
    pretrained_key: str | None = None,
    on_epoch: EpochCallback | None = None,
    progress: TrainingProgress | None = None,
) -> FittedModel:
    """Everything of a training but MLflow: prepare the data, train, encode every track, write
    the model folder (latents, history, plots, weights and card naming `run_id`). Runs in a
    training lane (`tasks.training.lanes`) or in the caller.

    Raises:
        NonFiniteLossError: the loss became NaN or infinite.
    """
    prepared = prepare_training(spec, workspace, feature_key, pretrained_key)
    model = prepared.model
    params = _run_params(spec, prepared, feature_key, fingerprint)
    outcome = train_model(
        model,
        prepared.batches["train"],
        prepared.validation,
        spec.train,
        on_epoch=on_epoch,
        progress=progress,
    )
    latents = encode_tracks(model, prepared.batches["all"], prepared.tracks["track_id"].to_list())
    latents_path = workspace.model_latents(spec.run_name)
    write_latents(latents, latents_path)
    workspace.model_history(spec.run_name).write_text(json.dumps(outcome.history))
    shown = prepared.validation if prepared.validation is not None else prepared.batches["all"]
    plots = _training_plots(workspace, spec.run_name, outcome.history, model, shown)
    card = _model_card(spec, prepared, feature_key, fingerprint, run_id)
    files = save_trained_model(model.cpu().eval(), card, workspace.model_dir(spec.run_name))
    return FittedModel(
        params=params,
        history=outcome.history,
        final_metrics=_final_metrics(outcome),
        plots=plots,
        latents=latents_path,
        files=files,
    )


# Cached on the spec and the data fingerprint. The parent run and experiment only say where the run
# is filed, and the epoch callback only watches: none of them may defeat the cache. Tuning trials
# call the plain function (`train_representation.fn`): each trial is a fresh configuration.
@task(
    name="train_representation",
    cache_policy=cached_on(
        "tasks.training",
        "models",
        exclude=("parent_run_id", "experiment", "on_epoch", "report_progress"),
    ),
    persist_result=True,
    task_run_name="train {spec.run_name}",
)
def train_representation(
    spec: ModelSpec,
    workspace: Workspace,
    feature_key: str,
    fingerprint: str,
    *,
    experiment: str = "training",
    parent_run_id: str | None = None,
    register: bool = True,
    on_epoch: EpochCallback | None = None,
    report_progress: bool = True,
    pretrained_key: str | None = None,
) -> TrainOutput:
    """Train `spec.model` on the ok tracks of the work dir, encode all tracks, log to MLflow.

    A spec on pretrained inputs reads the pretrained store of the work dir's last ingest;
    `pretrained_key` (the ingest's `pretrained_key`) names the store it must be, and is part of
    the cache key, so that a new network configuration trains again.

    Writes the model folder (card, safetensors weights, latents, history, plots), logs metrics,
    plots and latents to a new run of `experiment`, logs the card and weights as the run's
    `model/` folder and, with `register`, registers it as a version of `vaemusic-<model>`.
    The training itself runs in a free training lane when the caller opened lanes
    (`tasks.training.lanes.open_lanes`) and no epoch callback watches it; else here.

    Raises:
        NonFiniteLossError: the loss became NaN or infinite (the run is marked FAILED).
        FileNotFoundError: a spec on pretrained inputs, and no such store in the work dir.
    """
    tags = _run_tags(spec, feature_key, fingerprint)
    with tracked_run(experiment, spec.run_name, parent_run_id=parent_run_id, tags=tags) as run_id:
        # A line every few epochs (and a bar at a terminal, not from lanes running side by
        # side); tuning trials stay quiet.
        progress = None
        if report_progress:
            progress = TrainingProgress(label=spec.run_name, bar=False if lanes_open() else None)
        fit = dict(pretrained_key=pretrained_key, progress=progress)
        if on_epoch is None:
            fitted = run_in_lane(
                fit_representation, spec, workspace, feature_key, fingerprint, run_id, **fit
            )
        else:  # the callback lives in this process
            fitted = fit_representation(
                spec, workspace, feature_key, fingerprint, run_id, on_epoch=on_epoch, **fit
            )
        final = fitted.final_metrics
        log_params(run_id, fitted.params)
        log_metric_histories(run_id, fitted.history)
        log_metrics(run_id, final)
        for plot in fitted.plots:
            log_artifact(run_id, plot, "plots")
        log_artifact(run_id, fitted.latents)
        model_uri = log_model_folder(run_id, fitted.files)
        version = None
        if register:
            # Same weights and card as a registered version (a retrain on unchanged data):
            # that version is returned, and the registry does not grow.
            version = register_model(
                model_uri,
                f"{REGISTERED_PREFIX}-{spec.model}",
                digest=content_digest(fitted.files),
                description=_version_description(spec, fingerprint, final),
            )
            set_tags(run_id, {"registered_version": version})
    return TrainOutput(
        run_id=run_id,
        model_uri=model_uri,
        model_dir=workspace.model_dir(spec.run_name),
        latents=fitted.latents,
        registered_version=version,
        method=spec.model,
        features=spec.features,
        uses_labels=spec.uses_labels,
        final_metrics=final,
    )
