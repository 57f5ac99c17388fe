"""A command stopped, killed, run twice at once or starved of disk space, as a user's shell would
see it: real `python -m flows` processes, a real Prefect server, real signals."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from tests.commands import user_environment
from tests.core.test_workdir_lock import start_holder
from tests.flows.runtime.songs import write_songs
from tests.flows.runtime.test_prefect_api import _servers_with_home

STOP_LINE = "stopped by SIGTERM: run the same command again to resume where it stopped"


@pytest.fixture(scope="module")
def slow_songs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Enough audio that an ingest is still busy a few seconds after its flow starts."""
    return write_songs(tmp_path_factory.mktemp("slow"), count=12, seconds=30.0)


@pytest.fixture
def harness_api(prefect_api) -> str:
    """The session's real Prefect server, for commands that need not start their own."""
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value()


def _start(args: list[str], tmp_path: Path, **settings: str) -> tuple[subprocess.Popen, Path]:
    """`python -m flows ARGS` in the background; returns it and the file its stderr goes to."""
    stderr = tmp_path / "stderr.txt"
    with stderr.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "flows", *args],
            cwd=tmp_path,
            env=user_environment(PREFECT_HOME=str(tmp_path / "prefect_home"), **settings),
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    return process, stderr


def _wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        time.sleep(0.2)


def _partial_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*.tmp*") if p.is_file()]


def test_sigterm_stops_an_ingest_cleanly_within_seconds(
    harness_api: str, slow_songs: Path, tmp_path: Path
) -> None:
    # Bug: Prefect's SIGTERM handler re-raised the signal with the default action: the process
    # died at once (no exit code a shell expects, partial files and temporary server left), or,
    # waiting for a task that never returned, ignored SIGTERM altogether.
    work = tmp_path / "work"
    command, stderr = _start(
        ["ingest", str(slow_songs), "--workdir", str(work)], tmp_path, PREFECT_API_URL=harness_api
    )
    _wait_until(lambda: "found 12 audio files" in stderr.read_text(), 240, "the ingest started")

    command.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    code = command.wait(timeout=60)

    assert time.monotonic() - sent < 15
    assert code == 143
    output = stderr.read_text()
    assert output.strip().splitlines()[-1] == STOP_LINE
    assert "Traceback" not in output
    assert _partial_files(work) == []


@pytest.mark.prefect_server
def test_a_killed_command_takes_its_temporary_server_with_it(
    slow_songs: Path, tmp_path: Path
) -> None:
    # Bug: after kill -9 the temporary Prefect server (about 230 MB) ran on as an orphan.
    command, stderr = _start(
        ["ingest", str(slow_songs), "--workdir", str(tmp_path / "work")], tmp_path
    )
    home = tmp_path / "prefect_home"
    _wait_until(lambda: "Beginning flow run" in stderr.read_text(), 240, "the flow started")
    servers = _servers_with_home(home)
    assert len(servers) == 1

    command.kill()
    command.wait(timeout=30)

    _wait_until(lambda: not any(_alive(s) for s in servers), 10, "the server ended")


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def test_a_second_command_on_a_work_dir_waits_for_the_first(
    harness_api: str, tmp_path: Path
) -> None:
    # Bug: two `run` commands on one work dir both trained every model and registered
    # duplicate versions.
    work = tmp_path / "work"
    first = start_holder(work, command="flows run songs")
    second, stderr = _start(
        ["evaluate", "--workdir", str(work)], tmp_path, PREFECT_API_URL=harness_api
    )
    _wait_until(lambda: "waiting for the work dir" in stderr.read_text(), 240, "a waiting line")
    assert f"in use by pid {first.pid} (flows run songs, since " in stderr.read_text()
    time.sleep(1)
    assert second.poll() is None  # still waiting
    assert "Beginning flow run" not in stderr.read_text()

    first.stdin.close()
    assert first.wait(timeout=30) == 0
    # Then it runs: this work dir was never ingested, which it says in one line.
    assert second.wait(timeout=120) == 2
    errors = [line for line in stderr.read_text().splitlines() if line.startswith("error: ")]
    assert len(errors) == 1
    assert "holds no ingested collection" in errors[0]


FILE_SIZE_LIMIT = """
import os, resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
os.execv(sys.executable, [sys.executable, "-m", "flows", *sys.argv[1:]])
"""


def test_running_out_of_space_is_one_line_and_leaves_no_partial_file(
    harness_api: str, tmp_path: Path
) -> None:
    # Bug: a full disk gave an OSError traceback and left partial `.tmp` files. A file-size limit
    # fails our writes the same way without root (EFBIG where a full disk gives ENOSPC).
    songs = write_songs(tmp_path / "songs", count=2, seconds=3.0)  # 45 kB of features each
    work = tmp_path / "work"
    result = subprocess.run(
        [sys.executable, "-c", FILE_SIZE_LIMIT, "ingest", str(songs), "--workdir", str(work)],
        cwd=tmp_path,
        env=user_environment(
            PREFECT_HOME=str(tmp_path / "prefect_home"), PREFECT_API_URL=harness_api
        ),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1
    assert errors[0].startswith(f"error: a file in {work.resolve()} outgrew the largest file ")
    assert "`ulimit -f`: 20.0 kB" in errors[0]
    assert "run the same command again" in errors[0]
    assert _partial_files(work) == []
