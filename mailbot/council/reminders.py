"""Jobs that run on the clock: reviewer comments relayed to the applicant in batches, late
reviewers reminded in working days (then the secretary told), and one reminder to an
applicant whose case still misses something."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, or_, select

from mailbot.app import Bot
from mailbot.audit import record
from mailbot.cases.mail import mail_about_case
from mailbot.clock import as_utc
from mailbot.council.agenda import agenda_sent
from mailbot.council.attention import tell_secretary
from mailbot.council.meetings import CouncilCalendar, add_working_days, meeting_texts
from mailbot.council.phases import (
    applicant_reminder_due,
    final_check,
    final_missing,
    final_missing_lines,
    two_phases,
)
from mailbot.council.reviews import current_reviews, review_state_label
from mailbot.council.status import send_status
from mailbot.models import Case, Guidance, Outbox, Review
from mailbot.vocabulary import OPEN_STATUSES, CaseStatus, OutboxState, Purpose, ReviewState


def relay_guidance(session: Session, bot: Bot, now: datetime) -> int:
    """One mail per case with every reviewer comment that has waited the batch window
    (`reviews.guidance_batch_minutes`); returns the number of mails queued."""
    window = timedelta(minutes=bot.settings.reviews.guidance_batch_minutes)
    waiting = session.exec(select(Guidance).where(col(Guidance.relayed_at).is_(None))
                           .order_by(col(Guidance.id))).all()
    by_case: dict[int, list[Guidance]] = {}
    for item in waiting:
        by_case.setdefault(item.case_id, []).append(item)
    sent = 0
    for case_id, items in by_case.items():
        if now - as_utc(items[0].created_at) >= window:
            _relay(session, bot, case_id, items, now)
            sent += 1
    return sent


def _relay(session: Session, bot: Bot, case_id: int, items: list[Guidance],
           now: datetime) -> None:
    case = session.get(Case, case_id)
    assert case is not None
    comments = []
    for item in items:
        review = session.get(Review, item.review_id)
        assert review is not None
        comments.append({"role_name": bot.rules.role_name(review.role, case.language),
                         "verdict": item.verdict or "unclear",
                         "state": review_state_label(bot, review, case.language),
                         "comment": item.comment})
        item.relayed_at = now
        session.add(item)
    mail_about_case(session, bot, case, template="applicant_guidance", purpose=Purpose.GUIDANCE,
                    to=[case.applicant_address], now=now, language=case.language,
                    context={"comments": comments,
                             **_phase_note(session, bot, case, items, now)})
    record(session, case.id, None, now, "guidance_relayed", f"{len(comments)} comment(s)")


def _phase_note(session: Session, bot: Bot, case: Case, items: list[Guidance],
                now: datetime) -> dict[str, Any]:
    """What the relay says about the two phases: `complete` when it carries the answer that
    completed the guidance (with every role's `answers`, how to klarmelde unless `klarmeldt`
    already, and what final approval still needs: `final`, MeetingTexts of the next
    deadline), `blocked` when
    the klarmeldt case waits for a rejected review to be resolved (not when its agenda went
    out already)."""
    language = case.language
    check = final_check(session, bot, case) if two_phases(bot) else None
    missing = check.missing if check else []
    blocked = bool(check and check.rejected and case.klarmeldt_at is not None and not (
        case.meeting_date is not None and agenda_sent(session, case.meeting_date)))
    texts = meeting_texts(CouncilCalendar(bot.settings.council).next_meeting(now))
    assert case.id is not None
    return {"phases": bot.settings.council.phases,
            "complete": check is not None and any(i.completes_guidance for i in items),
            "klarmeldt": case.klarmeldt_at is not None, "blocked": blocked,
            "final": final_missing_lines(bot.rules, missing, language),
            "answers": [{"role_name": bot.rules.role_name(r.role, language),
                         "state": review_state_label(bot, r, language)}
                        for r in current_reviews(session, case.id)], **texts}


def remind(session: Session, bot: Bot, now: datetime) -> int:
    """Reviewers late by `reviews.reminder_working_days` working days (at most
    `max_reminders` reminders, then the secretary is told once); applicants with missing
    items after `applicant_reminder_working_days` (once). Returns the mails queued."""
    count = 0
    # a decided or withdrawn case needs no more answers: its reviewers are not reminded
    open_cases = select(Case.id).where(col(Case.status).in_(OPEN_STATUSES))
    # nor is a reviewer whose request the operator cancelled (`mailbot outbox cancel`): a
    # reminder would ask about documents they never got (README "Admin commands")
    never_sent = select(Outbox.message_id).where(Outbox.kind == Purpose.REVIEW,
                                                 Outbox.state == OutboxState.CANCELLED)
    for review in session.exec(select(Review).where(
            Review.state == ReviewState.REQUESTED, col(Review.case_id).in_(open_cases),
            col(Review.request_message_id).not_in(never_sent))):
        count += _remind_reviewer(session, bot, review, now)
    return count + _remind_applicants(session, bot, now)


def _remind_reviewer(session: Session, bot: Bot, review: Review, now: datetime) -> int:
    settings = bot.settings.reviews
    since = as_utc(review.last_reminder_at or review.requested_at)
    if now < add_working_days(since, settings.reminder_working_days):
        return 0
    case = session.get(Case, review.case_id)
    assert case is not None and review.id is not None
    if review.reminders_sent < settings.max_reminders:
        review.reminders_sent += 1
        review.last_reminder_at = now
        session.add(review)
        mail_about_case(session, bot, case, template="reviewer_reminder", purpose=Purpose.REMIND,
                        to=review.recipients, now=now, review=review.id,
                        context={"role_name": bot.rules.role_names[review.role],
                                 "documents": review.documents,
                                 "number": review.reminders_sent,
                                 "requested_at": as_utc(review.requested_at)})
        record(session, case.id, None, now, "reviewer_reminded",
               f"{review.role}: reminder {review.reminders_sent}")
        return 1
    if review.secretary_told_at is not None:
        return 0
    review.secretary_told_at = now
    session.add(review)
    role, recipients = bot.rules.role_names[review.role], ", ".join(review.recipients)
    tell_secretary(session, bot, case, f"{review.role} ({recipients}) has not answered after "
                   f"{review.reminders_sent} reminders", now,
                   bot.rules.labels.get("attention", "not_answered").format(
                       role=role[:1].upper() + role[1:], recipients=recipients,
                       count=str(review.reminders_sent)))
    return 1


def _remind_applicants(session: Session, bot: Bot, now: datetime) -> int:
    """The ONE reminder (per phase) to an applicant whose case still misses something, when
    mailbot.council.phases.applicant_reminder_due says it is due."""
    count = 0
    for case in session.exec(select(Case).where(or_(
            col(Case.applicant_reminded_at).is_(None), Case.status == CaseStatus.KLARMELDT))):
        due = applicant_reminder_due(session, bot, case)
        if due is None or now < due:
            continue
        case.applicant_reminded_at = now
        session.add(case)
        send_status(session, bot, case, Purpose.REMINDER, now)
        missing = (final_missing(session, bot.rules, case) if case.klarmeldt_at is not None
                   and two_phases(bot) else case.missing)
        record(session, case.id, None, now, "applicant_reminded",
               f"missing: {', '.join(missing)}")
        count += 1
    return count
