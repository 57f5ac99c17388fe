"""The command line's first look: a mistyped command, model or path is one line, in well under a
second, before torch, Prefect or MLflow load and before any flow (or Prefect server) starts."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import typer

from flows.cli import app
from flows.runtime.precheck import COMMANDS, POSITIONALS, mistake_in
from models.zoo import MODEL_NAMES as ZOO_MODEL_NAMES
from tests.commands import run_flows

# Measured 0.2 s on a busy 2-core machine; the heavy imports alone take 10-20 s there.
FAST_S = 3.0


def test_a_mistyped_model_is_reported_before_the_heavy_imports(tmp_path: Path) -> None:
    started = time.perf_counter()
    result = run_flows(["train", "mlp_vea", "DATA"], cwd=tmp_path, timeout=60)
    elapsed = time.perf_counter() - started
    print(f"`python -m flows train mlp_vea DATA` answered in {elapsed:.2f} s")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: unknown model 'mlp_vea', did you mean 'mlp_vae'? "
        f"(models: {', '.join(ZOO_MODEL_NAMES)})"
    ]
    assert elapsed < FAST_S


def test_a_missing_data_path_is_reported_before_the_heavy_imports(tmp_path: Path) -> None:
    (tmp_path / "demo-data").mkdir()
    started = time.perf_counter()
    result = run_flows(["run", "dmeo-data", "--profile", "quick"], cwd=tmp_path, timeout=60)
    elapsed = time.perf_counter() - started
    print(f"`python -m flows run dmeo-data` answered in {elapsed:.2f} s")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: data not found: dmeo-data, did you mean 'demo-data'? "
        "(give a folder of audio or a manifest file)"
    ]
    assert elapsed < FAST_S


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "no_such_model", "."], "unknown model 'no_such_model' (models: ae, "),
        (["tune", "vaed", "."], "unknown model 'vaed', did you mean 'vade'?"),
        (["ingest", "/no/such/folder"], "data not found: /no/such/folder (give a folder"),
        (["train", "mlp_vae", "/no/such/folder"], "data not found: /no/such/folder"),
        (["predict", "--model=x@champion", "/no/such"], "data not found: /no/such"),
        (["trian", "ae", "."], "no command 'trian', did you mean 'train'? (commands: demo-data,"),
    ],
)
def test_mistakes_it_can_be_sure_of_are_one_line(argv: list[str], message: str) -> None:
    mistake = mistake_in(argv)
    assert mistake is not None
    assert mistake.startswith(message)
    assert "\n" not in mistake


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "mlp_vae", "{data}", "--set", "beta=4"],
        ["train", "no_such_model", "--help"],  # help is always given
        ["evaluate"],  # no data argument: the command's default
        ["evaluate", "/no/such"],  # read only when the work dir was never ingested
        # an option that may take a value comes first: the command's own parser decides
        ["train", "--epochs", "3", "no_such_model", "/no/such"],
        ["serve", "--prefect-port", "4300"],
        ["--help"],
        [],
    ],
)
def test_what_it_cannot_judge_or_is_right_is_left_to_the_command(
    argv: list[str], tmp_path: Path
) -> None:
    assert mistake_in([a.format(data=tmp_path) for a in argv]) is None


# --- the command table this light module keeps stays equal to the command line's ----------------


def _commands() -> dict:
    """The commands of `flows.cli` as typer builds them (with the click it vendors)."""
    return typer.main.get_command(app).commands  # type: ignore[attr-defined]


def test_commands_and_their_positional_arguments_are_the_command_lines() -> None:
    commands = _commands()
    assert set(commands) == COMMANDS
    positionals = {
        # Parameter names are config paths (`spec__model`): the argument is the field's name.
        name: tuple(
            param.name.split("__")[-1]
            for param in command.params
            if param.param_type_name == "argument"
        )
        for name, command in commands.items()
    }
    assert positionals == POSITIONALS
