"""Training flow: ingest (cached) -> lyrics if the model uses them -> train -> encode -> MLflow."""

from __future__ import annotations

from prefect import flow, get_run_logger
from pydantic import BaseModel, ConfigDict, Field

from flows.ingest import IngestConfig, ingest_flow
from models.zoo import needs_lyrics
from tasks.audio.discovery import CollectionPath
from tasks.audio.features import FeatureConfig
from tasks.audio.pretrained import PretrainedConfig
from tasks.audio.pretrained_store import recorded_pretrained_config
from tasks.core.runners import on_callers_cluster
from tasks.core.workspace import DEFAULT_WORKDIR, WorkdirPath, Workspace
from tasks.training.representation import ModelSpec, TrainOutput, train_representation


class TrainFlowConfig(BaseModel):
    """Parameters of the training flow (rendered as a form in the Prefect dashboard)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data: CollectionPath = Field(description="A GTZAN-layout folder or a manifest (.csv/.parquet).")
    workdir: WorkdirPath = DEFAULT_WORKDIR
    spec: ModelSpec = Field(
        description="What to train: the model, its overrides, the trainer settings, the condition."
    )
    features: FeatureConfig = Field(default_factory=FeatureConfig)
    pretrained: PretrainedConfig | None = Field(
        None,
        description="The pretrained network's settings; empty: those the work dir's ingest used "
        "(its pretrained.json), else the defaults (every patch).",
    )
    register_version: bool = Field(True, description="Register the model in the MLflow registry.")
    experiment: str = Field("training", description="MLflow experiment.")
    parent_run_id: str | None = Field(None, description="MLflow parent run (pipeline).")


@flow(
    name="train",
    flow_run_name="train {config.spec.model} on {config.data.name}",
    log_prints=True,
)
def train_flow(config: TrainFlowConfig) -> TrainOutput:
    """Ingest (cached), run the lyrics stage when the model needs it, train and register."""
    logger = get_run_logger()
    pretrained = config.pretrained or recorded_pretrained_config(Workspace.open(config.workdir))
    ingested = on_callers_cluster(ingest_flow)(
        IngestConfig(
            data=config.data,
            workdir=config.workdir,
            features=config.features,
            pretrained=pretrained,
        )
    )
    if needs_lyrics(config.spec.model, config.spec.condition):
        from flows.lyrics import LyricsConfig, lyrics_flow

        on_callers_cluster(lyrics_flow)(LyricsConfig(data=config.data, workdir=config.workdir))
    # Submitted: on a Dask cluster the training runs on a worker.
    output = train_representation.submit(
        config.spec,
        ingested.workspace,
        ingested.feature_key,
        ingested.fingerprint,
        pretrained_key=ingested.pretrained_key,
        experiment=config.experiment,
        parent_run_id=config.parent_run_id,
        register=config.register_version,
    ).result()
    logger.info(
        "trained %s: %s; MLflow run %s, latents %s",
        config.spec.model,
        output.loss_summary,
        output.run_id,
        output.latents,
    )
    return output
