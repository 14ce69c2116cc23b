from __future__ import annotations

import logging
import sys

import pytest

from mailbot.redact import REDACTED, RedactingFormatter, redact_cpr


@pytest.mark.parametrize("text", ["010190-1234", "0101901234", "01 01 90 1234",
                                  "CPR: 311299-4321.", "born 290200-1237 ok"])
def test_cpr_numbers_are_redacted(text: str) -> None:
    out = redact_cpr(text)
    assert REDACTED in out
    assert not any(ch.isdigit() for ch in out.replace(REDACTED, "").replace("CPR", ""))


@pytest.mark.parametrize("text", ["311399-1234", "+45 12345678", "faktura 2026-000123",
                                  "ITP-2026-0042", "27.00.00-G01-1-24"])
def test_strings_that_only_look_like_cpr_stay(text: str) -> None:
    assert redact_cpr(text) == text


def test_log_lines_and_tracebacks_are_redacted() -> None:
    formatter = RedactingFormatter("%(message)s")
    try:
        raise ValueError("bad mail about 010190-1234")
    except ValueError:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "mail from %s",
                                   ("0101901234",), exc_info=sys.exc_info())
    line = formatter.format(record)
    assert "010190-1234" not in line and "0101901234" not in line
    assert line.startswith(f"mail from {REDACTED}")
    assert line.endswith(f"ValueError: bad mail about {REDACTED}")
