"""Retention (`[retention]`, GDPR Art. 5(1)(e) storage limitation): what is due at `now`
(`due`, which changes nothing) and removing it (`run`), daily in the daemon and from
`mailbot retention run`.

- raw mail, attachments and the copies of mail sent, of a case decided or withdrawn
  `raw_days` ago (also mail sent about no case, `raw_days` after it was written);
- the case itself anonymised `case_days` after its decision or withdrawal
  (mailbot.privacy.purge.anonymise_case);
- quarantined mail and mail that belongs to no case (auto-replies, bounces, DSNs)
  `machine_days` after it arrived.

Open cases are never touched. A blob is deleted only when nothing else references it
(SCENARIOS F7); the copy in the Processed or Quarantine folder is deleted too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import or_
from sqlmodel import Session, col, select

from mailbot.audit import record
from mailbot.clock import as_utc
from mailbot.db import transaction
from mailbot.models import Case, CaseDocument, CaseEvent, Outbox, RawMessage
from mailbot.privacy.purge import (
    UNSENT,
    anonymise_case,
    copy_folders,
    leftovers,
    purge_document,
    purge_mail,
    purge_sent,
    release,
    remove_copies,
    waiting_copies,
)
from mailbot.vocabulary import CaseStatus, LedgerState, PrivacyEvent, PurgeKind

if TYPE_CHECKING:
    from mailbot.app import Bot
    from mailbot.config import RetentionSettings

CLOSED = (CaseStatus.DECIDED, CaseStatus.WITHDRAWN)


@dataclass
class Due:
    """Row ids due for removal at one `now`, per PurgeKind, and the refs of the cases
    concerned (`raw_refs`: raw data removed; `anonymise_refs`: anonymised); `per_case`:
    case id -> {PurgeKind value: count} for that case's own event."""

    ids: dict[PurgeKind, list[int]] = field(
        default_factory=lambda: {kind: [] for kind in PurgeKind})
    raw_refs: list[str] = field(default_factory=list)
    anonymise_refs: list[str] = field(default_factory=list)
    per_case: dict[int, dict[str, int]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not any(self.ids.values())

    def counts(self) -> dict[str, int]:
        return {kind.value: len(ids) for kind, ids in self.ids.items()}


@dataclass
class Report:
    """What `run` removed (or, with dry_run, would remove): the Due, plus blob files
    deleted and copies on IMAP deleted or still waiting (the mailbox's error, if any)."""

    due: Due
    dry_run: bool
    blobs_deleted: int = 0
    imap_deleted: int = 0
    imap_waiting: int = 0
    imap_error: str = ""

    def lines(self) -> list[str]:
        """The report for people: counts per kind and case refs, never content."""
        verb = "would remove" if self.dry_run else "removed"
        counts = ", ".join(f"{kind} {n}" for kind, n in self.due.counts().items())
        out = [f"retention {verb}: {counts}"]
        if self.due.raw_refs:
            out.append(f"  raw mail and attachments of: {', '.join(self.due.raw_refs)}")
        if self.due.anonymise_refs:
            out.append(f"  cases anonymised: {', '.join(self.due.anonymise_refs)}")
        if self.dry_run:
            out.append(f"  copies on IMAP to be deleted: {self.imap_waiting}")
            return out
        out.append(f"  blob files deleted: {self.blobs_deleted}; copies deleted on IMAP: "
                   f"{self.imap_deleted}")
        if self.imap_error:
            out.append(f"  IMAP failed, {self.imap_waiting} copies are tried again next run: "
                       f"{self.imap_error}")
        return out


def closed_at(session: Session, case: Case) -> datetime | None:
    """When a decided or withdrawn case was closed: its decision, else its withdrawal event
    (a withdrawal sets no decided_at), else its last update; None for an open case."""
    if case.status not in CLOSED:
        return None
    if case.decided_at is not None:
        return as_utc(case.decided_at)
    withdrawn = session.exec(select(CaseEvent.at).where(
        CaseEvent.case_id == case.id, CaseEvent.kind == "withdrawn")
        .order_by(col(CaseEvent.at).desc())).first()
    return as_utc(withdrawn or case.updated_at)


def due(session: Session, settings: RetentionSettings, watched: str, now: datetime) -> Due:
    """What retention removes at `now` (an aware datetime), changing nothing. `watched`:
    imap.folder; mail left there (imap.start_from = "now") is not the bot's to delete.
    Mail still being handled (`received`) and unsent mail are never due."""
    found = Due()
    raw_limit = now - timedelta(days=settings.raw_days)
    case_limit = now - timedelta(days=settings.case_days)
    closed = session.exec(select(Case).where(col(Case.status).in_(CLOSED))
                          .order_by(col(Case.id))).all()
    for case in closed:
        ended = closed_at(session, case)
        if ended is None or ended > raw_limit:
            continue
        mails = _ids(session, select(RawMessage.id).where(
            RawMessage.case_id == case.id, col(RawMessage.purged_at).is_(None),
            RawMessage.state != LedgerState.RECEIVED))
        documents = _ids(session, select(CaseDocument.id).where(
            CaseDocument.case_id == case.id, col(CaseDocument.purged_at).is_(None)))
        sent = _ids(session, select(Outbox.id).where(
            Outbox.case_id == case.id, col(Outbox.state).not_in(UNSENT), Outbox.raw != b""))
        found.ids[PurgeKind.CASE_MAIL] += mails
        found.ids[PurgeKind.DOCUMENT] += documents
        found.ids[PurgeKind.SENT_MAIL] += sent
        counts = {PurgeKind.CASE_MAIL.value: len(mails), PurgeKind.DOCUMENT.value:
                  len(documents), PurgeKind.SENT_MAIL.value: len(sent)}
        if mails or documents or sent:
            found.raw_refs.append(case.ref)
        if ended <= case_limit and case.anonymised_at is None:
            found.ids[PurgeKind.CASE].append(_id(case.id))
            found.anonymise_refs.append(case.ref)
            counts[PurgeKind.CASE.value] = 1
        if any(counts.values()):
            found.per_case[_id(case.id)] = {k: n for k, n in counts.items() if n}
    found.ids[PurgeKind.SENT_MAIL] += _ids(session, select(Outbox.id).where(
        col(Outbox.case_id).is_(None), col(Outbox.state).not_in(UNSENT), Outbox.raw != b"",
        col(Outbox.created_at) <= raw_limit))
    found.ids[PurgeKind.MACHINE_MAIL] = [i for i in _ids(session, select(RawMessage.id).where(
        col(RawMessage.purged_at).is_(None), RawMessage.state != LedgerState.RECEIVED,
        or_(col(RawMessage.case_id).is_(None),
            col(RawMessage.state) == LedgerState.QUARANTINED),
        RawMessage.target_folder != watched,
        col(RawMessage.fetched_at) <= now - timedelta(days=settings.machine_days)))
        if i not in found.ids[PurgeKind.CASE_MAIL]]
    return found


def _ids(session: Session, query: object) -> list[int]:
    return [int(i) for i in session.exec(query).all()]  # type: ignore[call-overload]


def _id(value: int | None) -> int:
    assert value is not None, "a stored row has an id"
    return value


def run(bot: Bot, now: datetime, dry_run: bool = False, blob_grace: float = 0) -> Report:
    """Remove what is due at `now` (see the module docstring), then delete the blob files
    nobody needs and the copies on IMAP (also those an earlier run could not reach). When
    anything was removed: one `retention_purge` event on each case touched (its counts) and
    one without a case for the whole run (counts and refs); never content. `blob_grace`:
    seconds a blob the intake met is left alone (purge.release; the daemon's job passes
    BLOB_IDLE_SECONDS, the command 0). With dry_run the same work is done in a transaction
    rolled back (the report counts the IMAP copies the run would delete) and no file or
    server is touched. Raises only on database trouble; an IMAP failure is in the report."""
    with transaction(bot.engine) as session:
        found = due(session, bot.settings.retention, bot.settings.imap.folder, now)
        report = Report(found, dry_run)
        hashes = _apply(session, bot, found, now)
        report.imap_waiting = len(waiting_copies(session))
        if dry_run:
            session.rollback()
            return report
        for case_id, counts in found.per_case.items():
            record(session, case_id, None, now, PrivacyEvent.RETENTION_PURGE,
                   ", ".join(f"{kind} {n}" for kind, n in counts.items()))
    report.blobs_deleted = release(bot, [*hashes, *leftovers(bot)], now, blob_grace)
    copies = remove_copies(bot, now)
    report.imap_deleted, report.imap_waiting, report.imap_error = (
        copies.deleted, copies.waiting, copies.error)
    if found.empty and not (report.blobs_deleted or copies.deleted or copies.error):
        return report
    with transaction(bot.engine) as session:
        if not found.empty or report.blobs_deleted or copies.deleted:
            record(session, None, None, now, PrivacyEvent.RETENTION_PURGE,
                   "; ".join(report.lines()))
        if copies.error:
            record(session, None, None, now, PrivacyEvent.RETENTION_IMAP_FAILED,
                   f"{copies.waiting} copies wait for the next run: {copies.error}")
    return report


def _apply(session: Session, bot: Bot, found: Due, now: datetime) -> list[str]:
    copies, hashes = copy_folders(bot), []
    for kind in (PurgeKind.CASE_MAIL, PurgeKind.MACHINE_MAIL):
        for row_id in found.ids[kind]:
            row = session.get(RawMessage, row_id)
            if row is not None:
                hashes.append(purge_mail(session, row, copies, now))
    for row_id in found.ids[PurgeKind.DOCUMENT]:
        document = session.get(CaseDocument, row_id)
        if document is not None:
            hashes.append(purge_document(session, document, now))
    for row_id in found.ids[PurgeKind.SENT_MAIL]:
        sent = session.get(Outbox, row_id)
        if sent is not None:
            purge_sent(session, sent)
    placeholder = bot.rules.labels.get("privacy", "anonymised")
    for row_id in found.ids[PurgeKind.CASE]:
        case = session.get(Case, row_id)
        if case is not None:
            hashes += anonymise_case(session, case, placeholder, copies, now)
    session.flush()
    return hashes
