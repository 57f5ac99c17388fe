"""Which Prefect API a command-line run uses: a running `serve`, else its own temporary server."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from flows.runtime import prefect_api as api
from flows.runtime.state import ServiceState
from tests.commands import run_flows, user_environment
from tests.flows.runtime.songs import write_songs


def _songs(root: Path) -> Path:
    return write_songs(root, count=2, seconds=2.0)


def _cli(args: list[str], *, home: Path, cwd: Path) -> subprocess.CompletedProcess:
    return run_flows(args, cwd=cwd, env=user_environment(PREFECT_HOME=str(home)))


def _servers_with_home(home: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            command = " ".join(process.info["cmdline"] or [])
            if "prefect.server.api.server:create_app" in command and process.environ().get(
                "PREFECT_HOME"
            ) == str(home):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@pytest.mark.prefect_server
def test_a_cli_run_without_a_server_starts_its_own_and_stops_it(tmp_path: Path) -> None:
    home = tmp_path / "prefect_home"
    result = _cli(
        ["ingest", str(_songs(tmp_path / "songs")), "--workdir", str(tmp_path / "work")],
        home=home,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 tracks ok, 0 quarantined" in result.stdout
    assert (tmp_path / "work" / "tracks.parquet").exists()
    assert (home / "prefect.db").exists()  # the temporary server kept its runs in PREFECT_HOME
    # Ours, launched early: Prefect's own temporary server (which says so) never started.
    assert "Starting temporary server" not in result.stdout + result.stderr
    assert _servers_with_home(home) == []


@pytest.mark.prefect_server  # `ingest` launches a temporary server before it parses its arguments
def test_exit_codes_survive_the_fast_exit(tmp_path: Path) -> None:
    # An option first: the command's own parser reads it (the early check leaves it alone).
    mistake = _cli(
        ["ingest", "--workdir", str(tmp_path / "w"), str(tmp_path / "missing")],
        home=tmp_path,
        cwd=tmp_path,
    )
    assert mistake.returncode == 2
    assert mistake.stderr.strip().splitlines()[-1].startswith("error: data: data not found")
    unknown = _cli(["no-such-command"], home=tmp_path, cwd=tmp_path)
    assert unknown.returncode == 2
    assert _cli(["--help"], home=tmp_path, cwd=tmp_path).returncode == 0


@pytest.mark.prefect_server
def test_a_cli_run_uses_the_server_of_a_running_serve(prefect_api, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
    from prefect.settings import PREFECT_API_URL

    home = tmp_path / "prefect_home"
    home.mkdir()
    # What `serve` writes once its server is up; this test process stands in for serve.
    api.write_serve_record(home, PREFECT_API_URL.value())
    songs = _songs(tmp_path / "songs_for_serve")

    result = _cli(
        ["ingest", str(songs), "--workdir", str(tmp_path / "work")],
        home=home,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (home / "prefect.db").exists()  # no temporary server of its own
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=["ingest songs_for_serve"]))
        )
    assert [run.state.name for run in runs] == ["Completed"]


def test_stale_or_dead_serve_records_are_ignored(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    monkeypatch.setattr(api, "REPO_ROOT", tmp_path / "elsewhere")
    record = tmp_path / api.SERVE_RECORD

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], **_captured())
    record.write_text(json.dumps({"api_url": "http://127.0.0.1:9/api", "pid": int(dead.stdout)}))
    assert api.running_serve_api() is None

    # A live process but nothing answering at the URL (serve is still starting, or hung).
    record.write_text(json.dumps({"api_url": "http://127.0.0.1:9/api", "pid": os.getpid()}))
    assert api.running_serve_api() is None

    record.write_text("not json")
    assert api.running_serve_api() is None


@pytest.fixture
def healthy_api() -> Iterator[str]:
    """An API URL whose `/health` answers 200, as a running Prefect server's does."""

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/api/health" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:  # keep the test output clean
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api"
    server.shutdown()
    server.server_close()


def test_without_prefect_home_a_run_finds_the_serve_of_this_checkout(
    tmp_path: Path, monkeypatch, healthy_api: str
) -> None:
    # Given a serve started with its default state folder (what `serve` writes there) ...
    monkeypatch.delenv("PREFECT_HOME", raising=False)
    monkeypatch.setattr(api, "REPO_ROOT", tmp_path)
    home = ServiceState.of_repo(tmp_path).prefect_home
    home.mkdir(parents=True)
    api.write_serve_record(home, healthy_api)
    # ... a command-line run with no PREFECT_HOME finds it.
    assert api.running_serve_api() == healthy_api
    # With PREFECT_HOME set, only that home counts.
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "other"))
    assert api.running_serve_api() is None


def test_serve_removes_only_its_own_record(tmp_path: Path) -> None:
    api.write_serve_record(tmp_path, "http://127.0.0.1:4200/api")
    record = tmp_path / api.SERVE_RECORD
    api.remove_serve_record(tmp_path)
    assert not record.exists()

    record.write_text(json.dumps({"api_url": "http://127.0.0.1:4200/api", "pid": 1}))
    api.remove_serve_record(tmp_path)  # another serve's record stays
    assert record.exists()


@pytest.mark.parametrize(
    ("argv", "launches"),
    [
        (["ingest", "songs"], True),
        (["ingest", "--help"], False),
        (["demo-data", "out"], False),
        (["serve"], False),
        ([], False),
    ],
)
def test_only_commands_that_run_flows_launch_a_server_early(
    argv: list[str], launches: bool, tmp_path: Path, monkeypatch
) -> None:
    launched = []
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setattr(api, "REPO_ROOT", tmp_path / "elsewhere")
    monkeypatch.setattr(api.TemporaryServer, "launch", lambda self: launched.append(self))
    monkeypatch.setattr(api, "_early_server", None)
    api.prepare(argv)
    assert bool(launched) == launches


def _captured() -> dict:
    return {"capture_output": True, "text": True, "check": True, "timeout": 60}
