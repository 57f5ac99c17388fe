"""Run the project as a local service: Prefect server, worker and deployments, and the MLflow UI.

`python -m flows serve` starts, each in its own process group and on loopback unless asked:

1. a Prefect server (`prefect server start`), its SQLite database in `.state/prefect/`
   (or PostgreSQL when `PREFECT_API_DATABASE_CONNECTION_URL` says so);
2. the process work pool `local` (created once) and a worker polling it;
3. the deployments of `prefect.yaml` (`prefect --no-prompt deploy --all`), the nightly pipeline
   among them;
4. the MLflow UI (`mlflow ui`) on the project's tracking store (`registry.tracking.tracking_uri()`);

waits until both servers answer their health checks, prints their URLs, and runs until Ctrl-C or
SIGTERM. Then it stops everything it started, children of children included: each service is
started with `start_new_session=True` and stopped by signalling its process group, and on Linux
this process is a child subreaper, so processes that left their group are still found and ended.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import psutil
import yaml

from flows.prefect_api import answers, remove_serve_record, write_serve_record

REPO_ROOT = Path(__file__).resolve().parents[1]
WORK_POOL = "local"
LOOPBACK = "127.0.0.1"

# How long a service gets to stop after SIGTERM before its process group gets SIGKILL. The worker
# gets longer: it reports its running flow runs to the server as it shuts down.
STOP_GRACE_S = 15.0
WORKER_STOP_GRACE_S = 25.0


class ServeError(RuntimeError):
    """A service could not be started; the message says which one, why, and where its log is."""


# --- small pieces -------------------------------------------------------------------------------


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


def mlflow_url(host: str, port: int) -> str:
    return f"http://{client_host(host)}:{port}"


def absolute_tracking_uri(uri: str, base: Path) -> str:
    """`uri` with a relative SQLite path or bare local folder made absolute against `base`.

    Every process of the service (UI, worker, flow runs) must see the same store whatever its
    working directory; database servers and remote URIs are returned unchanged.
    """
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        relative = uri.removeprefix("sqlite:///")
        if relative and relative != ":memory:":
            return f"sqlite:///{(base / relative).resolve()}"
        return uri
    if "://" not in uri and not uri.startswith(("databricks", "uc")):
        return str((base / uri).resolve())
    return uri


def is_remote_tracking_uri(uri: str) -> bool:
    """True for a tracking server somebody else runs (http, https, databricks): no UI to start."""
    return urlparse(uri).scheme in {"http", "https", "databricks", "databricks-uc", "uc"}


def ensure_port_free(host: str, port: int, *, what: str, option: str) -> None:
    """Raise ServeError when `host:port` cannot be bound (another server is already there)."""
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


def log_tail(path: Path, lines: int = 25) -> str:
    if not path.exists():
        return "(no log)"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


def wait_until_healthy(
    url: str, *, process: subprocess.Popen | None, name: str, log: Path, timeout_s: float
) -> None:
    """Poll `url` until it answers 200; fail early when `process` exits.

    Raises:
        ServeError: the process exited, or `timeout_s` passed without a healthy answer.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServeError(
                f"{name} exited with code {process.returncode} while starting; "
                f"its log ({log}) ends with:\n{log_tail(log)}"
            )
        if answers(url, timeout_s=5):
            return
        time.sleep(0.5)
    raise ServeError(
        f"{name} did not answer {url} within {timeout_s:.0f} s; "
        f"its log ({log}) ends with:\n{log_tail(log)}"
    )


def deployment_names(prefect_file: Path) -> list[str]:
    """Names of the deployments listed in a prefect.yaml, in file order."""
    spec = yaml.safe_load(prefect_file.read_text()) or {}
    return [d["name"] for d in spec.get("deployments") or [] if d.get("name")]


# --- Prefect client compatibility ---------------------------------------------------------------


# --- process supervision ------------------------------------------------------------------------


def _become_child_subreaper() -> bool:
    """Linux: orphaned descendants are re-parented to this process instead of to init.

    So a process that left its group (Prefect starts flow runs in their own sessions) is still
    our descendant, found and stopped at shutdown. Returns False where not supported.
    """
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    pr_set_child_subreaper = 36
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(pr_set_child_subreaper, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


@dataclass
class Service:
    name: str
    process: subprocess.Popen
    log: Path
    grace_s: float = STOP_GRACE_S

    @property
    def running(self) -> bool:
        return self.process.poll() is None


@dataclass
class Supervisor:
    """Starts commands in their own process groups and stops every process they started.

    Use as a context manager: leaving it (normally, by an exception, Ctrl-C or SIGTERM turned
    into an exception) stops all services, newest first, then any descendant of theirs left over.

    `owns_process=True` (the `serve` command, which owns its process) also makes this process a
    child subreaper and treats every child of it as ours; leave it False inside a process with
    children of its own (a test session), whose other children must not be touched.
    """

    log_dir: Path
    owns_process: bool = False
    services: list[Service] = field(default_factory=list)
    _seen: dict[int, psutil.Process] = field(default_factory=dict)

    def open(self) -> Supervisor:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if self.owns_process:
            _become_child_subreaper()
        return self

    def __enter__(self) -> Supervisor:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _popen(self, name: str, command: Sequence[str], env: Mapping[str, str], cwd: Path):
        log = self.log_dir / f"{name}.log"
        with log.open("ab") as sink:
            sink.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(command)}\n".encode())
            sink.flush()
            process = subprocess.Popen(
                list(command),
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: stopped as a whole, and Ctrl-C in
                # the terminal reaches only this supervisor, which then stops things in order
            )
        return process, log

    def start(
        self,
        name: str,
        command: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        grace_s: float = STOP_GRACE_S,
    ) -> Service:
        """Start a long-running service; its output goes to `<log_dir>/<name>.log`."""
        process, log = self._popen(name, command, env, cwd)
        service = Service(name, process, log, grace_s)
        self.services.append(service)
        self.remember_descendants()
        return service

    def run(
        self,
        name: str,
        command: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        timeout_s: float,
    ) -> tuple[int, str]:
        """Run a one-shot command to completion; return (exit code, its output).

        It is supervised like a service while it runs, so an interrupt stops it too.
        Raises ServeError when it takes longer than `timeout_s`.
        """
        log = self.log_dir / f"{name}.log"
        offset = log.stat().st_size if log.exists() else 0
        service = self.start(name, command, env=env, cwd=cwd, grace_s=5.0)
        try:
            service.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise ServeError(
                f"{name} did not finish within {timeout_s:.0f} s; see {service.log}"
            ) from None
        finally:
            if not service.running:  # else left to stop(): we are being interrupted
                self.services.remove(service)
                self._stop_service(service)  # anything it left behind in its group
        with service.log.open("rb") as source:
            source.seek(offset)
            output = source.read().decode(errors="replace")
        return service.process.returncode, output

    def remember_descendants(self) -> None:
        """Note the services' descendants, to stop them at shutdown even if they leave the tree."""
        roots = [s.process.pid for s in self.services]
        if self.owns_process:
            roots = [os.getpid()]  # re-parented orphans included
        for root in roots:
            with contextlib.suppress(psutil.Error):
                for child in psutil.Process(root).children(recursive=True):
                    self._seen.setdefault(child.pid, child)

    def first_exited(self) -> Service | None:
        return next((s for s in self.services if not s.running), None)

    def reap_orphans(self) -> None:
        """Collect exit statuses of re-parented orphans (not of our own Popen children)."""
        if not self.owns_process:
            return
        own = {s.process.pid for s in self.services}
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process().children():
                if child.pid not in own and child.status() == psutil.STATUS_ZOMBIE:
                    with contextlib.suppress(ChildProcessError):
                        os.waitpid(child.pid, os.WNOHANG)

    def _signal_group(self, service: Service, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(service.process.pid, signum)

    def _group_alive(self, service: Service) -> bool:
        try:
            os.killpg(service.process.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        # A zombie leader keeps the group id alive; reap it first.
        service.process.poll()
        try:
            os.killpg(service.process.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def _stop_service(self, service: Service) -> None:
        self.remember_descendants()
        self._signal_group(service, signal.SIGTERM)
        deadline = time.monotonic() + service.grace_s
        while time.monotonic() < deadline and self._group_alive(service):
            self.remember_descendants()
            time.sleep(0.2)
        if self._group_alive(service):
            self._signal_group(service, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            service.process.wait(timeout=10)

    def stop(self) -> None:
        """Stop all services (newest first), then end any descendant still alive."""
        while self.services:
            self._stop_service(self.services.pop())
        self.remember_descendants()
        leftovers = [p for p in self._seen.values() if _alive(p)]
        for process in leftovers:
            with contextlib.suppress(psutil.Error):
                process.terminate()
        _, still_alive = psutil.wait_procs(leftovers, timeout=5)
        for process in still_alive:
            with contextlib.suppress(psutil.Error):
                process.kill()
        psutil.wait_procs(still_alive, timeout=5)
        self.reap_orphans()
        self._seen.clear()


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


# --- the service --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeployReport:
    applied: list[str]
    failed: dict[str, str]


def service_environment(
    *,
    api_url: str,
    tracking_uri: str,
    prefect_home: Path,
    repo_root: Path,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Environment of every child: one Prefect home, API URL and tracking store; repo importable.

    Anything else set in `base` (default: this process's environment) passes through, e.g.
    `PREFECT_API_DATABASE_CONNECTION_URL` for a PostgreSQL-backed Prefect server.
    """
    env = dict(os.environ if base is None else base)
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
    # No usage reports from a service that may run unattended (and often offline).
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    # The venv's executables first, for anything that looks commands up on PATH.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def create_work_pool(supervisor: Supervisor, env: Mapping[str, str], cwd: Path) -> None:
    """Create the process work pool `local`; an existing pool is kept as it is."""
    code, output = supervisor.run(
        "work-pool",
        [sys.executable, "-m", "prefect", "work-pool", "create", WORK_POOL, "--type", "process"],
        env=env,
        cwd=cwd,
        timeout_s=180,
    )
    if code != 0 and "already exists" not in output:
        raise ServeError(f"could not create work pool {WORK_POOL!r}:\n{output[-2000:]}")


def apply_deployments(
    supervisor: Supervisor,
    env: Mapping[str, str],
    repo_root: Path,
    *,
    prefect_file: Path | None = None,
    timeout_s: float = 600,
) -> DeployReport:
    """Apply every deployment of prefect.yaml; one that fails does not stop the others.

    First all at once (`prefect deploy --all`, one process); if that fails (a flow that does not
    import yet, a bad parameter), each deployment alone, so the good ones are still applied.
    """
    prefect_file = prefect_file or repo_root / "prefect.yaml"
    names = deployment_names(prefect_file)
    env = {**env, "COLUMNS": "240"}  # wide enough that Prefect's messages are not wrapped
    deploy = [sys.executable, "-m", "prefect", "--no-prompt", "deploy"]
    where = ["--prefect-file", str(prefect_file)]
    code, output = supervisor.run(
        "deploy", [*deploy, "--all", *where], env=env, cwd=repo_root, timeout_s=timeout_s
    )
    if code == 0:
        return DeployReport(applied=names, failed={})
    # `--all` stops at the first failure: keep what it applied, blame the next one, and apply
    # the rest one by one.
    applied = [name for name in names if f"/{name}' successfully" in output]
    failed: dict[str, str] = {}
    remaining = [name for name in names if name not in applied]
    if remaining and len(applied) == names.index(remaining[0]):
        failed[remaining.pop(0)] = _failure_reason(output) or f"exit code {code}"
    for name in remaining:
        code, output = supervisor.run(
            f"deploy-{name}",
            [*deploy, "--name", name, *where],
            env=env,
            cwd=repo_root,
            timeout_s=timeout_s,
        )
        if code == 0:
            applied.append(name)
        else:
            failed[name] = _failure_reason(output) or f"exit code {code}"
    return DeployReport(applied=applied, failed=failed)


def _failure_reason(output: str) -> str:
    """The last exception line of a Prefect CLI traceback (`module.Error: message`)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in reversed(lines):
        head = line.split(":", 1)[0]
        if head.endswith(("Error", "Exception")) and " " not in head:
            return line[:500]
    return lines[-1][:500] if lines else ""


def serve(
    host: str = LOOPBACK,
    prefect_port: int = 4200,
    mlflow_port: int = 5000,
    state_dir: Path | None = None,
    *,
    repo_root: Path = REPO_ROOT,
    tracking_uri: str | None = None,
    deploy: bool = True,
    worker_limit: int = 2,
    startup_timeout_s: float = 240,
    ready_file: Path | None = None,
) -> int:
    """Run Prefect server + worker + deployments and the MLflow UI until Ctrl-C or SIGTERM.

    Args:
        host: Interface both servers bind to; loopback by default, so nothing is reachable from
            other machines unless asked (e.g. "0.0.0.0").
        prefect_port, mlflow_port: TCP ports of the Prefect server and of the MLflow UI.
        state_dir: Where Prefect's home (database, results) and the service logs go;
            default `<repo>/.state`.
        repo_root: The project checkout the deployments run from.
        tracking_uri: MLflow store of the UI and of every flow run; default
            `registry.tracking.tracking_uri()` (MLFLOW_TRACKING_URI, else `sqlite:///mlflow.db`),
            relative paths taken from `repo_root`. An http(s) tracking server is used as it is,
            and no UI is started.
        deploy: Apply the deployments of `<repo_root>/prefect.yaml`.
        worker_limit: Flow runs the worker runs at once.
        startup_timeout_s: How long each server gets to become healthy (the first start
            migrates its database).
        ready_file: Written with the two URLs once everything is up (for scripts and tests).

    Returns:
        The process exit code: 0 after a requested stop, 1 when a service failed, 2 when a port
        is taken.
    """
    from registry.tracking import tracking_uri as configured_tracking_uri

    state_dir = (state_dir or repo_root / ".state").resolve()
    prefect_home = state_dir / "prefect"
    prefect_home.mkdir(parents=True, exist_ok=True)
    api_url = prefect_api_url(host, prefect_port)
    store = absolute_tracking_uri(tracking_uri or configured_tracking_uri(), repo_root)
    start_mlflow = not is_remote_tracking_uri(store)
    ui_url = mlflow_url(host, mlflow_port) if start_mlflow else store
    env = service_environment(
        api_url=api_url, tracking_uri=store, prefect_home=prefect_home, repo_root=repo_root
    )
    # The Prefect server itself must not think it is a client of some other API; its dashboard
    # must call this server's API (Prefect derives that URL from its default port, not --port).
    server_env = {k: v for k, v in env.items() if k != "PREFECT_API_URL"}
    server_env.setdefault("PREFECT_UI_API_URL", api_url)

    try:
        ensure_port_free(host, prefect_port, what="the Prefect server", option="--prefect-port")
        if start_mlflow:
            ensure_port_free(host, mlflow_port, what="the MLflow UI", option="--mlflow-port")
    except ServeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    previous_handlers = _install_stop_signals()
    supervisor = Supervisor(state_dir / "logs", owns_process=True)
    code = 0
    try:
        supervisor.open()
        _start_everything(
            supervisor,
            host=host,
            prefect_port=prefect_port,
            mlflow_port=mlflow_port,
            api_url=api_url,
            store=store,
            start_mlflow=start_mlflow,
            env=env,
            server_env=server_env,
            repo_root=repo_root,
            deploy=deploy,
            worker_limit=worker_limit,
            startup_timeout_s=startup_timeout_s,
        )
        print(f"Prefect dashboard: {api_url.removesuffix('/api')}")
        print(f"MLflow UI:         {ui_url}")
        print(f"Logs:              {supervisor.log_dir}")
        print("CLI runs use this server while it runs (unless PREFECT_API_URL is set).")
        print("Stop with Ctrl-C.", flush=True)
        if ready_file is not None:
            ready_file.write_text(f"{api_url}\n{ui_url}\n")
        write_serve_record(prefect_home, api_url)  # CLI runs find this server and use it
        while True:
            exited = supervisor.first_exited()
            if exited is not None:
                raise ServeError(
                    f"{exited.name} exited with code {exited.process.returncode}; "
                    f"its log ({exited.log}) ends with:\n{log_tail(exited.log)}"
                )
            supervisor.remember_descendants()
            supervisor.reap_orphans()
            time.sleep(1.0)
    except ServeError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        code = 1
    except (_StopRequested, KeyboardInterrupt):
        code = 0
    finally:
        # A second Ctrl-C or SIGTERM must not cut the clean-up short and leave orphans.
        _ignore_stop_signals()
        print("stopping ...", flush=True)
        remove_serve_record(prefect_home)
        supervisor.stop()
        _restore_signals(previous_handlers)
        print("stopped.", flush=True)
    return code


def _start_everything(
    supervisor: Supervisor,
    *,
    host: str,
    prefect_port: int,
    mlflow_port: int,
    api_url: str,
    store: str,
    start_mlflow: bool,
    env: Mapping[str, str],
    server_env: Mapping[str, str],
    repo_root: Path,
    deploy: bool,
    worker_limit: int,
    startup_timeout_s: float,
) -> None:
    python = sys.executable
    prefect_server = supervisor.start(
        "prefect-server",
        [python, "-m", "prefect", "server", "start", "--host", host, "--port", str(prefect_port)],
        env=server_env,
        cwd=repo_root,
    )
    mlflow_ui = None
    if start_mlflow:
        # Started now so both servers boot at once; the UI is checked after Prefect's.
        mlflow_ui = supervisor.start(
            "mlflow-ui",
            [
                python,
                "-m",
                "mlflow",
                "ui",
                "--backend-store-uri",
                store,
                # Same artifact root as runs logged straight to the store from the repo root, so
                # experiments created in the UI are usable by the flows too.
                "--default-artifact-root",
                str(repo_root / "mlruns"),
                "--host",
                host,
                "--port",
                str(mlflow_port),
                "--workers",
                "1",
            ],
            # MLflow's job runner (six huey consumers) serves GenAI features this project does
            # not use; it would cost a few hundred MB and CPU on a small machine.
            env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **env},
            cwd=repo_root,
        )
    wait_until_healthy(
        f"{api_url}/health",
        process=prefect_server.process,
        name="the Prefect server",
        log=prefect_server.log,
        timeout_s=startup_timeout_s,
    )
    create_work_pool(supervisor, env, repo_root)
    supervisor.start(
        "prefect-worker",
        [
            python,
            "-m",
            "prefect",
            "worker",
            "start",
            "--pool",
            WORK_POOL,
            "--name",
            f"{WORK_POOL}-{socket.gethostname()}",
            "--limit",
            str(worker_limit),
        ],
        env=env,
        cwd=repo_root,
        grace_s=WORKER_STOP_GRACE_S,
    )
    if deploy:
        report = apply_deployments(supervisor, env, repo_root)
        if report.applied:
            print(f"deployments applied: {', '.join(report.applied)}", flush=True)
        for name, reason in report.failed.items():
            print(f"warning: deployment {name!r} not applied: {reason}", file=sys.stderr)
    if mlflow_ui is not None:
        wait_until_healthy(
            f"{mlflow_url(host, mlflow_port)}/health",
            process=mlflow_ui.process,
            name="the MLflow UI",
            log=mlflow_ui.log,
            timeout_s=startup_timeout_s,
        )


class _StopRequested(BaseException):
    """SIGTERM arrived: unwind and stop the services.

    A BaseException, like KeyboardInterrupt, so no `except Exception` on the way swallows it.
    """


def _install_stop_signals() -> dict[int, Any]:
    """SIGTERM and SIGHUP raise _StopRequested in the main thread (Ctrl-C: KeyboardInterrupt)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}

    def request_stop(signum: int, frame: object) -> None:
        raise _StopRequested(signal.Signals(signum).name)

    previous = {}
    for signum in (signal.SIGTERM, signal.SIGHUP):
        previous[signum] = signal.signal(signum, request_stop)
    # Also when started in the background, where the shell leaves SIGINT ignored.
    previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
    return previous


def _ignore_stop_signals() -> None:
    import threading

    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)


def _restore_signals(previous: Mapping[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)
