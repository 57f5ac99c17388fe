"""The supervisor: services in their own process groups, stopped with everything they started."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import psutil
import pytest

from flows.runtime.supervisor import (
    ServeError,
    StopRequested,
    Supervisor,
    ignore_stop_signals,
    stop_signals_raise,
)
from tests.flows.runtime.processes import alive


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


def test_a_one_shot_command_returns_its_code_and_only_this_runs_output(tmp_path: Path) -> None:
    with Supervisor(tmp_path / "logs") as supervisor:
        say = [sys.executable, "-c", "import sys; print(sys.argv[1]); sys.exit(int(sys.argv[2]))"]
        first = supervisor.run(
            "say", [*say, "first", "0"], env=os.environ, cwd=tmp_path, timeout_s=60
        )
        second = supervisor.run(
            "say", [*say, "second", "3"], env=os.environ, cwd=tmp_path, timeout_s=60
        )
        assert first[0] == 0
        assert "first" in first[1]
        assert second[0] == 3
        assert "second" in second[1]
        assert "first" not in second[1]  # the log is appended to; the output is this run's
        assert supervisor.services == []  # finished: nothing left to stop


def test_a_service_that_exits_ends_the_watch_with_the_end_of_its_log(tmp_path: Path) -> None:
    with Supervisor(tmp_path / "logs") as supervisor:
        supervisor.start(
            "fragile",
            [sys.executable, "-c", "import sys; print('disk full'); sys.exit(4)"],
            env=os.environ,
            cwd=tmp_path,
        )
        with pytest.raises(ServeError, match=r"fragile exited with code 4") as failure:
            supervisor.watch(poll_s=0.05)
    assert "disk full" in str(failure.value)
    assert str(tmp_path / "logs" / "fragile.log") in str(failure.value)


def test_sigterm_raises_stop_requested_and_the_previous_handlers_come_back() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with stop_signals_raise(), pytest.raises(StopRequested, match="SIGTERM"):
        signal.raise_signal(signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is before

    with stop_signals_raise():
        ignore_stop_signals()  # during clean-up
        signal.raise_signal(signal.SIGTERM)  # ignored: this test goes on
    assert signal.getsignal(signal.SIGTERM) is before
