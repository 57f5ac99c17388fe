"""The full pipeline: (demo data) -> ingest -> lyrics -> train every method -> evaluate.

Every step is a cached task or a flow of cached tasks, so a second run on unchanged data only
re-renders the report. `quick` finishes the demo in minutes on a 2-core CPU; `full` uses the
settings a paper would (more epochs, three training seeds, the full-size conv VAE).
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from pydantic import BaseModel, ConfigDict, Field

from flows.evaluate import EvaluateConfig, EvaluateResult, evaluate_flow
from flows.ingest import IngestConfig, ingest_flow
from flows.lyrics import LyricsConfig, lyrics_flow
from registry.tracking import log_params, set_tags, tracked_run
from tasks.audio.discovery import CollectionPath
from tasks.audio.features import FeatureConfig
from tasks.core.workspace import DEFAULT_WORKDIR, WorkdirPath, Workspace
from tasks.demo.collection import demo_collection
from tasks.demo.writer import DemoSettings
from tasks.evaluation.plots import MapMethod
from tasks.evaluation.representations import read_labels
from tasks.training.comparison import Profile, model_specs
from tasks.training.representation import train_representation


class PipelineConfig(BaseModel):
    """Parameters of the whole pipeline (rendered as a form in the Prefect dashboard)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data: CollectionPath | None = Field(
        None, description="Your collection; empty = the built-in demo set."
    )
    workdir: WorkdirPath = DEFAULT_WORKDIR
    profile: Profile = Field("quick", description="quick (minutes on a CPU) or full (paper).")
    demo: DemoSettings = Field(
        default_factory=DemoSettings, description="The built-in demo set, used when data is empty."
    )
    # Declared by the evaluation's config, which receives them.
    evaluation_seeds: int = EvaluateConfig.model_fields["seeds"]
    n_clusters: int | None = EvaluateConfig.model_fields["n_clusters"]
    features: FeatureConfig = Field(default_factory=FeatureConfig)
    maps: list[MapMethod] = EvaluateConfig.model_fields["maps"]
    max_epochs: int | None = Field(
        None, ge=1, description="Cap on every model's epochs (smoke tests, quick looks)."
    )


@flow(name="pipeline", flow_run_name="pipeline {config.profile}", log_prints=True)
def pipeline_flow(config: PipelineConfig) -> EvaluateResult:
    logger = get_run_logger()
    workspace = Workspace.open(config.workdir)
    workdir = workspace.root
    data = config.data or demo_collection(workspace.demo_data, config.demo)
    ingested = ingest_flow(IngestConfig(data=data, workdir=workdir, features=config.features))
    lyrics = lyrics_flow(LyricsConfig(data=data, workdir=workdir))

    specs = model_specs(
        config.profile,
        config.max_epochs,
        config.n_clusters or read_labels(ingested.workspace).default_n_clusters,
        with_lyrics=lyrics.n_with_lyrics > 0,
    )
    if lyrics.n_with_lyrics == 0:
        logger.info("no track has lyrics: skipping the models that use them")
    with tracked_run(
        "pipeline",
        f"pipeline {config.profile} {Path(data).name}",
        tags={"fingerprint": ingested.fingerprint, "stage": "pipeline"},
    ) as run_id:
        log_params(
            run_id,
            {
                "data": str(data),
                "workdir": str(workdir),
                "profile": config.profile,
                "methods": len(specs),
                "fingerprint": ingested.fingerprint,
            },
        )
        for spec in specs:
            output = train_representation(
                spec,
                ingested.workspace,
                ingested.feature_key,
                ingested.fingerprint,
                parent_run_id=run_id,
            )
            logger.info("%s [%s]: run %s", spec.model, output.features, output.run_id)
        result = evaluate_flow(
            EvaluateConfig(
                data=data,
                workdir=workdir,
                seeds=config.evaluation_seeds,
                n_clusters=config.n_clusters,
                maps=config.maps,
                parent_run_id=run_id,
            )
        )
        set_tags(
            run_id,
            {
                "best": f"{result.best.get('method')} [{result.best.get('features')}]"
                f" {result.best.get('algorithm')}"
            },
        )
    print(result.summary)
    return result
