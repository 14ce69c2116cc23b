"""The weekly agenda: which cases are ready, the agenda mail at the deadline (exactly once per
meeting and version), and the council's decisions from the secretary's reply."""

from __future__ import annotations

import io
import logging
import zipfile
from datetime import date, datetime, timedelta
from html import escape
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from mailbot.app import Bot
from mailbot.cases.opening import record
from mailbot.clock import as_utc
from mailbot.council.meetings import CouncilCalendar, Meeting
from mailbot.council.reviews import (
    VERDICT_DA,
    case_summary,
    danish_date,
    latest_documents,
    reviews_of,
    send_mail,
)
from mailbot.db import transaction
from mailbot.delivery.compose import Outgoing, build_message
from mailbot.delivery.outbox import enqueue
from mailbot.faults import crash_point
from mailbot.intake.parse import Inbound
from mailbot.intake.threads import agenda_ref, meeting_of, signed_message_id
from mailbot.models import Agenda, Case, CaseDocument
from mailbot.reading.decisions import DecisionReading
from mailbot.rules import QUESTION_IDS

log = logging.getLogger(__name__)
DECISION_DA = {"approved": "godkendt", "rejected": "afvist", "postponed": "udsat",
               "forwarded": "godkendt og sendt videre til den strategiske styregruppe"}
OPEN_STATUSES = ("incomplete", "complete", "queued")


# -- readiness ----------------------------------------------------------------------------------
def readiness(session: Session, bot: Bot, case: Case) -> tuple[bool, list[str]]:
    """Ready = nothing missing and every current review approved; else the reasons why not."""
    assert case.id is not None
    reasons = []
    if case.missing:
        labels = [bot.rules.question(m).labels[0] if m in QUESTION_IDS else bot.rules.title(m)
                  for m in case.missing]
        reasons.append(f"mangler {', '.join(labels)}")
    current = [r for r in reviews_of(session, case.id) if r.state != "superseded"]
    if not current:
        reasons.append("ingen vurderinger endnu")
    for review in current:
        if review.verdict != "approved":
            reasons.append(f"{bot.rules.role_names[review.role]}: "
                           f"{VERDICT_DA.get(review.verdict, review.verdict)}")
    return not reasons, reasons


def _ready_at(session: Session, case: Case) -> datetime:
    """When the last condition was met: the later of the last approval and the last update."""
    assert case.id is not None
    times = [as_utc(case.updated_at)] + [
        as_utc(r.answered_at) for r in reviews_of(session, case.id)
        if r.state != "superseded" and r.answered_at is not None]
    return max(times)


def queue_ready_cases(session: Session, bot: Bot, now: datetime) -> int:
    """Put every case that became ready on the agenda of the first meeting whose deadline it
    made, and tell the applicant the date. A queued case that is no longer ready leaves."""
    calendar = CouncilCalendar(bot.settings.council)
    queued = 0
    for case in session.exec(select(Case).where(col(Case.decision).is_(None),
                                                col(Case.status).in_(OPEN_STATUSES))).all():
        ready, _ = readiness(session, bot, case)
        if case.meeting_date is not None:
            if not ready and not _agenda_sent(session, case.meeting_date):
                case.meeting_date, case.ready_at, case.status = None, None, "complete"
                session.add(case)
                record(session, case.id, None, now, "unqueued", "no longer ready")
            continue
        if not ready:
            continue
        case.ready_at = _ready_at(session, case)
        meeting = _first_open_meeting(session, calendar, case.ready_at)
        _queue(session, bot, case, meeting, now, moved=False)
        queued += 1
    return queued


def _first_open_meeting(session: Session, calendar: CouncilCalendar,
                        ready_at: datetime) -> Meeting:
    meeting = calendar.next_meeting(ready_at)
    while _agenda_sent(session, meeting.day):
        meeting = calendar.next_meeting(meeting.deadline + timedelta(minutes=1))
    return meeting


def _queue(session: Session, bot: Bot, case: Case, meeting: Meeting, now: datetime,
           moved: bool) -> None:
    case.meeting_date, case.status = meeting.day, "queued"
    session.add(case)
    record(session, case.id, None, now, "queued" if not moved else "moved",
           f"meeting {meeting.day.isoformat()} (deadline {meeting.deadline:%Y-%m-%d %H:%M})")
    send_mail(session, bot, case, template="applicant_meeting", purpose="meeting",
              to=[case.applicant_address], now=now, language=case.language,
              context={"meeting": danish_date(meeting.day), "meeting_en": meeting.day.isoformat(),
                       "moved": moved})


def _following_meeting(session: Session, bot: Bot, after: date) -> Meeting:
    """The first meeting after `after` whose agenda has not gone out: "the next agenda"."""
    calendar = CouncilCalendar(bot.settings.council)
    for meeting in calendar.meetings(after + timedelta(days=1), after + timedelta(days=400)):
        if not _agenda_sent(session, meeting.day):
            return meeting
    raise ValueError("no later council meeting: check [council] no_meeting_periods")


def next_agenda_version(session: Session, meeting_day: date) -> int:
    """1 for a meeting's first agenda; each later send is an updated version."""
    versions = session.exec(select(Agenda.version).where(Agenda.meeting_date == meeting_day))
    return max(versions.all(), default=0) + 1


def _agenda_sent(session: Session, meeting_day: date) -> bool:
    return session.exec(select(Agenda).where(Agenda.meeting_date == meeting_day)).first() \
        is not None


# -- the agenda ---------------------------------------------------------------------------------
def due_meetings(bot: Bot, now: datetime) -> list[Meeting]:
    """Meetings whose deadline has passed but which have not started yet."""
    calendar = CouncilCalendar(bot.settings.council)
    today = now.astimezone(calendar.zone).date()
    return [m for m in calendar.meetings(today - timedelta(days=1), today + timedelta(days=60))
            if m.deadline <= now < m.starts]


def send_due_agendas(bot: Bot, now: datetime) -> int:
    """Each due meeting's agenda, once: the row is unique per (meeting, version), written in
    the same transaction as the mail, so a crash, a restart or a second instance cannot send
    it twice, and a daemon that was down at the deadline sends it when it comes back."""
    sent = 0
    for meeting in due_meetings(bot, now):
        try:
            with transaction(bot.engine) as session:
                if _agenda_sent(session, meeting.day):
                    continue
                if send_agenda(session, bot, meeting, now, version=1) is not None:
                    sent += 1
        except IntegrityError:
            log.info("agenda for %s was sent by another instance", meeting.day)
    return sent


def agenda_cases(session: Session, meeting_day: date) -> list[Case]:
    cases = session.exec(select(Case).where(Case.meeting_date == meeting_day)).all()
    return sorted(cases, key=lambda c: (as_utc(c.ready_at or c.created_at), c.ref))


def waiting_cases(session: Session, bot: Bot) -> list[tuple[Case, list[str]]]:
    out = []
    for case in session.exec(select(Case).where(col(Case.decision).is_(None),
                                                col(Case.meeting_date).is_(None),
                                                col(Case.status).in_(OPEN_STATUSES))
                             .order_by(col(Case.id))).all():
        out.append((case, readiness(session, bot, case)[1]))
    return out


def agenda_context(session: Session, bot: Bot, meeting: Meeting, version: int
                   ) -> dict[str, Any]:
    items = []
    for number, case in enumerate(agenda_cases(session, meeting.day), start=1):
        assert case.id is not None
        summary = case_summary(bot, case)
        items.append({
            "number": number, "case": summary,
            "where": case.answers.get("where") or "—",
            "when_normalised": _when_text(case), "cost_normalised": _cost_text(case),
            "reviews": [{"role_name": bot.rules.role_names[r.role],
                         "verdict": VERDICT_DA.get(r.verdict, r.verdict), "comment": r.comment,
                         "reviewer": r.answered_by or ", ".join(r.recipients)}
                        for r in reviews_of(session, case.id) if r.state != "superseded"],
            "documents": [f"{d.filename} (v{d.version})"
                          for d in latest_documents(session, case.id)],
        })
    waiting = [{"ref": c.ref, "title": c.title, "reasons": reasons}
               for c, reasons in waiting_cases(session, bot)]
    return {"meeting": danish_date(meeting.day), "meeting_iso": meeting.day.isoformat(),
            "starts": f"{meeting.starts:%H.%M}", "deadline": f"{meeting.deadline:%Y-%m-%d %H.%M}",
            "week": meeting.day.isocalendar().week, "version": version, "items": items,
            "waiting": waiting, "bot_name": bot.settings.bot.name}


def _when_text(case: Case) -> str:
    when = case.when or {}
    if not when:
        return ""
    span = when["start"] if when["start"] == when["end"] else f"{when['start']} – {when['end']}"
    return f"{span} ({when['precision']})"


def _cost_text(case: Case) -> str:
    cost = case.cost or {}
    parts = []
    for amount in cost.get("amounts", []):
        kroner = f"{amount['dkk']:,}".replace(",", ".")
        recurrence = {"one_off": "engang", "yearly": "årligt", "monthly": "månedligt",
                      "total_over_period": f"i alt over {amount.get('years')} år"}.get(
            amount["recurrence"], amount["recurrence"])
        vat = {"excl": ", ekskl. moms", "incl": ", inkl. moms"}.get(amount["vat"], "")
        parts.append(f"{kroner} kr. {recurrence}{vat}")
    if cost.get("payer"):
        parts.append(f"betales af {cost['payer']}")
    return "; ".join(parts)


def send_agenda(session: Session, bot: Bot, meeting: Meeting, now: datetime,
                version: int) -> Agenda | None:
    context = agenda_context(session, bot, meeting, version)
    if not context["items"] and bot.settings.council.empty_agenda == "skip" and version == 1:
        session.add(Agenda(meeting_date=meeting.day, version=version, message_id="",
                           created_at=now))
        log.info("no items for %s; empty agenda not sent (council.empty_agenda = skip)",
                 meeting.day)
        return None
    text, html = bot.renderer.render("da", "agenda", context)
    message_id = signed_message_id("agenda", agenda_ref(meeting.day), bot.domain, bot.secret)
    attachments = [(f"Dagsorden {meeting.day.isoformat()}.docx", agenda_docx(context),
                    "application/vnd.openxmlformats-officedocument.wordprocessingml.document")]
    bundle = _documents_zip(session, bot, meeting.day)
    if bundle is not None:
        attachments.append((f"Bilag {meeting.day.isoformat()}.zip", bundle, "application/zip"))
    prefix = "Opdateret dagsorden" if version > 1 else "Dagsorden"
    subject = f"{prefix} – IT-Projektrådets møde {danish_date(meeting.day)}"
    msg = build_message(sender_name=bot.settings.bot.name,
                        sender_address=bot.settings.bot.address,
                        to=tuple(bot.settings.council.secretary), subject=subject, text=text,
                        html=html, message_id=message_id, now=now,
                        auto_submitted="auto-generated", attachments=tuple(attachments))
    agenda = Agenda(meeting_date=meeting.day, version=version, message_id=message_id,
                    case_refs=[i["case"]["ref"] for i in context["items"]],
                    waiting_refs=[w["ref"] for w in context["waiting"]], created_at=now)
    session.add(agenda)
    session.flush()  # the unique (meeting, version) row first: a second sender stops here
    crash_point("building_agenda")
    enqueue(session, Outgoing(message_id, tuple(bot.settings.council.secretary), subject, msg),
            kind="agenda", case_id=None, now=now)
    record(session, None, None, now, "agenda_sent",
           f"{meeting.day} v{version}: {', '.join(agenda.case_refs) or 'no items'}")
    return agenda


def agenda_docx(context: dict[str, Any]) -> bytes:
    """The same agenda as a Word file, to journalise in SBSYS."""
    import docx

    document = docx.Document()
    title = "Opdateret dagsorden" if context["version"] > 1 else "Dagsorden"
    document.add_heading(f"{title} – IT-Projektrådets møde {context['meeting']}", level=1)
    document.add_paragraph(f"Uge {context['week']}. Frist for punkter: {context['deadline']}.")
    if not context["items"]:
        document.add_paragraph("Ingen punkter på dagsordenen.")
    for item in context["items"]:
        case = item["case"]
        document.add_heading(f"{item['number']}. {case['ref']} {case['title']}", level=2)
        document.add_paragraph(f"Ansøger: {case['applicant_name']} <{case['applicant']}>")
        document.add_paragraph(f"Enhed: {item['where']}")
        if case["strategic"]:
            document.add_paragraph(f"Strategisk: ja ({case['strategic_reason']})")
        for label, value in (("SBSYS", case["sbsys_number"]),
                             ("Systemejer", case["system_owner"])):
            if value:
                document.add_paragraph(f"{label}: {value}")
        table = document.add_table(rows=0, cols=2)
        for answer in case["answers"]:
            row = table.add_row().cells
            row[0].text, row[1].text = answer["label"], answer["text"]
        if item["when_normalised"]:
            document.add_paragraph(f"Tidsplan (normaliseret): {item['when_normalised']}")
        if item["cost_normalised"]:
            document.add_paragraph(f"Økonomi (normaliseret): {item['cost_normalised']}")
        for review in item["reviews"]:
            document.add_paragraph(f"{review['role_name']}: {review['verdict']}. "
                                   f"{review['comment']}", style="List Bullet")
        document.add_paragraph("Dokumenter: " + ", ".join(item["documents"]))
    if context["waiting"]:
        document.add_heading("Sager, der ikke er klar", level=2)
        for waiting in context["waiting"]:
            document.add_paragraph(f"{waiting['ref']} {waiting['title']}: "
                                   f"{'; '.join(waiting['reasons'])}", style="List Bullet")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _documents_zip(session: Session, bot: Bot, meeting_day: date) -> bytes | None:
    limit = bot.settings.council.agenda_zip_max_mb * 1024 * 1024
    files: list[tuple[str, CaseDocument]] = []
    for case in agenda_cases(session, meeting_day):
        assert case.id is not None
        files += [(f"{case.ref}/{d.filename}", d) for d in latest_documents(session, case.id)]
    if not files or sum(d.size for _, d in files) > limit:
        return None  # the agenda lists the documents instead
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, document in files:
            archive.writestr(name, bot.blobs.get(document.blob_sha256))
    return buffer.getvalue()


# -- decisions ----------------------------------------------------------------------------------
def apply_decisions(session: Session, bot: Bot, agenda_token: str, mail: Inbound,
                    found: DecisionReading, now: datetime) -> None:
    """The secretary's reply to an agenda mail: record each decision, tell the applicants,
    move postponed cases, forward strategic ones, list back what could not be mapped."""
    meeting_day = meeting_of(agenda_token)
    unmapped = list(found.unmapped)
    for ref, decision in found.decisions.items():
        case = session.exec(select(Case).where(Case.ref == ref)).first()
        if case is None:
            unmapped.append(f"{ref}: ingen sådan sag")
            continue
        _decide(session, bot, case, decision, found.texts[ref], meeting_day, now)
    if found.additions:
        _late_additions(session, bot, found.additions, meeting_day, now, unmapped)
    if unmapped:
        _list_back(session, bot, unmapped, mail, agenda_token, now)


def _decide(session: Session, bot: Bot, case: Case, decision: str, text: str,
            meeting_day: date, now: datetime) -> None:
    record(session, case.id, None, now, "decision", f"{decision}: {text}")
    if decision == "postponed":
        _queue(session, bot, case, _following_meeting(session, bot, meeting_day), now,
               moved=True)
        return
    case.decision, case.decision_text, case.decided_at = decision, text, now
    case.status = "decided"
    session.add(case)
    send_mail(session, bot, case, template="applicant_decision", purpose="decision",
              to=[case.applicant_address], now=now, language=case.language,
              context={"decision": decision, "decision_da": DECISION_DA[decision],
                       "text": text, "meeting": danish_date(meeting_day)})
    if decision == "forwarded":
        _forward_to_board(session, bot, case, now)


def _forward_to_board(session: Session, bot: Bot, case: Case, now: datetime) -> None:
    assert case.id is not None
    board = bot.settings.council.strategic_board
    if not board:
        record(session, case.id, None, now, "forward_failed", "council.strategic_board is empty")
        return
    documents = latest_documents(session, case.id)
    reviews = [r for r in reviews_of(session, case.id) if r.state != "superseded"]
    send_mail(session, bot, case, template="board_bundle", purpose="board", to=board, now=now,
              subject=f"Til strategisk beslutning: {case.title}", delivery="at_least_once",
              attachments=tuple((d.filename, bot.blobs.get(d.blob_sha256), d.content_type)
                                for d in documents),
              context={"reviews": [{"role_name": bot.rules.role_names[r.role],
                                    "verdict": VERDICT_DA.get(r.verdict, r.verdict),
                                    "comment": r.comment} for r in reviews],
                       "decision_text": case.decision_text})
    record(session, case.id, None, now, "forwarded", f"bundle to {', '.join(board)}")


def _late_additions(session: Session, bot: Bot, refs: list[str], meeting_day: date,
                    now: datetime, unmapped: list[str]) -> None:
    added = []
    for ref in refs:
        case = session.exec(select(Case).where(Case.ref == ref)).first()
        if case is None or case.decision is not None:
            unmapped.append(f"tilføj {ref}: ingen åben sag med det nummer")
            continue
        case.meeting_date, case.status = meeting_day, "queued"
        case.ready_at = case.ready_at or now
        session.add(case)
        record(session, case.id, None, now, "late_addition", f"added to {meeting_day}")
        added.append(ref)
    if not added:
        return
    version = next_agenda_version(session, meeting_day)
    calendar = CouncilCalendar(bot.settings.council)
    meeting = calendar.meeting_on(meeting_day) or Meeting(
        meeting_day, datetime.combine(meeting_day, datetime.min.time(), calendar.zone),
        datetime.combine(meeting_day, datetime.min.time(), calendar.zone))
    send_agenda(session, bot, meeting, now, version)


def _list_back(session: Session, bot: Bot, lines: list[str], mail: Inbound,
               agenda_token: str, now: datetime) -> None:
    """Lines the bot could not map go back to the secretary in one mail; nothing is guessed."""
    record(session, None, None, now, "decisions_unmapped", " | ".join(lines))
    text = "\n".join(f"- {line}" for line in lines)
    subject = f"Beslutninger, der ikke kunne læses: {mail.subject}"
    body = ("Følgende linjer i dit svar på dagsordenen kunne ikke kobles til en beslutning "
            "(godkendt, afvist, udsat eller sendt videre). Der er ikke gjort noget ved dem; "
            f"svar venligst igen med én linje pr. sag.\n\n{text}\n\n{bot.settings.bot.name}\n")
    html = "<p>" + escape(body).replace("\n", "<br>") + "</p>"
    # signed with the agenda's reference: the secretary's answer to it counts as a reply to
    # the agenda
    message_id = signed_message_id("unmapped", agenda_token, bot.domain, bot.secret)
    msg = build_message(sender_name=bot.settings.bot.name,
                        sender_address=bot.settings.bot.address, to=(mail.from_address,),
                        subject=subject, text=body, html=html, message_id=message_id, now=now,
                        in_reply_to=mail.message_id, references=(mail.message_id,))
    enqueue(session, Outgoing(message_id, (mail.from_address,), subject, msg),
            kind="unmapped", case_id=None, now=now)


def move_on_request(session: Session, bot: Bot, case: Case, command: str,
                    now: datetime) -> None:
    """The applicant wrote "udsæt" (next meeting) or "træk tilbage" (withdraw)."""
    if command == "withdraw":
        case.status, case.meeting_date = "withdrawn", None
        session.add(case)
        record(session, case.id, None, now, "withdrawn", "by the applicant")
        send_mail(session, bot, case, template="applicant_decision", purpose="decision",
                  to=[case.applicant_address], now=now, language=case.language,
                  context={"decision": "withdrawn", "decision_da": "trukket tilbage",
                           "text": "", "meeting": ""})
        return
    if case.meeting_date is None:
        record(session, case.id, None, now, "postpone_ignored", "not on an agenda yet")
        return
    _queue(session, bot, case, _following_meeting(session, bot, case.meeting_date), now,
           moved=True)

