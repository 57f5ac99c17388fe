"""`serve`: real Prefect server + worker + deployments + MLflow UI, a triggered run, a clean stop.

One end-to-end test drives the service as a user would (it takes a minute or two on a small
machine: two servers boot, the deployments import every flow, the worker starts a flow-run
process), plus fast tests of the pieces.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest
import soundfile as sf
import yaml
from mlflow import MlflowClient

from flows.serve import (
    ServeError,
    Supervisor,
    absolute_tracking_uri,
    client_host,
    deployment_names,
    ensure_port_free,
    prefect_api_url,
    service_environment,
)

SR = 22050
STARTUP_TIMEOUT_S = 420  # two servers, a work pool and six deployments on a busy 2-core box
RUN_TIMEOUT_S = 240
STOP_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_songs(root: Path, count: int = 3) -> Path:
    rng = np.random.default_rng(3)
    for i in range(count):
        t = np.arange(int(2.5 * SR)) / SR
        samples = 0.3 * np.sin(2 * np.pi * (220 + 110 * i) * t) + 0.02 * rng.standard_normal(t.size)
        path = root / "genres_original" / "rock" / f"rock.{i:05d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, samples.astype(np.float32), SR)
    return root


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


# --- pieces -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "http://127.0.0.1:4200/api"),
        ("0.0.0.0", "http://127.0.0.1:4200/api"),
        ("::", "http://[::1]:4200/api"),
        ("::1", "http://[::1]:4200/api"),
        ("myhost.lan", "http://myhost.lan:4200/api"),
    ],
)
def test_clients_reach_the_prefect_server_through_a_connectable_address(
    host: str, expected: str
) -> None:
    assert prefect_api_url(host, 4200) == expected
    assert client_host("127.0.0.1") == "127.0.0.1"


def test_tracking_uri_is_made_absolute_against_the_repo(tmp_path: Path) -> None:
    assert absolute_tracking_uri("sqlite:///mlflow.db", tmp_path) == (
        f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    )
    assert absolute_tracking_uri("sqlite:////abs/m.db", tmp_path) == "sqlite:////abs/m.db"
    assert absolute_tracking_uri("mlruns", tmp_path) == str(tmp_path.resolve() / "mlruns")
    pg = "postgresql://u@127.0.0.1:5432/mlflow"
    assert absolute_tracking_uri(pg, tmp_path) == pg
    assert absolute_tracking_uri("http://mlflow:5000", tmp_path) == "http://mlflow:5000"


def test_children_share_one_prefect_home_api_and_store(tmp_path: Path) -> None:
    env = service_environment(
        api_url="http://127.0.0.1:1/api",
        tracking_uri="sqlite:////x/mlflow.db",
        prefect_home=tmp_path / "prefect",
        repo_root=tmp_path,
        base={"PYTHONPATH": "/elsewhere", "PREFECT_API_DATABASE_CONNECTION_URL": "postgresql+x"},
    )
    assert env["PREFECT_HOME"] == str(tmp_path / "prefect")
    assert env["PREFECT_API_URL"] == "http://127.0.0.1:1/api"
    assert env["MLFLOW_TRACKING_URI"] == "sqlite:////x/mlflow.db"
    assert env["PYTHONPATH"].split(os.pathsep) == [str(tmp_path), "/elsewhere"]
    assert env["PREFECT_API_DATABASE_CONNECTION_URL"] == "postgresql+x"  # passes through
    assert env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"


def test_a_taken_port_is_refused_with_the_option_to_change() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ServeError, match="--prefect-port"):
            ensure_port_free("127.0.0.1", port, what="the Prefect server", option="--prefect-port")


def test_pinned_server_accepts_the_clients_null_filter_fields(prefect_api) -> None:
    """Prefect 3.8's client sends `"limit": null`; FastAPI 0.151+ answers 422 (regression pin)."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        assert isinstance(client.read_flow_runs(), list)
        assert isinstance(client.read_deployments(), list)


def test_prefect_yaml_lists_every_flow_on_the_local_pool(repo_root: Path) -> None:
    spec = yaml.safe_load((repo_root / "prefect.yaml").read_text())
    entrypoints = {d["entrypoint"] for d in spec["deployments"]}
    assert entrypoints == {
        "flows/ingest.py:ingest_flow",
        "flows/lyrics.py:lyrics_flow",
        "flows/train.py:train_flow",
        "flows/evaluate.py:evaluate_flow",
        "flows/tune.py:tune_flow",
        "flows/pipeline.py:pipeline_flow",
    }
    names = deployment_names(repo_root / "prefect.yaml")
    assert len(names) == len(set(names)) == 6  # unique: each can be applied by name
    for deployment in spec["deployments"]:
        assert deployment["work_pool"]["name"] == "local"
        assert set(deployment["parameters"]) == {"config"}
    schedules = {d["name"]: d.get("schedules") for d in spec["deployments"]}
    assert schedules["nightly"][0]["cron"] == "0 2 * * *"
    assert schedules["weekly"][0]["cron"] == "0 3 * * 0"


def test_supervisor_stops_a_whole_process_tree_even_a_child_in_its_own_session(
    tmp_path: Path,
) -> None:
    # A parent that starts a child in a new session (as Prefect's worker does with flow runs),
    # then ignores SIGTERM: only the group kill and the descendant sweep can stop them.
    script = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'],"
        " start_new_session=True)\n"
        "time.sleep(600)\n"
    )
    with Supervisor(tmp_path / "logs") as supervisor:
        service = supervisor.start(
            "stubborn", [sys.executable, "-c", script], env=os.environ, cwd=tmp_path, grace_s=1
        )
        deadline = time.monotonic() + 30
        tree: list[psutil.Process] = []
        while time.monotonic() < deadline and len(tree) < 2:
            tree = [psutil.Process(service.process.pid)]
            tree += psutil.Process(service.process.pid).children(recursive=True)
            time.sleep(0.2)
        assert len(tree) == 2
        supervisor.remember_descendants()
    assert not [p for p in tree if alive(p)]


def test_a_service_that_fails_to_start_ends_serve_with_its_log_and_nothing_left(
    tmp_path: Path, repo_root: Path
) -> None:
    prefect_port, mlflow_port = free_port(), free_port()
    code = (
        "import sys; from pathlib import Path; from flows.serve import serve; "
        f"sys.exit(serve('127.0.0.1', {prefect_port}, {mlflow_port}, Path({str(tmp_path)!r})))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    # A setting the Prefect server cannot parse: it exits at once, while the MLflow UI starts.
    env |= {"PYTHONPATH": str(repo_root), "PREFECT_SERVER_API_KEEPALIVE_TIMEOUT": "not-a-number"}
    result = subprocess.run(
        [sys.executable, "-c", code],
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
    listening = [
        c.laddr
        for c in psutil.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.laddr.port in (prefect_port, mlflow_port)
    ]
    assert not listening


# --- end to end ---------------------------------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path, repo_root: Path) -> Iterator[dict]:
    """`serve()` in a subprocess on free loopback ports; stopped (and checked) by the test."""
    prefect_port, mlflow_port = free_port(), free_port()
    ready = tmp_path / "ready"
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    state = tmp_path / "state"
    code = (
        "import sys; from pathlib import Path; from flows.serve import serve; "
        f"sys.exit(serve('127.0.0.1', {prefect_port}, {mlflow_port}, Path({str(state)!r}), "
        f"ready_file=Path({str(ready)!r})))"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(repo_root),
        "MLFLOW_TRACKING_URI": store,
        "PREFECT_WORKER_QUERY_SECONDS": "2",  # poll often: the test waits for the run
    }
    env.pop("PREFECT_API_URL", None)
    output = (tmp_path / "serve.out").open("w")
    process = subprocess.Popen(
        [sys.executable, "-c", code],
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
            "ports": (prefect_port, mlflow_port),
            "store": store,
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


def test_serve_runs_a_triggered_deployment_and_stops_without_orphans(
    served: dict, tmp_path: Path, repo_root: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    songs = write_songs(tmp_path / "songs")
    workdir = tmp_path / "work"
    out = served["out"].read_text()
    assert "Prefect dashboard: http://127.0.0.1:" in out
    # The dashboard calls this server's API, not Prefect's default port.
    ui_settings = httpx.get(served["api_url"].removesuffix("/api") + "/ui-settings", timeout=30)
    assert ui_settings.json()["api_url"] == served["api_url"]
    assert "MLflow UI:         http://127.0.0.1:" in out

    with temporary_settings(updates={PREFECT_API_URL: served["api_url"]}):
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
    still_listening = [
        connection.laddr
        for connection in psutil.net_connections(kind="inet")
        if connection.status == psutil.CONN_LISTEN and connection.laddr.port in served["ports"]
    ]
    assert not still_listening


# --- MLflow project -----------------------------------------------------------------------------


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


def test_mlflow_run_of_the_ingest_entry_point_logs_the_flow(
    repo_root: Path, tmp_path: Path
) -> None:
    songs = write_songs(tmp_path / "songs", count=2)
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (tmp_path / "prefect").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "MLFLOW_"))}
    env |= {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        "PYTHONPATH": str(repo_root),
        "MLFLOW_TRACKING_URI": store,
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    }
    work = tmp_path / "work"
    mlflow_run = [sys.executable, "-m", "mlflow", "run", str(repo_root), "-e", "ingest"]
    options = ["--env-manager", "local", "--experiment-name", "ingest"]
    result = subprocess.run(
        [*mlflow_run, "-P", f"data={songs}", "-P", f"workdir={work}", *options],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=420,
        check=False,
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
