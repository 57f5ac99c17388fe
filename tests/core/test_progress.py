"""Where progress lines go (the run's log inside Prefect), how often, and when a bar is drawn."""

from __future__ import annotations

import io
import logging

import pytest
from prefect import flow, task

from tasks.core.progress import CountProgress, interactive_terminal, run_logger_or

FALLBACK = logging.getLogger("tests.progress.fallback")


def test_outside_a_run_lines_go_to_the_fallback_logger() -> None:
    assert run_logger_or(FALLBACK) is FALLBACK


def test_inside_a_flow_or_task_run_lines_go_to_the_runs_log(prefect_api) -> None:
    @task
    def in_task() -> str:
        return run_logger_or(FALLBACK).name

    @flow(name="progress-logger-test")
    def in_flow() -> tuple[str, str]:
        return run_logger_or(FALLBACK).name, in_task()

    assert in_flow() == ("prefect.flow_runs", "prefect.task_runs")


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("stream", "environ", "expected"),
    [
        (FakeTerminal(), {}, True),
        (FakeTerminal(), {"CI": "true"}, False),  # CI logs: a bar would be one line per redraw
        (FakeTerminal(), {"CI": "false"}, True),
        (io.StringIO(), {}, False),  # a file, a pipe, a worker's log
    ],
)
def test_a_bar_is_drawn_by_default_only_at_an_interactive_terminal(
    stream: io.StringIO, environ: dict[str, str], expected: bool
) -> None:
    assert interactive_terminal(stream, environ) is expected


def test_count_progress_logs_about_ten_lines_and_the_total(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("tests.count")
    caplog.set_level(logging.INFO, logger="tests.count")
    progress = CountProgress(logger, 95, verb="embedded", noun="lyrics")
    for _ in range(95):
        progress.advance()
    messages = [r.getMessage() for r in caplog.records if r.name == "tests.count"]
    assert messages[0] == "embedded 10/95 lyrics"
    assert messages[-1] == "embedded 95/95 lyrics"
    assert len(messages) == 10
