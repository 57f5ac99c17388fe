"""The champion: one registered model (`vaemusic@champion`) that `predict` uses for new tracks.

A champion version is self-contained: the encoder (x -> latent means) plus, as extra files, its
model description, the fitted clustering and the reference latents of the collection it was
fitted on. The evaluation flow replaces the champion only when its best model is better on the
*same* objective (recorded in the version's tags) computed on the same data set, or when the
champion was chosen on other data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from registry.models import (
    CHAMPION,
    log_torch_model,
    register_model,
    set_alias,
    version_by_alias,
)
from registry.tracking import client

CHAMPION_MODEL = "vaemusic"


def champion_objective(name: str = CHAMPION_MODEL) -> tuple[str, float, str] | None:
    """(objective, value, fingerprint) recorded on the current champion, or None."""
    version = version_by_alias(name, CHAMPION)
    if version is None:
        return None
    tags = version.tags or {}
    try:
        return tags["objective"], float(tags["objective_value"]), tags.get("fingerprint", "")
    except (KeyError, ValueError):
        return None


def promote(
    *,
    run_id: str,
    encoder: Any,
    input_example: np.ndarray,
    files: list[Path],
    objective: str,
    value: float,
    fingerprint: str,
    tags: dict[str, str] | None = None,
    name: str = CHAMPION_MODEL,
) -> str:
    """Log the champion package under `run_id`, register it and point `name@champion` at it."""
    import torch

    with torch.no_grad():
        output_example = encoder(torch.from_numpy(input_example)).numpy()
    uri = log_torch_model(
        run_id,
        encoder,
        input_example=input_example,
        output_example=output_example,
        name="champion",
        extra_files=files,
    )
    version = register_model(uri, name)
    all_tags = {
        "objective": objective,
        "objective_value": f"{value:.6g}",
        "fingerprint": fingerprint,
        "source_run": run_id,
        **(tags or {}),
    }
    for key, text in all_tags.items():
        client().set_model_version_tag(name, version, key, str(text))
    set_alias(name, CHAMPION, version)
    return version
