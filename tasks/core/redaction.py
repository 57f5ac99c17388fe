"""Credentials never shown: the one redaction of passwords and tokens in text and in log records.

A tracking URI or database URL may carry a password (`postgresql://u:secret@host/db`,
`http://u:secret@host`, `...?password=secret`). Every message, log line, MLflow tag and Prefect
artifact the project writes shows such a URL as `postgresql://u:***@host/db` instead.

Log records are redacted where they are made (a log record factory), not by a filter on some
loggers: a logger's filters only see records logged to that logger itself, not the ones that
propagate to it from its children, so a filter on the root or `prefect` logger would miss most.
Prefect's handler that sends flow and task run logs to its database formats the same record, so
those are redacted too. Imports nothing heavy: the command line installs it before Prefect loads.
"""

from __future__ import annotations

import logging
import re
from typing import Any

MASK = "***"

# The userinfo of a URL's authority: everything between `scheme://` and the last `@` before the
# path. Up to the last `@`, so a password with an unescaped `@` is hidden whole.
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/?#\s]*)@")
# A secret given as a key=value pair: a URL query (`?password=x`) or a libpq DSN (`password=x`).
_SECRET_PAIR = re.compile(
    r"(?i)\b(?P<key>password|passwd|pwd|secret|token|access_token|api_key|auth_string)"
    r"(?P<sep>=)(?P<value>[^&\s#;'\"]+)"
)


def _hide_password(match: re.Match[str]) -> str:
    user, colon, _ = match["userinfo"].partition(":")
    if not colon:  # a bare user name (`postgresql://u@host`) is no secret
        return match.group(0)
    return f"{match['scheme']}{user}:{MASK}@"


def redact_credentials(text: str) -> str:
    """`text` with every password in a URL (`scheme://user:PASSWORD@host`) and every
    `password=...`-like pair masked as `***`; anything else unchanged.

    >>> redact_credentials("postgresql://u:secret@db:5432/mlflow")
    'postgresql://u:***@db:5432/mlflow'
    """
    if "@" not in text and "=" not in text:  # the common case costs one scan
        return text
    return _SECRET_PAIR.sub(rf"\g<key>\g<sep>{MASK}", _URL_USERINFO.sub(_hide_password, text))


class _RedactingFactory:
    """Wraps the log record factory in place: makes the record, then masks its message (the
    message with its arguments filled in) and its exception text."""

    def __init__(self, make_record: Any) -> None:
        self.make_record = make_record

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.make_record(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: logging reports it later, as it would have
            return record
        redacted = redact_credentials(message)
        if redacted != message:
            # Formatted once, here: arguments are left alone when they hide nothing, because
            # some formatters (uvicorn's access log) read them.
            record.msg, record.args = redacted, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = redact_credentials(
                logging.Formatter().formatException(record.exc_info)
            )
        return record


def install_log_redaction() -> None:
    """Redact every log record this process makes from now on (idempotent)."""
    current = logging.getLogRecordFactory()
    if not isinstance(current, _RedactingFactory):
        logging.setLogRecordFactory(_RedactingFactory(current))
