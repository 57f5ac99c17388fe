"""Command-line options derived from the flow configs, so each setting is declared once.

A flow's pydantic config is the one declaration of its settings: name, type, default, bounds and
description. The Prefect dashboard renders it as a form; this module turns the same fields into
typer options, so `--help`, the form and the config cannot disagree:

- a scalar field `n_clusters` becomes `--n-clusters` (a `Literal` a choice, a `bool` a
  `--flag/--no-flag` pair, a list of scalars a repeatable option);
- the fields of nested settings models (`features: FeatureConfig`, at any depth) become options
  of their own (`--n-mels`), prefixed with their parents' names (`--audio-sample-rate`) only
  where two fields of the command share a name;
- fields the command line cannot express (mappings, lists of models, optional models) stay
  dashboard-only, and so do fields a command excludes (`parent_run_id`).

Values are not validated here: the options collect what was typed and the config validates it
(`InvalidSettings` names the field), exactly as the dashboard's form does.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import typer
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from tasks.core.errors import UserInputError

# Set by the pipeline (a parent MLflow run) or internal to flows calling flows.
INTERNAL_FIELDS = frozenset({"parent_run_id"})
SHORT_NAMES = {"workdir": "-w"}
_SCALARS = (str, int, float, bool, Path)


@dataclass(frozen=True)
class ConfigOption:
    """One command-line parameter and the config field it fills (`path`: field names from the
    top-level config, e.g. ("features", "n_mels"))."""

    path: tuple[str, ...]
    parameter: inspect.Parameter


def _without_none(annotation: Any) -> tuple[Any, bool]:
    """(`X`, True) for `X | None`, else (annotation, False); validators (`Annotated`) dropped,
    since the config runs them."""
    optional = False
    if get_origin(annotation) in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        if len(members) == 1 and len(get_args(annotation)) == 2:
            annotation, optional = members[0], True
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation, optional


def _is_scalar(annotation: Any) -> bool:
    return get_origin(annotation) is Literal or (
        isinstance(annotation, type) and issubclass(annotation, _SCALARS)
    )


def command_line_type(annotation: Any) -> tuple[Any, list[str] | None] | None:
    """The type typer parses for a field and, for a `Literal`, its choices; or None when the
    command line cannot express the field.

    A choice is parsed as a string and checked by the config, so that a wrong one is the same
    one-line error (`spec.model: Input should be 'ae', ...`) as any other invalid value.
    """
    inner, optional = _without_none(annotation)
    is_list = get_origin(inner) is list and len(get_args(inner)) == 1
    element = get_args(inner)[0] if is_list else inner
    if not _is_scalar(element):
        return None
    choices = None
    if get_origin(element) is Literal:
        element, choices = str, [str(v) for v in get_args(element)]
    cli_type: Any = list[element] if is_list else element
    return (cli_type | None if optional else cli_type), choices


def _nested_model(field: FieldInfo) -> type[BaseModel] | None:
    annotation = field.annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _default_of(field: FieldInfo) -> Any:
    return field.get_default(call_default_factory=True)


def _option(
    name: str,
    path: tuple[str, ...],
    field: FieldInfo,
    default: Any,
    *,
    argument: bool,
    prefix: str,
) -> ConfigOption | None:
    parsed = command_line_type(field.annotation)
    if parsed is None:
        return None
    cli_type, choices = parsed
    help_text = field.description or name.replace("_", " ")
    if argument:
        info: Any = typer.Argument(
            help=help_text + (f" One of: {', '.join(choices)}." if choices else ""),
            show_default=default is not None,
            metavar=name.upper(),
        )
    else:
        flag = "--" + name.replace("_", "-")
        if _without_none(field.annotation)[0] is bool:
            flag = f"{flag}/--no-{name.replace('_', '-')}"
        short = SHORT_NAMES.get(name)
        metavar = "<" + "|".join(choices) + ">" if choices else None
        if get_origin(_without_none(cli_type)[0]) is list:
            help_text = f"{help_text} Repeatable."
            metavar = metavar or "<str>"
        info = typer.Option(flag, *([short] if short else []), help=help_text, metavar=metavar)
    if default is ...:  # required
        default = inspect.Parameter.empty
    parameter = inspect.Parameter(
        prefix + "__".join(path),
        inspect.Parameter.KEYWORD_ONLY,
        default=default,
        annotation=Annotated[cli_type, info],
    )
    return ConfigOption(path, parameter)


def _leaves(
    config: type[BaseModel],
    excluded: set[str],
    prefix: tuple[str, ...] = (),
    instance: BaseModel | None = None,
) -> list[tuple[tuple[str, ...], FieldInfo, Any]]:
    """(path, field, default) of every field of `config` and, recursively, of its nested
    settings models, in declaration order; `...` marks a required field. Defaults of a nested
    model come from its parent's default instance when it has one."""
    leaves = []
    for name, field in config.model_fields.items():
        if name in excluded:
            continue
        if instance is not None:
            default = getattr(instance, name)
        else:
            default = ... if field.is_required() else _default_of(field)
        model = _nested_model(field)
        if model is None:
            leaves.append(((*prefix, name), field, default))
        else:
            nested_default = None if default is ... else default
            leaves += _leaves(model, excluded, (*prefix, name), nested_default)
    return leaves


def _option_names(paths: list[tuple[str, ...]]) -> dict[tuple[str, ...], str]:
    """Each field's option name: its own name, or the shortest tail of its path that no other
    field of the command shares (`train_device` next to `features_device`)."""
    names = {}
    for path in paths:
        for length in range(1, len(path) + 1):
            tail = path[-length:]
            if sum(other[-length:] == tail for other in paths) == 1:
                break
        names[path] = "_".join(tail)
    return names


def config_options(
    config: type[BaseModel],
    *,
    arguments: Iterable[str] = (),
    exclude: Iterable[str] = (),
    prefix: str = "",
) -> list[ConfigOption]:
    """Parameters for every field of `config` the command line can express.

    `arguments`: fields given positionally, in this order, as dotted paths (`"search.model"`,
    `"data"`). `exclude`: top-level or nested field names that stay dashboard-only.
    """
    positional = [tuple(path.split(".")) for path in arguments]
    leaves = _leaves(config, set(exclude) | INTERNAL_FIELDS)
    names = _option_names([path for path, _, _ in leaves])
    by_path = {path: (field, default) for path, field, default in leaves}

    options: list[ConfigOption] = []
    for path in positional:
        field, default = by_path[path]
        option = _option(path[-1], path, field, default, argument=True, prefix=prefix)
        if option is None:
            raise TypeError(f"{config.__name__}.{'.'.join(path)} cannot be a command-line argument")
        options.append(option)
    for path, field, default in leaves:
        if path in positional:
            continue
        option = _option(names[path], path, field, default, argument=False, prefix=prefix)
        if option is not None:
            options.append(option)
    return options


class InvalidSettings(UserInputError):
    """What was typed does not make a valid config; the message names each field and problem."""


def one_line(error: ValidationError) -> str:
    """`field: what is wrong; ...` instead of pydantic's multi-line block."""
    return "; ".join(
        f"{'.'.join(str(part) for part in problem['loc'])}: "
        f"{problem['msg'].removeprefix('Value error, ')}"
        for problem in error.errors()
    )


def config_from_options(
    config: type[BaseModel], options: list[ConfigOption], values: dict[str, Any]
) -> Any:
    """Build and validate `config` from what the command line collected.

    Raises:
        InvalidSettings: naming each field, e.g. `features.n_mels: Input should be less than or
            equal to 256`. Only here is a pydantic error the user's: elsewhere it is a bug.
    """
    data: dict[str, Any] = {}
    for option in options:
        target = data
        for part in option.path[:-1]:
            target = target.setdefault(part, {})
        target[option.path[-1]] = values[option.parameter.name]
    try:
        return config.model_validate(data)
    except ValidationError as error:
        raise InvalidSettings(one_line(error)) from None


def config_command(
    config: type[BaseModel],
    run: Callable[..., None],
    *,
    arguments: Iterable[str] = (),
    exclude: Iterable[str] = (),
    command_line: type[BaseModel] | None = None,
) -> Callable[..., None]:
    """A typer command whose parameters are `config`'s fields; it calls `run(config)`, or
    `run(config, settings)` with `command_line`, a model of settings that only the command line
    has (where tasks run, `--set` overrides), derived the same way."""
    options = config_options(config, arguments=arguments, exclude=exclude)
    # Prefixed, so that the two sets of parameter names cannot collide.
    extra = config_options(command_line, prefix="cli__") if command_line else []

    def command(**values: Any) -> None:
        if command_line is None:
            run(config_from_options(config, options, values))
            return
        # Settings of the command line first: they are about how the command was typed.
        settings = config_from_options(command_line, extra, values)
        run(config_from_options(config, options, values), settings)

    parameters = [o.parameter for o in options + extra]
    # Positional arguments first: typer keeps the order of the signature.
    parameters.sort(key=lambda p: not _is_argument(p))
    command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in parameters}
    command.__doc__ = run.__doc__
    return command


def _is_argument(parameter: inspect.Parameter) -> bool:
    metadata = getattr(parameter.annotation, "__metadata__", ())
    return any(isinstance(meta, typer.models.ArgumentInfo) for meta in metadata)
