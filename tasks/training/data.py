"""Training data read from the on-disk feature store, never the whole data set in memory.

The crops of all tracks are gathered once into one memory-mapped array per data set and feature
configuration (`WORKDIR/datasets/<key>/x.npy`), with the owning track of every crop. Batches are
read from the memory map; per-track side information (condition, lyrics embedding) is looked up
by track index.
"""

from __future__ import annotations

import hashlib
import json
import math
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from models.base import InputKind
from tasks.audio.features import load_verified
from tasks.core.workspace import Workspace

# What a vector model reads, one row per "crop": the hand-crafted summary vector of each crop of
# the feature store, or the pretrained network's penultimate embedding of each 3 s patch
# (`tasks.audio.pretrained_store`). Spectrogram models always read log-mel crops.
ModelInputs = Literal["descriptors", "musicnn"]
DEFAULT_INPUTS: ModelInputs = "descriptors"
# The feature-store array a model of each input kind is trained on: per-crop summary statistics
# (D,) or log-mel crops (n_mels, frames).
_ARRAY_BY_KIND: dict[InputKind, str] = {"vector": "crop_stats", "spectrogram": "logmel"}
# The pretrained store's array of per-patch penultimate embeddings (n_patches, 200).
_PRETRAINED_ARRAY = "patch_embeddings"


@dataclass(frozen=True)
class CropSource:
    """Where a model's crops are: the feature store (`feature_key`) or, for `inputs="musicnn"`,
    the pretrained store (`pretrained_key`), and which array of its files."""

    feature_key: str
    kind: InputKind
    inputs: ModelInputs = DEFAULT_INPUTS
    pretrained_key: str | None = None

    def __post_init__(self) -> None:
        if self.inputs != DEFAULT_INPUTS:
            if self.kind != "vector":
                raise ValueError(
                    f"inputs={self.inputs!r} is for vector models; spectrogram models read "
                    "log-mel crops (inputs='descriptors')"
                )
            if not self.pretrained_key:
                raise ValueError(f"inputs={self.inputs!r} needs the key of a pretrained store")

    @property
    def array(self) -> str:
        return _ARRAY_BY_KIND[self.kind] if self.inputs == DEFAULT_INPUTS else _PRETRAINED_ARRAY

    def file(self, workspace: Workspace, sha256: str) -> Path:
        if self.inputs == DEFAULT_INPUTS:
            return workspace.feature_file(self.feature_key, sha256)
        assert self.pretrained_key is not None  # checked in __post_init__
        return workspace.pretrained_file(self.pretrained_key, sha256)

    def count(self, workspace: Workspace, sha256: str) -> int:
        """How many crops a track has, read from a small array of its file (an npz reads one
        key at a time): not from the large log-mel crops."""
        small = "crop_stats" if self.inputs == DEFAULT_INPUTS else self.array
        path = self.file(workspace, sha256)
        try:
            # Not `load_verified`: it reads (and checksums) every array; the gathering pass
            # that follows verifies each file once.
            with np.load(path, allow_pickle=False) as data:
                return int(data[small].shape[0])
        except FileNotFoundError:
            raise
        except (zipfile.BadZipFile, EOFError, ValueError, OSError, KeyError):
            # Damaged: load_verified moves it aside and raises its one line.
            with load_verified(path) as data:
                return int(data[small].shape[0])


def read_track_crops(
    workspace: Workspace,
    feature_key: str,
    sha256: str,
    kind: InputKind,
    *,
    inputs: ModelInputs = DEFAULT_INPUTS,
    pretrained_key: str | None = None,
) -> np.ndarray:
    """The crops of one track as a model of input `kind` reading `inputs` takes them.

    Returns [shape=(n_crops, D)] for vectors (D = 200 for musicnn patches) or
    [shape=(n_crops, n_mels, frames)] for spectrograms, float32.

    Raises:
        FileNotFoundError: the track has nothing in the store of its inputs.
        ValueError: `inputs` other than descriptors for a spectrogram model, or without
            `pretrained_key`.
    """
    source = CropSource(feature_key, kind, inputs, pretrained_key)
    with load_verified(source.file(workspace, sha256)) as data:
        return np.asarray(data[source.array], dtype=np.float32)


@dataclass(frozen=True)
class CropArrays:
    """Paths of one gathered data set.

    x.npy: [shape=(n_crops, D) float32] for vectors, [shape=(n_crops, n_mels, frames) float16] for
    spectrograms. track_index.npy: [shape=(n_crops,) int64], row in `track_ids`.
    """

    root: Path

    @property
    def x(self) -> np.ndarray:
        return np.load(self.root / "x.npy", mmap_mode="r")

    @property
    def track_index(self) -> np.ndarray:
        return np.load(self.root / "track_index.npy")

    @property
    def track_ids(self) -> list[str]:
        return json.loads((self.root / "track_ids.json").read_text())


def gather_crops(
    workspace: Workspace,
    feature_key: str,
    track_ids: list[str],
    shas: list[str],
    kind: InputKind,
    *,
    inputs: ModelInputs = DEFAULT_INPUTS,
    pretrained_key: str | None = None,
) -> CropArrays:
    """Write the crops of the given tracks from the store of their inputs (`read_track_crops`)
    into one memory-mapped array (once per content and inputs).

    Track by track, so peak memory is one track's features, whatever the data set size.
    """
    source = CropSource(feature_key, kind, inputs, pretrained_key)
    identity: list = [feature_key, kind, track_ids, shas]
    if inputs != DEFAULT_INPUTS:  # descriptor data sets keep the folders they had
        identity += [inputs, pretrained_key]
    digest = hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:16]
    root = workspace.crop_dataset(digest)
    if (root / "track_ids.json").exists():
        return CropArrays(root)
    root.mkdir(parents=True, exist_ok=True)
    name = source.array
    # First pass: crop counts from small arrays; the second reads only the array gathered.
    counts = [source.count(workspace, sha) for sha in shas]
    with load_verified(source.file(workspace, shas[0])) as data:
        shape, dtype = data[name].shape[1:], data[name].dtype
    x = np.lib.format.open_memmap(
        root / "x.tmp.npy", mode="w+", dtype=dtype, shape=(sum(counts), *shape)
    )
    start = 0
    for sha, count in zip(shas, counts, strict=True):
        with load_verified(source.file(workspace, sha)) as data:
            x[start : start + count] = data[name]
        start += count
    x.flush()
    del x
    (root / "x.tmp.npy").replace(root / "x.npy")
    np.save(root / "track_index.npy", np.repeat(np.arange(len(shas)), counts))
    (root / "track_ids.json").write_text(json.dumps(track_ids))
    return CropArrays(root)


def split_tracks(
    n_tracks: int, validation_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Held-out split by track (never by crop: crops of one track are near-duplicates)."""
    order = np.random.default_rng(seed).permutation(n_tracks)
    n_val = round(validation_fraction * n_tracks) if n_tracks >= 10 else 0
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def normalization_statistics(
    x: np.ndarray, rows: np.ndarray, kind: InputKind, chunk: int = 2048
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std over the given crops, in chunks: per feature for vectors, per mel band
    for spectrograms (shape (n_mels,))."""
    total, total_sq, count = 0.0, 0.0, 0
    for start in range(0, len(rows), chunk):
        block = np.asarray(x[rows[start : start + chunk]], dtype=np.float64)
        if kind == "spectrogram":
            block = block.transpose(0, 2, 1).reshape(-1, block.shape[1])  # (crops*frames, n_mels)
        total = total + block.sum(axis=0)
        total_sq = total_sq + np.square(block).sum(axis=0)
        count += block.shape[0]
    mean = total / max(count, 1)
    std = np.sqrt(np.maximum(total_sq / max(count, 1) - mean**2, 0.0))
    return mean.astype(np.float32), std.astype(np.float32)


@dataclass
class TrackSideInformation:
    """Per-track extras a model may need, indexed like `CropArrays.track_ids`.

    condition: [shape=(n_tracks,) int64] class index (CVAE), or None.
    lyrics: [shape=(n_tracks, L) float32] embeddings, with lyrics_mask [shape=(n_tracks,) bool].
    """

    condition: np.ndarray | None = None
    lyrics: np.ndarray | None = None
    lyrics_mask: np.ndarray | None = None
    lyrics_encoder_id: str | None = None


# Input floats per batch when nothing is trained (validation, encoding): in eval mode (no
# dropout, batch norm on its running statistics) a row's output does not depend on its batch, so
# large batches only save steps. The cap keeps log-mel crops at 32 per batch (as in training):
# 64 or 128 were 15 - 25 % slower on the CPU (more activations than the caches hold).
_INFERENCE_BATCH_FLOATS = 2**19
_MAX_INFERENCE_ROWS = 1024


def inference_batch_size(row_shape: tuple[int, ...], training_batch_size: int = 2) -> int:
    """Rows per batch for validation and encoding of rows of `row_shape`: up to 1,024 vectors or
    32 log-mel crops of 128x128, never fewer than `training_batch_size`."""
    per_row = max(1, math.prod(row_shape))
    return max(training_batch_size, min(_MAX_INFERENCE_ROWS, _INFERENCE_BATCH_FLOATS // per_row))


class CropBatches:
    """Mini-batches of crops as model batch dicts, read from the memory map.

    Rows are the crops of `tracks` (indices into the track list); shuffled with the epoch's seed
    when `shuffle` is set. `crops_per_track` and `max_crops_per_epoch` draw a fresh subset of
    each track's crops every epoch (shuffled batches only: see `TrainConfig`); `spread` keeps a
    fixed subset instead: that many crops of each track, evenly spread over it.
    """

    def __init__(
        self,
        arrays: CropArrays,
        tracks: np.ndarray,
        side: TrackSideInformation,
        *,
        batch_size: int,
        shuffle: bool,
        device: torch.device,
        seed: int = 0,
        crops_per_track: int | None = None,
        max_crops_per_epoch: int | None = None,
        spread: int | None = None,
    ) -> None:
        self.x = arrays.x
        self.track_index = arrays.track_index
        rows = np.flatnonzero(np.isin(self.track_index, tracks))
        self.rows = rows if spread is None else _evenly_spread(rows, self.track_index, spread)
        self.crops_per_track = (
            _crops_per_track_within(
                np.bincount(self.track_index[self.rows]), crops_per_track, max_crops_per_epoch
            )
            if shuffle
            else None
        )
        # The share of each track's crops that `max_crops_per_epoch` imposed (None: it did not).
        self.capped_share = (
            self.crops_per_track if self.crops_per_track != crops_per_track else None
        )
        self.side = side
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.device = device
        self.seed = seed
        self.epoch = 0

    @property
    def inference_rows(self) -> int:
        """Rows per step when encoding every row (see `inference_batch_size`)."""
        return inference_batch_size(self.x.shape[1:], self.batch_size)

    @property
    def examples_per_epoch(self) -> int:
        if self.crops_per_track is None:
            return len(self.rows)
        counts = np.bincount(self.track_index[self.rows])
        return int(np.minimum(counts, self.crops_per_track).sum())

    def __len__(self) -> int:
        return int(np.ceil(self.examples_per_epoch / self.batch_size))

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        rows = self.rows
        if self.shuffle:
            rng = np.random.default_rng((self.seed, self.epoch))
            rows = rng.permutation(rows)
            if self.crops_per_track is not None:
                subset = _first_per_track(rows, self.track_index, self.crops_per_track)
                rows = rng.permutation(subset)
            self.epoch += 1
        for start in range(0, len(rows), self.batch_size):
            chunk = rows[start : start + self.batch_size]
            if self.shuffle and len(chunk) < 2:  # batch norm needs two examples
                continue
            yield self.batch(np.sort(chunk))

    def batch(self, rows: np.ndarray) -> dict[str, torch.Tensor]:
        non_blocking = self.device.type == "cuda"
        x = torch.from_numpy(np.asarray(self.x[rows], dtype=np.float32))
        batch = {"x": x.to(self.device, non_blocking=non_blocking)}
        tracks = self.track_index[rows]
        if self.side.condition is not None:
            batch["condition"] = torch.from_numpy(self.side.condition[tracks]).to(self.device)
        if self.side.lyrics is not None:
            batch["lyrics"] = torch.from_numpy(self.side.lyrics[tracks]).to(self.device)
            batch["lyrics_mask"] = torch.from_numpy(self.side.lyrics_mask[tracks]).to(self.device)
        return batch


def _crops_per_track_within(
    counts: np.ndarray, crops_per_track: int | None, max_crops_per_epoch: int | None
) -> int | None:
    """Crops per track and epoch that keep an epoch within `max_crops_per_epoch` (`counts`: crops
    of each track, zeros for tracks not in the set): `crops_per_track` (None: every crop) while the
    epoch fits, else an equal share of the cap for every track, at least one."""
    seen = counts.sum() if crops_per_track is None else np.minimum(counts, crops_per_track).sum()
    if max_crops_per_epoch is None or seen <= max_crops_per_epoch:
        return crops_per_track
    share = max(1, max_crops_per_epoch // max(1, int(np.count_nonzero(counts))))
    return share if crops_per_track is None else min(share, crops_per_track)


def _evenly_spread(rows: np.ndarray, track_index: np.ndarray, most: int) -> np.ndarray:
    """At most `most` of each track's `rows` (sorted: a track's crops are consecutive), at the
    centres of `most` equal parts of the track."""
    tracks = track_index[rows]
    starts = np.flatnonzero(np.r_[True, tracks[1:] != tracks[:-1]])
    counts = np.diff(np.r_[starts, len(rows)])
    kept = [
        start
        + (
            np.arange(count)
            if count <= most
            else np.arange(most) * count // most + count // (2 * most)
        )
        for start, count in zip(starts, counts, strict=True)
    ]
    return rows[np.concatenate(kept)] if kept else rows


def _first_per_track(rows: np.ndarray, track_index: np.ndarray, most: int) -> np.ndarray:
    """The first `most` of `rows` (already shuffled) of each track: a fresh random subset of
    every track's crops per epoch, so a few crops per track and epoch still see them all over
    the epochs."""
    tracks = track_index[rows]
    order = np.argsort(tracks, kind="stable")
    sorted_tracks = tracks[order]
    starts = np.flatnonzero(np.r_[True, sorted_tracks[1:] != sorted_tracks[:-1]])
    rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    return rows[order[rank < most]]
