"""Training flow: ingest (cached) -> lyrics if the model uses them -> train -> encode -> MLflow."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_run_logger
from pydantic import BaseModel, ConfigDict, Field

from flows.ingest import IngestConfig, ingest_flow
from tasks.discovery import CollectionPath
from tasks.features import FeatureConfig
from tasks.representation import ModelSpec, TrainOutput, needs_lyrics, train_representation
from tasks.training import TrainConfig

ModelName = Literal["ae", "mlp_vae", "conv_vae", "beta_vae", "cvae", "vade", "multimodal_vae"]


class TrainFlowConfig(BaseModel):
    """Parameters of the training flow (rendered as a form in the Prefect dashboard)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: ModelName = Field(description="Which model of the zoo to train.")
    data: CollectionPath = Field(description="A GTZAN-layout folder or a manifest (.csv/.parquet).")
    workdir: Path = Field(Path("workdir"), description="Work directory.")
    overrides: dict[str, Any] = Field(
        default_factory=dict, description="Model config overrides, e.g. {'beta': 4}."
    )
    train: TrainConfig = Field(default_factory=TrainConfig)
    condition: Literal["language", "genre"] = Field(
        "language", description="CVAE condition (genre uses labels; the run is marked so)."
    )
    features: FeatureConfig = Field(default_factory=FeatureConfig)
    features_label: str = Field("", description="Variant name shown in reports.")
    register_version: bool = Field(True, description="Register the model in the MLflow registry.")
    experiment: str = Field("training", description="MLflow experiment.")
    parent_run_id: str | None = Field(None, description="MLflow parent run (pipeline).")


@flow(name="train", flow_run_name="train {config.model} on {config.data.name}", log_prints=True)
def train_flow(config: TrainFlowConfig) -> TrainOutput:
    logger = get_run_logger()
    ingested = ingest_flow(
        IngestConfig(data=config.data, workdir=config.workdir, features=config.features)
    )
    if needs_lyrics(config.model, config.condition):
        from flows.lyrics import LyricsConfig, lyrics_flow

        lyrics_flow(LyricsConfig(data=config.data, workdir=config.workdir))
    spec = ModelSpec(
        model=config.model,
        overrides=config.overrides,
        train=config.train,
        condition=config.condition,
        # Runs with different overrides must not share a name (and a model folder).
        features_label=config.features_label
        or ", ".join(f"{key}={value}" for key, value in sorted(config.overrides.items())),
    )
    output = train_representation(
        spec,
        ingested.workspace,
        ingested.feature_key,
        ingested.fingerprint,
        experiment=config.experiment,
        parent_run_id=config.parent_run_id,
        register=config.register_version,
    )
    losses = ", ".join(
        f"{k}={v:.3g}"
        for k, v in output.final_metrics.items()
        if k.startswith("final_") and k.endswith("loss")
    )
    logger.info(
        "trained %s: %s; MLflow run %s, latents %s",
        config.model,
        losses,
        output.run_id,
        output.latents,
    )
    return output
