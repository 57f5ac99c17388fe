"""New tracks encoded by a champion trained on the pretrained network's embeddings: their
features are computed with the champion's own network configuration, then encoded per patch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from models.serving import LatentEncoder
from models.zoo import build_model
from tasks.audio.decoding import AudioConfig
from tasks.audio.pretrained import PretrainedConfig, PretrainedFeatures
from tasks.core.workspace import Workspace
from tasks.prediction.champion import PredictionError
from tasks.prediction.encoding import encode_new_tracks, ensure_pretrained_inputs
from tests.prediction.cards import card

SR = 22050


def test_a_musicnn_champion_encodes_new_tracks_from_their_patch_embeddings(
    tmp_path: Path,
) -> None:
    # given a champion trained on musicnn embeddings with two patches per track
    config = PretrainedConfig(max_patches=2)
    champion = card(
        "mlp_vae",
        input_shape=(200,),
        inputs="musicnn",
        pretrained=config,
        pretrained_key=config.key,
    )
    torch.manual_seed(0)
    model = build_model("mlp_vae", input_shape=(200,), overrides={"latent_dim": 4})
    encoder = LatentEncoder(model)
    # and a new 10 s track whose features the predict ingest did not compute this way
    workspace = Workspace.open(tmp_path / "predict")
    t = np.arange(10 * SR) / SR
    path = tmp_path / "new.wav"
    sf.write(path, (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), SR)
    sha = "c" * 64
    # when its inputs are ensured and it is encoded
    computed = ensure_pretrained_inputs(champion, workspace, [str(path)], [sha], AudioConfig())
    latents = encode_new_tracks(encoder, champion, workspace, [sha])
    # then its features were computed once, with the champion's cap
    assert computed == 1
    assert ensure_pretrained_inputs(champion, workspace, [str(path)], [sha], AudioConfig()) == 0
    patches = PretrainedFeatures.load(workspace.pretrained_file(config.key, sha))
    assert patches.patch_embeddings.shape == (2, 200)
    # and its latent is the mean of its patches' latent means
    expected = encoder(torch.from_numpy(patches.patch_embeddings)).mean(dim=0).numpy()
    np.testing.assert_allclose(latents[0], expected, rtol=1e-5, atol=1e-5)


def test_a_champion_on_other_weights_than_the_installed_ones_is_refused(tmp_path: Path) -> None:
    champion = card(
        "mlp_vae",
        input_shape=(200,),
        inputs="musicnn",
        pretrained=PretrainedConfig(),
        pretrained_key="0123456789ab",
    )
    with pytest.raises(PredictionError, match="retrain"):
        ensure_pretrained_inputs(champion, Workspace.open(tmp_path), [], [], AudioConfig())


def test_a_champion_on_descriptors_needs_no_pretrained_features(tmp_path: Path) -> None:
    assert ensure_pretrained_inputs(card("mlp_vae"), Workspace.open(tmp_path), [], [], None) == 0
