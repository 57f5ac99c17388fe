"""`serve`: real Prefect server + worker + deployments + MLflow UI + optuna-dashboard, a triggered
run, a clean stop.

Both tests start `serve` in a subprocess as a user would. The end-to-end one takes a minute or two
on a small machine: two servers boot, the deployments import every flow, the worker starts a
flow-run process. The pieces are tested fast in test_services, test_supervisor, test_deployments.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
import yaml
from mlflow import MlflowClient

from tests.flows.runtime.processes import alive, free_port, listening_ports
from tests.flows.runtime.songs import write_songs

STARTUP_TIMEOUT_S = 420  # two servers, a work pool and six deployments on a busy 2-core box
RUN_TIMEOUT_S = 240
STOP_TIMEOUT_S = 120


def serve_command(
    prefect_port: int, mlflow_port: int, optuna_port: int, state: Path, *extra: str
) -> list[str]:
    """`serve(...)` run in a fresh interpreter, its return value as the exit code; the Optuna
    storage in `state`'s folder, not in the checkout's work dir."""
    optuna_storage = f"sqlite:///{state.parent / 'optuna.db'}"
    arguments = ", ".join(
        [
            f"'127.0.0.1', {prefect_port}, {mlflow_port}",
            f"Path({str(state)!r})",
            f"optuna_port={optuna_port}",
            f"optuna_storage={optuna_storage!r}",
            *extra,
        ]
    )
    code = (
        "import sys; from pathlib import Path; from flows.runtime.serve import serve; "
        f"sys.exit(serve({arguments}))"
    )
    return [sys.executable, "-c", code]


@pytest.mark.serve
def test_a_service_that_fails_to_start_ends_serve_with_its_log_and_nothing_left(
    tmp_path: Path, repo_root: Path
) -> None:
    prefect_port, mlflow_port, optuna_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    # A setting the Prefect server cannot parse: it exits at once, while the MLflow UI starts.
    env |= {"PYTHONPATH": str(repo_root), "PREFECT_SERVER_API_KEEPALIVE_TIMEOUT": "not-a-number"}
    result = subprocess.run(
        serve_command(prefect_port, mlflow_port, optuna_port, tmp_path / "state"),
        cwd=repo_root,
        env=env | {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"},
        capture_output=True,
        text=True,
        timeout=STOP_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 1
    assert "the Prefect server exited with code 1 while starting" in result.stderr
    assert "keepalive_timeout" in result.stderr  # the end of its log says why
    assert "stopped." in result.stdout
    assert not listening_ports({prefect_port, mlflow_port, optuna_port})


# --- end to end ---------------------------------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path, repo_root: Path) -> Iterator[dict]:
    """`serve()` in a subprocess on free loopback ports; stopped (and checked) by the test."""
    prefect_port, mlflow_port, optuna_port = free_port(), free_port(), free_port()
    ready = tmp_path / "ready"
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    state = tmp_path / "state"
    env = {
        **os.environ,
        "PYTHONPATH": str(repo_root),
        "MLFLOW_TRACKING_URI": store,
        "PREFECT_WORKER_QUERY_SECONDS": "2",  # poll often: the test waits for the run
    }
    env.pop("PREFECT_API_URL", None)
    output = (tmp_path / "serve.out").open("w")
    process = subprocess.Popen(
        serve_command(
            prefect_port, mlflow_port, optuna_port, state, f"ready_file=Path({str(ready)!r})"
        ),
        cwd=repo_root,
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    seen: dict[int, psutil.Process] = {}
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not ready.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"serve did not get ready:\n{(tmp_path / 'serve.out').read_text()}")
            time.sleep(1)
        yield {
            "process": process,
            "api_url": f"http://127.0.0.1:{prefect_port}/api",
            "ports": (prefect_port, mlflow_port, optuna_port),
            "optuna_url": f"http://127.0.0.1:{optuna_port}",
            "store": store,
            "auth": (state / "prefect" / "api-auth").read_text().strip(),
            "prefect_home": state / "prefect",
            "out": tmp_path / "serve.out",
            "seen": seen,
        }
    finally:
        if process.poll() is None:  # the test failed before stopping it: stop it now
            for child in psutil.Process(process.pid).children(recursive=True):
                seen.setdefault(child.pid, child)
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
            for leftover in seen.values():
                if alive(leftover):
                    leftover.kill()
        output.close()


@pytest.mark.serve
def test_serve_runs_a_triggered_deployment_and_stops_without_orphans(
    served: dict, tmp_path: Path, repo_root: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    songs = write_songs(tmp_path / "songs")
    workdir = tmp_path / "work"
    out = served["out"].read_text()
    assert "Prefect dashboard: http://127.0.0.1:" in out
    assert served["auth"] not in out  # the login is named by its file, never printed
    assert_the_api_refuses_strangers(served["api_url"], served["auth"])
    # The dashboard calls this server's API, not Prefect's default port.
    ui_settings = httpx.get(served["api_url"].removesuffix("/api") + "/ui-settings", timeout=30)
    assert ui_settings.json()["api_url"] == served["api_url"]
    assert ui_settings.json()["auth"] == "BASIC"  # the dashboard asks for the auth string
    assert ui_settings.json()["csrf_enabled"] is True
    assert "MLflow UI:         http://127.0.0.1:" in out
    assert f"Optuna dashboard:  {served['optuna_url']} (sqlite:///" in out
    assert httpx.get(served["optuna_url"] + "/api/studies", timeout=30).json() == {
        "study_summaries": []
    }

    with temporary_settings(
        updates={PREFECT_API_URL: served["api_url"], PREFECT_API_AUTH_STRING: served["auth"]}
    ):
        # Given the applied deployments (every flow that exists by now must deploy) ...
        with get_client(sync_client=True) as client:
            ingest = client.read_deployment_by_name("ingest/on-demand")
            pulls = ingest.pull_steps or []
            assert pulls == [
                {"prefect.deployments.steps.set_working_directory": {"directory": str(repo_root)}}
            ]
            assert ingest.job_variables["env"]["PYTHONPATH"] == str(repo_root)
            spec = yaml.safe_load((repo_root / "prefect.yaml").read_text())
            for deployment in spec["deployments"]:
                if (repo_root / deployment["entrypoint"].split(":")[0]).exists():
                    assert f"deployment {deployment['name']!r} not applied" not in out, out

        # ... when the ingest deployment is triggered (as from the dashboard) ...
        flow_run = run_deployment(
            "ingest/on-demand",
            parameters={"config": {"data": str(songs), "workdir": str(workdir)}},
            timeout=RUN_TIMEOUT_S,
            poll_interval=2,
        )

    # ... the worker runs it to completion, named after what ran, and MLflow has the run.
    assert flow_run.state is not None
    assert flow_run.state.is_completed(), (flow_run.state, out)
    assert flow_run.name == "ingest songs"
    assert (workdir / "tracks.parquet").exists()
    mlflow = MlflowClient(tracking_uri=served["store"])
    experiment = mlflow.get_experiment_by_name("ingest")
    assert experiment is not None
    runs = mlflow.search_runs([experiment.experiment_id])
    assert [(r.info.status, r.data.metrics["n_ok"]) for r in runs] == [("FINISHED", 3.0)]

    # A command on this machine (no API configured) finds the running serve and sends its auth
    # string: without it, every call of a command-line run would be refused with 401.
    probe = (
        "from prefect.client.orchestration import get_client\n"
        "from flows.runtime.prefect_api import connected\n"
        "with connected() as url, get_client(sync_client=True) as client:\n"
        "    print(url, sorted(flow.name for flow in client.read_flows()))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(repo_root), "PREFECT_HOME": str(served["prefect_home"])}
    for name in ("PREFECT_API_URL", "PREFECT_API_AUTH_STRING"):
        env.pop(name, None)
    command = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120
    )
    assert command.returncode == 0, command.stderr
    assert command.stdout.startswith(served["api_url"])
    assert "'ingest'" in command.stdout

    # Nothing listens beyond loopback.
    serve_process = psutil.Process(served["process"].pid)
    tree = [serve_process, *serve_process.children(recursive=True)]
    for process in tree:
        served["seen"].setdefault(process.pid, process)
    listening = [
        (process.pid, connection.laddr)
        for process in tree
        if alive(process)
        for connection in process.net_connections(kind="inet")
        if connection.status == psutil.CONN_LISTEN
    ]
    assert {port for _, (_, port) in listening} >= set(served["ports"])
    assert all(address.startswith("127.") for _, (address, _) in listening), listening

    # SIGTERM stops everything it started.
    served["process"].send_signal(signal.SIGTERM)
    assert served["process"].wait(timeout=STOP_TIMEOUT_S) == 0
    left = [process for process in served["seen"].values() if alive(process)]
    assert not left, [(p.pid, p.cmdline()) for p in left]
    assert not listening_ports(set(served["ports"]))


def assert_the_api_refuses_strangers(api_url: str, auth: str) -> None:
    """The attack of issue 15: any local program (or a web page) read flows and created a
    deployment with a shell pull step, which the worker then ran. Now every API request needs the
    auth string (401 without it), every change also a CSRF token that only an authenticated
    client can fetch (403 without it), and a web page of another origin gets no CORS grant."""
    shell_step = {
        "name": "innocent",
        "flow_id": "00000000-0000-0000-0000-000000000000",
        "pull_steps": [{"prefect.deployments.steps.run_shell_script": {"script": "touch /tmp/x"}}],
    }
    user, _, password = auth.partition(":")
    with httpx.Client(base_url=api_url, timeout=30) as stranger:
        assert stranger.get("/csrf-token", params={"client": "x"}).status_code == 401
        assert stranger.get("/admin/version").status_code == 401
        forged = {"Prefect-Csrf-Token": "made-up", "Prefect-Csrf-Client": "x"}
        assert stranger.post("/flows/filter", json={}, headers=forged).status_code == 403
        assert stranger.post("/deployments/", json=shell_step, headers=forged).status_code == 403
        guess = stranger.get("/admin/version", auth=(user, "guess"))
        assert guess.status_code == 401

    with httpx.Client(base_url=api_url, timeout=30, auth=(user, password)) as client:
        assert client.post("/deployments/", json=shell_step).status_code == 403  # no CSRF token
        token = client.get("/csrf-token", params={"client": "test"}).json()["token"]
        csrf = {"Prefect-Csrf-Token": token, "Prefect-Csrf-Client": "test"}
        assert client.post("/flows/filter", json={}, headers=csrf).is_success

    dashboard = api_url.removesuffix("/api")
    for origin, granted in [("http://evil.example", False), (dashboard, True)]:
        preflight = httpx.options(
            f"{api_url}/deployments/",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
            timeout=30,
        )
        allowed = preflight.headers.get("access-control-allow-origin")
        assert (allowed == origin) is granted, (origin, preflight.status_code, allowed)
