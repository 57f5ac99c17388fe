"""Running the project's commands in a subprocess, the way a user's shell would run them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
# The test session's own Prefect settings (a harness API URL among them) are not a user's, and
# PYTHONPATH is dropped so that a test proves the installed project imports from any folder.
SESSION_ONLY = ("PREFECT_", "PYTHONPATH")


def user_environment(*, unset: tuple[str, ...] = (), **settings: str) -> dict[str, str]:
    """This process's environment as a shell with the project's virtualenv activated sees it.

    The venv's `bin` comes first on PATH (so `python`, `vaemusic` and `mlflow` are the venv's);
    variables starting with any of `SESSION_ONLY` or `unset` are removed; `settings` are added.
    """
    dropped = SESSION_ONLY + unset
    env = {name: value for name, value in os.environ.items() if not name.startswith(dropped)}
    env["PATH"] = os.pathsep.join([str(VENV_BIN), env.get("PATH", "")])
    return env | settings


def run_command(
    argv: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run `argv` in `cwd` with `env` (default: `user_environment()`), capturing its text output.

    Never raises for a non-zero exit: tests assert on `returncode`. Raises
    subprocess.TimeoutExpired after `timeout` seconds.
    """
    return subprocess.run(
        argv,
        cwd=cwd,
        env=user_environment() if env is None else env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_flows(
    args: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """`python -m flows ARGS` with the venv's interpreter, as `run_command` runs it."""
    return run_command([sys.executable, "-m", "flows", *args], cwd=cwd, env=env, timeout=timeout)
