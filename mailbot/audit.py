"""The audit trail (`case_event`): every change to a case and every judgement about a mail
is an event."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from mailbot.models import CaseEvent
from mailbot.redact import redact_cpr

MAX_DETAIL_CHARS = 4000


def record(session: Session, case_id: int | None, raw_id: int | None, now: datetime,
           kind: str, detail: str, source_key: str | None = None) -> None:
    """Add one `case_event` row in the caller's transaction (CPR numbers redacted, the detail
    cut at 4,000 characters). `source_key` makes the event idempotent: a second event with
    the same key fails the transaction's unique constraint."""
    session.add(CaseEvent(case_id=case_id, raw_message_id=raw_id, at=now, kind=kind,
                          detail=redact_cpr(detail)[:MAX_DETAIL_CHARS], source_key=source_key))
