"""Benchmark: the conv VAE's speed and cluster quality under candidate settings, on real music.

    .venv/bin/python bench/conv_vae.py                       # every variant, 1 training seed
    .venv/bin/python bench/conv_vae.py --variants before after --seeds 0 1 2 --save conv.json
    .venv/bin/python bench/conv_vae.py --data /work/shared/data/realmusic-dev --cache /tmp/cvb

The collection (default `../shared/data/realmusic-dev`: 64 real game-soundtrack clips, 6 labels
given by the GTZAN-style folders) is ingested once with the real ingest flow (default
`FeatureConfig`: 128 mel bands x 128-frame crops) into `--cache`. Then every variant trains the conv
VAE exactly as the training task prepares it (`prepare_training`: track split, per-band
normalisation) through `train_model`, on the CPU, with the quick profile's epochs and patience,
encodes every track (crop means averaged per track, `encode_tracks`) and clusters the track
latents with KMeans (k = number of labels, 10 restarts, 3 seeds). Reported per variant, the
median over training seeds:

    s/epoch      median epoch of the training loop (no validation)
    x speed      the baseline's s/epoch divided by the variant's (same run: the machine's load
                 cancels out); > 1 is faster
    wall_s       the whole `train_model` call (validation passes and early stopping included)
    NMI          normalised mutual information of the KMeans clusters with the labels
    d NMI        NMI minus the baseline's

All variants run in one process, one after the other, seed by seed, so each seed sees about the
same load. With 64 tracks an NMI difference below ~0.05 is within the spread of training seeds
(printed). Not part of pytest.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.tables import print_table  # noqa: E402  (needs the repo root on sys.path)

DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "realmusic-dev"


@dataclass(frozen=True)
class Variant:
    """One way to train the conv VAE: model config overrides and training settings."""

    description: str
    model: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    channels_last: bool = True  # the activations' layout (`ConvVAE.memory_format`)


# The quick profile's conv VAE as tasks/training/comparison.py set it before this study.
_BEFORE_MODEL = {"channels": [16, 32, 64, 128]}
_BEFORE_TRAIN = {"epochs": 8, "patience": 4, "batch_size": 32}

VARIANTS: dict[str, Variant] = {
    "before": Variant(
        "quick profile before: channels 16-128, batch 32, NCHW",
        _BEFORE_MODEL,
        _BEFORE_TRAIN,
        channels_last=False,
    ),
    "after": Variant("the same, channels-last activations", _BEFORE_MODEL, _BEFORE_TRAIN),
    "batch64": Variant("channels-last, batch 64", _BEFORE_MODEL, {"batch_size": 64}),
    "3 stages": Variant("channels-last, channels 16-64", {"channels": [16, 32, 64]}),
    "crops4": Variant(
        "channels-last, 4 random crops per track and epoch, 12 epochs",
        _BEFORE_MODEL,
        {**_BEFORE_TRAIN, "crops_per_track": 4, "epochs": 12, "patience": 6},
    ),
    "crops4x8": Variant(
        "channels-last, 4 random crops per track and epoch, 8 epochs",
        _BEFORE_MODEL,
        {**_BEFORE_TRAIN, "crops_per_track": 4},
    ),
}


def prepare(data: Path, cache: Path) -> dict[str, Any]:
    """Ingest `data` into `cache/work` (cached by the flow on later runs): work dir, feature key."""
    from flows.ingest import IngestConfig, ingest_flow

    started = time.perf_counter()
    ingested = ingest_flow(IngestConfig(data=data, workdir=cache / "work"))
    if ingested.n_ok < 10:
        raise SystemExit(f"{data}: only {ingested.n_ok} usable tracks, need at least 10")
    return {
        "workdir": str(ingested.workspace.root),
        "feature_key": ingested.feature_key,
        "n_tracks": ingested.n_ok,
        "ingest_s": time.perf_counter() - started,
    }


def nmi_of_latents(latents: Any, labels: list[str], n_clusters: int, seeds: int = 3) -> float:
    """Mean NMI over KMeans seeds of the track latents (clustered as they are: the conv VAE's
    latent units share one scale, `latent_units_comparable`) against `labels`."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import normalized_mutual_info_score

    scores = []
    for seed in range(seeds):
        clusters = KMeans(n_clusters, n_init=10, random_state=seed).fit_predict(latents)
        scores.append(normalized_mutual_info_score(labels, clusters))
    return float(statistics.fmean(scores))


def train_variant(
    name: str, workdir: Path, feature_key: str, seed: int, epochs: int | None
) -> dict[str, Any]:
    """Train the conv VAE as `VARIANTS[name]` says, on the CPU; its speed and its clusters' NMI."""
    import torch

    from tasks.core.workspace import Workspace
    from tasks.training.representation import ModelSpec, prepare_training
    from tasks.training.trainer import TrainConfig, encode_tracks, train_model

    variant = VARIANTS[name]
    train = {**_BEFORE_TRAIN, **variant.train, "seed": seed, "device": "cpu"}
    if epochs is not None:
        train["epochs"] = epochs
    config = TrainConfig(**train)
    spec = ModelSpec(model="conv_vae", train=config, overrides=variant.model)
    ready = prepare_training(spec, Workspace.open(workdir), feature_key)
    if not variant.channels_last:
        ready.model.memory_format = torch.contiguous_format
    started = time.perf_counter()
    outcome = train_model(ready.model, ready.batches["train"], ready.validation, config)
    wall = time.perf_counter() - started
    latents = encode_tracks(ready.model, ready.batches["all"], ready.tracks["track_id"].to_list())
    labels = ready.tracks["genre"].to_list()
    n_train = ready.batches["train"].examples_per_epoch  # crops one epoch really sees
    epoch_s = [n_train / rate for rate in outcome.history["examples_per_second"]]
    return {
        "variant": name,
        "seed": seed,
        "epochs": len(epoch_s),
        "median_epoch_s": statistics.median(epoch_s),
        "wall_s": wall,
        # the last epoch's: with fewer epochs than the KL warm-up no best epoch is judged
        "val_loss": outcome.history["val_loss"][-1],
        "nmi": nmi_of_latents(latents.mu, labels, len(set(labels))),
        "parameters": sum(p.numel() for p in ready.model.parameters()),
        "train_crops": n_train,
    }


def summary_table(results: list[dict[str, Any]], baseline: str) -> Any:
    """One row per variant: medians over seeds, speed and NMI against `baseline`."""
    import polars as pl

    by_variant: dict[str, list[dict[str, Any]]] = {}
    for result in results:
        by_variant.setdefault(result["variant"], []).append(result)

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in by_variant[name])

    rows = []
    for name, runs in by_variant.items():
        nmis = [r["nmi"] for r in runs]
        rows.append(
            {
                "variant": name,
                "params_k": round(runs[0]["parameters"] / 1000, 1),
                "s/epoch": round(median(name, "median_epoch_s"), 2),
                "x speed": round(
                    median(baseline, "median_epoch_s") / median(name, "median_epoch_s"), 2
                ),
                "wall_s": round(median(name, "wall_s"), 1),
                "NMI": round(statistics.median(nmis), 3),
                "NMI min-max": f"{min(nmis):.3f}-{max(nmis):.3f}",
                "d NMI": round(statistics.median(nmis) - median(baseline, "nmi"), 3),
                "val loss": round(median(name, "val_loss")),
                "what": VARIANTS[name].description,
            }
        )
    return pl.DataFrame(rows)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--baseline", choices=list(VARIANTS), default="before")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="Training seeds.")
    parser.add_argument("--epochs", type=int, help="Override every variant's epochs (quick look).")
    parser.add_argument("--threads", type=int, default=0, help="Torch threads (0: default).")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Labelled collection.")
    parser.add_argument("--cache", type=Path, help="Keep the ingested work dir here.")
    parser.add_argument("--save", type=Path, help="Write every figure to this JSON file.")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cache = (args.cache or Path(tempfile.mkdtemp(prefix="bench-conv-vae-"))).resolve()
    cache.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_HOME", str(cache / "prefect"))
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{cache / 'mlflow.db'}")
    os.environ.pop("PREFECT_API_URL", None)  # its own temporary server, never a shared one
    # The process defaults of every entry point (OMP_WAIT_POLICY=PASSIVE, Prefect's start-up
    # timeout), before torch starts its OpenMP runtime: trained as the pipeline trains it.
    from flows.runtime.environment import apply_runtime_defaults

    apply_runtime_defaults()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    prepared = prepare(args.data, cache)
    print(
        f"{args.data.name}: {prepared['n_tracks']} tracks ingested in "
        f"{prepared['ingest_s']:.0f} s; "
        f"{torch.get_num_threads()} torch threads, load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    variants = list(dict.fromkeys([args.baseline, *args.variants]))
    results = []
    for seed in args.seeds:
        for name in variants:
            result = train_variant(
                name, Path(prepared["workdir"]), prepared["feature_key"], seed, args.epochs
            )
            results.append(result)
            print(
                f"{name} seed {seed}: {result['median_epoch_s']:.2f} s/epoch, "
                f"{result['epochs']} epochs, NMI {result['nmi']:.3f}",
                flush=True,
            )
    table = summary_table(results, args.baseline)
    print_table(
        f"Conv VAE on {args.data.name} (CPU, {torch.get_num_threads()} threads, seeds "
        f"{args.seeds}; load average {os.getloadavg()[0]:.1f} at the end)",
        table,
    )
    if args.save:
        args.save.write_text(json.dumps({"data": prepared, "runs": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
