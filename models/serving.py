"""A thin wrapper that turns any zoo model into `x -> latent means`, the form that is logged,
registered and served (MLflow's pytorch flavour calls `forward` with one tensor)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from models.base import RepresentationModel


class LatentEncoder(nn.Module):
    """`forward(x)` = deterministic latent means of `model` for inputs x (B, *input_shape).

    Side information is optional: without `condition` a conditional model uses
    `default_condition` (the most frequent class in training); without lyrics a multimodal model
    encodes the audio alone (its fusion masks the missing modality).
    """

    def __init__(self, model: RepresentationModel, *, default_condition: int = 0) -> None:
        super().__init__()
        self.model = model
        self.default_condition = int(default_condition)

    def forward(self, x: Tensor, condition: Tensor | None = None) -> Tensor:
        batch: dict[str, Tensor] = {"x": x}
        if self.model.uses_condition:
            if condition is None:
                condition = torch.full(
                    (x.shape[0],), self.default_condition, dtype=torch.long, device=x.device
                )
            batch["condition"] = condition
        return self.model.embed(batch)
