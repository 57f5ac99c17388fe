"""Lyrics flow: sources -> pairing with tracks -> languages -> embeddings -> MLflow.

Reads the ingested tracks of the work dir (running the ingest first when there are none),
finds the lyrics (`--lyrics PATH`, else `DATA/lyrics/` and lyrics columns of the manifest or
metadata.csv), pairs them with tracks, identifies scripts and languages, and embeds them with
XLM-RoBERTa (or the offline char n-gram encoder when the model is not available locally).
Writes `lyrics.parquet`, `unpaired_lyrics.csv` and `lyrics_embeddings.parquet` to the work dir
and logs the run to MLflow (experiment "lyrics").
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import polars as pl
from matplotlib.figure import Figure
from prefect import flow, get_run_logger
from pydantic import BaseModel, ConfigDict, Field

from registry.tracking import (
    log_artifact,
    log_dict,
    log_figure,
    log_metrics,
    log_params,
    log_table,
    set_tags,
    tracked_run,
)
from tasks.discovery import ExistingPath
from tasks.lyrics.embedding import EncoderSettings, embed_lyrics_task, resolve_encoder
from tasks.lyrics.pairing import PairingSettings
from tasks.lyrics.sources import discover_lyrics_sources
from tasks.lyrics.table import file_sha256, lyrics_code_digest, lyrics_table_task
from tasks.workspace import Workspace

EXPERIMENT = "lyrics"


class LyricsConfig(BaseModel):
    """Parameters of the lyrics flow (rendered as a form in the Prefect dashboard)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data: ExistingPath = Field(
        description="The collection: a GTZAN-layout folder or a manifest (.csv/.parquet)."
    )
    workdir: Path = Field(Path("workdir"), description="Where tables, stores and reports go.")
    lyrics: Path | None = Field(
        None,
        description="Lyrics source: a folder of .txt/.lrc files, a .csv/.parquet table with a "
        "lyrics/lyrics_text/text or lyrics_path column, or one file. Empty: DATA/lyrics/ and "
        "the lyrics columns of the manifest or metadata.csv.",
    )
    encoder: EncoderSettings = Field(default_factory=EncoderSettings)
    pairing: PairingSettings = Field(default_factory=PairingSettings)


class LyricsResult(BaseModel):
    """What the lyrics flow produced (paths in the work dir, the MLflow run)."""

    workspace: Workspace
    run_id: str = Field(description="MLflow run id (experiment 'lyrics').")
    lyrics_table: Path
    unpaired_lyrics: Path
    embeddings: Path
    encoder_id: str = Field(description="Which encoder produced the embeddings.")
    encoder_kind: str
    n_tracks: int
    n_with_lyrics: int
    n_unpaired: int
    pair_counts: dict[str, int]
    embedded: int = Field(description="Lyrics embedded in this run (the rest came from cache).")


def _language_table(lyrics_table: Path) -> pl.DataFrame:
    """Tracks per dominant language ("none" = no lyrics), with romanized/code-mixed counts."""
    table = pl.read_parquet(lyrics_table).with_columns(
        pl.when(pl.col("has_lyrics"))
        .then(pl.col("language").fill_null("und"))
        .otherwise(pl.lit("none"))
        .alias("language")
    )
    return (
        table.group_by("language")
        .agg(
            pl.len().alias("tracks"),
            pl.col("romanized").sum().alias("romanized"),
            pl.col("code_mixed").sum().alias("code_mixed"),
        )
        .with_columns((pl.col("tracks") / max(table.height, 1)).round(4).alias("share"))
        .sort(["tracks", "language"], descending=[True, False])
    )


def _language_figure(languages: pl.DataFrame) -> Figure:
    figure = Figure(figsize=(6, 3.5), layout="constrained")
    axes = figure.add_subplot()
    names = languages["language"].to_list()
    counts = languages["tracks"].to_list()
    bars = axes.bar(names, counts, color=["#999999" if n == "none" else "#3b7dd8" for n in names])
    axes.bar_label(bars, fontsize=8)
    axes.set_xlabel("dominant lyrics language (none = no lyrics)")
    axes.set_ylabel("tracks")
    axes.set_title("Lyrics languages")
    return figure


@flow(name="lyrics", flow_run_name="lyrics {config.data.name}", log_prints=True)
def lyrics_flow(config: LyricsConfig) -> LyricsResult:
    """Pair, analyse and embed the lyrics of the collection `config.data` (module docstring)."""
    logger = get_run_logger()
    started = time.perf_counter()
    workspace = Workspace.open(config.workdir)
    if not workspace.tracks_table.exists():
        logger.info("no ingested tracks in %s: running the ingest first", workspace.root)
        from flows.ingest import IngestConfig, ingest_flow

        ingest_flow(IngestConfig(data=config.data, workdir=config.workdir))

    data = Path(config.data).expanduser().resolve()
    data_root = data if data.is_dir() else data.parent
    sources = discover_lyrics_sources(data, config.lyrics, workspace.tracks_table)
    if sources.empty:
        logger.warning(
            "no lyrics found for %s (looked for %s/lyrics/, lyrics columns in metadata.csv or "
            "manifest.csv, lyrics_path in tracks.parquet): every track gets has_lyrics=False",
            data,
            data_root,
        )
    else:
        logger.info("lyrics sources: %s", sources.describe())

    code = lyrics_code_digest()
    table_args = (
        workspace,
        file_sha256(workspace.tracks_table),
        sources,
        config.pairing,
        data_root,
        code,
    )
    summary = lyrics_table_task(*table_args)
    if not Path(summary["lyrics_table"]).exists():  # cached result, file deleted since
        summary = lyrics_table_task.with_options(refresh_cache=True)(*table_args)

    encoder = resolve_encoder(config.encoder)
    if encoder.notice:
        logger.warning(encoder.notice)
    embed_args = (workspace, summary["lyrics_sha256"], encoder, config.encoder, code)
    state = embed_lyrics_task(*embed_args, return_state=True)
    embedded = state.result()
    if not Path(embedded["embeddings"]).exists():
        state = embed_lyrics_task.with_options(refresh_cache=True)(*embed_args, return_state=True)
        embedded = state.result()
    if state.is_completed() and state.name == "Cached":
        # Prefect served the whole task from its cache: nothing was embedded in this run.
        embedded = {**embedded, "computed": 0, "cached": embedded["shape"][0]}

    languages = _language_table(workspace.lyrics_table)
    counts = summary["pair_counts"]
    with tracked_run(EXPERIMENT, f"lyrics {data.name}") as run_id:
        log_params(
            run_id,
            {
                "data": str(data),
                "workdir": str(workspace.root),
                "lyrics_sources": sources.describe(),
                "encoder": config.encoder.model_dump(),
                "encoder_kind": encoder.kind,
                "encoder_id": embedded["encoder_id"],
                "pairing": config.pairing.model_dump(),
            },
        )
        set_tags(
            run_id,
            {
                "stage": "lyrics",
                "encoder_id": embedded["encoder_id"],
                "encoder_fallback": str(bool(encoder.notice)).lower(),
                "lyrics_fingerprint": sources.fingerprint[:16],
            },
        )
        log_metrics(
            run_id,
            {
                "tracks": summary["n_tracks"],
                "tracks_with_lyrics": summary["n_with_lyrics"],
                "tracks_without_lyrics": summary["n_tracks"] - summary["n_with_lyrics"],
                "lyrics_documents": summary["n_documents"],
                **{f"paired_{method}": n for method, n in counts.items()},
                "unpaired_documents": summary["n_unpaired"],
                "romanized_tracks": summary["n_romanized"],
                "code_mixed_tracks": summary["n_code_mixed"],
                "embedding_rows": embedded["shape"][0],
                "embedding_dim": embedded["shape"][1],
                "embedded_this_run": embedded["computed"],
                "embeddings_from_cache": embedded["cached"],
                "seconds": time.perf_counter() - started,
            },
        )
        log_artifact(run_id, workspace.unpaired_lyrics, "lyrics")
        log_table(run_id, languages, "lyrics/language_distribution.csv")
        log_figure(run_id, _language_figure(languages), "lyrics/language_distribution.png")
        log_dict(
            run_id,
            {**summary, "encoder": embedded, "notice": encoder.notice},
            "lyrics/summary.json",
        )

    logger.info(
        "lyrics: %d/%d tracks with lyrics (pairs %s), %d unpaired files (%s); embeddings %s "
        "by %s (%d embedded now, %d from cache); languages %s",
        summary["n_with_lyrics"],
        summary["n_tracks"],
        json.dumps(counts),
        summary["n_unpaired"],
        workspace.unpaired_lyrics,
        "x".join(str(n) for n in embedded["shape"]),
        embedded["encoder_id"],
        embedded["computed"],
        embedded["cached"],
        json.dumps(summary["languages"]),
    )
    return LyricsResult(
        workspace=workspace,
        run_id=run_id,
        lyrics_table=Path(summary["lyrics_table"]),
        unpaired_lyrics=Path(summary["unpaired_lyrics"]),
        embeddings=Path(embedded["embeddings"]),
        encoder_id=embedded["encoder_id"],
        encoder_kind=embedded["encoder_kind"],
        n_tracks=summary["n_tracks"],
        n_with_lyrics=summary["n_with_lyrics"],
        n_unpaired=summary["n_unpaired"],
        pair_counts=counts,
        embedded=embedded["computed"],
    )
