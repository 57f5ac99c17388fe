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
