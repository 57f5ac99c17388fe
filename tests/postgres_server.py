"""A real throw-away PostgreSQL server for tests (Debian package `postgresql`): one per test
session, on a free loopback port, with the databases `mlflow` and `prefect`; a test that needs a
database of its own makes one (`Postgres.new_database`), so tests sharing the server do not see
each other's rows. Skipped only where PostgreSQL is not installed and we are not in CI (CI
installs it)."""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest

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

    def new_database(self, prefix: str) -> str:
        """Create an empty database named after `prefix`, unused so far; return its name."""
        name = f"{prefix}_{secrets.token_hex(4)}"
        connection = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres")
        connection.autocommit = True  # CREATE DATABASE cannot run inside a transaction
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE {name}")
        finally:
            connection.close()
        return name

    def query(self, database: str, sql: str) -> list[tuple]:
        with (
            psycopg2.connect(
                host="127.0.0.1", port=self.port, user="postgres", dbname=database
            ) as connection,
            connection.cursor() as cursor,
        ):
            cursor.execute(sql)
            return cursor.fetchall()


@pytest.fixture(scope="session")
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
