"""Is mailbot healthy? One judgement for `mailbot health`, /healthz and the Drift page
(issue #14), taken from the database and the mailbox state, so it is the same whether or
not the daemon runs. Statuses follow the monitoring-plugin convention: 0 ok, 1 warning,
2 critical (Nagios plugin guidelines, "Plugin Return Codes").

The sweeping process (the daemon, or `run --once`) writes what only it can see into the one
`service_state` row: `note_sweep` once per sweep, `note_imap` when the IMAP connection's
state changes. Thresholds are `[health]` (config.HealthSettings).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, func, select

from mailbot.clock import as_utc
from mailbot.db import schema, transaction
from mailbot.models import CircuitBreaker, Outbox, RawMessage, ServiceState, still_quarantined
from mailbot.vocabulary import ImapState, OutboxState

if TYPE_CHECKING:
    from mailbot.app import Bot
    from mailbot.config import HealthSettings, Settings

OK, WARNING, CRITICAL = 0, 1, 2
LABELS = {OK: "ok", WARNING: "warning", CRITICAL: "critical"}
MIB = 1024 * 1024
QUARANTINE_WINDOW = timedelta(days=1)


@dataclass(frozen=True)
class HealthCheck:
    """One thing judged: a stable `name` (e.g. "database"), its status (0/1/2), one line
    for a person (English: the CLI, /healthz) and the `facts` it was built from (numbers,
    names; the keys per check are those the Drift page's Danish sentences read in
    templates/web/_words.html.j2; empty for a check that has none)."""

    name: str
    status: int
    detail: str
    facts: dict[str, Any] = field(default_factory=dict, compare=False)


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

    def as_dict(self) -> dict[str, Any]:
        """{"status": "ok"|"warning"|"critical", "code": 0|1|2, "checks": [{"name",
        "status", "detail"}]}: the JSON of `mailbot health --json` and /healthz."""
        return {"status": self.label, "code": self.status,
                "checks": [{"name": c.name, "status": LABELS[c.status], "detail": c.detail}
                           for c in self.checks]}

    def text(self) -> str:
        """One line per check ("ok       database: reachable, at revision 0018"), then the
        whole state."""
        lines = [f"{LABELS[c.status]:<9}{c.name}: {c.detail}" for c in self.checks]
        return "\n".join([*lines, f"mailbot is {self.label.upper()}"])


# -- what the sweeping process writes ------------------------------------------------------
def note_sweep(engine: Engine, at: datetime, seconds: float) -> None:
    """A sweep completed at `at` (UTC) after `seconds`: one UPDATE of the one row (issue #16
    measures the throughput this must not cost), an INSERT the first time."""
    with transaction(engine) as session:
        done = session.execute(update(ServiceState).where(col(ServiceState.id) == 1)
                               .values(last_sweep_at=at, sweep_seconds=seconds))
        if not getattr(done, "rowcount", 1):
            session.add(ServiceState(last_sweep_at=at, sweep_seconds=seconds))


def note_imap(engine: Engine, state: ImapState, at: datetime, detail: str = "") -> None:
    """The IMAP connection is in `state` from `at` on (`detail`: the error, no secret: the
    callers pass mailbot's own error texts). Writes only when the state changes, so a
    reconnect keeps `imap_since`."""
    with transaction(engine) as session:
        row = session.get(ServiceState, 1) or ServiceState()
        if row.imap_state == state and row.imap_detail == detail[:500]:
            return
        if row.imap_state != state:
            row.imap_since = at
        row.imap_state, row.imap_detail = state, detail[:500]
        session.add(row)


def service_state(session: Session) -> ServiceState:
    """The one row; an empty one before any sweep."""
    return session.get(ServiceState, 1) or ServiceState()


# -- judging --------------------------------------------------------------------------------
def evaluate(bot: Bot, now: datetime) -> HealthReport:
    """Judge mailbot's health at `now` (UTC). Never raises: what cannot be read is a
    critical check."""
    return judge(bot.settings, bot.engine, now)


def judge(settings: Settings, engine: Engine, now: datetime) -> HealthReport:
    """evaluate() on `settings` and `engine`. A database that cannot be read or is not at
    this mailbot's revision is the critical `database` check, and the checks that read it
    are left out (they would only repeat it)."""
    database = _database(engine)
    if database.status != OK:
        return unreadable(settings, database.detail, engine)
    limits = settings.health
    try:
        with Session(engine) as session:
            state = service_state(session)
            checks = [database, _sweep(state, limits, now), _imap(state, now),
                      *_outbox(session, limits, now), _quarantine(session, limits, now),
                      _breaker(session)]
    except SQLAlchemyError as err:
        return unreadable(settings, f"cannot read the database ({_first_line(err)})", engine)
    return HealthReport([*checks, _leadership(settings, engine),
                         _disk(settings.bot.data_dir, limits)])


def unreadable(settings: Settings, detail: str, engine: Engine | None = None) -> HealthReport:
    """The report when the database cannot be judged (`detail`: why, with the fix): the
    critical `database` check and the checks that need no database (the leader check reads
    the lock through `engine` on PostgreSQL, when there is one)."""
    return HealthReport([HealthCheck("database", CRITICAL, detail),
                         _leadership(settings, engine),
                         _disk(settings.bot.data_dir, settings.health)])


def _database(engine: Engine) -> HealthCheck:
    try:
        state = schema(engine)
    except SQLAlchemyError as err:
        return HealthCheck("database", CRITICAL, f"cannot read the database ({_first_line(err)})",
                           {"error": _first_line(err)})
    if not state.up_to_date:
        return HealthCheck("database", CRITICAL,
                           f"at revision {state.current or 'none'}, this mailbot needs "
                           f"{state.head}; run `mailbot migrate`",
                           {"current": state.current or "", "head": state.head})
    return HealthCheck("database", OK, f"reachable, at revision {state.head}",
                       {"head": state.head})


def _first_line(err: Exception) -> str:
    return str(getattr(err, "orig", None) or err).strip().splitlines()[0]


def _minutes(age: timedelta) -> str:
    return f"{age.total_seconds() / 60:.0f} min"


def _graded(value: float, warning: float, critical: float) -> int:
    return CRITICAL if value >= critical else WARNING if value >= warning else OK


# How far another process's clock (or this one, a moment ago) may be ahead before health
# says so: more than scheduling jitter, less than any sweep threshold.
CLOCK_TOLERANCE = timedelta(minutes=1)


def _sweep(state: ServiceState, limits: HealthSettings, now: datetime) -> HealthCheck:
    if state.last_sweep_at is None:
        return HealthCheck("sweep", CRITICAL, "no mailbox sweep has completed yet "
                           "(is the daemon running? `mailbot run`)")
    age = now - as_utc(state.last_sweep_at)
    if age < -CLOCK_TOLERANCE:
        return HealthCheck("sweep", WARNING, f"the last sweep is in the future (the clocks "
                           f"differ?): it ended {_minutes(-age)} after now, by this host's "
                           "clock; a run with `--now` in the future writes such a time too")
    age = max(age, timedelta(0))  # a few seconds' skew between processes is not news
    status = _graded(age.total_seconds() / 60, limits.sweep_warning_minutes,
                     limits.sweep_critical_minutes)
    detail = f"last completed {_minutes(age)} ago, took {state.sweep_seconds:.1f} s"
    if status != OK:
        detail += (f" (health.sweep_warning_minutes = {limits.sweep_warning_minutes}, "
                   f"sweep_critical_minutes = {limits.sweep_critical_minutes}); is the daemon "
                   "running?")
    return HealthCheck("sweep", status, detail, {"minutes": round(age.total_seconds() / 60),
                                                 "seconds": state.sweep_seconds})


def _imap(state: ServiceState, now: datetime) -> HealthCheck:
    since = f" for {_minutes(now - as_utc(state.imap_since))}" if state.imap_since else ""
    facts = {"state": state.imap_state or "", "error": state.imap_detail or "",
             "minutes": round((now - as_utc(state.imap_since)).total_seconds() / 60)
             if state.imap_since else None}
    if state.imap_state == ImapState.CONNECTED:
        return HealthCheck("imap", OK, "the last login worked", facts)
    if state.imap_state == ImapState.REFUSED:
        return HealthCheck("imap", CRITICAL, f"login refused{since}: {state.imap_detail}", facts)
    if state.imap_state == ImapState.UNREACHABLE:
        return HealthCheck("imap", WARNING, f"unreachable{since} (retried by itself): "
                           f"{state.imap_detail}", facts)
    return HealthCheck("imap", WARNING, "no connection recorded yet", facts)


def _outbox(session: Session, limits: HealthSettings, now: datetime) -> list[HealthCheck]:
    """Failed and uncertain rows wait for a person (`mailbot outbox`): a warning each. The
    oldest row not yet sent is graded by its age. `cancelled` rows are settled."""
    counts = dict(session.exec(select(Outbox.state, func.count()).where(
        col(Outbox.state).in_((OutboxState.PENDING, OutboxState.SENDING, OutboxState.FAILED,
                               OutboxState.UNCERTAIN))).group_by(Outbox.state)).all())
    unsent = counts.get(OutboxState.PENDING, 0) + counts.get(OutboxState.SENDING, 0)
    oldest = session.exec(select(func.min(Outbox.created_at)).where(col(Outbox.state).in_(
        (OutboxState.PENDING, OutboxState.SENDING)))).one()
    if oldest is None:
        pending = HealthCheck("outbox_pending", OK, "nothing waits to be sent",
                              {"waiting": 0, "minutes": 0})
    else:
        age = now - as_utc(oldest)
        status = _graded(age.total_seconds() / 60, limits.pending_warning_minutes,
                         limits.pending_critical_minutes)
        pending = HealthCheck("outbox_pending", status,
                              f"{unsent} waiting, the oldest for {_minutes(age)}"
                              + ("" if status == OK else " (health.pending_warning_minutes = "
                                 f"{limits.pending_warning_minutes}, pending_critical_minutes"
                                 f" = {limits.pending_critical_minutes}); is the SMTP server "
                                 "reachable? `mailbot outbox`"),
                              {"waiting": unsent, "minutes": round(age.total_seconds() / 60)})
    stuck = [HealthCheck(f"outbox_{name}", WARNING if counts.get(name) else OK,
                         f"{counts.get(name, 0)} {name}"
                         + (f": `mailbot outbox --state {name}`" if counts.get(name) else ""),
                         {"count": counts.get(name, 0)})
             for name in (OutboxState.FAILED, OutboxState.UNCERTAIN)]
    return [pending, *stuck]


def _quarantine(session: Session, limits: HealthSettings, now: datetime) -> HealthCheck:
    count = session.exec(select(func.count()).select_from(RawMessage).where(
        still_quarantined(), col(RawMessage.fetched_at) >= now - QUARANTINE_WINDOW)).one()
    status = _graded(count, limits.quarantine_warning, limits.quarantine_critical)
    return HealthCheck("quarantine", status, f"{count} mails quarantined in the last 24 h"
                       + ("" if status == OK else
                          ": `mailbot messages --state quarantined`"), {"count": count})


def _breaker(session: Session) -> HealthCheck:
    state = session.get(CircuitBreaker, 1)
    if state is None or state.opened_at is None:
        return HealthCheck("circuit_breaker", OK, "closed", {"open": False})
    return HealthCheck("circuit_breaker", CRITICAL,
                       f"OPEN since {as_utc(state.opened_at):%Y-%m-%d %H:%M} UTC: {state.reason};"
                       " mail to applicants waits. After checking for a loop: "
                       "`mailbot outbox resume`",
                       {"open": True, "since": as_utc(state.opened_at), "reason": state.reason})


def _leadership(settings: Settings, engine: Engine | None) -> HealthCheck:
    """Who holds the leader lock (mailbot.leadership.leader_state: the file lock on SQLite,
    the advisory lock on PostgreSQL). Never a problem by itself: a daemon that died shows as
    an old sweep, a `mailbot` command may hold the lock for a moment."""
    from mailbot.leadership import leader_state

    state = leader_state(settings, engine)
    if state.error:
        return HealthCheck("leader", OK, f"lock holder unknown ({state.error})",
                           {"error": state.error})
    if state.holder is None:
        where = "on this data_dir" if state.backend == "sqlite" else "on this database"
        return HealthCheck("leader", OK, f"nobody holds {state.lock} (no daemon runs {where})",
                           {"pid": None, "backend": state.backend})
    holder = state.holder
    facts = {"pid": holder.pid, "host": holder.host, "since": holder.since,
             "backend": state.backend, "standbys": len(state.standbys)}
    if state.backend == "sqlite":
        mine = " (this process)" if holder.pid == os.getpid() else ""
        return HealthCheck("leader", OK, f"process {holder.pid}{mine} holds {state.lock}", facts)
    return HealthCheck("leader", OK, state.text(), facts)


def _disk(data_dir: Path, limits: HealthSettings) -> HealthCheck:
    """Free space on data_dir's file system; a data_dir not created yet is measured at its
    nearest existing parent (the database check already says the database is missing)."""
    measured = next((p for p in (data_dir, *data_dir.parents) if p.exists()), data_dir)
    where = str(data_dir) if measured == data_dir else \
        f"{measured} (data_dir {data_dir} does not exist yet)"
    try:
        free_mb = shutil.disk_usage(measured).free / MIB
    except OSError as err:
        return HealthCheck("disk", CRITICAL, f"cannot read the free space under {where} "
                           f"({err.strerror or err})")
    status = CRITICAL if free_mb < limits.disk_critical_mb else \
        WARNING if free_mb < limits.disk_warning_mb else OK
    return HealthCheck("disk", status, f"{free_mb:.0f} MiB free under {where}"
                       + ("" if status == OK else f" (health.disk_warning_mb = "
                          f"{limits.disk_warning_mb}, disk_critical_mb = "
                          f"{limits.disk_critical_mb})"), {"free_mb": round(free_mb)})
