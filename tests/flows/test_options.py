"""Command-line options come from the flow configs: one declaration, one default, one check."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest
import soundfile as sf
import typer
from pydantic import BaseModel, ConfigDict, Field
from pydantic.fields import FieldInfo
from typer.testing import CliRunner

from flows.options import InvalidSettings, config_command, config_from_options, config_options

runner = CliRunner()


class Audio(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    sample_rate: int = Field(22050, ge=8000, description="Analysis rate (Hz).")
    min_duration_s: float = Field(1.0, gt=0, description="Shortest usable clip (s).")


class Features(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    sample_rate: int = Field(22050, description="Rate the features assume (Hz).")
    n_mels: int = Field(128, ge=16, le=256, description="Mel bands.")


class Example(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    data: Path = Field(description="The collection.")
    workdir: Path = Field(Path("workdir"), description="Work directory.")
    algorithm: Literal["kmeans", "gmm"] = Field("kmeans", description="Clustering.")
    seeds: int = Field(3, ge=1, description="Seeds per configuration.")
    maps: list[Literal["umap", "tsne"]] = Field(
        default_factory=lambda: ["umap"], description="Maps drawn."
    )
    promote: bool = Field(True, description="Register the champion.")
    n_clusters: int | None = Field(None, ge=2, description="Empty: number of genres.")
    overrides: dict[str, Any] = Field(default_factory=dict, description="Dashboard only.")
    audio: Audio = Field(default_factory=Audio)
    features: Features = Field(default_factory=lambda: Features(n_mels=64))
    parent_run_id: str | None = Field(None, description="Set by the pipeline.")


def _app(received: list[Example]) -> typer.Typer:
    app = typer.Typer()

    def run(config: Example) -> None:
        """Do the example."""
        received.append(config)

    app.command("example")(config_command(Example, run, arguments=("data",)))

    @app.command("other")
    def other() -> None:  # a second command keeps typer in sub-command mode
        pass

    return app


def test_defaults_come_from_the_config_and_build_the_same_config(tmp_path: Path) -> None:
    received: list[Example] = []
    result = runner.invoke(_app(received), ["example", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert received == [Example(data=tmp_path)]
    assert received[0].features.n_mels == 64  # the default factory's value, not the class's


def test_nested_settings_are_options_and_shared_names_are_prefixed(tmp_path: Path) -> None:
    received: list[Example] = []
    args = ["example", str(tmp_path), "--n-mels", "96", "--min-duration-s", "2.5"]
    args += ["--audio-sample-rate", "16000", "--features-sample-rate", "16000"]
    args += ["--maps", "umap", "--maps", "tsne", "--no-promote", "--algorithm", "gmm", "-w", "w2"]
    result = runner.invoke(_app(received), args)
    assert result.exit_code == 0, result.output
    config = received[0]
    assert config.features.n_mels == 96
    assert config.audio.min_duration_s == 2.5
    assert config.audio.sample_rate == config.features.sample_rate == 16000
    assert config.maps == ["umap", "tsne"]
    assert config.promote is False
    assert config.algorithm == "gmm"
    assert config.workdir == Path("w2")


def test_help_shows_each_description_and_hides_what_the_command_line_cannot_say() -> None:
    result = runner.invoke(_app([]), ["example", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for text in ("Mel bands.", "Shortest usable clip", "Seeds per configuration", "--n-clusters"):
        assert text in result.output
    assert "--overrides" not in result.output
    assert "--parent-run-id" not in result.output
    assert "<kmeans|gmm>" in result.output
    assert "<umap|tsne>" in result.output


def test_the_config_validates_what_was_typed(tmp_path: Path) -> None:
    result = runner.invoke(_app([]), ["example", str(tmp_path), "--n-mels", "4"])
    assert isinstance(result.exception, InvalidSettings)
    assert "n_mels" in str(result.exception)


def test_a_choice_outside_the_literal_is_refused_by_the_config(tmp_path: Path) -> None:
    result = runner.invoke(_app([]), ["example", str(tmp_path), "--algorithm", "dbscan"])
    assert isinstance(result.exception, InvalidSettings)
    assert "algorithm" in str(result.exception)


def test_every_expressible_field_has_exactly_one_option() -> None:
    names = [option.path for option in config_options(Example, arguments=("data",))]
    assert len(names) == len(set(names))
    assert ("overrides",) not in names
    assert ("parent_run_id",) not in names
    assert ("features", "n_mels") in names
    assert ("data",) in names


def test_an_argument_the_command_line_cannot_express_is_a_programming_error() -> None:
    with pytest.raises(TypeError, match="overrides"):
        config_options(Example, arguments=("overrides",))


def _real_commands() -> dict[str, tuple[type[BaseModel], tuple[str, ...], dict[str, Any]]]:
    """command -> (its flow's config, positional arguments, the required nested values)."""
    from flows.evaluate import EvaluateConfig
    from flows.ingest import IngestConfig
    from flows.lyrics import LyricsConfig
    from flows.pipeline import PipelineConfig
    from flows.predict import PredictConfig
    from flows.train import TrainFlowConfig
    from flows.tune import TuneConfig

    return {
        "ingest": (IngestConfig, ("data",), {}),
        "lyrics": (LyricsConfig, ("data",), {}),
        "train": (TrainFlowConfig, ("spec.model", "data"), {"spec": {"model": "mlp_vae"}}),
        "tune": (TuneConfig, ("search.model", "data"), {"search": {"model": "mlp_vae"}}),
        "evaluate": (EvaluateConfig, ("data",), {}),
        "predict": (PredictConfig, ("data",), {}),
        "run": (PipelineConfig, ("data",), {}),
    }


def _field(config: type[BaseModel], path: tuple[str, ...]) -> FieldInfo:
    for name in path[:-1]:
        config = config.model_fields[name].annotation
    return config.model_fields[path[-1]]


@pytest.mark.parametrize("command", list(_real_commands()))
def test_a_flow_command_and_its_config_agree_on_every_setting(command: str, tmp_path: Path) -> None:
    from flows.cli import app

    config, arguments, required = _real_commands()[command]
    sf.write(tmp_path / "song.wav", np.zeros(22050, dtype=np.float32), 22050)
    options = config_options(config, arguments=arguments)
    typed = {"data": tmp_path, "spec__model": "mlp_vae", "search__model": "mlp_vae"}
    values = {o.parameter.name: typed.get(o.parameter.name, o.parameter.default) for o in options}

    # Untouched options give the config's own defaults...
    assert config_from_options(config, options, values) == config.model_validate(
        {"data": tmp_path, **required}
    )
    # ...and --help shows each setting with the config's description.
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    shown = " ".join(result.output.split())
    for option in options:
        description = _field(config, option.path).description
        assert description, f"{command}: {'.'.join(option.path)} has no description"
        assert description[:24] in shown, f"{command}: {'.'.join(option.path)}"
