"""The PyTorch musicnn reproduces the original TensorFlow graph, and cannot silently drift.

`tests/fixtures/musicnn_reference.npz` holds 5 log-mel patches (3 deterministic random, 2 from a
real realmusic-dev clip) and the outputs of the package's unmodified TensorFlow graph for them
(see docs/musicnn_port.md for how they were made).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from models.musicnn import MEL_BANDS, N_TAGS, PATCH_FRAMES, PENULTIMATE_DIM, Musicnn, _FrontEndBlock
from tasks.audio.musicnn_weights import weights_path

REFERENCE = Path(__file__).resolve().parents[1] / "fixtures" / "musicnn_reference.npz"


def _pretrained(network: str) -> Musicnn:
    network_module = Musicnn()
    network_module.load_state_dict(load_file(weights_path(network)))  # `make install` wrote it
    return network_module


@pytest.mark.parametrize("network", ["MSD_musicnn", "MTT_musicnn"])
def test_outputs_match_the_tensorflow_original(network: str) -> None:
    reference = np.load(REFERENCE)
    with torch.inference_mode():
        penultimate, tags = _pretrained(network)(torch.from_numpy(reference["patches"]))
    np.testing.assert_allclose(tags.numpy(), reference[f"{network}_tags"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(
        penultimate.numpy(), reference[f"{network}_penultimate"], atol=1e-4, rtol=0
    )


@pytest.mark.parametrize(("kernel", "padding"), [((7, 38), (3, 3)), ((64, 1), (31, 32))])
def test_front_end_block_equals_conv_relu_norm_max(
    kernel: tuple[int, int], padding: tuple[int, int]
) -> None:
    """The max-first computation equals the original order, negative norm scales included."""
    torch.manual_seed(0)
    block = _FrontEndBlock(12, kernel, padding).eval()
    with torch.no_grad():
        block.norm.weight.copy_(torch.randn(12))  # about half negative
        block.norm.bias.copy_(torch.randn(12))
        block.norm.running_mean.copy_(torch.rand(12))
        block.norm.running_var.copy_(torch.rand(12) + 0.5)
    x = torch.randn(3, 1, 40, MEL_BANDS)
    with torch.inference_mode():
        original = block.norm(F.relu(block.conv(F.pad(x, (0, 0, *padding))))).amax(dim=3)
        assert (block.norm.weight < 0).any()
        torch.testing.assert_close(block(x), original, atol=1e-5, rtol=1e-5)


def test_any_batch_size_gives_one_row_per_patch() -> None:
    network = Musicnn()
    with torch.inference_mode():
        penultimate, tags = network(torch.rand(1, PATCH_FRAMES, MEL_BANDS))
    assert penultimate.shape == (1, PENULTIMATE_DIM)
    assert tags.shape == (1, N_TAGS)
    assert ((tags >= 0) & (tags <= 1)).all()  # probabilities, not logits


def test_training_mode_is_refused() -> None:
    """Batch statistics would replace the pretrained ones and change every output."""
    with pytest.raises(RuntimeError, match="inference-only"):
        Musicnn().train()


def test_half_precision_autocast_stays_close_to_the_original() -> None:
    """The GPU path runs under float16 autocast: the same autocast on a CPU stays close to TF."""
    reference = np.load(REFERENCE)
    network = _pretrained("MSD_musicnn")
    real = slice(3, 5)  # the real-music patches (float16 convs are slow on a CPU)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.float16):
        penultimate, tags = network(torch.from_numpy(reference["patches"][real]))
    np.testing.assert_allclose(tags.float().numpy(), reference["MSD_musicnn_tags"][real], atol=5e-3)
    np.testing.assert_allclose(
        penultimate.float().numpy(), reference["MSD_musicnn_penultimate"][real], atol=0.05
    )
