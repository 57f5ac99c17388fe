"""Predict flow: new tracks -> same validation and features -> champion encoder -> clusters.

Fetches the registered model (`vaemusic@champion` by default) with its fitted clustering and the
collection's reference latents, ingests the new files into a separate work dir (default
`WORKDIR/predict`, so the collection's tables are untouched) with the champion's feature
settings, encodes them, assigns each to a cluster and lists its nearest tracks of the collection.
Writes `predictions.csv` (path, track_id, track, cluster, score, score_kind, nearest_tracks,
nearest_track_ids, used_lyrics, reason; quarantined files have a null cluster and their reason)
and logs the run to MLflow (experiment "predict").
"""

from __future__ import annotations

import time
from pathlib import Path

from prefect import flow, get_run_logger
from pydantic import BaseModel, ConfigDict, Field

from flows.ingest import IngestConfig, ingest_flow
from flows.lyrics import LyricsConfig, lyrics_flow
from tasks.audio.decoding import AudioConfig
from tasks.audio.discovery import SourceSettings
from tasks.audio.pretrained import PretrainedConfig
from tasks.core.workspace import DEFAULT_WORKDIR, Workspace
from tasks.lyrics.embedding import EncoderSettings
from tasks.prediction.champion import (
    ChampionPackage,
    fetch_champion,
    model_version_of,
    resolve_model_uri,
)
from tasks.prediction.encoding import encode_with_champion
from tasks.prediction.inputs import (
    SideInputs,
    check_feature_key,
    plan_side_inputs,
    prediction_source,
    prediction_workspace,
    side_inputs,
)
from tasks.prediction.placement import (
    NewTracks,
    PredictionCounts,
    format_predictions,
    log_prediction_run,
    predictions_table,
    write_predictions,
)


class PredictConfig(BaseModel):
    """Parameters of the predict flow (rendered as a form in the Prefect dashboard)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data: Path = Field(description="One audio file, a folder of audio, or a manifest (.csv).")
    workdir: Path = Field(
        DEFAULT_WORKDIR, description="The collection's work dir (predictions go to its predict/)."
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
    audio: AudioConfig = Field(
        default_factory=AudioConfig,
        description="What counts as a usable file; the analysis rate is the champion's.",
    )
    n_nearest: int = Field(5, ge=0, le=100, description="Nearest collection tracks listed.")
    workers: int = Field(0, ge=0, description="Parallel decoders; 0 = one per CPU core.")


class PredictResult(PredictionCounts):
    run_id: str = Field(description="MLflow run id (experiment 'predict').")
    predictions: Path
    model_uri: str
    model_version: str | None
    table: str = Field(description="The predictions as a text table, for the terminal.")


def _side_inputs(
    config: PredictConfig,
    package: ChampionPackage,
    source: Path,
    workspace: Workspace,
    tracks: NewTracks,
) -> SideInputs:
    """Lyrics (multimodal champion) or language conditions (CVAE champion) of the new tracks:
    the lyrics stage runs on them only when the champion can use what it gives."""
    logger = get_run_logger()
    plan = plan_side_inputs(
        package.card,
        Workspace.open(config.workdir),
        config.lyrics_encoder,
        champion_folder=package.folder,
    )
    logger.info(plan.message)
    if plan.needs_lyrics_stage:
        lyrics_flow(
            LyricsConfig(
                data=source,
                workdir=workspace.root,
                lyrics=config.lyrics,
                encoder=config.lyrics_encoder,
            )
        )
    side = side_inputs(package.card, plan, workspace, tracks.track_ids)
    if side.note:
        logger.info(side.note)
    return side


@flow(name="predict", flow_run_name="predict {config.data.name}", log_prints=True)
def predict_flow(config: PredictConfig) -> PredictResult:
    """Cluster new tracks with the registered champion (module docstring)."""
    logger = get_run_logger()
    started = time.perf_counter()
    model_uri = resolve_model_uri(config.model)
    workspace = prediction_workspace(config.workdir, config.predict_dir)
    source = prediction_source(config.data, workspace)
    version = model_version_of(model_uri)  # fails fast, before any download, on a missing alias
    package = fetch_champion(model_uri, version, workspace)
    logger.info(package.summary)

    ingested = ingest_flow(
        IngestConfig(
            data=source,
            workdir=workspace.root,
            audio=config.audio,
            features=package.feature_config,
            # The champion's own network settings (a quick-profile champion caps the patches).
            pretrained=package.card.pretrained or PretrainedConfig(),
            # The one file a user names directly is theirs to read wherever it lies.
            sources=SourceSettings(allow_outside_paths=source == workspace.single_file_manifest),
            workers=config.workers,
        )
    )
    check_feature_key(package, ingested.feature_key)
    tracks = NewTracks.read(workspace)
    side, latents = SideInputs(), None
    if tracks.track_ids:
        side = _side_inputs(config, package, source, workspace, tracks)
        latents = encode_with_champion(package, workspace, tracks.track_ids, tracks.shas, side)
    table = predictions_table(
        tracks.table,
        latents,
        package,
        n_nearest=config.n_nearest,
        used_lyrics=tracks.used_lyrics(side),
    )
    predictions = write_predictions(table, workspace, config.out)
    run_id = log_prediction_run(
        data=config.data,
        package=package,
        workspace=workspace,
        ingest_run_id=ingested.run_id,
        n_nearest=config.n_nearest,
        table=table,
        predictions=predictions,
        seconds=time.perf_counter() - started,
    )
    counts = PredictionCounts.of(table)
    text = format_predictions(table)
    logger.info(
        "%d tracks: %d assigned, %d quarantined; predictions in %s\n%s",
        counts.n_tracks,
        counts.n_assigned,
        counts.n_quarantined,
        predictions,
        text,
    )
    return PredictResult(
        run_id=run_id,
        predictions=predictions,
        model_uri=model_uri,
        model_version=package.version,
        table=text,
        **counts.model_dump(),
    )
