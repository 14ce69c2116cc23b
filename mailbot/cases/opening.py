"""Case changes and the mails they cause; always inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, func, select

from mailbot.app import Bot
from mailbot.delivery.compose import Outgoing, build_message, tagged_subject
from mailbot.delivery.outbox import enqueue
from mailbot.intake.parse import Inbound, clean_header_text
from mailbot.intake.threads import format_ref, signed_message_id
from mailbot.models import Case, CaseCounter, CaseDocument, CaseEvent, Outbox, RawMessage
from mailbot.reading.brief import BriefReading
from mailbot.redact import redact_cpr
from mailbot.rules import Rules


def next_ref(session: Session, year: int) -> str:
    counter = session.get(CaseCounter, year)
    if counter is None:
        counter = CaseCounter(year=year, last_number=0)
    counter.last_number += 1
    session.add(counter)
    session.flush()  # the UPDATE takes the write lock, so two writers cannot share a number
    return format_ref(year, counter.last_number)


def title_from_subject(subject: str) -> str:
    title = clean_header_text(subject)
    for prefix in ("projektforslag:", "forslag:", "nyt it-projekt:", "new it project:",
                   "ansøgning:", "vs:", "fw:", "fwd:"):
        if title.lower().startswith(prefix):
            title = title[len(prefix):].strip()
    return redact_cpr(title) or "(uden emne)"


def open_case(session: Session, bot: Bot, mail: Inbound, raw: RawMessage,
              reading: BriefReading, now: datetime) -> Case:
    case = Case(
        ref=next_ref(session, now.year),
        applicant_address=mail.from_address,
        applicant_name=mail.from_name,
        title=title_from_subject(mail.subject),
        subject=redact_cpr(mail.subject),
        status="incomplete" if reading.missing else "complete",
        language="en" if reading.english else bot.settings.bot.language,
        created_at=now,
        updated_at=now,
        thread_message_id=mail.message_id,
        answers=dict(reading.answers),
        missing=list(reading.missing),
        not_applicable=dict(reading.not_applicable),
        strategic=reading.strategic,
        strategic_reason=reading.strategic_reason,
        sbsys_number=reading.sbsys_number,
        system_owner=reading.system_owner,
        when=reading.when.as_dict() if reading.when else None,
        cost={"amounts": [a.as_dict() for a in reading.amounts], "payer": reading.payer},
    )
    session.add(case)
    session.flush()
    assert case.id is not None
    attachments = {a.filename: a for a in mail.documents}
    for doc in reading.documents:
        attachment = attachments[doc.source]
        session.add(CaseDocument(
            case_id=case.id, raw_message_id=raw.id or 0, filename=doc.filename, kind=doc.kind,
            content_type=attachment.content_type, size=attachment.size,
            blob_sha256=bot.blobs.put(attachment.payload), received_at=now, note=doc.note,
        ))
    record(session, case.id, raw.id, now, "case_opened",
           f"brief from {mail.from_address}; missing: {', '.join(reading.missing) or 'nothing'}",
           source_key=f"case_opened:{raw.id}")
    return case


def record(session: Session, case_id: int | None, raw_id: int | None, now: datetime,
           kind: str, detail: str, source_key: str | None = None) -> None:
    session.add(CaseEvent(case_id=case_id, raw_message_id=raw_id, at=now, kind=kind,
                          detail=redact_cpr(detail)[:4000], source_key=source_key))


def receipts_sent_recently(session: Session, address: str, now: datetime) -> int:
    """Receipts to this applicant within the last hour (receipts go to the case's applicant)."""
    since = now - timedelta(hours=1)
    query = (
        select(func.count()).select_from(Outbox).join(Case, col(Outbox.case_id) == col(Case.id))
        .where(Outbox.kind == "receipt", Case.applicant_address == address,
               col(Outbox.created_at) >= since)
    )
    return int(session.exec(query).one())


def send_receipt(session: Session, bot: Bot, case: Case, mail: Inbound,
                 reading: BriefReading, now: datetime) -> Outbox | None:
    """The ONE receipt for a new case, unless the flood guard holds it back."""
    assert case.id is not None
    limit = bot.rules.screening.max_receipts_per_sender_per_hour
    if receipts_sent_recently(session, case.applicant_address, now) >= limit:
        record(session, case.id, None, now, "receipt_withheld",
               f"more than {limit} receipts to {case.applicant_address} within an hour")
        return None
    text, html = bot.renderer.render(case.language, "applicant_receipt",
                                     receipt_context(bot, case, reading))
    subject = tagged_subject(case.ref, mail.subject or case.title)
    message_id = signed_message_id("receipt", case.ref, bot.domain, bot.secret)
    msg = build_message(
        sender_name=bot.settings.bot.name, sender_address=bot.settings.bot.address,
        to=(case.applicant_address,), subject=subject, text=text, html=html,
        message_id=message_id, now=now, in_reply_to=mail.message_id,
        references=(mail.message_id,), language=case.language,
    )
    outgoing = Outgoing(message_id, (case.applicant_address,), subject, msg)
    return enqueue(session, outgoing, kind="receipt", case_id=case.id, now=now)


def missing_questions(rules: Rules, missing: Iterable[str], language: str
                      ) -> list[dict[str, str]]:
    """Each unanswered question in plain words with an example, in the applicant's language."""
    english = language == "en"
    question_ids = {q.id for q in rules.questions}
    return [{"question": q.question_en if english else q.question,
             "example": q.example_en if english else q.example}
            for q in (rules.question(item) for item in missing if item in question_ids)]


def receipt_context(bot: Bot, case: Case, reading: BriefReading) -> dict[str, Any]:
    rules, language = bot.rules, case.language
    missing_answers = missing_questions(rules, reading.missing, language)
    missing_documents = []
    for kind_id in reading.missing:
        kind = rules.kind(kind_id)
        if kind is None:
            continue
        reviewers = [rules.role_name(r, language) for r in kind.reviewers]
        missing_documents.append({"title": rules.title(kind_id, language),
                                  "reviewers": (" and " if language == "en" else " og ")
                                  .join(reviewers)})
    documents = [{"filename": d.filename, "title": rules.title(d.kind, language)}
                 for d in reading.documents]
    declared = [{"title": rules.title(kind, language), "declaration": text}
                for kind, text in reading.not_applicable.items()]
    return {
        "not_applicable": declared,
        "strategic": reading.strategic,
        "strategic_reason": reading.strategic_reason,
        "sbsys_number": reading.sbsys_number,
        "sbsys_template": rules.signals.sbsys_template,
        "ref": case.ref,
        "title": case.title,
        "applicant_name": case.applicant_name,
        "documents": documents,
        "missing_answers": missing_answers,
        "missing_documents": missing_documents,
        "bot_name": bot.settings.bot.name,
    }

