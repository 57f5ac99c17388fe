"""The full pipeline: (demo data) -> ingest -> lyrics -> train every method -> evaluate.

Every step is a cached task or a flow of cached tasks, so a second run on unchanged data only
re-renders the report. `quick` finishes the demo in minutes on a 2-core CPU; `full` uses the
settings a paper would (more epochs, three training seeds, the full-size conv VAE).
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel, ConfigDict, Field

from flows.evaluate import EvaluateConfig, EvaluateResult, evaluate_flow
from flows.ingest import IngestConfig, IngestResult, ingest_flow
from flows.lyrics import LyricsConfig, lyrics_flow
from registry.tracking import log_params, set_tags, tracked_run, tracking_uri
from tasks.audio.discovery import CollectionPath, SourceSettings
from tasks.audio.features import FeatureConfig
from tasks.core.artifacts import publish_pipeline_artifacts
from tasks.core.errors import RunFailure
from tasks.core.runners import on_callers_cluster, runs_on_threads
from tasks.core.workspace import DEFAULT_WORKDIR, WorkdirPath, Workspace
from tasks.demo.collection import demo_collection
from tasks.demo.writer import DemoSettings
from tasks.evaluation.plots import MapMethod
from tasks.evaluation.representations import read_labels
from tasks.evaluation.tracking import log_pipeline_outcome
from tasks.training.comparison import Profile, model_specs, pretrained_config, profile_maps
from tasks.training.lanes import default_lanes, open_lanes
from tasks.training.representation import ModelSpec, train_representation
from tasks.training.trainer import NonFiniteLossError


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
    sources: SourceSettings = Field(default_factory=SourceSettings)
    maps: list[MapMethod] | None = Field(
        None,
        description="2-D maps drawn per representation; empty: the profile's (quick: UMAP, "
        "full: UMAP and t-SNE).",
    )
    max_epochs: int | None = Field(
        None, ge=1, description="Cap on every model's epochs (smoke tests, quick looks)."
    )


EXPERIMENT = "pipeline"


@flow(
    name="pipeline",
    flow_run_name="pipeline {config.profile}",
    log_prints=True,
    # One thread per training lane: the trainings it submits run that many at a time.
    task_runner=ThreadPoolTaskRunner(max_workers=default_lanes()),
)
def pipeline_flow(config: PipelineConfig) -> EvaluateResult:
    """Run every stage under one MLflow parent run (experiment "pipeline"): the ingest, lyrics,
    training and evaluation runs are nested under it, and it carries the headline and the
    report (`tasks.evaluation.tracking.log_pipeline_outcome`)."""
    logger = get_run_logger()
    workspace = Workspace.open(config.workdir)
    workdir = workspace.root
    data = config.data or demo_collection(workspace.demo_data, config.demo)
    with tracked_run(
        EXPERIMENT, f"pipeline {config.profile} {Path(data).name}", tags={"stage": "pipeline"}
    ) as run_id:
        ingested = on_callers_cluster(ingest_flow)(
            IngestConfig(
                data=data,
                workdir=workdir,
                features=config.features,
                # The pretrained network's patch cap is the profile's: quick runs a few patches
                # per track, full every one.
                pretrained=pretrained_config(config.profile),
                sources=config.sources,
                parent_run_id=run_id,
            )
        )
        lyrics = on_callers_cluster(lyrics_flow)(
            LyricsConfig(data=data, workdir=workdir, sources=config.sources, parent_run_id=run_id)
        )
        specs = model_specs(
            config.profile,
            config.max_epochs,
            config.n_clusters or read_labels(ingested.workspace).default_n_clusters,
            with_lyrics=lyrics.n_with_lyrics > 0,
        )
        if lyrics.n_with_lyrics == 0:
            logger.info("no track has lyrics: skipping the models that use them")
        set_tags(run_id, {"fingerprint": ingested.fingerprint})
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
        # Worker lanes (on this process's threads only: a cluster's workers each work on their
        # own), open once for the trainings and the evaluation's figures.
        with open_lanes(None if runs_on_threads() else 1):
            training_runs, diverged = _train_each(specs, ingested, run_id)
            if diverged and not training_runs:
                raise RunFailure(f"every training diverged: {'; '.join(diverged.values())}")
            result = on_callers_cluster(evaluate_flow)(
                EvaluateConfig(
                    data=data,
                    workdir=workdir,
                    seeds=config.evaluation_seeds,
                    n_clusters=config.n_clusters,
                    maps=profile_maps(config.profile, config.maps),
                    parent_run_id=run_id,
                )
            )
        log_pipeline_outcome(
            run_id,
            comparison=result.comparison,
            best=result.best,
            reports=result.reports,
            workspace=workspace,
            training_runs=training_runs,
        )
    publish_pipeline_artifacts(
        workspace=workspace,
        comparison=result.comparison,
        reports=result.reports,
        run_id=run_id,
        evaluation_run_id=result.run_id,
        training_runs=training_runs,
        champion_version=result.champion_version,
        tracking_uri=tracking_uri(),
    )
    print(result.summary)
    for name, message in diverged.items():
        print(f"left out (training diverged): {name}: {message}")
    return result


def _train_each(
    specs: list[ModelSpec], ingested: IngestResult, parent_run_id: str
) -> tuple[dict[str, str], dict[str, str]]:
    """Train every model of the comparison, as many at once as there are lanes (the flow's
    thread runner has one thread per lane) or workers of the Dask cluster: (MLflow run id by run
    name, the message of each training that diverged). A diverged model is left out; the others
    go on."""
    logger = get_run_logger()
    training_runs, diverged = {}, {}
    submitted = [
        train_representation.submit(
            spec,
            ingested.workspace,
            ingested.feature_key,
            ingested.fingerprint,
            parent_run_id=parent_run_id,
            pretrained_key=ingested.pretrained_key,
        )
        for spec in specs
    ]
    for spec, future in zip(specs, submitted, strict=True):
        try:
            output = future.result()
        except NonFiniteLossError as error:
            diverged[spec.run_name] = str(error)
            logger.warning("%s left out of the comparison: %s", spec.run_name, error)
            continue
        training_runs[spec.run_name] = output.run_id
        logger.info("%s [%s]: run %s", spec.model, output.features, output.run_id)
    return training_runs, diverged
