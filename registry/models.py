"""The model registry: model folders logged to runs, registered versions, aliases, downloads.

A registered model version is a plain folder of files logged as artifacts of a run: weights in
safetensors, the model card (`model.json`), an `MLmodel` file and `input_example.json` that give
MLflow's UI the signature and an input example (`describe_model_folder`, no flavour, so no MLflow
loader can take it for a loadable model) and, for the champion, the files prediction needs.
Nothing here pickles or unpickles: loading is downloading the folder, and the caller rebuilds the
model from the card and the weights (`tasks.training.checkpoint`). MLflow's pytorch flavour is
not used because it stores whole modules with pickle, and loading one runs arbitrary code from
the tracking store.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import yaml
from mlflow.artifacts import download_artifacts
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode

from registry.tracking import client

CHAMPION = "champion"
# The version tag holding `content_digest` of the version's files.
DIGEST_TAG = "content_digest"
MLMODEL_FILE = "MLmodel"
INPUT_EXAMPLE_FILE = "input_example.json"


def describe_model_folder(
    folder: Path, *, inputs: Mapping[str, np.ndarray], outputs: np.ndarray
) -> list[Path]:
    """Write `MLmodel` (the signature inferred from `inputs` and `outputs`, batch axis variable)
    and `input_example.json` (`inputs` as lists) into `folder`; return both paths.

    The MLmodel lists no flavour: MLflow shows the signature and the example on the run's and
    the version's pages, but no MLflow loader will load the folder (ours rebuilds the model
    from the card and the safetensors weights). No creation time or uuid in it, so that the same
    model gives the same file and `content_digest`.
    """
    signature = infer_signature(dict(inputs), outputs)
    description = {
        "flavors": {},
        "signature": signature.to_dict(),
        "saved_input_example_info": {"artifact_path": INPUT_EXAMPLE_FILE, "type": "ndarray"},
    }
    mlmodel = folder / MLMODEL_FILE
    mlmodel.write_text(yaml.safe_dump(description, sort_keys=True))
    example = folder / INPUT_EXAMPLE_FILE
    example.write_text(json.dumps({name: value.tolist() for name, value in inputs.items()}))
    return [mlmodel, example]


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


def content_digest(files: list[Path]) -> str:
    """SHA-256 of what a model folder is: every file's name and bytes, in name order.

    A JSON file is hashed without its top-level `run_id`: the run that produced a model says
    where it came from, not what it is, so a model retrained to the same weights and card under
    a new run has the same digest.

    Raises:
        FileNotFoundError: one of `files` does not exist.
    """
    digest = hashlib.sha256()
    for path in sorted(map(Path, files), key=lambda p: p.name):
        content = path.read_bytes()
        if path.suffix == ".json":
            content = _without_run_id(content)
        digest.update(path.name.encode() + b"\0" + hashlib.sha256(content).digest())
    return digest.hexdigest()


def _without_run_id(content: bytes) -> bytes:
    try:
        data = json.loads(content)
    except ValueError:
        return content
    if not isinstance(data, dict):
        return content
    data.pop("run_id", None)
    return json.dumps(data, sort_keys=True).encode()


def register_model(
    model_uri: str,
    registered_name: str,
    *,
    digest: str | None = None,
    description: str | None = None,
) -> str:
    """Register the folder at `model_uri` (`runs:/RUN/PATH`, from `log_model_folder`) as a new
    version of `registered_name` (created on first use); return the version number.

    With `digest` (`content_digest` of the folder's files), a version that already holds that
    content is returned instead of a new one, so re-running on unchanged data does not grow the
    registry. `description` is shown on the version's page in `mlflow ui`.

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
    if digest is not None:
        existing = version_with_digest(registered_name, digest)
        if existing is not None:
            return existing
    artifact_root = mlflow_client.get_run(run_id).info.artifact_uri.rstrip("/")
    version = mlflow_client.create_model_version(
        registered_name,
        source=f"{artifact_root}/{artifact_path}",
        run_id=run_id,
        tags={DIGEST_TAG: digest} if digest is not None else None,
        description=description,
    )
    return str(version.version)


def version_with_digest(registered_name: str, digest: str) -> str | None:
    """The oldest version of `registered_name` whose content digest is `digest`; None if none."""
    # Filtered by the store: only the versions holding that content come back.
    versions = client().search_model_versions(
        f"name = '{registered_name}' AND tags.{DIGEST_TAG} = '{digest}'"
    )
    same = [int(v.version) for v in versions]
    return str(min(same)) if same else None


def set_description(registered_name: str, version: str, description: str) -> None:
    client().update_model_version(registered_name, version, description=description)


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
