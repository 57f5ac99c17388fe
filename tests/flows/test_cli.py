"""The command line: every command documents itself and user mistakes get one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from tests.commands import VENV_BIN, run_command, run_flows

COMMANDS = ["demo-data", "ingest", "lyrics", "train", "evaluate", "tune", "run", "predict", "serve"]
runner = CliRunner()


# Both from a folder outside the checkout and without PYTHONPATH: the installed project imports.
def test_module_entry_point_lists_every_command_from_any_folder(tmp_path: Path) -> None:
    result = run_flows(["--help"], cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert [command for command in COMMANDS if command not in result.stdout] == []


def test_console_script_lists_every_command_from_any_folder(tmp_path: Path) -> None:
    result = run_command([str(VENV_BIN / "vaemusic"), "--help"], cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert [command for command in COMMANDS if command not in result.stdout] == []


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
