"""Benchmark: writing the demo collection in this process vs with one worker process per core.

    .venv/bin/python bench/demo.py [--tracks 120] [--duration 30] [--workers 1 0] [--repeats 1]

`generate_demo_dataset` (tasks/demo/writer.py) writes the same collection once per `--workers`
value (1: all in this process, the baseline; 0: the automatic choice, one worker per core for a
set this large; N: N workers) into a fresh temporary folder, `--repeats` times each, fastest
kept. Reported per setting: wall seconds, CPU seconds of this process and its (finished) worker
processes together, wall time relative to the baseline, and a digest of every file written, which
must be the same for every setting. Imports happen before any timing (as in `make run`, where the
pipeline has imported them already); a worker's own start-up (importing numpy and scipy) is timed.
Not part of pytest.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.tables import print_table  # noqa: E402  (needs the repo root on sys.path)


def _cpu_s() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def _digest(root: Path) -> str:
    """sha256 over the relative path and content of every file below `root`."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(root)).encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def _one_run(tracks: int, duration_s: float, workers: int) -> tuple[float, float, str]:
    from tasks.demo import generate_demo_dataset

    with tempfile.TemporaryDirectory(prefix="bench-demo-") as scratch:
        wall, cpu = time.perf_counter(), _cpu_s()
        dataset = generate_demo_dataset(
            Path(scratch) / "demo",
            tracks=tracks,
            seed=0,
            duration_s=duration_s,
            workers=workers or None,
        )
        wall, cpu = time.perf_counter() - wall, _cpu_s() - cpu
        return wall, cpu, _digest(dataset.root)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=120)
    parser.add_argument("--duration", type=float, default=30.0, help="clip length, seconds")
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 0], help="1: baseline; 0: automatic"
    )
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args(argv)

    import polars as pl

    import tasks.demo  # noqa: F401  (imported before any timing)

    rows = []
    for workers in args.workers:
        runs = [_one_run(args.tracks, args.duration, workers) for _ in range(args.repeats)]
        wall, cpu, digest = min(runs)
        rows.append(
            {
                "workers": "auto" if workers == 0 else str(workers),
                "wall s": wall,
                "CPU s": cpu,
                "digest": digest,
            }
        )
    table = pl.DataFrame(rows).with_columns(
        (pl.col("wall s") / pl.first("wall s")).alias("x baseline wall")
    )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print_table(
        f"demo collection: {args.tracks} tracks of {args.duration:g} s, {os.cpu_count()} cores, "
        f"load average {load:.2f}",
        table,
        float_precision=2,
    )
    if table["digest"].n_unique() != 1:
        print("error: the settings wrote different files", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
