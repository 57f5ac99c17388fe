"""The pieces `serve` runs: where each listens, what environment it gets, how it starts and answers.

One `ServicePlan` holds what every piece must agree on (addresses, Prefect home, tracking store,
environment); one function starts each piece under a `Supervisor`. The order they start in is
`flows.runtime.serve`'s business; the deployments are `flows.runtime.deployments`'.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from flows.runtime.environment import with_runtime_defaults
from flows.runtime.prefect_api import answers
from flows.runtime.state import ServiceState
from flows.runtime.supervisor import ServeError, Service, Supervisor, service_failure

LOOPBACK = "127.0.0.1"
DEFAULT_PREFECT_PORT = 4200
DEFAULT_MLFLOW_PORT = 5000
DEFAULT_OPTUNA_PORT = 8080  # optuna-dashboard's own default
WORK_POOL = "local"
# The worker gets longer than other services to stop: it reports its running flow runs to the
# server as it shuts down.
WORKER_STOP_GRACE_S = 25.0
WORK_POOL_CREATE_TIMEOUT_S = 180
# Tracking stores somebody else runs: there is no UI to start for them. MLflow also accepts the
# bare names (`databricks` = the default Databricks profile).
_REMOTE_TRACKING_SCHEMES = frozenset({"http", "https", "databricks", "databricks-uc", "uc"})


# --- addresses ----------------------------------------------------------------------------------


def client_host(host: str) -> str:
    """The address clients on this machine use to reach a server bound to `host`.

    A wildcard bind (0.0.0.0 or ::) is reached through loopback; IPv6 literals get brackets.
    """
    if host in ("", "0.0.0.0"):  # noqa: S104 - comparing, not binding
        return LOOPBACK
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def prefect_api_url(host: str, port: int) -> str:
    """`PREFECT_API_URL` of a Prefect server bound to `host:port`."""
    return f"http://{client_host(host)}:{port}/api"


def web_ui_url(host: str, port: int) -> str:
    """URL of a web UI (MLflow, optuna-dashboard) bound to `host:port`."""
    return f"http://{client_host(host)}:{port}"


def ensure_port_free(host: str, port: int, *, what: str, option: str) -> None:
    """Check that `host:port` can be bound, before anything is started.

    Raises:
        ServeError: another program listens there; the message names `option` to change it.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As the servers do: connections of a previous run lingering in TIME_WAIT do not count.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host.strip("[]"), port))
        except OSError as error:
            raise ServeError(
                f"cannot start {what} on {host}:{port} ({error.strerror}); "
                f"stop whatever uses it or pass {option} with a free port"
            ) from None


def wait_until_healthy(
    url: str, *, process: subprocess.Popen | None, name: str, log: Path, timeout_s: float
) -> None:
    """Poll `url` until it answers 200; fail early when `process` exits.

    Raises:
        ServeError: the process exited, or `timeout_s` passed without a healthy answer; the
            message ends with the end of `log`.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise service_failure(
                f"{name} exited with code {process.returncode} while starting", log
            )
        if answers(url, timeout_s=5):
            return
        time.sleep(0.5)
    raise service_failure(f"{name} did not answer {url} within {timeout_s:.0f} s", log)


# --- the tracking store -------------------------------------------------------------------------


def is_remote_tracking_uri(uri: str) -> bool:
    """True for a tracking server somebody else runs (http, https, databricks): no UI to start."""
    return uri in _REMOTE_TRACKING_SCHEMES or urlparse(uri).scheme in _REMOTE_TRACKING_SCHEMES


def absolute_tracking_uri(uri: str, base: Path) -> str:
    """`uri` with a relative SQLite path or bare local folder made absolute against `base`.

    Every process of the service (UI, worker, flow runs) must see the same store whatever its
    working directory; database servers and remote URIs are returned unchanged.
    """
    if is_remote_tracking_uri(uri):
        return uri
    if uri.startswith("sqlite:"):
        return absolute_sqlite_url(uri, base)
    if "://" not in uri:
        return str((base / uri).resolve())
    return uri


def absolute_sqlite_url(url: str, base: Path) -> str:
    """A SQLAlchemy URL with a relative SQLite path made absolute against `base`; any other URL
    (absolute path, in-memory database, a database server) is returned unchanged."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        relative = url.removeprefix("sqlite:///")
        if relative and relative != ":memory:":
            return f"sqlite:///{(base / relative).resolve()}"
    return url


# --- what every piece shares --------------------------------------------------------------------


def service_environment(
    *,
    api_url: str,
    tracking_uri: str,
    prefect_home: Path,
    repo_root: Path,
    api_auth: str | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Environment of every child: one Prefect home, API URL, API auth string (`api_auth`, when
    the server requires one) and tracking store; repo importable.

    Anything else set in `base` (default: this process's environment) passes through, e.g.
    `PREFECT_API_DATABASE_CONNECTION_URL` for a PostgreSQL-backed Prefect server, and wins over
    the runtime defaults (`flows.runtime.environment`), which are added where `base` has none.
    """
    env = with_runtime_defaults(os.environ if base is None else base)
    python_path = [str(repo_root), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env.update(
        {
            "PREFECT_HOME": str(prefect_home),
            "PREFECT_API_URL": api_url,
            "MLFLOW_TRACKING_URI": tracking_uri,
            "PYTHONPATH": os.pathsep.join(dict.fromkeys(python_path)),
            # `{{ $PWD }}` templates and tools that read PWD see the repo, not our caller's folder.
            "PWD": str(repo_root),
        }
    )
    # The venv's executables first, for anything that looks commands up on PATH.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    if api_auth:
        # Worker, flow runs, `prefect deploy`: every client of the server sends it (basic auth).
        env["PREFECT_API_AUTH_STRING"] = api_auth
    return env


def prefect_server_environment(
    env: Mapping[str, str], *, api_url: str, api_auth: str | None, ui_origins: list[str]
) -> dict[str, str]:
    """Environment of the Prefect server: `env` (the clients') made a server's.

    With `api_auth` every API request needs it (HTTP basic auth; health checks excepted), CSRF
    tokens are required for changes, and only `ui_origins` (the dashboard's own) may call the API
    from a browser: a web page elsewhere, or another local program without the auth string, can
    neither read the flows nor create a deployment whose steps the worker would run. Settings
    the user exported win, as everywhere.
    """
    # The server must not think it is a client of some other API; its dashboard must call this
    # server's API (Prefect derives that URL from its default port, not from --port).
    server = {k: v for k, v in env.items() if k != "PREFECT_API_URL"}
    server.setdefault("PREFECT_UI_API_URL", api_url)
    if api_auth:
        server.setdefault("PREFECT_SERVER_API_AUTH_STRING", api_auth)
        server.setdefault("PREFECT_SERVER_API_CSRF_PROTECTION_ENABLED", "true")
        server.setdefault("PREFECT_SERVER_API_CORS_ALLOWED_ORIGINS", ",".join(ui_origins))
    return server


@dataclass(frozen=True)
class ServicePlan:
    """What the Prefect server, worker, flow runs, MLflow UI and optuna-dashboard must agree on.

    Build it with `ServicePlan.build`, which resolves the tracking store and the environment.
    `optuna_storage` None: no optuna-dashboard (`serve` always passes one). `api_auth` None: the
    Prefect server asks no login (`serve` always passes one, see `flows.runtime.state`).
    """

    host: str
    prefect_port: int
    mlflow_port: int
    repo_root: Path
    state: ServiceState
    tracking_uri: str  # absolute: the same store from every working directory
    # Not in repr: the environment holds the API auth string and maybe a database password.
    env: Mapping[str, str] = field(repr=False)
    optuna_port: int = DEFAULT_OPTUNA_PORT
    optuna_storage: str | None = None  # a SQLAlchemy URL, SQLite paths absolute
    api_auth: str | None = field(default=None, repr=False)

    @classmethod
    def build(
        cls,
        host: str,
        prefect_port: int,
        mlflow_port: int,
        *,
        state: ServiceState,
        repo_root: Path,
        tracking_uri: str | None = None,
        optuna_port: int = DEFAULT_OPTUNA_PORT,
        optuna_storage: str | None = None,
        api_auth: str | None = None,
    ) -> ServicePlan:
        """A plan; `tracking_uri` defaults to `registry.tracking.tracking_uri()`. `api_auth`:
        the `user:password` the Prefect server requires, unless the user exported
        `PREFECT_SERVER_API_AUTH_STRING` (then that one, for server and clients alike).

        Relative tracking paths are taken from `repo_root`; a relative SQLite `optuna_storage`
        from the current folder, as `tune --storage` reads it.
        """
        # Imported here: it loads MLflow, and the command line imports this module's defaults.
        from registry.tracking import tracking_uri as configured_tracking_uri

        store = absolute_tracking_uri(tracking_uri or configured_tracking_uri(), repo_root)
        api_auth = os.environ.get("PREFECT_SERVER_API_AUTH_STRING") or api_auth
        env = service_environment(
            api_url=prefect_api_url(host, prefect_port),
            tracking_uri=store,
            prefect_home=state.prefect_home,
            repo_root=repo_root,
            api_auth=api_auth,
        )
        if optuna_storage is not None:
            optuna_storage = absolute_sqlite_url(optuna_storage, Path.cwd())
        return cls(
            host,
            prefect_port,
            mlflow_port,
            repo_root,
            state,
            store,
            env,
            optuna_port=optuna_port,
            optuna_storage=optuna_storage,
            api_auth=api_auth,
        )

    @property
    def api_url(self) -> str:
        return prefect_api_url(self.host, self.prefect_port)

    @property
    def dashboard_url(self) -> str:
        return self.api_url.removesuffix("/api")

    @property
    def dashboard_origins(self) -> list[str]:
        """The origins the Prefect dashboard is opened from: its own, and `localhost` for the
        same loopback server (a different origin to a browser)."""
        origins = [self.dashboard_url]
        if client_host(self.host) == LOOPBACK:
            origins.append(f"http://localhost:{self.prefect_port}")
        return origins

    @property
    def starts_mlflow_ui(self) -> bool:
        """False when the store is a tracking server somebody else runs: that is the UI."""
        return not is_remote_tracking_uri(self.tracking_uri)

    @property
    def mlflow_ui_url(self) -> str:
        if self.starts_mlflow_ui:
            return web_ui_url(self.host, self.mlflow_port)
        return self.tracking_uri

    @property
    def starts_optuna_dashboard(self) -> bool:
        return self.optuna_storage is not None

    @property
    def optuna_dashboard_url(self) -> str:
        return web_ui_url(self.host, self.optuna_port)

    def check_ports(self) -> None:
        """Raises ServeError when a port `serve` would listen on is taken."""
        ensure_port_free(
            self.host, self.prefect_port, what="the Prefect server", option="--prefect-port"
        )
        if self.starts_mlflow_ui:
            ensure_port_free(
                self.host, self.mlflow_port, what="the MLflow UI", option="--mlflow-port"
            )
        if self.starts_optuna_dashboard:
            ensure_port_free(
                self.host, self.optuna_port, what="optuna-dashboard", option="--optuna-port"
            )


# --- one function per piece ---------------------------------------------------------------------


def start_prefect_server(supervisor: Supervisor, plan: ServicePlan) -> Service:
    """`prefect server start` (API + dashboard); its database in `plan.state.prefect_home`;
    requiring `plan.api_auth` (see `prefect_server_environment`)."""
    env = prefect_server_environment(
        plan.env, api_url=plan.api_url, api_auth=plan.api_auth, ui_origins=plan.dashboard_origins
    )
    command = ["server", "start", "--host", plan.host, "--port", str(plan.prefect_port)]
    return supervisor.start(
        "prefect-server", [sys.executable, "-m", "prefect", *command], env=env, cwd=plan.repo_root
    )


def start_mlflow_ui(supervisor: Supervisor, plan: ServicePlan) -> Service:
    """`mlflow ui` on the plan's tracking store, one worker process."""
    command = [
        *("ui", "--backend-store-uri", plan.tracking_uri),
        # Same artifact root as runs logged straight to the store from the repo root, so
        # experiments created in the UI are usable by the flows too.
        *("--default-artifact-root", str(plan.repo_root / "mlruns")),
        *("--host", plan.host, "--port", str(plan.mlflow_port), "--workers", "1"),
    ]
    return supervisor.start(
        "mlflow-ui",
        [sys.executable, "-m", "mlflow", *command],
        # MLflow's job runner (six huey consumers) serves GenAI features this project does not
        # use; it would cost a few hundred MB and CPU on a small machine.
        env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **plan.env},
        cwd=plan.repo_root,
    )


def start_optuna_dashboard(supervisor: Supervisor, plan: ServicePlan) -> Service:
    """`optuna-dashboard` on the plan's Optuna storage: every study in it, live. A storage no
    study has used yet gets its tables first (the dashboard would exit on it).

    Raises:
        ServeError: optuna-dashboard is not installed where this Python finds its commands, or
            the storage cannot be opened.
    """
    # Imported here: Optuna and MLflow load with it, and the command line imports this module.
    from tasks.tuning.storage_url import create_storage_tables, display_url

    executable = shutil.which("optuna-dashboard", path=plan.env["PATH"])
    if executable is None:
        raise ServeError("optuna-dashboard is not installed: pip install optuna-dashboard")
    try:
        create_storage_tables(str(plan.optuna_storage))
    except Exception as error:  # whichever driver error: one line, then serve stops
        raise ServeError(
            f"cannot open the Optuna storage {display_url(str(plan.optuna_storage))} "
            f"({type(error).__name__}: {' '.join(str(error).split())[:300]}); "
            "pass --optuna-storage with a SQLAlchemy URL it can open"
        ) from None
    command = [
        *(executable, str(plan.optuna_storage)),
        *("--host", plan.host, "--port", str(plan.optuna_port)),
        # One threaded process instead of gunicorn's: a few users at most, on a small machine.
        *("--server", "wsgiref"),
    ]
    return supervisor.start("optuna-dashboard", command, env=plan.env, cwd=plan.repo_root)


def wait_until_up(server: Service, plan: ServicePlan, *, timeout_s: float) -> None:
    """Block until `server`, one of the three servers `serve` starts from `plan`, answers its
    health check (see `wait_until_healthy`).

    Raises:
        KeyError: `server` is none of the three (a programming error).
    """
    what, url = {
        "prefect-server": ("the Prefect server", f"{plan.api_url}/health"),
        "mlflow-ui": ("the MLflow UI", f"{plan.mlflow_ui_url}/health"),
        "optuna-dashboard": ("optuna-dashboard", f"{plan.optuna_dashboard_url}/api/meta"),
    }[server.name]
    wait_until_healthy(url, process=server.process, name=what, log=server.log, timeout_s=timeout_s)


def create_work_pool(supervisor: Supervisor, plan: ServicePlan) -> None:
    """Create the process work pool `local`; an existing pool is kept as it is.

    Raises:
        ServeError: Prefect refused for another reason (its output is in the message).
    """
    command = ["work-pool", "create", WORK_POOL, "--type", "process"]
    code, output = supervisor.run(
        "work-pool",
        [sys.executable, "-m", "prefect", *command],
        env=plan.env,
        cwd=plan.repo_root,
        timeout_s=WORK_POOL_CREATE_TIMEOUT_S,
    )
    if code != 0 and "already exists" not in output:
        raise ServeError(f"could not create work pool {WORK_POOL!r}:\n{output[-2000:]}")


def start_worker(supervisor: Supervisor, plan: ServicePlan, *, limit: int) -> Service:
    """A process worker polling pool `local`, running at most `limit` flow runs at once."""
    name = f"{WORK_POOL}-{socket.gethostname()}"
    command = ["worker", "start", "--pool", WORK_POOL, "--name", name, "--limit", str(limit)]
    return supervisor.start(
        "prefect-worker",
        [sys.executable, "-m", "prefect", *command],
        env=plan.env,
        cwd=plan.repo_root,
        grace_s=WORKER_STOP_GRACE_S,
    )
