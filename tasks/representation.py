"""Train one representation model on the feature store, encode every track, log it all to MLflow.

The task is cached on its inputs (model spec, data fingerprint, feature key, work dir id): a
pipeline re-run on unchanged data does not retrain, it returns the same run and files.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
import torch
from prefect import task
from pydantic import BaseModel, ConfigDict, Field

from models.base import RepresentationModel
from models.serving import LatentEncoder
from models.zoo import build_model, model_class
from registry.models import log_torch_model, register_model
from registry.tracking import (
    log_artifact,
    log_metric_history,
    log_metrics,
    log_params,
    set_tags,
    tracked_run,
)
from tasks.caching import cached_on
from tasks.features import resolve_device
from tasks.ingest import usable_tracks
from tasks.training import (
    EpochCallback,
    TrackLatents,
    TrainConfig,
    encode_tracks,
    seed_everything,
    train_model,
)
from tasks.training_data import (
    CropArrays,
    CropBatches,
    TrackSideInformation,
    gather_crops,
    normalization_statistics,
    split_tracks,
)
from tasks.workspace import Workspace

REGISTERED_PREFIX = "vaemusic"


class ModelSpec(BaseModel):
    """What to train: a zoo model, its overrides, the side information it uses."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(
        description="Model-zoo name (ae, mlp_vae, conv_vae, beta_vae, cvae, vade, multimodal_vae)."
    )
    overrides: dict[str, Any] = Field(default_factory=dict, description="Model config overrides.")
    train: TrainConfig = Field(default_factory=TrainConfig)
    condition: Literal["language", "genre"] = Field(
        "language", description="CVAE condition; 'genre' uses labels and marks the run so."
    )
    features_label: str = Field("", description="Variant shown in reports (e.g. 'beta=4').")
    audio_only: bool = Field(
        False,
        description="Multimodal model trained with every track's lyrics masked out: the "
        "audio-only control of the same architecture.",
    )

    @property
    def uses_labels(self) -> bool:
        return model_class(self.model).uses_condition and self.condition == "genre"

    @property
    def run_name(self) -> str:
        """Also the model folder's name: only characters that are safe in paths and globs."""
        parts = [self.model, self.features_label, f"seed{self.train.seed}"]
        name = "-".join(p.replace("=", "").replace("+", "_") for p in parts if p)
        return re.sub(r"[^A-Za-z0-9_.,-]+", "_", name)


class TrainOutput(BaseModel):
    """Where a trained model's products are."""

    run_id: str
    model_uri: str
    model_dir: Path
    latents: Path
    registered_version: str | None = None
    method: str
    features: str
    uses_labels: bool
    final_metrics: dict[str, float]


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


def needs_lyrics(model: str, condition: str) -> bool:
    """Whether training `model` needs the lyrics stage first (lyrics embeddings, or the detected
    language as the CVAE condition)."""
    cls = model_class(model)
    return cls.uses_lyrics or (cls.uses_condition and condition == "language")


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
        values = [v if v is not None else "none" for v in values]
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
    from tasks.plots import reconstruction_examples, training_curves

    out = workspace.model_dir(run_name)
    curves = {k: v for k, v in history.items() if k.endswith(("_loss", "_reconstruction", "_kl"))}
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


def prepare_training(spec: ModelSpec, workspace: Workspace, feature_key: str) -> PreparedTraining:
    """Crops and side information of the ok tracks, the track split, batches, and the model with
    input (and lyrics) normalisation from the training tracks alone."""
    model_cls = model_class(spec.model)
    tracks = usable_tracks(workspace)
    arrays = gather_crops(
        workspace,
        feature_key,
        tracks["track_id"].to_list(),
        tracks["sha256"].to_list(),
        model_cls.input_kind,
    )
    side, vocabulary = side_information(model_cls, spec, workspace, tracks)
    seed_everything(spec.train.seed)
    device = resolve_device(spec.train.device)
    train_tracks, val_tracks = split_tracks(
        tracks.height, spec.train.validation_fraction, spec.train.seed
    )
    batches = {
        name: CropBatches(
            arrays,
            rows,
            side,
            batch_size=spec.train.batch_size,
            shuffle=name == "train",
            device=device,
            seed=spec.train.seed,
        )
        for name, rows in (
            ("train", train_tracks),
            ("val", val_tracks),
            ("all", np.arange(tracks.height)),
        )
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
    )


def train_and_encode(
    spec: ModelSpec,
    workspace: Workspace,
    feature_key: str,
    fingerprint: str,
    *,
    experiment: str = "training",
    parent_run_id: str | None = None,
    register: bool = True,
    on_epoch: EpochCallback | None = None,
) -> TrainOutput:
    """Train `spec.model` on the ok tracks of the work dir, encode all tracks, log to MLflow."""
    prepared = prepare_training(spec, workspace, feature_key)
    model, tracks, arrays, side = prepared.model, prepared.tracks, prepared.arrays, prepared.side
    vocabulary, batches, device = prepared.vocabulary, prepared.batches, prepared.device
    train_tracks, val_tracks = prepared.train_tracks, prepared.val_tracks
    model_cls = model_class(spec.model)
    input_shape = tuple(arrays.x.shape[1:])
    lyrics_dim = side.lyrics.shape[1] if side.lyrics is not None else 0

    tags = {
        "method": spec.model,
        "features": spec.features_label or "default",
        "uses_labels": str(spec.uses_labels).lower(),
        "fingerprint": fingerprint,
        "feature_key": feature_key,
        "stage": "train",
    }
    with tracked_run(experiment, spec.run_name, parent_run_id=parent_run_id, tags=tags) as run_id:
        log_params(
            run_id,
            {
                "model": spec.model,
                "model_config": model.config.model_dump(),
                "train": spec.train.model_dump(),
                "condition": spec.condition if vocabulary else None,
                "condition_classes": vocabulary,
                "feature_key": feature_key,
                "fingerprint": fingerprint,
                "input_shape": list(input_shape),
                "n_tracks": tracks.height,
                "n_train_tracks": len(train_tracks),
                "n_crops": len(arrays.track_index),
                "lyrics_dim": lyrics_dim,
                "device": str(device),
                "parameters": sum(p.numel() for p in model.parameters()),
            },
        )
        outcome = train_model(
            model,
            batches["train"],
            batches["val"] if len(val_tracks) else None,
            spec.train,
            on_epoch=on_epoch,
        )
        latents = encode_tracks(model, batches["all"], tracks["track_id"].to_list())

        out = workspace.model_dir(spec.run_name)
        latents_path = out / "latents.parquet"
        write_latents(latents, latents_path)
        (out / "history.json").write_text(json.dumps(outcome.history))
        torch.save(model.state_dict(), out / "model.pt")
        most_common = Counter(side.condition.tolist()).most_common(1)[0][0] if vocabulary else 0
        description = {
            "model": spec.model,
            "config": model.config.model_dump(mode="json"),
            "input_shape": list(input_shape),
            "condition_classes": vocabulary,
            "default_condition": most_common,
            "lyrics_dim": lyrics_dim,
            "lyrics_encoder_id": side.lyrics_encoder_id,
            "feature_key": feature_key,
            "input_kind": model_cls.input_kind,
            "method": spec.model,
            "features": spec.features_label or "default",
            "uses_labels": spec.uses_labels,
            "run_id": run_id,
            "fingerprint": fingerprint,
        }
        (out / "model.json").write_text(json.dumps(description, indent=2))

        for name, values in outcome.history.items():
            log_metric_history(run_id, name, values)
        final = {
            f"final_{k}": v[-1]
            for k, v in outcome.history.items()
            if k.endswith(("_loss", "_reconstruction", "_kl"))
        }
        final |= {
            "best_epoch": outcome.best_epoch,
            "training_seconds": outcome.seconds,
            "examples_per_second": outcome.examples_per_second,
            "epochs_run": len(outcome.history.get("train_loss", [])),
            "stopped_early": float(outcome.stopped_early),
        }
        if np.isfinite(outcome.best_validation_loss):
            final["best_val_loss"] = outcome.best_validation_loss
        log_metrics(run_id, final)
        for plot in _training_plots(
            workspace,
            spec.run_name,
            outcome.history,
            model,
            batches["val"] if len(val_tracks) else batches["all"],
        ):
            log_artifact(run_id, plot, "plots")
        log_artifact(run_id, latents_path)
        log_artifact(run_id, out / "model.json")

        model = model.cpu().eval()
        encoder = LatentEncoder(model, default_condition=most_common)
        example = np.array(arrays.x[:2], dtype=np.float32)
        with torch.no_grad():
            output_example = encoder(torch.from_numpy(example)).numpy()
        model_uri = log_torch_model(
            run_id,
            encoder,
            input_example=example,
            output_example=output_example,
            extra_files=[out / "model.json"],
        )
        version = None
        if register:
            version = register_model(model_uri, f"{REGISTERED_PREFIX}-{spec.model}")
            set_tags(run_id, {"registered_version": version})
    return TrainOutput(
        run_id=run_id,
        model_uri=model_uri,
        model_dir=out,
        latents=latents_path,
        registered_version=version,
        method=spec.model,
        features=spec.features_label or "default",
        uses_labels=spec.uses_labels,
        final_metrics={k: float(v) for k, v in final.items()},
    )


# The parent run and experiment only say where the run is filed; they must not defeat the cache.
@task(
    cache_policy=cached_on(
        "tasks.representation",
        "tasks.training",
        "tasks.training_data",
        "models",
        exclude=("parent_run_id", "experiment"),
    ),
    persist_result=True,
    task_run_name="train {spec.run_name}",
)
def train_representation(
    spec: ModelSpec,
    workspace: Workspace,
    feature_key: str,
    fingerprint: str,
    experiment: str = "training",
    parent_run_id: str | None = None,
    register: bool = True,
) -> TrainOutput:
    """Prefect task around `train_and_encode` (cached on the spec and the data fingerprint)."""
    return train_and_encode(
        spec,
        workspace,
        feature_key,
        fingerprint,
        experiment=experiment,
        parent_run_id=parent_run_id,
        register=register,
    )


def load_trained_model(model_dir: Path) -> tuple[RepresentationModel, dict[str, Any]]:
    """Rebuild a trained model from its folder (model.json + weights-only model.pt), on the CPU."""
    description = json.loads((model_dir / "model.json").read_text())
    model = build_model(
        description["model"],
        input_shape=tuple(description["input_shape"]),
        overrides=description["config"],
        n_conditions=len(description["condition_classes"]),
        lyrics_dim=description["lyrics_dim"],
    )
    state = torch.load(model_dir / "model.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval(), description
