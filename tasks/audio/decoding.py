"""Decoding and validation of audio files.

Every file is decoded in full. A file that cannot be used is *quarantined*: it keeps its row in
the track table with a one-line reason, and the run goes on with the others.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path

import miniaudio
import numpy as np
import soundfile as sf
import soxr
from pydantic import BaseModel, ConfigDict, Field

from tasks.core.hashing import code_digest

AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".au"})
# Ogg Vorbis and MP3 decode 10-30 % faster with miniaudio (stb_vorbis, dr_mp3) than with
# libsndfile, which reads everything else and whatever miniaudio refuses (Opus in Ogg, say).
FAST_DECODER_EXTENSIONS = frozenset({".ogg", ".oga", ".mp3"})


class AudioConfig(BaseModel):
    """What counts as a usable file. The rate audio is resampled to is the features' analysis
    rate (`FeatureConfig.sample_rate`): one setting, declared there."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_duration_s: float = Field(
        1.0, ge=0.0, description="Shorter files are quarantined (seconds)."
    )
    silence_dbfs: float = Field(
        -60.0, le=0.0, description="Files whose peak is below this level are quarantined as silent."
    )

    @property
    def key(self) -> str:
        """Validation-store key: a hash of the settings and of this module's source (an edit of
        the decoding or validation code re-validates every file instead of serving old
        verdicts)."""
        settings = self.model_dump() | {"code": code_digest(__name__)}
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


class AudioRejected(ValueError):
    """A file that cannot be used; the message is the quarantine reason shown to the user."""


@dataclass(frozen=True)
class DecodedAudio:
    """Mono audio at the analysis sample rate.

    samples: np.ndarray [shape=(n,), dtype=float32], in [-1, 1].
    """

    samples: np.ndarray
    sample_rate: int
    source_sample_rate: int
    channels: int
    duration_s: float


def _declared_wav_data_bytes(path: Path) -> tuple[int, int] | None:
    """(declared, present) byte counts of a RIFF/WAVE data chunk, or None for other files.

    libsndfile quietly reads what is there when a WAV is cut short, so a truncated download would
    pass as a shorter clip; the header tells the truth.
    """
    with open(path, "rb") as handle:
        header = handle.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return None
        while chunk := handle.read(8):
            if len(chunk) < 8:
                return None
            chunk_id, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if chunk_id == b"data":
                start = handle.tell()
                handle.seek(0, 2)
                return size, handle.tell() - start
            handle.seek(size + (size & 1), 1)
    return None


def _down_mix(data: np.ndarray) -> np.ndarray:
    """Mean of the channels of (frames, channels) audio.

    A channel loop, not `mean(axis=1)` (a strided reduction, 8x slower) nor a matrix product
    (OpenBLAS starts spinning threads for it, which fight the other decoders for the cores).
    """
    mono = data[:, 0].copy()
    for channel in range(1, data.shape[1]):
        mono += data[:, channel]
    if data.shape[1] > 1:
        mono *= np.float32(1.0 / data.shape[1])
    return mono


def _read(path: Path) -> tuple[np.ndarray, int]:
    """(frames, channels) float32 samples and their sample rate."""
    if path.suffix.lower() in FAST_DECODER_EXTENSIONS:
        try:
            decoded = miniaudio.decode_file(str(path), output_format=miniaudio.SampleFormat.FLOAT32)
        except miniaudio.MiniaudioError:
            pass  # libsndfile has the last word, and its message is the quarantine reason
        else:
            samples = np.frombuffer(decoded.samples, dtype=np.float32)
            return samples.reshape(-1, decoded.nchannels), decoded.sample_rate
    try:
        return sf.read(path, dtype="float32", always_2d=True)
    except Exception as error:  # libsndfile raises several types; all mean "cannot decode"
        raise AudioRejected(
            f"cannot decode: {str(error).strip() or type(error).__name__}"
        ) from None


def decode_audio(path: str | Path, config: AudioConfig, *, sample_rate: int) -> DecodedAudio:
    """Decode, validate, down-mix to mono and resample to `sample_rate` (Hz).

    Raises:
        AudioRejected: the file is empty, unreadable, truncated, too short, silent or holds
            non-finite samples. The message is the reason recorded in the quarantine report.
    """
    path = Path(path)
    if not path.exists():
        raise AudioRejected("file not found")
    if path.stat().st_size == 0:
        raise AudioRejected("empty file (0 bytes)")
    data, source_rate = _read(path)

    wav_bytes = _declared_wav_data_bytes(path)
    if wav_bytes is not None and wav_bytes[1] < wav_bytes[0]:
        raise AudioRejected(
            f"truncated file: header declares {wav_bytes[0]} bytes of audio, "
            f"only {wav_bytes[1]} are present"
        )
    frames, channels = data.shape
    if frames == 0:
        raise AudioRejected("no audio samples")
    if not np.isfinite(data).all():
        raise AudioRejected("contains NaN or infinite samples")
    duration_s = frames / source_rate
    if duration_s < config.min_duration_s:
        raise AudioRejected(
            f"too short: {duration_s:.2f} s, minimum is {config.min_duration_s:.2f} s "
            "(set min_duration_s to change)"
        )
    peak = float(np.abs(data).max())
    peak_dbfs = 20 * np.log10(peak) if peak > 0 else -np.inf
    if peak_dbfs < config.silence_dbfs:
        raise AudioRejected(
            f"silent: peak level {peak_dbfs:.1f} dBFS is below {config.silence_dbfs:.1f} dBFS"
        )

    mono = _down_mix(data)
    if source_rate != sample_rate:
        # soxr's high-quality mode is librosa's default resampler (numbers stay comparable with
        # the literature) and is several times faster than a windowed-sinc resample in torch.
        mono = soxr.resample(mono, source_rate, sample_rate, quality="HQ")
    samples = np.clip(mono, -1.0, 1.0).astype(np.float32, copy=False)
    return DecodedAudio(
        samples=samples,
        sample_rate=sample_rate,
        source_sample_rate=int(source_rate),
        channels=int(channels),
        duration_s=float(duration_s),
    )
