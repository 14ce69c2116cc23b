"""The circuit breaker on mail to applicants (SCENARIOS L6): whatever loop or bug makes the
bot write to applicants far faster than any real day, all mail to applicants stops, the
operator is told once, and it goes on only when the operator says so
(`mailbot outbox resume`). Mail to staff (reviewers, the secretary, the board) is not held.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from mailbot.clock import as_utc
from mailbot.config import LimitSettings
from mailbot.db import transaction
from mailbot.models import CaseEvent, CircuitBreaker, Outbox
from mailbot.vocabulary import Incident, Purpose

if TYPE_CHECKING:
    from mailbot.delivery.outbox import IncidentHook

log = logging.getLogger(__name__)

APPLICANT_KINDS = tuple(p.value for p in (
    Purpose.RECEIPT, Purpose.STATUS, Purpose.UPDATE, Purpose.REMINDER, Purpose.GUIDANCE,
    Purpose.MEETING, Purpose.DECISION))


class Breaker:
    def __init__(self, engine: Engine, limits: LimitSettings) -> None:
        self.engine = engine
        self.ceiling = limits.breaker_mails
        self.window = timedelta(minutes=limits.breaker_minutes)
        self.on_incident: IncidentHook | None = None

    def holds(self, session: Session, kind: str, now: datetime, claimed: int = 0) -> bool:
        """True when a mail of `kind` must wait: it goes to an applicant and the breaker is
        open, or opens now because `breaker_mails` applicant mails went out within
        `breaker_minutes` (counted since the last resume), counting the `claimed` ones the
        caller's claim already took (not sent yet, but about to be). Runs in the caller's
        transaction (the outbox claim), so opening the breaker commits with it."""
        if kind not in APPLICANT_KINDS:
            return False
        state = self.state(session)
        if state.opened_at is not None:
            return True
        since = now - self.window
        if state.resumed_at is not None:
            since = max(since, as_utc(state.resumed_at))
        sent = session.exec(select(func.count()).select_from(Outbox).where(
            col(Outbox.kind).in_(APPLICANT_KINDS), col(Outbox.sent_at) >= since)).one()
        if int(sent) + claimed < self.ceiling:
            return False
        state.opened_at = now
        state.reason = (f"{int(sent) + claimed} mails to applicants within {self.window} "
                        f"(limits.breaker_mails = {self.ceiling})")
        session.add(state)
        session.add(CaseEvent(at=now, kind="circuit_breaker_open", detail=state.reason))
        detail = (f"mail to applicants paused: {state.reason}. Look at `mailbot outbox` and "
                  "`mailbot messages` for a loop, then run `mailbot outbox resume`")
        if self.on_incident is not None:
            self.on_incident(session, Incident.CIRCUIT_BREAKER_OPEN, detail, now)
        else:
            log.error("event=circuit_breaker_open %s", detail)
        return True

    def open(self, session: Session, reason: str, now: datetime) -> None:
        """Open the breaker for `reason` in the caller's transaction, whatever the send rate
        (SCENARIOS C2: another instance answers the same mailbox). It stays open until
        `mailbot outbox resume`; an open breaker keeps its first reason."""
        state = self.state(session)
        if state.opened_at is not None:
            return
        state.opened_at, state.reason = now, reason[:2000]
        session.add(state)
        session.add(CaseEvent(at=now, kind="circuit_breaker_open", detail=state.reason))

    def state(self, session: Session) -> CircuitBreaker:
        return session.get(CircuitBreaker, 1) or CircuitBreaker(id=1)

    def resume(self, now: datetime) -> str:
        """Close the breaker; returns why it was open ("" when it was not)."""
        with transaction(self.engine) as session:
            state = self.state(session)
            reason = state.reason if state.opened_at is not None else ""
            state.opened_at, state.reason, state.resumed_at = None, "", now
            session.add(state)
            if reason:
                session.add(CaseEvent(at=now, kind="circuit_breaker_resumed", detail=reason))
        return reason
