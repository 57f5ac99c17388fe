"""The command line: every command documents itself and user mistakes get one clear line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.__main__ import app

COMMANDS = ["demo-data", "ingest", "lyrics", "train", "evaluate", "tune", "run", "predict", "serve"]
runner = CliRunner()


def test_module_entry_point_lists_every_command(repo_root: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(repo_root)}
    result = subprocess.run(
        [sys.executable, "-m", "flows", "--help"],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for command in COMMANDS:
        assert command in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ingest", "/no/such/folder"], "data not found"),
        (["train", "mlp_vae", "/no/such/folder"], "data not found"),
        (["run", "/no/such/folder"], "data not found"),
        (["ingest", "{empty}"], "no audio files"),
        (["ingest", "{text}"], "not a manifest"),
        (["predict", ".", "--model", "no_such_model@champion"], "no registered model"),
        (["train", "no_such_model", "."], "model"),
        (["train", "mlp_vae", ".", "--set", "novalue"], "key=value"),
    ],
)
def test_user_mistakes_get_one_clear_line(args: list[str], message: str, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("not a manifest")
    args = [a.format(empty=tmp_path / "empty", text=tmp_path / "notes.txt") for a in args]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    # The last line is the message (MLflow may log its first-use migration before it).
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("error: ")
    assert message in last_line
