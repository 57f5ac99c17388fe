"""Peak memory of the ingest's per-file work against file length and collection size, and of
reading one lyrics file against its size.

Each case runs in a fresh subprocess and reports its peak resident set (`ru_maxrss`), so cases
do not inherit each other's heap; the import cost of numpy/torch/polars is in every case alike
and the ratios are to the smallest case measured in the same run.

    python -m bench.memory                       # 1/10/30/120-minute WAVs, 20/80/160 tracks
    python -m bench.memory --minutes 1 10 --tracks 20 40 --lyrics-mb 1 50

What a case does is what one `process_audio` batch does per file, without Prefect: decode and
validate the central `analysis_window_s` (default 10 minutes) of the file, extract features, save
them. Synthetic WAVs (22.05 kHz mono 16-bit, a tone with noise) are written under a temporary
folder and removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from bench.tables import print_table

SR = 22050


def write_wav(path: Path, minutes: float, seed: int = 0) -> None:
    """A tone with noise, written a minute at a time (the writer's memory stays small too);
    each `seed` gives other content (the stores would process equal files once)."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    t = np.arange(SR * 60) / SR
    with sf.SoundFile(path, "w", SR, 1, subtype="PCM_16") as handle:
        for minute in range(int(np.ceil(minutes))):
            seconds = min(60.0, minutes * 60 - minute * 60)
            n = int(seconds * SR)
            block = 0.3 * np.sin(2 * np.pi * (220 + 10 * minute) * t[:n])
            handle.write((block + 0.02 * rng.standard_normal(n)).astype(np.float32))


def _child_ingest(paths: list[str], work: str) -> dict:
    from tasks.audio.decoding import AudioConfig
    from tasks.audio.features import FeatureConfig
    from tasks.audio.ingest import _process_one, hash_files
    from tasks.core.workspace import Workspace

    workspace, audio, features = Workspace.open(work), AudioConfig(), FeatureConfig(device="cpu")
    started = time.perf_counter()
    hashes = hash_files(paths, workers=1)
    statuses = [
        _process_one(path, sha, audio, features, workspace).status
        for path, sha in zip(paths, hashes, strict=True)
    ]
    return {"seconds": time.perf_counter() - started, "ok": statuses.count("ok")}


def _child_lyrics(path: str) -> dict:
    from tasks.lyrics.sources import read_lyrics_file
    from tasks.lyrics.table import _row_for

    started = time.perf_counter()
    document = read_lyrics_file(path)
    _row_for("t", document, "track_id", 100.0)  # normalization, languages, romanization
    return {"seconds": time.perf_counter() - started, "ok": len(document.lines)}


def child(kind: str, argument: str) -> None:
    """Run one case in this (fresh) process and print its figures as JSON."""
    # Imported first, so that `imports_mb` (the resident set before the case) holds the
    # libraries (torch alone is several hundred MB) and the growth is the case's own.
    import tasks.audio.ingest
    import tasks.lyrics.table

    del tasks
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if kind == "lyrics":
        result = _child_lyrics(argument)
    else:
        spec = json.loads(argument)
        result = _child_ingest(spec["paths"], spec["work"])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps(result | {"peak_mb": peak / 1024, "imports_mb": baseline / 1024}))


def measure(kind: str, argument: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "bench.memory", "--child", kind, argument],
        check=True,
        capture_output=True,
        text=True,
        env=os.environ | {"OMP_NUM_THREADS": "1"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def by_length(folder: Path, minutes: list[float]) -> pl.DataFrame:
    rows = []
    for length in minutes:
        path = folder / f"{length:g}min.wav"
        write_wav(path, length)
        spec = {"paths": [str(path)], "work": str(folder / f"work-{length:g}")}
        figures = measure("ingest", json.dumps(spec))
        rows.append({"minutes": length, "file_mb": path.stat().st_size / 2**20} | figures)
        path.unlink()
    return _with_ratio(pl.DataFrame(rows))


def by_collection(folder: Path, sizes: list[int]) -> pl.DataFrame:
    clips = folder / "clips"
    clips.mkdir()
    for index in range(max(sizes)):
        write_wav(clips / f"clip{index:04d}.wav", 0.5, seed=index)  # GTZAN clips are 30 s
    rows = []
    for size in sizes:
        paths = [str(clips / f"clip{index:04d}.wav") for index in range(size)]
        spec = {"paths": paths, "work": str(folder / f"work-n{size}")}
        rows.append({"tracks": size} | measure("ingest", json.dumps(spec)))
    return _with_ratio(pl.DataFrame(rows))


def by_lyrics_size(folder: Path, megabytes: list[float]) -> pl.DataFrame:
    rows = []
    line = "hello darkness my old friend I have come to talk with you again\n"
    for size in megabytes:
        path = folder / f"lyrics-{size:g}mb.txt"
        with open(path, "w") as handle:
            handle.write(line * int(size * 2**20 / len(line)))
        rows.append({"lyrics_mb": size} | measure("lyrics", str(path)))
        path.unlink()
    return _with_ratio(pl.DataFrame(rows))


def _with_ratio(table: pl.DataFrame) -> pl.DataFrame:
    smallest = table["peak_mb"][0]
    return table.with_columns((pl.col("peak_mb") / smallest).alias("peak_ratio"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, nargs="*", default=[1, 10, 30, 120])
    parser.add_argument("--tracks", type=int, nargs="*", default=[20, 80, 160])
    parser.add_argument("--lyrics-mb", type=float, nargs="*", default=[0.01, 1, 50])
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    cases = [
        ("Peak RSS against file length (one WAV)", by_length, args.minutes),
        ("Peak RSS against collection size (30 s clips)", by_collection, args.tracks),
        ("Peak RSS against lyrics file size", by_lyrics_size, args.lyrics_mb),
    ]
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        for title, run, values in cases:
            if values:
                print_table(title, run(Path(tmp), values), float_precision=2)


if __name__ == "__main__":
    main()
