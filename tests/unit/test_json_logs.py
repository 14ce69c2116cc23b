"""`[bot] log_format = "json"` (issue #14): one JSON object per line with time, level, event
name, case ref and Message-ID where known, CPR numbers redacted as in text lines."""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterator

import pytest

from mailbot.logs import about_case, about_mail, isolated
from mailbot.redact import REDACTED, configure_logging
from tests.unit.conftest import MailbotRunner, write_config


@pytest.fixture
def json_logging() -> Iterator[io.StringIO]:
    """configure_logging(..., "json"), its one handler writing into a buffer instead of
    stderr (pytest's capture swaps stderr under a handler made before it)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    configure_logging("INFO", "json")
    [handler] = root.handlers
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    handler.setStream(buffer)
    yield buffer
    root.handlers[:] = handlers
    root.setLevel(level)


def _handled() -> None:
    about_mail("<brief-1@kommune.dk>")
    about_case("ITP-2026-0007")
    logging.getLogger("mailbot.pipeline").warning(
        "event=poison_mail raw message 7 from 010190-1234 quarantined")


def test_a_json_line_names_time_level_event_case_and_mail_with_cpr_redacted(
        json_logging: io.StringIO) -> None:
    isolated(_handled)
    logging.getLogger("mailbot.service").info("swept: 0 fetched")
    first, second = json_logging.getvalue().splitlines()
    line = json.loads(first)
    assert line["time"].endswith("+00:00") and line["time"][:4].isdigit()
    assert {key: line[key] for key in ("level", "logger", "event", "case_ref", "message_id")} \
        == {"level": "WARNING", "logger": "mailbot.pipeline", "event": "poison_mail",
            "case_ref": "ITP-2026-0007", "message_id": "<brief-1@kommune.dk>"}
    assert line["message"] == f"event=poison_mail raw message 7 from {REDACTED} quarantined"
    # the mail's context ended with its handling: the next line names no case or mail
    after = json.loads(second)
    assert (after["event"], after["case_ref"], after["message_id"]) == (None, None, None)


def test_a_traceback_is_one_json_line_redacted(json_logging: io.StringIO) -> None:
    try:
        raise ValueError("cannot parse 0101901234")
    except ValueError:
        logging.getLogger("mailbot").exception("raw message 3 failed")
    [only] = json_logging.getvalue().splitlines()
    line = json.loads(only)
    assert line["exception"].endswith(f"ValueError: cannot parse {REDACTED}")


def test_log_format_takes_only_text_or_json(tmp_path: os.PathLike[str],
                                            mailbot: MailbotRunner) -> None:
    from pathlib import Path

    config = write_config(Path(tmp_path), ('# log_format = "text"', 'log_format = "xml"'))
    ran = mailbot("health", "--config", str(config))
    assert ran.code == 2
    assert ran.err.startswith(f"{config}: [bot.log_format] input should be 'text' or 'json'")

