"""What a lyrics run tells its user: the sources it found, the language distribution (table and
figure), the MLflow record (experiment "lyrics") and the closing summary line."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
from matplotlib.figure import Figure

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
from tasks.core.progress import Logger
from tasks.core.workspace import Workspace
from tasks.lyrics.embedding import EmbeddedLyrics, EncoderSettings, ResolvedEncoder
from tasks.lyrics.pairing import PairingSettings
from tasks.lyrics.sources import LyricsSources, collection_root
from tasks.lyrics.table import LyricsTableSummary

EXPERIMENT = "lyrics"


def announce_sources(sources: LyricsSources, data: Path, logger: Logger) -> None:
    """Say where lyrics were found, or warn (once) where they were looked for in vain."""
    if sources.empty:
        logger.warning(
            "no lyrics found for %s (looked for %s/lyrics/, lyrics columns in metadata.csv or "
            "manifest.csv, lyrics_path in tracks.parquet): every track gets has_lyrics=False",
            data,
            collection_root(data),
        )
    else:
        logger.info("lyrics sources: %s", sources.describe())


def language_table(lyrics_table: Path) -> pl.DataFrame:
    """Tracks per dominant language ("none" = no lyrics, "und" = undetermined), with their
    romanized and code-mixed counts and their share of all tracks (0-1), most tracks first."""
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


def language_figure(languages: pl.DataFrame) -> Figure:
    """Bar chart of `language_table`: tracks per language, tracks without lyrics in grey."""
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


def log_lyrics_run(
    workspace: Workspace,
    data: Path,
    sources: LyricsSources,
    table: LyricsTableSummary,
    embedded: EmbeddedLyrics,
    *,
    encoder: ResolvedEncoder,
    encoder_settings: EncoderSettings,
    pairing: PairingSettings,
    seconds: float,
    parent_run_id: str | None = None,
) -> str:
    """Record a lyrics run in MLflow (experiment "lyrics", or nested under `parent_run_id`):
    settings, pairing and language counts, the embeddings' shape, the unpaired documents, the
    language table and figure. Returns the run id."""
    languages = language_table(workspace.lyrics_table)
    with tracked_run(EXPERIMENT, f"lyrics {data.name}", parent_run_id=parent_run_id) as run_id:
        log_params(
            run_id,
            {
                "data": str(data),
                "workdir": str(workspace.root),
                "lyrics_sources": sources.describe(),
                "encoder": encoder_settings.model_dump(),
                "encoder_kind": encoder.kind,
                "encoder_id": embedded.encoder_id,
                "pairing": pairing.model_dump(),
            },
        )
        set_tags(
            run_id,
            {
                "stage": "lyrics",
                "encoder_id": embedded.encoder_id,
                "encoder_fallback": str(bool(encoder.notice)).lower(),
                "lyrics_fingerprint": sources.fingerprint[:16],
            },
        )
        log_metrics(run_id, _run_metrics(table, embedded) | {"seconds": seconds})
        log_artifact(run_id, workspace.unpaired_lyrics, "lyrics")
        log_table(run_id, languages, "lyrics/language_distribution.csv")
        log_figure(run_id, language_figure(languages), "lyrics/language_distribution.png")
        log_dict(
            run_id,
            {
                **table.model_dump(mode="json"),
                "encoder": embedded.model_dump(mode="json"),
                "notice": encoder.notice,
            },
            "lyrics/summary.json",
        )
    return run_id


def _run_metrics(table: LyricsTableSummary, embedded: EmbeddedLyrics) -> dict[str, float]:
    return {
        "tracks": table.n_tracks,
        "tracks_with_lyrics": table.n_with_lyrics,
        "tracks_without_lyrics": table.n_tracks - table.n_with_lyrics,
        "lyrics_documents": table.n_documents,
        **{f"paired_{method}": n for method, n in table.pair_counts.items()},
        "unpaired_documents": table.n_unpaired,
        "romanized_tracks": table.n_romanized,
        "code_mixed_tracks": table.n_code_mixed,
        "embedding_rows": embedded.shape[0],
        "embedding_dim": embedded.shape[1],
        "embedded_this_run": embedded.computed,
        "embeddings_from_cache": embedded.cached,
    }


def run_summary(table: LyricsTableSummary, embedded: EmbeddedLyrics) -> str:
    """One line for the log: pairing, unpaired files, embeddings and languages."""
    return (
        f"lyrics: {table.n_with_lyrics}/{table.n_tracks} tracks with lyrics (pairs "
        f"{json.dumps(table.pair_counts)}), {table.n_unpaired} unpaired files "
        f"({table.unpaired_lyrics}); embeddings {'x'.join(str(n) for n in embedded.shape)} by "
        f"{embedded.encoder_id} ({embedded.computed} embedded now, {embedded.cached} from cache); "
        f"languages {json.dumps(table.languages)}"
    )
