"""Predict flow: new tracks -> same validation and features -> champion encoder -> clusters.

Fetches the registered model (`vaemusic@champion` by default) with its fitted clustering and the
collection's reference latents, ingests the new files into a separate work dir (default
`WORKDIR/predict`, so the collection's tables are untouched) with the champion's feature
settings, encodes them, assigns each to a cluster and lists its nearest tracks of the collection.
Writes `predictions.csv` (path, track_id, cluster, score, score_kind, nearest_tracks,
used_lyrics, reason; quarantined files have a null cluster and their reason) and logs the run to
MLflow (experiment "predict").
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import polars as pl
from prefect import flow, get_run_logger
from pydantic import BaseModel, ConfigDict, Field

from flows.ingest import IngestConfig, ingest_flow
from registry.tracking import log_artifact, log_metrics, log_params, set_tags, tracked_run
from tasks.audio import AudioConfig
from tasks.lyrics.embedding import EncoderSettings, read_lyrics_embeddings, resolve_encoder
from tasks.prediction import (
    ChampionPackage,
    PredictionError,
    SideInputs,
    cluster_counts,
    encode_with_champion_task,
    fetch_champion_task,
    format_predictions,
    language_conditions,
    lyrics_plan,
    model_version_of,
    prediction_source,
    predictions_table,
    resolve_model_uri,
    trained_lyrics_encoder_id,
)
from tasks.workspace import Workspace

EXPERIMENT = "predict"


class PredictConfig(BaseModel):
    """Parameters of the predict flow (rendered as a form in the Prefect dashboard)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data: Path = Field(description="One audio file, a folder of audio, or a manifest (.csv).")
    workdir: Path = Field(
        Path("workdir"), description="The collection's work dir (predictions go to its predict/)."
    )
    predict_dir: Path | None = Field(
        None, description="Work dir of the prediction; empty = WORKDIR/predict."
    )
    model: str = Field(
        "vaemusic@champion", description="NAME@ALIAS, or a models:/ or runs:/ MLflow URI."
    )
    out: Path | None = Field(
        None, description="Predictions CSV; empty = PREDICT_DIR/predictions.csv."
    )
    lyrics: Path | None = Field(
        None,
        description="Lyrics of the new tracks (folder of .txt/.lrc, a table or one file); "
        "empty = DATA/lyrics/ and the manifest's lyrics columns. Used by a multimodal champion "
        "only with the lyrics encoder it was trained with.",
    )
    lyrics_encoder: EncoderSettings = Field(default_factory=EncoderSettings)
    audio: AudioConfig | None = Field(
        None, description="Validation settings; empty = defaults at the champion's sample rate."
    )
    n_nearest: int = Field(5, ge=0, le=100, description="Nearest collection tracks listed.")
    workers: int = Field(0, ge=0, description="Parallel decoders; 0 = one per CPU core.")

    @property
    def predict_root(self) -> Path:
        return (self.predict_dir or Path(self.workdir) / "predict").expanduser().resolve()


class PredictResult(BaseModel):
    run_id: str = Field(description="MLflow run id (experiment 'predict').")
    predictions: Path
    model_uri: str
    model_version: str | None
    n_tracks: int
    n_assigned: int
    n_quarantined: int
    n_used_lyrics: int
    table: str = Field(description="The predictions as a text table, for the terminal.")


def _side_inputs(
    config: PredictConfig,
    package: ChampionPackage,
    source: Path,
    workspace: Workspace,
    track_ids: list[str],
    logger,
) -> SideInputs:
    """Lyrics (multimodal champion) or language conditions (CVAE champion) of the new tracks."""
    if package.uses_lyrics:
        plan = lyrics_plan(
            package.description,
            trained_lyrics_encoder_id(package.description, Path(config.workdir).resolve()),
            resolve_encoder(config.lyrics_encoder),
        )
        logger.info("multimodal champion: %s", plan.message)
        if not plan.use_lyrics:
            return SideInputs()
    elif not package.uses_language_condition:
        return SideInputs()

    from flows.lyrics import LyricsConfig, lyrics_flow

    lyrics = lyrics_flow(
        LyricsConfig(
            data=source, workdir=workspace.root, lyrics=config.lyrics, encoder=config.lyrics_encoder
        )
    )
    if package.uses_lyrics:
        embeddings, has_lyrics, encoder_id = read_lyrics_embeddings(workspace, track_ids)
        lyrics_dim = int(package.description["lyrics_dim"])
        if not has_lyrics.any():
            logger.info("none of the new tracks has lyrics: encoding audio only")
            return SideInputs()
        if embeddings.shape[1] != lyrics_dim:
            logger.warning(
                "lyrics embeddings by %s have %d dims, the champion takes %d; encoding audio only",
                encoder_id,
                embeddings.shape[1],
                lyrics_dim,
            )
            return SideInputs()
        logger.info("%d/%d tracks encoded with their lyrics", has_lyrics.sum(), len(track_ids))
        return SideInputs(lyrics=embeddings, lyrics_mask=has_lyrics, from_lyrics=has_lyrics)
    table = (
        pl.DataFrame({"track_id": track_ids})
        .join(
            pl.read_parquet(lyrics.lyrics_table).select("track_id", "language", "has_lyrics"),
            on="track_id",
            how="left",
        )
        .with_columns(pl.col("has_lyrics").fill_null(False))
    )
    conditions, from_lyrics = language_conditions(
        package.description, table["language"].to_list(), table["has_lyrics"].to_list()
    )
    logger.info(
        "CVAE champion: %d/%d tracks conditioned on their lyrics language",
        from_lyrics.sum(),
        len(track_ids),
    )
    return SideInputs(condition=conditions, from_lyrics=from_lyrics)


@flow(name="predict", flow_run_name="predict {config.data.name}", log_prints=True)
def predict_flow(config: PredictConfig) -> PredictResult:
    """Cluster new tracks with the registered champion (module docstring)."""
    logger = get_run_logger()
    started = time.perf_counter()
    model_uri = resolve_model_uri(config.model)
    workspace = Workspace.open(config.predict_root)
    source = prediction_source(config.data, workspace)

    version = model_version_of(model_uri)  # fails fast, before any download, on a missing alias
    package = fetch_champion_task(model_uri, version, workspace.root / "model")
    description = package.description
    logger.info(
        "model %s (version %s): %s [%s], clustering %s, %s inputs",
        model_uri,
        package.version or "-",
        description.get("method"),
        description.get("features"),
        package.clustering["algorithm"],
        package.input_kind,
    )
    features = package.feature_config
    audio = config.audio or AudioConfig(sample_rate=features.sample_rate)
    if audio.sample_rate != features.sample_rate:
        raise PredictionError(
            f"audio.sample_rate={audio.sample_rate} Hz but the champion's features are computed "
            f"at {features.sample_rate} Hz; leave audio.sample_rate at {features.sample_rate}"
        )
    ingested = ingest_flow(
        IngestConfig(
            data=source,
            workdir=workspace.root,
            audio=audio,
            features=features,
            workers=config.workers,
        )
    )
    if ingested.feature_key != description["feature_key"]:
        raise PredictionError(
            f"features of the new tracks have key {ingested.feature_key} but the champion was "
            f"trained on {description['feature_key']} (the feature code changed since); "
            "retrain and re-evaluate to register a new champion"
        )

    tracks = pl.read_parquet(workspace.tracks_table)
    ok = tracks.filter(pl.col("status") == "ok")
    track_ids = ok["track_id"].to_list()
    latents_path = None
    side = SideInputs()
    if ok.height:
        side = _side_inputs(config, package, source, workspace, track_ids, logger)
        latents_path = encode_with_champion_task(
            package.folder, description, workspace, track_ids, ok["sha256"].to_list(), side
        )
    used = side.from_lyrics if side.from_lyrics is not None else np.zeros(len(track_ids), bool)
    table = predictions_table(
        tracks,
        latents_path,
        package,
        n_nearest=config.n_nearest,
        used_lyrics=dict(zip(track_ids, used.tolist(), strict=True)),
    )
    out = (config.out or workspace.root / "predictions.csv").expanduser().resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    table.write_csv(out)

    counts = {
        "n_tracks": table.height,
        "n_assigned": table.filter(pl.col("cluster").is_not_null()).height,
        "n_quarantined": table.filter(pl.col("cluster").is_null()).height,
        "n_used_lyrics": int(used.sum()),
    }
    with tracked_run(EXPERIMENT, f"predict {Path(config.data).name}") as run_id:
        log_params(
            run_id,
            {
                "data": str(config.data),
                "model_uri": model_uri,
                "model_version": package.version,
                "method": description.get("method"),
                "features": description.get("features"),
                "algorithm": package.clustering["algorithm"],
                "feature_key": description["feature_key"],
                "predict_dir": str(workspace.root),
                "n_nearest": config.n_nearest,
            },
        )
        set_tags(
            run_id,
            {
                "stage": "predict",
                "model_version": package.version or "",
                "ingest_run": ingested.run_id,
            },
        )
        log_metrics(
            run_id,
            {**counts, **cluster_counts(table), "seconds": time.perf_counter() - started},
        )
        log_artifact(run_id, out)

    text = format_predictions(table)
    logger.info(
        "%d tracks: %d assigned, %d quarantined; predictions in %s\n%s",
        counts["n_tracks"],
        counts["n_assigned"],
        counts["n_quarantined"],
        out,
        text,
    )
    return PredictResult(
        run_id=run_id,
        predictions=out,
        model_uri=model_uri,
        model_version=package.version,
        table=text,
        **counts,
    )
