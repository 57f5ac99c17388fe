"""New tracks -> track latents with the champion's encoder (spectrogram, conditional and
multimodal models)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from models.serving import LatentEncoder
from models.zoo import build_model
from tasks.audio.features import TrackFeatures
from tasks.core.workspace import Workspace
from tasks.prediction.champion import PredictionError
from tasks.prediction.encoding import encode_new_tracks
from tasks.prediction.inputs import SideInputs
from tests.prediction.cards import card


def _write_features(workspace: Workspace, key: str, sha: str, logmel: np.ndarray, stats) -> None:
    n_crops = logmel.shape[0]
    TrackFeatures(
        logmel=logmel.astype(np.float16),
        mfcc=np.zeros((n_crops, 4, logmel.shape[2]), np.float16),
        crop_stats=stats.astype(np.float32),
        track_stats=stats.mean(axis=0).astype(np.float32),
    ).save(workspace.feature_file(key, sha))


@dataclass
class FakeTracks:
    workspace: Workspace
    shas: list[str]
    logmel: list[np.ndarray]
    stats: list[np.ndarray]


@pytest.fixture
def fake_tracks(tmp_path: Path) -> FakeTracks:
    workspace = Workspace.open(tmp_path)
    rng = np.random.default_rng(0)
    shas, logmels, stats = [], [], []
    for i, n_crops in enumerate((3, 1, 5)):
        sha = f"{i:064x}"
        logmel = rng.normal(-30, 10, (n_crops, 16, 16))
        stat = rng.normal(0, 1, (n_crops, 12))
        _write_features(workspace, "key", sha, logmel, stat)
        shas.append(sha)
        logmels.append(logmel.astype(np.float16).astype(np.float32))
        stats.append(stat.astype(np.float32))
    return FakeTracks(workspace, shas, logmels, stats)


def test_spectrogram_track_latent_is_the_mean_of_its_crop_latents(fake_tracks: FakeTracks) -> None:
    torch.manual_seed(0)
    model = build_model("conv_vae", input_shape=(16, 16), overrides={"channels": [4, 8]})
    encoder = LatentEncoder(model)
    model_card = card("conv_vae", input_kind="spectrogram", input_shape=(16, 16))
    latents = encode_new_tracks(encoder, model_card, fake_tracks.workspace, fake_tracks.shas)
    assert latents.shape == (3, model.latent_dim)
    for row, logmel in enumerate(fake_tracks.logmel):
        expected = encoder(torch.from_numpy(logmel)).mean(dim=0).numpy()
        np.testing.assert_allclose(latents[row], expected, rtol=1e-5, atol=1e-5)

    wrong = card("conv_vae", input_kind="spectrogram", input_shape=(32, 16))
    with pytest.raises(PredictionError, match=r"feature_config\.json"):
        encode_new_tracks(encoder, wrong, fake_tracks.workspace, fake_tracks.shas)


def test_conditional_model_uses_each_tracks_condition(fake_tracks: FakeTracks) -> None:
    torch.manual_seed(0)
    model = build_model("cvae", input_shape=(12,), n_conditions=3)
    model.set_input_normalization(np.zeros(12), np.ones(12))
    encoder = LatentEncoder(model, default_condition=0)
    model_card = card("cvae", condition_classes=("a", "b", "c"))
    shas = fake_tracks.shas
    by_default = encode_new_tracks(encoder, model_card, fake_tracks.workspace, shas)
    zeros = SideInputs(condition=np.zeros(3, np.int64))
    explicit_zero = encode_new_tracks(encoder, model_card, fake_tracks.workspace, shas, zeros)
    twos = SideInputs(condition=np.full(3, 2, np.int64))
    other = encode_new_tracks(encoder, model_card, fake_tracks.workspace, shas, twos)
    np.testing.assert_allclose(by_default, explicit_zero, atol=1e-6)
    assert not np.allclose(by_default, other, atol=1e-4)


def test_multimodal_model_reads_lyrics_only_where_a_track_has_them(
    fake_tracks: FakeTracks,
) -> None:
    torch.manual_seed(0)
    model = build_model("multimodal_vae", input_shape=(12,), lyrics_dim=6)
    encoder = LatentEncoder(model)
    model_card = card("multimodal_vae", lyrics_dim=6)
    shas = fake_tracks.shas
    audio_only = encode_new_tracks(encoder, model_card, fake_tracks.workspace, shas)
    lyrics = np.random.default_rng(1).normal(size=(3, 6)).astype(np.float32)
    lyrics[1] = np.nan  # a track without lyrics: its row must never be read
    mask = np.array([True, False, True])
    side = SideInputs(lyrics=lyrics, lyrics_mask=mask, from_lyrics=mask)
    with_lyrics = encode_new_tracks(encoder, model_card, fake_tracks.workspace, shas, side)
    assert np.isfinite(with_lyrics).all()
    np.testing.assert_allclose(with_lyrics[1], audio_only[1], atol=1e-6)
    assert not np.allclose(with_lyrics[0], audio_only[0], atol=1e-4)
    assert not np.allclose(with_lyrics[2], audio_only[2], atol=1e-4)
