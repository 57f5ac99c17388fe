"""Writing the demo data set: audio, lyrics files, metadata, pairing truth and a marker.

`generate_demo_dataset` writes, under one folder,

    genres_original/<genre>/<genre>.NNNNN.wav   30 s, 22,050 Hz, mono, 16-bit PCM
    lyrics/<track_id>.txt | <track_id>.lrc | <Artist - Title>.txt   (10% of tracks have none)
    metadata.csv                                track_id, title, artist, genre, language, script,
                                                romanized, code_mixed, has_lyrics
    lyrics_truth.csv                            lyrics_file, track_id (ground truth of the pairing)
    demo_dataset.json                           how it was made (seed, size, format)

While it writes, the folder holds `demo_dataset.partial` instead of the marker: a run stopped
half-way (Ctrl-C, a full disk) leaves a folder the next run knows as its own and regenerates.

Everything is decided by `plan_demo_tracks` and generators seeded per track, so the same seed
always gives byte-identical files and track k is the same whatever the number of tracks.

Tracks are independent, so the audio of a large set is synthesised by a pool of worker processes
(one per core) while this process writes the text files; the marker is written last, once every
WAV file is on disk.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import multiprocessing
import os
import shutil
import signal
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from pathlib import Path

import polars as pl
import soundfile as sf
from pydantic import BaseModel, ConfigDict, Field

from tasks.demo.errors import DemoDataError
from tasks.demo.lyrics import compose_lyrics, lrc_text, plain_text, song_file_name
from tasks.demo.plan import DemoTrack, plan_demo_tracks
from tasks.demo.seeding import Stream, pick, stream_rng
from tasks.demo.song_names import orphan_songs
from tasks.demo.styles import GENRES
from tasks.demo.synthesis import synthesize_track
from tasks.demo.vocabulary import SCRIPT_OF_LANGUAGE

METADATA_COLUMNS: tuple[str, ...] = (
    "track_id",
    "title",
    "artist",
    "genre",
    "language",
    "script",
    "romanized",
    "code_mixed",
    "has_lyrics",
)
_BOOLEAN_COLUMNS = ("romanized", "code_mixed", "has_lyrics")
MARKER_FILE = "demo_dataset.json"
PARTIAL_MARKER_FILE = "demo_dataset.partial"

# A worker process costs about 1.5 CPU-seconds to start (importing scipy.signal, numpy,
# soundfile); synthesis costs about 0.25 CPU-seconds per 30 s track (2-core CPU). Each worker gets
# at least 20 tracks' worth, so its start-up stays under a quarter of its work: on a machine whose
# other core is busy, the pool's start-up is pure loss (16 tracks: 3.8 s in this process, 6.1 s
# with two workers), and tests' small sets stay in this process.
AUDIO_S_PER_WORKER = 600.0
# Tracks handed to a worker at once: small enough that the cores finish together (genres differ
# in cost) and that a stopped run waits for little, large enough to keep the overhead negligible.
_TRACKS_PER_CHUNK = 4


class DemoDataset(BaseModel):
    """What `generate_demo_dataset` wrote, and where each part of it lies."""

    model_config = ConfigDict(frozen=True)

    root: Path = Field(description="Folder holding genres_original/, lyrics/ and the CSV files.")
    n_tracks: int = Field(description="Number of audio tracks written.")
    genres: tuple[str, ...] = Field(description="Genres present, sorted.")
    languages: tuple[str, ...] = Field(description="ISO 639-1 lyric languages present, sorted.")
    seed: int = Field(description="Seed the collection was generated from.")
    sample_rate: int = Field(description="Sample rate of every WAV file, Hz.")
    duration_s: float = Field(description="Length of every clip, seconds.")

    @property
    def audio_dir(self) -> Path:
        return self.root / "genres_original"

    @property
    def lyrics_dir(self) -> Path:
        return self.root / "lyrics"

    @property
    def metadata_csv(self) -> Path:
        return self.root / "metadata.csv"

    @property
    def lyrics_truth_csv(self) -> Path:
        return self.root / "lyrics_truth.csv"

    @property
    def marker_file(self) -> Path:
        """`demo_dataset.json`: how the set was made; its presence marks a folder as ours."""
        return self.root / MARKER_FILE

    @property
    def partial_marker_file(self) -> Path:
        """`demo_dataset.partial`: present while the set is being written (and after a run that
        stopped half-way); it marks the folder as ours but not complete."""
        return self.root / PARTIAL_MARKER_FILE

    def audio_file(self, track: DemoTrack) -> Path:
        """`genres_original/<genre>/<track_id>.wav`."""
        return self.audio_dir / track.genre / f"{track.track_id}.wav"

    def generated_paths(self) -> tuple[Path, ...]:
        """Everything the generator writes directly under `root` (what regenerating clears)."""
        return (
            self.audio_dir,
            self.lyrics_dir,
            self.metadata_csv,
            self.lyrics_truth_csv,
            self.marker_file,
            self.partial_marker_file,
        )


class DemoSettings(BaseModel):
    """The settings of the demo collection that a user chooses (the command line's `demo-data`
    and the pipeline's form derive their options from these)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tracks: int = Field(
        120, ge=1, description="Demo set: number of tracks (1000 for a GTZAN-sized set)."
    )
    duration_s: float = Field(30.0, gt=0, description="Demo set: length of each clip (s).")
    seed: int = Field(0, description="Demo set: random seed; the same seed gives the same files.")


_DEFAULTS = DemoSettings()


def generate_demo_dataset(
    out_dir: str | Path,
    *,
    tracks: int = _DEFAULTS.tracks,
    seed: int = _DEFAULTS.seed,
    sample_rate: int = 22050,
    duration_s: float = _DEFAULTS.duration_s,
    workers: int | None = None,
) -> DemoDataset:
    """Write the demo collection (audio, lyrics, metadata and pairing truth) under `out_dir`.

    Args:
        out_dir: folder to write into; created if missing. A folder that already holds a demo
            set (it has `demo_dataset.json`, or `demo_dataset.partial` from a run that stopped
            half-way) is regenerated in place.
        tracks: number of audio tracks (genres rotate, so any count is balanced to within one).
        seed: same seed -> byte-identical files; track k is the same for any `tracks` > k.
        sample_rate: Hz of the WAV files.
        duration_s: length of each clip in seconds.
        workers: processes that synthesise the audio; None: one per available core, or none
            (all in this process) when there is less than `AUDIO_S_PER_WORKER` seconds of audio
            per worker; 1: all in this process. The files are the same for any value. Workers
            are started with "spawn", which imports the caller's main module again: a script
            that calls this keeps its top level under `if __name__ == "__main__":`.

    Returns:
        A `DemoDataset` describing what was written.

    Raises:
        DemoDataError: if `tracks` < 1, `sample_rate` < 8000, `duration_s` <= 0, `workers` < 1,
            or `out_dir` holds data the generator did not write.
    """
    if sample_rate < 8000:
        raise DemoDataError(f"sample_rate={sample_rate} must be at least 8000 Hz")
    if not duration_s > 0:
        raise DemoDataError(f"duration_s={duration_s} must be positive")
    if workers is not None and workers < 1:
        raise DemoDataError(f"workers={workers} must be at least 1 (or None: one per core)")
    plans = plan_demo_tracks(tracks, seed)
    dataset = DemoDataset(
        root=Path(out_dir).expanduser().resolve(),
        n_tracks=len(plans),
        genres=tuple(sorted({plan.genre for plan in plans})),
        languages=tuple(sorted({plan.language for plan in plans})),
        seed=seed,
        sample_rate=sample_rate,
        duration_s=duration_s,
    )
    _clear_earlier_demo_set(dataset)
    dataset.lyrics_dir.mkdir(parents=True, exist_ok=True)
    dataset.partial_marker_file.write_text(
        f"being written by {__name__}; complete once {MARKER_FILE} exists\n"
    )
    jobs = _audio_jobs(dataset, plans)
    n_workers = _worker_count(workers, len(jobs), duration_s)
    with _audio_pool(n_workers) as pool:
        # the workers start up (about a second) while this process writes the text files
        pending = _submit_audio(pool, n_workers, jobs) if pool is not None else []
        _write_text_files(dataset, plans)
        if pool is None:
            for job in jobs:
                _write_audio_file(job)
        for future in as_completed(pending):
            future.result()  # a worker's exception is raised here, as it would be in-process
    _write_marker(dataset)  # last: only a complete set is marked as one
    dataset.partial_marker_file.unlink()
    return dataset


def _clear_earlier_demo_set(dataset: DemoDataset) -> None:
    """Refuse to write over anything that is not an earlier demo data set (a real GTZAN copy
    has a genres_original/ folder too), and clear an earlier demo set so no stale file stays."""
    root = dataset.root
    if root.exists() and not root.is_dir():
        raise DemoDataError(f"out_dir={root} exists and is not a folder")
    existing = [path for path in dataset.generated_paths() if path.exists()]
    if not existing:
        return
    if not (dataset.marker_file.is_file() or dataset.partial_marker_file.is_file()):
        raise DemoDataError(
            f"out_dir={root} already holds {', '.join(path.name for path in existing)} that the "
            "demo generator did not write; choose an empty or new folder"
        )
    for path in existing:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


# --- audio -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _AudioJob:
    """One WAV file to synthesise: all a worker process needs, cheap to send it."""

    path: Path
    genre: str
    index: int
    seed: int
    sample_rate: int
    duration_s: float


def _audio_jobs(dataset: DemoDataset, plans: list[DemoTrack]) -> list[_AudioJob]:
    """One job per track, in track order; creates the genre folders (here, not in the workers)."""
    for genre in dataset.genres:
        (dataset.audio_dir / genre).mkdir(parents=True, exist_ok=True)
    return [
        _AudioJob(
            path=dataset.audio_file(plan),
            genre=plan.genre,
            index=plan.index,
            seed=dataset.seed,
            sample_rate=dataset.sample_rate,
            duration_s=dataset.duration_s,
        )
        for plan in plans
    ]


def _write_audio_file(job: _AudioJob) -> None:
    audio = synthesize_track(
        job.genre,
        stream_rng(job.seed, Stream.AUDIO, job.index),
        sample_rate=job.sample_rate,
        duration_s=job.duration_s,
    )
    sf.write(job.path, audio, job.sample_rate, subtype="PCM_16")


def _write_audio_chunk(jobs: tuple[_AudioJob, ...]) -> None:
    """What a worker process runs: a few tracks, one after the other."""
    for job in jobs:
        _write_audio_file(job)


def _available_cores() -> int:
    # the cores this process may run on (a container or `taskset` may allow fewer than exist)
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _worker_count(workers: int | None, n_tracks: int, duration_s: float) -> int:
    """Worker processes for the audio; 1 means none (all in this process)."""
    if workers is None:
        workers = min(_available_cores(), int(n_tracks * duration_s // AUDIO_S_PER_WORKER))
    return max(1, min(workers, n_tracks))


def _start_audio_worker() -> None:
    """Initialiser of each worker process.

    One BLAS thread per worker: the workers already fill the cores, and more threads would only
    oversubscribe them. Ctrl-C reaches the whole process group, but it is the parent's to handle
    (it cancels what is left and waits for the chunks under way); a worker would print a
    traceback for it.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def _audio_pool(n_workers: int) -> Iterator[ProcessPoolExecutor | None]:
    """A pool of `n_workers` processes, or None for 1. Started with "spawn": the caller may run
    threads (Prefect's, torch's), and a forked child of a threaded process can deadlock. On any
    exception, tracks not yet started are cancelled, and the call returns only once no worker
    writes any more."""
    if n_workers <= 1:
        yield None
        return
    pool = ProcessPoolExecutor(
        max_workers=n_workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_audio_worker,
    )
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _submit_audio(
    pool: ProcessPoolExecutor, n_workers: int, jobs: list[_AudioJob]
) -> list[Future[None]]:
    chunk = max(1, min(_TRACKS_PER_CHUNK, math.ceil(len(jobs) / n_workers)))
    return [
        pool.submit(_write_audio_chunk, tuple(jobs[start : start + chunk]))
        for start in range(0, len(jobs), chunk)
    ]


# --- text files --------------------------------------------------------------------------------


def _write_text_files(dataset: DemoDataset, plans: list[DemoTrack]) -> None:
    """The lyrics files, metadata.csv and lyrics_truth.csv."""
    truth_rows: list[dict[str, str | None]] = []
    for plan in plans:
        if plan.lyrics_file is not None:
            _write_track_lyrics(dataset, plan, plan.lyrics_file)
            truth_rows.append({"lyrics_file": plan.lyrics_file, "track_id": plan.track_id})
    for name in _write_orphan_lyrics(dataset):
        truth_rows.append({"lyrics_file": name, "track_id": None})
    _write_metadata(dataset, plans)
    _write_lyrics_truth(dataset, truth_rows)


def _write_track_lyrics(dataset: DemoDataset, plan: DemoTrack, file_name: str) -> None:
    """The track's lyrics as LRC (timed to the clip) or plain text, some with section tags."""
    rng = stream_rng(dataset.seed, Stream.LYRICS, plan.index)
    is_lrc = plan.lyrics_style == "track_lrc"
    lyrics = compose_lyrics(
        plan.genre,
        plan.language,
        plan.script,
        plan.code_mixed,
        rng,
        section_tags=not is_lrc and rng.random() < 0.6,
    )
    text = (
        lrc_text(plan.artist, plan.title, lyrics.sung_lines, dataset.duration_s, rng)
        if is_lrc
        else plain_text(lyrics)
    )
    (dataset.lyrics_dir / file_name).write_text(text, encoding="utf-8")


def _write_orphan_lyrics(dataset: DemoDataset) -> list[str]:
    """Lyrics files of songs that are in no track (named "Artist - Title", the Bangla one in
    Bengali script), as real lyrics folders have; returns their file names."""
    rng = stream_rng(dataset.seed, Stream.ORPHANS)
    names = []
    for language, artist, title in orphan_songs(rng):
        name = song_file_name(artist, title, bengali=True)
        lyrics = compose_lyrics(
            pick(rng, GENRES),
            language,
            SCRIPT_OF_LANGUAGE[language],
            False,
            rng,
            section_tags=True,
        )
        (dataset.lyrics_dir / name).write_text(plain_text(lyrics), encoding="utf-8")
        names.append(name)
    return names


def _write_metadata(dataset: DemoDataset, plans: list[DemoTrack]) -> None:
    columns = {name: [getattr(plan, name) for plan in plans] for name in METADATA_COLUMNS}
    schema = {
        name: pl.Boolean if name in _BOOLEAN_COLUMNS else pl.String for name in METADATA_COLUMNS
    }
    pl.DataFrame(columns, schema=schema).write_csv(dataset.metadata_csv)


def _write_lyrics_truth(dataset: DemoDataset, rows: list[dict[str, str | None]]) -> None:
    pl.DataFrame(rows, schema={"lyrics_file": pl.String, "track_id": pl.String}).sort(
        "lyrics_file"
    ).write_csv(dataset.lyrics_truth_csv)


def _write_marker(dataset: DemoDataset) -> None:
    # the root is left out: a moved folder stays a valid demo set
    marker = dataset.model_dump(mode="json") | {"generator": __name__, "root": None}
    dataset.marker_file.write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")
