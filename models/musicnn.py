"""musicnn (Pons & Serra, 2019), a music-tagging CNN pretrained on MSD or MagnaTagATune: PyTorch.

A port of the package's TensorFlow-1 graph (`musicnn/models.py::build_musicnn`); MSD_musicnn and
MTT_musicnn share this architecture and differ only in weights and tag vocabulary. The weights
are converted from the package's checkpoints by `tasks.audio.musicnn_weights`; this module only
defines the network (no file I/O).

Input: log-mel patches, Tensor [shape=(B, 187, 96)] = (batch, frames, mel bands), the
`log10(10000 * mel_power + 1)` of 3 s of 16 kHz audio (STFT 512, hop 256).
Output: `(penultimate, tag_probabilities)`, shapes (B, 200) and (B, 50). The tags are
probabilities (sigmoid of the logits), as the original's `extractor` returns them.

Parts (TensorFlow names in brackets, in creation order, so the converter can map them):
- front-end: input batch norm [batch_normalization]; two timbral blocks, kernels 7x38 and 7x67
  over (time, frequency) with 204 filters [conv2d, conv2d_1]; three temporal blocks, kernels
  128x1, 64x1, 32x1 with 51 filters [conv2d_2..4]; each block is conv, ReLU, batch norm, max over
  frequency; concatenated into 561 channels per frame.
- mid-end: three 7-wide convolutions of 64 filters over time [conv2d_5..7] (conv, ReLU, batch
  norm), the 2nd and 3rd with residual adds; front-end and mid-end outputs concatenated (753).
- back-end: max and mean over time, flattened interleaved per channel (max0, mean0, max1, ...),
  batch norm, dense 1506 -> 200 with ReLU then batch norm (= the penultimate embedding), dense
  200 -> 50 (tag logits).
"""

from __future__ import annotations

from typing import Final

import torch
import torch.nn.functional as F
from torch import Tensor, nn

PATCH_FRAMES: Final = 187
MEL_BANDS: Final = 96
PENULTIMATE_DIM: Final = 200
N_TAGS: Final = 50
# tf.compat.v1.layers.batch_normalization's default; PyTorch's is 1e-5.
_TF_BATCH_NORM_EPS: Final = 1e-3

_TIMBRAL_FILTERS: Final = int(1.6 * 128)  # 204
_TEMPORAL_FILTERS: Final = int(1.6 * 32)  # 51
_TIMBRAL_KERNELS: Final = ((7, int(0.4 * MEL_BANDS)), (7, int(0.7 * MEL_BANDS)))  # 7x38, 7x67
_TEMPORAL_KERNELS: Final = (128, 64, 32)
_MIDEND_FILTERS: Final = 64
_MIDEND_KERNEL: Final = 7
FRONTEND_CHANNELS: Final = 2 * _TIMBRAL_FILTERS + 3 * _TEMPORAL_FILTERS  # 561
_BACKEND_CHANNELS: Final = FRONTEND_CHANNELS + 3 * _MIDEND_FILTERS  # 753


def _same_padding(kernel: int) -> tuple[int, int]:
    """TensorFlow's 'same' padding along one axis: (k-1)//2 before, the rest after."""
    return (kernel - 1) // 2, kernel - 1 - (kernel - 1) // 2


class _FrontEndBlock(nn.Module):
    """Conv over (time, frequency), ReLU, batch norm, max over frequency: (B,1,T,F) -> (B,C,T).

    Computed as max-then-ReLU-then-norm, which is exactly equal and skips two passes over the
    large (B, C, T, F') map: ReLU and an affine map are monotone, so they commute with the max
    when the norm's scale is >= 0; for a channel with a negative scale the max of the normalised
    values is the norm of the *min*, obtained as -max of the negated conv (weights flipped here).
    """

    def __init__(self, filters: int, kernel: tuple[int, int], time_padding: tuple[int, int]):
        super().__init__()
        self.conv = nn.Conv2d(1, filters, kernel)
        self.norm = nn.BatchNorm2d(filters, eps=_TF_BATCH_NORM_EPS)
        self.time_padding = time_padding

    def forward(self, x: Tensor) -> Tensor:
        sign = torch.where(self.norm.weight < 0, -1.0, 1.0).to(x.dtype)
        weight = self.conv.weight.to(x.dtype) * sign[:, None, None, None]
        bias = self.conv.bias.to(x.dtype) * sign
        padded = F.pad(x, (0, 0, *self.time_padding))  # zeros in time only, as the original
        extreme = F.conv2d(padded, weight, bias).amax(dim=3) * sign[:, None]
        return F.batch_norm(
            F.relu(extreme),
            self.norm.running_mean,
            self.norm.running_var,
            self.norm.weight,
            self.norm.bias,
            training=False,
            eps=self.norm.eps,
        )


class _MidEndLayer(nn.Module):
    """7-wide conv over time, ReLU, batch norm: (B, C_in, T) -> (B, 64, T)."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, _MIDEND_FILTERS, _MIDEND_KERNEL, padding=3)
        self.norm = nn.BatchNorm1d(_MIDEND_FILTERS, eps=_TF_BATCH_NORM_EPS)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(F.relu(self.conv(x)))


class Musicnn(nn.Module):
    """MSD_musicnn / MTT_musicnn, inference only (dropout is the identity, norms use moving stats).

    Always in eval mode: batch norm must use the pretrained moving statistics; `train()` is
    refused rather than silently changing the outputs.
    """

    def __init__(self) -> None:
        super().__init__()
        self.input_norm = nn.BatchNorm2d(1, eps=_TF_BATCH_NORM_EPS)
        self.timbral = nn.ModuleList(
            _FrontEndBlock(_TIMBRAL_FILTERS, kernel, (3, 3)) for kernel in _TIMBRAL_KERNELS
        )
        self.temporal = nn.ModuleList(
            _FrontEndBlock(_TEMPORAL_FILTERS, (k, 1), _same_padding(k)) for k in _TEMPORAL_KERNELS
        )
        self.midend = nn.ModuleList(
            [
                _MidEndLayer(FRONTEND_CHANNELS),
                _MidEndLayer(_MIDEND_FILTERS),
                _MidEndLayer(_MIDEND_FILTERS),
            ]
        )
        self.backend_norm = nn.BatchNorm1d(2 * _BACKEND_CHANNELS, eps=_TF_BATCH_NORM_EPS)
        self.penultimate = nn.Linear(2 * _BACKEND_CHANNELS, PENULTIMATE_DIM)
        self.penultimate_norm = nn.BatchNorm1d(PENULTIMATE_DIM, eps=_TF_BATCH_NORM_EPS)
        self.tags = nn.Linear(PENULTIMATE_DIM, N_TAGS)
        super().train(False)

    def train(self, mode: bool = True) -> Musicnn:
        if mode:
            raise RuntimeError("Musicnn is inference-only: its batch norms use pretrained stats")
        return super().train(False)

    def forward(self, patches: Tensor) -> tuple[Tensor, Tensor]:
        """Patches (B, 187, 96) log-mel -> (penultimate (B, 200), tag probabilities (B, 50)).

        Works for any number of frames >= 1 (the original allows other patch lengths), though
        the weights were trained on 187.
        """
        x = self.input_norm(patches.unsqueeze(1))  # (B, 1, T, F)
        frontend = torch.cat([block(x) for block in (*self.timbral, *self.temporal)], dim=1)
        first = self.midend[0](frontend)
        second = self.midend[1](first) + first
        third = self.midend[2](second) + second
        features = torch.cat([frontend, first, second, third], dim=1)  # (B, 753, T)
        # stack then flatten interleaves per channel: (max0, mean0, max1, mean1, ...)
        pooled = torch.stack([features.amax(dim=2), features.mean(dim=2)], dim=2).flatten(1)
        hidden = F.relu(self.penultimate(self.backend_norm(pooled)))
        penultimate = self.penultimate_norm(hidden)
        return penultimate, torch.sigmoid(self.tags(penultimate))
