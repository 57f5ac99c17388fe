"""Synthesising demo tracks: length and format, determinism, and genres that sound apart."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from tasks.demo import GENRES, DemoDataError, synthesize_track


def test_clip_has_the_asked_length_and_headroom() -> None:
    audio = synthesize_track("jazz", np.random.default_rng(1), sample_rate=16000, duration_s=1.5)
    assert audio.dtype == np.float32
    assert audio.shape == (24000,)
    assert np.isfinite(audio).all()
    assert 10 ** (-6.5 / 20) < np.abs(audio).max() <= 0.9  # peak between -6 and -1 dBFS


@pytest.mark.parametrize("genre", GENRES)
def test_equal_generator_states_give_equal_audio(genre: str) -> None:
    first = synthesize_track(genre, np.random.default_rng([4, 2]), duration_s=1.0)
    again = synthesize_track(genre, np.random.default_rng([4, 2]), duration_s=1.0)
    other = synthesize_track(genre, np.random.default_rng([4, 3]), duration_s=1.0)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_unknown_genre_is_named_in_the_error() -> None:
    with pytest.raises(DemoDataError, match="genre='blues'"):
        synthesize_track("blues", np.random.default_rng(0), duration_s=0.5)


def _spectral_centroid_hz(audio: np.ndarray, sample_rate: int) -> float:
    """Mean over 2048-sample frames of the magnitude-weighted mean frequency (as librosa's)."""
    frames = audio[: len(audio) // 2048 * 2048].reshape(-1, 2048) * np.hanning(2048)
    magnitude = np.abs(np.fft.rfft(frames, axis=1))
    frequencies = np.fft.rfftfreq(2048, 1 / sample_rate)
    return float(np.mean(magnitude @ frequencies / (magnitude.sum(axis=1) + 1e-12)))


def _low_band_share(audio: np.ndarray, sample_rate: int) -> float:
    power = np.abs(np.fft.rfft(audio)) ** 2
    frequencies = np.fft.rfftfreq(len(audio), 1 / sample_rate)
    return float(power[frequencies < 200].sum() / power.sum())


def _band_profile(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mean and spread over time of the log energy in 7 bands, relative to the frame's mean: a
    crude timbre-and-rhythm descriptor [shape=(14,)]."""
    frames = audio[: len(audio) // 1024 * 1024].reshape(-1, 1024) * np.hanning(1024)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    frequencies = np.fft.rfftfreq(1024, 1 / sample_rate)
    edges = (0, 100, 250, 600, 1500, 3500, 8000, sample_rate / 2 + 1)
    bands = np.stack(
        [
            power[:, (frequencies >= low) & (frequencies < high)].sum(axis=1)
            for low, high in itertools.pairwise(edges)
        ],
        axis=1,
    )
    log_bands = np.log(bands + 1e-10)
    log_bands -= log_bands.mean(axis=1, keepdims=True)
    return np.concatenate([log_bands.mean(axis=0), log_bands.std(axis=0)])


def test_genres_differ_measurably_but_overlap() -> None:
    """Genres are told apart well above chance by simple spectral features, yet not perfectly,
    and differ in sub-bass share and brightness the way their instruments would."""
    genres, profiles, bass_shares, centroids = [], [], {}, {}
    for genre in GENRES:
        for track in range(6):
            audio = synthesize_track(
                genre, np.random.default_rng([7, track, GENRES.index(genre)]), duration_s=4.0
            )
            genres.append(genre)
            profiles.append(_band_profile(audio, 22050))
            bass_shares.setdefault(genre, []).append(_low_band_share(audio, 22050))
            centroids.setdefault(genre, []).append(_spectral_centroid_hz(audio, 22050))
    features = np.array(profiles)
    features = (features - features.mean(axis=0)) / features.std(axis=0)
    distances = ((features[:, None] - features[None]) ** 2).sum(axis=-1)
    np.fill_diagonal(distances, np.inf)
    labels = np.array(genres)
    nearest_neighbour_accuracy = float((labels[distances.argmin(axis=1)] == labels).mean())
    assert 3 / len(GENRES) < nearest_neighbour_accuracy < 0.9  # chance is 1/8
    assert stats.kruskal(*bass_shares.values()).pvalue < 1e-3
    # 808 sub-bass against strings and cello; bowed strings darker than supersaws and hats
    assert np.median(bass_shares["hiphop"]) > np.median(bass_shares["classical"])
    assert np.median(centroids["classical"]) < np.median(centroids["electronic"])


# --- output folder and parameters -------------------------------------------------------------
