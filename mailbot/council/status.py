"""The applicant's checklist: documents, declarations, what is missing, the reviews, and the
next agenda deadline from the council's calendar."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypedDict

from sqlmodel import Session

from mailbot.app import Bot
from mailbot.audit import record
from mailbot.cases.documents import held_documents, latest_documents
from mailbot.cases.mail import mail_about_case
from mailbot.cases.summary import (
    DeclaredLine,
    DocumentLine,
    HeldLine,
    MissingAnswer,
    MissingDocument,
    declared_lines,
    document_lines,
    fold_held,
    held_lines,
    missing_answers,
    missing_documents,
)
from mailbot.council.meetings import CouncilCalendar, MeetingTexts, meeting_texts
from mailbot.council.phases import (
    FinalMissing,
    final_missing,
    final_missing_lines,
    stage,
    two_phases,
)
from mailbot.council.reviews import current_reviews, review_state_label
from mailbot.delivery.mail import may_answer
from mailbot.models import Case
from mailbot.vocabulary import AutoSubmitted, Phase, Purpose


class ReviewLine(TypedDict):
    role_name: str
    state: str


class StatusContext(MeetingTexts):
    """What `applicant_status` sees besides `case`, `mail_subject` and `bot_name`: the
    checklist and the next meeting (MeetingTexts)."""

    purpose: str
    phases: int  # `[council] phases`
    stage: str  # two phases: guidance | guided | klarmeldt (mailbot.council.phases.stage)
    documents: list[DocumentLine]
    # an update: the attachments of the applicant's mail that were held (not forwarded)
    held: list[HeldLine]
    declared: list[DeclaredLine]
    missing_answers: list[MissingAnswer]
    missing_documents: list[MissingDocument]
    missing_owner: bool  # two phases, final: the system owner is missing
    reviews: list[ReviewLine]


def status_context(session: Session, bot: Bot, case: Case, purpose: Purpose,
                   now: datetime) -> StatusContext:
    """What the status template sees besides `case`: `purpose` (status | update | reminder),
    `phases` and `stage`, `documents`, `held` (an update: the mail's held attachments),
    `declared`, what is missing (for guidance; with two
    phases in the final phase: for final approval), `reviews` (role and state in the
    applicant's language) and the next meeting's `meeting`/`deadline` texts."""
    assert case.id is not None
    language = case.language
    texts = meeting_texts(CouncilCalendar(bot.settings.council).next_meeting(now))
    current = stage(case) if two_phases(bot) else ""
    if current in ("", Phase.GUIDANCE):
        missing = FinalMissing(answers=missing_answers(bot.rules, case.missing, language),
                               documents=missing_documents(bot.rules, case.missing, language),
                               system_owner=False)
    else:
        missing = final_missing_lines(bot.rules, final_missing(session, bot.rules, case),
                                      language)
    # an update's held attachments; one meant as a missing document is said on its line
    held_files = [(d.filename, d.hazard) for d in held_documents(session, case.id, now)
                  ] if purpose == Purpose.UPDATE else []
    held, documents = fold_held(held_lines(bot.rules, held_files, language,
                                           bot.settings.attachments), missing["documents"])
    return StatusContext(
        purpose=purpose.value, phases=bot.settings.council.phases, stage=current,
        documents=document_lines(bot.rules, latest_documents(session, case.id), language,
                                 case),
        held=held,
        declared=declared_lines(bot.rules, case.not_applicable, language),
        missing_answers=missing["answers"], missing_documents=documents,
        missing_owner=missing["system_owner"],
        reviews=[ReviewLine(role_name=bot.rules.role_name(r.role, language),
                            state=review_state_label(bot, r, language))
                 for r in current_reviews(session, case.id)],
        meeting=texts["meeting"], meeting_en=texts["meeting_en"], deadline=texts["deadline"],
        deadline_en=texts["deadline_en"], starts=texts["starts"],
    )


def send_status(session: Session, bot: Bot, case: Case, purpose: Purpose,
                now: datetime) -> None:
    """The checklist to the applicant: an answer to "status" or to a follow-up, or the
    bot's own reminder."""
    answer_applicant(session, bot, case, template="applicant_status", purpose=purpose,
                     context=status_context(session, bot, case, purpose, now), now=now)


def answer_applicant(session: Session, bot: Bot, case: Case, *, template: str,
                     purpose: Purpose, context: Mapping[str, Any], now: datetime) -> None:
    """One mail to the applicant in her language, on the brief's thread. A direct answer
    beyond `limits.answers_per_case_per_day` is withheld and recorded (a loop with an
    autoresponder, SCENARIOS L6)."""
    if purpose.auto_submitted == AutoSubmitted.REPLIED and not may_answer(
            session, bot, case.applicant_address, case.id, now):
        record(session, case.id, None, now, "answer_withheld",
               f"{purpose} to {case.applicant_address}: "
               f"{bot.settings.limits.answers_per_case_per_day} answers within 24 hours")
        return
    mail_about_case(session, bot, case, template=template, purpose=purpose,
                    to=[case.applicant_address], now=now, language=case.language,
                    context=context)
