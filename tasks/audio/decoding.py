"""Decoding and validation of audio files.

A file is decoded in blocks, and at most `AudioConfig.analysis_window_s` seconds of it (the
central part of a longer file), so peak memory does not grow with the length of a file. A file
that cannot be used is *quarantined*: it keeps its row in the track table with a one-line reason,
and the run goes on with the others.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import miniaudio
import numpy as np
import soundfile as sf
import soxr
from pydantic import BaseModel, ConfigDict, Field

from tasks.core.hashing import code_digest, file_kind

AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".au"})
# Ogg Vorbis and MP3 decode 10-30 % faster with miniaudio (stb_vorbis, dr_mp3) than with
# libsndfile, which reads everything else and whatever miniaudio refuses (Opus in Ogg, say).
FAST_DECODER_EXTENSIONS = frozenset({".ogg", ".oga", ".mp3"})
# 64 Ki frames: a few hundred KB per block, large enough that the per-block Python work is noise.
BLOCK_FRAMES = 1 << 16


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
    analysis_window_s: float = Field(
        600.0,
        ge=1.0,
        description="At most this many seconds of a file are decoded, validated and analysed: "
        "the central part of a longer file (keeps memory bounded for hour-long files).",
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


class AudioUnreadable(AudioRejected):
    """The file could not be read at all (missing, not permitted, not a regular file): a fact
    about the file system at that moment, not about the content, so never stored as a verdict."""


@dataclass(frozen=True)
class DecodedAudio:
    """Mono audio at the analysis sample rate.

    samples: np.ndarray [shape=(n,), dtype=float32], in [-1, 1]: the analysed window.
    duration_s: the whole file's duration; analysed_s: the window's (seconds).
    """

    samples: np.ndarray
    sample_rate: int
    source_sample_rate: int
    channels: int
    duration_s: float
    analysed_s: float


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


@dataclass(frozen=True)
class _Stream:
    """An open file: its declared length and a generator of (frames, channels) float32 blocks
    covering frames [start, start + count)."""

    frames: int
    sample_rate: int
    channels: int
    blocks: Iterator[np.ndarray]


def _window(frames: int, sample_rate: int, window_s: float) -> tuple[int, int]:
    """(start, count) of the central `window_s` seconds of `frames` (all of a shorter file)."""
    most = max(1, int(window_s * sample_rate))
    if frames <= most:
        return 0, frames
    return (frames - most) // 2, most


def _miniaudio_blocks(path: Path, info: miniaudio.SoundFileInfo, start: int, count: int):
    stream = miniaudio.stream_file(
        str(path),
        output_format=miniaudio.SampleFormat.FLOAT32,
        nchannels=info.nchannels,
        sample_rate=info.sample_rate,
        frames_to_read=BLOCK_FRAMES,
        seek_frame=start,
    )
    left = count
    try:
        for chunk in stream:
            block = np.frombuffer(chunk, dtype=np.float32).reshape(-1, info.nchannels)[:left]
            left -= len(block)
            yield block
            if left <= 0:
                return
    except miniaudio.MiniaudioError as error:
        raise AudioRejected(f"cannot decode: {error}") from None


def _libsndfile_blocks(path: Path, start: int, count: int):
    try:
        with sf.SoundFile(path) as handle:
            handle.seek(start)
            yield from handle.blocks(BLOCK_FRAMES, frames=count, dtype="float32", always_2d=True)
    except sf.LibsndfileError as error:
        raise AudioRejected(f"cannot decode: {str(error).strip()}") from None


def _only_id3_tag(path: Path) -> bool:
    """Whether an MP3 holds an ID3v2 tag and no MPEG frame sync after it (a tag-only file)."""
    with open(path, "rb") as handle:
        header = handle.read(10)
        if len(header) < 10 or header[:3] != b"ID3":
            return False
        size = (header[6] << 21) | (header[7] << 14) | (header[8] << 7) | header[9]
        handle.seek(10 + size + (10 if header[5] & 0x10 else 0))
        rest = handle.read(1 << 16)
    return not any(rest[i] == 0xFF and rest[i + 1] & 0xE0 == 0xE0 for i in range(len(rest) - 1))


def _open(path: Path, window_s: float) -> _Stream:
    """The central `window_s` seconds of a file, as a stream of blocks."""
    if path.suffix.lower() in FAST_DECODER_EXTENSIONS:
        try:
            info = miniaudio.get_file_info(str(path))
        except miniaudio.MiniaudioError:
            pass  # libsndfile has the last word, and its message is the quarantine reason
        else:
            start, count = _window(info.num_frames, info.sample_rate, window_s)
            blocks = _miniaudio_blocks(path, info, start, count)
            return _Stream(info.num_frames, info.sample_rate, info.nchannels, blocks)
    try:
        info = sf.info(str(path))
    except sf.LibsndfileError as error:
        if path.suffix.lower() == ".mp3" and _only_id3_tag(path):
            raise AudioRejected("no audio frames: the file holds only an ID3 tag") from None
        message = str(error).strip()
        if "does not exist" in message:  # libsndfile's words for "no format it knows"
            message = "unknown format or no audio frames"
        raise AudioRejected(f"cannot decode: {message}") from None
    start, count = _window(info.frames, info.samplerate, window_s)
    return _Stream(
        info.frames, info.samplerate, info.channels, _libsndfile_blocks(path, start, count)
    )


def _check_readable(path: Path) -> None:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise AudioUnreadable("file not found") from None
    except OSError as error:
        raise AudioUnreadable(f"cannot read: {error.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise AudioUnreadable(f"not a regular file: a {file_kind(info.st_mode)}")
    if not os.access(path, os.R_OK):
        raise AudioUnreadable("cannot read: permission denied")
    if info.st_size == 0:
        raise AudioRejected("empty file (0 bytes)")


def _mono_window(stream: _Stream, expected: int) -> tuple[np.ndarray, float]:
    """(mono samples, peak) of a stream's blocks, each block checked and down-mixed on arrival
    so that only the mono window is held.

    Raises:
        AudioRejected: a block holds NaN or infinite samples.
    """
    mono = np.empty(expected, dtype=np.float32)
    filled, peak = 0, 0.0
    for block in stream.blocks:
        if not np.isfinite(block).all():
            raise AudioRejected("contains NaN or infinite samples")
        block = block[: expected - filled]
        if len(block):
            peak = max(peak, float(np.abs(block).max()))
            mono[filled : filled + len(block)] = _down_mix(block)
            filled += len(block)
    return mono[:filled], peak


def decode_audio(path: str | Path, config: AudioConfig, *, sample_rate: int) -> DecodedAudio:
    """Decode, validate, down-mix to mono and resample to `sample_rate` (Hz) the central
    `config.analysis_window_s` seconds of a file (all of a shorter one).

    The checks (non-finite samples, silence) look at that window; the duration check and the
    reported duration are the whole file's. Peak memory is bounded by the window's length.

    Raises:
        AudioUnreadable: the file is missing, unreadable or not a regular file (a state of the
            file system, re-checked on the next run).
        AudioRejected: the file is empty, undecodable, truncated, too short, silent or holds
            non-finite samples. The message is the reason recorded in the quarantine report.
    """
    path = Path(path)
    _check_readable(path)
    wav_bytes = _declared_wav_data_bytes(path)
    if wav_bytes is not None and wav_bytes[1] < wav_bytes[0]:
        raise AudioRejected(
            f"truncated file: header declares {wav_bytes[0]} bytes of audio, "
            f"only {wav_bytes[1]} are present"
        )
    stream = _open(path, config.analysis_window_s)
    _, expected = _window(stream.frames, stream.sample_rate, config.analysis_window_s)
    mono, peak = _mono_window(stream, expected)
    if len(mono) == 0:
        raise AudioRejected("no audio samples")
    duration_s = max(stream.frames, len(mono)) / stream.sample_rate
    if duration_s < config.min_duration_s:
        raise AudioRejected(
            f"too short: {duration_s:.2f} s, minimum is {config.min_duration_s:.2f} s "
            "(set min_duration_s to change)"
        )
    peak_dbfs = 20 * np.log10(peak) if peak > 0 else -np.inf
    if peak_dbfs < config.silence_dbfs:
        raise AudioRejected(
            f"silent: peak level {peak_dbfs:.1f} dBFS is below {config.silence_dbfs:.1f} dBFS"
        )
    analysed_s = len(mono) / stream.sample_rate
    if stream.sample_rate != sample_rate:
        # soxr's high-quality mode is librosa's default resampler (numbers stay comparable with
        # the literature) and is several times faster than a windowed-sinc resample in torch.
        mono = soxr.resample(mono, stream.sample_rate, sample_rate, quality="HQ")
    samples = np.clip(mono, -1.0, 1.0, out=mono).astype(np.float32, copy=False)
    return DecodedAudio(
        samples=samples,
        sample_rate=sample_rate,
        source_sample_rate=int(stream.sample_rate),
        channels=int(stream.channels),
        duration_s=float(duration_s),
        analysed_s=float(analysed_s),
    )
