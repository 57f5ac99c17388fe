"""Which Prefect API a command-line run uses: a running `serve`, else its own temporary server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import psutil
import pytest
import soundfile as sf

from flows import prefect_api as api

SR = 22050


def _songs(root: Path) -> Path:
    rng = np.random.default_rng(3)
    for i, freq in enumerate((220, 330)):
        path = root / "genres_original" / "rock" / f"rock.{i:05d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        samples = 0.3 * np.sin(2 * np.pi * freq * np.arange(2 * SR) / SR)
        sf.write(path, (samples + 0.01 * rng.standard_normal(samples.size)).astype(np.float32), SR)
    return root


def _cli(args: list[str], *, home: Path, cwd: Path, repo_root: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {"PYTHONPATH": str(repo_root), "PREFECT_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "flows", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


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


def test_a_cli_run_without_a_server_starts_its_own_and_stops_it(
    tmp_path: Path, repo_root: Path
) -> None:
    home = tmp_path / "prefect_home"
    result = _cli(
        ["ingest", str(_songs(tmp_path / "songs")), "--workdir", str(tmp_path / "work")],
        home=home,
        cwd=tmp_path,
        repo_root=repo_root,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 tracks ok, 0 quarantined" in result.stdout
    assert (tmp_path / "work" / "tracks.parquet").exists()
    assert (home / "prefect.db").exists()  # the temporary server kept its runs in PREFECT_HOME
    # Ours, launched early: Prefect's own temporary server (which says so) never started.
    assert "Starting temporary server" not in result.stdout + result.stderr
    assert _servers_with_home(home) == []


def test_exit_codes_survive_the_fast_exit(tmp_path: Path, repo_root: Path) -> None:
    mistake = _cli(
        ["ingest", str(tmp_path / "missing")], home=tmp_path, cwd=tmp_path, repo_root=repo_root
    )
    assert mistake.returncode == 2
    assert mistake.stderr.strip().splitlines()[-1].startswith("error: data: data not found")
    unknown = _cli(["no-such-command"], home=tmp_path, cwd=tmp_path, repo_root=repo_root)
    assert unknown.returncode == 2
    assert _cli(["--help"], home=tmp_path, cwd=tmp_path, repo_root=repo_root).returncode == 0


def test_a_cli_run_uses_the_server_of_a_running_serve(
    prefect_api, tmp_path: Path, repo_root: Path
) -> None:
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
        repo_root=repo_root,
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
