"""Apply the deployments of `prefect.yaml` (`prefect deploy`), keeping the good ones if some fail.

A flow that does not import yet, or a bad parameter in one deployment, must not take the whole
service down: the deployments that can be applied are, and the others are reported by name with
the reason Prefect gave.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from flows.runtime.supervisor import Supervisor

DEPLOY_TIMEOUT_S = 600
# Wide enough that Prefect's messages are not wrapped: the fallback below reads its success lines.
_CONSOLE_COLUMNS = "240"


@dataclass(frozen=True)
class DeployReport:
    """Deployment names applied, in file order, and the reason for each that was not."""

    applied: list[str]
    failed: dict[str, str]


def deployment_names(prefect_file: Path) -> list[str]:
    """Names of the deployments listed in a prefect.yaml, in file order."""
    spec = yaml.safe_load(prefect_file.read_text()) or {}
    return [d["name"] for d in spec.get("deployments") or [] if d.get("name")]


def apply_deployments(
    supervisor: Supervisor,
    env: Mapping[str, str],
    repo_root: Path,
    *,
    prefect_file: Path | None = None,
    timeout_s: float = DEPLOY_TIMEOUT_S,
) -> DeployReport:
    """Apply every deployment of `prefect_file` (default `<repo_root>/prefect.yaml`).

    First all at once (`prefect deploy --all`, one process); if that fails, each deployment not
    applied yet alone, so that the good ones still are.

    Raises:
        ServeError: one `prefect deploy` took longer than `timeout_s`.
    """
    prefect_file = prefect_file or repo_root / "prefect.yaml"
    names = deployment_names(prefect_file)
    env = {**env, "COLUMNS": _CONSOLE_COLUMNS}
    deploy = [sys.executable, "-m", "prefect", "--no-prompt", "deploy"]
    where = ["--prefect-file", str(prefect_file)]
    code, output = supervisor.run(
        "deploy", [*deploy, "--all", *where], env=env, cwd=repo_root, timeout_s=timeout_s
    )
    if code == 0:
        return DeployReport(applied=names, failed={})
    # `--all` stops at the first failure: keep what it applied, blame the next one, and apply
    # the rest one by one.
    applied = [name for name in names if f"/{name}' successfully" in output]
    failed: dict[str, str] = {}
    remaining = [name for name in names if name not in applied]
    if remaining and len(applied) == names.index(remaining[0]):
        failed[remaining.pop(0)] = failure_reason(output) or f"exit code {code}"
    for name in remaining:
        code, output = supervisor.run(
            f"deploy-{name}",
            [*deploy, "--name", name, *where],
            env=env,
            cwd=repo_root,
            timeout_s=timeout_s,
        )
        if code == 0:
            applied.append(name)
        else:
            failed[name] = failure_reason(output) or f"exit code {code}"
    return DeployReport(applied=applied, failed=failed)


def failure_reason(output: str) -> str:
    """The last exception line of a Prefect CLI traceback (`module.Error: message`).

    Else the last non-empty line; at most 500 characters; empty for empty output.
    """
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in reversed(lines):
        head = line.split(":", 1)[0]
        if head.endswith(("Error", "Exception")) and " " not in head:
            return line[:500]
    return lines[-1][:500] if lines else ""
