"""Where lyrics come from: folders of .txt/.lrc files and tables (CSV/Parquet) of text.

A lyrics source is read into `LyricsDocument`s: the raw lines (LRC time tags removed and kept
as per-line times) plus whatever identifies the track: an explicit `track_id` (table column),
`title`/`artist` (table columns or LRC `[ti:]`/`[ar:]` tags) and the file name stem.

Without an explicit `--lyrics` path, `discover_lyrics_sources` looks in the data folder for a
`lyrics/` folder and for lyrics columns (`lyrics`, `lyrics_text`, `lyrics_path`) in
`metadata.csv`/`manifest.csv` (or their .parquet), and takes the `lyrics_path` the ingest
copied into `tracks.parquet`. An explicit path replaces all of that.

Reading is bounded and confined (`SourceSettings`): a path named in a table resolves under the
table's folder (the collection's for `tracks.parquet`) unless outside paths are allowed, so a
manifest cannot make us copy `/etc/passwd` into `lyrics.parquet`; only regular files are read,
and at most `max_lyrics_bytes` of each (the rest is cut, with a note).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
from pydantic import BaseModel, ConfigDict

from tasks.audio.discovery import SourceSettings, path_under
from tasks.core.errors import UserInputError
from tasks.core.hashing import file_sha256, open_regular_file
from tasks.core.progress import run_logger_or

LYRICS_FILE_SUFFIXES = (".txt", ".lrc")
TABLE_SUFFIXES = (".csv", ".parquet", ".pq")
TEXT_COLUMNS = ("lyrics", "lyrics_text", "text")
PATH_COLUMNS = ("lyrics_path", "lyrics_file")
MANIFEST_NAMES = ("metadata.csv", "metadata.parquet", "manifest.csv", "manifest.parquet")
DEFAULT_SETTINGS = SourceSettings()
_log = logging.getLogger(__name__)


class LyricsSourceError(UserInputError):
    """A lyrics source cannot be read; the message names the path and what to do."""


@dataclass(frozen=True)
class LyricsDocument:
    """The lyrics of one song as found in a source, before pairing and normalization.

    `source` identifies it in reports and in `lyrics.parquet`: the absolute file path, or
    `<table path>#row=<n>` (0-based) for text held in a table cell. `line_times_s` has one entry
    per line: the LRC time in seconds, or None (plain text). `note` says what was done to the
    text on reading (cut at the size limit) or why a row's file was not read (no lines then).
    """

    source: str
    lines: tuple[str, ...]
    line_times_s: tuple[float | None, ...]
    stem: str | None = None
    track_id: str | None = None
    title: str | None = None
    artist: str | None = None
    tags: dict[str, str] = field(default_factory=dict, compare=False)
    note: str | None = None


# ---------------------------------------------------------------------------------------------
# Text and LRC parsing
# ---------------------------------------------------------------------------------------------

_TIME_TAG = re.compile(r"\[(\d{1,3}):(\d{1,2}(?:[.:]\d{1,3})?)\]")
_ID_TAG = re.compile(r"^\[([A-Za-z#]+):(.*)\]$")
_WORD_TIME = re.compile(r"<\d{1,3}:\d{1,2}(?:[.:]\d{1,3})?>")


def _seconds(minutes: str, seconds: str) -> float:
    return int(minutes) * 60 + float(seconds.replace(":", "."))


def parse_lyrics_text(text: str) -> tuple[list[str], list[float | None], dict[str, str]]:
    """Lines, per-line times and LRC id tags of a lyrics text (plain or LRC, detected).

    LRC: `[mm:ss.xx]` tags are stripped and kept as the line's time in seconds (a line with
    several tags is repeated at each time, as players show it), lines come back in time order,
    `[offset:+/-ms]` is applied, id tags (`[ar:]`, `[ti:]`, `[al:]`...) are returned in a dict
    with lower-case keys, and enhanced word tags `<mm:ss.xx>` are removed. Plain text: lines as
    they are, times None. Time-less lines inside an LRC keep their position with time None.
    """
    raw_lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    is_lrc = any(_TIME_TAG.match(line.strip()) for line in raw_lines)
    if not is_lrc:
        return raw_lines, [None] * len(raw_lines), {}

    tags: dict[str, str] = {}
    timed: list[tuple[float, int, str]] = []
    untimed: list[tuple[int, str]] = []
    for position, raw in enumerate(raw_lines):
        line = raw.strip()
        id_tag = _ID_TAG.match(line)
        if id_tag and not _TIME_TAG.match(line):
            tags[id_tag.group(1).lower()] = id_tag.group(2).strip()
            continue
        times = []
        while match := _TIME_TAG.match(line):
            times.append(_seconds(match.group(1), match.group(2)))
            line = line[match.end() :].lstrip()
        line = _WORD_TIME.sub("", line).strip()
        if not times:
            if line:  # blank lines carry nothing in an LRC
                untimed.append((position, line))
            continue
        timed.extend((t, position, line) for t in times)

    offset_s = 0.0
    if "offset" in tags:
        try:
            offset_s = int(tags["offset"].replace("+", "")) / 1000
        except ValueError:
            offset_s = 0.0
    timed.sort()
    lines = [line for _, _, line in timed] + [line for _, line in untimed]
    times: list[float | None] = [max(0.0, t - offset_s) for t, _, _ in timed]
    times += [None] * len(untimed)
    return lines, times, tags


def _decode(data: bytes, cut: bool) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data[: len(data) - len(data) % 2].decode("utf-16", errors="replace")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        if cut and error.start >= len(data) - 3:  # the cut fell inside one character
            return data[: error.start].decode("utf-8-sig", errors="replace")
        return data.decode("utf-8", errors="replace")


def cut_text(text: str, max_bytes: int, size: int | None = None) -> tuple[str, str | None]:
    """(`text` cut to at most `max_bytes` bytes of UTF-8 at a line end, the note saying so), or
    (`text`, None) when it fits. `size`: the whole source's size in bytes, for the note."""
    encoded = text.encode()
    if len(encoded) <= max_bytes and size is None:
        return text, None
    kept = encoded[:max_bytes].decode("utf-8", errors="ignore")
    if "\n" in kept:
        kept = kept[: kept.rfind("\n")]
    whole = size if size is not None else len(encoded)
    return kept, (
        f"lyrics cut to the first {len(kept.encode())} bytes of {whole} "
        f"(max_lyrics_bytes is {max_bytes})"
    )


def read_bounded_text(
    path: Path, *, max_bytes: int = DEFAULT_SETTINGS.max_lyrics_bytes
) -> tuple[str, str | None]:
    """(text, note) of a lyrics file: UTF-8 (BOM allowed), UTF-16 with BOM, else UTF-8 with
    undecodable bytes replaced (a stray byte must not lose a whole song).

    At most `max_bytes + 1` bytes are read: a longer file is cut at its last line end within
    the limit, and the note says so (None otherwise). Memory stays bounded whatever the size.

    Raises:
        OSError: missing, unreadable or not a regular file (a FIFO is never read).
    """
    with open(open_regular_file(path), "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        data = handle.read(max_bytes + 1)
    cut = len(data) > max_bytes
    text = _decode(data[:max_bytes] if cut else data, cut)
    if not cut:
        return text, None
    return cut_text(text, max_bytes, size=max(size, len(data)))


def split_artist_title(stem: str) -> tuple[str | None, str]:
    """("Artist", "Title") from a file stem "Artist - Title" (else (None, stem))."""
    for separator in (" - ", " – ", " — ", "_-_"):
        if separator in stem:
            artist, title = stem.split(separator, 1)
            return artist.replace("_", " ").strip() or None, title.replace("_", " ").strip()
    return None, stem.replace("_", " ").strip()


def read_lyrics_file(
    path: str | Path, *, max_bytes: int = DEFAULT_SETTINGS.max_lyrics_bytes
) -> LyricsDocument:
    """One .txt or .lrc file as a document (title/artist from LRC tags when present), its text
    cut to `max_bytes` (`read_bounded_text`).

    Raises:
        LyricsSourceError: the file cannot be read or is not a regular file.
    """
    path = Path(path).expanduser().resolve()
    try:
        text, note = read_bounded_text(path, max_bytes=max_bytes)
    except OSError as error:
        reason = error.strerror or str(error)
        raise LyricsSourceError(f"cannot read lyrics file {path}: {reason}") from error
    if note:
        run_logger_or(_log).warning("%s: %s", path, note)
    lines, times, tags = parse_lyrics_text(text)
    return LyricsDocument(
        source=str(path),
        lines=tuple(lines),
        line_times_s=tuple(times),
        stem=path.stem,
        title=tags.get("ti") or None,
        artist=tags.get("ar") or None,
        tags=tags,
        note=note,
    )


def lyrics_files_in(folder: str | Path) -> list[Path]:
    """Every .txt/.lrc file under `folder` (recursive, hidden files skipped), sorted."""
    folder = Path(folder).expanduser().resolve()
    return sorted(
        path
        for path in folder.rglob("*")
        if path.is_file()
        and path.suffix.lower() in LYRICS_FILE_SUFFIXES
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )


def read_lyrics_folder(
    folder: str | Path, *, max_bytes: int = DEFAULT_SETTINGS.max_lyrics_bytes
) -> list[LyricsDocument]:
    """Documents of every lyrics file under `folder`."""
    return [read_lyrics_file(path, max_bytes=max_bytes) for path in lyrics_files_in(folder)]


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------


def read_table(path: str | Path) -> pl.DataFrame:
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pl.read_csv(path, infer_schema_length=0)  # every column as text
        if suffix in {".parquet", ".pq"}:
            return pl.read_parquet(path)
    except (OSError, pl.exceptions.PolarsError) as error:
        raise LyricsSourceError(f"cannot read lyrics table {path}: {error}") from error
    raise LyricsSourceError(f"unsupported lyrics table {path.name}: use .csv or .parquet")


def table_lyrics_columns(columns: list[str]) -> tuple[str | None, str | None]:
    """(text column, path column) of a table, None for each it lacks."""
    lowered = {c.lower(): c for c in columns}
    text = next((lowered[c] for c in TEXT_COLUMNS if c in lowered), None)
    path = next((lowered[c] for c in PATH_COLUMNS if c in lowered), None)
    return text, path


def _cell(row: dict, name: str) -> str | None:
    value = row.get(name)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def resolve_under(value: str, base: Path, *, allow_outside: bool) -> tuple[Path | None, str | None]:
    """(absolute path, None) of a path named in a lyrics table (relative to `base`), or (None,
    why it is refused): the manifests' confinement rule."""
    return path_under(value, base, allow_outside=allow_outside, folder="the table's folder")


def _table_row_document(
    row: dict,
    index: int,
    table: Path,
    columns: tuple[str | None, str | None],
    settings: SourceSettings,
) -> LyricsDocument | None:
    """The document of one table row (`columns`: its text and path column), None for a row
    without lyrics or naming a missing file."""
    text_column, path_column = columns
    lowered = {c.lower(): c for c in row}
    ids = {name: _cell(row, lowered.get(name, "")) for name in ("track_id", "title", "artist")}
    source = f"{table}#row={index}"
    text = _cell(row, text_column) if text_column else None
    if text is not None:
        text, note = cut_text(text, settings.max_lyrics_bytes)
        if note:
            run_logger_or(_log).warning("%s: %s", source, note)
        lines, times, tags = parse_lyrics_text(text)
        return LyricsDocument(
            source=source,
            lines=tuple(lines),
            line_times_s=tuple(times),
            track_id=ids["track_id"],
            title=ids["title"] or tags.get("ti") or None,
            artist=ids["artist"] or tags.get("ar") or None,
            tags=tags,
            note=note,
        )
    file_value = _cell(row, path_column) if path_column else None
    if file_value is None:
        return None
    file_path, refusal = resolve_under(
        file_value, table.parent, allow_outside=settings.allow_outside_paths
    )
    if file_path is None:
        run_logger_or(_log).warning("%s: %s: not read", source, refusal)
        return LyricsDocument(
            source=source,
            lines=(),
            line_times_s=(),
            track_id=ids["track_id"],
            title=ids["title"],
            artist=ids["artist"],
            note=f"lyrics path refused: {refusal}",
        )
    if not file_path.is_file():
        return None
    document = read_lyrics_file(file_path, max_bytes=settings.max_lyrics_bytes)
    return LyricsDocument(
        source=document.source,
        lines=document.lines,
        line_times_s=document.line_times_s,
        stem=document.stem,
        track_id=ids["track_id"],
        title=ids["title"] or document.title,
        artist=ids["artist"] or document.artist,
        tags=document.tags,
        note=document.note,
    )


def read_lyrics_table(
    path: str | Path, settings: SourceSettings = DEFAULT_SETTINGS
) -> list[LyricsDocument]:
    """Documents from a table with a text column (`lyrics`, `lyrics_text` or `text`) and/or a
    path column (`lyrics_path`, `lyrics_file`; relative paths are relative to the table).

    Optional `track_id`, `title`, `artist` columns identify the track. Rows with neither text
    nor path are skipped; a row with a path whose file is missing is skipped too (it cannot
    be paired with anything; the manifest's owner sees it in the count). A path outside the
    table's folder is not read unless `settings.allow_outside_paths`: its row becomes a
    document without lines whose `note` says why, and a warning names it. Text beyond
    `settings.max_lyrics_bytes` is cut, with a note.

    Raises:
        LyricsSourceError: the table cannot be read or has no text or path column.
    """
    path = Path(path).expanduser().resolve()
    table = read_table(path)
    columns = table_lyrics_columns(table.columns)
    if columns == (None, None):
        raise LyricsSourceError(
            f"lyrics table {path} has no lyrics column: add one of "
            f"{', '.join(TEXT_COLUMNS + PATH_COLUMNS)} (columns: {', '.join(table.columns)})"
        )
    rows = (
        _table_row_document(row, index, path, columns, settings)
        for index, row in enumerate(table.iter_rows(named=True))
    )
    return [document for document in rows if document is not None]


# ---------------------------------------------------------------------------------------------
# Discovery
# ---------------------------------------------------------------------------------------------


class LyricsSources(BaseModel):
    """The lyrics inputs of one run: folders, tables and single files, plus a fingerprint of
    their content (sha256 over names and bytes) that changes whenever any of them changes."""

    model_config = ConfigDict(frozen=True)

    folders: tuple[Path, ...] = ()
    tables: tuple[Path, ...] = ()
    files: tuple[Path, ...] = ()
    fingerprint: str = ""
    settings: SourceSettings = DEFAULT_SETTINGS

    @property
    def empty(self) -> bool:
        return not (self.folders or self.tables or self.files)

    def describe(self) -> str:
        parts = [f"folder {p}" for p in self.folders] + [f"table {p}" for p in self.tables]
        if self.files:
            parts.append(f"{len(self.files)} files named by the manifest")
        return ", ".join(parts) or "none"


def _fingerprint(folders: list[Path], tables: list[Path], files: list[Path]) -> str:
    digest = hashlib.sha256()
    every = [f for folder in folders for f in lyrics_files_in(folder)] + tables + files
    for path in sorted(set(every)):
        digest.update(str(path).encode())
        digest.update(b"\0")
        try:
            digest.update(file_sha256(path).encode())  # chunked: a huge file is not held
        except OSError:
            digest.update(b"unreadable")
    return digest.hexdigest()


def collection_root(data: str | Path) -> Path:
    """The folder of a collection: `data` itself, or the folder of a manifest file. Relative
    lyrics paths of a manifest and the default `lyrics/` folder are found from here."""
    data = Path(data).expanduser().resolve()
    return data if data.is_dir() else data.parent


def _manifest_lyrics_files(tracks_table: Path, data: Path, settings: SourceSettings) -> list[Path]:
    """Existing files named in the `lyrics_path` column of the ingested tracks, inside the
    collection unless `settings.allow_outside_paths`."""
    if not tracks_table.exists():
        return []
    tracks = pl.read_parquet(tracks_table)
    if "lyrics_path" not in tracks.columns:
        return []
    base = collection_root(data)
    found = []
    for value in tracks["lyrics_path"].drop_nulls().unique().sort().to_list():
        path = resolve_lyrics_path(value, base, allow_outside=settings.allow_outside_paths)
        if path is not None:
            found.append(path)
    return found


def resolve_lyrics_path(
    value: str | None, base: Path, *, allow_outside: bool = False
) -> Path | None:
    """A manifest's lyrics path as an existing absolute file (relative to `base`), or None
    (also for a path outside `base` while `allow_outside` is off)."""
    if not value or not str(value).strip():
        return None
    path, _ = resolve_under(str(value).strip(), base, allow_outside=allow_outside)
    return path if path is not None and path.is_file() else None


def discover_lyrics_sources(
    data: str | Path,
    lyrics: str | Path | None,
    tracks_table: str | Path,
    settings: SourceSettings = DEFAULT_SETTINGS,
) -> LyricsSources:
    """Find the lyrics inputs of a run (rules in the module docstring); `settings` bound what
    is read from them.

    `lyrics`, when given, is a folder of .txt/.lrc files, a .csv/.parquet table, or a single
    .txt/.lrc file. Returns `LyricsSources` (possibly empty: a collection without lyrics is
    allowed; every track then has `has_lyrics` False).

    Raises:
        LyricsSourceError: `lyrics` is given but missing or of an unsupported kind, or a given
            table has no lyrics column.
    """
    data = Path(data).expanduser().resolve()
    folders: list[Path] = []
    tables: list[Path] = []
    files: list[Path] = []
    if lyrics is not None:
        lyrics = Path(lyrics).expanduser().resolve()
        if lyrics.is_dir():
            folders.append(lyrics)
        elif lyrics.is_file() and lyrics.suffix.lower() in TABLE_SUFFIXES:
            text_column, path_column = table_lyrics_columns(read_table(lyrics).columns)
            if text_column is None and path_column is None:
                raise LyricsSourceError(
                    f"--lyrics {lyrics}: the table has no lyrics column; add one of "
                    f"{', '.join(TEXT_COLUMNS + PATH_COLUMNS)}"
                )
            tables.append(lyrics)
        elif lyrics.is_file() and lyrics.suffix.lower() in LYRICS_FILE_SUFFIXES:
            files.append(lyrics)
        elif not lyrics.exists():
            raise LyricsSourceError(f"--lyrics {lyrics}: no such file or folder")
        else:
            raise LyricsSourceError(
                f"--lyrics {lyrics}: give a folder of .txt/.lrc files, a .csv/.parquet table "
                "or one .txt/.lrc file"
            )
    else:
        root = collection_root(data)
        if (root / "lyrics").is_dir():
            folders.append(root / "lyrics")
        candidates = [root / name for name in MANIFEST_NAMES]
        if data.is_file() and data.suffix.lower() in TABLE_SUFFIXES:
            candidates.insert(0, data)
        for candidate in candidates:
            if candidate.is_file() and candidate not in tables:
                text_column, path_column = table_lyrics_columns(read_table(candidate).columns)
                if text_column is not None or path_column is not None:
                    tables.append(candidate)
        in_folders = {p for folder in folders for p in lyrics_files_in(folder)}
        manifest_files = _manifest_lyrics_files(Path(tracks_table), data, settings)
        files = [p for p in manifest_files if p not in in_folders]
    return LyricsSources(
        folders=tuple(folders),
        tables=tuple(tables),
        files=tuple(files),
        fingerprint=_fingerprint(folders, tables, files),
        settings=settings,
    )


def read_lyrics_sources(sources: LyricsSources) -> list[LyricsDocument]:
    """Every document of `sources`; a file reached twice (folder and table) is read once."""
    documents: list[LyricsDocument] = []
    seen: set[str] = set()
    max_bytes = sources.settings.max_lyrics_bytes
    for table in sources.tables:
        for document in read_lyrics_table(table, sources.settings):
            # Table rows carry ids; they come first so a file they name keeps its id.
            if document.source not in seen:
                seen.add(document.source)
                documents.append(document)
    for folder in sources.folders:
        for document in read_lyrics_folder(folder, max_bytes=max_bytes):
            if document.source not in seen:
                seen.add(document.source)
                documents.append(document)
    for path in sources.files:
        document = read_lyrics_file(path, max_bytes=max_bytes)
        if document.source not in seen:
            seen.add(document.source)
            documents.append(document)
    return documents
