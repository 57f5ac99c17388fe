"""Audio features with torchaudio: log-mel and MFCC crops plus hand-crafted summary statistics.

One call computes everything for one track from a single STFT, on the CPU or a GPU. Descriptors
follow librosa's definitions (Slaney mel filters, orthonormal DCT MFCCs, chroma from the power
spectrum, octave-band spectral contrast, centroid, 85 % roll-off, zero-crossing rate, RMS, and a
tempo from the autocorrelation of the onset envelope with a log-normal prior around 120 BPM), so
numbers are comparable with the literature, but computed batched and without per-feature STFTs.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torchaudio.functional as AF
from pydantic import BaseModel, ConfigDict, Field

from tasks.core.atomic import replaced_atomically
from tasks.core.errors import UserInputError
from tasks.core.hashing import code_digest
from tasks.core.progress import run_logger_or

FRAME_DESCRIPTORS = ("centroid", "rolloff", "zcr", "rms")
CONTRAST_BANDS = 6


class FeatureConfig(BaseModel):
    """Feature settings; every field is part of the feature-store key."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sample_rate: int = Field(
        22050, ge=8000, le=96000, description="Analysis sample rate (Hz): audio is resampled to it."
    )
    n_fft: int = Field(2048, ge=256, description="FFT size (samples).")
    hop_length: int = Field(512, ge=64, description="Hop between frames (samples).")
    n_mels: int = Field(128, ge=16, le=256, description="Mel bands of the log-mel spectrogram.")
    n_mfcc: int = Field(20, ge=8, le=64, description="MFCC coefficients (deltas are added).")
    crop_frames: int = Field(128, ge=16, description="Frames per crop (128 frames ~ 3 s).")
    crop_hop_frames: int = Field(128, ge=8, description="Hop between crops (frames).")
    max_crops: int = Field(
        16, ge=1, description="At most this many crops per track, evenly spread."
    )
    device: str = Field("auto", description="'auto' (GPU when present), 'cpu' or 'cuda'.")

    @property
    def key(self) -> str:
        """Feature-store key: a hash of the settings (the device does not change the numbers)
        and of the source of the code the numbers come from (decoding feeds the extractor), so
        an edit of either computes the features again into a new store folder."""
        code = code_digest("tasks.audio.decoding", __name__)
        settings = self.model_dump(exclude={"device"}) | {"code": code}
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def summary_feature_names(config: FeatureConfig) -> list[str]:
    """Names of the summary vector, in order (mean and std of each frame descriptor, then tempo)."""
    frame = (
        [f"mfcc{i}" for i in range(config.n_mfcc)]
        + [f"mfcc_delta{i}" for i in range(config.n_mfcc)]
        + [f"chroma{i}" for i in range(12)]
        + [f"contrast{i}" for i in range(CONTRAST_BANDS + 1)]
        + list(FRAME_DESCRIPTORS)
    )
    return [f"{name}_mean" for name in frame] + [f"{name}_std" for name in frame] + ["tempo_bpm"]


@dataclass(frozen=True)
class TrackFeatures:
    """Features of one track.

    logmel: [shape=(n_crops, n_mels, crop_frames), dtype=float16], dB.
    mfcc: [shape=(n_crops, 2 * n_mfcc, crop_frames), dtype=float16], MFCCs then their deltas.
    crop_stats: [shape=(n_crops, n_summary), dtype=float32], summary vector of each crop.
    track_stats: [shape=(n_summary,), dtype=float32], summary vector of the whole track.
    """

    logmel: np.ndarray
    mfcc: np.ndarray
    crop_stats: np.ndarray
    track_stats: np.ndarray

    def save(self, path: Path) -> None:
        """Write the arrays and their checksum (`array_checksum`) as one .npz, atomically."""
        arrays = self.__dict__
        with replaced_atomically(path) as tmp:
            np.savez(tmp, **arrays, **{CHECKSUM_KEY: np.array(array_checksum(arrays))})

    @classmethod
    def load(cls, path: Path) -> TrackFeatures:
        """The features stored at `path`, verified (`load_verified`).

        Raises:
            DamagedFeatureFile: the file is truncated, corrupted or fails its checksum.
        """
        with load_verified(path) as data:
            return cls(**{k: data[k] for k in FEATURE_ARRAYS})


FEATURE_ARRAYS = ("logmel", "mfcc", "crop_stats", "track_stats")
CHECKSUM_KEY = "sha256"
_log = logging.getLogger(__name__)


class DamagedFeatureFile(UserInputError):
    """A stored feature file is truncated, corrupted or fails its checksum. It has been moved
    aside (`<name>.damaged`), so the next ingest computes it again; the message says so."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path = Path(path)
        super().__init__(
            f"feature file {self.path} is damaged ({problem}); it was moved to "
            f"{self.path.name}.damaged: run the ingest again to compute it anew"
        )


def array_checksum(arrays: dict[str, np.ndarray]) -> str:
    """sha256 over the names, dtypes, shapes and bytes of `arrays` (in name order)."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}\0{array.dtype.str}\0{array.shape}\0".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


@contextmanager
def load_verified(path: Path) -> Iterator[dict[str, np.ndarray]]:
    """Every array of an .npz store file, read in full and verified: each member against the
    zip CRC (checked by a full read) and, when the file carries one (files written by
    `TrackFeatures.save`), against its `array_checksum`.

    A drop-in for `with np.load(path) as data:` (no pickled objects are loaded). The arrays of
    one file are held at once: one track's features, well under a megabyte.

    Raises:
        FileNotFoundError: no file at `path`.
        DamagedFeatureFile: truncated, not a zip, a CRC or checksum mismatch, or an unreadable
            member; the file is moved aside and a warning names it.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        stored = arrays.pop(CHECKSUM_KEY, None)
        if stored is not None and str(stored) != array_checksum(arrays):
            raise ValueError("checksum mismatch")
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, EOFError, ValueError, OSError, KeyError) as error:
        problem = str(error).strip() or type(error).__name__
        with suppress(OSError):
            path.replace(path.with_name(path.name + ".damaged"))
        run_logger_or(_log).warning("damaged feature file %s: %s (moved aside)", path, problem)
        raise DamagedFeatureFile(path, problem) from None
    yield arrays


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class FeatureExtractor:
    """Holds the transforms and filter banks of one configuration (built once, reused per track)."""

    def __init__(self, config: FeatureConfig) -> None:
        self.config = config
        self.device = resolve_device(config.device)
        sr, n_fft = config.sample_rate, config.n_fft
        n_freqs = n_fft // 2 + 1
        self.window = torch.hann_window(n_fft, device=self.device)
        mel_fb = AF.melscale_fbanks(
            n_freqs, 0.0, sr / 2, config.n_mels, sr, norm="slaney", mel_scale="slaney"
        )  # (n_freqs, n_mels)
        with warnings.catch_warnings():  # "sparse CSR support is in beta": the product is stable
            warnings.simplefilter("ignore", UserWarning)
            # Each mel filter spans a few bins: the sparse product does 1/50 of the dense work.
            self.mel_fb_sparse = mel_fb.T.contiguous().to_sparse_csr().to(self.device)
        self.dct = AF.create_dct(config.n_mfcc, config.n_mels, norm="ortho").to(self.device)
        self.chroma_fb = torch.from_numpy(chroma_filters(sr, n_fft)).to(self.device)
        self.freqs = torch.linspace(0, sr / 2, n_freqs, device=self.device)
        self.contrast_bands = _contrast_bands(self.freqs)
        self.tempo_prior = _tempo_prior(sr, config.hop_length, device=self.device)

    @torch.inference_mode()
    def __call__(self, samples: np.ndarray) -> TrackFeatures:
        """Features of one mono track, samples [shape=(n,)] at `config.sample_rate`."""
        cfg = self.config
        y = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)).to(self.device)
        min_samples = (cfg.crop_frames - 1) * cfg.hop_length + 1
        if y.numel() < min_samples:  # short clips are looped so that one full crop exists
            y = y.repeat(int(np.ceil(min_samples / y.numel())))[:min_samples]

        # Zero padding at the edges, as librosa (>= 0.10) pads its centred frames.
        spectrum = torch.stft(
            y,
            cfg.n_fft,
            cfg.hop_length,
            window=self.window,
            center=True,
            pad_mode="constant",
            return_complex=True,
        )  # (n_freqs, frames)
        power = spectrum.real.square() + spectrum.imag.square()  # 2.5x faster than abs()
        magnitude = power.sqrt()
        mel = self.mel_fb_sparse @ power
        logmel = 10.0 * torch.log10(mel.clamp_min(1e-10))
        logmel = torch.maximum(logmel, logmel.max() - 80.0)
        mfcc = self.dct.T @ logmel
        mfcc_delta = AF.compute_deltas(mfcc.unsqueeze(0), win_length=9).squeeze(0)
        chroma = self.chroma_fb @ power
        chroma = chroma / chroma.amax(dim=0, keepdim=True).clamp_min(1e-10)
        contrast = _spectral_contrast(magnitude, self.contrast_bands)
        total = magnitude.sum(dim=0).clamp_min(1e-10)
        centroid = (self.freqs @ magnitude) / total
        cumulative = magnitude.cumsum(dim=0)
        rolloff_bin = (
            (cumulative < 0.85 * cumulative[-1:]).sum(dim=0).clamp_max(len(self.freqs) - 1)
        )
        rolloff = self.freqs[rolloff_bin]
        zcr, rms = _zcr_and_rms(y, cfg.n_fft, cfg.hop_length)
        n_frames = min(logmel.shape[1], zcr.shape[0])
        descriptors = torch.cat(
            [
                mfcc[:, :n_frames],
                mfcc_delta[:, :n_frames],
                chroma[:, :n_frames],
                contrast[:, :n_frames],
                torch.stack(
                    [centroid[:n_frames], rolloff[:n_frames], zcr[:n_frames], rms[:n_frames]]
                ),
            ],
            dim=0,
        )  # (n_descriptors, frames)
        onset = (logmel[:, 1:] - logmel[:, :-1]).clamp_min(0).mean(dim=0)
        onset = torch.cat([onset.new_zeros(1), onset])

        starts = _crop_starts(n_frames, cfg.crop_frames, cfg.crop_hop_frames, cfg.max_crops)
        index = starts[:, None] + torch.arange(cfg.crop_frames)[None, :]  # (n_crops, crop_frames)
        index = index.to(self.device)
        crop_descriptors = descriptors[:, index].permute(1, 0, 2)  # (n_crops, n_desc, crop_frames)
        crop_tempo = self._tempo(onset[index])
        crop_stats = torch.cat(
            [crop_descriptors.mean(dim=2), crop_descriptors.std(dim=2), crop_tempo[:, None]], dim=1
        )
        track_stats = torch.cat(
            [descriptors.mean(dim=1), descriptors.std(dim=1), self._tempo(onset[None, :n_frames])]
        )
        return TrackFeatures(
            logmel=logmel[:, index].permute(1, 0, 2).half().cpu().numpy(),
            mfcc=torch.cat([mfcc, mfcc_delta])[:, index].permute(1, 0, 2).half().cpu().numpy(),
            crop_stats=crop_stats.float().cpu().numpy(),
            track_stats=track_stats.float().cpu().numpy(),
        )

    def _tempo(self, onset: torch.Tensor) -> torch.Tensor:
        """Tempo (BPM) of each onset envelope, onset [shape=(batch, frames)]."""
        n = onset.shape[1]
        centred = onset - onset.mean(dim=1, keepdim=True)
        spectrum = torch.fft.rfft(centred, n=2 * n)
        autocorrelation = torch.fft.irfft(spectrum.abs().square(), n=2 * n)[:, :n]
        bpm, prior = self.tempo_prior
        lags = min(n, len(prior))
        weighted = autocorrelation[:, 1:lags] * prior[1:lags]
        return bpm[1:lags][weighted.argmax(dim=1)]


def chroma_filters(sample_rate: int, n_fft: int, n_chroma: int = 12) -> np.ndarray:
    """librosa's chroma filter bank with its defaults (A440, centre octave 5, two octaves wide,
    rows starting at C): (n_chroma, n_fft // 2 + 1), float32.

    Written out because `librosa.filters` loads SciPy's signal package, about a second of every
    ingest run's start-up.
    """
    frequencies = np.linspace(0, sample_rate, n_fft, endpoint=False)[1:]
    bins = n_chroma * np.log2(frequencies / (440.0 / 16))
    bins = np.concatenate(([bins[0] - 1.5 * n_chroma], bins))  # 0 Hz: 1.5 octaves below bin 1
    widths = np.concatenate((np.maximum(bins[1:] - bins[:-1], 1.0), [1]))
    half = np.round(n_chroma / 2)
    distance = np.subtract.outer(bins, np.arange(n_chroma, dtype="d")).T
    distance = np.remainder(distance + half + 10 * n_chroma, n_chroma) - half
    weights = np.exp(-0.5 * (2 * distance / widths[None, :]) ** 2)
    norms = np.linalg.norm(weights, axis=0, keepdims=True)
    weights = weights / np.where(norms < np.finfo(weights.dtype).tiny, 1.0, norms)
    weights *= np.exp(-0.5 * ((bins / n_chroma - 5.0) / 2) ** 2)[None, :]
    weights = np.roll(weights, -3 * (n_chroma // 12), axis=0)
    return np.ascontiguousarray(weights[:, : n_fft // 2 + 1], dtype=np.float32)


def _zcr_and_rms(y: torch.Tensor, frame_length: int, hop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-crossing rate and RMS of centred, zero-padded frames (librosa's framing).

    From running sums over the signal instead of materialised frames: each sample is touched once,
    not frame_length / hop times.
    """
    padded = torch.nn.functional.pad(y, (frame_length // 2, frame_length // 2))
    n_frames = 1 + (padded.numel() - frame_length) // hop
    starts = torch.arange(n_frames, device=y.device) * hop
    crossings = torch.signbit(padded[1:]) != torch.signbit(padded[:-1])
    crossings_before = torch.nn.functional.pad(crossings.cumsum(0), (1, 0))  # exact (integers)
    # A frame's crossings are between its own consecutive samples: frame_length - 1 pairs.
    zcr = (crossings_before[starts + frame_length - 1] - crossings_before[starts]).float()
    zcr = zcr / (frame_length - 1)
    energy_before = torch.nn.functional.pad(padded.double().square().cumsum(0), (1, 0))
    energy = (energy_before[starts + frame_length] - energy_before[starts]).clamp_min(0)
    rms = (energy / frame_length).sqrt().float()
    return zcr, rms


def _contrast_bands(freqs: torch.Tensor) -> list[tuple[slice, int]]:
    """librosa's octave bands (fmin 200 Hz, 6 bands + the top band) as (bins, n_extreme).

    As librosa does: each band above the first starts one bin lower, the top band runs to
    Nyquist, the other bands leave out their last bin, and the number of extreme bins averaged is
    2 % of the band's size before that (at least one).
    """
    octaves = np.zeros(CONTRAST_BANDS + 2)
    octaves[1:] = 200.0 * (2.0 ** np.arange(CONTRAST_BANDS + 1))
    freqs = freqs.cpu().numpy()
    bands = []
    for k, (low, high) in enumerate(itertools.pairwise(octaves)):
        inside = np.flatnonzero((freqs >= low) & (freqs <= high))
        first = int(inside[0]) - (1 if k > 0 else 0)
        last = len(freqs) - 1 if k == CONTRAST_BANDS else int(inside[-1])
        n_extreme = max(1, round(0.02 * (last - first + 1)))
        stop = last + 1 if k == CONTRAST_BANDS else last
        bands.append((slice(first, stop), n_extreme))
    return bands


def _spectral_contrast(magnitude: torch.Tensor, bands: list[tuple[slice, int]]) -> torch.Tensor:
    """Peak-minus-valley level (dB) per octave band and frame: (n_bands + 1, frames).

    Levels are clipped 80 dB below the loudest peak (valley) of the track, as librosa's
    `power_to_db` does.
    """
    valleys, peaks = zip(
        *(_extreme_means(magnitude[bins].T, n_extreme) for bins, n_extreme in bands), strict=True
    )
    return _db(torch.stack(peaks)) - _db(torch.stack(valleys))


def _db(level: torch.Tensor, top_db: float = 80.0) -> torch.Tensor:
    db = 10.0 * torch.log10(level.clamp_min(1e-10))
    return torch.maximum(db, db.max() - top_db)


def _extreme_means(band: torch.Tensor, n: int, block: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Means of the n smallest and of the n largest values in each row of band (frames, bins).

    Exact, without sorting the rows: the n smallest values lie in the n blocks of `block` bins
    with the smallest minima (any other block's minimum is at least the n-th smallest value), so
    only those n * block candidates are searched (likewise for the largest).
    """
    if n == 1:
        return band.amin(dim=1), band.amax(dim=1)
    frames, bins = band.shape
    n_blocks = bins // block
    candidates_from = band[:, : n_blocks * block].reshape(frames, n_blocks, block)
    rest = band[:, n_blocks * block :]
    means = []
    for largest in (False, True):
        if n_blocks > n:
            edge = candidates_from.amax(dim=2) if largest else candidates_from.amin(dim=2)
            chosen = torch.topk(edge, n, dim=1, largest=largest, sorted=False).indices
            picked = torch.gather(candidates_from, 1, chosen[:, :, None].expand(-1, -1, block))
            candidates = torch.cat([picked.reshape(frames, -1), rest], dim=1)
        else:
            candidates = band
        extremes = torch.topk(candidates, n, dim=1, largest=largest, sorted=False).values
        means.append(extremes.mean(dim=1))
    return means[0], means[1]


@lru_cache(maxsize=8)
def _tempo_prior_cpu(sample_rate: int, hop: int) -> tuple[torch.Tensor, torch.Tensor]:
    frame_rate = sample_rate / hop
    lags = torch.arange(int(8 * frame_rate), dtype=torch.float32)  # 8 s window as librosa
    bpm = 60.0 * frame_rate / lags.clamp_min(1)
    prior = torch.exp(-0.5 * (torch.log2(bpm / 120.0)) ** 2)  # log-normal, one octave std
    prior[(bpm < 30) | (bpm > 320)] = 0
    return bpm, prior


def _tempo_prior(
    sample_rate: int, hop: int, *, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    bpm, prior = _tempo_prior_cpu(sample_rate, hop)
    return bpm.to(device), prior.to(device)


def _crop_starts(n_frames: int, crop: int, hop: int, max_crops: int) -> torch.Tensor:
    """Start frames of the crops; when there are more than `max_crops`, an even spread of them."""
    starts = torch.arange(0, max(n_frames - crop, 0) + 1, hop)
    if len(starts) > max_crops:
        starts = starts[torch.linspace(0, len(starts) - 1, max_crops).round().long()]
    return starts


@lru_cache(maxsize=4)
def extractor_for(config: FeatureConfig) -> FeatureExtractor:
    """One extractor per configuration and process (filter banks are built once)."""
    return FeatureExtractor(config)
