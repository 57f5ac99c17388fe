"""PostgreSQL instead of SQLite, by configuration alone, for both MLflow and Prefect.

Starts a real throw-away PostgreSQL cluster (Debian package `postgresql`) on a free loopback
port, a real Prefect server whose database is in it, and runs the ingest command with
MLFLOW_TRACKING_URI and PREFECT_API_URL pointing there; then reads both databases directly.
Skipped only where PostgreSQL is not installed and we are not in CI (CI installs it).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg2
import pytest
import soundfile as sf
from mlflow import MlflowClient

from flows.runtime.services import wait_until_healthy
from flows.runtime.supervisor import Supervisor

pytestmark = pytest.mark.postgres

SR = 22050
PREFECT_STARTUP_TIMEOUT_S = 300  # the first start migrates the whole schema
INGEST_TIMEOUT_S = 420
INITDB = ["--auth=trust", "--encoding=UTF8", "--no-sync", "--no-instructions"]
# SQLAlchemy 2.1 reads a bare `postgresql://` as psycopg 3; name the installed drivers.
PSYCOPG2, ASYNCPG = "postgresql+psycopg2", "postgresql+asyncpg"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def postgres_bin_dir() -> Path | None:
    """The newest installed PostgreSQL server binaries (Debian keeps them off PATH)."""
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    if versions:
        return versions[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


@dataclass(frozen=True)
class Postgres:
    port: int

    def url(self, database: str, driver: str = PSYCOPG2) -> str:
        return f"{driver}://postgres@127.0.0.1:{self.port}/{database}"

    def query(self, database: str, sql: str) -> list[tuple]:
        with (
            psycopg2.connect(
                host="127.0.0.1", port=self.port, user="postgres", dbname=database
            ) as connection,
            connection.cursor() as cursor,
        ):
            cursor.execute(sql)
            return cursor.fetchall()


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed; .ci/run must `apt-get install postgresql`")
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install -y postgresql)")

    # initdb refuses to run as root: run the server as the `postgres` user the package creates.
    as_owner: list[str] = []
    data = Path(tempfile.mkdtemp(prefix="vaemusic-pg-"))
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail("running as root but there is no `postgres` user to run PostgreSQL as")
        os.chown(data, owner.pw_uid, owner.pw_gid)
        as_owner = ["runuser", "-u", "postgres", "--"]
    cluster, log = data / "cluster", data / "server.log"
    port = free_port()
    try:
        subprocess.run(
            [*as_owner, str(bin_dir / "initdb"), "-D", str(cluster), "-U", "postgres", *INITDB],
            check=True,
            capture_output=True,
            timeout=180,
        )
        server_options = (
            f"-c listen_addresses=127.0.0.1 -p {port} -k {data} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        subprocess.run(
            [
                *as_owner,
                str(bin_dir / "pg_ctl"),
                "-D",
                str(cluster),
                "-l",
                str(log),
                "-o",
                server_options,
                "-w",
                "-t",
                "120",
                "start",
            ],
            check=True,
            capture_output=True,
            timeout=180,
        )
        connection = psycopg2.connect(host="127.0.0.1", port=port, user="postgres")
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("CREATE DATABASE mlflow")
            cursor.execute("CREATE DATABASE prefect")
        connection.close()
        yield Postgres(port)
    except subprocess.CalledProcessError as error:
        pytest.fail(
            f"could not start PostgreSQL: {error.stderr.decode(errors='replace')}\n"
            f"{log.read_text() if log.exists() else ''}"
        )
    finally:
        subprocess.run(
            [*as_owner, str(bin_dir / "pg_ctl"), "-D", str(cluster), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=120,
            check=False,
        )
        shutil.rmtree(data, ignore_errors=True)


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
