"""The command line's first look at its arguments: typos caught before anything heavy loads.

`python -m flows train mlp_vea DATA` would otherwise import torch, Prefect and MLflow (10-20 s on
a small machine), maybe boot a temporary Prefect server, and only then say that the model does
not exist. Here a mistyped command, model name or data path is reported in a fraction of a
second, with a "did you mean" where a close match exists. Whatever this look cannot judge (the
order of options and arguments it cannot follow, the values of options) is left to the command's
own validation, which reports it in the same one-line form, later.

This module imports nothing heavy: it runs before torch, Prefect and MLflow are loaded. The model
names come from `models.names` (which `models.zoo` checks its classes against);
tests/flows/test_cli_precheck.py keeps the positional arguments below equal to those of the
commands in `flows.cli`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path

from flows.runtime.prefect_api import FLOW_COMMANDS, HELP_FLAGS
from models.names import MODEL_NAMES

COMMANDS = FLOW_COMMANDS | {"demo-data", "serve"}
# The positional arguments of each command, in order, as `flows.cli` declares them.
POSITIONALS: dict[str, tuple[str, ...]] = {
    "demo-data": ("out_dir",),
    "ingest": ("data",),
    "lyrics": ("data",),
    "train": ("model", "data"),
    "evaluate": ("data",),
    "tune": ("model", "data"),
    "run": ("data",),
    "predict": ("data",),
    "serve": (),
}
# `evaluate` reads DATA only when its work dir was never ingested: a stale path is no mistake there.
NOT_CHECKED = frozenset({("evaluate", "data")})


def mistake_in(argv: list[str]) -> str | None:
    """The first mistake this look can be sure of in `argv` (the arguments after the program
    name), as one line without the `error: ` prefix; None when it found none.

    Checked: the command name, a MODEL argument against the model zoo, a DATA argument (a
    collection or new tracks) against the file system. Nothing is checked when help is asked for.
    """
    if not argv or argv[0].startswith("-") or HELP_FLAGS & set(argv):
        return None
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        commands = ", ".join(sorted(COMMANDS))
        return f"no command {command!r}{_did_you_mean(command, COMMANDS)} (commands: {commands})"
    for name, value in zip(POSITIONALS[command], leading_positionals(rest), strict=False):
        if (command, name) in NOT_CHECKED:
            continue
        if name == "model" and value not in MODEL_NAMES:
            return (
                f"unknown model {value!r}{_did_you_mean(value, MODEL_NAMES)} "
                f"(models: {', '.join(MODEL_NAMES)})"
            )
        if name == "data" and not Path(value).expanduser().exists():
            return (
                f"data not found: {value}{_did_you_mean_path(Path(value).expanduser())} "
                "(give a folder of audio or a manifest file)"
            )
    return None


def leading_positionals(arguments: list[str]) -> list[str]:
    """The positional arguments this look can place with certainty: those before the first
    option that may take a value (`--epochs 3`: is `3` its value or an argument? only the
    command's own parser knows). Options written `--name=value` are skipped over."""
    positionals = []
    for argument in arguments:
        if argument == "--" or (argument.startswith("-") and not _is_option_with_value(argument)):
            break
        if not argument.startswith("-"):
            positionals.append(argument)
    return positionals


def _is_option_with_value(argument: str) -> bool:
    return argument.startswith("--") and "=" in argument


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f", did you mean {close[0]!r}?" if close else ""


def _did_you_mean_path(path: Path) -> str:
    """A close name next to a missing path (`dmeo-data` for `demo-data`), when its folder exists;
    the folder is not read beyond its first 2000 entries."""
    folder = path.parent
    if not folder.is_dir():
        return ""
    try:
        names = [entry.name for _, entry in zip(range(2000), folder.iterdir(), strict=False)]
    except OSError:  # unreadable folder: no suggestion
        return ""
    close = difflib.get_close_matches(path.name, names, n=1, cutoff=0.6)
    return f", did you mean {str(folder / close[0])!r}?" if close else ""
