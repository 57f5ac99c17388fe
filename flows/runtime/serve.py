"""Run the project as a local service: Prefect server, worker and deployments, the MLflow UI and
optuna-dashboard.

`python -m flows serve` starts, each in its own process group and on loopback unless asked:

1. a Prefect server (`prefect server start`), its SQLite database in `.state/prefect/`
   (or PostgreSQL when `PREFECT_API_DATABASE_CONNECTION_URL` says so);
2. the process work pool `local` (created once) and a worker polling it;
3. the deployments of `prefect.yaml` (`prefect --no-prompt deploy --all`), the nightly pipeline
   among them;
4. the MLflow UI (`mlflow ui`) on the project's tracking store (`registry.tracking.tracking_uri()`);
5. optuna-dashboard on the Optuna storage `tune` uses by default (the default work dir's
   `optuna.db`, see `tasks.tuning.storage_url.default_storage_url`), or the one given;

waits until the three servers answer their health checks, prints their URLs, and runs until
Ctrl-C or SIGTERM. Then it stops everything it started, children of children included
(`flows.runtime.supervisor`).

The Prefect server runs code: its worker executes whatever deployment the API is given. So it
requires an auth string generated once per installation (`flows.runtime.state.ensure_api_auth`,
kept 0600 in its Prefect home, never printed), CSRF tokens and the dashboard's own origin; every
client started here gets the string. The MLflow UI and optuna-dashboard ask for no login, so
every server binds loopback unless asked otherwise (docs/operate.md).

The pieces live next door: `services` (addresses, environment, one function per piece),
`deployments` (prefect.yaml), `supervisor` (process groups, signals), `state` (the `.state`
folder).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from flows.runtime.deployments import DeployReport, apply_deployments
from flows.runtime.prefect_api import remove_serve_record, write_serve_record
from flows.runtime.services import (
    DEFAULT_MLFLOW_PORT,
    DEFAULT_OPTUNA_PORT,
    DEFAULT_PREFECT_PORT,
    LOOPBACK,
    ServicePlan,
    create_work_pool,
    start_mlflow_ui,
    start_optuna_dashboard,
    start_prefect_server,
    start_worker,
    wait_until_up,
)
from flows.runtime.state import REPO_ROOT, ServiceState, api_auth_path, ensure_api_auth
from flows.runtime.supervisor import (
    ServeError,
    StopRequested,
    Supervisor,
    ignore_stop_signals,
    stop_signals_raise,
)
from registry.ui import ui_page

EXIT_STOPPED = 0
EXIT_SERVICE_FAILED = 1
EXIT_PORT_TAKEN = 2


def serve(
    host: str = LOOPBACK,
    prefect_port: int = DEFAULT_PREFECT_PORT,
    mlflow_port: int = DEFAULT_MLFLOW_PORT,
    state_dir: Path | None = None,
    *,
    repo_root: Path = REPO_ROOT,
    tracking_uri: str | None = None,
    optuna_port: int = DEFAULT_OPTUNA_PORT,
    optuna_storage: str | None = None,
    deploy: bool = True,
    worker_limit: int = 2,
    startup_timeout_s: float = 240,
    ready_file: Path | None = None,
) -> int:
    """Run Prefect server + worker + deployments, the MLflow UI and optuna-dashboard until Ctrl-C
    or SIGTERM.

    Args:
        host: Interface every server binds to; loopback by default, so nothing is reachable from
            other machines unless asked (e.g. "0.0.0.0"). Only the Prefect server asks for a
            login (the auth string in `<state_dir>/prefect/api-auth`).
        prefect_port, mlflow_port: TCP ports of the Prefect server and of the MLflow UI.
        state_dir: Where Prefect's home and the service logs go (`ServiceState`);
            default `<repo_root>/.state`.
        repo_root: The project checkout the deployments run from.
        tracking_uri: MLflow store of the UI and of every flow run; default
            `registry.tracking.tracking_uri()`, relative paths taken from `repo_root`. A
            tracking server somebody else runs (http, https, databricks) is used as it is, and
            no UI is started.
        optuna_port: TCP port of optuna-dashboard.
        optuna_storage: Optuna storage (SQLAlchemy URL) the dashboard shows; default the one
            `tune` uses by default, `sqlite:///<repo_root>/workdir/optuna.db` (created if
            missing). A relative SQLite path is taken from the current folder.
        deploy: Apply the deployments of `<repo_root>/prefect.yaml`.
        worker_limit: Flow runs the worker runs at once.
        startup_timeout_s: How long each server gets to become healthy (the first start
            migrates its database).
        ready_file: Written once everything is up, one URL a line: the Prefect API, the MLflow
            UI, optuna-dashboard (for scripts and tests).

    Returns:
        The process exit code: 0 after a requested stop, 1 when a service failed, 2 when a port
        is taken.
    """
    state = ServiceState.chosen(state_dir, repo_root)
    state.prefect_home.mkdir(parents=True, exist_ok=True)
    plan = ServicePlan.build(
        host,
        prefect_port,
        mlflow_port,
        state=state,
        repo_root=repo_root,
        tracking_uri=tracking_uri,
        optuna_port=optuna_port,
        optuna_storage=optuna_storage or _default_optuna_storage(repo_root),
        api_auth=ensure_api_auth(state.prefect_home),
    )
    try:
        plan.check_ports()
    except ServeError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_PORT_TAKEN

    code = EXIT_STOPPED
    with stop_signals_raise():
        supervisor = Supervisor(state.log_dir, owns_process=True)
        try:
            supervisor.open()
            _bring_up(
                supervisor,
                plan,
                deploy=deploy,
                worker_limit=worker_limit,
                startup_timeout_s=startup_timeout_s,
            )
            _print_ready(plan, ready_file)
            write_serve_record(state.prefect_home, plan.api_url)  # CLI runs find this server
            supervisor.watch()
        except ServeError as error:
            print(f"error: {error}", file=sys.stderr, flush=True)
            code = EXIT_SERVICE_FAILED
        except (StopRequested, KeyboardInterrupt):
            code = EXIT_STOPPED
        finally:
            ignore_stop_signals()
            print("stopping ...", flush=True)
            remove_serve_record(state.prefect_home)
            supervisor.stop()
    print("stopped.", flush=True)
    return code


def _bring_up(
    supervisor: Supervisor,
    plan: ServicePlan,
    *,
    deploy: bool,
    worker_limit: int,
    startup_timeout_s: float,
) -> None:
    """Prefect server -> work pool -> worker -> deployments, with the MLflow UI and
    optuna-dashboard booting alongside; returns once every service answers."""
    prefect_server = start_prefect_server(supervisor, plan)
    # Started now so the servers boot at once; the UIs are checked after Prefect's.
    mlflow_ui = start_mlflow_ui(supervisor, plan) if plan.starts_mlflow_ui else None
    dashboard = start_optuna_dashboard(supervisor, plan)
    wait_until_up(prefect_server, plan, timeout_s=startup_timeout_s)
    create_work_pool(supervisor, plan)
    start_worker(supervisor, plan, limit=worker_limit)
    if deploy:
        _print_deployments(apply_deployments(supervisor, plan.env, plan.repo_root))
    for ui in (mlflow_ui, dashboard):
        if ui is not None:
            wait_until_up(ui, plan, timeout_s=startup_timeout_s)


def _default_optuna_storage(repo_root: Path) -> str:
    """The storage `tune` uses when given none, for the default work dir of the deployments
    (they run in `repo_root`). The folder is created: SQLite creates the file, not its folder."""
    # Imported here: Optuna and MLflow load with it, and the command line reads this module.
    from tasks.core.workspace import DEFAULT_WORKDIR, Workspace
    from tasks.tuning.storage_url import default_storage_url

    return default_storage_url(Workspace.open(repo_root / DEFAULT_WORKDIR))


def _print_deployments(report: DeployReport) -> None:
    if report.applied:
        print(f"deployments applied: {', '.join(report.applied)}", flush=True)
    for name, reason in report.failed.items():
        print(f"warning: deployment {name!r} not applied: {reason}", file=sys.stderr)


def _print_ready(plan: ServicePlan, ready_file: Path | None) -> None:
    """Tell the user where everything is; write `ready_file` (the three URLs) last."""
    print(f"Prefect dashboard: {plan.dashboard_url}")
    if "PREFECT_SERVER_API_AUTH_STRING" in os.environ:
        print("  login: the PREFECT_SERVER_API_AUTH_STRING you exported (user:password)")
    else:
        print(f"  login: paste the whole line of {api_auth_path(plan.state.prefect_home)}")
    print(f"MLflow UI:         {ui_page(plan.mlflow_ui_url)}")
    print(f"Optuna dashboard:  {plan.optuna_dashboard_url} ({_display_url(plan.optuna_storage)})")
    print(f"Logs:              {plan.state.log_dir}")
    print("CLI runs use this server while it runs (unless PREFECT_API_URL is set).")
    print("Stop with Ctrl-C.", flush=True)
    if ready_file is not None:
        ready_file.write_text(
            f"{plan.api_url}\n{plan.mlflow_ui_url}\n{plan.optuna_dashboard_url}\n"
        )


def _display_url(url: str | None) -> str:
    from tasks.tuning.storage_url import display_url  # hides a database password

    return display_url(url) if url else "-"
