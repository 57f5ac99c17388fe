"""The deployments of prefect.yaml, and how `serve` applies them when some fail."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect import Flow

from flows.runtime.deployments import apply_deployments, deployment_names, failure_reason
from tasks.core.workspace import DEFAULT_WORKDIR, Workspace
from tasks.demo import generate_demo_dataset

DEMO_DATA = DEFAULT_WORKDIR / "demo-data"


def test_prefect_yaml_lists_every_flow_on_the_local_pool(repo_root: Path) -> None:
    spec = yaml.safe_load((repo_root / "prefect.yaml").read_text())
    entrypoints = {d["entrypoint"] for d in spec["deployments"]}
    assert entrypoints == {
        "flows/ingest.py:ingest_flow",
        "flows/lyrics.py:lyrics_flow",
        "flows/train.py:train_flow",
        "flows/evaluate.py:evaluate_flow",
        "flows/tune.py:tune_flow",
        "flows/pipeline.py:pipeline_flow",
    }
    for entrypoint in entrypoints:  # the paths are relative to the repo: they must exist
        assert (repo_root / entrypoint.split(":")[0]).is_file(), entrypoint
    names = deployment_names(repo_root / "prefect.yaml")
    assert len(names) == len(set(names)) == 6  # unique: each can be applied by name
    for deployment in spec["deployments"]:
        assert deployment["work_pool"]["name"] == "local"
        assert set(deployment["parameters"]) == {"config"}
    schedules = {d["name"]: d.get("schedules") for d in spec["deployments"]}
    assert schedules["nightly"][0]["cron"] == "0 2 * * *"
    assert schedules["weekly"][0]["cron"] == "0 3 * * 0"


def deployments(repo_root: Path) -> list[dict[str, Any]]:
    return yaml.safe_load((repo_root / "prefect.yaml").read_text())["deployments"]


def flow_of(entrypoint: str) -> Flow:
    """The flow object of `path/to/module.py:function`, imported as the package module."""
    path, name = entrypoint.split(":")
    return getattr(importlib.import_module(path.removesuffix(".py").replace("/", ".")), name)


def test_the_default_data_is_the_demo_set_that_the_nightly_pipeline_writes(
    repo_root: Path, tmp_path: Path
) -> None:
    # the pipeline writes its demo set where the workspace says, relative to the repo root
    assert Workspace.open(tmp_path / DEFAULT_WORKDIR).demo_data == tmp_path / DEMO_DATA
    for deployment in deployments(repo_root):
        config = deployment["parameters"]["config"]
        assert config["workdir"] == str(DEFAULT_WORKDIR)
        if deployment["name"] == "nightly":
            assert config["data"] is None  # generates the demo set
            continue
        # every other deployment reads the demo set, and says so and what to give instead
        assert config["data"] == str(DEMO_DATA), deployment["name"]
        assert "nightly" in deployment["description"], deployment["name"]
        assert str(DEMO_DATA) in deployment["description"], deployment["name"]


def test_every_deployment_runs_with_its_default_parameters(
    repo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given the repo root as a worker sees it after the nightly pipeline made the demo set
    monkeypatch.chdir(tmp_path)
    generate_demo_dataset(DEMO_DATA, tracks=2, duration_s=0.5)
    for deployment in deployments(repo_root):
        flow = flow_of(deployment["entrypoint"])
        # when Prefect validates the parameters of a run started with the defaults (what a run
        # from the dashboard or a schedule does before the flow starts), then they are accepted
        validated = flow.validate_parameters(deployment["parameters"])
        assert set(validated) == {"config"}, deployment["name"]


def test_without_the_demo_set_the_error_names_the_missing_path(
    repo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.exceptions import ParameterTypeError

    monkeypatch.chdir(tmp_path)  # nothing generated yet
    ingest = next(d for d in deployments(repo_root) if d["name"] == "on-demand")
    with pytest.raises(ParameterTypeError, match=f"data not found: {DEMO_DATA}"):
        flow_of(ingest["entrypoint"]).validate_parameters(ingest["parameters"])


@pytest.mark.prefect_server
def test_pinned_server_accepts_the_clients_null_filter_fields(prefect_api) -> None:
    """Prefect 3.8's client sends `"limit": null`; FastAPI 0.151+ answers 422 (regression pin)."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        assert isinstance(client.read_flow_runs(), list)
        assert isinstance(client.read_deployments(), list)


class ScriptedPrefect:
    """Stands in for the supervisor: `prefect deploy` fails for the deployments named `broken`."""

    def __init__(self, broken: set[str]) -> None:
        self.broken = broken
        self.calls: list[str] = []

    def run(self, name: str, command: list[str], **_: object) -> tuple[int, str]:
        self.calls.append(name)
        if "--all" in command:  # Prefect applies in file order and stops at the first failure
            names = deployment_names(Path(command[command.index("--prefect-file") + 1]))
            output = []
            for deployment in names:
                if deployment in self.broken:
                    output.append(f"ValueError: cannot load {deployment}")
                    return 1, "\n".join(output)
                output.append(f"Deployment 'flow/{deployment}' successfully created")
            return 0, "\n".join(output)
        deployment = command[command.index("--name") + 1]
        if deployment in self.broken:
            return 1, f"Traceback ...\nImportError: no module for {deployment}\n"
        return 0, f"Deployment 'flow/{deployment}' successfully created"


def test_one_broken_deployment_does_not_keep_the_others_from_being_applied(
    tmp_path: Path,
) -> None:
    prefect_file = tmp_path / "prefect.yaml"
    names = ["a", "b", "c", "d"]
    prefect_file.write_text(yaml.safe_dump({"deployments": [{"name": n} for n in names]}))
    prefect = ScriptedPrefect(broken={"b", "d"})

    report = apply_deployments(prefect, {}, tmp_path, prefect_file=prefect_file)

    assert report.applied == ["a", "c"]
    assert report.failed == {
        "b": "ValueError: cannot load b",  # the reason `--all` gave when it stopped at b
        "d": "ImportError: no module for d",
    }
    assert prefect.calls == ["deploy", "deploy-c", "deploy-d"]  # a is not applied twice


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        (
            "Traceback\n  File x\nprefect.exceptions.ScriptError: bad entrypoint\nAborted.\n",
            "prefect.exceptions.ScriptError: bad entrypoint",
        ),
        ("some words\nlast line\n", "last line"),
        ("", ""),
    ],
)
def test_the_reason_for_a_failed_deploy_is_its_exception_line(output: str, reason: str) -> None:
    assert failure_reason(output) == reason
