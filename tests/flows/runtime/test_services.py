"""What every piece of `serve` agrees on: addresses, the tracking store, the environment, ports."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import httpx
import optuna
import pytest

from flows.runtime.environment import RUNTIME_DEFAULTS
from flows.runtime.services import (
    ServicePlan,
    absolute_tracking_uri,
    client_host,
    ensure_port_free,
    is_remote_tracking_uri,
    prefect_api_url,
    service_environment,
    start_optuna_dashboard,
    wait_until_up,
)
from flows.runtime.state import ServiceState
from flows.runtime.supervisor import ServeError, Supervisor
from tests.flows.runtime.processes import free_port, listening_ports


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


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("sqlite:///mlflow.db", "sqlite:///{base}/mlflow.db"),
        ("sqlite:////abs/m.db", "sqlite:////abs/m.db"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("mlruns", "{base}/mlruns"),
        ("ucla_runs", "{base}/ucla_runs"),  # a folder, however its name starts
        ("postgresql://u@127.0.0.1:5432/mlflow", "postgresql://u@127.0.0.1:5432/mlflow"),
        ("http://mlflow:5000", "http://mlflow:5000"),
        ("databricks", "databricks"),
    ],
)
def test_tracking_uri_is_made_absolute_against_the_repo(
    tmp_path: Path, uri: str, expected: str
) -> None:
    assert absolute_tracking_uri(uri, tmp_path) == expected.format(base=tmp_path.resolve())


def _plan(prefect_port: int = 4200, mlflow_port: int = 5000, **options: Any) -> ServicePlan:
    """A plan on loopback for a repo and a state folder that need not exist; `options` as
    `ServicePlan.build` takes them (the tracking store: a local SQLite file unless given)."""
    options.setdefault("tracking_uri", "sqlite:////x/mlflow.db")
    return ServicePlan.build(
        "127.0.0.1",
        prefect_port,
        mlflow_port,
        state=ServiceState(Path("/s")),
        repo_root=Path("/r"),
        **options,
    )


@pytest.mark.parametrize(
    ("uri", "remote"),
    [
        ("http://mlflow:5000", True),
        ("https://mlflow.example.org", True),
        ("databricks://profile", True),
        ("databricks", True),  # MLflow's name for the default Databricks profile
        ("databricks-uc", True),
        ("sqlite:////x/mlflow.db", False),
        ("postgresql+psycopg2://u@db/mlflow", False),
        ("/x/mlruns", False),
    ],
)
def test_serve_starts_a_ui_only_for_a_store_it_can_open_itself(uri: str, remote: bool) -> None:
    assert is_remote_tracking_uri(uri) is remote
    plan = _plan(tracking_uri=uri)
    assert plan.starts_mlflow_ui is not remote
    assert plan.mlflow_ui_url == (uri if remote else "http://127.0.0.1:5000")


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


def test_children_get_the_runtime_defaults_unless_the_user_set_them(tmp_path: Path) -> None:
    # Also when serve is called from Python, where the command line did not apply them first.
    env = service_environment(
        api_url="http://127.0.0.1:1/api",
        tracking_uri="sqlite:////x/mlflow.db",
        prefect_home=tmp_path,
        repo_root=tmp_path,
        base={"OMP_WAIT_POLICY": "ACTIVE"},
    )
    assert env["OMP_WAIT_POLICY"] == "ACTIVE"
    assert env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert env["MLFLOW_DISABLE_TELEMETRY"] == "true"
    others = {k: v for k, v in RUNTIME_DEFAULTS.items() if k != "OMP_WAIT_POLICY"}
    assert {k: env[k] for k in others} == others


def test_a_taken_port_is_refused_with_the_option_to_change() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ServeError, match="--prefect-port"):
            ensure_port_free("127.0.0.1", port, what="the Prefect server", option="--prefect-port")
        plan = _plan(free_port(), port)
        with pytest.raises(ServeError, match=r"the MLflow UI.*--mlflow-port"):
            plan.check_ports()


def test_a_taken_optuna_dashboard_port_is_refused_with_the_option_to_change() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        plan = _plan(
            free_port(),
            free_port(),
            optuna_port=taken.getsockname()[1],
            optuna_storage="sqlite:////x/optuna.db",
        )
        with pytest.raises(ServeError, match=r"optuna-dashboard.*--optuna-port"):
            plan.check_ports()


def test_a_relative_optuna_storage_is_read_from_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As `tune --storage sqlite:///optuna.db` reads it, although the dashboard runs in the repo.
    monkeypatch.chdir(tmp_path)
    plan = _plan(optuna_storage="sqlite:///optuna.db")
    assert plan.optuna_storage == f"sqlite:///{tmp_path.resolve() / 'optuna.db'}"
    assert plan.optuna_dashboard_url == "http://127.0.0.1:8080"


def test_optuna_dashboard_serves_the_studies_of_its_storage_on_loopback(tmp_path: Path) -> None:
    # given a storage that no study has used yet (a fresh work dir: no file at all)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    plan = ServicePlan.build(
        "127.0.0.1",
        free_port(),
        free_port(),
        state=ServiceState(tmp_path / "state"),
        repo_root=tmp_path,
        tracking_uri="sqlite:////x/mlflow.db",
        optuna_port=free_port(),
        optuna_storage=storage,
    )
    # when the dashboard is started as `serve` starts it
    with Supervisor(tmp_path / "logs") as supervisor:
        dashboard = start_optuna_dashboard(supervisor, plan)
        wait_until_up(dashboard, plan, timeout_s=120)
        studies_url = f"{plan.optuna_dashboard_url}/api/studies"
        assert httpx.get(studies_url, timeout=30).json() == {"study_summaries": []}
        # then a study that `tune` starts meanwhile shows up, and it listens on loopback only
        optuna.create_study(storage=storage, study_name="mlp_vae-f00d", direction="maximize")
        studies = httpx.get(studies_url, timeout=30).json()
        assert [s["study_name"] for s in studies["study_summaries"]] == ["mlp_vae-f00d"]
        assert listening_ports({plan.optuna_port}) == [("127.0.0.1", plan.optuna_port)]
    assert not listening_ports({plan.optuna_port})


def test_an_optuna_storage_that_cannot_be_opened_is_one_clear_error(tmp_path: Path) -> None:
    plan = ServicePlan.build(
        "127.0.0.1",
        4200,
        5000,
        state=ServiceState(tmp_path / "state"),
        repo_root=tmp_path,
        tracking_uri="sqlite:////x/mlflow.db",
        optuna_storage="sqlite:////no/such/folder/optuna.db",
    )
    with Supervisor(tmp_path / "logs") as supervisor, pytest.raises(ServeError) as raised:
        start_optuna_dashboard(supervisor, plan)
    assert str(raised.value).startswith(
        "cannot open the Optuna storage sqlite:////no/such/folder/optuna.db ("
    )
    assert "--optuna-storage" in str(raised.value)
    assert supervisor.services == []


def test_the_api_auth_string_is_made_once_owner_only_and_reaches_clients_not_reprs(
    tmp_path: Path,
) -> None:
    from flows.runtime.environment import serve_api_auth
    from flows.runtime.services import prefect_server_environment
    from flows.runtime.state import api_auth_path, ensure_api_auth

    home = tmp_path / "prefect"
    auth = ensure_api_auth(home)
    assert ensure_api_auth(home) == auth  # once per installation
    assert api_auth_path(home).stat().st_mode & 0o777 == 0o600
    user, _, password = auth.partition(":")
    assert user
    assert len(password) >= 32

    plan = ServicePlan.build(
        "127.0.0.1", 4200, 5000, state=ServiceState(tmp_path), repo_root=tmp_path, api_auth=auth
    )
    assert plan.env["PREFECT_API_AUTH_STRING"] == auth  # worker, deploy, flow runs
    assert auth not in repr(plan)
    server = prefect_server_environment(
        plan.env, api_url=plan.api_url, api_auth=auth, ui_origins=plan.dashboard_origins
    )
    assert server["PREFECT_SERVER_API_AUTH_STRING"] == auth
    assert server["PREFECT_SERVER_API_CSRF_PROTECTION_ENABLED"] == "true"
    assert server["PREFECT_SERVER_API_CORS_ALLOWED_ORIGINS"] == (
        "http://127.0.0.1:4200,http://localhost:4200"
    )
    assert "PREFECT_API_URL" not in server
    # A command-line run that finds this serve sends the same string.
    os.environ.pop("PREFECT_API_AUTH_STRING", None)
    try:
        assert serve_api_auth(home) == auth
    finally:
        os.environ.pop("PREFECT_API_AUTH_STRING", None)
