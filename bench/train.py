"""Benchmark: training throughput, epoch time and peak memory of every model of the zoo on the CPU.

    .venv/bin/python bench/train.py [--models mlp_vae conv_vae ...] [--epochs 3] [--tracks 120]
                                    [--threads 1 2] [--omp-wait-policy passive] [--repeats 1]
                                    [--baseline mlp_vae] [--cache DIR] [--save results.json]

The demo collection (`tasks.demo`, 30 s clips) is generated into a scratch folder (or
`--cache DIR`, reused by later runs), ingested once with the real ingest flow (default
`FeatureConfig`: 128 mel bands, 128-frame crops, so about 10 crops per track) and its lyrics
embedded once with the offline char n-gram encoder (the same width on every machine, whatever is in
the Hugging Face cache). The crops of both input kinds are gathered into their memory maps before
any timing.

Each model then trains in its own fresh subprocess, so its peak memory is its own: the data are
built the way `train_representation` (tasks/training/representation.py) builds them (ok tracks,
track split, side information, per-band normalisation, default model config) and
`tasks.training.trainer.train_model`
runs `--epochs` epochs with early stopping out of reach, on the CPU, without MLflow, once per
`--threads` value (torch intra-op threads; 0 = torch's default, one per core). Reported:

    s/epoch        median over epochs of the training loop alone (no validation), seconds; VaDE's
                   pre-training epochs (`--pretrain-epochs`) are excluded
    examples/s     training crops / s/epoch
    x baseline     examples/s divided by that of `--baseline` (mlp_vae) with the same threads in
                   the same run: the number to compare between runs, since it cancels most of the
                   machine and its load
    wall s         the whole `train_model` call (pre-training, validation, prior fit included)
    peak MB        the kernel's peak RSS of the subprocess during training (`VmHWM`, reset first)
    growth MB      that peak minus the RSS just before training (what training itself adds)

The median and `--repeats` (fastest repeat kept) filter out most of the noise of a shared machine;
the load average is printed with the table. On a machine whose cores are busy with other work,
torch's default OpenMP threads spin-wait for each other at every operator and small models train
tens of times slower with 2 threads than with 1; `--omp-wait-policy passive` (OMP_WAIT_POLICY for
the subprocesses) or `--threads 1` shows how much of an epoch that costs. Not part of pytest
(nothing here is collected).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.tables import print_table  # noqa: E402  (needs the repo root on sys.path)

MODELS = ("ae", "mlp_vae", "conv_vae", "beta_vae", "cvae", "vade", "multimodal_vae")
DEMO_SEED = 0


# ==============================================================================================
# Preparation (one subprocess): demo data -> ingest -> lyrics -> gathered crops


def prepare(cache: Path, tracks: int, duration_s: float) -> dict[str, Any]:
    """Generate, ingest and embed the lyrics of the demo set under `cache`; gather the crops.

    Returns the work directory, feature key and sizes. Raises RuntimeError if a track is
    quarantined (the timing would then be on a different set than asked for).
    """
    import polars as pl

    from flows.ingest import IngestConfig, ingest_flow
    from flows.lyrics import LyricsConfig, lyrics_flow
    from tasks.demo import generate_demo_dataset
    from tasks.lyrics.embedding import EncoderSettings
    from tasks.training.data import gather_crops

    data = cache / f"demo-{tracks}x{duration_s:g}s"
    started = time.perf_counter()
    if not (data / "demo_dataset.json").exists():
        generate_demo_dataset(data, tracks=tracks, seed=DEMO_SEED, duration_s=duration_s)
    generated = time.perf_counter()
    workdir = cache / f"work-{tracks}x{duration_s:g}s"
    ingested = ingest_flow(IngestConfig(data=data, workdir=workdir))
    if ingested.n_quarantined:
        raise RuntimeError(f"ingest quarantined {ingested.n_quarantined} demo tracks")
    lyrics = lyrics_flow(
        LyricsConfig(data=data, workdir=workdir, encoder=EncoderSettings(kind="char-ngram"))
    )
    table = (
        pl.read_parquet(ingested.workspace.tracks_table)
        .filter(pl.col("status") == "ok")
        .unique("track_id", keep="first")
        .sort("track_id")
    )
    for kind in ("vector", "spectrogram"):
        gather_crops(
            ingested.workspace,
            ingested.feature_key,
            table["track_id"].to_list(),
            table["sha256"].to_list(),
            kind,
        )
    return {
        "workdir": str(ingested.workspace.root),
        "feature_key": ingested.feature_key,
        "n_tracks": ingested.n_ok,
        "n_with_lyrics": lyrics.n_with_lyrics,
        "lyrics_encoder": lyrics.encoder_id,
        "generate_s": generated - started,
        "ingest_and_lyrics_s": time.perf_counter() - generated,
    }


# ==============================================================================================
# One model in one subprocess


def _proc_status_kib(field: str) -> int:
    """A `kB` line of /proc/self/status (VmRSS, VmHWM), in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise KeyError(field)


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter of this process (Linux >= 4.0); False if refused."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def train_one(
    model_name: str,
    workdir: Path,
    feature_key: str,
    *,
    epochs: int,
    pretrain_epochs: int,
    batch_size: int,
    seed: int,
    threads: int,
) -> dict[str, Any]:
    """Build the data like `train_representation` and time `train_model` for `model_name`.

    threads: torch intra-op threads, 0 for torch's default.
    """
    started = time.perf_counter()
    import numpy as np
    import torch

    if threads:
        torch.set_num_threads(threads)

    from tasks.core.workspace import Workspace
    from tasks.training.representation import ModelSpec, prepare_training
    from tasks.training.trainer import TrainConfig, train_model

    imported = time.perf_counter()
    # Early stopping out of reach: every run does the same number of epochs.
    config = TrainConfig(
        epochs=epochs,
        pretrain_epochs=pretrain_epochs,
        batch_size=batch_size,
        patience=epochs + 1,
        seed=seed,
        device="cpu",
    )
    spec = ModelSpec(model=model_name, train=config)
    # Exactly as the training task prepares it (tasks.training.representation.prepare_training).
    ready = prepare_training(spec, Workspace.open(workdir), feature_key)
    model, arrays = ready.model, ready.arrays
    train = ready.batches["train"]
    prepared = time.perf_counter()

    rss_before_kib = _proc_status_kib("VmRSS")
    peak_was_reset = _reset_peak_rss()
    training_started = time.perf_counter()
    outcome = train_model(model, train, ready.validation, config)
    wall = time.perf_counter() - training_started
    peak_kib = _proc_status_kib("VmHWM")

    n_train = len(train.rows)
    epoch_seconds = [n_train / rate for rate in outcome.history["examples_per_second"]]
    median_epoch_s = statistics.median(epoch_seconds)
    return {
        "model": model_name,
        "parameters": sum(p.numel() for p in model.parameters()),
        "input_shape": list(arrays.x.shape[1:]),
        "train_crops": n_train,
        "validation_crops": len(ready.batches["val"].rows),
        "epochs": len(epoch_seconds),
        "pretrain_epochs": len(outcome.history.get("pretrain_train_loss", [])),
        "epoch_s": epoch_seconds,
        "median_epoch_s": median_epoch_s,
        "examples_per_second": n_train / median_epoch_s,
        "wall_s": wall,
        "final_train_loss": outcome.history["train_loss"][-1],
        "rss_before_mb": rss_before_kib / 1024,
        "peak_mb": peak_kib / 1024,
        "growth_mb": (peak_kib - rss_before_kib) / 1024 if peak_was_reset else None,
        "peak_reset": peak_was_reset,
        "import_s": imported - started,
        "data_s": prepared - imported,
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
        "torch": torch.__version__,
        "numpy": np.__version__,
    }


# ==============================================================================================
# The parent: subprocesses, table


def _environment(cache: Path, omp_wait_policy: str = "inherit") -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PREFECT_API_URL", None)  # the temporary local server, never a shared one
    if omp_wait_policy != "inherit":
        # read once when the OpenMP runtime starts, so it must be in the environment at launch
        env["OMP_WAIT_POLICY"] = omp_wait_policy.upper()
    return env | {
        "PREFECT_HOME": str(cache / "prefect_home"),
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        "MLFLOW_TRACKING_URI": f"sqlite:///{cache / 'mlflow.db'}",
    }


def _run_worker(
    arguments: list[Any], cache: Path, label: str, omp_wait_policy: str = "inherit"
) -> dict[str, Any]:
    """Run this script with `arguments` in a fresh interpreter; return its JSON result.

    Raises RuntimeError with the tail of the subprocess log when it fails.
    """
    (cache / "logs").mkdir(parents=True, exist_ok=True)
    result_file = cache / "logs" / f"{label}.json"
    result_file.unlink(missing_ok=True)
    log_path = cache / "logs" / f"{label}.log"
    command = [sys.executable, str(Path(__file__).resolve()), *arguments, "--result", result_file]
    with open(log_path, "w") as log:
        # cwd: MLflow's default artifact folder lands in the cache, not the repository
        completed = subprocess.run(
            [str(part) for part in command],
            cwd=cache,
            env=_environment(cache, omp_wait_policy),
            stdout=log,
            stderr=log,
            check=False,
        )
    if completed.returncode != 0 or not result_file.exists():
        print(log_path.read_text()[-4000:], file=sys.stderr)
        raise RuntimeError(f"{label} failed with exit code {completed.returncode} ({log_path})")
    return json.loads(result_file.read_text())


def _significant(value: float, digits: int = 4) -> float:
    return float(f"{value:.{digits}g}")


def summary_table(results: list[dict[str, Any]], baseline: str) -> Any:
    """One row per model and thread count (fastest repeat), with the throughput ratio against
    `baseline` at the same thread count."""
    import polars as pl

    best: dict[tuple[str, int], dict[str, Any]] = {}
    for result in results:
        key = (result["model"], result["torch_threads"])
        current = best.get(key)
        if current is None or result["median_epoch_s"] < current["median_epoch_s"]:
            best[key] = result
    rows = []
    for (name, threads), result in best.items():
        reference = best[(baseline, threads)]["examples_per_second"]
        rows.append(
            {
                "model": name,
                "threads": threads,
                "params_k": round(result["parameters"] / 1000, 1),
                "input": "x".join(str(size) for size in result["input_shape"]),
                "train_crops": result["train_crops"],
                "s/epoch": _significant(result["median_epoch_s"], 3),
                "examples/s": _significant(result["examples_per_second"]),
                # significant digits: the convolutional model runs at ~1/500 of the MLP baseline
                f"x {baseline}": _significant(result["examples_per_second"] / reference, 3),
                "wall_s": _significant(result["wall_s"], 3),
                "peak_MB": round(result["peak_mb"]),
                "growth_MB": None if result["growth_mb"] is None else round(result["growth_mb"]),
            }
        )
    return pl.DataFrame(rows)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--epochs", type=int, default=3, help="Timed epochs per model (>= 1).")
    parser.add_argument(
        "--pretrain-epochs", type=int, default=1, help="VaDE pre-training epochs (not timed)."
    )
    parser.add_argument("--tracks", type=int, default=120, help="Demo tracks to generate.")
    parser.add_argument("--duration", type=float, default=30.0, help="Seconds per demo clip.")
    parser.add_argument("--batch-size", type=int, default=64, help="Crops per mini-batch.")
    parser.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=[0],
        help="Torch intra-op thread counts to time each model with (0: torch's default).",
    )
    parser.add_argument(
        "--omp-wait-policy",
        choices=("inherit", "passive", "active"),
        default="inherit",
        help="OMP_WAIT_POLICY of the training subprocesses (inherit: leave the environment).",
    )
    parser.add_argument("--repeats", type=int, default=1, help="Runs per model; fastest kept.")
    parser.add_argument("--baseline", default="mlp_vae", help="Model the ratios refer to.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of weights and batch order.")
    parser.add_argument(
        "--cache",
        type=Path,
        help="Folder for the demo set, work dir and stores, kept and reused by later runs "
        "(default: a temporary folder, deleted at the end).",
    )
    parser.add_argument("--save", type=Path, help="Write every figure to this JSON file.")
    # internal: the preparation or one model, in a subprocess
    parser.add_argument("--prepare-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--train-worker", choices=MODELS, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--feature-key", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _run_as_worker(args: argparse.Namespace) -> None:
    """The internal subprocess modes: the preparation, or one model; writes `--result`."""
    if args.prepare_worker:
        result = prepare(args.cache, args.tracks, args.duration)
    else:
        result = train_one(
            args.train_worker,
            args.workdir,
            args.feature_key,
            epochs=args.epochs,
            pretrain_epochs=args.pretrain_epochs,
            batch_size=args.batch_size,
            seed=args.seed,
            threads=args.threads[0],
        )
    args.result.write_text(json.dumps(result))


def _models_to_time(args: argparse.Namespace) -> list[str]:
    """`--models` plus the baseline the ratios need. Raises SystemExit on impossible options."""
    if args.epochs < 1 or args.tracks < 10 or args.repeats < 1 or min(args.threads) < 0:
        raise SystemExit(
            "need --epochs >= 1, --tracks >= 10 (a validation split), --repeats >= 1 and "
            "--threads >= 0"
        )
    models = list(dict.fromkeys([*args.models, args.baseline]))
    if args.baseline not in MODELS:
        raise SystemExit(f"--baseline must be one of {', '.join(MODELS)}")
    return models


def _prepare_in_subprocess(args: argparse.Namespace, cache: Path) -> dict[str, Any]:
    """Run `prepare` in its own interpreter and print what it made and how long it took."""
    started = time.perf_counter()
    prepared = _run_worker(
        [
            "--prepare-worker",
            "--cache",
            cache,
            "--tracks",
            args.tracks,
            "--duration",
            args.duration,
        ],
        cache,
        "prepare",
    )
    print(
        f"demo set: {prepared['n_tracks']} tracks of {args.duration:g} s "
        f"({prepared['n_with_lyrics']} with lyrics, {prepared['lyrics_encoder']}), generated "
        f"in {prepared['generate_s']:.0f} s, ingested + lyrics in "
        f"{prepared['ingest_and_lyrics_s']:.0f} s (total {time.perf_counter() - started:.0f} "
        f"s); {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    return prepared


def _time_models(
    args: argparse.Namespace, models: list[str], prepared: dict[str, Any], cache: Path
) -> list[dict[str, Any]]:
    """Train every model once per repeat and thread count, each in a fresh subprocess."""
    data = ["--workdir", prepared["workdir"], "--feature-key", prepared["feature_key"]]
    epochs = ["--epochs", args.epochs, "--pretrain-epochs", args.pretrain_epochs]
    batches = ["--batch-size", args.batch_size, "--seed", args.seed]
    results = []
    for repeat in range(args.repeats):
        for threads in args.threads:
            for name in models:
                result = _run_worker(
                    ["--train-worker", name, *data, *epochs, *batches, "--threads", threads],
                    cache,
                    f"{name}-threads{threads}-{repeat}",
                    args.omp_wait_policy,
                )
                result["repeat"] = repeat
                results.append(result)
                print(
                    f"{name} ({result['torch_threads']} threads, repeat {repeat}): "
                    f"{result['median_epoch_s']:.2f} s/epoch, "
                    f"{result['examples_per_second']:.0f} examples/s, peak "
                    f"{result['peak_mb']:.0f} MB",
                    flush=True,
                )
    return results


def _save_figures(
    args: argparse.Namespace,
    prepared: dict[str, Any],
    results: list[dict[str, Any]],
    table: Any,
    load_average: dict[str, tuple[float, float, float]],
) -> None:
    """Write the arguments, the preparation, every run and the table as JSON to `--save`."""
    arguments = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    figures = {
        "arguments": arguments,
        "cpu_count": os.cpu_count(),
        "load_average": load_average,
        "data": prepared,
        "runs": results,
        "table": table.to_dicts(),
    }
    args.save.write_text(json.dumps(figures, indent=2))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.prepare_worker or args.train_worker:
        _run_as_worker(args)
        return 0
    models = _models_to_time(args)
    cache = (args.cache or Path(tempfile.mkdtemp(prefix="bench-train-"))).resolve()
    cache.mkdir(parents=True, exist_ok=True)
    try:
        prepared = _prepare_in_subprocess(args, cache)
        load_before = os.getloadavg()
        results = _time_models(args, models, prepared, cache)
        load_after = os.getloadavg()
        table = summary_table(results, args.baseline)
        print_table(
            f"Training on the CPU (batch {args.batch_size}, {args.epochs} epochs, median epoch; "
            f"fastest of {args.repeats} repeat(s); OMP_WAIT_POLICY "
            f"{results[0]['omp_wait_policy']}); load average {load_before[0]:.1f} before, "
            f"{load_after[0]:.1f} after",
            table,
        )
        if args.save:
            load_average = {"before": load_before, "after": load_after}
            _save_figures(args, prepared, results, table, load_average)
    finally:
        if args.cache is None:
            shutil.rmtree(cache, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
