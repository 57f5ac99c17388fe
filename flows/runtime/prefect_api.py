"""Which Prefect API a command-line run talks to, decided before the heavy imports.

In order of preference:
1. an API the user configured (PREFECT_API_URL, a Prefect profile or settings file);
2. the server of a running `python -m flows serve` (it leaves `serve.json` in PREFECT_HOME);
3. a temporary local server, like Prefect's own, but launched as the command starts, so that it
   boots while the command imports torch, MLflow and Prefect (Prefect would launch it only at the
   first flow call, after those imports, and the command would wait for both one after the other).

This module imports nothing heavy: it runs before torch, Prefect and MLflow are loaded.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flows.runtime.environment import serve_api_auth
from flows.runtime.state import REPO_ROOT, ServiceState

SERVE_RECORD = "serve.json"
# Commands that run flows; the others (demo-data, serve, --help) never need an API.
FLOW_COMMANDS = frozenset({"ingest", "lyrics", "train", "evaluate", "tune", "run", "predict"})
HELP_FLAGS = frozenset({"--help", "-h"})
_PORT_IN_USE_EXIT_CODE = 3  # uvicorn's exit code when its port was taken meanwhile
_LOG_LIMIT_BYTES = 5_000_000


def prefect_home() -> Path:
    return Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser()


def answers(url: str, timeout_s: float = 1.0) -> bool:
    """Whether an http(s) URL answers 200 within `timeout_s`."""
    if not url.startswith(("http://", "https://")):
        return False
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310
            return response.status == 200
    except OSError:  # refused, reset, timed out, HTTP errors (URLError is an OSError)
        return False


def healthy(api_url: str, timeout_s: float = 1.0) -> bool:
    return answers(f"{api_url}/health", timeout_s)


# ----------------------------------------------------------------------------------------------
# The record a running `serve` leaves behind


def write_serve_record(home: Path, api_url: str) -> Path:
    path = home / SERVE_RECORD
    path.write_text(json.dumps({"api_url": api_url, "pid": os.getpid()}))
    return path


def remove_serve_record(home: Path) -> None:
    path = home / SERVE_RECORD
    with contextlib.suppress(FileNotFoundError, ValueError, KeyError):
        if json.loads(path.read_text())["pid"] == os.getpid():
            path.unlink()


def _serve_home() -> Path:
    """The Prefect home a `serve` of this PREFECT_HOME (when unset: of this checkout) uses."""
    if "PREFECT_HOME" in os.environ:
        return prefect_home()
    return ServiceState.of_repo(REPO_ROOT).prefect_home


def running_serve_api() -> str | None:
    """API URL of a live `serve` of this PREFECT_HOME (when unset: of this checkout), else None."""
    try:
        record = json.loads((_serve_home() / SERVE_RECORD).read_text())
        os.kill(int(record["pid"]), 0)  # a record left by a killed serve is stale
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return record["api_url"] if healthy(record["api_url"]) else None


def _user_may_have_configured_an_api() -> bool:
    """A cheap first look (no Prefect import); `connected` decides with Prefect's own settings."""
    if os.environ.get("PREFECT_API_URL"):
        return True
    profiles = Path(os.environ.get("PREFECT_PROFILES_PATH", prefect_home() / "profiles.toml"))
    markers = {
        profiles: "PREFECT_API_URL",
        Path(".env"): "PREFECT_API_URL",
        Path("prefect.toml"): "[api]",
        Path("pyproject.toml"): "[tool.prefect.api]",
    }
    return any(
        path.is_file() and marker in path.read_text(errors="replace")
        for path, marker in markers.items()
    )


# ----------------------------------------------------------------------------------------------
# A temporary server of our own


class TemporaryServer:
    """A Prefect API server in a subprocess on a free loopback port, stopped when Python exits.

    The same command and settings as Prefect's `SubprocessASGIServer` (no UI, ephemeral mode), but
    `launch` returns at once and `wait_ready` is called only when a flow is about to start. The
    server also ends when this process dies without exiting (kill -9, a crash): see
    `_serve_while_parent_lives`.
    """

    def __init__(self) -> None:
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def log(self) -> Path:
        """The server's output (the last launch's)."""
        return prefect_home() / "temporary-server.log"

    def launch(self) -> TemporaryServer:
        self.port = _free_port()
        prefect_dir = Path(importlib.util.find_spec("prefect").origin).parent
        self.log.parent.mkdir(parents=True, exist_ok=True)
        # Its output goes to a log, not the command's console: a server stopped while it still
        # flushes events prints tracebacks that say nothing about the command's outcome. Appended
        # to (commands sharing a PREFECT_HOME run at once), emptied when it grows large.
        too_large = self.log.is_file() and self.log.stat().st_size > _LOG_LIMIT_BYTES
        with self.log.open("wb" if too_large else "ab") as log:
            log.write(f"--- pid {os.getpid()}, {time.ctime()}, port {self.port}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "flows.runtime.prefect_api",  # `_serve_while_parent_lives` runs uvicorn
                    str(os.getpid()),
                    "--app-dir",
                    str(prefect_dir.parent),
                    "--factory",
                    "prefect.server.api.server:create_app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--log-level",
                    "error",
                    "--lifespan",
                    "on",
                ],
                env={
                    **os.environ,
                    "PREFECT_UI_ENABLED": "0",
                    "PREFECT__SERVER_EPHEMERAL": "1",
                    "PREFECT__SERVER_FINAL": "1",
                },
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        atexit.register(self.stop)
        return self

    def wait_ready(self, timeout_s: float) -> str:
        """Block until the API answers; return its URL.

        Raises:
            RuntimeError: the server exited or did not answer within `timeout_s`.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code == _PORT_IN_USE_EXIT_CODE:  # another program took the port: try another
                self.launch()
            elif code is not None:
                raise RuntimeError(
                    f"the temporary Prefect server exited with code {code}; its output is in "
                    f"{self.log}"
                )
            elif healthy(self.api_url, timeout_s=2.0):
                return self.api_url
            time.sleep(0.05)
        raise RuntimeError(
            f"the temporary Prefect server did not answer within {timeout_s:.0f} s "
            "(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS)"
        )

    def stop(self) -> None:
        """Stop the server (SIGTERM, SIGKILL after 5 s); safe to call twice, from any thread."""
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _free_port() -> int:
    for _ in range(50):
        port = random.randrange(8000, 9000)
        with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free TCP port in 8000-8999 for a temporary Prefect server")


# ----------------------------------------------------------------------------------------------
# What the command line calls

_early_server: TemporaryServer | None = None


def prepare(argv: list[str]) -> None:
    """Called first thing by the command line: launch a temporary server if one will be needed."""
    global _early_server
    command = argv[0] if argv else ""
    if command not in FLOW_COMMANDS or HELP_FLAGS & set(argv):
        return
    if _user_may_have_configured_an_api() or running_serve_api() is not None:
        return
    _early_server = TemporaryServer().launch()


def stop_temporary_server() -> None:
    """Stop this command's temporary server now, if it started one (a run being interrupted)."""
    if _early_server is not None:
        _early_server.stop()


@contextlib.contextmanager
def connected() -> Iterator[str | None]:
    """Run the body against the chosen API (see the module docstring); yields its URL."""
    global _early_server
    from prefect.settings import (
        PREFECT_API_AUTH_STRING,
        PREFECT_API_URL,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        get_current_settings,
        temporary_settings,
    )

    configured = get_current_settings().api.url
    if configured:
        if _early_server is not None:  # the cheap look missed the user's settings
            _early_server.stop()
            _early_server = None
        yield configured
        return
    api_url = None if _early_server else running_serve_api()  # decided at launch
    updates: dict[Any, str] = {}
    if api_url is None:
        _early_server = _early_server or TemporaryServer().launch()
        api_url = _early_server.wait_ready(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value())
    else:
        # `serve`'s server requires its auth string; the environment alone comes too late, as
        # Prefect's settings are loaded by now.
        auth = serve_api_auth(_serve_home())
        if auth:
            updates[PREFECT_API_AUTH_STRING] = auth
    updates[PREFECT_API_URL] = api_url
    # The settings context reaches the flow and its task threads; the environment also reaches
    # threads started without a context (Optuna's) and child processes (a local Dask cluster).
    os.environ["PREFECT_API_URL"] = api_url
    try:
        with temporary_settings(updates=updates):
            yield api_url
    finally:
        os.environ.pop("PREFECT_API_URL", None)


# ----------------------------------------------------------------------------------------------
# The server's side: `python -m flows.runtime.prefect_api PARENT_PID UVICORN_ARGS...`

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_PARENT_POLL_S = 0.5
_SHUTDOWN_GRACE_S = 5.0


def _serve_while_parent_lives(argv: list[str]) -> None:
    """Run uvicorn with `argv[1:]`, ending when process `argv[0]` (the command) is gone.

    A command killed with SIGKILL runs no exit hook, and its server (about 230 MB) would live on
    as an orphan. Two guards, because neither is enough alone: on Linux the kernel sends SIGTERM
    when the parent dies (PR_SET_PDEATHSIG, set here rather than in a `preexec_fn`, which is unsafe
    once the parent has threads; it fires when the launching *thread* ends, and the server is
    launched from the main thread); elsewhere, and should that signal be lost, a thread notices
    that the parent changed and stops the server itself.
    """
    parent = int(argv[0])
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the guard was set
        sys.exit(1)
    threading.Thread(target=_stop_when_orphaned, args=(parent,), daemon=True).start()
    from uvicorn.main import main as uvicorn

    uvicorn(args=argv[1:], prog_name="uvicorn")


def _stop_when_orphaned(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(_PARENT_POLL_S)
    os.kill(os.getpid(), signal.SIGTERM)  # uvicorn's own graceful shutdown
    time.sleep(_SHUTDOWN_GRACE_S)
    os._exit(1)


if __name__ == "__main__":
    _serve_while_parent_lives(sys.argv[1:])
