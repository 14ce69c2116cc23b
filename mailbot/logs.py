"""`[bot] log_format = "json"`: one JSON object per line for a log collector (issue #14),
and the context every line of it carries: the case ref and the Message-ID of the mail being
handled (set where a mail or case is handled: `about_mail`, `about_case`, inside
`isolated`), in contextvars so that each thread (the IMAP watcher, the scheduler's jobs, the
web server) has its own."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from contextvars import ContextVar, copy_context
from datetime import UTC, datetime
from typing import ParamSpec, TypeVar

from mailbot.redact import redact_cpr

CASE_REF: ContextVar[str | None] = ContextVar("case_ref", default=None)
MESSAGE_ID: ContextVar[str | None] = ContextVar("message_id", default=None)
P = ParamSpec("P")
T = TypeVar("T")
# the stable incident names of the ERROR and WARNING lines ("event=imap_login_failing ...")
_EVENT = re.compile(r"\bevent=([\w.-]+)")


def isolated(work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`work(*args)` in a copy of the current context: the mail and case it names through
    about_mail and about_case are forgotten when it returns."""
    return copy_context().run(work, *args, **kwargs)


def about_mail(message_id: str) -> None:
    """The log lines from here on (within `isolated`) are about the mail `message_id`."""
    MESSAGE_ID.set(message_id or None)


def about_case(ref: str) -> None:
    """The log lines from here on (within `isolated`) are about the case `ref`."""
    CASE_REF.set(ref or None)


class JsonFormatter(logging.Formatter):
    """One line: {"time" (ISO 8601 UTC), "level", "logger", "event" (the `event=NAME` of
    the message, or null), "message", "case_ref", "message_id", "exception" (the traceback
    when there is one)}. CPR numbers are redacted in the finished line (json.dumps escapes
    no digit, space or "-", so the shapes redact_cpr knows stay as they are)."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        event = _EVENT.search(message)
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "event": event[1] if event else None,
            "message": message,
            "case_ref": CASE_REF.get(),
            "message_id": MESSAGE_ID.get(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return redact_cpr(json.dumps(line, ensure_ascii=False))
