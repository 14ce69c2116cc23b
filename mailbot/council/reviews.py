"""Reviewers by email: requests with exactly the role's documents, verdicts from replies,
guidance to the applicant, reminders, and the secretary's attention when something is off.

Every function runs inside the caller's transaction and only adds rows (case changes, audit
events, outbox mails); nothing here talks to a server.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from mailbot.app import Bot
from mailbot.cases.opening import missing_questions, record
from mailbot.clock import as_utc
from mailbot.council.meetings import add_working_days, next_deadline
from mailbot.delivery.compose import Outgoing, build_message, tagged_subject
from mailbot.delivery.outbox import enqueue
from mailbot.intake.parse import Inbound
from mailbot.intake.threads import reply_to_address, signed_message_id
from mailbot.models import Case, CaseDocument, Guidance, RawMessage, Review
from mailbot.reading.brief import declarations, read_answers
from mailbot.reading.decisions import applicant_command
from mailbot.reading.documents import classify
from mailbot.reading.replies import Verdict, asks_for_status, own_text
from mailbot.rules import QUESTION_IDS, ROLES

log = logging.getLogger(__name__)


# -- sending ----------------------------------------------------------------------------------
def send_mail(session: Session, bot: Bot, case: Case, *, template: str, purpose: str,
              to: list[str], context: dict[str, Any], now: datetime, review: int = 0,
              language: str = "da", attachments: tuple[tuple[str, bytes, str], ...] = (),
              delivery: str = "at_most_once", subject: str | None = None) -> str:
    """Render, sign and queue one mail about a case; returns its Message-ID."""
    assert case.id is not None
    message_id = signed_message_id(purpose, case.ref, bot.domain, bot.secret, review)
    full = {"case": case_summary(bot, case), "bot_name": bot.settings.bot.name, **context}
    text, html = bot.renderer.render(language, template, full)
    subject = tagged_subject(case.ref, subject or case.subject or case.title)
    thread = case.thread_message_id
    msg = build_message(
        sender_name=bot.settings.bot.name, sender_address=bot.settings.bot.address,
        to=tuple(to), subject=subject, text=text, html=html, message_id=message_id, now=now,
        in_reply_to=thread if review == 0 else "", references=(thread,) if review == 0 else (),
        language=language, attachments=attachments,
        reply_to=reply_to_address(bot.address, case.ref, review, bot.secret)
        if review and bot.settings.reviews.reply_tokens else "",
    )
    enqueue(session, Outgoing(message_id, tuple(to), subject, msg), kind=purpose,
            case_id=case.id, now=now, delivery=delivery)
    return message_id


def case_summary(bot: Bot, case: Case) -> dict[str, Any]:
    rules = bot.rules
    return {
        "ref": case.ref, "title": case.title, "applicant": case.applicant_address,
        "applicant_name": case.applicant_name,
        "answers": [{"label": rules.question(q).labels[0], "text": case.answers.get(q) or "—"}
                    for q in ("who", "what", "where", "when", "why", "cost")],
        "sbsys_number": case.sbsys_number or "", "system_owner": case.system_owner or "",
        "strategic": case.strategic, "strategic_reason": case.strategic_reason,
        "missing": [_missing_label(bot, item) for item in case.missing],
    }


def _missing_label(bot: Bot, item: str) -> str:
    question_ids = {q.id for q in bot.rules.questions}
    if item in question_ids:
        return bot.rules.question(item).question
    return bot.rules.title(item)


def secretary_attention(session: Session, bot: Bot, case: Case, reason: str, mail: Inbound,
                        now: datetime) -> None:
    """Something only a person should judge. The sender is never told why."""
    record(session, case.id, None, now, "secretary_attention", reason)
    secretaries = bot.settings.council.secretary
    if not secretaries:
        log.warning("[%s] needs the secretary's attention but council.secretary is empty: %s",
                    case.ref, reason)
        return
    send_mail(session, bot, case, template="secretary_attention", purpose="attention",
              to=secretaries, now=now, subject=f"Til opmærksomhed: {case.title}",
              context={"reason": reason, "sender": mail.from_address or "(ukendt afsender)",
                       "mail_subject": mail.subject, "excerpt": mail.text[:1500]})


# -- routing ------------------------------------------------------------------------------------
def role_addresses(bot: Bot, role: str) -> list[str]:
    return [a.lower() for a in getattr(bot.settings.reviewers, role)]


def route(session: Session, bot: Bot, case: Case, now: datetime) -> list[Review]:
    """Send each role ONE request with exactly its documents, for every role whose documents
    are new or in a new version since its last request. An older review is superseded."""
    assert case.id is not None
    documents = latest_documents(session, case.id)
    current_by_role: dict[str, Review] = {}
    for existing in reviews_of(session, case.id):  # oldest first: the newest wins
        if existing.state != "superseded":
            current_by_role[existing.role] = existing
    created = []
    for role in _roles(bot):
        kinds = [k.id for k in bot.rules.kinds if role in k.reviewers]
        mine = [d for d in documents if d.kind in kinds]
        if not mine:
            continue
        names = sorted(f"{d.filename} (v{d.version})" for d in mine)
        current = current_by_role.get(role)
        if current is not None and sorted(current.documents) == names:
            continue
        recipients = role_addresses(bot, role)
        if not recipients:
            record(session, case.id, None, now, "review_unrouted",
                   f"no address for reviewer role {role} in [reviewers]")
            continue
        if current is not None:
            current.state = "superseded"
            session.add(current)
            record(session, case.id, None, now, "review_superseded",
                   f"{role}: new version of {', '.join(names)}")
        review = Review(case_id=case.id, role=role, recipients=recipients,
                        document_kinds=kinds, documents=names, requested_at=now)
        session.add(review)
        session.flush()
        assert review.id is not None
        review.request_message_id = send_mail(
            session, bot, case, template="reviewer_request", purpose="review", to=recipients,
            now=now, review=review.id, delivery="at_least_once",
            subject=f"Anmodning om vurdering: {case.title}",
            attachments=tuple((d.filename, bot.blobs.get(d.blob_sha256), d.content_type)
                              for d in mine),
            context=_request_context(bot, case, role, mine, superseded=current is not None),
        )
        record(session, case.id, None, now, "review_requested",
               f"{role} ({', '.join(recipients)}): {', '.join(names)}")
        created.append(review)
    return created


def _roles(bot: Bot) -> tuple[str, ...]:
    return ROLES


def _request_context(bot: Bot, case: Case, role: str, documents: list[CaseDocument],
                     superseded: bool) -> dict[str, Any]:
    kinds = {d.kind for d in documents}
    declared = [{"title": bot.rules.title(kind), "declaration": text}
                for kind, text in case.not_applicable.items()
                if kind not in kinds and role in bot.rules.reviewers_of(kind)]
    return {"role_name": bot.rules.role_names[role],
            "documents": [{"filename": d.filename, "title": bot.rules.title(d.kind),
                           "version": d.version} for d in documents],
            "declared": declared, "new_version": superseded}


def latest_documents(session: Session, case_id: int) -> list[CaseDocument]:
    """The newest version of each document name (kinds without a reviewer included)."""
    rows = session.exec(select(CaseDocument).where(CaseDocument.case_id == case_id)
                        .order_by(col(CaseDocument.id))).all()
    latest: dict[str, CaseDocument] = {}
    for row in rows:
        latest[row.kind + "\x00" + row.filename] = row
    newest_per_kind: dict[str, int] = {}
    for row in latest.values():
        newest_per_kind[row.kind] = max(newest_per_kind.get(row.kind, 0), row.version)
    return [r for r in latest.values()
            if r.kind == "other" or r.version == newest_per_kind[r.kind]]


def reviews_of(session: Session, case_id: int) -> list[Review]:
    return list(session.exec(select(Review).where(Review.case_id == case_id)
                             .order_by(col(Review.id))).all())


# -- replies ------------------------------------------------------------------------------------
def identity_problem(bot: Bot, review: Review, case: Case, mail: Inbound) -> str:
    """Why this reply may not count as the review's verdict ("" when it may).

    The signed id proves the mail answers our request; the From address must be the reviewer
    it was sent to or an address of that role. Reply-To is never identity (A7)."""
    if review.case_id != case.id:
        return "the signed id names another case"
    sender = mail.from_address
    if not sender:
        return "no single, well-formed From address"
    allowed = {a.lower() for a in review.recipients} | set(role_addresses(bot, review.role))
    if sender not in allowed:
        return (f"reply to the {review.role} request came from {sender}, "
                f"not from the reviewer it was sent to")
    return ""


def apply_verdict(session: Session, bot: Bot, case: Case, review: Review, verdict: Verdict,
                  mail: Inbound, now: datetime) -> None:
    if review.state == "superseded":
        record(session, case.id, None, now, "review_late",
               f"{review.role} answered a superseded request: {verdict.verdict}")
        return
    if verdict.verdict == "unclear":
        _unclear(session, bot, case, review, verdict, mail, now)
        return
    review.state, review.verdict = "answered", verdict.verdict
    review.comment, review.answered_by, review.answered_at = verdict.comment, mail.from_address, now
    session.add(review)
    record(session, case.id, None, now, "verdict",
           f"{review.role} ({mail.from_address}): {verdict.verdict} ({verdict.phrase!r})")
    if verdict.comment.strip():
        assert review.id is not None and case.id is not None
        session.add(Guidance(case_id=case.id, review_id=review.id, created_at=now))


def _unclear(session: Session, bot: Bot, case: Case, review: Review, verdict: Verdict,
             mail: Inbound, now: datetime) -> None:
    if review.asked_back_at is None:
        review.asked_back_at = now
        session.add(review)
        assert review.id is not None
        send_mail(session, bot, case, template="reviewer_ask_back", purpose="askback",
                  to=[mail.from_address], now=now, review=review.id,
                  subject=f"Din vurdering: {case.title}",
                  context={"role_name": bot.rules.role_names[review.role],
                           "comment": verdict.comment[:1000]})
        record(session, case.id, None, now, "verdict_unclear",
               f"{review.role} ({mail.from_address}): asked back once")
        return
    review.comment = verdict.comment
    session.add(review)
    secretary_attention(session, bot, case,
                        f"{review.role} answered twice without a clear verdict", mail, now)


# -- jobs ---------------------------------------------------------------------------------------
def relay_guidance(session: Session, bot: Bot, now: datetime) -> int:
    """One mail per case with every reviewer comment that has waited the batch window."""
    window = timedelta(minutes=bot.settings.reviews.guidance_batch_minutes)
    waiting = list(session.exec(select(Guidance).where(col(Guidance.relayed_at).is_(None))
                                .order_by(col(Guidance.id))).all())
    by_case: dict[int, list[Guidance]] = {}
    for item in waiting:
        by_case.setdefault(item.case_id, []).append(item)
    sent = 0
    for case_id, items in by_case.items():
        if now - as_utc(items[0].created_at) < window:
            continue
        case = session.get(Case, case_id)
        assert case is not None
        comments = []
        for item in items:
            review = session.get(Review, item.review_id)
            assert review is not None
            comments.append({"role_name": bot.rules.role_name(review.role, case.language),
                             "verdict": review.verdict or "unclear", "comment": review.comment})
            item.relayed_at = now
            session.add(item)
        send_mail(session, bot, case, template="applicant_guidance", purpose="guidance",
                  to=[case.applicant_address], now=now, language=case.language,
                  context={"comments": comments})
        record(session, case.id, None, now, "guidance_relayed", f"{len(comments)} comment(s)")
        sent += 1
    return sent


def remind(session: Session, bot: Bot, now: datetime) -> int:
    """Reviewers late by N working days (at most M reminders, then the secretary);
    applicants with missing items after K working days (once)."""
    settings = bot.settings.reviews
    count = 0
    open_reviews = session.exec(select(Review).where(
        col(Review.state).in_(["requested"]))).all()
    for review in open_reviews:
        since = as_utc(review.last_reminder_at or review.requested_at)
        if now < add_working_days(since, settings.reminder_working_days):
            continue
        case = session.get(Case, review.case_id)
        assert case is not None and review.id is not None
        if review.reminders_sent < settings.max_reminders:
            review.reminders_sent += 1
            review.last_reminder_at = now
            send_mail(session, bot, case, template="reviewer_reminder", purpose="remind",
                      to=review.recipients, now=now, review=review.id,
                      subject=f"Påmindelse: vurdering af {case.title}",
                      context={"role_name": bot.rules.role_names[review.role],
                               "documents": review.documents, "number": review.reminders_sent,
                               "requested_at": as_utc(review.requested_at)})
            record(session, case.id, None, now, "reviewer_reminded",
                   f"{review.role}: reminder {review.reminders_sent}")
            count += 1
        elif review.secretary_told_at is None:
            review.secretary_told_at = now
            _tell_secretary_late(session, bot, case, review, now)
            count += 1
        session.add(review)
    count += _remind_applicants(session, bot, now)
    return count


def _tell_secretary_late(session: Session, bot: Bot, case: Case, review: Review,
                         now: datetime) -> None:
    reason = (f"{bot.rules.role_names[review.role]} ({', '.join(review.recipients)}) has not "
              f"answered after {review.reminders_sent} reminders")
    record(session, case.id, None, now, "secretary_attention", reason)
    if bot.settings.council.secretary:
        send_mail(session, bot, case, template="secretary_attention", purpose="attention",
                  to=bot.settings.council.secretary, now=now,
                  subject=f"Til opmærksomhed: {case.title}",
                  context={"reason": reason, "sender": "", "mail_subject": "", "excerpt": ""})


def _remind_applicants(session: Session, bot: Bot, now: datetime) -> int:
    days = bot.settings.reviews.applicant_reminder_working_days
    count = 0
    for case in session.exec(select(Case).where(col(Case.applicant_reminded_at).is_(None))):
        if not case.missing or now < add_working_days(as_utc(case.created_at), days):
            continue
        case.applicant_reminded_at = now
        session.add(case)
        send_mail(session, bot, case, template="applicant_status", purpose="reminder",
                  to=[case.applicant_address], now=now, language=case.language,
                  context=status_context(session, bot, case, "reminder", now))
        record(session, case.id, None, now, "applicant_reminded",
               f"missing: {', '.join(case.missing)}")
        count += 1
    return count


# A review's state in Danish, for the applicant's checklist and the agenda.
VERDICT_DA: dict[str | None, str] = {
    "approved": "godkendt", "changes_requested": "ønsker rettelser", "rejected": "afvist",
    "unclear": "uklart svar", None: "afventer svar"}

DANISH_MONTHS = ("januar", "februar", "marts", "april", "maj", "juni", "juli", "august",
                 "september", "oktober", "november", "december")


def danish_date(day: date) -> str:
    return f"{day.day}. {DANISH_MONTHS[day.month - 1]} {day.year}"


def status_context(session: Session, bot: Bot, case: Case, purpose: str,
                   now: datetime | None = None) -> dict[str, Any]:
    assert case.id is not None
    deadline, meeting = next_deadline(now or bot.clock.now())
    documents = latest_documents(session, case.id)
    reviews = [r for r in reviews_of(session, case.id) if r.state != "superseded"]
    return {
        "purpose": purpose,
        "documents": [{"filename": d.filename, "title": bot.rules.title(d.kind, case.language),
                       "version": d.version} for d in documents],
        "declared": [{"title": bot.rules.title(k, case.language), "declaration": v}
                     for k, v in case.not_applicable.items()],
        "missing_answers": missing_questions(bot.rules, case.missing, case.language),
        "missing_documents": [{"title": bot.rules.title(k, case.language)}
                              for k in case.missing if bot.rules.kind(k) is not None],
        "reviews": [{"role_name": bot.rules.role_name(r.role, case.language),
                     "state": VERDICT_DA[r.verdict]}
                    for r in reviews],
        "deadline": f"mandag {danish_date(deadline.date())} kl. 12.00",
        "deadline_en": f"Monday {deadline.date().isoformat()} at 12:00",
        "meeting": danish_date(meeting), "meeting_en": meeting.isoformat(),
    }


# -- the applicant on the thread ---------------------------------------------------------------
def applicant_followup(session: Session, bot: Bot, case: Case, mail: Inbound,
                       raw: RawMessage, now: datetime) -> None:
    """New answers fill the gaps, new documents (or new versions) are added and routed, and
    the applicant gets the updated checklist. "status" alone asks for the checklist."""
    assert case.id is not None
    text = mail.text or mail.html_text
    if asks_for_status(mail.subject, text, bot.rules) and not mail.documents:
        _send_status(session, bot, case, "status", now)
        return
    command = applicant_command(text, bot.rules)
    if command is not None:
        from mailbot.council.agenda import move_on_request  # the agenda builds on this module

        move_on_request(session, bot, case, command, now)
        return
    own = own_text(text, bot.rules)
    filled = _fill_answers(case, read_answers(own, bot.rules))
    added = _add_documents(session, bot, case, mail, raw, now)
    present = {d.kind for d in latest_documents(session, case.id)}
    case.not_applicable = {**case.not_applicable,
                           **declarations(own, present, bot.rules)}
    case.missing = [q for q in QUESTION_IDS if not case.answers.get(q)] + [
        k for k in bot.rules.required if k not in present and k not in case.not_applicable]
    case.status = "incomplete" if case.missing else "complete"
    case.updated_at = now
    session.add(case)
    record(session, case.id, raw.id, now, "applicant_update",
           f"answers: {', '.join(filled) or 'none'}; documents: {', '.join(added) or 'none'}; "
           f"missing: {', '.join(case.missing) or 'nothing'}")
    route(session, bot, case, now)
    _send_status(session, bot, case, "update", now)


def _fill_answers(case: Case, answers: dict[str, str | None]) -> list[str]:
    filled = []
    merged = dict(case.answers)
    for qid, value in answers.items():
        if value and not merged.get(qid):
            merged[qid] = value
            filled.append(qid)
    case.answers = merged
    return filled


def _add_documents(session: Session, bot: Bot, case: Case, mail: Inbound, raw: RawMessage,
                   now: datetime) -> list[str]:
    assert case.id is not None
    versions: dict[str, int] = {}
    for row in session.exec(select(CaseDocument).where(CaseDocument.case_id == case.id)):
        versions[row.kind] = max(versions.get(row.kind, 0), row.version)
    added = []
    for attachment in mail.documents:
        for reading in classify(attachment, bot.rules):
            version = versions.get(reading.kind, 0) + 1 if reading.kind != "other" else 1
            versions[reading.kind] = max(versions.get(reading.kind, 0), version)
            session.add(CaseDocument(
                case_id=case.id, raw_message_id=raw.id or 0, filename=reading.filename,
                kind=reading.kind, content_type=attachment.content_type, size=attachment.size,
                blob_sha256=bot.blobs.put(attachment.payload), version=version,
                received_at=now, note=reading.note))
            added.append(f"{reading.filename} ({reading.kind} v{version})")
    session.flush()
    return added


def _send_status(session: Session, bot: Bot, case: Case, purpose: str, now: datetime) -> None:
    send_mail(session, bot, case, template="applicant_status", purpose=purpose,
              to=[case.applicant_address], now=now, language=case.language,
              context=status_context(session, bot, case, purpose, now))
