"""Transactional outbox: rows written with the case change; a sender that delivers them."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import random
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import aiosmtplib
from aiosmtplib.email import quote_address
from aiosmtplib.protocol import SMTPProtocol
from sqlalchemy import ColumnElement, Update, and_, func, text, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import Engine
from sqlalchemy.orm import defer
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col, select

from mailbot import metrics
from mailbot.clock import as_utc
from mailbot.config import LimitSettings, SmtpSettings
from mailbot.db import rows_changed, transaction
from mailbot.delivery.breaker import APPLICANT_KINDS, Breaker
from mailbot.delivery.compose import Outgoing
from mailbot.errors import ConfigError, MailbotError
from mailbot.faults import crash_point
from mailbot.intake.mailbox import tls_context
from mailbot.leadership import NAME_PREFIX
from mailbot.models import CaseEvent, Outbox, RawMessage
from mailbot.vocabulary import Incident, Purpose
from mailbot.watchdog import HEARTBEAT

if TYPE_CHECKING:
    from mailbot.auth import TokenSource

log = logging.getLogger(__name__)

# How long a claimed row is its owner's alone. Longer than one SMTP transaction takes (each
# step waits at most smtp.timeout_seconds, 60 s by default); only a fallback for an owner
# whose death cannot be proven (see Sender._expire_leases): a dead one is recovered at once.
LEASE = timedelta(minutes=5)
# this process's own part of its lease owner: pids repeat across hosts and restarts
_NONCE = secrets.token_hex(4)
CLAIM_BATCH = 200  # rows read per query of the due ones
# rows claimed per transaction: each stays `sending` until its turn, so few at a time
CLAIM_CHUNK = 10
BACKOFF_BASE_SECONDS = 30
WRITE_AT_ONCE_BYTES = 1_000_000  # an outbox row above this is flushed at once (enqueue)
BACKOFF_CAP_SECONDS = 3600


def enqueue(session: Session, outgoing: Outgoing, *, kind: str, case_id: int | None,
            now: datetime, delivery: str = "at_most_once") -> Outbox:
    """Add a mail to the outbox in the caller's transaction; nothing is sent before commit.
    A mail over WRITE_AT_ONCE_BYTES is written at once and its bytes are not kept on the
    returned row (read again only if asked for). Raises what the session's flush raises."""
    row = Outbox(
        case_id=case_id,
        kind=kind,
        message_id=outgoing.message_id,
        delivery=delivery,
        recipients=list(outgoing.recipients),
        raw=outgoing.raw,
        subject=outgoing.subject,
        created_at=now,
        next_attempt_at=now,
    )
    session.add(row)
    if len(outgoing.raw) > WRITE_AT_ONCE_BYTES:
        # written now (in the caller's transaction, so still not sent before its commit)
        # and its bytes let go: a large document to several reviewers would otherwise be
        # held once per mail until the case's transaction commits (issue #16, 25 MB mail)
        session.flush()  # all of it: rows queued before this one keep their earlier ids
        session.expire(row, ["raw"])
    return row


def smtp_client(s: SmtpSettings, timeout: float | None = None) -> aiosmtplib.SMTP:
    """Implicit TLS (RFC 8314), STARTTLS (RFC 3207) or none, as configured; TLS with
    tls_context(s.ca_file): TLS 1.2+, the certificate and the host name verified.

    start_tls=True (not None, aiosmtplib's "if offered") makes connect() raise
    SMTPException when the server does not offer STARTTLS: never a plaintext fallback."""
    return aiosmtplib.SMTP(
        hostname=s.host, port=s.port, timeout=timeout or s.timeout_seconds,
        use_tls=s.security == "ssl",
        start_tls=s.security == "starttls",
        tls_context=tls_context(s.ca_file) if s.security != "none" else None,
    )


async def smtp_login(smtp: aiosmtplib.SMTP, s: SmtpSettings, tokens: TokenSource | None,
                     source: str = "config") -> None:
    """AUTH as smtp.auth says: none, LOGIN/PLAIN with the password, or XOAUTH2 with the
    process's token. Raises SMTPAuthenticationError when the server refuses (after one retry
    with a new token for XOAUTH2), ConfigError when the server offers no XOAUTH2."""
    if s.auth == "none":
        return
    if s.auth == "password":
        await smtp.login(s.username, s.password.get_secret_value())
        return
    if tokens is None:
        raise ConfigError(source, "smtp.auth", 'is "oauth2", but no [oauth2] token source was '
                          "built", "report this as a bug in mailbot")
    if smtp.is_ehlo_or_helo_needed:
        await smtp.ehlo()
    if "xoauth2" not in smtp.server_auth_methods:
        raise ConfigError(source, "smtp.auth", f"{s.host} does not offer AUTH XOAUTH2",
                          'set smtp.auth = "password" or "none", or use a server that offers '
                          "it (Exchange Online: smtp.office365.com, port 587, starttls)")
    try:
        await _xoauth2(smtp, s.username, tokens.token())
    except aiosmtplib.SMTPAuthenticationError:
        tokens.invalidate()  # expired or revoked early: once more with a new token
        await _xoauth2(smtp, s.username, tokens.token())


async def _xoauth2(smtp: aiosmtplib.SMTP, username: str, token: str) -> None:
    """AUTH XOAUTH2 with the initial response base64(`user=<u>^Aauth=Bearer <t>^A^A`)
    (Google's XOAUTH2 protocol, as Exchange Online takes it). A refusal may come as a 334
    challenge holding a JSON error; the client answers it with an empty line and gets the
    final 5xx. Raises SMTPAuthenticationError unless the answer is 235."""
    initial = base64.b64encode(f"user={username}\x01auth=Bearer {token}\x01\x01".encode())
    response = await smtp.execute_command(b"AUTH", b"XOAUTH2", initial)
    if response.code == 334:
        response = await smtp.execute_command(b"")
    if response.code != 235:
        raise aiosmtplib.SMTPAuthenticationError(response.code, response.message)


class IncidentHook(Protocol):
    """Called in the transaction that records an incident (mailbot.alerts.Alerts.raise_in)."""

    def __call__(self, session: Session, incident: Incident, detail: str, now: datetime
                 ) -> None: ...


async def send_direct(s: SmtpSettings, tokens: TokenSource | None, envelope_from: str,
                      outgoing: Outgoing) -> None:
    """Send one message now, outside the outbox: only for an alert that the database cannot
    store (mailbot.alerts). Raises aiosmtplib.SMTPException, OSError or MailbotError."""
    smtp = smtp_client(s)
    await smtp.connect()
    try:
        await smtp_login(smtp, s, tokens)
        await smtp.sendmail(envelope_from, list(outgoing.recipients), outgoing.raw)
    finally:
        try:
            await smtp.quit()
        except (aiosmtplib.SMTPException, OSError):
            smtp.close()


def lease_owner() -> str:
    """`HOST:PID:NONCE`, this process as the owner of the outbox rows it claims: the pid names
    the process on its host, the random nonce this run of it (pids repeat across hosts and
    restarts, and a restarted process must not take its predecessor's rows for its own)."""
    return f"{socket.gethostname()}:{os.getpid()}:{_NONCE}"


def owner_alive(session: Session, owner: str) -> bool:
    """Whether the process that wrote lease owner `owner` (`lease_owner`) may still be
    sending: False only when it is provably gone. On this host: its pid runs no longer (or
    is a zombie). On another host (PostgreSQL): its leader lock session is gone, no session
    in `pg_stat_activity` named `mailbot HOST:PID` (mailbot.leadership: every process that
    sends holds the leadership on that session; PostgreSQL ends it when the process is
    killed, and for a vanished host when TCP keepalive gives up, within takeover_seconds).
    Anything else counts as alive, and its rows wait for their lease (LEASE) to run out: a
    pid reused by another process only delays recovery, it never takes a live row."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if not pid_text.isdigit():
        return False  # no process recorded as its owner: nobody can be sending it
    pid = int(pid_text)
    if host == socket.gethostname():
        return _pid_runs(pid)
    if session.get_bind().dialect.name != "postgresql":
        return True  # SQLite is one host's: another host's process cannot be asked
    # leadership.identity() of that process, as the lock connection carries it
    name = f"{NAME_PREFIX}{host}:{pid}"[:63]
    return session.execute(
        text("SELECT 1 FROM pg_stat_activity WHERE application_name = :name"),
        {"name": name}).first() is not None


def _pid_runs(pid: int) -> bool:
    """A process with this pid runs on this host (a zombie, killed but not yet reaped by
    its parent, does not: Linux's /proc/PID/stat state Z)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return True  # no /proc here: the signal said it exists
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


SMTP_OUTAGE_ALERT = timedelta(minutes=15)  # shorter outages (a server restart) alert nobody


def backoff(attempts: int) -> timedelta:
    """Exponential with full jitter, capped (SCENARIOS O3)."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(0, attempts - 1))
    return timedelta(seconds=random.uniform(ceiling / 2, ceiling))


@dataclass
class FlushReport:
    sent: int = 0
    retry: int = 0
    failed: int = 0
    uncertain: int = 0


class Sender:
    def __init__(self, engine: Engine, settings: SmtpSettings, envelope_from: str,
                 tokens: TokenSource | None = None, limits: LimitSettings | None = None
                 ) -> None:
        self.engine = engine
        self.breaker = Breaker(engine, limits or LimitSettings())
        self.tokens = tokens
        self.envelope_from = envelope_from
        self.give_up = timedelta(hours=settings.give_up_hours)
        self.settings = settings
        self.owner = lease_owner()
        self._flush_began = time.monotonic()  # when the running flush's `now` was read
        self._down_logged = False
        self._down_since: datetime | None = None  # the current SMTP outage began
        self._outage_alerted = False
        self._outage_detail = ""
        self.stopping = threading.Event()
        self.on_incident: IncidentHook | None = None
        # raises an alert in a transaction of its own (mailbot.alerts.Alerts.raise_alert)
        self.on_outage: Callable[[Incident, str], None] | None = None

    def report_to(self, hook: IncidentHook) -> None:
        """Tell `hook` about mail that failed for good or became uncertain, and about the
        circuit breaker opening (the operator's alerts)."""
        self.on_incident = hook
        self.breaker.on_incident = hook

    def _incident(self, session: Session, row: Outbox, now: datetime, detail: str) -> None:
        # an alert about a failed alert would be the start of a loop
        if self.on_incident is not None and row.kind != Purpose.ALERT:
            self.on_incident(session, Incident.OUTBOX_FAILURES, detail, now)

    def recover(self, now: datetime) -> int:
        """At start: resolve the rows a dead process left `sending` (SCENARIOS O1/O2) now
        rather than when their lease runs out. Only rows whose owner is provably dead or
        whose lease expired (`_expire_leases`): another host may be sending right now.
        Returns how many became `uncertain`."""
        return self._expire_leases(now)

    def flush(self, now: datetime) -> FlushReport:
        """Send every row that is due; safe to call from several processes at once, on one
        host or two (every row is claimed by a conditional UPDATE and leased, and each later
        change of it is conditional on this process still owning it). One SMTP connection
        serves the whole flush; a new one only when the server dropped it."""
        self._flush_began = time.monotonic()
        report = FlushReport()
        report.uncertain = self._expire_leases(now)
        asyncio.run(self._flush_all(now, report))
        if self._outage_detail and self.on_outage is not None:
            detail, self._outage_detail = self._outage_detail, ""
            self.on_outage(Incident.SMTP_FAILING, detail)
        return report

    async def _flush_all(self, now: datetime, report: FlushReport) -> None:
        link = _Link(self, now)
        try:
            while not self.stopping.is_set() and (ids := self._due(now)):
                for start in range(0, len(ids), CLAIM_CHUNK):
                    if self.stopping.is_set():
                        break  # shutting down: the rest stays pending for the next start
                    await self._send_chunk(link, self._claim(ids[start:start + CLAIM_CHUNK],
                                                             now), now, report)
                if report.retry or link.down:
                    break  # the server is refusing or away: the rest waits for the next flush
        finally:
            await link.quit()

    # -- leasing ----------------------------------------------------------------------------
    def _expire_leases(self, now: datetime) -> int:
        """Resolve the `sending` rows whose owner cannot finish them: its lease ran out
        (lease_until < now), or it is provably dead (`owner_alive`). Never a live owner's
        row within its lease: that process is in its SMTP transaction right now. Each row
        changes by a conditional UPDATE on the claim it had (owner and attempt), so two
        processes recovering at once resolve it once; its old owner, should it live after
        all, finds the row no longer its own and neither sends the final "." nor records
        anything (`_mark_data`, `_written`). Returns how many became `uncertain`.

        A row that never reached the final "." of DATA (data_at unset) cannot be at the
        server (RFC 5321 4.1.1.4): pending again. Past it, the server may have the mail:
        at most once -> `uncertain`, at least once -> pending (same Message-ID)."""
        count = 0
        alive: dict[str, bool] = {}
        with transaction(self.engine) as session:
            for row in session.exec(select(Outbox).where(Outbox.state == "sending")).all():
                expired = row.lease_until is None or as_utc(row.lease_until) < now
                if not expired:
                    if row.lease_owner not in alive:
                        alive[row.lease_owner] = owner_alive(session, row.lease_owner)
                    if alive[row.lease_owner]:
                        continue
                if row.data_at is None:
                    # died before DATA ended: the server cannot have the mail (O1)
                    state, error = "pending", "process died before DATA; sending again"
                elif row.delivery == "at_most_once":
                    state = "uncertain"
                    error = "process died during the SMTP transaction; not resent"
                else:
                    state = "pending"
                    error = ("process died during the SMTP transaction; resending with the "
                             "same Message-ID (possible duplicate)")
                why = "its lease ran out" if expired else "that process is gone"
                error += f" ({row.lease_owner or 'no owner'}: {why})"
                taken = rows_changed(session, update(Outbox).where(
                    col(Outbox.id) == row.id, col(Outbox.state) == "sending",
                    col(Outbox.lease_owner) == row.lease_owner,
                    col(Outbox.attempts) == row.attempts,
                ).values(state=state, last_error=error, lease_until=None))
                if taken != 1:
                    continue  # another process resolved it first
                session.refresh(row)
                if state == "uncertain":
                    count += 1
                    metrics.SENT.labels(kind=row.kind, outcome="uncertain").inc()
                    log.warning("outbox %s (%s) uncertain after a crash; not resent",
                                row.id, row.message_id)
                    self._incident(session, row, now, _told(row))
                _event(session, row, now, "outbox_" + row.state, row.last_error)
        return count

    def _due(self, now: datetime) -> list[int]:
        """Pending rows whose time has come, oldest first; mail to applicants not while the
        circuit breaker is open."""
        with Session(self.engine) as session:
            query = (select(Outbox.id)
                     .where(Outbox.state == "pending", col(Outbox.next_attempt_at) <= now)
                     .order_by(col(Outbox.id)).limit(CLAIM_BATCH))
            if self.breaker.state(session).opened_at is not None:
                query = query.where(col(Outbox.kind).not_in(APPLICANT_KINDS))
            return [i for i in session.exec(query).all() if i is not None]

    def _claim(self, ids: list[int], now: datetime) -> list[Outbox]:
        """Mark a few rows `sending` in ONE transaction, just before their SMTP transactions
        (SCENARIOS O1): each by a conditional UPDATE (`mailbot outbox cancel` or another
        process may have changed it since `_due`; SQLite reads outside a transaction), each
        leased to this process. A crash before a row's final "." leaves it `sending` with
        data_at unset: pending again on recovery, as the server kept nothing (RFC 5321
        4.1.1.4). Mail to applicants is claimed only while the circuit breaker lets it go,
        counting the ones this claim already took. Returns the claimed rows, oldest first."""
        with transaction(self.engine) as session:
            # id and kind only: the raw mail is read once, with the claimed rows below
            candidates = session.exec(select(Outbox.id, Outbox.kind).where(
                col(Outbox.id).in_(ids), Outbox.state == "pending").order_by(col(Outbox.id)))
            claimed: list[int] = []
            applicants = 0
            for row_id, kind in candidates.all():
                if self.breaker.holds(session, kind, now, claimed=applicants):
                    continue  # stays pending until `mailbot outbox resume`
                if rows_changed(session, _update(
                        col(Outbox.id) == row_id, col(Outbox.state) == "pending").values(
                        state="sending", data_at=None,  # this attempt has not reached DATA
                        lease_owner=self.owner, lease_until=self._lease_end(now),
                        attempts=col(Outbox.attempts) + 1)) == 1 and row_id is not None:
                    claimed.append(row_id)
                    applicants += kind in APPLICANT_KINDS
            if not claimed:
                return []
            rows = list(session.exec(select(Outbox).options(defer(Outbox.raw))  # type: ignore[arg-type]
                                     .where(col(Outbox.id).in_(claimed))
                                     .order_by(col(Outbox.id))).all())
            # the raw mail of the small ones now, in one query; a large one (a 25 MB
            # document) at its turn (`_raw`), so a claim never holds several at once
            small = dict(session.exec(select(Outbox.id, Outbox.raw).where(
                col(Outbox.id).in_(claimed),
                func.length(Outbox.raw) <= WRITE_AT_ONCE_BYTES)).all())
            for row in rows:
                if row.id in small:
                    set_committed_value(row, "raw", small[row.id])  # read, not changed
            return rows

    def _raw(self, row: Outbox) -> bytes:
        """The claimed row's mail: read with the claim, or now when it is large (`_claim`).
        Raises NoResultFound when the row is gone (purged under the sender's feet)."""
        if "raw" in sa_inspect(row).dict:
            return row.raw
        with Session(self.engine) as session:
            return session.exec(select(Outbox.raw).where(Outbox.id == row.id)).one()

    def _lease_end(self, now: datetime) -> datetime:
        """LEASE from the moment of the claim: `now` is when the flush began (the bot's clock,
        which --now may shift), and a long batch claims its last rows minutes later."""
        return now + timedelta(seconds=time.monotonic() - self._flush_began) + LEASE

    def _held(self, row: Outbox) -> ColumnElement[bool]:
        """The claim `row` was taken with (`_claim`): still `sending`, by this process, in
        the same attempt. False once recovery gave the row to another process."""
        return and_(col(Outbox.id) == row.id, col(Outbox.state) == "sending",
                    col(Outbox.lease_owner) == self.owner,
                    col(Outbox.attempts) == row.attempts)

    def _written(self, session: Session, row: Outbox, **values: object) -> Outbox | None:
        """Write `values` to the row in the caller's transaction by ONE conditional UPDATE,
        while this process still owns it (`_held`: on PostgreSQL it waits for, then sees, a
        concurrent recovery's commit; on SQLite it holds the write lock). Returns `row` with
        `values` set, as now stored (nobody else changes a row while it is held; one
        UPDATE, as SQLite rewrites the whole row, raw mail included, on each); None, and a
        log line, when it was taken over: the new owner decides what happens to it."""
        if rows_changed(session, _update(self._held(row)).values(**values)) != 1:
            log.warning("outbox %s (%s) was taken over by another process; leaving it to it",
                        row.id, row.message_id)
            return None
        for name, value in values.items():
            setattr(row, name, value)
        return row

    # -- sending ----------------------------------------------------------------------------
    async def _send_chunk(self, link: _Link, rows: list[Outbox], now: datetime,
                          report: FlushReport) -> None:
        """The claimed `rows`, one SMTP transaction each, on the flush's connection. Each
        row's outcome is committed with the next row's `data_at` (`_mark_data`), the last
        ones when the chunk ends, however it ends: rows not begun (stopping, an exception)
        are released, pending again; none stays decided in memory only."""
        unrecorded: list[_Write] = []
        begun = 0
        try:
            for row in rows:
                if self.stopping.is_set():
                    break  # shutting down: the rest is released, pending for the next start
                smtp = await link.open()
                begun += 1
                if smtp is None:
                    unrecorded.append(self._retry_write(
                        row, now, f"SMTP server unavailable: {link.reason}", report))
                    continue
                HEARTBEAT.beat()  # one SMTP transaction each: progress, not a hang
                await self._send_one(smtp, row, now, report, unrecorded)
        finally:
            unrecorded.extend(partial(self._release, row=row) for row in rows[begun:])
            self._record(unrecorded)

    def _record(self, unrecorded: list[_Write],
                then: Callable[[Session], bool] | None = None) -> bool:
        """Commit the outcomes decided so far, and `then` (a row's `data_at`), in ONE
        transaction; empties `unrecorded`. Returns what `then` returned (True without)."""
        counted: list[tuple[str, str] | None] = []
        with transaction(self.engine) as session:
            counted = [write(session) for write in unrecorded]
            result = then(session) if then is not None else True
        unrecorded.clear()
        for kind, outcome in filter(None, counted):
            metrics.SENT.labels(kind=kind, outcome=outcome).inc()
        return result

    def _explained(self, err: Exception) -> Exception:
        """A refused XOAUTH2 login as what to fix in Exchange Online (auth.smtp_refused)."""
        if (isinstance(err, aiosmtplib.SMTPAuthenticationError) and self.tokens is not None
                and self.settings.auth == "oauth2"):
            from mailbot.auth import smtp_refused

            return smtp_refused(self.tokens, self.settings.username, err.code, err.message)
        return err

    def _client(self) -> aiosmtplib.SMTP:
        return smtp_client(self.settings)

    async def _send_one(self, smtp: aiosmtplib.SMTP, row: Outbox, now: datetime,
                        report: FlushReport, unrecorded: list[_Write]) -> None:
        """One SMTP transaction, step by step, so that each failure is known for what it is
        (SCENARIOS O3, O7): MAIL and RCPT failures are safe to retry (nothing was accepted);
        a 4xx for one recipient is retried for that recipient only, a 5xx is final for it.
        The content of DATA goes out without its final "." line, and a failure up to there is
        retried too (the server keeps nothing without it). `data_at` is committed just before
        the final "." (with the outcomes in `unrecorded`); a timeout or a dropped connection
        after it may mean the server took the mail, so an at-most-once row becomes
        `uncertain` and is never resent by itself. When that commit finds the row taken over
        (`_mark_data`), the final "." is never sent and the connection is dropped. This
        row's outcome is appended to `unrecorded`, for the caller to commit."""
        results = dict(row.results)
        waiting = [r for r in row.recipients if _open(results.get(r))]
        try:
            accepted = await _envelope(smtp, self.envelope_from, waiting, results)
        except aiosmtplib.SMTPResponseException as err:
            await _reset(smtp)
            unrecorded.append(self._refused_write(row, now, err.code, f"{err.code} "
                                                  f"{err.message}", results, report))
            return
        except (aiosmtplib.SMTPException, OSError) as err:
            smtp.close()  # in an unknown state: the next row gets a new connection
            unrecorded.append(self._retry_write(row, now, f"{type(err).__name__}: {err}",
                                                report, results))
            return
        if not accepted:
            await _reset(smtp)
            unrecorded.append(self._settle_write(row, now, results, report))
            return
        crash_point("before_data")
        raw = self._raw(row)
        try:
            await _data_content(smtp, raw)
        except aiosmtplib.SMTPResponseException as err:  # DATA refused: nothing taken
            unrecorded.append(self._refused_write(row, now, err.code, f"{err.code} "
                                                  f"{err.message}", results, report))
            return
        except (aiosmtplib.SMTPException, OSError) as err:
            # cut before the final ".": the server throws the content away (RFC 5321 4.1.1.4)
            smtp.close()
            unrecorded.append(self._retry_write(
                row, now, f"{type(err).__name__} during DATA, before its end: {err}", report,
                results))
            return
        crash_point("before_final_dot")
        try:
            marked = self._mark_data(row, now, unrecorded)
        except Exception:
            # the database refused (locked, gone): no "." then, so the server keeps nothing.
            # Mid-DATA a QUIT would be read as content and never answered: the flush would
            # wait smtp.timeout_seconds (and every other flush with it) before the storage
            # trouble is known. Drop the connection instead (RFC 5321 4.1.1.4, 3.8)
            smtp.close()
            raise
        if not marked:
            # another process owns the row now and sends it: without the final "." the
            # server delivers nothing (RFC 5321 4.1.1.4, 3.8), and mid-DATA there is no RSET
            log.warning("outbox %s (%s) was taken over before the end of DATA; the final "
                        '"." is not sent, the connection is dropped', row.id, row.message_id)
            smtp.close()
            return
        try:
            response = await smtp.execute_command(b".")
        except (aiosmtplib.SMTPException, OSError) as err:
            # a late answer would be read as the next command's: never reuse this connection
            smtp.close()
            unrecorded.append(partial(self._unknown, row=row, now=now, report=report,
                                      error=f"{type(err).__name__} after the end of DATA: "
                                            f"{err}"))
            return
        if response.code != 250:  # the server answered: not taken
            unrecorded.append(self._refused_write(
                row, now, response.code, f"{response.code} {response.message}", results,
                report))
            return
        crash_point("after_smtp", raw)
        results.update(dict.fromkeys(accepted, "250 accepted"))
        unrecorded.append(self._settle_write(row, now, results, report))

    def _mark_data(self, row: Outbox, now: datetime, unrecorded: list[_Write]) -> bool:
        """Commit that the final "." of DATA goes out, with the outcomes decided before it
        (`unrecorded`, the previous rows'): from here on a crash may leave the mail at the
        server. Before it, the server has nothing it would deliver. Conditional on this
        process still owning the row (`_held`), and renewing its lease (the outcome is
        committed one SMTP transaction later): False when recovery gave the row to another
        process (this one was frozen or cut off past its lease), which then sends it."""
        return self._record(unrecorded, lambda session: rows_changed(
            session, _update(self._held(row))
            .values(data_at=now, lease_until=self._lease_end(now))) == 1)

    def _refused_write(self, row: Outbox, now: datetime, code: int, error: str,
                       results: dict[str, str], report: FlushReport) -> _Write:
        """The server refused the whole transaction: 5xx is final, 4xx is retried."""
        if 500 <= code < 600:
            return partial(self._finish, row=row, state="failed", now=now, error=error,
                           results=results, report=report)
        return self._retry_write(row, now, error, report, results)

    def _settle_write(self, row: Outbox, now: datetime, results: dict[str, str],
                      report: FlushReport) -> _Write:
        """After a transaction: recipients still open (4xx) are retried; otherwise the row is
        `sent` when any recipient took it, else `failed`."""
        open_ = [r for r in row.recipients if _open(results.get(r))]
        if open_:
            return self._retry_write(row, now, "; ".join(
                f"{r}: {results.get(r, 'not tried')}" for r in open_), report, results)
        if any(v.startswith("2") for v in results.values()):
            return partial(self._finish, row=row, state="sent", now=now, error="",
                           results=results, report=report)
        return partial(self._finish, row=row, state="failed", now=now,
                       error="every recipient refused", results=results, report=report)

    def _retry_write(self, row: Outbox, now: datetime, error: str, report: FlushReport,
                     results: dict[str, str] | None = None) -> _Write:
        return partial(self._retry, row=row, now=now, error=error, report=report,
                       results=results)

    def _unknown(self, session: Session, *, row: Outbox, now: datetime, error: str,
                 report: FlushReport) -> tuple[str, str] | None:
        """DATA was cut: the server may have the mail (O7). At most once: `uncertain`, for
        the operator; at least once: resent with the same Message-ID."""
        if row.delivery == "at_least_once":
            return self._retry(session, row=row, now=now, error=error, report=report)
        current = self._written(session, row, state="uncertain", lease_until=None,
                                last_error=f"{error}; the server may have it: not resent")
        if current is None:
            return None
        report.uncertain += 1
        log.warning("outbox %s (%s) uncertain: %s", current.id, current.message_id, error)
        _event(session, current, now, "outbox_uncertain", current.last_error)
        self._incident(session, current, now, _told(current))
        return row.kind, "uncertain"

    def _finish(self, session: Session, *, row: Outbox, state: str, now: datetime,
                error: str, results: dict[str, str], report: FlushReport
                ) -> tuple[str, str] | None:
        """`sent` or `failed` for good, unless the row was taken over (`_written`)."""
        current = self._written(session, row, state=state, results=results, last_error=error,
                                lease_until=None, **({"sent_at": now} if state == "sent"
                                                     else {}))
        if current is None:
            return None
        if state == "sent":
            report.sent += 1
            if current.kind == Purpose.RECEIPT:
                _receipt_latency(session, current, now)
        else:
            report.failed += 1
            log.error("outbox %s to %s failed permanently: %s",
                      current.id, ", ".join(current.recipients), error)
            self._incident(session, current, now, _told(current))
        _event(session, current, now, f"outbox_{state}",
               "; ".join(f"{k}: {v}" for k, v in results.items()) or error)
        return row.kind, state

    def _retry(self, session: Session, *, row: Outbox, now: datetime, error: str,
               report: FlushReport, results: dict[str, str] | None = None
               ) -> tuple[str, str] | None:
        """Pending again after a backoff, or `failed` once smtp.give_up_hours have passed;
        nothing when the row was taken over (`_written`)."""
        values: dict[str, object] = {"last_error": error, "lease_until": None}
        if results is not None:
            values["results"] = results
        # counted from the operator's retry (mailbot.admin), if any: not from the queueing
        given_up = now - as_utc(row.retried_at or row.created_at) >= self.give_up
        if given_up:
            values["state"] = "failed"
        else:
            values.update(state="pending", next_attempt_at=now + backoff(row.attempts))
        current = self._written(session, row, **values)
        if current is None:
            return None
        if given_up:
            report.failed += 1
            log.error("outbox %s given up after %s attempts: %s",
                      current.id, current.attempts, error)
            self._incident(session, current, now, _told(current))
            _event(session, current, now, "outbox_failed", f"given up: {error}")
        else:
            report.retry += 1
        return row.kind, "failed" if given_up else "retry"

    def _release(self, session: Session, *, row: Outbox) -> tuple[str, str] | None:
        """A claimed row whose SMTP transaction never began (the flush stops): pending
        again, this attempt not counted, unless another process took it over."""
        rows_changed(session, _update(self._held(row)).values(
            state="pending", lease_until=None, attempts=col(Outbox.attempts) - 1))
        return None

    def _log_down(self, err: Exception, now: datetime) -> None:
        """Log once per outage, not once per row and flush (Mailman's "log once"); alert the
        operator (`smtp_failing`) at once when the server refuses the login or the token
        (someone must act), else when the outage has lasted SMTP_OUTAGE_ALERT (a restart of
        the mail server is no incident)."""
        self._down_since = self._down_since or now
        refused = isinstance(err, ConfigError)
        if not self._outage_alerted and self.on_outage is not None and (
                refused or now - self._down_since >= SMTP_OUTAGE_ALERT):
            self._outage_alerted = True
            # raised by flush once the event loop is done (an alert may send directly)
            self._outage_detail = (
                f"SMTP {self.settings.host}:{self.settings.port} "
                f"{'refuses the login' if refused else 'unavailable'} since "
                f"{self._down_since:%Y-%m-%d %H:%M} UTC: {err}; mail waits in the outbox")
        if self._down_logged:
            return
        self._down_logged = True
        if refused:  # a refused login or token: the operator must act
            log.error("SMTP login to %s:%s impossible; mail waits in the outbox: %s",
                      self.settings.host, self.settings.port, err)
            return
        log.warning("SMTP server %s:%s unavailable (%s); mail waits in the outbox",
                    self.settings.host, self.settings.port, err)

    def _up_again(self) -> None:
        if self._outage_alerted:
            log.warning("event=smtp_recovered SMTP %s:%s works again; the outbox is sent",
                        self.settings.host, self.settings.port)
        self._down_logged, self._down_since, self._outage_alerted = False, None, False


# an outcome decided but not committed yet: writes it in the given transaction, returns the
# (kind, outcome) to count once committed, None when the row was taken over
_Write = Callable[[Session], "tuple[str, str] | None"]


class _Link:
    """The flush's one SMTP connection: opened (and logged in, `smtp_login`) when the first
    row needs it and again only after the server dropped it or it was closed as unusable."""

    def __init__(self, sender: Sender, now: datetime) -> None:
        self.sender, self.now = sender, now
        self.smtp: aiosmtplib.SMTP | None = None
        self.reason: Exception | None = None  # why the server cannot be reached
        self.down = False

    async def open(self) -> aiosmtplib.SMTP | None:
        """The connection, connected and logged in; None when the server cannot be reached
        or refuses the login (`reason` says why; it is not tried again in this flush)."""
        if self.down:
            return None
        if self.smtp is not None and self.smtp.is_connected:
            return self.smtp
        smtp = self.sender._client()
        try:
            await smtp.connect()
            await smtp_login(smtp, self.sender.settings, self.sender.tokens)
            if smtp.is_ehlo_or_helo_needed:
                # its answer says whether PIPELINING is offered; a server that refuses EHLO
                # gets HELO from aiosmtplib's own fallback at the first MAIL
                with contextlib.suppress(aiosmtplib.SMTPHeloError):
                    await smtp.ehlo()
        except (aiosmtplib.SMTPException, OSError, MailbotError) as err:
            # a refused login or token (the secret expired) keeps mail waiting like a server
            # that is down; the log line says what to fix
            smtp.close()
            self.down, self.reason = True, self.sender._explained(err)
            self.sender._log_down(self.reason, self.now)
            return None
        self.sender._up_again()
        self.smtp = smtp
        return smtp

    async def quit(self) -> None:
        if self.smtp is None or not self.smtp.is_connected:
            return
        try:
            await self.smtp.quit()
        except (aiosmtplib.SMTPException, OSError):
            self.smtp.close()


def _update(*where: ColumnElement[bool]) -> Update:
    """UPDATE of outbox rows that match `where`, for `rows_changed`. The session is not
    made to evaluate `where` against the rows it holds (SQLAlchemy's default
    synchronize_session): the sender re-reads the rows it claims (`_claim`) and sets the
    ones it writes itself (`_written`)."""
    return update(Outbox).where(*where).execution_options(synchronize_session=False)


def _told(row: Outbox) -> str:
    """An outbox incident as the operator reads it: which mail, to whom, what happened."""
    return (f"outbox {row.id} ({row.kind} to {', '.join(row.recipients)}, subject "
            f"{row.subject!r}) is {row.state}: {row.last_error}")


# a bare CR or LF only: a mail already in CRLF (all the bot composes) comes back as the same
# object, neither copied nor rewritten line by line (issue #16: a 25 MB mail was copied twice)
_LINE_END = re.compile(rb"\r(?!\n)|(?<!\r)\n")
_LEADING_DOT = re.compile(rb"(?m)^\.")


async def _envelope(smtp: aiosmtplib.SMTP, sender: str, recipients: list[str],
                    results: dict[str, str]) -> list[str]:
    """MAIL FROM `sender` and RCPT TO each of `recipients`; a refused recipient's reply
    ("code text") goes into `results`. Pipelined (RFC 2920) when the server's EHLO offers
    PIPELINING, else one command after the other. Returns the accepted recipients, in
    order. Raises SMTPResponseException when MAIL is refused (or the server closes, 421),
    SMTPException or OSError when the connection fails."""
    protocol = smtp.protocol
    if (protocol is not None and not smtp.is_ehlo_or_helo_needed
            and smtp.supports_extension("pipelining") and _can_pipeline(protocol)
            and all(a.isascii() for a in [sender, *recipients])):
        lines = [b"MAIL FROM:" + quote_address(sender).encode("ascii") + b"\r\n"]
        lines += [b"RCPT TO:" + quote_address(r).encode("ascii") + b"\r\n"
                  for r in recipients]
        timeout = smtp.timeout if isinstance(smtp.timeout, float | int) else None
        mail, *replies = await _pipelined(protocol, lines, timeout)
        if mail.code == 421 or any(r.code == 421 for r in replies):
            smtp.close()  # RFC 5321 4.2.2: the server is closing the connection
            raise aiosmtplib.SMTPResponseException(421, "service not available, closing")
        if mail.code != 250:  # the RCPTs were answered 503 "need MAIL": nothing was taken
            raise aiosmtplib.SMTPSenderRefused(mail.code, mail.message, sender)
    else:
        await smtp.mail(sender)
        replies = [await _rcpt(smtp, r) for r in recipients]
    accepted = []
    for recipient, reply in zip(recipients, replies, strict=True):
        if reply.code in (250, 251):  # 251: "will forward" (RFC 5321 4.2.2), as aiosmtplib
            accepted.append(recipient)
        else:
            results[recipient] = f"{reply.code} {reply.message}"
    return accepted


async def _rcpt(smtp: aiosmtplib.SMTP, recipient: str) -> aiosmtplib.SMTPResponse:
    """RCPT TO `recipient`, its refusal as a reply like any other."""
    try:
        return await smtp.rcpt(recipient)
    except aiosmtplib.SMTPRecipientRefused as err:
        return aiosmtplib.SMTPResponse(err.code, err.message)


def _can_pipeline(protocol: SMTPProtocol) -> bool:
    """aiosmtplib offers no pipelining: `_pipelined` uses its protocol's reply parser and
    buffer (aiosmtplib 5.x); any other version sends one command after the other."""
    return callable(getattr(protocol, "_read_response_from_buffer", None)) and isinstance(
        getattr(protocol, "_buffer", None), bytearray)


_REPLIES_MAX = 32 * 1024  # aiosmtplib 5's bound on one reply (MAX_RESPONSE_LENGTH)


async def _pipelined(protocol: SMTPProtocol, lines: list[bytes], timeout: float | None
                     ) -> list[aiosmtplib.SMTPResponse]:
    """Write `lines` (commands, each CRLF-ended) in one go and return the server's replies,
    one per line, in order (RFC 2920 3.1: the server answers in the order of the commands).

    aiosmtplib's SMTPProtocol reads one reply per command it wrote and drops bytes that
    arrive while no reply is awaited or one is already waiting to be picked up, which
    would lose the replies of a pipeline; while this runs, every byte received goes to its
    buffer and the replies are parsed from it with its own parser. Raises
    SMTPServerDisconnected when the connection ends, SMTPReadTimeoutError after `timeout`
    seconds (None: no limit) without a complete reply, SMTPResponseException for a reply
    longer than aiosmtplib accepts."""
    arrived = asyncio.Event()

    def collect(data: bytes) -> None:
        protocol._buffer.extend(data)
        arrived.set()

    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    # the transport calls the instance's data_received: this one, until the finally
    setattr(protocol, "data_received", collect)  # noqa: B010 (mypy: no method assignment)
    try:
        protocol.write(b"".join(lines))
        replies: list[aiosmtplib.SMTPResponse] = []
        while len(replies) < len(lines):
            reply = protocol._read_response_from_buffer()
            if reply is not None:
                replies.append(reply)
                continue
            if not protocol.is_connected:
                raise aiosmtplib.SMTPServerDisconnected("connection lost in a pipeline")
            if len(protocol._buffer) > _REPLIES_MAX:
                raise aiosmtplib.SMTPResponseException(500, "reply too long")
            if deadline is not None and loop.time() >= deadline:
                raise aiosmtplib.SMTPReadTimeoutError("timed out waiting for a reply")
            arrived.clear()
            # woken by data; every 0.5 s to notice a lost connection (no data comes then)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrived.wait(), 0.5)
        return replies
    finally:
        delattr(protocol, "data_received")  # the class's own again


async def _data_content(smtp: aiosmtplib.SMTP, raw: bytes) -> None:
    """DATA, the server's 354, and the content with CRLF line ends and dot-stuffed (RFC 5321
    4.5.2), all but the final "." line, which the caller sends (`SMTP.data` would send it in
    the same write). Until that line the server keeps nothing (RFC 5321 4.1.1.4), so a crash
    before it is safe to send again. Raises SMTPResponseException when DATA is refused."""
    start = await smtp.execute_command(b"DATA")
    if start.code != 354:
        raise aiosmtplib.SMTPDataError(start.code, start.message)
    if smtp.protocol is None:
        raise aiosmtplib.SMTPServerDisconnected("connection lost after DATA")
    content = _LEADING_DOT.sub(b"..", _LINE_END.sub(b"\r\n", raw))
    smtp.protocol.write(content if content.endswith(b"\r\n") else content + b"\r\n")


def _open(result: str | None) -> bool:
    """A recipient still to be sent to: never tried, or refused for now (4xx)."""
    return result is None or result.startswith("4")


async def _reset(smtp: aiosmtplib.SMTP) -> None:
    """RSET after a refused transaction, so the connection serves the next row."""
    with contextlib.suppress(aiosmtplib.SMTPException, OSError):
        await smtp.rset()


def _receipt_latency(session: Session, row: Outbox, sent: datetime) -> None:
    """Observe how long the brief of `row`'s case waited for its receipt: from its arrival
    in the mailbox (the server's INTERNALDATE, RFC 3501 section 2.3.3; the fetch time when
    there is none or the clock was set with --now) to `sent`."""
    brief = session.exec(select(RawMessage).where(RawMessage.case_id == row.case_id)
                         .order_by(col(RawMessage.id))).first()
    if brief is None:
        return
    arrived = as_utc(brief.fetched_at)
    if brief.internaldate is not None and as_utc(brief.internaldate) <= arrived:
        arrived = as_utc(brief.internaldate)
    metrics.receipt_sent(arrived, sent)


def _event(session: Session, row: Outbox, now: datetime, kind: str, detail: str) -> None:
    session.add(CaseEvent(case_id=row.case_id, at=now, kind=kind,
                          detail=f"{row.kind} {row.message_id}: {detail}"[:2000]))
