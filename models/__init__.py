"""PyTorch representation models. No Prefect, no MLflow, no file I/O in this package.

Pick a model by name with `build_model`; every model follows `RepresentationModel`'s contract
(`forward`, `loss_function`, `embed`, `set_input_normalization`).
"""

from models.base import RepresentationModel
from models.zoo import (
    MODEL_CLASSES,
    build_model,
    config_class,
    default_config,
    model_class,
    search_space,
)

__all__ = [
    "MODEL_CLASSES",
    "RepresentationModel",
    "build_model",
    "config_class",
    "default_config",
    "model_class",
    "search_space",
]
