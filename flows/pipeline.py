"""The full pipeline: (demo data) -> ingest -> lyrics -> train every method -> evaluate.

Every step is a cached task or a flow of cached tasks, so a second run on unchanged data only
re-renders the report. `quick` finishes the demo in minutes on a 2-core CPU; `full` uses the
settings a paper would (more epochs, three training seeds, the full-size conv VAE).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import polars as pl
from prefect import flow, get_run_logger, task
from pydantic import BaseModel, ConfigDict, Field

from flows.evaluate import EvaluateConfig, EvaluateResult, evaluate_flow
from flows.ingest import IngestConfig, ingest_flow
from flows.lyrics import LyricsConfig, lyrics_flow
from models.zoo import model_class
from registry.tracking import log_params, set_tags, tracked_run
from tasks.caching import cached_on
from tasks.discovery import CollectionPath
from tasks.features import FeatureConfig
from tasks.representation import ModelSpec, train_representation
from tasks.training import TrainConfig

Profile = Literal["quick", "full"]
BETAS = (0.5, 1.0, 2.0, 4.0)
FUSIONS = ("early", "late", "attention", "weighted")


class PipelineConfig(BaseModel):
    """Parameters of the whole pipeline (rendered as a form in the Prefect dashboard)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data: CollectionPath | None = Field(
        None, description="Your collection; empty = the built-in demo set."
    )
    workdir: Path = Field(Path("workdir"), description="Work directory.")
    profile: Profile = Field("quick", description="quick (minutes on a CPU) or full (paper).")
    demo_tracks: int = Field(120, ge=8, description="Size of the generated demo set.")
    evaluation_seeds: int = Field(3, ge=1, description="Clustering seeds per configuration.")
    n_clusters: int | None = Field(None, ge=2, description="Empty = number of genres.")
    demo_duration_s: float = Field(30.0, gt=0, description="Clip length of the demo set (s).")
    features: FeatureConfig = Field(default_factory=FeatureConfig)
    maps: list[Literal["umap", "tsne"]] = Field(
        default_factory=lambda: ["umap", "tsne"], description="2-D maps drawn per method."
    )
    max_epochs: int | None = Field(
        None, ge=1, description="Cap on every model's epochs (smoke tests, quick looks)."
    )


def model_specs(
    profile: Profile, max_epochs: int | None = None, n_clusters: int | None = None
) -> list[ModelSpec]:
    """Every method of the comparison with the training settings of the profile."""
    quick = profile == "quick"
    seeds = (0,) if quick else (0, 1, 2)
    mlp = dict(epochs=60 if quick else 200, patience=10 if quick else 20)
    conv = dict(epochs=8 if quick else 60, patience=4 if quick else 12, batch_size=32)
    conv_overrides = {"channels": [16, 32, 64, 128]} if quick else {}
    if max_epochs is not None:
        mlp["epochs"] = min(mlp["epochs"], max_epochs)
        conv["epochs"] = min(conv["epochs"], max_epochs)
    specs = []
    for seed in seeds:
        train = TrainConfig(seed=seed, **mlp)
        specs += [
            ModelSpec(model="ae", train=train),
            ModelSpec(model="mlp_vae", train=train, features_label="audio_only"),
            *[
                ModelSpec(
                    model="beta_vae",
                    train=train,
                    overrides={"beta": beta},
                    features_label=f"beta={beta:g}",
                )
                for beta in BETAS
            ],
            ModelSpec(model="cvae", train=train, features_label="condition=language"),
            # Conditioned on the genre labels: reported, never ranked with unsupervised rows.
            ModelSpec(
                model="cvae", train=train, condition="genre", features_label="condition=genre"
            ),
            # VaDE's mixture gets as many components as clusters are asked of every method.
            ModelSpec(
                model="vade",
                train=train,
                overrides={"n_components": n_clusters} if n_clusters else {},
            ),
            *[
                ModelSpec(
                    model="multimodal_vae",
                    train=train,
                    overrides={"fusion": fusion},
                    features_label=f"fusion={fusion}, audio+lyrics",
                )
                for fusion in FUSIONS
            ],
            ModelSpec(
                model="multimodal_vae",
                train=train,
                overrides={"fusion": "late"},
                audio_only=True,
                features_label="fusion=late, audio_only",
            ),
            ModelSpec(
                model="conv_vae",
                train=TrainConfig(seed=seed, **conv),
                overrides=conv_overrides,
                features_label="log-mel crops",
            ),
        ]
    return specs


@task(cache_policy=cached_on("tasks.demo_data", "tasks.demo_lyrics"), persist_result=True)
def demo_collection(out_dir: Path, tracks: int, duration_s: float, seed: int = 0) -> Path:
    """Generate the built-in demo collection (once; cached on its size and seed)."""
    from tasks.demo_data import generate_demo_dataset

    return generate_demo_dataset(out_dir, tracks=tracks, seed=seed, duration_s=duration_s).root


@flow(name="pipeline", flow_run_name="pipeline {config.profile}", log_prints=True)
def pipeline_flow(config: PipelineConfig) -> EvaluateResult:
    logger = get_run_logger()
    workdir = config.workdir.expanduser().resolve()
    data = config.data or demo_collection(
        workdir / "demo-data", config.demo_tracks, config.demo_duration_s
    )
    ingested = ingest_flow(IngestConfig(data=data, workdir=workdir, features=config.features))
    lyrics = lyrics_flow(LyricsConfig(data=data, workdir=workdir))

    n_genres = (
        pl.read_parquet(ingested.workspace.tracks_table)
        .filter(pl.col("status") == "ok")["genre"]
        .drop_nulls()
        .n_unique()
    )
    specs = model_specs(
        config.profile,
        config.max_epochs,
        config.n_clusters or (n_genres if n_genres >= 2 else None),
    )
    if lyrics.n_with_lyrics == 0:
        # An instrumental collection: the lyrics models have nothing to fuse (and cannot be built
        # when the lyrics encoder never saw text, lyrics_dim = 0); the audio models still run.
        logger.info("no track has lyrics: skipping the models that use them")
        specs = [spec for spec in specs if not model_class(spec.model).uses_lyrics]
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
