"""One sweep of the mailbox, and one inbound message end to end in one transaction.

Order of durability (DESIGN.md section 2, SCENARIOS R1-R4):
  fetch -> raw bytes in the blob store + ledger row COMMITTED        (intake.ledger)
        -> attempt counted and COMMITTED (a crash while parsing still counts, R9)
        -> classify (intake.classify) and apply: case changes + audit + outbox rows +
           ledger state in ONE transaction                            (cases, council)
        -> only then the IMAP move to Processed / Quarantine.
"""

from __future__ import annotations

import hashlib
import logging
import signal
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from mailbot import metrics
from mailbot.app import Bot
from mailbot.audit import record
from mailbot.cases.followup import apply_followup
from mailbot.cases.lookup import find_case
from mailbot.cases.opening import open_case, send_receipt
from mailbot.clock import COPENHAGEN, as_utc
from mailbot.council.attention import tell_secretary, unauthenticated_agenda_reply
from mailbot.council.decisions import apply_decisions, move_on_request
from mailbot.council.klarmelding import answer_followup
from mailbot.council.reviews import apply_verdict, identity_problem, requests_due, route
from mailbot.council.status import send_status
from mailbot.db import transaction
from mailbot.delivery.mail import Threading, may_answer, queue_mail
from mailbot.errors import PermanentError
from mailbot.faults import crash_point, hang_point
from mailbot.intake.classify import (
    ENCRYPTED_REF,
    AgendaReply,
    CaseFacts,
    CaseMail,
    Disposition,
    EncryptedMail,
    MachineMail,
    NewBrief,
    Quarantine,
    ReviewReply,
    StrayReply,
    Unauthenticated,
    classify,
)
from mailbot.intake.inspection import read_alone
from mailbot.intake.ledger import (
    count_attempt,
    earlier_copy,
    finish,
    forget_attempt,
    ingest,
    move_done,
    quarantine,
    record_existing,
    remember_uidvalidity,
)
from mailbot.intake.mailbox import Mailbox
from mailbot.intake.parse import Inbound, parse
from mailbot.intake.screen import screen
from mailbot.intake.threads import expired, find_thread
from mailbot.logs import about_case, about_mail, isolated
from mailbot.models import Case, CaseEvent, RawMessage, Review
from mailbot.reading.brief import read_brief
from mailbot.reading.decisions import read_decisions
from mailbot.reading.documents import attachment_policy
from mailbot.reading.replies import read_verdict
from mailbot.redact import redact_cpr
from mailbot.storage import storage_error
from mailbot.vocabulary import LedgerState, Purpose
from mailbot.watchdog import HEARTBEAT

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 3
# deaths after which a mail is quarantined even though reading it alone never killed a
# separate process: the bound that keeps a mail the daemon dies on from looping (R9)
MAX_DEATHS = 2 * MAX_ATTEMPTS


@dataclass
class SweepReport:
    fetched: int = 0
    processed: int = 0
    quarantined: int = 0
    moved: int = 0
    waiting: int = 0  # new mails left in the folder for the next sweep (imap.batch_size)


def sweep(bot: Bot, mailbox: Mailbox) -> SweepReport:
    """Ingest at most `imap.batch_size` new mails, process them, move what is done. Safe to
    repeat at any point; `waiting` says whether another sweep has more to fetch (a backlog
    is taken in batches, so memory and the work between two commits stay bounded: R12)."""
    report = SweepReport()
    if remember_uidvalidity(bot, mailbox) and bot.settings.imap.start_from == "now":
        record_existing(bot, mailbox)
    intake = ingest(bot, mailbox, bot.settings.imap.batch_size)
    report.fetched, report.waiting = intake.stored, intake.waiting
    report.processed, report.quarantined = process_pending(bot)
    crash_point("after_commit")
    report.moved = move_done(bot, mailbox)
    return report


def process_pending(bot: Bot) -> tuple[int, int]:
    """Handle every stored mail not yet handled, oldest first (FIFO by arrival); returns
    (handled, quarantined)."""
    with Session(bot.engine) as session:
        ids = list(session.exec(
            select(RawMessage.id).where(RawMessage.state == LedgerState.RECEIVED)
            .order_by(col(RawMessage.id))
        ).all())
    processed = quarantined = 0
    for raw_id in ids:
        assert raw_id is not None
        state = handle(bot, raw_id)
        processed += state != LedgerState.RECEIVED
        quarantined += state == LedgerState.QUARANTINED
    return processed, quarantined


def handle(bot: Bot, raw_id: int) -> str:
    """Process one stored mail; returns its new ledger state. Never raises for a bad mail:
    a PermanentError quarantines at once, anything else after MAX_ATTEMPTS attempts, and a
    mail on which the process died MAX_ATTEMPTS times is quarantined without being handled
    again when reading it alone kills a separate process too (`_after_deaths`; the attempt
    is committed before the work starts). Database or disk trouble is raised, and the
    attempt is taken back: it was not the mail's fault."""
    HEARTBEAT.beat()  # each mail is progress: a long batch keeps the watchdog fed
    return isolated(_handle, bot, raw_id)


def _handle(bot: Bot, raw_id: int) -> str:
    attempts = count_attempt(bot, raw_id)
    if attempts > MAX_ATTEMPTS:
        # the earlier attempts never reached `except`: the process died while this mail was
        # in hand (SCENARIOS R9)
        reason = _after_deaths(bot, raw_id, attempts - 1)
        if reason:
            return quarantine(bot, raw_id, reason, poison=True)
    try:
        with transaction(bot.engine) as session:
            row = session.get(RawMessage, raw_id)
            assert row is not None
            about_mail(row.message_id)
            raw = bot.blobs.get(row.raw_sha256)
            crash_point("while_handling", raw)
            hang_point("while_handling", raw)
            mail = parse(raw)
            del raw  # the stored copy stays; a 25 MB mail need not be held while routing
            _route(session, bot, row, mail)
            outcome = row.state, row.kind
        metrics.ingested(row.kind, row.state)
        if outcome == (LedgerState.PROCESSED, "brief"):
            metrics.CASES_OPENED.inc()
        return outcome[0]
    except PermanentError as err:
        return quarantine(bot, raw_id, str(err))
    except Exception as err:  # one bad mail must never stop the loop (SCENARIOS R8)
        if storage_error(err) is not None:
            # the database or the disk, not the mail (R10, R11): this attempt does not count
            # towards quarantine, and the daemon waits for storage (service.StorageWatch)
            forget_attempt(bot, raw_id)
            raise
        log.exception("raw message %s failed (attempt %s of %s)", raw_id, attempts, MAX_ATTEMPTS)
        if attempts >= MAX_ATTEMPTS:
            return quarantine(bot, raw_id, f"failed {attempts} times: {type(err).__name__}: {err}",
                              poison=True)
        return LedgerState.RECEIVED


def _after_deaths(bot: Bot, raw_id: int, deaths: int) -> str:
    """Why a mail on which the process died `deaths` (>= MAX_ATTEMPTS) times is quarantined,
    or "" when it is to be handled again.

    After a restart the first mail handled is always the one in hand at the death, so kills
    that are not the mail's doing (a restart by the supervisor, `kill -9`, a reboot) land on
    it again and again when they come soon after the start. So the mail is read alone in a
    separate process first (`read_alone`): a mail that kills that process too is poison.
    One that does not is handled, until MAX_DEATHS deaths: then it is quarantined without
    being read again, so a mail that kills the daemon but not a reader alone cannot loop.
    Raises OSError when its stored bytes cannot be read (the disk, not the mail)."""
    died = f"the process died {deaths} times while handling this mail (killed or out of memory)"
    if deaths >= MAX_DEATHS:
        return f"{died}, though reading it alone did not kill a separate process; not parsed again"
    with Session(bot.engine) as session:
        row = session.get(RawMessage, raw_id)
        assert row is not None
        raw = bot.blobs.get(row.raw_sha256)
    try:
        killed = read_alone(raw, bot.rules, bot.settings,
                            bot.clock.now().astimezone(COPENHAGEN).date(), bot.secret)
    except OSError as err:  # no process to spare: take the deaths as the mail's
        return f"{died}; not parsed again (no separate process to read it alone: {err})"
    except TimeoutError as err:  # a reading that hangs would hang the daemon the same way
        return f"{died}, and {err}; not parsed again"
    if killed is not None:
        return (f"{died}, and reading it alone killed a separate process too "
                f"({signal.Signals(killed).name}); not parsed again")
    log.warning("raw message %s (%s): the process died %s times while handling it, but "
                "reading it alone did not kill a separate process, so those deaths were not "
                "its doing (restarts, kills from outside); handled again (quarantined after "
                "%s deaths)", raw_id, row.message_id, deaths, MAX_DEATHS)
    return ""


def _route(session: Session, bot: Bot, row: RawMessage, mail: Inbound) -> None:
    """Classify the mail and apply its disposition. Every branch ends in one recorded state.
    The ledger row's sender and subject are set last, so they reach the database in the
    same UPDATE as its outcome at the commit (set first, the first query's autoflush wrote
    them in an UPDATE of their own)."""
    _dispatch(session, bot, row, mail)
    row.sender, row.subject = mail.from_address, redact_cpr(mail.subject)[:500]
    session.add(row)


def _dispatch(session: Session, bot: Bot, row: RawMessage, mail: Inbound) -> None:
    duplicate = earlier_copy(session, row)
    if duplicate is not None:
        finish(row, LedgerState.DUPLICATE, f"same mail as raw message {duplicate.id}", bot,
               duplicate.kind)
        row.duplicate_of, row.case_id = duplicate.id, duplicate.case_id
        if duplicate.moved_at is not None and duplicate.target_folder == duplicate.folder:
            # its earlier copy was left in the folder (imap.start_from): so is this one (I1)
            row.target_folder, row.moved_at = row.folder, bot.clock.now()
        log.info("UID %s is a duplicate of raw message %s", row.uid, duplicate.id)
        return
    screening = screen(mail, bot.rules, bot.address)
    thread = find_thread(mail, bot.domain, bot.secret, bot.address,
                         bounce=screening.category == "bounce")
    case = find_case(session, thread.case_ref)
    if case is not None:
        about_case(case.ref)
    facts = CaseFacts(case.ref, case.applicant_address) if case is not None else None
    disposition = classify(mail, screening, thread, bot.settings, bot.rules, facts)
    _apply(session, bot, row, mail, disposition, case)


def _apply(session: Session, bot: Bot, row: RawMessage, mail: Inbound,
           disposition: Disposition, case: Case | None) -> None:
    now = bot.clock.now()
    match disposition:
        case MachineMail():
            _machine(session, bot, row, mail, disposition, case, now)
        case AgendaReply():
            _agenda_reply(session, bot, row, mail, disposition, now)
        case StrayReply():
            finish(row, LedgerState.IGNORED, disposition.reason, bot, "reply")
            if disposition.event:
                record(session, None, row.id, now, disposition.event, disposition.reason)
        case ReviewReply() | CaseMail():
            assert case is not None
            _case_mail(session, bot, row, mail, disposition, case, now)
        case NewBrief():
            _new_brief(session, bot, row, mail, now)
        case EncryptedMail():
            _encrypted(session, bot, row, mail, disposition, case, now)
        case Unauthenticated():
            _unauthenticated(session, bot, row, mail, disposition, case, now)
        case Quarantine():
            raise PermanentError(disposition.reason)


def _machine(session: Session, bot: Bot, row: RawMessage, mail: Inbound, machine: MachineMail,
             case: Case | None, now: datetime) -> None:
    screening = machine.screening
    finish(row, LedgerState.IGNORED, machine.reason, bot, screening.message_kind)
    if case is not None:
        row.case_id = case.id
        record(session, case.id, row.id, now, screening.message_kind,
               f"{screening.category} from {mail.from_address}: {screening.reason}",
               source_key=f"machine:{row.id}")
    log.info("UID %s ignored (%s): %s", row.uid, screening.category, screening.reason)


def _unauthenticated(session: Session, bot: Bot, row: RawMessage, mail: Inbound,
                     found: Unauthenticated, case: Case | None, now: datetime) -> None:
    """Mail on a case's or the agenda's thread whose From: failed DMARC at our own server
    (SCENARIOS A5): nothing in it is applied and its sender is never answered; it is
    quarantined with the reason, recorded on the case, and the secretary is told once per
    case (or meeting) and sender, so a forger who repeats himself cannot flood her."""
    finish(row, LedgerState.QUARANTINED, found.reason, bot, "reply")
    sender = mail.from_address or "?"
    # the sender as a digest: the key is a unique index, not a place for an address (GDPR
    # erasure rewrites details, it should not have to rewrite keys)
    digest = hashlib.sha256(sender.encode()).hexdigest()[:16]
    key = f"unauthenticated:{found.case_ref or found.agenda}:{digest}"
    first = session.exec(select(CaseEvent.id).where(CaseEvent.source_key == key)).first() is None
    case_id = case.id if case is not None else None
    row.case_id = case_id
    record(session, case_id, row.id, now, "unauthenticated", f"from {sender}: {found.reason}",
           source_key=key if first else None)
    if not first:
        return
    if case is not None:
        tell_secretary(session, bot, case, f"unauthenticated mail from {sender}: "
                       f"{found.reason}", now, _said(bot, "unauthenticated", sender=sender,
                                                     domain=found.failed_domain), mail)
    else:
        unauthenticated_agenda_reply(session, bot, found.agenda, mail, found.failed_domain, now)
    log.warning("UID %s from %s failed DMARC (%s): not applied", row.uid, sender,
                found.failed_domain)


def _encrypted(session: Session, bot: Bot, row: RawMessage, mail: Inbound,
               encrypted: EncryptedMail, case: Case | None, now: datetime) -> None:
    """Encrypted S/MIME: the sender is told, in Danish, that we cannot read it and how to send
    it instead; no case is opened and no case changes (a mail on a case's thread is noted on
    it). Within the answer limit, like every direct answer."""
    finish(row, LedgerState.PROCESSED, encrypted.reason, bot, "encrypted")
    case_id = case.id if case is not None else None
    if case is not None:
        row.case_id = case.id
        record(session, case.id, row.id, now, "encrypted",
               f"encrypted mail from {mail.from_address or 'an unknown sender'}: not read",
               source_key=f"encrypted:{row.id}")
    if not mail.from_address:
        return
    if not may_answer(session, bot, mail.from_address, case_id, now):
        record(session, case_id, row.id, now, "answer_withheld",
               f"encrypted-mail answer to {mail.from_address}: "
               f"{bot.settings.limits.answers_per_case_per_day} answers within 24 hours")
        return
    queue_mail(session, bot, template="encrypted_mail", purpose=Purpose.ENCRYPTED,
               to=[mail.from_address], now=now,
               sign_ref=case.ref if case is not None else ENCRYPTED_REF, case_id=case_id,
               context={"mail_subject": mail.subject, "case_ref": case.ref if case else ""},
               thread=Threading(mail.message_id, (mail.message_id,)))
    log.info("UID %s is encrypted S/MIME: the sender is asked to send it unencrypted", row.uid)


def _agenda_reply(session: Session, bot: Bot, row: RawMessage, mail: Inbound,
                  reply: AgendaReply, now: datetime) -> None:
    """Decisions count only from a secretary address replying to our signed agenda mail."""
    if not reply.from_secretary:
        finish(row, LedgerState.IGNORED, reply.reason, bot, "reply")
        record(session, None, row.id, now, "decisions_not_applied",
               f"agenda reply from {mail.from_address}")
        return
    found = read_decisions(mail.text or mail.html_text, bot.rules)
    apply_decisions(session, bot, reply.agenda, mail, found, now)
    finish(row, LedgerState.PROCESSED, f"decisions for the meeting of {reply.agenda}: "
           f"{len(found.decisions)} mapped, {len(found.unmapped)} listed back", bot, "reply")


def _case_mail(session: Session, bot: Bot, row: RawMessage, mail: Inbound,
               disposition: ReviewReply | CaseMail, case: Case, now: datetime) -> None:
    """A mail that names a case: a reviewer's verdict, the applicant's follow-up, or
    something for the secretary. Only a signed id plus the right sender makes a verdict."""
    finish(row, LedgerState.PROCESSED, f"reply on {case.ref}", bot, "reply")
    row.case_id = case.id
    record(session, case.id, row.id, now, "reply",
           f"mail on the thread from {mail.from_address or 'an unknown sender'}",
           source_key=f"reply:{row.id}")
    if isinstance(disposition, ReviewReply):
        _review_reply(session, bot, mail, case, disposition, now)
    elif disposition.tampered:
        tell_secretary(session, bot, case, "a reply carries a damaged or forged id of ours; "
                       "nothing was applied", now, _said(bot, "tampered"), mail)
    elif disposition.sender == "applicant":
        _followup(session, bot, case, mail, row, disposition, now)
    elif disposition.sender == "reviewer":
        tell_secretary(session, bot, case, f"{mail.from_address} (a reviewer) wrote on the "
                       "thread without replying to our request; no verdict applied", now,
                       _said(bot, "reviewer_on_thread", sender=mail.from_address), mail)
    elif disposition.sender == "colleague":
        record(session, case.id, row.id, now, "information",
               f"{mail.from_address} wrote on the thread")
    else:
        sender = mail.from_address or "ukendt afsender"
        tell_secretary(session, bot, case, "mail on the thread from outside the municipality "
                       f"({sender})", now, _said(bot, "outside", sender=sender), mail)
    log.info("[%s] UID %s %s handled as a reply", case.ref, row.uid, row.message_id)


def _said(bot: Bot, key: str, **fields: str) -> str:
    """The secretary's Danish words for why she must look (rules/labels.yaml `attention`)."""
    return bot.rules.labels.get("attention", key).format(**fields)


def _followup(session: Session, bot: Bot, case: Case, mail: Inbound, row: RawMessage,
              disposition: CaseMail, now: datetime) -> None:
    """The applicant asks for the checklist, postpones, withdraws, or adds to the case (new
    answers and documents are routed to the reviewers and the checklist goes back; with two
    phases a klarmelding, or any mail on a klarmeldt case, gets the klarmelding answer)."""
    if disposition.action == "status":
        send_status(session, bot, case, Purpose.STATUS, now)
    elif disposition.action in ("postpone", "withdraw"):
        move_on_request(session, bot, case, disposition.action, now)
    else:
        apply_followup(session, bot, case, mail, row, now)
        route(session, bot, case, now, at_hand=_at_hand(mail))
        if not answer_followup(session, bot, case, disposition.action == "klarmelding", now,
                               as_utc(row.internaldate) if row.internaldate else None):
            send_status(session, bot, case, Purpose.UPDATE, now)


def _review_reply(session: Session, bot: Bot, mail: Inbound, case: Case, reply: ReviewReply,
                  now: datetime) -> None:
    review = session.get(Review, reply.review)
    if review is None:
        tell_secretary(session, bot, case, "a reply names a review that does not exist", now,
                       _said(bot, "no_review"), mail)
        return
    days = bot.settings.reviews.token_days
    if expired(reply.issued, review.requested_at, now, days):
        # like a damaged id: the secretary is told, the sender never hears why (SCENARIOS A4)
        issued = reply.issued or as_utc(review.requested_at).date()
        tell_secretary(session, bot, case, f"verdict not applied: expired (the {review.role} "
                       f"request it answers was issued on {issued}, more than "
                       f"reviews.token_days = {days} days ago)", now,
                       _said(bot, "expired", sender=mail.from_address or "?",
                             role=bot.rules.role_names[review.role], days=str(days)), mail)
        return
    problem = identity_problem(bot, review, case, mail)
    if problem:
        tell_secretary(session, bot, case, f"verdict not applied: {problem}", now,
                       _said(bot, "verdict_not_applied", sender=mail.from_address or "?",
                             role=bot.rules.role_names[review.role]), mail)
        return
    apply_verdict(session, bot, case, review,
                  read_verdict(mail.text or mail.html_text, bot.rules), mail, now)


def _new_brief(session: Session, bot: Bot, row: RawMessage, mail: Inbound,
               now: datetime) -> None:
    reading = read_brief(mail, bot.rules, now.astimezone(COPENHAGEN).date(),
                         attachment_policy(bot.settings.attachments))
    case = open_case(session, bot, mail, row, reading, now)
    about_case(case.ref)
    # the receipt first (the applicant's answer within seconds), saying "sendt til vurdering"
    # only when a review request goes out (a brief whose every document is held sends none)
    send_receipt(session, bot, case, mail, reading, now,
                 reviewed=requests_due(session, bot, case))
    route(session, bot, case, now, at_hand=_at_hand(mail))
    finish(row, LedgerState.PROCESSED, f"opened {case.ref}", bot, "brief")
    row.case_id = case.id
    log.info("[%s] opened from %s (%s); missing: %s", case.ref, row.uid, row.message_id,
             ", ".join(reading.missing) or "nothing")


def _at_hand(mail: Inbound) -> dict[str, bytes]:
    """The mail's attachments by SHA-256 (hex, as the blob store names them): routing sends
    these bytes rather than reading each document back (issue #16: a 25 MB document held
    once, not twice)."""
    return {hashlib.sha256(a.payload).hexdigest(): a.payload for a in mail.attachments}
