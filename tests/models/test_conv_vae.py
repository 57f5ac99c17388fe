"""The conv VAE's channels-last activations: a speed choice that must not change what it learns or
how it is saved."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_model, save_model

from models.conv_vae import ConvVAE, ConvVAEConfig

SHAPE = (16, 24)


def _pair() -> tuple[ConvVAE, ConvVAE]:
    torch.manual_seed(0)
    channels_last = ConvVAE(ConvVAEConfig(channels=(4, 8)), input_shape=SHAPE)
    contiguous = ConvVAE(ConvVAEConfig(channels=(4, 8)), input_shape=SHAPE)
    contiguous.load_state_dict(channels_last.state_dict())
    contiguous.memory_format = torch.contiguous_format
    return channels_last, contiguous


def test_channels_last_gives_the_same_losses_gradients_and_latents_as_nchw() -> None:
    channels_last, contiguous = _pair()
    assert channels_last.memory_format == torch.channels_last  # the default
    batch = {"x": torch.randn(6, 1, *SHAPE)}
    results = []
    for model in (channels_last, contiguous):
        torch.manual_seed(1)  # the same reparameterisation noise
        loss = model.loss_function(batch, model(batch))["loss"]
        loss.backward()
        gradients = [p.grad.clone() for p in model.parameters()]
        results.append((loss.detach(), gradients, model.embed(batch)))
    (loss_a, grads_a, mu_a), (loss_b, grads_b, mu_b) = results
    torch.testing.assert_close(loss_a, loss_b, rtol=1e-4, atol=1e-3)
    for grad_a, grad_b in zip(grads_a, grads_b, strict=True):
        torch.testing.assert_close(grad_a, grad_b, rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(mu_a, mu_b, rtol=1e-4, atol=1e-5)


def test_trained_weights_stay_contiguous_and_save_as_safetensors(tmp_path: Path) -> None:
    model, _ = _pair()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    batch = {"x": torch.randn(4, 1, *SHAPE)}
    for _ in range(2):
        optimizer.zero_grad()
        model.loss_function(batch, model(batch))["loss"].backward()
        optimizer.step()
    assert all(tensor.is_contiguous() for tensor in model.state_dict().values())
    save_model(model, str(tmp_path / "model.safetensors"))  # refuses non-contiguous tensors
    restored = ConvVAE(ConvVAEConfig(channels=(4, 8)), input_shape=SHAPE)
    load_model(restored, str(tmp_path / "model.safetensors"))
    torch.testing.assert_close(restored.embed(batch), model.embed(batch))
