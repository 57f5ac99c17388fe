"""Only a user's mistake is one line: a bug keeps its traceback (it used to be shown as a
mistake whenever it was a ValueError)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

import flows.cli
from flows.cli import app
from tasks.core.errors import UserInputError

runner = CliRunner()


class _Strict(BaseModel):
    n: int


def _invalid_model() -> None:
    _Strict(n="not a number")  # a bug: our own code builds a model wrongly


@pytest.mark.parametrize(
    "bug",
    [
        ValueError("an internal check failed"),
        KeyError("missing column"),
        "pydantic",
    ],
)
def test_a_bug_in_a_flow_keeps_its_traceback(
    bug: Exception | str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(flow: object, config: object) -> None:
        if bug == "pydantic":
            _invalid_model()
        raise bug

    monkeypatch.setattr(flows.cli, "_run", broken)
    result = runner.invoke(app, ["evaluate", "--workdir", str(tmp_path)])
    assert result.exit_code == 1
    assert not isinstance(result.exception, SystemExit)
    assert "error: " not in result.stderr


def test_a_users_mistake_in_a_flow_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def mistaken(flow: object, config: object) -> None:
        raise UserInputError("no ingested collection in WORKDIR:\n  give data")

    monkeypatch.setattr(flows.cli, "_run", mistaken)
    result = runner.invoke(app, ["evaluate", "--workdir", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: no ingested collection in WORKDIR: give data"
    ]


def test_invalid_settings_name_the_field_in_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["evaluate", "--workdir", str(tmp_path), "--seeds", "0"])
    assert result.exit_code == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: seeds: ")


def test_a_diverged_training_is_one_line_with_exit_code_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Bug: a non-finite loss was reported like a user's mistake (exit code 2), though the
    # command was right; the run failed, and the line says what to try.
    from tasks.training.trainer import NonFiniteLossError

    def diverged(flow: object, config: object) -> None:
        raise NonFiniteLossError(
            "mlp_vae: the training loss became nan at epoch 3, batch 2 (train). Try a lower "
            "learning rate (now 0.1), a smaller beta, or check the input features."
        )

    monkeypatch.setattr(flows.cli, "_run", diverged)
    result = runner.invoke(app, ["evaluate", "--workdir", str(tmp_path)])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)  # no traceback
    assert result.stderr.strip().splitlines() == [
        "error: mlp_vae: the training loss became nan at epoch 3, batch 2 (train). Try a lower "
        "learning rate (now 0.1), a smaller beta, or check the input features."
    ]


def test_a_full_disk_in_a_flow_is_one_line_naming_the_folder(
    prefect_api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Bug: a full disk ended in an OSError traceback and left partial files. A real write to
    # /dev/full fails with ENOSPC, as a full disk does, through the command's own `_run`.
    work = tmp_path / "work"

    def fills_the_disk(config: object) -> None:
        (work / "store").mkdir(parents=True)
        (work / "store" / "abc.tmp.npz").write_bytes(b"half written")
        with open("/dev/full", "wb") as full:
            full.write(b"x" * 10_000)
            full.flush()

    monkeypatch.setattr(flows.cli, "evaluate_flow", fills_the_disk)
    result = runner.invoke(app, ["evaluate", "--workdir", str(work)])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: no space left to write in {work.resolve()}: ")
    assert " free of " in line
    assert line.endswith("run the same command again: it resumes where it stopped")
    assert list(work.rglob("*.tmp*")) == []
