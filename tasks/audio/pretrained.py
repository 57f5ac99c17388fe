"""Pretrained music embeddings and tags: musicnn (MSD or MagnaTagATune) over 3 s patches.

`PretrainedExtractor` turns mono 16 kHz audio into per-patch 200-d penultimate embeddings and 50
tag probabilities with the network of `models.musicnn`, weights installed by
`tasks.audio.musicnn_weights` (`make install`). Preprocessing follows the original package
(`musicnn/extractor.py::batch_data`): STFT 512 / hop 256 (Hann, centred, zero padding as
librosa >= 0.10 does), power, 96 Slaney mel bands (librosa's filterbank), cast to float16 as
the original did, then back to float32 before `log10(10000 x + 1)` (in float16 the product
overflows to inf on most real clips). Patches are 187 frames (3 s), non-overlapping, the
partial last one dropped; a clip shorter than one patch is repeated up to it (the networks'
training config says `"pad_short": "repeat-pad"`).

Unlike the package's own extractor (which returns patch 0's penultimate for every patch), each
patch gets its own embedding. Patches of many clips go through the network together in batches
of `batch_size`, on a GPU when there is one (with float16 autocast there).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Final

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from models.musicnn import MEL_BANDS, N_TAGS, PATCH_FRAMES, PENULTIMATE_DIM, Musicnn
from tasks.audio.features import CHECKSUM_KEY, array_checksum, load_verified, resolve_device
from tasks.audio.musicnn_weights import (
    PretrainedNetwork,
    WeightsMissing,
    installed_manifest,
    weights_dir,
)
from tasks.core.atomic import replaced_atomically
from tasks.core.hashing import code_digest

__all__ = [
    "PRETRAINED_SAMPLE_RATE",
    "PretrainedConfig",
    "PretrainedExtractor",
    "PretrainedFeatures",
    "PretrainedNetwork",
    "WeightsMissing",
    "pretrained_extractor_for",
]

PRETRAINED_SAMPLE_RATE: Final = 16000
_N_FFT: Final = 512
_HOP: Final = 256
# On a CPU, forwards of more than a couple of patches only add memory traffic (one patch's
# first-layer map is 9 MB): per patch, 2 patches per forward measured ~40 ms of CPU and 32 about
# 65 ms (bench/musicnn.py, docs/musicnn_port.md). A GPU takes `batch_size` patches per forward.
_CPU_PATCHES_PER_FORWARD: Final = 2


class PretrainedConfig(BaseModel):
    """Which pretrained network, how many patches per track, and where to run it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    network: PretrainedNetwork = Field(
        "MSD_musicnn",
        description="musicnn weights: MSD_musicnn (Million Song Dataset tags: genres, eras, "
        "moods) or MTT_musicnn (MagnaTagATune tags: instruments, voice, tempo).",
    )
    max_patches: int | None = Field(
        None,
        ge=1,
        description="At most this many 3 s patches per track, evenly spread over it; None = "
        "every patch (full coverage). Fewer patches = faster.",
    )
    device: str = Field("auto", description="'auto' (GPU when present), 'cpu' or 'cuda'.")
    batch_size: int = Field(
        64,
        ge=1,
        description="Patches per forward pass on a GPU (across tracks). On the CPU forwards take "
        "at most 2 patches: larger ones are slower there.",
    )

    @property
    def key(self) -> str:
        """12-hex digest of what changes the outputs: network, max_patches, the weights file's
        sha256 and the code that computes them (not device or batch size).

        Raises WeightsMissing when the weights are not installed.
        """
        weights = installed_manifest().networks[self.network].sha256
        fields = {
            "network": self.network,
            "max_patches": self.max_patches,
            "weights": weights,
            "code": code_digest("models.musicnn", __name__),
        }
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class PretrainedFeatures:
    """Network outputs of one track, per patch.

    patch_embeddings: [shape=(n_patches, 200), dtype=float32] penultimate layer per patch.
    patch_tags: [shape=(n_patches, 50), dtype=float32] tag probabilities per patch.
    """

    patch_embeddings: np.ndarray
    patch_tags: np.ndarray

    def save(self, path: Path) -> None:
        """Write an npz with its `array_checksum` atomically (temporary file in the same folder,
        then rename)."""
        path = Path(path)
        arrays = {"patch_embeddings": self.patch_embeddings, "patch_tags": self.patch_tags}
        with replaced_atomically(path) as tmp:
            np.savez(tmp, **arrays, **{CHECKSUM_KEY: np.array(array_checksum(arrays))})

    @classmethod
    def load(cls, path: Path) -> PretrainedFeatures:
        """The features stored at `path`, verified as the hand-crafted ones (`load_verified`).

        Raises:
            DamagedFeatureFile: the file is truncated, corrupted or fails its checksum (it is
                moved aside, so the next ingest computes it again).
        """
        with load_verified(path) as data:
            return cls(
                patch_embeddings=data["patch_embeddings"].astype(np.float32),
                patch_tags=data["patch_tags"].astype(np.float32),
            )

    @property
    def embedding_mean(self) -> np.ndarray:
        """Track embedding: mean of the patch embeddings, (200,) float32."""
        return self.patch_embeddings.mean(axis=0, dtype=np.float64).astype(np.float32)

    @property
    def tags_mean(self) -> np.ndarray:
        """Track tag probabilities: mean over patches, (50,) float32."""
        return self.patch_tags.mean(axis=0, dtype=np.float64).astype(np.float32)


def patch_starts(n_frames: int, max_patches: int | None) -> np.ndarray:
    """First frame of each patch used from a spectrogram of `n_frames` frames.

    Non-overlapping 187-frame patches, the partial last one dropped (at least one patch: a short
    clip is padded to one). With `max_patches`, the patches at the centres of `max_patches`
    equal parts of the track, so they cover it evenly instead of taking its beginning.
    """
    n_patches = max(1, n_frames // PATCH_FRAMES)
    chosen = np.arange(n_patches)
    if max_patches is not None and n_patches > max_patches:
        chosen = ((np.arange(max_patches) + 0.5) * n_patches / max_patches).astype(np.int64)
    return chosen * PATCH_FRAMES


class PretrainedExtractor:
    """Holds one network with its weights (loaded once) and the mel filterbank."""

    def __init__(self, config: PretrainedConfig) -> None:
        from safetensors.torch import load_file

        self.config = config
        self.device = resolve_device(config.device)
        manifest = installed_manifest()  # WeightsMissing (one line naming the fix) if absent
        entry = manifest.networks[config.network]
        self.tag_names: list[str] = list(entry.tag_names)
        self.network = Musicnn()
        self.network.load_state_dict(load_file(weights_dir() / entry.file))
        self.network.to(self.device)
        import librosa  # the original's filterbank (Slaney scale and norm)

        mel = librosa.filters.mel(sr=PRETRAINED_SAMPLE_RATE, n_fft=_N_FFT, n_mels=MEL_BANDS)
        self._mel = torch.from_numpy(mel.T.astype(np.float32)).to(self.device)  # (257, 96)
        self._window = torch.hann_window(_N_FFT, device=self.device)
        self._lock = threading.Lock()  # one forward at a time per extractor (shared by threads)

    @cached_property
    def _autocast(self) -> torch.autocast:
        enabled = self.device.type == "cuda"
        return torch.autocast(device_type=self.device.type, dtype=torch.float16, enabled=enabled)

    def log_mel(self, samples: np.ndarray) -> torch.Tensor:
        """Log-mel spectrogram as the original computes it: (frames, 96) float32 on the device."""
        audio = torch.as_tensor(np.ascontiguousarray(samples, dtype=np.float32))
        audio = audio.to(self.device)
        if audio.ndim != 1:
            raise ValueError(f"expected mono samples of shape (n,), got {tuple(audio.shape)}")
        spectrum = torch.stft(
            audio,
            _N_FFT,
            hop_length=_HOP,
            window=self._window,
            center=True,
            pad_mode="constant",
            return_complex=True,
        )
        power = spectrum.real.square() + spectrum.imag.square()  # (257, frames)
        mel = (power.T @ self._mel).to(torch.float16).to(torch.float32)
        return torch.log10(10000 * mel + 1)

    def _patches(self, samples: np.ndarray) -> torch.Tensor:
        """(n_patches, 187, 96) log-mel patches of one clip."""
        spectrogram = self.log_mel(samples)
        if spectrogram.shape[0] < PATCH_FRAMES:  # repeat-pad, as in training
            repeats = -(-PATCH_FRAMES // spectrogram.shape[0])
            spectrogram = spectrogram.repeat(repeats, 1)[:PATCH_FRAMES]
        starts = patch_starts(spectrogram.shape[0], self.config.max_patches)
        index = torch.as_tensor(starts, device=self.device)[:, None] + torch.arange(
            PATCH_FRAMES, device=self.device
        )
        return spectrogram[index]

    def forward_patches(self, patches: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Run the network over (n, 187, 96) patches in batches: (n, 200), (n, 50) float32."""
        embeddings, tags = [], []
        size = self.config.batch_size
        if self.device.type == "cpu":
            size = min(size, _CPU_PATCHES_PER_FORWARD)
        with self._lock, torch.inference_mode(), self._autocast, _every_core():
            for start in range(0, patches.shape[0], size):
                batch = patches[start : start + size]
                embedding, tag = self.network(batch)
                embeddings.append(embedding.float().cpu())
                tags.append(tag.float().cpu())
        if not embeddings:
            return np.zeros((0, PENULTIMATE_DIM), np.float32), np.zeros((0, N_TAGS), np.float32)
        return torch.cat(embeddings).numpy(), torch.cat(tags).numpy()

    def __call__(self, samples: np.ndarray) -> PretrainedFeatures:
        """Features of one mono float32 clip at 16 kHz (any length > 0)."""
        return self.batch([samples])[0]

    def batch(self, clips: list[np.ndarray]) -> list[PretrainedFeatures]:
        """Features of several clips; their patches share forward passes (fewer, larger ones)."""
        with torch.inference_mode():
            per_clip = [self._patches(clip) for clip in clips]
        if not per_clip:
            return []
        embeddings, tags = self.forward_patches(torch.cat(per_clip))
        bounds = np.cumsum([0] + [p.shape[0] for p in per_clip])
        return [
            PretrainedFeatures(embeddings[a:b], tags[a:b]) for a, b in itertools.pairwise(bounds)
        ]


@contextmanager
def _every_core() -> Iterator[None]:
    """Every core for the calling thread's torch work while the block runs. The extractor's
    forward passes run one at a time, so one may use them all; the thread's own setting does not
    say so: torch's thread count is per thread, and a task thread keeps the count it had when it
    started (the ingest's audio stage gives each of its threads a share). Measured: the quick
    pipeline's musicnn stage ran on one thread, 1.7x slower than on the 2 cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


_EXTRACTORS: dict[PretrainedConfig, PretrainedExtractor] = {}
_EXTRACTORS_LOCK = threading.Lock()


def pretrained_extractor_for(config: PretrainedConfig) -> PretrainedExtractor:
    """The extractor of `config`, built once per process (thread-safe; weights load once)."""
    with _EXTRACTORS_LOCK:
        if config not in _EXTRACTORS:
            _EXTRACTORS[config] = PretrainedExtractor(config)
        return _EXTRACTORS[config]
