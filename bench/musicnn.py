"""Benchmark: the pretrained musicnn extractor, straight port against ours, and the NMI it buys.

    .venv/bin/python bench/musicnn.py [--data ../shared/data/realmusic-dev] [--straight-clips 8]
                                      [--quick 2,3,4] [--network MSD_musicnn]

Needs the weights (`make install`). On the clips of a labelled set (a folder with the
realmusic-dev `manifest.csv`: `track_id,label,audio_path,...`), decoded at 16 kHz beforehand
(decoding is not timed), it measures in the same run:

    straight   the package's computation order in PyTorch: one clip at a time, every patch,
               each front-end block as conv -> ReLU -> batch norm -> max over frequency on a
               one-input-channel convolution (what a line-by-line port does)
    full       `PretrainedExtractor.batch` over all clips, every patch (the full profile)
    quick-N    the same with `max_patches=N` (patches evenly spread over the clip)

For each: seconds per clip of wall time and of CPU time (user + system; under load from other
processes wall time stretches, CPU time much less), and the speed-up against straight. Then
the NMI against the labels of KMeans (k = number of labels, 5 seeds) on the standardised
per-track mean embeddings, mean ± std over seeds, for full and each quick-N, so the quality a
patch cap costs is measured next to the time it saves. quick-N's embeddings are the patches
`patch_starts` picks taken from the full run (patches are computed independently, so these are
the same numbers) and quick-N is timed on the first `--timing-clips` clips, to spare a shared
CPU. On a machine with a GPU, `full` and `quick-N` are also timed there.
"""

from __future__ import annotations

from flows.runtime.environment import apply_runtime_defaults

# OMP_WAIT_POLICY=PASSIVE and the other process defaults of every entry point, before torch
# is imported (OpenMP reads them when it loads).
apply_runtime_defaults()

# ruff: noqa: E402
import argparse
import csv
import time
from collections.abc import Callable
from pathlib import Path

import librosa
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score
from sklearn.preprocessing import StandardScaler

from models.musicnn import Musicnn
from tasks.audio.pretrained import (
    PRETRAINED_SAMPLE_RATE,
    PretrainedConfig,
    PretrainedExtractor,
    patch_starts,
)

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared/data/realmusic-dev"
SEEDS = range(5)


def load_clips(data: Path) -> tuple[list[np.ndarray], list[str]]:
    with (data / "manifest.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    clips = [librosa.load(data / row["audio_path"], sr=PRETRAINED_SAMPLE_RATE)[0] for row in rows]
    return clips, [row["label"] for row in rows]


def straight_block(block: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """conv -> ReLU -> batch norm -> max over frequency, in the original's order."""
    conv, norm = block.conv, block.norm
    y = F.relu(F.conv2d(F.pad(x, (0, 0, *block.time_padding)), conv.weight, conv.bias))
    return norm(y).amax(dim=3)


def straight_forward(network: Musicnn, patches: torch.Tensor) -> torch.Tensor:
    """The network in the original's computation order (for the baseline timing)."""
    x = network.input_norm(patches.unsqueeze(1))
    frontend = torch.cat([straight_block(b, x) for b in (*network.timbral, *network.temporal)], 1)
    first = network.midend[0](frontend)
    second = network.midend[1](first) + first
    third = network.midend[2](second) + second
    features = torch.cat([frontend, first, second, third], dim=1)
    pooled = torch.stack([features.amax(dim=2), features.mean(dim=2)], dim=2).flatten(1)
    hidden = F.relu(network.penultimate(network.backend_norm(pooled)))
    return network.penultimate_norm(hidden)


def timed(run: Callable[[], object]) -> tuple[float, float, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = run()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def nmi(embeddings: np.ndarray, labels: list[str]) -> tuple[float, float]:
    scaled = StandardScaler().fit_transform(embeddings)
    k = len(set(labels))
    scores = [
        normalized_mutual_info_score(
            labels, KMeans(k, n_init=10, random_state=seed).fit_predict(scaled)
        )
        for seed in SEEDS
    ]
    return float(np.mean(scores)), float(np.std(scores))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--straight-clips", type=int, default=4)
    parser.add_argument("--timing-clips", type=int, default=16)
    parser.add_argument("--quick", default="2,3,4", help="max_patches values to measure")
    parser.add_argument("--network", default="MSD_musicnn")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    clips, labels = load_clips(args.data)
    print(f"{len(clips)} clips, {len(set(labels))} labels, torch threads {torch.get_num_threads()}")
    extractor = PretrainedExtractor(
        PretrainedConfig(network=args.network, device="cpu", batch_size=args.batch_size)
    )
    subset = clips[: args.straight_clips]

    def run_straight() -> None:
        with torch.inference_mode():
            for clip in subset:
                spectrogram = extractor.log_mel(clip)
                starts = patch_starts(spectrogram.shape[0], None)
                patches = torch.stack([spectrogram[s : s + 187] for s in starts])
                for patch in patches:  # the package feeds one patch per run (BATCH_SIZE = 1)
                    straight_forward(extractor.network, patch[None])

    extractor.batch(subset[:1])  # warm-up: allocator, oneDNN kernels
    wall, cpu, _ = timed(run_straight)
    base = wall / len(subset)
    print(f"{'straight':>10}: {base:.3f} s/clip wall, {cpu / len(subset):.3f} s/clip CPU")

    quick = [int(n) for n in args.quick.split(",")]
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    full_features = []
    for device in devices:
        for max_patches in [None, *quick]:
            name = "full" if max_patches is None else f"quick-{max_patches}"
            config = PretrainedConfig(
                network=args.network, max_patches=max_patches, device=device,
                batch_size=args.batch_size,
            )  # fmt: skip
            runner = PretrainedExtractor(config)
            runner.batch(clips[:2])  # warm-up
            timing = clips if max_patches is None else clips[: args.timing_clips]
            wall, cpu, features = timed(lambda runner=runner, timing=timing: runner.batch(timing))
            per_clip = wall / len(timing)
            print(
                f"{name:>10} [{device}]: {per_clip:.3f} s/clip wall ({base / per_clip:.1f}x "
                f"straight), {cpu / len(timing):.3f} s/clip CPU, {len(timing) / wall:.1f} clips/s"
                f" ({len(timing)} clips)"
            )
            if device == "cpu" and max_patches is None:
                full_features = features
    k = len(set(labels))
    for max_patches in [None, *quick]:
        pooled = []
        for features in full_features:
            rows = patch_starts(187 * features.patch_embeddings.shape[0], max_patches) // 187
            pooled.append(features.patch_embeddings[rows].mean(axis=0))
        mean, std = nmi(np.stack(pooled), labels)
        name = "full" if max_patches is None else f"quick-{max_patches}"
        print(f"NMI {name:>10}: {mean:.3f} ± {std:.3f} (KMeans k={k}, 5 seeds)")


if __name__ == "__main__":
    main()
