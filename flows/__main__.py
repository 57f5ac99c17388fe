"""Command line: `python -m flows <command> --help`. Each command parses and calls one flow."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Unsupervised clustering of music with variational autoencoders (audio + lyrics).",
    pretty_exceptions_enable=False,
)

WorkdirOption = Annotated[Path, typer.Option("--workdir", "-w", help="Work directory.")]


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def _user_errors():
    """Errors a user can cause, shown as one line instead of a traceback."""
    from pydantic import ValidationError

    from tasks.discovery import DataSourceError

    return (DataSourceError, ValidationError, FileNotFoundError, ValueError)


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
        result = ingest_flow(config)
    except _user_errors() as error:
        _fail(str(error))
    typer.echo(
        f"{result.n_ok} tracks ok, {result.n_quarantined} quarantined "
        f"(see {result.workspace.quarantine_report}); tables in {result.workspace.root}"
    )


def main() -> None:
    # The temporary Prefect server migrates its SQLite database on first start; on a busy 2-core
    # machine that takes longer than Prefect's default 20 s.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    if home := os.environ.get("PREFECT_HOME"):
        Path(home).expanduser().mkdir(parents=True, exist_ok=True)  # Prefect makes only the leaf
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
