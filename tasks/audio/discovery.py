"""Finding the audio files of a collection: a GTZAN-style folder or a manifest table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import polars as pl
from pydantic import AfterValidator

from tasks.audio.decoding import AUDIO_EXTENSIONS
from tasks.core.errors import UserInputError

LABEL_COLUMNS = ("genre", "language", "title", "artist", "lyrics_path")
SOURCE_SCHEMA = {
    "track_id": pl.String,
    "path": pl.String,
    **{column: pl.String for column in LABEL_COLUMNS},
}
METADATA_FILES = ("metadata.csv", "metadata.parquet")


class DataSourceError(UserInputError):
    """The data argument cannot be read as a collection; the message says why and what to do."""


def _existing_path(path: Path) -> Path:
    if not path.expanduser().exists():
        raise ValueError(f"data not found: {path} (give a folder of audio or a manifest file)")
    return path


def _existing_collection(path: Path) -> Path:
    """Cheap checks that catch the usual mistakes before a flow starts (the scan stops at the
    first audio file)."""
    resolved = _existing_path(path).expanduser()
    if resolved.is_file() and resolved.suffix.lower() not in {".csv", ".parquet", ".pq"}:
        raise ValueError(
            f"{path.name} is not a manifest: give a folder of audio or a .csv/.parquet manifest "
            "(for single new tracks use `predict`)"
        )
    elif resolved.is_dir() and not any(
        p.suffix.lower() in AUDIO_EXTENSIONS for p in resolved.rglob("*")
    ):
        raise ValueError(
            f"no audio files ({', '.join(sorted(AUDIO_EXTENSIONS))}) found under {path}"
        )
    return path


# Config fields checked when the config is built, before any flow starts: a collection to ingest,
# or a path that only has to exist (the lyrics flow reads lyrics next to already-ingested tracks).
CollectionPath = Annotated[Path, AfterValidator(_existing_collection)]
ExistingPath = Annotated[Path, AfterValidator(_existing_path)]


def discover_sources(data: str | Path) -> pl.DataFrame:
    """Every audio file of a collection, with the labels the collection provides.

    `data` is a folder in GTZAN layout (`genres_original/<genre>/<file>` or `<genre>/<file>`; files
    directly in the folder get no genre) or a manifest (CSV or Parquet) with an `audio_path` column
    and optional `track_id`, `genre`, `language`, `title`, `artist`, `lyrics_path`. A folder may
    hold `metadata.csv` (keyed by `track_id`) whose labels fill in what the layout does not give.

    Returns a table with columns `track_id`, `path` (absolute) and the label columns, one row per
    audio file, sorted by track id. Files named in a manifest but missing on disk are kept (the
    validation quarantines them).

    Raises:
        DataSourceError: `data` does not exist, is an unsupported file, or a manifest lacks
            `audio_path`.
    """
    data = Path(data).expanduser()
    if not data.exists():
        raise DataSourceError(f"data not found: {data} (give a folder of audio or a manifest file)")
    sources = _from_manifest(data) if data.is_file() else _from_folder(data.resolve())
    return _with_unique_ids(sources).sort("track_id")


def _read_table(path: Path) -> pl.DataFrame:
    if path.suffix.lower() == ".csv":
        return pl.read_csv(path, infer_schema_length=10000)
    if path.suffix.lower() in {".parquet", ".pq"}:
        return pl.read_parquet(path)
    raise DataSourceError(f"unsupported manifest {path.name}: use a .csv or .parquet file")


def _normalise_labels(table: pl.DataFrame) -> pl.DataFrame:
    for column in LABEL_COLUMNS:
        if column not in table.columns:
            table = table.with_columns(pl.lit(None, dtype=pl.String).alias(column))
    return table.with_columns(pl.col(c).cast(pl.String) for c in LABEL_COLUMNS)


def _from_manifest(manifest: Path) -> pl.DataFrame:
    table = _read_table(manifest)
    if "audio_path" not in table.columns:
        raise DataSourceError(
            f"manifest {manifest.name} has no 'audio_path' column "
            f"(columns: {', '.join(table.columns)})"
        )
    base = manifest.resolve().parent

    def absolute(value: str) -> str:
        path = Path(value).expanduser()
        return str(path if path.is_absolute() else (base / path).resolve())

    table = table.with_columns(
        pl.col("audio_path")
        .cast(pl.String)
        .map_elements(absolute, return_dtype=pl.String)
        .alias("path")
    )
    if "track_id" not in table.columns:
        table = table.with_columns(
            pl.col("path")
            .map_elements(lambda p: Path(p).stem, return_dtype=pl.String)
            .alias("track_id")
        )
    if "lyrics_path" in table.columns:
        table = table.with_columns(
            pl.col("lyrics_path")
            .cast(pl.String)
            .map_elements(absolute, return_dtype=pl.String)
            .alias("lyrics_path")
        )
    table = _normalise_labels(table.with_columns(pl.col("track_id").cast(pl.String)))
    return table.select(list(SOURCE_SCHEMA))


def _from_folder(root: Path) -> pl.DataFrame:
    genre_root = root / "genres_original" if (root / "genres_original").is_dir() else root
    rows = []
    for path in sorted(genre_root.rglob("*")):
        if not path.is_file() or path.suffix.lower() not in AUDIO_EXTENSIONS:
            continue
        relative = path.relative_to(genre_root)
        genre = relative.parts[0] if len(relative.parts) > 1 else None
        rows.append({"track_id": path.stem, "path": str(path), "genre": genre})
    if not rows:
        raise DataSourceError(
            f"no audio files ({', '.join(sorted(AUDIO_EXTENSIONS))}) found under {root}"
        )
    table = _normalise_labels(
        pl.DataFrame(rows, schema={"track_id": pl.String, "path": pl.String, "genre": pl.String})
    )
    metadata = next((root / name for name in METADATA_FILES if (root / name).exists()), None)
    if metadata is not None:
        table = _join_metadata(table, _read_table(metadata))
    return table.select(list(SOURCE_SCHEMA))


def _join_metadata(table: pl.DataFrame, metadata: pl.DataFrame) -> pl.DataFrame:
    """Fill label columns from a metadata table keyed by track_id; the folder's genre wins."""
    if "track_id" not in metadata.columns:
        return table
    labels = [c for c in LABEL_COLUMNS if c in metadata.columns]
    metadata = metadata.select(
        pl.col("track_id").cast(pl.String),
        *[pl.col(c).cast(pl.String).alias(f"{c}__meta") for c in labels],
    ).unique("track_id", keep="first")
    joined = table.join(metadata, on="track_id", how="left")
    return joined.with_columns(
        pl.coalesce(pl.col(c), pl.col(f"{c}__meta")).alias(c) for c in labels
    ).drop([f"{c}__meta" for c in labels])


def _with_unique_ids(table: pl.DataFrame) -> pl.DataFrame:
    """Track ids must be unique; duplicates (same stem in two folders) get the folder prefixed."""
    duplicated = table["track_id"].is_duplicated()
    if not duplicated.any():
        return table
    return table.with_columns(
        pl.when(duplicated)
        .then(
            pl.col("path").map_elements(
                lambda p: f"{Path(p).parent.name}/{Path(p).stem}", return_dtype=pl.String
            )
        )
        .otherwise(pl.col("track_id"))
        .alias("track_id")
    )
