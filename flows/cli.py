"""Command line: `python -m flows <command> --help` (or `vaemusic`). Each command parses, calls one
flow and prints what it produced.

The options of a flow's command are derived from the flow's config (`flows.options`): a setting is
declared once, in its pydantic config, and the command line, the Prefect dashboard's form and the
config agree by construction.
"""

from __future__ import annotations

import difflib
import inspect
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel, Field, ValidationError, field_validator

from flows.evaluate import EvaluateConfig, EvaluateResult, evaluate_flow
from flows.ingest import IngestConfig, ingest_flow
from flows.lyrics import LyricsConfig, lyrics_flow
from flows.options import InvalidSettings, config_command, one_line
from flows.pipeline import PipelineConfig, pipeline_flow
from flows.predict import PredictConfig, predict_flow
from flows.runtime.services import (
    DEFAULT_MLFLOW_PORT,
    DEFAULT_OPTUNA_PORT,
    DEFAULT_PREFECT_PORT,
    LOOPBACK,
)
from flows.train import TrainFlowConfig, train_flow
from flows.tune import TuneConfig, tune_flow
from models.zoo import config_class
from tasks.core.errors import OutOfSpaceError, RunFailure, UserInputError, out_of_space
from tasks.core.runners import TaskPlacement, task_runner
from tasks.core.workdir_lock import holding_workdir
from tasks.demo import DemoSettings, generate_demo_dataset
from tasks.training.representation import ModelSpec

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Unsupervised clustering of music with variational autoencoders (audio + lyrics).",
    pretty_exceptions_enable=False,
)


def _fail(problem: BaseException | str, code: int = 2) -> None:
    """Print one line (`error: ...`) and exit with `code` (2: the user's mistake)."""
    typer.secho(f"error: {' '.join(str(problem).split())}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=code)


# Mistakes a user can cause, shown as one line: invalid settings (`flows.options`), and what the
# stages raise as `UserInputError`; FileNotFoundError: a path the user gave, or an earlier stage
# not run yet. A `RunFailure` (full disk, diverged training) is one line too, with exit code 1.
# Anything else is a bug and keeps its traceback.
USER_ERRORS = (UserInputError, FileNotFoundError)
RUN_FAILURE_EXIT_CODE = 1


def _run(flow: Any, config: Any) -> Any:
    """Call a flow against the Prefect API chosen for this process (`flows.runtime.prefect_api`),
    holding the work dir (`tasks.core.workdir_lock`: one command at a time; partial files of a
    failed run removed).

    Raises:
        OutOfSpaceError: the disk (or quota, or file-size limit) ran out; names the folder.
    """
    from flows.runtime import prefect_api
    from registry.tracking import open_store_in_background

    open_store_in_background()  # while Prefect creates the flow run and the flow starts
    with holding_workdir(config.workdir):
        try:
            with prefect_api.connected():
                return flow(config)
        except Exception as error:  # a task's OSError may come back wrapped (polars, numpy)
            if (cause := out_of_space(error)) is None:
                raise
            raise OutOfSpaceError.from_os_error(cause, config.workdir) from None


def _command(name: str, config: type, run: Any, **options: Any) -> None:
    """Register `run(config, ...)` as command `name`, with options derived from `config`."""

    command = config_command(config, run, **options)
    app.command(name, help=inspect.getdoc(run))(_config_errors_as_one_line(command))


def _config_errors_as_one_line(command: Any) -> Any:
    """A user's mistake, found by the config's validation or by the flow, ends with one line."""

    def wrapped(**values: Any) -> None:
        try:
            command(**values)
        except RunFailure as error:
            _fail(error, code=RUN_FAILURE_EXIT_CODE)
        except USER_ERRORS as error:
            _fail(error)

    wrapped.__signature__ = command.__signature__  # type: ignore[attr-defined]
    wrapped.__annotations__ = command.__annotations__
    wrapped.__doc__ = command.__doc__
    return wrapped


class DemoDataRequest(BaseModel):
    """Where to write the demo collection, and its settings."""

    out_dir: Path = Field(description="Folder to write the demo collection to.")
    demo: DemoSettings = Field(default_factory=DemoSettings)


def demo_data(request: DemoDataRequest) -> None:
    """Generate the built-in synthetic multilingual music collection (no download)."""
    settings = request.demo
    dataset = generate_demo_dataset(
        request.out_dir, tracks=settings.tracks, seed=settings.seed, duration_s=settings.duration_s
    )
    typer.echo(f"wrote {dataset.n_tracks} tracks to {request.out_dir}")


_command("demo-data", DemoDataRequest, demo_data, arguments=("out_dir",))


def _placed(flow: Any, placement: TaskPlacement, workers: int = 0) -> Any:
    """`flow` with its tasks where the command line put them (its own runner by default)."""
    if placement.is_default:
        return flow
    runner = task_runner(placement.task_runner, workers=workers, address=placement.dask_address)
    return flow.with_options(task_runner=runner)


def ingest(config: IngestConfig, placement: TaskPlacement) -> None:
    """Validate audio (quarantining bad files) and compute cached features."""
    result = _run(_placed(ingest_flow, placement, config.workers), config)
    typer.echo(
        f"{result.n_ok} tracks ok, {result.n_quarantined} quarantined "
        f"(see {result.workspace.quarantine_report}); tables in {result.workspace.root}"
    )


_command("ingest", IngestConfig, ingest, arguments=("data",), command_line=TaskPlacement)


def run(config: PipelineConfig, placement: TaskPlacement) -> None:
    """The full pipeline: ingest, lyrics, every model, evaluation, report and champion."""
    _run(_placed(pipeline_flow, placement), config)


_command("run", PipelineConfig, run, arguments=("data",), command_line=TaskPlacement)


def evaluate(config: EvaluateConfig, placement: TaskPlacement) -> None:
    """Cluster every representation in the work dir, write the comparison report and plots."""
    result: EvaluateResult = _run(_placed(evaluate_flow, placement), config)
    typer.echo(result.summary)


_command("evaluate", EvaluateConfig, evaluate, arguments=("data",), command_line=TaskPlacement)


def lyrics(config: LyricsConfig) -> None:
    """Pair lyrics with tracks, tag languages and scripts, romanize and embed them."""
    result = _run(lyrics_flow, config)
    typer.echo(
        f"{result.n_with_lyrics}/{result.n_tracks} tracks with lyrics, "
        f"{result.n_unpaired} lyrics files unpaired ({result.unpaired_lyrics}); "
        f"encoder {result.encoder_id}; table {result.lyrics_table}"
    )


_command("lyrics", LyricsConfig, lyrics, arguments=("data",))


class ModelOverrides(BaseModel):
    """`--set key=value` settings of the model (or of the trainer) being trained."""

    set: list[str] = Field(
        default_factory=list,
        description="Model or trainer setting key=value, e.g. --set beta=4 "
        "--set learning_rate=0.0005.",
    )

    @field_validator("set")
    @classmethod
    def _key_value_pairs(cls, pairs: list[str]) -> list[str]:
        for pair in pairs:
            key, sep, _ = pair.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"--set takes key=value, got {pair!r}")
        return pairs

    @property
    def settings(self) -> dict[str, object]:
        """The pairs as a mapping; values are read as JSON when they parse (numbers, lists,
        true/false), else kept as text."""
        parsed: dict[str, object] = {}
        for pair in self.set:
            key, _, value = pair.partition("=")
            try:
                parsed[key.strip()] = json.loads(value)
            except json.JSONDecodeError:
                parsed[key.strip()] = value
        return parsed


def with_overrides(spec: ModelSpec, settings: dict[str, object]) -> ModelSpec:
    """`spec` with the `--set` settings applied: a trainer setting (learning_rate=...) to the
    trainer, the others to the model's config. Checked here, before any flow starts.

    Raises:
        InvalidSettings: a key neither the model's config nor the trainer has (the message lists
            the valid keys, one line), or a value either of them rejects (naming the key).
    """
    model_fields = config_class(spec.model).model_fields
    trainer_fields = type(spec.train).model_fields
    unknown = [key for key in settings if key not in model_fields and key not in trainer_fields]
    if unknown:
        close = difflib.get_close_matches(unknown[0], [*model_fields, *trainer_fields], n=1)
        raise InvalidSettings(
            f"unknown --set key {unknown[0]!r} for {spec.model}"
            + (f", did you mean {close[0]!r}?" if close else "")
            + f" (model keys: {', '.join(sorted(model_fields))}; "
            + f"trainer keys: {', '.join(sorted(trainer_fields))})"
        )
    trainer = {k: v for k, v in settings.items() if k in trainer_fields}
    model = {k: v for k, v in settings.items() if k not in trainer_fields}
    try:
        config_class(spec.model).model_validate(spec.overrides | model)
        return type(spec).model_validate(
            spec.model_dump()
            | {"overrides": spec.overrides | model, "train": spec.train.model_dump() | trainer}
        )
    except ValidationError as error:
        raise InvalidSettings(f"--set {one_line(error)}") from None


class TrainCommandLine(ModelOverrides, TaskPlacement):
    """What only `train`'s command line sets: `--set` overrides and where the tasks run."""


def train(config: TrainFlowConfig, command_line: TrainCommandLine) -> None:
    """Train one model of the zoo (runs the cached ingest, and lyrics when needed, first)."""
    spec = with_overrides(config.spec, command_line.settings)
    flow = _placed(train_flow, command_line)
    output = _run(flow, config.model_copy(update={"spec": spec}))
    typer.echo(f"MLflow run {output.run_id}; latents in {output.latents}")
    for name, value in sorted(output.final_metrics.items()):
        typer.echo(f"  {name:28s} {value:.4g}")


_command(
    "train",
    TrainFlowConfig,
    train,
    arguments=("spec.model", "data"),
    command_line=TrainCommandLine,
)


def tune(config: TuneConfig, placement: TaskPlacement) -> None:
    """Search hyperparameters with Optuna (resumable), retrain and evaluate the best."""
    result = _run(_placed(tune_flow, placement), config)
    study = result.study
    best = (
        f"{study.best_value:.4f} (trial {study.best_trial})"
        if study.best_value is not None
        else "none"
    )
    typer.echo(
        f"study {study.study_name}: best validation_{study.objective} {best}; "
        f"{study.n_complete} complete, {study.n_pruned} pruned, {study.n_failed} failed"
    )
    if result.final is not None:
        typer.echo(f"retrained: MLflow run {result.final.output.run_id}")
    typer.echo(f"MLflow run {result.run_id}; dashboard: {result.dashboard_command}")


_command("tune", TuneConfig, tune, arguments=("search.model", "data"), command_line=TaskPlacement)


def predict(config: PredictConfig) -> None:
    """Assign new tracks to the champion's clusters and list their nearest collection tracks.

    The flow logs the table (also in the dashboard); the command adds one summary line.
    """
    from tasks.prediction.champion import model_version_of, resolve_model_uri

    # A missing model is the commonest mistake: say so before a flow starts and fails.
    model_version_of(resolve_model_uri(config.model))
    result = _run(predict_flow, config)
    typer.echo(
        f"{result.n_assigned}/{result.n_tracks} tracks assigned, {result.n_quarantined} "
        f"quarantined; model {result.model_uri} (version {result.model_version or '-'}); "
        f"predictions in {result.predictions}"
    )


_command("predict", PredictConfig, predict, arguments=("data",))


@app.command()
def serve(
    host: Annotated[
        str, typer.Option(help="Interface to listen on; the default keeps it on this machine.")
    ] = LOOPBACK,
    prefect_port: Annotated[
        int, typer.Option(help="Prefect server and dashboard port.")
    ] = DEFAULT_PREFECT_PORT,
    mlflow_port: Annotated[int, typer.Option(help="MLflow UI port.")] = DEFAULT_MLFLOW_PORT,
    optuna_port: Annotated[int, typer.Option(help="optuna-dashboard port.")] = DEFAULT_OPTUNA_PORT,
    optuna_storage: Annotated[
        str | None,
        typer.Option(
            help="Optuna storage the dashboard shows (SQLAlchemy URL); default: the one `tune` "
            "uses by default, sqlite:///<repo>/workdir/optuna.db."
        ),
    ] = None,
    state_dir: Annotated[
        Path | None,
        typer.Option(help="Prefect's home and the service logs (default: .state in the repo)."),
    ] = None,
) -> None:
    """Run the Prefect server, a worker, the deployments, the MLflow UI and optuna-dashboard
    until Ctrl-C."""
    from flows.runtime.serve import serve as run_service

    code = run_service(
        host,
        prefect_port,
        mlflow_port,
        state_dir,
        optuna_port=optuna_port,
        optuna_storage=optuna_storage,
    )
    raise typer.Exit(code=code)
