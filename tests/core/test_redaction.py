"""Credentials in URLs never reach a message or a log, the Prefect log database included."""

from __future__ import annotations

import logging
import os
import socket
import uuid

import pytest

from tasks.core.redaction import install_log_redaction, redact_credentials
from tasks.tuning.storage_url import display_url


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("postgresql://u:secret@db:5432/mlflow", "postgresql://u:***@db:5432/mlflow"),
        (
            "see http://u:secret@host/x and https://a:b@c",
            "see http://u:***@host/x and https://a:***@c",
        ),
        ("postgresql+psycopg://u:p%40ss@h/db", "postgresql+psycopg://u:***@h/db"),
        ("mysql://u:p@ss@h/db", "mysql://u:***@h/db"),  # an unescaped @ in the password
        ("host=db user=u password=secret", "host=db user=u password=***"),
        ("http://h/api?token=abc&x=1", "http://h/api?token=***&x=1"),
        # Nothing secret: unchanged.
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("sqlite:////tmp/a@b/mlflow.db", "sqlite:////tmp/a@b/mlflow.db"),
        ("mail me at a@b.c", "mail me at a@b.c"),
    ],
)
def test_passwords_in_urls_and_pairs_are_masked(text: str, shown: str) -> None:
    assert redact_credentials(text) == shown


def test_the_optuna_storage_is_shown_with_the_same_redaction_even_when_unparsable() -> None:
    assert display_url("postgresql://u:secret@h/db") == "postgresql://u:***@h/db"
    assert display_url("not a url://u:secret@") == "not a url://u:***@"


def test_log_records_of_any_logger_are_masked_with_their_tracebacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    install_log_redaction()
    install_log_redaction()  # idempotent
    # A child logger: a filter on the root or `prefect` logger would not see its records.
    logger = logging.getLogger("some.library.deep")
    with caplog.at_level(logging.INFO):
        logger.info("store %s", "postgresql://u:secret@h/db")
        try:
            raise ConnectionError("cannot reach http://u:secret@h:5000/api")
        except ConnectionError:
            logger.exception("failed")
    text = caplog.text
    assert "secret" not in text
    assert "postgresql://u:***@h/db" in text
    assert "http://u:***@h:5000/api" in text


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_flow_with_a_password_in_the_tracking_uri_leaks_it_nowhere(
    prefect_api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a tracking server URI with a password, which cannot be reached ...
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    from registry.tracking import client, tracking_uri

    uri = f"http://vaemusic:hunter2-{uuid.uuid4().hex[:6]}@127.0.0.1:{_closed_port()}"
    secret = uri.split(":")[2].split("@")[0]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    for moved in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):  # restored after
        monkeypatch.setenv(moved, "")
        monkeypatch.delenv(moved)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")

    @flow(name="redaction-probe", log_prints=True)
    def probe() -> None:
        print(f"Browse runs: mlflow ui --backend-store-uri {tracking_uri()}")
        client().search_experiments()  # fails, naming the URL in its error

    # ... when a flow prints it and fails on it ...
    state = probe(return_state=True)
    assert state.is_failed()
    flow_run_id = state.state_details.flow_run_id

    # ... the logs stored by Prefect and the console show it masked, never the password.
    APILogHandler().flush()  # logs are sent in batches
    with get_client(sync_client=True) as prefect:
        logs = prefect.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
        )
    stored = "\n".join(log.message for log in logs)
    # The hint and the traceback show the server without the credentials.
    assert "Browse runs: mlflow ui --backend-store-uri http://127.0.0.1:" in stored
    assert "API request to http://127.0.0.1:" in stored
    assert secret not in stored
    assert secret not in caplog.text
    assert secret not in (state.message or "")  # the failed state, shown in the dashboard
    # The password went to MLflow by the variable it reads for it (which child processes inherit
    # with the URI that MLflow exports).
    assert os.environ["MLFLOW_TRACKING_PASSWORD"] == secret
    assert secret not in os.environ["MLFLOW_TRACKING_URI"]
