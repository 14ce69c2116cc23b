"""The council's decisions from the secretary's reply to the agenda mail, what they cause
(the applicant told, a postponed case moved, a strategic case sent on to the board, late
additions, her choice of project type), and the applicant's own "udsæt" / "træk
tilbage"."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import update
from sqlmodel import Session, col, select

from mailbot.app import Bot
from mailbot.audit import record
from mailbot.cases.documents import as_attachments, latest_documents
from mailbot.cases.lookup import find_case
from mailbot.cases.mail import mail_about_case
from mailbot.cases.project_type import choose
from mailbot.council.agenda import following_meeting, next_agenda_version, queue, send_agenda
from mailbot.council.agenda_item import review_lines
from mailbot.council.meetings import CouncilCalendar, Meeting, danish_date
from mailbot.db import rows_changed
from mailbot.delivery.mail import Threading, may_answer, queue_mail
from mailbot.intake.parse import Inbound
from mailbot.intake.threads import meeting_of
from mailbot.models import Case, Outbox
from mailbot.reading.decisions import DecisionReading
from mailbot.redact import redact_cpr
from mailbot.vocabulary import (
    TO_REVIEWERS,
    UNSENT,
    CaseStatus,
    Decision,
    Delivery,
    OutboxState,
    Purpose,
    check_transition,
)

BY_APPLICANT = "by the applicant"


def apply_decisions(session: Session, bot: Bot, agenda_token: str, mail: Inbound,
                    found: DecisionReading, now: datetime) -> None:
    """The secretary's reply to an agenda mail: record each decision, tell the applicants,
    move postponed cases, forward strategic ones, record her project types, list back what
    could not be mapped (an unknown ref among them)."""
    meeting_day = meeting_of(agenda_token)
    unmapped = list(found.unmapped)
    for ref, decision in found.decisions.items():
        case = find_case(session, ref)
        if case is None:
            unmapped.append(f"{ref}: ingen sådan sag")
            continue
        decide(session, bot, case, Decision(decision), found.texts[ref], meeting_day, now)
    for ref, kind in found.project_types.items():
        case = find_case(session, ref)
        if case is None:
            if ref not in found.decisions:  # else listed back above already
                unmapped.append(f"{ref}: ingen sådan sag")
            continue
        choose(session, case, kind, found.project_type_texts[ref], now)
    for ref in found.informed:  # "til orientering": recorded on the case, nothing decided
        case = find_case(session, ref)
        if case is not None:
            record(session, case.id, None, now, "decision_information",
                   "mentioned for information in the decisions; not decided")
    if found.additions:
        _late_additions(session, bot, found.additions, meeting_day, now, unmapped)
    if unmapped:
        _list_back(session, bot, unmapped, mail, agenda_token, now)


def decide(session: Session, bot: Bot, case: Case, decision: Decision, text: str,
           meeting_day: date, now: datetime) -> None:
    """Record one decision; a postponed case moves to the next agenda, any other decision
    is final: the case's unsent mails to reviewers are cancelled (cancel_reviewer_mail) and
    the applicant is told (a forwarded case also goes to the board). The
    secretary's text is stored and passed on CPR-redacted (SCENARIOS G1)."""
    text = redact_cpr(text)
    record(session, case.id, None, now, "decision", f"{decision}: {text}")
    if decision == Decision.POSTPONED:
        queue(session, bot, case, following_meeting(session, bot, meeting_day), now, moved=True)
        return
    case.decision, case.decision_text, case.decided_at = decision, text, now
    case.status = check_transition(case.status, CaseStatus.DECIDED)
    session.add(case)
    cancel_reviewer_mail(session, case, now, f"the case was decided ({decision})")
    _tell_applicant(session, bot, case, decision, text, meeting_day, now)
    if decision == Decision.FORWARDED:
        _forward_to_board(session, bot, case, now)


def _tell_applicant(session: Session, bot: Bot, case: Case, decision: Decision, text: str,
                    meeting: date | None, now: datetime, asked: bool = True) -> None:
    """The decision mail; `asked`: a withdrawal the applicant asked for ("som du bad om"),
    not one by the operator."""
    mail_about_case(session, bot, case, template="applicant_decision", purpose=Purpose.DECISION,
                    to=[case.applicant_address], now=now, language=case.language,
                    context={"decision": decision.value,
                             "decision_da": bot.rules.labels.get("decisions", decision),
                             "decision_words": bot.rules.labels.get("decisions", decision,
                                                                    case.language),
                             "text": text, "asked": asked,
                             "meeting": danish_date(meeting) if meeting else "",
                             "meeting_en": meeting.isoformat() if meeting else ""})


def _forward_to_board(session: Session, bot: Bot, case: Case, now: datetime) -> None:
    assert case.id is not None
    board = bot.settings.council.strategic_board
    if not board:
        record(session, case.id, None, now, "forward_failed", "council.strategic_board is empty")
        return
    mail_about_case(session, bot, case, template="board_bundle", purpose=Purpose.BOARD,
                    to=board, now=now, delivery=Delivery.AT_LEAST_ONCE,
                    attachments=as_attachments(bot.blobs, latest_documents(session, case.id)),
                    context={"reviews": review_lines(session, bot, case),
                             "decision_text": case.decision_text})
    record(session, case.id, None, now, "forwarded", f"bundle to {', '.join(board)}")


def _late_additions(session: Session, bot: Bot, refs: list[str], meeting_day: date,
                    now: datetime, unmapped: list[str]) -> None:
    added = []
    for ref in refs:
        case = find_case(session, ref)
        if case is None or case.decision is not None or case.status == CaseStatus.WITHDRAWN:
            unmapped.append(f"tilføj {ref}: ingen åben sag med det nummer")
            continue
        case.meeting_date = meeting_day
        case.status = check_transition(case.status, CaseStatus.QUEUED)
        case.ready_at = case.ready_at or now
        session.add(case)
        record(session, case.id, None, now, "late_addition", f"added to {meeting_day}")
        added.append(ref)
    if added:
        send_agenda(session, bot, _meeting(bot, meeting_day), now,
                    next_agenda_version(session, meeting_day))


def _meeting(bot: Bot, day: date) -> Meeting:
    """The calendar's meeting on `day`, or one at midnight (an agenda of a meeting the
    calendar no longer has, e.g. after a config change)."""
    calendar = CouncilCalendar(bot.settings.council)
    midnight = datetime.combine(day, datetime.min.time(), calendar.zone)
    return calendar.meeting_on(day) or Meeting(day, midnight, midnight)


def _list_back(session: Session, bot: Bot, lines: list[str], mail: Inbound,
               agenda_token: str, now: datetime) -> None:
    """Lines the bot could not map go back to the secretary in one mail; nothing is guessed.
    Signed with the agenda's reference, so her answer to it counts as a reply to the agenda."""
    record(session, None, None, now, "decisions_unmapped", " | ".join(lines))
    if not may_answer(session, bot, mail.from_address, None, now):
        record(session, None, None, now, "answer_withheld",
               f"list-back to {mail.from_address}: "
               f"{bot.settings.limits.answers_per_case_per_day} answers within 24 hours")
        return
    queue_mail(session, bot, template="decisions_unmapped", purpose=Purpose.UNMAPPED,
               to=[mail.from_address], now=now, sign_ref=agenda_token,
               context={"lines": lines, "mail_subject": mail.subject},
               thread=Threading(mail.message_id, (mail.message_id,)))


def move_on_request(session: Session, bot: Bot, case: Case, command: str,
                    now: datetime) -> None:
    """The applicant wrote "udsæt" (to the next meeting) or "træk tilbage" (withdraw)."""
    if command == "withdraw":
        withdraw(session, bot, case, now, BY_APPLICANT)
        return
    if case.meeting_date is None:
        record(session, case.id, None, now, "postpone_ignored", "not on an agenda yet")
        return
    queue(session, bot, case, following_meeting(session, bot, case.meeting_date), now,
          moved=True)


def withdraw(session: Session, bot: Bot, case: Case, now: datetime, by: str) -> list[Outbox]:
    """Withdraw an open case (the applicant's "træk tilbage", or `mailbot case REF
    --withdraw`): off the agenda, and no more reminders (council.reminders looks at open
    cases only); its unsent mails to reviewers cancelled (returned; cancel_reviewer_mail); a
    `withdrawn` event (`by` says who; retention counts from it) and the decision mail tells
    the applicant. Raises InvalidTransition for a case not open."""
    case.status = check_transition(case.status, CaseStatus.WITHDRAWN)
    case.meeting_date = None
    session.add(case)
    record(session, case.id, None, now, "withdrawn", by)
    cancelled = cancel_reviewer_mail(session, case, now, "the case was withdrawn")
    _tell_applicant(session, bot, case, Decision.WITHDRAWN, "", None, now,
                    asked=by == BY_APPLICANT)
    return cancelled


def cancel_reviewer_mail(session: Session, case: Case, now: datetime, why: str
                         ) -> list[Outbox]:
    """Cancel the case's review requests and reminders (vocabulary.TO_REVIEWERS) not sent
    yet (pending, failed, uncertain), each with an `outbox_cancelled` event: a reviewer is
    never asked to work on a case that is over. A row the sender holds (`sending`) is left to
    finish; the conditional UPDATE (mailbot.db.rows_changed) never takes a row from it."""
    rows = session.exec(select(Outbox).where(
        Outbox.case_id == case.id, col(Outbox.kind).in_(TO_REVIEWERS),
        col(Outbox.state).in_(UNSENT))).all()
    cancelled = []
    for row in rows:
        before = row.state
        if rows_changed(session, update(Outbox).where(
                col(Outbox.id) == row.id, col(Outbox.state) == before).values(
                state=OutboxState.CANCELLED, lease_until=None,
                last_error=f"cancelled: {why}; it was {before}: {row.last_error}"[:2000])) != 1:
            continue
        record(session, case.id, None, now, "outbox_cancelled",
               f"{row.kind} {row.message_id}: {before} -> cancelled; {why}; never sent")
        session.refresh(row)
        cancelled.append(row)
    return cancelled
