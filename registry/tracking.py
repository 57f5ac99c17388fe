"""MLflow tracking: where runs go, how they start and end, and how things are logged to them.

Every function takes an explicit `run_id`. MLflow's "active run" is per thread and Prefect runs
tasks in worker threads, so relying on it would log to the wrong run or to none.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import mlflow
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from tasks.core.redaction import install_log_redaction

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
_MAX_PARAM_LENGTH = 6000


def tracking_uri() -> str:
    """`MLFLOW_TRACKING_URI` when set, else `sqlite:///mlflow.db` in the current directory.

    The default is the same one `mlflow ui` uses when started in the repo root. A tracking
    server URI with a user and password (`http://u:secret@host`) comes back without them: they
    move to `MLFLOW_TRACKING_USERNAME` / `_PASSWORD` (unless set), which MLflow sends the same
    way, so that no MLflow error message, Prefect state or link built from the URI holds the
    password.
    """
    return _without_credentials(os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI)


def _without_credentials(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or parts.password is None:
        return uri
    os.environ.setdefault("MLFLOW_TRACKING_USERNAME", unquote(parts.username or ""))
    os.environ.setdefault("MLFLOW_TRACKING_PASSWORD", unquote(parts.password))
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


# The first client of a process opens the store (for SQLite: engine, schema check, migrations on a
# new file); one at a time, so that a warm-up and a flow never migrate one database together.
_opening = threading.Lock()


def client() -> MlflowClient:
    # Every flow opens the store through here, also in processes that no entry point set up (flow
    # runs a Prefect worker starts): the URI may hold a password, so logs must mask it first.
    install_log_redaction()
    uri = tracking_uri()
    with _opening:
        if mlflow.get_tracking_uri() != uri:
            mlflow.set_tracking_uri(uri)
        return MlflowClient(tracking_uri=uri)


def open_store_in_background() -> None:
    """Open the tracking store on a daemon thread while the caller goes on.

    Opening a SQLite store costs 0.5-1 s (3 s or more when a new file is migrated); a command
    line run would otherwise wait for it when the flow logs its first run.
    """

    def open_store() -> None:
        with contextlib.suppress(Exception):  # a real problem surfaces at the flow's own call
            client().get_experiment_by_name("Default")

    threading.Thread(target=open_store, name="mlflow-open-store", daemon=True).start()


# Shown in `mlflow ui` above each experiment's runs (the experiment's "description").
EXPERIMENT_DESCRIPTIONS = {
    "pipeline": "Whole-pipeline runs. Each parent run holds the headline (the champion's NMI "
    "and silhouette, the number of methods) and the reports; its ingest, lyrics, training and "
    "evaluation runs are nested under it.",
    "ingest": "Standalone ingest runs: tracks found, decoded, quarantined; the track table.",
    "lyrics": "Standalone lyrics runs: pairing, languages, embeddings.",
    "training": "Standalone training runs, one per model; sort by kmeans_nmi or "
    "kmeans_silhouette (the clustering quality of the latents, logged by the evaluation).",
    "evaluation": "Standalone evaluations; one child run per comparison row (method, variant, "
    "algorithm), with its settings as parameters for the compare view.",
    "tuning": "Optuna studies: one session run per study, its trials nested under it.",
    "predict": "Placement of new tracks in the champion's clusters.",
}
# The experiment type MLflow 3's UI may read to pick the page an experiment opens on. The 3.17 UI
# lets its per-browser GenAI/model-training switch override it, so the links we print carry the
# switch too (`registry.ui`).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MACHINE_LEARNING_KIND = "custom_model_development"
DESCRIPTION_TAG = "mlflow.note.content"


def experiment_id(name: str) -> str:
    """The id of experiment `name`, created when missing, marked as a machine-learning experiment
    (the UI opens it on its runs) and described when its name is one of ours."""
    c = client()
    experiment = c.get_experiment_by_name(name)
    if experiment is None:
        try:
            experiment = c.get_experiment(c.create_experiment(name))
        except mlflow.exceptions.MlflowException:
            # Another thread or process created it between our two calls.
            experiment = c.get_experiment_by_name(name)
    _label_experiment(c, experiment.experiment_id, experiment.tags or {}, name)
    return experiment.experiment_id


def _label_experiment(c: MlflowClient, experiment: str, tags: Mapping[str, str], name: str) -> None:
    """Set the kind and the description where missing: older stores get them on their next run,
    and a description someone edited in the UI is kept."""
    if EXPERIMENT_KIND_TAG not in tags:
        c.set_experiment_tag(experiment, EXPERIMENT_KIND_TAG, MACHINE_LEARNING_KIND)
    if DESCRIPTION_TAG not in tags and name in EXPERIMENT_DESCRIPTIONS:
        c.set_experiment_tag(experiment, DESCRIPTION_TAG, EXPERIMENT_DESCRIPTIONS[name])


def experiment_of_run(run_id: str) -> str:
    """The experiment id of run `run_id` (runs never move, so the answer is remembered)."""
    return _experiment_of_run(tracking_uri(), run_id)


@functools.lru_cache(maxsize=256)
def _experiment_of_run(uri: str, run_id: str) -> str:
    return client().get_run(run_id).info.experiment_id


@contextmanager
def tracked_run(
    experiment: str,
    run_name: str,
    *,
    parent_run_id: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> Iterator[str]:
    """Start a run, yield its id, and end it as FINISHED, or FAILED if the block raises.

    A run with `parent_run_id` is filed in its parent's experiment, whatever `experiment` says:
    `mlflow ui` draws a run tree only inside one experiment, so a pipeline's training runs under
    a `pipeline` parent go to `pipeline`, while a standalone training goes to `experiment`.
    """
    all_tags = dict(tags or {})
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
        home = experiment_of_run(parent_run_id)
    else:
        home = experiment_id(experiment)
    run = client().create_run(home, run_name=run_name, tags=all_tags)
    run_id = run.info.run_id
    try:
        yield run_id
    except BaseException:
        client().set_terminated(run_id, status="FAILED")
        raise
    client().set_terminated(run_id, status="FINISHED")


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested mappings as dotted keys (`model.latent_dim`), values as strings MLflow accepts."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, prefix=f"{name}."))
        else:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            flat[name] = text[:_MAX_PARAM_LENGTH]
    return flat


def log_params(run_id: str, params: Mapping[str, Any]) -> None:
    items = [Param(k, v) for k, v in flatten(params).items()]
    for start in range(0, len(items), 100):
        client().log_batch(run_id, params=items[start : start + 100])


def set_tags(run_id: str, tags: Mapping[str, Any]) -> None:
    client().log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])


def set_description(run_id: str, markdown: str) -> None:
    """The run's description: the Markdown `mlflow ui` shows at the top of the run's page."""
    set_tags(run_id, {DESCRIPTION_TAG: markdown})


def log_metrics(run_id: str, metrics: Mapping[str, float], *, step: int = 0) -> None:
    """Log finite metrics; non-finite values are skipped because MLflow charts cannot show them."""
    now = int(time.time() * 1000)
    items = [
        Metric(k, float(v), now, step)
        for k, v in metrics.items()
        if v is not None and math.isfinite(float(v))
    ]
    for start in range(0, len(items), 500):
        client().log_batch(run_id, metrics=items[start : start + 500])


def log_metric_histories(run_id: str, histories: Mapping[str, Sequence[float]]) -> None:
    """Whole per-epoch histories at once (step = epoch index), in as few requests as MLflow
    allows (1,000 values each): one request per metric cost ~0.3 s of every training."""
    now = int(time.time() * 1000)
    items = [
        Metric(name, float(v), now, i)
        for name, values in histories.items()
        for i, v in enumerate(values)
        if math.isfinite(v)
    ]
    for start in range(0, len(items), 1000):
        client().log_batch(run_id, metrics=items[start : start + 1000])


def log_artifact(run_id: str, path: str | Path, artifact_path: str | None = None) -> None:
    path = Path(path)
    if path.is_dir():
        client().log_artifacts(run_id, str(path), artifact_path)
    else:
        client().log_artifact(run_id, str(path), artifact_path)


def log_figure(run_id: str, figure: Any, artifact_file: str) -> None:
    """Log a matplotlib figure (PNG) or a plotly figure (HTML)."""
    client().log_figure(run_id, figure, artifact_file)


def log_dict(run_id: str, data: Mapping[str, Any], artifact_file: str) -> None:
    client().log_dict(run_id, dict(data), artifact_file)


def log_text(run_id: str, text: str, artifact_file: str) -> None:
    client().log_text(run_id, text, artifact_file)


def log_table(run_id: str, table: Any, artifact_file: str) -> None:
    """Log a polars DataFrame as CSV (or Parquet when `artifact_file` ends with .parquet)."""
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / Path(artifact_file).name
        if target.suffix == ".parquet":
            table.write_parquet(target)
        else:
            table.write_csv(target)
        parent = str(Path(artifact_file).parent)
        client().log_artifact(run_id, str(target), None if parent == "." else parent)
