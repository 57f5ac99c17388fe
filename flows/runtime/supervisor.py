"""Start commands as supervised services and stop every process they started, children included.

Each service runs in its own process group (`start_new_session=True`) and is stopped by signalling
the group: SIGTERM, then SIGKILL after a grace period. Processes that leave their group (Prefect
starts flow runs in sessions of their own) are remembered as the supervisor sees them and ended at
the end; on Linux a supervisor that owns its process is also a child subreaper, so such processes
stay its descendants even when their parent dies first.

Knows nothing of Prefect or MLflow: `flows.runtime.services` says what to start.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

# How long a service gets to stop after SIGTERM before its process group gets SIGKILL.
STOP_GRACE_S = 15.0
ONE_SHOT_STOP_GRACE_S = 5.0
LOG_TAIL_LINES = 25


class ServeError(RuntimeError):
    """A service could not be started or died; the message says which one, why, and its log."""


class StopRequested(BaseException):
    """SIGTERM or SIGHUP arrived: unwind and stop the services.

    A BaseException, like KeyboardInterrupt, so no `except Exception` on the way swallows it.
    """


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines of a service log, or `(no log)` when it was never written."""
    if not path.exists():
        return "(no log)"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


def service_failure(what: str, log: Path) -> ServeError:
    """The error saying what happened to a service (`what`), ending with the end of its log."""
    return ServeError(f"{what}; its log ({log}) ends with:\n{log_tail(log)}")


@dataclass
class Service:
    """A started process: its name (also its log's name), the process and its log file."""

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

    def start(
        self,
        name: str,
        command: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        grace_s: float = STOP_GRACE_S,
    ) -> Service:
        """Start a long-running service; its output goes to `<log_dir>/<name>.log` (appended)."""
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
                # Own process group: stopped as a whole, and Ctrl-C in the terminal reaches only
                # this supervisor, which then stops things in order.
                start_new_session=True,
            )
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

        Raises:
            ServeError: it took longer than `timeout_s` (it is then left to `stop`).
        """
        log = self.log_dir / f"{name}.log"
        offset = log.stat().st_size if log.exists() else 0
        service = self.start(name, command, env=env, cwd=cwd, grace_s=ONE_SHOT_STOP_GRACE_S)
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

    def watch(self, poll_s: float = 1.0) -> None:
        """Block while every service runs, keeping track of their descendants.

        Never returns normally: a stop signal ends it (StopRequested, KeyboardInterrupt).

        Raises:
            ServeError: a service exited (with the end of its log).
        """
        while True:
            exited = next((s for s in self.services if not s.running), None)
            if exited is not None:
                what = f"{exited.name} exited with code {exited.process.returncode}"
                raise service_failure(what, exited.log)
            self.remember_descendants()
            self.reap_orphans()
            time.sleep(poll_s)

    def remember_descendants(self) -> None:
        """Note the services' descendants, to stop them at shutdown even if they leave the tree."""
        roots = [s.process.pid for s in self.services]
        if self.owns_process:
            roots = [os.getpid()]  # re-parented orphans included
        for root in roots:
            with contextlib.suppress(psutil.Error):
                for child in psutil.Process(root).children(recursive=True):
                    self._seen.setdefault(child.pid, child)

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

    def _stop_service(self, service: Service) -> None:
        self.remember_descendants()
        _signal_group(service, signal.SIGTERM)
        deadline = time.monotonic() + service.grace_s
        while time.monotonic() < deadline and _group_alive(service):
            self.remember_descendants()
            time.sleep(0.2)
        if _group_alive(service):
            _signal_group(service, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            service.process.wait(timeout=10)


def _signal_group(service: Service, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(service.process.pid, signum)


def _group_alive(service: Service) -> bool:
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


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _become_child_subreaper() -> bool:
    """Linux: orphaned descendants are re-parented to this process instead of to init.

    So a process that left its group (Prefect starts flow runs in their own sessions) is still
    our descendant, found and stopped at shutdown. Returns False where not supported.
    """
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    pr_set_child_subreaper = 36  # from <linux/prctl.h>
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(pr_set_child_subreaper, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


# --- signals ------------------------------------------------------------------------------------


@contextlib.contextmanager
def stop_signals_raise() -> Iterator[None]:
    """In the body, SIGTERM and SIGHUP raise StopRequested and SIGINT raises KeyboardInterrupt.

    SIGINT too because a shell leaves it ignored in programs started in the background. The
    previous handlers come back at the end. Outside the main thread (where Python cannot set
    handlers) nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def request_stop(signum: int, frame: object) -> None:
        raise StopRequested(signal.Signals(signum).name)

    previous: dict[int, Any] = {}
    for signum in (signal.SIGTERM, signal.SIGHUP):
        previous[signum] = signal.signal(signum, request_stop)
    previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def ignore_stop_signals() -> None:
    """Ignore further stop signals: a second Ctrl-C must not cut a clean-up short."""
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
