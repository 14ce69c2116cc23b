"""Is mailbot healthy? One judgement for `mailbot health`, /healthz and the Drift page
(issue #14), taken from the database and the mailbox state, so it is the same whether or
not the daemon runs. Statuses follow the monitoring-plugin convention: 0 ok, 1 warning,
2 critical (Nagios plugin guidelines, "Plugin Return Codes")."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from mailbot.db import schema

if TYPE_CHECKING:
    from mailbot.app import Bot

OK, WARNING, CRITICAL = 0, 1, 2
LABELS = {OK: "ok", WARNING: "warning", CRITICAL: "critical"}


@dataclass(frozen=True)
class HealthCheck:
    """One thing judged: a stable `name` (e.g. "database"), its status (0/1/2) and one line
    for a person."""

    name: str
    status: int
    detail: str


@dataclass
class HealthReport:
    """Every check, and the worst of them as the whole report's status."""

    checks: list[HealthCheck] = field(default_factory=list)

    @property
    def status(self) -> int:
        return max((c.status for c in self.checks), default=OK)

    @property
    def label(self) -> str:
        return LABELS[self.status]


def evaluate(bot: Bot, now: datetime) -> HealthReport:
    """Judge mailbot's health at `now` (UTC). Never raises: what cannot be read is a
    critical check."""
    return HealthReport([_database(bot)])


def _database(bot: Bot) -> HealthCheck:
    try:
        state = schema(bot.engine)
    except SQLAlchemyError as err:
        return HealthCheck("database", CRITICAL, f"cannot read the database ({err})")
    if not state.up_to_date:
        return HealthCheck("database", CRITICAL,
                           f"at revision {state.current}, this mailbot needs {state.head}")
    return HealthCheck("database", OK, f"reachable, at revision {state.head}")
