"""Links into the MLflow UI that open its model-training pages.

MLflow 3's UI (3.17 here) keeps a per-browser "workflow type" that defaults to GenAI: an
experiment then opens on its traces overview, whatever its `mlflow.experimentKind` tag says
(`registry.tracking` still sets the tag for UIs that read it). A link can choose the type with the
`workflowType` query of the UI's hash route, and the UI keeps it while one navigates from there,
so every link we print or publish carries it. No MLflow import: `serve` prints one of these.
"""

from __future__ import annotations

MODEL_TRAINING_VIEW = "workflowType=machine_learning"


def ui_page(ui_base: str, route: str = "/") -> str:
    """`ui_base` (e.g. http://127.0.0.1:5000) at hash `route` (e.g. `/experiments/3`), on the
    model-training pages."""
    separator = "&" if "?" in route else "?"
    return f"{ui_base.rstrip('/')}/#{route}{separator}{MODEL_TRAINING_VIEW}"


def run_page(ui_base: str, experiment_id: str, run_id: str) -> str:
    """A run's page (the experiment's route: the bare `/runs/<id>` route drops the query)."""
    return ui_page(ui_base, f"/experiments/{experiment_id}/runs/{run_id}")
