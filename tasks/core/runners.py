"""Task runners: where a flow's mapped tasks run (threads here, or a Dask cluster to scale out).

Flows pick one with `flow.with_options(task_runner=task_runner(...))`. Tasks receive and return
paths, ids and small pydantic models, so both runners give the same results; only the place
the work happens changes.

With the Dask runner, each task runs in a Dask worker process. The workers must be able to
import this project (`tasks`, `models`, `registry`): a local cluster runs the flow's Python,
where `make install` installed the project; remote workers need it installed too
(`pip install -e .` in a checkout), and the work directory and Prefect's result storage on a
shared filesystem.
"""

from __future__ import annotations

import os
from typing import Literal

from prefect import Flow
from prefect.context import FlowRunContext
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner
from pydantic import BaseModel, ConfigDict, Field

from tasks.core.errors import UserInputError

TaskRunnerName = Literal["threads", "dask"]
TASK_RUNNER_NAMES: tuple[TaskRunnerName, ...] = ("threads", "dask")


class TaskPlacement(BaseModel):
    """Where a flow's mapped tasks run (a choice of the command line; a deployment's work pool
    decides it for dashboard runs)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task_runner: TaskRunnerName = Field("threads", description="Where tasks run: threads or dask.")
    dask_address: str | None = Field(
        None, description="Dask scheduler, e.g. tcp://host:8786 (default: a local cluster)."
    )

    @property
    def is_default(self) -> bool:
        return self.task_runner == "threads" and self.dask_address is None


def task_runner(
    name: TaskRunnerName = "threads",
    *,
    workers: int = 0,
    address: str | None = None,
) -> TaskRunner:
    """Build the task runner called `name`.

    Args:
        name: "threads" runs tasks in a thread pool inside the flow's process (the default; no
            start-up cost, shares the process's memory). "dask" runs them on a Dask cluster:
            a new `distributed.LocalCluster` of worker processes on this machine, or the running
            cluster whose scheduler is at `address`.
        workers: Threads ("threads") or worker processes of the local cluster ("dask"), each
            with one thread; 0 means one per CPU core. Ignored when `address` is given (the
            remote cluster has the workers it has).
        address: A Dask scheduler address such as "tcp://10.0.0.5:8786"; only with "dask".

    Returns:
        A Prefect task runner, not yet started (the flow starts and stops it).

    Raises:
        ValueError: for an unknown `name`, negative `workers`, or `address` with "threads".
    """
    if name not in TASK_RUNNER_NAMES:
        raise UserInputError(f"unknown task runner {name!r}; choose one of {TASK_RUNNER_NAMES}")
    if workers < 0:
        raise UserInputError(f"workers must be >= 0 (0 = one per CPU core), got {workers}")
    count = workers or os.cpu_count() or 1
    if name == "threads":
        if address is not None:
            raise UserInputError("a scheduler address needs the 'dask' task runner, not 'threads'")
        return ThreadPoolTaskRunner(max_workers=count)

    # Imported here: distributed is heavy and only needed when asked for.
    from prefect_dask import DaskTaskRunner

    if address is not None:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": count,
            # Processes, not threads: decoding and feature extraction hold the GIL in parts,
            # and a crashed worker does not take the flow down with it.
            "processes": True,
            "threads_per_worker": 1,
            # Nothing listens beyond loopback: the scheduler binds to 127.0.0.1 and the
            # dashboard is off (it would bind to every interface by default).
            "host": "127.0.0.1",
            "dashboard_address": None,
            # Mutual TLS with credentials made for this cluster alone: only this process and
            # its workers can reach the scheduler, which would otherwise run any code sent to it
            # by anyone on the machine (Dask has no passwords).
            "security": True,
        }
    )


def on_callers_cluster(flow: Flow) -> Flow:
    """`flow` with its tasks on the calling flow's Dask cluster when the caller's tasks run on
    one, else `flow` unchanged. Why: a subflow uses the task runner of its own decorator, so the
    pipeline's ingest and evaluation would not run on the cluster its command line asked for.
    Starts the caller's cluster if the caller has not submitted anything yet."""
    context = FlowRunContext.get()
    runner = context.task_runner if context is not None else None
    if runner is None or type(runner).__name__ != "DaskTaskRunner":
        return flow
    from prefect_dask import DaskTaskRunner

    client = runner.client  # type: ignore[attr-defined]
    # The caller's credentials too: a local cluster accepts only them (`task_runner`).
    shared = DaskTaskRunner(
        address=client.scheduler.address, client_kwargs={"security": client.security}
    )
    return flow.with_options(task_runner=shared)


def runs_on_threads() -> bool:
    """Whether the running flow's tasks run on threads of this process (not on a cluster)."""
    context = FlowRunContext.get()
    return context is None or isinstance(context.task_runner, ThreadPoolTaskRunner)
