"""Benchmark: this project's ingest against the usual per-file librosa loop, on the same clips.

    .venv/bin/python bench/features.py [--small 12 --big 36] [--repeats 2] [--save results.json]

Clips are what users' collections hold: demo tracks from `tasks.demo` resampled to 44.1 kHz,
made stereo with slightly different channels, and written as OGG Vorbis into a temporary folder.
Five contenders run on a small and a big set, each in its own subprocess (fresh interpreter):

    librosa  `librosa.load(path, sr=22050)` then MFCC (+ deltas), mel spectrogram, chroma_stft,
             spectral contrast, centroid, roll-off, zero-crossing rate, RMS and beat_track,
             one call (and one STFT) per descriptor, file after file, summaries to a parquet file
    ours     `python -m flows ingest DATA --workdir W`, the command a user types, on a fresh
             work directory: its own temporary Prefect server, MLflow on a fresh SQLite store,
             decoded-audio and feature stores on disk (a first run on a new machine)
    ours_warm  the same command with Prefect and MLflow databases that already exist (a user's
             second run on a new collection): fresh work directory, so nothing comes from a cache
    ours_serve the same command while `python -m flows serve` runs (started by the benchmark
             before any timing): the command uses that Prefect server instead of starting one
    core     `decode_audio` + `FeatureExtractor` in a plain loop on one thread (no Prefect, no
             MLflow, no store, no parallelism): the compute cost per clip on one core, like the
             librosa loop; the CPU time of `ours` minus that of `core` is the orchestration's

Before timing, every side runs once on one clip (untimed), so that librosa's numba cache, Python
byte code and the page cache are warm for all, as on a machine where the tools were used before.

Each side's wall time (launch to exit) and CPU time (user + system, its children included) are
fitted as `startup + n_clips * marginal` from the two sizes:
marginal = (t_big - t_small) / (n_big - n_small), startup = t_small - n_small * marginal.
Peak memory is the largest sum of RSS over the subprocess and its children (the Prefect server is
one), sampled every 0.1 s, and the kernel's peak RSS of the largest single process (`wait4`).
Features are compared per track on the big set: median relative error of ours against librosa.

Not part of pytest (nothing here is collected). The machine may be shared: use `--repeats 2` or
more; the fit uses the fastest run of each (side, size), the usual way to filter out noise, and
is marked "noisy" when the repeats of one size disagree by more than half the difference between
the sizes. Other processes stretch wall time but hardly CPU time, so the CPU figures stay usable
under load, and they bound the wall figures (see `_wall_per_clip_s`): the verdicts on the issue's
targets come from the wall fit when it is clean, else from those bounds when they are decisive.

This file is the entry point (options, the order of the runs) and, with the hidden `--worker SIDE`
option, the subprocess that runs an in-process side. The rest lives next to it:
bench/feature_sides.py (the clips and what each side runs), bench/feature_measure.py (one
subprocess run with its time, CPU and memory), bench/feature_report.py (fits, ratios, verdicts,
feature comparison and the printed tables), bench/tables.py (the table printer).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.feature_measure import Measurement, measure  # noqa: E402  (needs the repo root on sys.path)
from bench.feature_report import report  # noqa: E402
from bench.feature_sides import (  # noqa: E402
    CLI_SIDES,
    CLIP_RATE,
    SIDES,
    WORKERS,
    make_clips,
    make_warmup_folder,
    running_serve,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=12, help="Clips in the small set.")
    parser.add_argument("--big", type=int, default=36, help="Clips in the big set.")
    parser.add_argument(
        "--repeats", type=int, default=2, help="Runs of each side and size (the fastest counts)."
    )
    parser.add_argument("--seed", type=int, default=0, help="Seed of the demo tracks.")
    parser.add_argument(
        "--sides", nargs="+", choices=SIDES, default=list(SIDES), help="Contenders to run."
    )
    parser.add_argument("--save", type=Path, help="Write the figures to this JSON file.")
    parser.add_argument(
        "--keep", action="store_true", help="Keep the temporary folder (clips, logs, stores)."
    )
    # internal: one side in a subprocess
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _run_worker(args: argparse.Namespace) -> int:
    """`--worker SIDE`: run one in-process side on `--data`, write `--out/result.json`."""
    entered_at = time.time()
    result = WORKERS[args.worker](args.data, args.out)
    result |= {"entered_at": entered_at, "finished_at": time.time()}
    (args.out / "result.json").write_text(json.dumps(result))
    return 0


def _measure_sides(
    args: argparse.Namespace, small: Path, big: Path, scratch: Path
) -> list[Measurement]:
    """Warm every side up on one clip (untimed), then time each side on both sets, `--repeats`
    times, printing one line per run."""
    warmup = make_warmup_folder(small, scratch / "clips" / "warmup")
    serve = running_serve(scratch) if "ours_serve" in args.sides else contextlib.nullcontext()
    with serve:
        for side in args.sides:
            measure(side, warmup, scratch / "runs", "warmup")
        print("warm-up runs done (untimed)", flush=True)
        measurements = []
        for repeat in range(args.repeats):
            # Interleave sides and sizes so background load hits all of them alike.
            for side in args.sides:
                for data in (small, big):
                    m = measure(side, data, scratch / "runs", repeat)
                    measurements.append(m)
                    print(
                        f"  {side:10s} {m.n_clips:3d} clips: {m.wall_s:6.1f} s wall "
                        f"({m.launch_s:.1f} launch, {m.import_s:.1f} import, "
                        f"{m.work_s:.1f} work, {m.exit_s:.1f} exit), {m.cpu_s:6.1f} s CPU, "
                        f"{m.peak_tree_mb:5.0f} MB peak",
                        flush=True,
                    )
    return measurements


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return _run_worker(args)
    if "librosa" not in args.sides or not set(CLI_SIDES) & set(args.sides):
        raise SystemExit("--sides needs librosa and at least one of " + ", ".join(CLI_SIDES))
    if not 1 <= args.small < args.big:
        raise SystemExit(f"need 1 <= --small < --big (got --small {args.small} --big {args.big})")

    scratch = Path(tempfile.mkdtemp(prefix="bench-features-"))
    try:
        started = time.perf_counter()
        small, big = make_clips(
            scratch / "clips", n_small=args.small, n_big=args.big, seed=args.seed
        )
        print(
            f"made {args.big} clips (30 s, {CLIP_RATE} Hz stereo OGG Vorbis) in "
            f"{time.perf_counter() - started:.1f} s; {os.cpu_count()} CPUs, load average "
            f"{os.getloadavg()[0]:.2f}",
            flush=True,
        )
        measurements = _measure_sides(args, small, big, scratch)
        figures = report(measurements, args.small, args.big)
        if args.save:
            args.save.write_text(json.dumps(figures, indent=2, default=str))
            print(f"\nfigures written to {args.save}")
    finally:
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
