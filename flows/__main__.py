"""Command line: `python -m flows <command> --help`. Each command parses and calls one flow."""

from __future__ import annotations

import atexit
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from flows.environment import apply_runtime_defaults

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Unsupervised clustering of music with variational autoencoders (audio + lyrics).",
    pretty_exceptions_enable=False,
)

WorkdirOption = Annotated[Path, typer.Option("--workdir", "-w", help="Work directory.")]


def _fail(problem: BaseException | str) -> None:
    """Print one line (`error: ...`) and exit with code 2."""
    typer.secho(f"error: {_one_line(problem)}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def _one_line(problem: BaseException | str) -> str:
    from pydantic import ValidationError

    if isinstance(problem, ValidationError):  # "field: what is wrong" instead of pydantic's block
        return "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: "
            f"{error['msg'].removeprefix('Value error, ')}"
            for error in problem.errors()
        )
    return " ".join(str(problem).split())


def _user_errors():
    """Errors a user can cause, shown as one line instead of a traceback."""
    from mlflow.exceptions import MlflowException
    from pydantic import ValidationError

    from tasks.discovery import DataSourceError

    # MlflowException: a model URI or alias that does not exist in the tracking store.
    return (DataSourceError, ValidationError, FileNotFoundError, ValueError, MlflowException)


def _run(flow, *args):
    """Call a flow against the Prefect API chosen for this process (`flows.prefect_api`)."""
    from flows import prefect_api
    from registry.tracking import open_store_in_background

    open_store_in_background()  # while Prefect creates the flow run and the flow starts
    with prefect_api.connected():
        return flow(*args)


@app.command("demo-data")
def demo_data(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write the demo collection to.")],
    tracks: Annotated[
        int, typer.Option(help="Number of tracks (1000 for a GTZAN-sized set).")
    ] = 120,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same files.")] = 0,
) -> None:
    """Generate the built-in synthetic multilingual music collection (no download)."""
    from tasks.demo_data import generate_demo_dataset

    dataset = generate_demo_dataset(out_dir, tracks=tracks, seed=seed)
    typer.echo(f"wrote {dataset.n_tracks} tracks to {out_dir}")


@app.command()
def ingest(
    data: Annotated[
        Path, typer.Argument(help="A GTZAN-layout folder or a manifest (.csv/.parquet).")
    ],
    workdir: WorkdirOption = Path("workdir"),
    workers: Annotated[int, typer.Option(help="Parallel decoders (0 = one per core).")] = 0,
    n_mels: Annotated[int, typer.Option(help="Mel bands.")] = 128,
    min_duration: Annotated[float, typer.Option(help="Shortest usable clip (s).")] = 1.0,
    task_runner: Annotated[str, typer.Option(help="Where tasks run: threads or dask.")] = "threads",
    dask_address: Annotated[
        str | None,
        typer.Option(help="Dask scheduler, e.g. tcp://host:8786 (default: a local cluster)."),
    ] = None,
) -> None:
    """Validate audio (quarantining bad files) and compute cached features."""
    from flows.ingest import IngestConfig, ingest_flow
    from tasks.audio import AudioConfig
    from tasks.features import FeatureConfig

    try:
        config = IngestConfig(
            data=data,
            workdir=workdir,
            workers=workers,
            audio=AudioConfig(min_duration_s=min_duration),
            features=FeatureConfig(n_mels=n_mels),
        )
        flow = ingest_flow
        if task_runner != "threads" or dask_address:
            from tasks.runners import task_runner as build_task_runner

            flow = ingest_flow.with_options(
                task_runner=build_task_runner(task_runner, workers=workers, address=dask_address)
            )
        result = _run(flow, config)
    except _user_errors() as error:
        _fail(error)
    typer.echo(
        f"{result.n_ok} tracks ok, {result.n_quarantined} quarantined "
        f"(see {result.workspace.quarantine_report}); tables in {result.workspace.root}"
    )


@app.command()
def run(
    data: Annotated[
        Path | None, typer.Argument(help="Your collection; omit for the built-in demo set.")
    ] = None,
    workdir: WorkdirOption = Path("workdir"),
    profile: Annotated[str, typer.Option(help="quick (minutes on a CPU) or full.")] = "quick",
    demo_tracks: Annotated[int, typer.Option(help="Size of the generated demo set.")] = 120,
) -> None:
    """The full pipeline: ingest, lyrics, every model, evaluation, report and champion."""
    from flows.pipeline import PipelineConfig, pipeline_flow

    try:
        config = PipelineConfig(
            data=data, workdir=workdir, profile=profile, demo_tracks=demo_tracks
        )
        _run(pipeline_flow, config)
    except _user_errors() as error:
        _fail(error)


@app.command()
def evaluate(
    data: Annotated[
        Path | None,
        typer.Argument(help="The collection (needed only if the work dir was never ingested)."),
    ] = None,
    workdir: WorkdirOption = Path("workdir"),
    seeds: Annotated[int, typer.Option(help="Clustering seeds per configuration.")] = 3,
    n_clusters: Annotated[
        int | None, typer.Option(help="Clusters (default: number of genres).")
    ] = None,
) -> None:
    """Cluster every representation in the work dir, write the comparison report and plots."""
    from flows.evaluate import EvaluateConfig, evaluate_flow

    try:
        result = _run(
            evaluate_flow,
            EvaluateConfig(data=data, workdir=workdir, seeds=seeds, n_clusters=n_clusters),
        )
    except _user_errors() as error:
        _fail(error)
    typer.echo(result.summary)


@app.command()
def lyrics(
    data: Annotated[Path, typer.Argument(help="A GTZAN-layout folder or a manifest.")],
    lyrics: Annotated[
        Path | None,
        typer.Option(
            help="Lyrics folder (.txt/.lrc) or table (.csv/.parquet); default DATA/lyrics/."
        ),
    ] = None,
    workdir: WorkdirOption = Path("workdir"),
    model: Annotated[
        str, typer.Option(help="XLM-RoBERTa name or local path.")
    ] = "xlm-roberta-base",
) -> None:
    """Pair lyrics with tracks, tag languages and scripts, romanize and embed them."""
    from flows.lyrics import LyricsConfig, lyrics_flow
    from tasks.lyrics.embedding import EncoderSettings

    try:
        result = _run(
            lyrics_flow,
            LyricsConfig(
                data=data, workdir=workdir, lyrics=lyrics, encoder=EncoderSettings(model=model)
            ),
        )
    except _user_errors() as error:
        _fail(error)
    typer.echo(
        f"{result.n_with_lyrics}/{result.n_tracks} tracks with lyrics, "
        f"{result.n_unpaired} lyrics files unpaired ({result.unpaired_lyrics}); "
        f"encoder {result.encoder_id}; table {result.lyrics_table}"
    )


def _parse_overrides(pairs: list[str]) -> dict[str, object]:
    """`key=value` pairs; values are read as JSON when they parse (numbers, lists, true/false)."""
    import json

    overrides: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            _fail(f"--set takes key=value, got {pair!r}")
        try:
            overrides[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key.strip()] = value
    return overrides


@app.command()
def train(
    model: Annotated[
        str, typer.Argument(help="ae, mlp_vae, conv_vae, beta_vae, cvae, vade, multimodal_vae")
    ],
    data: Annotated[Path, typer.Argument(help="A GTZAN-layout folder or a manifest.")],
    workdir: WorkdirOption = Path("workdir"),
    epochs: Annotated[int, typer.Option(help="Maximum epochs.")] = 40,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    condition: Annotated[str, typer.Option(help="CVAE condition: language or genre.")] = "language",
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Model or trainer setting "
            "key=value (repeatable), e.g. --set beta=4 "
            "--set learning_rate=0.0005.",
        ),
    ] = None,
) -> None:
    """Train one model of the zoo (runs the cached ingest, and lyrics when needed, first)."""
    from flows.train import TrainFlowConfig, train_flow
    from tasks.training import TrainConfig

    overrides = _parse_overrides(set_ or [])
    train_keys = set(TrainConfig.model_fields)
    trainer = {k: overrides.pop(k) for k in list(overrides) if k in train_keys}
    try:
        config = TrainFlowConfig(
            model=model,
            data=data,
            workdir=workdir,
            overrides=overrides,
            condition=condition,
            train=TrainConfig(**({"epochs": epochs, "seed": seed} | trainer)),
        )
        output = _run(train_flow, config)
    except _user_errors() as error:
        _fail(error)
    typer.echo(f"MLflow run {output.run_id}; latents in {output.latents}")
    for name, value in sorted(output.final_metrics.items()):
        typer.echo(f"  {name:28s} {value:.4g}")


@app.command()
def tune(
    model: Annotated[
        str, typer.Argument(help="ae, mlp_vae, conv_vae, beta_vae, cvae, vade, multimodal_vae")
    ],
    data: Annotated[Path, typer.Argument(help="A GTZAN-layout folder or a manifest.")],
    workdir: WorkdirOption = Path("workdir"),
    trials: Annotated[
        int,
        typer.Option(
            help="Run until the study holds this many finished (complete + pruned) trials; "
            "re-running resumes and tops up."
        ),
    ] = 20,
    objective: Annotated[
        str,
        typer.Option(
            help="silhouette (unsupervised), or nmi / ari against genre labels (marks the study "
            "uses_labels=true)."
        ),
    ] = "silhouette",
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Start no new trial after S seconds.")
    ] = None,
    storage: Annotated[
        str | None, typer.Option(help="Optuna storage URL; default sqlite:///WORKDIR/optuna.db.")
    ] = None,
    study_name: Annotated[
        str | None, typer.Option(help="Default: MODEL-<data fingerprint>.")
    ] = None,
    epochs: Annotated[int, typer.Option(help="Maximum epochs per trial.")] = 15,
    jobs: Annotated[int, typer.Option(help="Trials in parallel (threads).")] = 1,
    pruner: Annotated[str, typer.Option(help="median, hyperband or none.")] = "median",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Search hyperparameters with Optuna (resumable), retrain and evaluate the best."""
    from flows.tune import TuneConfig, tune_flow
    from tasks.tuning import TuningError

    try:
        result = _run(
            tune_flow,
            TuneConfig(
                model=model,
                data=data,
                workdir=workdir,
                trials=trials,
                objective=objective,
                timeout_s=timeout,
                storage=storage,
                study_name=study_name,
                epochs=epochs,
                jobs=jobs,
                pruner=pruner,
                seed=seed,
            ),
        )
    except (*_user_errors(), TuningError) as error:
        _fail(error)
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


@app.command()
def predict(
    data: Annotated[
        Path, typer.Argument(help="An audio file, a folder of audio or a manifest (.csv).")
    ],
    workdir: WorkdirOption = Path("workdir"),
    model: Annotated[
        str, typer.Option(help="NAME@ALIAS, or a models:/ or runs:/ MLflow URI.")
    ] = "vaemusic@champion",
    out: Annotated[
        Path | None,
        typer.Option(help="Predictions CSV (default: WORKDIR/predict/predictions.csv)."),
    ] = None,
    lyrics: Annotated[
        Path | None,
        typer.Option(help="Lyrics of the new tracks: folder (.txt/.lrc), table or one file."),
    ] = None,
    lyrics_model: Annotated[
        str, typer.Option(help="Lyrics encoder (must be the one the champion was trained with).")
    ] = "xlm-roberta-base",
    nearest: Annotated[int, typer.Option(help="Nearest collection tracks listed per track.")] = 5,
) -> None:
    """Assign new tracks to the champion's clusters and list their nearest collection tracks."""
    from flows.predict import PredictConfig, predict_flow
    from tasks.lyrics.embedding import EncoderSettings
    from tasks.prediction import model_version_of, resolve_model_uri

    try:
        # A missing model is the commonest mistake: say so before a flow starts and fails.
        model_version_of(resolve_model_uri(model))
        result = _run(
            predict_flow,
            PredictConfig(
                data=data,
                workdir=workdir,
                model=model,
                out=out,
                lyrics=lyrics,
                lyrics_encoder=EncoderSettings(model=lyrics_model),
                n_nearest=nearest,
            ),
        )
    except _user_errors() as error:
        _fail(error)
    typer.echo(result.table)
    typer.echo(
        f"{result.n_assigned}/{result.n_tracks} tracks assigned, {result.n_quarantined} "
        f"quarantined; model {result.model_uri} (version {result.model_version or '-'}); "
        f"predictions in {result.predictions}"
    )


@app.command()
def serve(
    host: Annotated[
        str, typer.Option(help="Interface to listen on; the default keeps it on this machine.")
    ] = "127.0.0.1",
    prefect_port: Annotated[int, typer.Option(help="Prefect server and dashboard port.")] = 4200,
    mlflow_port: Annotated[int, typer.Option(help="MLflow UI port.")] = 5000,
    state_dir: Annotated[
        Path | None,
        typer.Option(help="Prefect's home and the service logs (default: .state in the repo)."),
    ] = None,
) -> None:
    """Run the Prefect server, a worker, the deployments and the MLflow UI until Ctrl-C."""
    from flows.serve import serve as run_service

    raise typer.Exit(code=run_service(host, prefect_port, mlflow_port, state_dir))


def main() -> None:
    apply_runtime_defaults()
    exit_status = _exit_without_teardown()  # registered first, so its hook runs last
    from flows import prefect_api

    prefect_api.prepare(sys.argv[1:])
    try:
        app()
    except KeyboardInterrupt:
        exit_status.code = 130
        sys.exit(130)
    except SystemExit as stop:  # click ends every command, even a successful one, with this
        exit_status.code = _exit_code(stop)
        raise


class _ExitStatus:
    code = 1


def _exit_without_teardown() -> _ExitStatus:
    """Exit once every other exit hook has run, skipping the interpreter's final teardown.

    With torch, Prefect, MLflow and SQLAlchemy loaded, that teardown (freeing every module) takes
    1.5-2.5 s on a 2-core machine and does nothing a user needs: Prefect's log and event workers
    have drained, the temporary server has stopped and logs are flushed by the hooks registered
    later, which run earlier (atexit runs hooks in reverse order of registration).
    """
    status = _ExitStatus()

    def leave() -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status.code)

    atexit.register(leave)
    return status


def _exit_code(stop: SystemExit) -> int:
    if stop.code is None:
        return 0
    return stop.code if isinstance(stop.code, int) else 1


if __name__ == "__main__":
    main()
