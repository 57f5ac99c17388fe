"""The model registry: model folders logged to runs, registered versions, aliases, downloads.

A registered model version is a plain folder of files logged as artifacts of a run: weights in
safetensors, the model card (`model.json`) and, for the champion, the files prediction needs.
Nothing here pickles or unpickles: loading is downloading the folder, and the caller rebuilds the
model from the card and the weights (`tasks.training.checkpoint`). MLflow's pytorch flavour is
not used because it stores whole modules with pickle, and loading one runs arbitrary code from
the tracking store.
"""

from __future__ import annotations

from pathlib import Path

from mlflow.artifacts import download_artifacts
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode

from registry.tracking import client

CHAMPION = "champion"


def log_model_folder(run_id: str, files: list[Path], *, name: str = "model") -> str:
    """Log `files` under the artifact folder `name` of run `run_id`; return `runs:/RUN/name`.

    Raises:
        FileNotFoundError: one of `files` does not exist (nothing is logged then).
    """
    missing = [str(path) for path in files if not Path(path).is_file()]
    if missing:
        raise FileNotFoundError(f"cannot log model folder {name!r}: missing {', '.join(missing)}")
    mlflow_client = client()
    for path in files:
        mlflow_client.log_artifact(run_id, str(path), name)
    return f"runs:/{run_id}/{name}"


def register_model(model_uri: str, registered_name: str) -> str:
    """Register the folder at `model_uri` (`runs:/RUN/PATH`, from `log_model_folder`) as a new
    version of `registered_name` (created on first use); return the version number.

    Raises:
        ValueError: `model_uri` is not a `runs:/RUN/PATH` URI.
    """
    run_id, _, artifact_path = model_uri.removeprefix("runs:/").partition("/")
    if not model_uri.startswith("runs:/") or not run_id or not artifact_path:
        raise ValueError(f"register_model takes a runs:/RUN_ID/PATH URI, not {model_uri!r}")
    mlflow_client = client()
    try:
        mlflow_client.create_registered_model(registered_name)
    except MlflowException as error:
        if error.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
            raise
    artifact_root = mlflow_client.get_run(run_id).info.artifact_uri.rstrip("/")
    version = mlflow_client.create_model_version(
        registered_name, source=f"{artifact_root}/{artifact_path}", run_id=run_id
    )
    return str(version.version)


def set_alias(registered_name: str, alias: str, version: str) -> None:
    client().set_registered_model_alias(registered_name, alias, version)


def set_version_tags(registered_name: str, version: str, tags: dict[str, str]) -> None:
    mlflow_client = client()
    for key, value in tags.items():
        mlflow_client.set_model_version_tag(registered_name, version, key, str(value))


def version_by_alias(registered_name: str, alias: str = CHAMPION) -> ModelVersion | None:
    """The version behind `NAME@alias`, or None when the model or the alias does not exist."""
    try:
        return client().get_model_version_by_alias(registered_name, alias)
    except MlflowException:
        return None


def download_model_files(model_uri: str, destination: str | Path) -> Path:
    """Download a model folder (`models:/NAME@ALIAS`, `models:/NAME/VERSION` or `runs:/RUN/PATH`)
    into `destination` and return the local folder. Files are only copied, never loaded."""
    client()  # sets the tracking URI that `download_artifacts` reads
    return Path(download_artifacts(model_uri, dst_path=str(destination)))
