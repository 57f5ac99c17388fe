"""The MLflow project (`MLproject`): each stage is an entry point that calls the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.commands import run_command, user_environment
from tests.flows.runtime.songs import write_songs


@pytest.mark.parametrize(
    ("entry", "params", "expected"),
    [
        ("ingest", {"data": "SONGS"}, "python -m flows ingest SONGS --workdir workdir"),
        (
            "train",
            {"model": "beta_vae", "data": "SONGS", "epochs": "3"},
            "python -m flows train beta_vae SONGS --epochs 3 --workdir workdir",
        ),
        (
            "tune",
            {"data": "SONGS", "trials": "4", "workdir": "w"},
            "python -m flows tune conv_vae SONGS --trials 4 --workdir w",
        ),
        ("evaluate", {"data": "SONGS"}, "python -m flows evaluate SONGS --workdir workdir"),
        ("pipeline", {"profile": "full"}, "python -m flows run --workdir workdir --profile full"),
        ("pipeline", {"data": "SONGS"}, "python -m flows run SONGS --workdir workdir"),
    ],
)
def test_mlproject_entry_points_call_the_command_line(
    repo_root: Path, tmp_path: Path, entry: str, params: dict, expected: str
) -> None:
    from mlflow.projects._project_spec import load_project

    songs = tmp_path / "songs"
    songs.mkdir()
    params = {k: (str(songs) if v == "SONGS" else v) for k, v in params.items()}
    project = load_project(str(repo_root))
    assert project.env_config_path == str(repo_root / "python_env.yaml")
    command = project.get_entry_point(entry).compute_command(params, str(tmp_path))
    result = subprocess.run(  # the command as MLflow runs it, with `python` printing its args
        ["bash", "-c", f'python() {{ echo python "$@"; }}; {command}'],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip().startswith(expected.replace("SONGS", str(songs)))


@pytest.mark.prefect_server  # the command line starts its own temporary Prefect server
def test_mlflow_run_of_the_ingest_entry_point_logs_the_flow(
    repo_root: Path, tmp_path: Path
) -> None:
    songs = write_songs(tmp_path / "songs", count=2)
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (tmp_path / "prefect").mkdir()
    # `mlflow run` calls `python -m flows ...` through bash: the venv's python comes first on PATH.
    env = user_environment(
        unset=("MLFLOW_",),
        MLFLOW_TRACKING_URI=store,
        PREFECT_HOME=str(tmp_path / "prefect"),
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180",
    )
    work = tmp_path / "work"
    mlflow_run = [sys.executable, "-m", "mlflow", "run", str(repo_root), "-e", "ingest"]
    options = ["--env-manager", "local", "--experiment-name", "ingest"]
    result = run_command(
        [*mlflow_run, "-P", f"data={songs}", "-P", f"workdir={work}", *options],
        cwd=tmp_path,
        env=env,
        timeout=420,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (work / "tracks.parquet").exists()
    client = MlflowClient(tracking_uri=store)
    runs = client.search_runs([client.get_experiment_by_name("ingest").experiment_id])
    by_name = {run.info.run_name: run for run in runs}
    assert by_name["ingest songs"].data.metrics["n_ok"] == 2.0  # the flow's own run
    # Besides the flow's run, MLflow's own project run records the entry point's parameters.
    with_data = [r for r in runs if r.data.params.get("data") == str(songs)]
    assert len(with_data) == 2
    assert {r.info.status for r in with_data} == {"FINISHED"}
