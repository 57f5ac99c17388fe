"""The torchaudio features agree with librosa's definitions and have the documented shapes."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from tasks.audio.features import (
    FeatureConfig,
    FeatureExtractor,
    _extreme_means,
    _zcr_and_rms,
    chroma_filters,
    summary_feature_names,
)

SR = 22050


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    """8 s of a chord with a 120 BPM click track and some noise."""
    rng = np.random.default_rng(0)
    t = np.arange(8 * SR) / SR
    y = sum(0.2 * np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6))
    clicks = np.zeros_like(t)
    for beat in np.arange(0, 8, 0.5):
        start = int(beat * SR)
        clicks[start : start + 400] += np.hanning(400) * rng.standard_normal(400)
    return (y + 0.5 * clicks + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def features(clip: np.ndarray):
    config = FeatureConfig()
    return config, FeatureExtractor(config)(clip)


def test_shapes(features) -> None:
    config, f = features
    n_crops = f.logmel.shape[0]
    assert f.logmel.shape == (n_crops, config.n_mels, config.crop_frames)
    assert f.mfcc.shape == (n_crops, 2 * config.n_mfcc, config.crop_frames)
    assert f.crop_stats.shape == (n_crops, len(summary_feature_names(config)))
    assert f.track_stats.shape == (len(summary_feature_names(config)),)


@pytest.mark.parametrize(
    ("name", "reference", "rtol"),
    [
        ("mfcc1_mean", lambda y: librosa.feature.mfcc(y=y, sr=SR, n_mfcc=20)[1].mean(), 0.01),
        ("centroid_mean", lambda y: librosa.feature.spectral_centroid(y=y, sr=SR).mean(), 0.01),
        ("rolloff_mean", lambda y: librosa.feature.spectral_rolloff(y=y, sr=SR).mean(), 0.02),
        ("zcr_mean", lambda y: librosa.feature.zero_crossing_rate(y).mean(), 0.01),
        ("rms_mean", lambda y: librosa.feature.rms(y=y).mean(), 0.01),
        ("chroma4_mean", lambda y: librosa.feature.chroma_stft(y=y, sr=SR)[4].mean(), 0.05),
        ("contrast2_mean", lambda y: librosa.feature.spectral_contrast(y=y, sr=SR)[2].mean(), 0.05),
    ],
)
def test_descriptor_matches_librosa(features, clip, name, reference, rtol) -> None:
    config, f = features
    value = f.track_stats[summary_feature_names(config).index(name)]
    assert value == pytest.approx(reference(clip), rel=rtol)


def test_tempo_of_click_track(features) -> None:
    _, f = features
    assert f.track_stats[-1] == pytest.approx(120, rel=0.05)


def test_short_clip_gives_one_full_crop() -> None:
    config = FeatureConfig(crop_frames=64)
    f = FeatureExtractor(config)(
        np.random.default_rng(1).standard_normal(SR).astype(np.float32) * 0.1
    )
    assert f.logmel.shape == (1, config.n_mels, 64)


def test_feature_key_changes_with_settings_not_device() -> None:
    assert FeatureConfig().key == FeatureConfig(device="cpu").key
    assert FeatureConfig().key != FeatureConfig(n_mels=64).key


@pytest.mark.parametrize(("sample_rate", "n_fft"), [(22050, 2048), (16000, 1024), (44100, 4096)])
def test_chroma_filters_are_librosas(sample_rate: int, n_fft: int) -> None:
    np.testing.assert_allclose(
        chroma_filters(sample_rate, n_fft),
        librosa.filters.chroma(sr=sample_rate, n_fft=n_fft),
        rtol=1e-6,
        atol=1e-9,
    )


def test_zcr_and_rms_equal_the_framewise_definitions(clip: np.ndarray) -> None:
    """Running sums give what materialised, centred, zero-padded frames give."""
    y = torch.from_numpy(clip[:50_000])
    zcr, rms = _zcr_and_rms(y, frame_length=2048, hop=512)
    frames = torch.nn.functional.pad(y, (1024, 1024)).unfold(0, 2048, 512)
    crossings = (torch.diff(torch.signbit(frames).to(torch.int8), dim=1) != 0).float()
    torch.testing.assert_close(zcr, crossings.mean(dim=1), rtol=0, atol=1e-7)
    torch.testing.assert_close(rms, frames.square().mean(dim=1).sqrt(), rtol=1e-5, atol=1e-7)


def test_spectral_contrast_matches_librosa_in_every_band(features, clip) -> None:
    config, f = features
    names = summary_feature_names(config)
    ours = [f.track_stats[names.index(f"contrast{band}_mean")] for band in range(7)]
    reference = librosa.feature.spectral_contrast(y=clip, sr=SR).mean(axis=1)
    np.testing.assert_allclose(ours, reference, rtol=0.02)


@pytest.mark.parametrize(("bins", "n"), [(19, 1), (75, 2), (150, 3), (298, 6), (430, 9), (20, 9)])
def test_block_pruned_extremes_equal_a_full_search(bins: int, n: int) -> None:
    generator = torch.Generator().manual_seed(bins)
    band = torch.rand(300, bins, generator=generator)
    band[::7, : bins // 2] = 0.5  # ties across blocks
    valley, peak = _extreme_means(band, n)
    torch.testing.assert_close(valley, band.topk(n, dim=1, largest=False).values.mean(dim=1))
    torch.testing.assert_close(peak, band.topk(n, dim=1).values.mean(dim=1))
