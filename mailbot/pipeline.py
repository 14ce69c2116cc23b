"""One sweep of the mailbox, and one inbound message end to end in one transaction.

Order of durability (DESIGN.md section 2, SCENARIOS R1-R4):
  fetch -> raw bytes in the blob store + ledger row COMMITTED
        -> attempt counted and COMMITTED (a crash while parsing still counts, R9)
        -> case changes + audit + outbox rows + ledger state in ONE transaction
        -> only then the IMAP move to Processed / Quarantine.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from mailbot.app import Bot
from mailbot.cases.opening import open_case, record, send_receipt
from mailbot.clock import COPENHAGEN, as_utc
from mailbot.council.agenda import apply_decisions
from mailbot.council.reviews import (
    applicant_followup,
    apply_verdict,
    identity_problem,
    role_addresses,
    route,
    secretary_attention,
)
from mailbot.db import transaction
from mailbot.errors import PermanentError
from mailbot.faults import crash_point
from mailbot.intake.mailbox import FetchedMail, Mailbox
from mailbot.intake.parse import Inbound, content_sha256, header_message_id, msgid_hash, parse
from mailbot.intake.screen import ScreenResult, screen
from mailbot.intake.threads import CASE_REF, ThreadMatch, find_thread, looks_like_reply
from mailbot.models import Case, MailboxState, RawMessage, Review
from mailbot.reading.brief import read_brief
from mailbot.reading.decisions import read_decisions
from mailbot.reading.replies import read_verdict
from mailbot.redact import redact_cpr
from mailbot.rules import ROLES as REVIEWER_ROLES

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 3


@dataclass
class SweepReport:
    fetched: int = 0
    processed: int = 0
    quarantined: int = 0
    moved: int = 0


# -- the sweep ------------------------------------------------------------------------------
def sweep(bot: Bot, mailbox: Mailbox) -> SweepReport:
    """Ingest everything new, process it, move what is done. Safe to repeat at any point."""
    report = SweepReport()
    _remember_uidvalidity(bot, mailbox)
    report.fetched = ingest(bot, mailbox)
    report.processed, report.quarantined = process_pending(bot)
    crash_point("after_commit")
    report.moved = move_done(bot, mailbox)
    return report


def _remember_uidvalidity(bot: Bot, mailbox: Mailbox) -> None:
    folder = mailbox.settings.folder
    with transaction(bot.engine) as session:
        state = session.get(MailboxState, folder)
        if state is not None and state.uidvalidity != mailbox.uidvalidity:
            # I1: no mass re-processing; the Message-ID/hash check in `handle` skips known mail.
            log.warning("UIDVALIDITY of %s changed from %s to %s; re-scanning by Message-ID",
                        folder, state.uidvalidity, mailbox.uidvalidity)
        session.merge(MailboxState(folder=folder, uidvalidity=mailbox.uidvalidity,
                                   last_sweep_at=bot.clock.now()))


def ingest(bot: Bot, mailbox: Mailbox) -> int:
    folder, uidvalidity = mailbox.settings.folder, mailbox.uidvalidity
    uids = mailbox.all_uids()
    if not uids:
        return 0
    with Session(bot.engine) as session:
        known = set(session.exec(
            select(RawMessage.uid).where(RawMessage.folder == folder,
                                         RawMessage.uidvalidity == uidvalidity,
                                         col(RawMessage.uid) >= uids[0])
        ).all())
    new = [uid for uid in uids if uid not in known]
    if not new:
        return 0
    limit = int(mailbox.settings.max_message_mb * 1024 * 1024)
    sizes = mailbox.sizes(new)
    oversize = [uid for uid in new if sizes.get(uid, 0) > limit]
    for uid in oversize:
        _store_oversize(bot, folder, uidvalidity, uid, sizes[uid], limit)
    wanted = [uid for uid in new if uid not in oversize]
    count = 0
    for chunk in mailbox.fetch(wanted):
        _store(bot, folder, uidvalidity, chunk)
        count += len(chunk)
    return count + len(oversize)


def _store(bot: Bot, folder: str, uidvalidity: int, chunk: list[FetchedMail]) -> None:
    """Raw bytes on disk (fsync'd) first, then the ledger rows in one commit."""
    digests = [bot.blobs.put(fetched.raw) for fetched in chunk]
    crash_point("after_fetch")
    now = bot.clock.now()
    with transaction(bot.engine) as session:
        for fetched, raw_sha in zip(chunk, digests, strict=True):
            message_id = header_message_id(fetched.raw)
            session.add(RawMessage(
                folder=folder, uidvalidity=uidvalidity, uid=fetched.uid, message_id=message_id,
                msgid_hash=msgid_hash(message_id, fetched.raw), raw_sha256=raw_sha,
                content_sha256=content_sha256(fetched.raw), size=len(fetched.raw),
                internaldate=fetched.internaldate, fetched_at=now,
            ))
            log.info("stored UID %s %s (%d bytes)", fetched.uid,
                     message_id or "<no Message-ID>", len(fetched.raw))


def _store_oversize(bot: Bot, folder: str, uidvalidity: int, uid: int, size: int,
                    limit: int) -> None:
    """I11: the body is never downloaded; the mail goes to quarantine with the reason."""
    marker = hashlib.sha256(f"oversize:{folder}:{uidvalidity}:{uid}".encode()).hexdigest()
    with transaction(bot.engine) as session:
        session.add(RawMessage(
            folder=folder, uidvalidity=uidvalidity, uid=uid, msgid_hash=marker,
            raw_sha256="", content_sha256="", size=size, fetched_at=bot.clock.now(),
            state="quarantined", target_folder=_folders(bot)[1],
            reason=f"message of {size} bytes exceeds imap.max_message_mb ({limit} bytes)",
        ))
    log.warning("UID %s quarantined unread: %s bytes > %s", uid, size, limit)


def process_pending(bot: Bot) -> tuple[int, int]:
    """Handle every stored mail not yet handled, oldest first (FIFO by arrival)."""
    with Session(bot.engine) as session:
        ids = list(session.exec(
            select(RawMessage.id).where(RawMessage.state == "received")
            .order_by(col(RawMessage.id))
        ).all())
    processed = quarantined = 0
    for raw_id in ids:
        assert raw_id is not None
        state = handle(bot, raw_id)
        processed += state != "received"
        quarantined += state == "quarantined"
    return processed, quarantined


def move_done(bot: Bot, mailbox: Mailbox) -> int:
    """Touch the mailbox only after the commit: move every handled mail still in the folder."""
    with Session(bot.engine) as session:
        rows = list(session.exec(
            select(RawMessage).where(
                RawMessage.folder == mailbox.settings.folder,
                RawMessage.uidvalidity == mailbox.uidvalidity,
                RawMessage.state != "received",
                col(RawMessage.moved_at).is_(None),
            ).order_by(col(RawMessage.id))
        ).all())
    by_folder: dict[str, list[RawMessage]] = {}
    for row in rows:
        by_folder.setdefault(row.target_folder, []).append(row)
    for folder, group in by_folder.items():
        mailbox.move([row.uid for row in group], folder)
        with transaction(bot.engine) as session:
            for row in group:
                row.moved_at = bot.clock.now()
                session.add(row)
    return len(rows)


def _folders(bot: Bot) -> tuple[str, str]:
    return bot.settings.imap.processed_folder, bot.settings.imap.quarantine_folder


# -- one message ----------------------------------------------------------------------------
def handle(bot: Bot, raw_id: int) -> str:
    """Process one stored mail; returns its new state. Never raises for a bad mail."""
    attempts = _count_attempt(bot, raw_id)
    try:
        with transaction(bot.engine) as session:
            row = session.get(RawMessage, raw_id)
            assert row is not None
            mail = parse(bot.blobs.get(row.raw_sha256))
            _route(session, bot, row, mail)
            return row.state
    except PermanentError as err:
        return _quarantine(bot, raw_id, str(err))
    except Exception as err:  # one bad mail must never stop the loop (SCENARIOS R8)
        log.exception("raw message %s failed (attempt %s of %s)", raw_id, attempts, MAX_ATTEMPTS)
        if attempts >= MAX_ATTEMPTS:
            return _quarantine(bot, raw_id, f"failed {attempts} times: {type(err).__name__}: {err}")
        return "received"


def _count_attempt(bot: Bot, raw_id: int) -> int:
    with transaction(bot.engine) as session:
        row = session.get(RawMessage, raw_id)
        assert row is not None
        row.attempts += 1
        session.add(row)
        return row.attempts


def _quarantine(bot: Bot, raw_id: int, reason: str) -> str:
    with transaction(bot.engine) as session:
        row = session.get(RawMessage, raw_id)
        assert row is not None
        _finish(row, "quarantined", reason, bot)
        record(session, None, raw_id, bot.clock.now(), "quarantined", reason,
               source_key=f"quarantined:{raw_id}")
        session.add(row)
    log.warning("raw message %s (%s) quarantined: %s", raw_id, row.message_id, reason)
    return "quarantined"


def _finish(row: RawMessage, state: str, reason: str, bot: Bot, kind: str = "") -> None:
    processed, quarantine = _folders(bot)
    row.state = state
    row.reason = redact_cpr(reason)[:2000]
    row.kind = kind or row.kind
    row.target_folder = quarantine if state == "quarantined" else processed


def _route(session: Session, bot: Bot, row: RawMessage, mail: Inbound) -> None:
    """Decide what the mail is and apply it. Every branch ends in one recorded state."""
    now = bot.clock.now()
    row.sender, row.subject = mail.from_address, redact_cpr(mail.subject)[:500]
    session.add(row)
    duplicate = _earlier_copy(session, row)
    if duplicate is not None:
        _finish(row, "duplicate", f"same mail as raw message {duplicate.id}", bot, duplicate.kind)
        row.duplicate_of, row.case_id = duplicate.id, duplicate.case_id
        log.info("UID %s is a duplicate of raw message %s", row.uid, duplicate.id)
        return
    verdict = screen(mail, bot.rules.screening, bot.address)
    thread = find_thread(mail, bot.domain, bot.secret, bot.address)
    case = _case_by_ref(session, thread.case_ref)
    if verdict.is_machine:
        _ignore_machine(session, row, verdict, case, now, bot)
    elif thread.agenda:
        _agenda_reply(session, row, mail, thread.agenda, now, bot)
    elif _is_secretary(bot, mail) and thread.case_ref is None and CASE_REF.search(mail.text):
        _finish(row, "ignored", "the secretary named cases without replying to an agenda "
                "mail; no decision applied", bot, "reply")
        record(session, None, row.id, now, "decisions_not_applied",
               "decision-like mail from the secretary that does not reference an agenda")
    elif thread.case_ref is not None:
        _thread_mail(session, row, mail, case, thread, now, bot)
    elif looks_like_reply(mail):
        _finish(row, "ignored", "a reply on a thread that names no case", bot, "reply")
    else:
        _new_brief(session, row, mail, now, bot)


def _earlier_copy(session: Session, row: RawMessage) -> RawMessage | None:
    """R5: same Message-ID and same content = one mail delivered twice. R7: same Message-ID
    with different content is a broken sender, not a duplicate; both are kept."""
    earlier = session.exec(
        select(RawMessage).where(RawMessage.msgid_hash == row.msgid_hash,
                                 RawMessage.id != row.id,
                                 col(RawMessage.state).in_(["processed", "ignored", "duplicate"]))
        .order_by(col(RawMessage.id))
    ).all()
    for other in earlier:
        if other.content_sha256 == row.content_sha256 or other.raw_sha256 == row.raw_sha256:
            return other
    if earlier:
        record(session, None, row.id, as_utc(row.fetched_at), "conflicting_message_id",
               f"Message-ID {row.message_id} already seen with other content")
    return None


def _case_by_ref(session: Session, ref: str | None) -> Case | None:
    if ref is None:
        return None
    return session.exec(select(Case).where(Case.ref == ref)).first()


def _ignore_machine(session: Session, row: RawMessage, verdict: ScreenResult,
                    case: Case | None, now: datetime, bot: Bot) -> None:
    _finish(row, "ignored", f"{verdict.category}: {verdict.reason}", bot, verdict.message_kind)
    if case is not None:
        row.case_id = case.id
        record(session, case.id, row.id, now, verdict.message_kind,
               f"{verdict.category} from {row.sender}: {verdict.reason}",
               source_key=f"machine:{row.id}")
    log.info("UID %s ignored (%s): %s", row.uid, verdict.category, verdict.reason)


def _thread_mail(session: Session, row: RawMessage, mail: Inbound, case: Case | None,
                 thread: ThreadMatch, now: datetime, bot: Bot) -> None:
    """A mail that names a case: a reviewer's verdict, the applicant's follow-up, or
    something for the secretary. Only a signed id plus the right sender makes a verdict."""
    if case is None:
        _finish(row, "ignored", f"refers to {thread.case_ref}, which is not a case here", bot,
                "reply")
        return
    _finish(row, "processed", f"reply on {case.ref}", bot, "reply")
    row.case_id = case.id
    record(session, case.id, row.id, now, "reply",
           f"mail on the thread from {mail.from_address or 'an unknown sender'}",
           source_key=f"reply:{row.id}")
    if thread.review:
        _review_reply(session, row, mail, case, thread.review, now, bot)
    elif thread.tampered:
        secretary_attention(session, bot, case, "a reply carries a damaged or forged id of "
                            "ours; nothing was applied", mail, now)
    elif mail.from_address == case.applicant_address:
        applicant_followup(session, bot, case, mail, row, now)
    elif any(mail.from_address in role_addresses(bot, role) for role in REVIEWER_ROLES):
        secretary_attention(session, bot, case, f"{mail.from_address} (a reviewer) wrote on "
                            "the thread without replying to our request; no verdict applied",
                            mail, now)
    elif mail.from_address.endswith("@" + bot.domain):
        record(session, case.id, row.id, now, "information",
               f"{mail.from_address} wrote on the thread")
    else:
        secretary_attention(session, bot, case, f"mail on the thread from outside the "
                            f"municipality ({mail.from_address or 'unknown sender'})", mail, now)
    log.info("[%s] UID %s %s handled as a reply", case.ref, row.uid, row.message_id)


def _is_secretary(bot: Bot, mail: Inbound) -> bool:
    return mail.from_address in {a.lower() for a in bot.settings.council.secretary}


def _agenda_reply(session: Session, row: RawMessage, mail: Inbound, agenda: str,
                  now: datetime, bot: Bot) -> None:
    """Decisions count only from a secretary address replying to our signed agenda mail."""
    if not _is_secretary(bot, mail):
        _finish(row, "ignored", f"reply to the agenda from {mail.from_address or 'unknown'}, "
                "who is not in council.secretary; no decision applied", bot, "reply")
        record(session, None, row.id, now, "decisions_not_applied",
               f"agenda reply from {mail.from_address}")
        return
    found = read_decisions(mail.text or mail.html_text, bot.rules)
    apply_decisions(session, bot, agenda, mail, found, now)
    _finish(row, "processed", f"decisions for the meeting of {agenda}: "
            f"{len(found.decisions)} mapped, {len(found.unmapped)} listed back", bot, "reply")


def _review_reply(session: Session, row: RawMessage, mail: Inbound, case: Case,
                  review_id: int, now: datetime, bot: Bot) -> None:
    review = session.get(Review, review_id)
    if review is None:
        secretary_attention(session, bot, case, "a reply names a review that does not exist",
                            mail, now)
        return
    problem = identity_problem(bot, review, case, mail)
    if problem:
        secretary_attention(session, bot, case, f"verdict not applied: {problem}", mail, now)
        return
    apply_verdict(session, bot, case, review, read_verdict(mail.text or mail.html_text,
                                                           bot.rules), mail, now)


def _new_brief(session: Session, row: RawMessage, mail: Inbound, now: datetime,
               bot: Bot) -> None:
    if not mail.from_address:
        raise PermanentError("no single, well-formed From address: cannot tell who applies")
    reading = read_brief(mail, bot.rules, now.astimezone(COPENHAGEN).date())
    case = open_case(session, bot, mail, row, reading, now)
    send_receipt(session, bot, case, mail, reading, now)
    route(session, bot, case, now)
    _finish(row, "processed", f"opened {case.ref}", bot, "brief")
    row.case_id = case.id
    log.info("[%s] opened from %s (%s); missing: %s", case.ref, row.uid, row.message_id,
             ", ".join(reading.missing) or "nothing")
