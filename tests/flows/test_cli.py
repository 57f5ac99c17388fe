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


@pytest.fixture
def no_flow_runs(monkeypatch: pytest.MonkeyPatch) -> list:
    """Flows the command would run (their configs), recorded instead of run."""
    import flows.cli

    ran: list = []
    monkeypatch.setattr(flows.cli, "_run", lambda flow, config: ran.append(config))
    return ran


def _songs(tmp_path: Path) -> Path:
    (tmp_path / "songs").mkdir()
    (tmp_path / "songs" / "a.wav").write_bytes(b"")  # the command's check looks at names only
    return tmp_path / "songs"


def test_an_unknown_set_key_lists_the_valid_keys_before_ingest(
    tmp_path: Path, no_flow_runs: list
) -> None:
    args = ["train", "beta_vae", str(_songs(tmp_path)), "--set", "bta=4"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()[-1:]
    assert line.startswith("error: unknown --set key 'bta' for beta_vae, did you mean 'beta'? ")
    assert (
        "(model keys: beta, capacity_max, capacity_steps, dropout, hidden_dims, latent_dim; "
        in line
    )
    assert "; trainer keys: batch_size, crops_per_track, device, epochs, " in line
    assert no_flow_runs == []  # nothing ran: no ingest


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("dropout=2", "error: --set dropout: Input should be less than 1"),
        ("learning_rate=-1", "error: --set train.learning_rate: Input should be greater than 0"),
    ],
)
def test_an_invalid_set_value_is_one_line_before_ingest(
    tmp_path: Path, no_flow_runs: list, setting: str, message: str
) -> None:
    result = runner.invoke(app, ["train", "mlp_vae", str(_songs(tmp_path)), "--set", setting])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1] == message
    assert no_flow_runs == []


def test_set_values_go_to_the_model_and_to_the_trainer(tmp_path: Path, no_flow_runs: list) -> None:
    args = ["train", "beta_vae", str(_songs(tmp_path)), "--set", "beta=4"]
    runner.invoke(app, [*args, "--set", "learning_rate=0.0005"])  # fails after: no real run
    [config] = no_flow_runs
    assert config.spec.overrides == {"beta": 4}
    assert config.spec.train.learning_rate == 0.0005
