"""A new brief opens a case: its number, its answers and documents, and the ONE receipt."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, col, func, select

from mailbot.app import Bot
from mailbot.audit import record
from mailbot.cases.documents import store_documents
from mailbot.cases.mail import mail_about_case
from mailbot.cases.project_type import set_proposal
from mailbot.cases.summary import (
    ReceiptContext,
    ReceiptDocument,
    declared_lines,
    fold_held,
    hazard_warning,
    held_lines,
    missing_answers,
    missing_documents,
    understood_answers,
)
from mailbot.db import insert_if_missing
from mailbot.delivery.mail import Threading
from mailbot.intake.parse import Inbound, clean_header_text
from mailbot.intake.threads import format_ref
from mailbot.models import Case, CaseCounter, Outbox, RawMessage
from mailbot.reading.brief import BriefReading
from mailbot.reading.project_type import ProjectTypeProposal
from mailbot.redact import redact_cpr
from mailbot.rules import Rules
from mailbot.vocabulary import CaseStatus, CostDict, OwnerSource, Purpose, check_transition

TITLE_PREFIXES = ("projektforslag:", "forslag:", "nyt it-projekt:", "new it project:",
                  "ansøgning:", "vs:", "fw:", "fwd:")
# a 10 KB subject must not become a 10 KB line on the agenda and in every mail (SCENARIOS X5)
MAX_TITLE_CHARS = 200


def next_ref(session: Session, year: int) -> str:
    """The next case reference of `year`, `ITP-<year>-<nnnn>`, in the caller's transaction;
    numbers are never reused, also when two processes (two hosts) open cases at once.

    The year's counter row is made if missing (INSERT ... ON CONFLICT DO NOTHING, db.
    insert_if_missing), then moved on by ONE `UPDATE ... SET last_number = last_number + 1
    ... RETURNING last_number`: never read-then-write. On PostgreSQL the UPDATE locks the row
    until the caller commits, and a second transaction's UPDATE waits, then adds to the
    committed value (docs, "Transaction Isolation", 13.2.1: Read Committed re-evaluates the
    updated row); on SQLite the first write takes the database's write lock. A transaction
    rolled back gives its number back, so numbers stay without gaps."""
    table = CaseCounter.__table__  # type: ignore[attr-defined]
    insert_if_missing(session, table, {"year": year, "last_number": 0}, ["year"])
    number = session.execute(
        update(table).where(table.c.year == year)
        .values(last_number=table.c.last_number + 1).returning(table.c.last_number)
    ).scalar_one()
    return format_ref(year, int(number))


def title_from_subject(subject: str) -> str:
    """The case title: the subject without "Projektforslag:", "VS:" and the like, cut to
    MAX_TITLE_CHARS with an ellipsis."""
    title = clean_header_text(subject)
    for prefix in TITLE_PREFIXES:
        if title.lower().startswith(prefix):
            title = title[len(prefix):].strip()
    title = redact_cpr(title) or "(uden emne)"
    if len(title) > MAX_TITLE_CHARS:
        title = title[: MAX_TITLE_CHARS - 1].rstrip() + "…"
    return title


# Outlook in a Danish directory writes "Friis, Hanne" or "Friis, Hanne Marie": the surname
# first, after it a comma and the given names (letters, hyphens and spaces only)
_SURNAME_FIRST = re.compile(r"^\s*([^\W\d_][\w'’-]*(?: [^\W\d_][\w'’-]*)?),\s*"
                            r"([^\W\d_][\w'’-]*(?: [^\W\d_][\w'’-]*){0,2})\s*$")


def natural_name(display_name: str) -> str:
    """The name as a letter greets her: "Friis, Hanne" -> "Hanne Friis" (the surname-first
    form of Outlook address books); any other display name as it is."""
    match = _SURNAME_FIRST.match(display_name)
    return f"{match.group(2)} {match.group(1)}" if match else display_name


def completeness(missing: list[str]) -> CaseStatus:
    return CaseStatus.INCOMPLETE if missing else CaseStatus.COMPLETE


def open_case(session: Session, bot: Bot, mail: Inbound, raw: RawMessage,
              reading: BriefReading, now: datetime) -> Case:
    """Add the case, its documents and its `case_opened` event in the caller's transaction."""
    cost: CostDict = {"amounts": [a.as_dict() for a in reading.amounts],
                      "payer": reading.payer}
    case = Case(
        ref=next_ref(session, now.year),
        applicant_address=mail.from_address,
        applicant_name=natural_name(mail.from_name),
        title=title_from_subject(mail.subject),
        subject=redact_cpr(mail.subject),
        status=check_transition(CaseStatus.RECEIVED, completeness(list(reading.missing))),
        language="en" if reading.english else bot.settings.bot.language,
        created_at=now,
        updated_at=now,
        thread_message_id=mail.message_id,
        answers=dict(reading.answers),
        from_prose=list(reading.from_prose),
        missing=list(reading.missing),
        not_applicable=dict(reading.not_applicable),
        strategic=reading.strategic,
        strategic_reason=reading.strategic_reason,
        sbsys_number=reading.sbsys_number,
        when=dict(reading.when.as_dict()) if reading.when else None,
        cost=dict(cost),
    )
    set_proposal(case, ProjectTypeProposal(reading.project_type, reading.project_type_reason))
    if reading.system_owner:
        set_system_owner(case, reading.system_owner, OwnerSource.BRIEF,
                         owner_note(bot.rules, OwnerSource.BRIEF))
    session.add(case)
    session.flush()
    assert case.id is not None and raw.id is not None
    attachments = {a.filename: a for a in mail.documents}
    store_documents(session, bot.blobs, case.id, raw.id,
                    [(attachments[doc.source], doc) for doc in reading.documents], now)
    held = [f"{d.filename} ({d.hazard})" for d in reading.documents if d.held]
    record(session, case.id, raw.id, now, "case_opened",
           f"brief from {mail.from_address}; missing: {', '.join(reading.missing) or 'nothing'}"
           + (f"; read from prose: {', '.join(reading.from_prose)}" if reading.from_prose else "")
           + (f"; held: {', '.join(held)}" if held else ""),
           source_key=f"case_opened:{raw.id}")
    return case


def set_system_owner(case: Case, owner: str | None, source: OwnerSource, note: str) -> None:
    """The case's system owner (None: nobody yet), where it came from and the words the
    agenda shows beside it (mailbot.council.owner decides the rest)."""
    case.system_owner = owner
    case.system_owner_source = source
    case.system_owner_note = note


def owner_note(rules: Rules, key: str, **values: str) -> str:
    """The note of rules/labels.yaml `system_owner` `key`, its placeholders filled."""
    return rules.labels.get("system_owner", key).format(**values)


def receipts_sent_recently(session: Session, address: str, now: datetime) -> int:
    """Receipts to this applicant within the last hour (receipts go to the case's applicant)."""
    since = now - timedelta(hours=1)
    query = (
        select(func.count()).select_from(Outbox).join(Case, col(Outbox.case_id) == col(Case.id))
        .where(Outbox.kind == Purpose.RECEIPT, Case.applicant_address == address,
               col(Outbox.created_at) >= since)
    )
    return int(session.exec(query).one())


def send_receipt(session: Session, bot: Bot, case: Case, mail: Inbound,
                 reading: BriefReading, now: datetime, reviewed: bool) -> Outbox | None:
    """The ONE receipt for a new case, an answer on the brief's thread, unless the flood
    guard (rules/screening.yaml `max_receipts_per_sender_per_hour`) holds it back.
    `reviewed`: at least one review request went out, so the receipt may say the documents
    are out for review (with every document held or unrouted it must not)."""
    assert case.id is not None
    limit = bot.rules.screening.max_receipts_per_sender_per_hour
    if receipts_sent_recently(session, case.applicant_address, now) >= limit:
        record(session, case.id, None, now, "receipt_withheld",
               f"more than {limit} receipts to {case.applicant_address} within an hour")
        return None
    return mail_about_case(
        session, bot, case, template="applicant_receipt", purpose=Purpose.RECEIPT,
        to=[case.applicant_address], now=now, language=case.language,
        context=receipt_context(bot, case, reading, reviewed),
        thread=Threading(mail.message_id, (mail.message_id,)))


def receipt_context(bot: Bot, case: Case, reading: BriefReading, reviewed: bool
                    ) -> ReceiptContext:
    """What the receipt template sees besides `case`, `mail_subject` and `bot_name`;
    `reviewed`: at least one review request went out for the brief's documents."""
    rules, language = bot.rules, case.language
    held, missing = fold_held(
        held_lines(rules, [(d.filename, d.hazard) for d in reading.documents if d.held],
                   language, bot.settings.attachments),
        missing_documents(rules, reading.missing, language))
    return ReceiptContext(
        not_applicable=declared_lines(rules, dict(reading.not_applicable), language),
        strategic=reading.strategic,
        strategic_reason=reading.strategic_reason,
        sbsys_number=reading.sbsys_number,
        sbsys_template=rules.signals.sbsys_template,
        ref=case.ref,
        title=case.title,
        applicant_name=case.applicant_name,
        documents=[ReceiptDocument(filename=d.filename, title=rules.title(d.kind, language),
                                   warning=hazard_warning(rules, d.hazard, language))
                   for d in reading.documents if not d.held],
        held=held,
        missing_answers=missing_answers(rules, reading.missing, language),
        missing_documents=missing,
        reviewed=reviewed,
        understood=understood_answers(rules, reading.answers, reading.from_prose, language),
        phases=bot.settings.council.phases,
        final_versions=[rules.title(kind, language, final=True)
                        for kind, mode in rules.required_final.items()
                        if mode == "final" and kind not in case.not_applicable],
        final_later=[rules.title(kind, language) for kind in rules.required_final
                     if kind not in rules.required and kind not in case.not_applicable
                     and kind not in {d.kind for d in reading.documents}],
    )
