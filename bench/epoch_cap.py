"""Benchmark: what the quick profile's epoch cap (`TrainConfig.max_crops_per_epoch`) saves and
costs, per model, on a work dir the pipeline has ingested.

    .venv/bin/python -m flows demo-data /tmp/d1000 --tracks 1000
    .venv/bin/python -m flows lyrics /tmp/d1000 --workdir /tmp/w1000     # runs the ingest first
    .venv/bin/python bench/epoch_cap.py /tmp/w1000                       # MLP-VAE, VaDE, multimodal
    .venv/bin/python bench/epoch_cap.py /tmp/w1000 --models conv_vae --save cap.json  # ~15 min

Every model trains twice, on every crop (the baseline) and under the quick profile's cap, with the
quick profile's settings (`model_specs("quick")`: epochs, patience, batch size, the conv VAE's
channels), exactly as the training task prepares it (`prepare_training`), through `train_model` on
one CPU thread; then its track latents are clustered with KMeans (k = number of genres, 3 seeds,
`bench.conv_vae.nmi_of_latents`).
Reported per model and setting:

    crops/epoch  crops an epoch of training sees
    loop_s       the training loop (no validation)
    x speed      the baseline's loop_s divided by this one's (same run)
    NMI          KMeans clusters of the track latents against the genres (mean of 3 seeds)
    val_loss     best validation loss per crop (on each setting's own validation crops: under the
                 cap a fixed share of each validation track, so compare it with care)

The runs of one model follow each other, so they see about the same load. Not part of pytest.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.conv_vae import nmi_of_latents
from bench.tables import print_table

DEFAULT_MODELS = ("mlp_vae", "vade", "multimodal_vae")
# Models of the quick comparison trained without labels (the genre-conditioned CVAE is not).
MODEL_NAMES = ("ae", "mlp_vae", "beta_vae", "conv_vae", "cvae", "vade", "multimodal_vae")


def train_and_score(workdir: Path, spec: Any) -> dict[str, Any]:
    """Train `spec` as the training task prepares it; time the loop; NMI of KMeans on latents."""
    from tasks.core.workspace import Workspace
    from tasks.training.representation import prepare_training
    from tasks.training.trainer import encode_tracks, train_model

    ready = prepare_training(spec, Workspace.open(workdir), feature_key_of(workdir))
    started = time.perf_counter()
    outcome = train_model(ready.model, ready.batches["train"], ready.validation, spec.train)
    wall = time.perf_counter() - started
    track_ids = ready.tracks["track_id"].to_list()
    latents = encode_tracks(ready.model, ready.batches["all"], track_ids)
    genres = ready.tracks["genre"].to_list()
    return {
        "crops_per_epoch": ready.batches["train"].examples_per_epoch,
        "epochs": len(outcome.history["train_loss"]),
        "loop_s": round(outcome.seconds, 2),
        "wall_s": round(wall, 2),
        "nmi": round(nmi_of_latents(latents.mu, genres, len(set(genres))), 4),
        "val_loss": round(outcome.best_validation_loss, 2),
    }


def feature_key_of(workdir: Path) -> str:
    """The feature key of the one ingest in `workdir`; exits with one line otherwise."""
    store = workdir / "store" / "features"
    keys = sorted(path.name for path in store.iterdir()) if store.is_dir() else []
    if len(keys) != 1:
        raise SystemExit(
            f"error: {workdir} holds the features of {len(keys)} ingests, not one (make it with "
            "`python -m flows lyrics DATA --workdir W`)"
        )
    return keys[0]


def quick_spec(model: str, capped: bool) -> Any:
    """The quick profile's spec of `model` (the first of its rows), with or without the cap."""
    from tasks.training.comparison import model_specs

    [spec, *_] = [s for s in model_specs("quick") if s.model == model and not s.uses_labels]
    if not capped:
        spec = spec.model_copy(
            update={"train": spec.train.model_copy(update={"max_crops_per_epoch": None})}
        )
    return spec


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir", type=Path, help="A work dir with ingested tracks and lyrics.")
    parser.add_argument(
        "--models", nargs="+", default=list(DEFAULT_MODELS), choices=sorted(MODEL_NAMES)
    )
    parser.add_argument("--save", type=Path, help="Write the rows to this JSON file.")
    args = parser.parse_args(argv)
    feature_key_of(args.workdir)  # before any training

    import polars as pl
    import torch

    torch.set_num_threads(1)
    rows = []
    for model in args.models:
        baseline = None
        for capped in (False, True):
            result = train_and_score(args.workdir, quick_spec(model, capped))
            baseline = baseline or result
            rows.append(
                {
                    "model": model,
                    "setting": "quick cap" if capped else "every crop",
                    **result,
                    "x_speed": round(baseline["loop_s"] / max(result["loop_s"], 1e-9), 2),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    print_table("the epoch cap per model (1 torch thread)", pl.DataFrame(rows))
    if args.save:
        args.save.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
