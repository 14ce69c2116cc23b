"""The steps retention and erasure share: drop a mail's content from the ledger, release the
blobs nobody needs any more (one reference check, SCENARIOS F7), delete the copies in the
Processed and Quarantine folders, anonymise a case.

What the ledger keeps of a purged mail is what its guarantees need (DESIGN.md section 2):
folder, UIDVALIDITY, UID and generation (that UID is never fetched again), msgid_hash,
raw_sha256 and content_sha256 (the same mail delivered again is a `duplicate`, never a
second answer: mailbot.intake.ledger.earlier_copy), state, kind, size and dates. Sender,
subject and reason go; the Message-ID goes once the copy on IMAP is gone (it is how the copy
is found).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, select

from mailbot.db import transaction
from mailbot.errors import MailbotError
from mailbot.intake.parse import ADDRESS_PATTERN
from mailbot.models import Case, CaseDocument, CaseEvent, Guidance, Outbox, RawMessage, Review
from mailbot.vocabulary import OutboxState, PrivacyEvent

if TYPE_CHECKING:
    from mailbot.app import Bot

log = logging.getLogger(__name__)

# In the daemon, a blob that the blob store's put stored or met this recently may belong to a mail
# whose ledger row is not committed yet (put comes first, then the commit): the daily job
# leaves it for the next run. The commands run under the leader lock, with no intake: no grace.
BLOB_IDLE_SECONDS = 600
UNSENT = (OutboxState.PENDING, OutboxState.SENDING)
_OWN_EVENTS = frozenset(PrivacyEvent)


def copy_folders(bot: Bot) -> tuple[str, str]:
    """The folders mailbot moves handled mail to, where its copies are deleted."""
    return bot.settings.imap.processed_folder, bot.settings.imap.quarantine_folder


def in_use(session: Session, sha256: str) -> bool:
    """Whether a row still needs the blob `sha256`: a ledger row or a case document that is
    not purged. The one reference check of retention and erasure: the same attachment in
    two people's cases is one file (content-addressed), kept while either needs it
    (SCENARIOS F7)."""
    if not sha256:
        return False
    mail = session.exec(select(RawMessage.id).where(
        RawMessage.raw_sha256 == sha256, col(RawMessage.purged_at).is_(None)).limit(1)).first()
    if mail is not None:
        return True
    document = session.exec(select(CaseDocument.id).where(
        CaseDocument.blob_sha256 == sha256, col(CaseDocument.purged_at).is_(None)).limit(1)
    ).first()
    return document is not None


def purge_mail(session: Session, row: RawMessage, copies: tuple[str, ...],
               now: datetime) -> str:
    """Drop the mail's content from its ledger row and its events' details (see the module
    docstring for what stays). `copies`: the folders whose copy `remove_copies` deletes; a
    mail left elsewhere (imap.start_from = "now") or without a Message-ID has none we can
    find. Returns the blob hash the row referenced ("" none): the caller releases it after
    its commit."""
    row.sender = row.subject = row.reason = ""
    row.purged_at = now
    # a released mail's copy left the folder this row put it in (mailbot.admin): the copy
    # found there by Message-ID now would be another row's
    if row.imap_removed_at is not None or not (
            row.message_id and row.moved_at is not None and row.target_folder in copies):
        row.imap_removed_at, row.message_id = row.imap_removed_at or now, ""
    session.add(row)
    for event in session.exec(select(CaseEvent).where(CaseEvent.raw_message_id == row.id)):
        if event.kind not in _OWN_EVENTS:
            event.detail = ""
            session.add(event)
    return row.raw_sha256


def purge_document(session: Session, document: CaseDocument, now: datetime) -> str:
    """Drop the document's blob reference (its name and kind stay for the case until it is
    anonymised). Returns the hash to release after the commit."""
    document.purged_at = now
    session.add(document)
    return document.blob_sha256


def purge_sent(session: Session, row: Outbox) -> bool:
    """Drop the stored copy of a mail the bot sent (its attachments, names, answers). Mail
    not sent yet is kept. The Message-ID stays: replies are threaded by it. True when a copy
    was dropped."""
    if row.state in UNSENT or not row.raw:
        return False
    row.raw = b""
    session.add(row)
    return True


def release(bot: Bot, hashes: Iterable[str], now: datetime, grace_seconds: float = 0) -> int:
    """Delete the blob files of `hashes` that no row needs any more (`in_use`) and that the
    intake has not met within `grace_seconds` (the daemon's job: BLOB_IDLE_SECONDS; 0 for
    the commands, which run while no intake does). Run after the purge is committed, so a
    crash in between leaves a file, never a row without its file; `leftovers` finds such a
    file next time. Returns how many files were deleted."""
    deleted = 0
    with Session(bot.engine) as session:
        for sha in sorted({h for h in hashes if h}):
            if bot.blobs.exists(sha) and not in_use(session, sha) and \
                    bot.blobs.remove_if_idle(sha, now, grace_seconds):
                deleted += 1
    return deleted


def leftovers(bot: Bot) -> set[str]:
    """Hashes of purged mails and documents whose blob file is still there: shared with a
    row that needed it then, too new, or left by a crash after the commit."""
    with Session(bot.engine) as session:
        mails = session.exec(select(RawMessage.raw_sha256).where(
            col(RawMessage.purged_at).is_not(None), RawMessage.raw_sha256 != "")).all()
        documents = session.exec(select(CaseDocument.blob_sha256).where(
            col(CaseDocument.purged_at).is_not(None))).all()
    return {sha for sha in {*mails, *documents} if sha and bot.blobs.exists(sha)}


@dataclass
class Copies:
    """What `remove_copies` did on IMAP: copies deleted, purged mails whose copy is still
    to be deleted (the mailbox failed), and the failure ("" none)."""

    deleted: int = 0
    waiting: int = 0
    error: str = ""


def waiting_copies(session: Session) -> list[RawMessage]:
    """Purged mails whose copy on IMAP has not been deleted yet."""
    return list(session.exec(select(RawMessage).where(
        col(RawMessage.purged_at).is_not(None), col(RawMessage.imap_removed_at).is_(None))
        .order_by(col(RawMessage.id))).all())


def remove_copies(bot: Bot, now: datetime) -> Copies:
    """Delete the Processed/Quarantine copy of every purged mail that still has one, folder
    by folder (Mailbox.delete_copies), on a connection of its own. A mailbox that cannot be
    reached or fails is logged and reported, never raised: those rows keep
    `imap_removed_at` empty and the next run tries again."""
    from mailbot.intake.mailbox import Mailbox

    with Session(bot.engine) as session:
        rows = waiting_copies(session)
    result = Copies(waiting=len(rows))
    if not rows:
        return result
    by_folder: dict[str, list[RawMessage]] = {}
    for row in rows:
        by_folder.setdefault(row.target_folder, []).append(row)
    mailbox = Mailbox(bot.settings.imap, bot.settings.source, bot.tokens)
    try:
        mailbox.connect()
        for folder, group in by_folder.items():
            result.deleted += mailbox.delete_copies(
                folder, [(row.message_id, row.size) for row in group])
            with transaction(bot.engine) as session:
                for row in group:
                    row.imap_removed_at, row.message_id = now, ""
                    session.add(row)
            result.waiting -= len(group)
    except MailbotError as err:
        result.error = str(err)
        log.warning("retention: %d purged mails keep their copy on IMAP until the next run: "
                    "%s", result.waiting, err)
    finally:
        mailbox.close()
    return result


def anonymise_case(session: Session, case: Case, placeholder: str, copies: tuple[str, ...],
                   now: datetime) -> list[str]:
    """Remove the personal data of a case and everything on it: names, addresses, the
    answers' and declarations' free text, reasons, comments, subjects, document names,
    event details, the copies of mail sent; any raw mail and document still held is purged.
    What stays, for statistics: the ref, dates, status, phase, decision, project type,
    SBSYS number, the answers' keys, amounts, counts. Returns the blob hashes to release
    after the commit."""
    hashes = [purge_mail(session, row, copies, now) for row in session.exec(
        select(RawMessage).where(RawMessage.case_id == case.id,
                                 col(RawMessage.purged_at).is_(None)))]
    for document in session.exec(select(CaseDocument).where(CaseDocument.case_id == case.id)):
        if document.purged_at is None:
            hashes.append(purge_document(session, document, now))
        document.filename, document.note = placeholder, ""
        session.add(document)
    for sent in session.exec(select(Outbox).where(Outbox.case_id == case.id)):
        purge_sent(session, sent)
        sent.recipients, sent.subject = [placeholder], ""
        sent.results = relabel_results(sent.results, lambda _: placeholder)
        sent.last_error = ADDRESS_PATTERN.sub(placeholder, sent.last_error)
        session.add(sent)
    for item in session.exec(select(Guidance).where(Guidance.case_id == case.id)):
        item.comment = ""
        session.add(item)
    for review in session.exec(select(Review).where(Review.case_id == case.id)):
        review.recipients, review.comment = [placeholder], ""
        review.answered_by = placeholder if review.answered_by else ""
        session.add(review)
    for event in session.exec(select(CaseEvent).where(CaseEvent.case_id == case.id)):
        if event.kind not in _OWN_EVENTS:
            event.detail = ""
            session.add(event)
    _anonymise_fields(case, placeholder)
    case.anonymised_at = now
    session.add(case)
    return hashes


def relabel_results(results: dict[str, Any], name: Callable[[str], str]) -> dict[str, Any]:
    """An outbox row's per-recipient delivery results (address -> SMTP reply) with each
    address renamed by `name`; two recipients that become the same name are numbered (the
    count of deliveries stays right), and the SMTP replies, which may name them, too."""
    out: dict[str, Any] = {}
    for address, reply in results.items():
        key = base = name(address)
        n = 1
        while key in out:
            n += 1
            key = f"{base} {n}"
        out[key] = ADDRESS_PATTERN.sub(lambda m: name(m.group(0)), reply) \
            if isinstance(reply, str) else reply
    return out


def _anonymise_fields(case: Case, placeholder: str) -> None:
    def blank(text: str | None) -> str:
        return placeholder if text else ""

    case.applicant_address, case.applicant_name = placeholder, ""
    case.title, case.subject = placeholder, blank(case.subject)
    case.answers = {key: placeholder for key in case.answers}
    case.not_applicable = {key: placeholder for key in case.not_applicable}
    case.strategic_reason = blank(case.strategic_reason)
    case.project_type_reason = blank(case.project_type_reason)
    case.system_owner = placeholder if case.system_owner else case.system_owner
    case.system_owner_note = ""
    case.decision_text = blank(case.decision_text)
    if case.when:
        case.when = {**case.when, "text": placeholder}
    if case.cost:
        amounts: list[dict[str, Any]] = [{k: v for k, v in amount.items() if k != "text"}
                                         for amount in case.cost.get("amounts", [])]
        case.cost = {**case.cost, "amounts": amounts}
