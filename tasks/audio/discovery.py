"""Finding the audio files of a collection: a GTZAN-style folder or a manifest table.

Nothing found is dropped silently. An entry that cannot be read safely (a manifest path outside
the collection, an empty `audio_path` cell, a directory named like audio, a FIFO, a dangling or
looping symbolic link, a file over the size limit) keeps a row with a `refused` reason and no
`path`, so no later step opens it; the ingest quarantines it with that reason. A track id
changed to keep ids unique gets a `note` saying so.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import stat
from collections import Counter
from pathlib import Path
from typing import Annotated

import polars as pl
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from tasks.audio.decoding import AUDIO_EXTENSIONS
from tasks.core.errors import UserInputError
from tasks.core.hashing import file_kind
from tasks.core.progress import run_logger_or

LABEL_COLUMNS = ("genre", "language", "title", "artist", "lyrics_path")
SOURCE_SCHEMA = {
    "track_id": pl.String,
    "path": pl.String,
    **{column: pl.String for column in LABEL_COLUMNS},
    "refused": pl.String,
    "note": pl.String,
}
"""`refused`: why the entry is not read at all (its `path` is then null); `note`: what was
changed about an entry that is read (a renamed id, a refused lyrics path)."""
METADATA_FILES = ("metadata.csv", "metadata.parquet")
_log = logging.getLogger(__name__)


class DataSourceError(UserInputError):
    """The data argument cannot be read as a collection; the message says why and what to do."""


class SourceSettings(BaseModel):
    """What the pipeline may read from a collection: where a manifest's paths may point, and
    how much of one file it reads."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    allow_outside_paths: bool = Field(
        False,
        description="Let a manifest name files outside its own folder (absolute paths, '..'). "
        "Off: such audio rows are refused and listed in quarantine.csv, such lyrics paths "
        "are not read.",
    )
    max_file_bytes: int = Field(
        2 * 1024**3,
        ge=1,
        description="Audio files larger than this (bytes) are refused without being read.",
    )
    max_lyrics_bytes: int = Field(
        64 * 1024,
        ge=1024,
        description="Lyrics longer than this (bytes of text per song) are cut, with a note.",
    )


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


def discover_sources(data: str | Path, settings: SourceSettings | None = None) -> pl.DataFrame:
    """Every audio file of a collection, with the labels the collection provides.

    `data` is a folder in GTZAN layout (`genres_original/<genre>/<file>` or `<genre>/<file>`; files
    directly in the folder get no genre) or a manifest (CSV or Parquet) with an `audio_path` column
    and optional `track_id`, `genre`, `language`, `title`, `artist`, `lyrics_path`. A folder may
    hold `metadata.csv` (keyed by `track_id`) whose labels fill in what the layout does not give.
    Manifest paths are relative to the manifest's folder and must stay inside it unless
    `settings.allow_outside_paths`.

    Returns a table with the columns of `SOURCE_SCHEMA`, one row per audio file or refused
    entry, sorted by track id; `path` is absolute, or null for a refused entry. Files named in a
    manifest but missing on disk are kept (the validation quarantines them). Track ids are
    unique: colliding ones are renamed, with a note.

    Raises:
        DataSourceError: `data` does not exist, is an unsupported, empty or unreadable file, a
            manifest lacks `audio_path` or has no rows, or `metadata.csv` lacks `track_id`.
    """
    settings = settings or SourceSettings()
    data = Path(data).expanduser()
    if not data.exists():
        raise DataSourceError(f"data not found: {data} (give a folder of audio or a manifest file)")
    if data.is_file():
        sources = _from_manifest(data, settings)
    else:
        sources = _from_folder(data.resolve(), settings)
    return _with_unique_ids(sources).sort("track_id")


def _csv_separator(path: Path) -> str:
    """`,` unless the header line has no comma but semicolons or tabs (a spreadsheet export in a
    locale whose decimal mark is the comma)."""
    with open(path, "rb") as handle:
        header = handle.readline(1 << 16).decode("utf-8", errors="replace")
    if "," in header:
        return ","
    return next((s for s in (";", "\t", "|") if s in header), ",")


def _first_line_of(error: Exception) -> str:
    """Polars' CSV errors run to a dozen lines of hints: the line that says what is wrong."""
    text = str(error)
    original = re.search(r"Original error: ```(.*?)```", text, re.DOTALL)
    line = (original.group(1) if original else text).strip().replace("\n", " ")
    if "not properly escaped" in line:
        line = 'a quoted field has no closing quote (") ' + line[line.find("Field") :]
    return re.sub(r"\s+", " ", line)[:200]


def read_table(path: Path, *, what: str = "manifest") -> pl.DataFrame:
    """A CSV (every column read as text, separator sniffed) or Parquet table.

    Raises:
        DataSourceError: unsupported suffix, empty or unreadable file (one line naming it).
    """
    suffix = path.suffix.lower()
    if suffix not in {".csv", ".parquet", ".pq"}:
        raise DataSourceError(f"unsupported {what} {path.name}: use a .csv or .parquet file")
    if path.stat().st_size == 0:
        raise DataSourceError(f"{what} {path} is empty (0 bytes): write a header and rows")
    try:
        if suffix == ".csv":
            return pl.read_csv(path, infer_schema_length=0, separator=_csv_separator(path))
        return pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError, UnicodeDecodeError) as error:
        raise DataSourceError(f"cannot read {what} {path}: {_first_line_of(error)}") from None


def _normalise_labels(table: pl.DataFrame) -> pl.DataFrame:
    for column in (*LABEL_COLUMNS, "refused", "note"):
        if column not in table.columns:
            table = table.with_columns(pl.lit(None, dtype=pl.String).alias(column))
    return table.with_columns(pl.col(c).cast(pl.String) for c in (*LABEL_COLUMNS, "refused"))


def unreadable_reason(path: Path, *, max_bytes: int | None = None) -> str | None:
    """Why `path` must not be opened as an audio file, or None (a regular file within the
    limit, or a missing one, which the validation reports as not found)."""
    try:
        info = path.stat()
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "symbolic link loop"
        if path.is_symlink():
            return f"dangling symbolic link (its target {os.readlink(path)} does not exist)"
        return None
    if stat.S_ISDIR(info.st_mode):
        return "a directory named like an audio file"
    if not stat.S_ISREG(info.st_mode):
        return f"not a regular file: a {file_kind(info.st_mode)}"
    if max_bytes is not None and info.st_size > max_bytes:
        return (
            f"file too large: {info.st_size} bytes, the limit is {max_bytes} bytes "
            "(set max_file_bytes to change)"
        )
    return None


def path_under(
    value: str, base: Path, *, allow_outside: bool, folder: str = "the manifest's folder"
) -> tuple[Path | None, str | None]:
    """(absolute path, None) of a path a table names (relative to `base`, symlinks followed), or
    (None, why it is refused): outside `base` while `allow_outside` is off. `folder` names `base`
    in the message. The one confinement rule of manifests and lyrics tables."""
    path = Path(value).expanduser()
    resolved = (path if path.is_absolute() else base / path).resolve()
    if not allow_outside and not resolved.is_relative_to(base.resolve()):
        return None, (f"{value!r} is outside {folder} {base} (--allow-outside-paths to read it)")
    return resolved, None


def _cell(row: dict, column: str) -> str | None:
    value = row.get(column)
    return None if value is None or not str(value).strip() else str(value).strip()


def _manifest_row(row: dict, number: int, base: Path, settings: SourceSettings) -> dict:
    """One source row from a manifest row (`number` 1-based, as a user counts data rows)."""
    audio_value = _cell(row, "audio_path")
    track_id = _cell(row, "track_id") or (Path(audio_value).stem if audio_value else None)
    out = {c: _cell(row, c) for c in LABEL_COLUMNS} | {
        "track_id": track_id or f"row{number}",
        "path": None,
        "refused": None,
        "note": None,
        "_named": audio_value or f"row{number}",
    }
    if audio_value is None:
        out["refused"] = f"row {number}: empty audio_path"
        return out
    path, problem = path_under(audio_value, base, allow_outside=settings.allow_outside_paths)
    problem = problem or unreadable_reason(path, max_bytes=settings.max_file_bytes)
    if problem:
        out["refused"] = f"row {number}: audio_path {problem}"
    else:
        out["path"] = str(path)
    if out["lyrics_path"] is not None:
        lyrics, problem = path_under(
            out["lyrics_path"], base, allow_outside=settings.allow_outside_paths
        )
        out["lyrics_path"] = None if lyrics is None else str(lyrics)
        if problem:
            out["note"] = f"lyrics_path {problem}: not read"
    return out


def _from_manifest(manifest: Path, settings: SourceSettings) -> pl.DataFrame:
    table = read_table(manifest)
    if "audio_path" not in table.columns:
        raise DataSourceError(
            f"manifest {manifest.name} has no 'audio_path' column "
            f"(columns: {', '.join(table.columns)})"
        )
    if table.height == 0:
        raise DataSourceError(f"manifest {manifest} has no rows: add one row per audio file")
    base = manifest.resolve().parent
    rows = [
        _manifest_row(row, number, base, settings)
        for number, row in enumerate(table.iter_rows(named=True), start=1)
    ]
    for row in rows:
        for message in (row["refused"], row["note"]):
            if message:
                run_logger_or(_log).warning("manifest %s: %s", manifest.name, message)
    return pl.DataFrame(rows, schema=SOURCE_SCHEMA | {"_named": pl.String})


def _from_folder(root: Path, settings: SourceSettings) -> pl.DataFrame:
    genre_root = root / "genres_original" if (root / "genres_original").is_dir() else root
    rows = []
    for path in sorted(genre_root.rglob("*")):
        if path.suffix.lower() not in AUDIO_EXTENSIONS:
            continue
        relative = path.relative_to(genre_root)
        problem = unreadable_reason(path, max_bytes=settings.max_file_bytes)
        rows.append(
            {
                "track_id": path.stem,
                "path": None if problem else str(path),
                "genre": relative.parts[0] if len(relative.parts) > 1 else None,
                "refused": f"skipped {relative}: {problem}" if problem else None,
                "_named": str(path),
            }
        )
    if not rows:
        raise DataSourceError(
            f"no audio files ({', '.join(sorted(AUDIO_EXTENSIONS))}) found under {root}"
        )
    table = _normalise_labels(
        pl.DataFrame(
            rows,
            schema={
                "track_id": pl.String,
                "path": pl.String,
                "genre": pl.String,
                "refused": pl.String,
                "_named": pl.String,
            },
        )
    )
    metadata = next((root / name for name in METADATA_FILES if (root / name).exists()), None)
    if metadata is not None:
        table = _join_metadata(table, read_table(metadata, what="metadata file"), metadata)
    return table.select([*SOURCE_SCHEMA, "_named"])


def _join_metadata(table: pl.DataFrame, metadata: pl.DataFrame, source: Path) -> pl.DataFrame:
    """Fill label columns from a metadata table keyed by track_id; the folder's genre wins.

    Raises:
        DataSourceError: the metadata has no `track_id` column (its labels could not be used).
    """
    if "track_id" not in metadata.columns:
        raise DataSourceError(
            f"{source} has no 'track_id' column (columns: {', '.join(metadata.columns)}): "
            "add one naming each audio file's stem, or move the file out of the collection"
        )
    labels = [c for c in LABEL_COLUMNS if c in metadata.columns]
    metadata = metadata.select(
        pl.col("track_id").cast(pl.String),
        *[pl.col(c).cast(pl.String).alias(f"{c}__meta") for c in labels],
    ).unique("track_id", keep="first")
    joined = table.join(metadata, on="track_id", how="left")
    return joined.with_columns(
        pl.coalesce(pl.col(c), pl.col(f"{c}__meta")).alias(c) for c in labels
    ).drop([f"{c}__meta" for c in labels])


def _unique_ids(ids: list[str], named: list[str]) -> list[str]:
    """Track ids made unique, changing only colliding ones: first `<folder>/<stem>`, then
    `<folder>/<file name>` (song.wav next to song.mp3), then a `#n` suffix (one file listed
    twice in a manifest)."""
    new = list(ids)
    for rename in (
        lambda p: f"{p.parent.name}/{p.stem}",
        lambda p: f"{p.parent.name}/{p.name}",
    ):
        counts = Counter(new)
        new = [rename(Path(n)) if counts[t] > 1 else t for t, n in zip(new, named, strict=True)]
    taken = set(new)
    seen: set[str] = set()
    for index, track_id in enumerate(new):
        if track_id in seen:
            number = 2
            while f"{track_id}#{number}" in taken:
                number += 1
            new[index] = f"{track_id}#{number}"
            taken.add(new[index])
        seen.add(new[index])
    return new


def _with_unique_ids(table: pl.DataFrame) -> pl.DataFrame:
    """Every row keeps a unique track id (no file is dropped later as a duplicate); each
    renamed row gets a note, and a warning is logged."""
    ids, named = table["track_id"].to_list(), table["_named"].to_list()
    new = _unique_ids(ids, named)
    notes = table["note"].to_list()
    for index, (old, renamed) in enumerate(zip(ids, new, strict=True)):
        if old != renamed:
            message = f"track id {old!r} is shared by several files: renamed to {renamed!r}"
            run_logger_or(_log).warning("%s (%s)", message, named[index])
            notes[index] = "; ".join(filter(None, [notes[index], message]))
    return table.with_columns(
        pl.Series("track_id", new, dtype=pl.String), pl.Series("note", notes, dtype=pl.String)
    ).drop("_named")
