"""Model logging, the model registry and aliases (`champion`), and loading models back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

from registry.tracking import client

CHAMPION = "champion"
# Pinning the requirements stops MLflow from importing the model in a subprocess to infer them.
_MODEL_REQUIREMENTS = ["torch==2.9.1", "numpy", "scikit-learn"]


@contextmanager
def _in_run(run_id: str) -> Iterator[None]:
    """Make `run_id` the active run of this thread for MLflow APIs that only use the active run."""
    client()  # sets the tracking URI
    active = mlflow.active_run()
    if active is not None and active.info.run_id == run_id:
        yield
        return
    with mlflow.start_run(run_id=run_id, nested=active is not None):
        yield


def log_torch_model(
    run_id: str,
    model: Any,
    *,
    input_example: np.ndarray,
    output_example: np.ndarray,
    name: str = "model",
    extra_files: list[str | Path] | None = None,
) -> str:
    """Log a torch module with `mlflow.pytorch` and a signature; return its model URI.

    `extra_files` travel with the model (for example the fitted clustering as JSON), so a
    registered version holds everything `predict` needs.
    """
    signature = infer_signature(input_example, output_example)
    with _in_run(run_id):
        info = mlflow.pytorch.log_model(
            model,
            name=name,
            signature=signature,
            input_example=input_example,
            pip_requirements=_MODEL_REQUIREMENTS,
            # torch.export (MLflow's "pt2" default) cannot trace data-dependent checks such as
            # the CVAE's condition range; the pickle format stores any module.
            serialization_format="pickle",
            extra_files=[str(p) for p in extra_files or []] or None,
        )
    return info.model_uri


def register_model(model_uri: str, registered_name: str) -> str:
    """Register `model_uri` as a new version of `registered_name`; return the version number."""
    client()
    version = mlflow.register_model(model_uri, registered_name)
    return str(version.version)


def set_alias(registered_name: str, alias: str, version: str) -> None:
    client().set_registered_model_alias(registered_name, alias, version)


def version_by_alias(registered_name: str, alias: str = CHAMPION) -> ModelVersion | None:
    """The version behind `NAME@alias`, or None when the model or the alias does not exist."""
    try:
        return client().get_model_version_by_alias(registered_name, alias)
    except MlflowException:
        return None


def load_torch_model(model_uri: str) -> Any:
    """Load a model logged by `log_torch_model` (runs:/..., models:/NAME@ALIAS), on the CPU."""
    client()
    return mlflow.pytorch.load_model(model_uri, map_location="cpu")


def download_model_files(model_uri: str, destination: str | Path) -> Path:
    """Download a logged model's folder (with its extra files) and return the local path."""
    client()
    return Path(mlflow.artifacts.download_artifacts(model_uri, dst_path=str(destination)))
