"""PostgreSQL instead of SQLite, by configuration alone, for both MLflow and Prefect.

Starts a real throw-away PostgreSQL cluster (Debian package `postgresql`) on a free loopback
port, a real Prefect server whose database is in it, and runs the ingest command with
MLFLOW_TRACKING_URI and PREFECT_API_URL pointing there; then reads both databases directly.
Skipped only where PostgreSQL is not installed and we are not in CI (CI installs it).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from mlflow import MlflowClient

from flows.runtime.services import wait_until_healthy
from flows.runtime.supervisor import Supervisor
from tests.postgres_server import ASYNCPG, Postgres, free_port

pytestmark = pytest.mark.postgres

SR = 22050
PREFECT_STARTUP_TIMEOUT_S = 300  # the first start migrates the whole schema
INGEST_TIMEOUT_S = 420


def write_songs(root: Path, count: int = 3) -> Path:
    rng = np.random.default_rng(5)
    for i in range(count):
        t = np.arange(int(2.5 * SR)) / SR
        samples = 0.3 * np.sin(2 * np.pi * (200 + 90 * i) * t) + 0.02 * rng.standard_normal(t.size)
        path = root / "genres_original" / "jazz" / f"jazz.{i:05d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, samples.astype(np.float32), SR)
    return root


def test_mlflow_and_prefect_use_postgres_by_configuration_alone(
    postgres: Postgres, tmp_path: Path, repo_root: Path
) -> None:
    prefect_home = tmp_path / "prefect-home"
    prefect_home.mkdir()
    api_port = free_port()
    api_url = f"http://127.0.0.1:{api_port}/api"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    base |= {"PREFECT_HOME": str(prefect_home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}

    with Supervisor(tmp_path / "logs") as supervisor:
        # Given a Prefect server whose database is PostgreSQL ...
        server = supervisor.start(
            "prefect-server",
            [
                sys.executable,
                "-m",
                "prefect",
                "server",
                "start",
                "--port",
                str(api_port),
                "--host",
                "127.0.0.1",
            ],
            env=base | {"PREFECT_API_DATABASE_CONNECTION_URL": postgres.url("prefect", ASYNCPG)},
            cwd=tmp_path,
        )
        wait_until_healthy(
            f"{api_url}/health",
            process=server.process,
            name="the Prefect server",
            log=server.log,
            timeout_s=PREFECT_STARTUP_TIMEOUT_S,
        )

        # ... when the ingest command runs with both services configured by environment only ...
        songs = write_songs(tmp_path / "songs")
        ingest = subprocess.run(
            [
                sys.executable,
                "-m",
                "flows",
                "ingest",
                str(songs),
                "--n-mels",
                "32",
                "--workdir",
                str(tmp_path / "work"),
            ],
            cwd=tmp_path,
            env=base
            | {
                "PYTHONPATH": str(repo_root),
                "PREFECT_API_URL": api_url,
                "MLFLOW_TRACKING_URI": postgres.url("mlflow"),
            },
            capture_output=True,
            text=True,
            timeout=INGEST_TIMEOUT_S,
            check=False,
        )
        assert ingest.returncode == 0, ingest.stdout + ingest.stderr
        assert "3 tracks ok" in ingest.stdout

        # ... the MLflow run is in PostgreSQL ...
        runs = postgres.query(
            "mlflow",
            "SELECT r.name, r.status FROM runs r "
            "JOIN experiments e ON e.experiment_id = r.experiment_id WHERE e.name = 'ingest'",
        )
        assert runs == [("ingest songs", "FINISHED")]
        n_ok = postgres.query("mlflow", "SELECT value FROM latest_metrics WHERE key = 'n_ok'")
        assert n_ok == [(3.0,)]
        client = MlflowClient(tracking_uri=postgres.url("mlflow"))
        (run,) = client.search_runs([client.get_experiment_by_name("ingest").experiment_id])
        assert run.data.metrics["n_ok"] == 3.0

        # ... and the flow run is recorded by that server, in PostgreSQL, not in SQLite.
        flow_runs = postgres.query(
            "prefect",
            "SELECT fr.name, fr.state_type FROM flow_run fr "
            "JOIN flow f ON f.id = fr.flow_id WHERE f.name = 'ingest'",
        )
        assert flow_runs == [("ingest songs", "COMPLETED")]
        import httpx

        answer = httpx.post(
            f"{api_url}/flow_runs/filter",
            json={"flows": {"name": {"any_": ["ingest"]}}, "limit": 10},
            timeout=30,
        )
        answer.raise_for_status()
        assert [(r["name"], r["state_type"]) for r in answer.json()] == [
            ("ingest songs", "COMPLETED")
        ]
        assert not (prefect_home / "prefect.db").exists()
