"""CPR-number redaction for every log line and every text a user reads."""

from __future__ import annotations

import logging
import re
from typing import Any

# ddmmyy-xxxx, ddmmyyxxxx and "dd mm yy xxxx"; the date part must be a real day and month,
# so invoice numbers and phone numbers mostly pass untouched (SCENARIOS G3).
_CPR = re.compile(
    r"(?<![\d-])"
    r"(?P<dd>0[1-9]|[12]\d|3[01])[ ]?(?P<mm>0[1-9]|1[0-2])[ ]?(?P<yy>\d{2})"
    r"[ -]?(?P<seq>\d{4})"
    r"(?![\d-])"
)
REDACTED = "XXXXXX-XXXX"
# the longest month of any year: 29 February stays possible, since the century (and so the
# leap year) is told only by the serial number (CPR Office, "Personnummeret i CPR")
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _redacted(match: re.Match[str]) -> str:
    if int(match["dd"]) > _DAYS_IN_MONTH[int(match["mm"]) - 1]:
        return match.group(0)  # 31 April, 30 February: no such day, so not a CPR number
    return REDACTED


def redact_cpr(text: str) -> str:
    """Replace every CPR-shaped number whose date part is valid with XXXXXX-XXXX.

    The shapes are those of the CPR Office's personnummer (CPR-loven section 3: ddmmyy and a
    four-digit serial); the modulus-11 check is not applied, since numbers issued after 2007
    may fail it (SCENARIOS G1). Idempotent: redacting twice changes nothing."""
    return _CPR.sub(_redacted, text)


def redact_data(value: Any) -> Any:
    """`value` with every string inside it redacted (redact_cpr): a str, or dicts, lists and
    tuples of them to any depth (a JSON column such as `case.answers`); anything else (None,
    numbers, dates) is returned as it is. Dict keys are ids of ours and are kept."""
    if isinstance(value, str):
        return redact_cpr(value)
    if isinstance(value, dict):
        return {key: redact_data(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact_data(item) for item in value]
    if isinstance(value, tuple):
        return tuple(redact_data(item) for item in value)
    return value


class RedactingFormatter(logging.Formatter):
    """Formats first, then redacts: covers arguments, exception text and stack traces."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_cpr(super().format(record))


def configure_logging(level: str = "INFO", log_format: str = "text") -> None:
    """Every log line to standard error, CPR redacted: `log_format` "text" (one readable
    line) or "json" (mailbot.logs.JsonFormatter, `[bot] log_format`)."""
    handler = logging.StreamHandler()
    if log_format == "json":
        from mailbot.logs import JsonFormatter

        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # mail-parser logs message contents at debug and warning level; keep them out.
    logging.getLogger("mailparser").setLevel(logging.CRITICAL)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("imapclient").setLevel(logging.WARNING)
    # msal's debug lines describe token requests; nothing an operator needs, nothing to leak
    logging.getLogger("msal").setLevel(logging.WARNING)
    # httpx logs every request to KITOS at INFO; mailbot.kitos logs what an operator needs
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
