"""The weekly agenda: which cases are ready, which meeting each goes to, and the agenda mail
to the secretary at the deadline, exactly once per meeting and version."""

from __future__ import annotations

import io
import logging
import zipfile
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TypedDict

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from mailbot.app import Bot
from mailbot.audit import record
from mailbot.cases.documents import forwarded_name, latest_documents
from mailbot.cases.mail import mail_about_case
from mailbot.cases.summary import missing_labels
from mailbot.clock import as_utc
from mailbot.council.agenda_docx import agenda_docx, item_docx
from mailbot.council.agenda_item import AgendaItem, agenda_item
from mailbot.council.meetings import CouncilCalendar, Meeting, meeting_texts
from mailbot.council.phases import final_check, final_labels, two_phases
from mailbot.council.reviews import current_reviews, review_state_label
from mailbot.db import transaction
from mailbot.delivery.mail import Attachment, queue_mail
from mailbot.faults import crash_point
from mailbot.intake.threads import agenda_ref
from mailbot.models import Agenda, Case, CaseDocument, Installation
from mailbot.vocabulary import OPEN_STATUSES, CaseStatus, Purpose, Verdict, check_transition

log = logging.getLogger(__name__)
DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
# Each item also goes as a Word file of its own (to paste into SBSYS's agenda item) when the
# agenda has at most this many items; a week of hundreds (SCENARIOS X5) would make the mail
# tens of megabytes, and the combined Word file holds every item anyway.
MAX_ITEM_FILES = 30


# -- readiness ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Readiness:
    ready: bool
    reasons: list[str]  # why not, in the words of rules/labels.yaml `readiness`


def readiness(session: Session, bot: Bot, case: Case) -> Readiness:
    """Ready = nothing missing and every current review approved; else the reasons why not.
    With two phases (`[council] phases = 2`): klarmeldt, nothing missing for final approval
    and no current review rejected (one still waiting does not hold the case back)."""
    assert case.id is not None
    if two_phases(bot):
        return _final_readiness(session, bot, case)
    words = bot.rules.labels
    reasons = []
    if case.missing:
        items = ", ".join(missing_labels(bot.rules, case.missing))
        reasons.append(words.get("readiness", "missing").format(items=items))
    current = current_reviews(session, case.id)
    if not current:
        reasons.append(words.get("readiness", "no_reviews"))
    for review in current:
        if review.verdict != Verdict.APPROVED:
            reasons.append(words.get("readiness", "review").format(
                role=bot.rules.role_names[review.role], state=review_state_label(bot, review)))
    return Readiness(not reasons, reasons)


def _final_readiness(session: Session, bot: Bot, case: Case) -> Readiness:
    words = bot.rules.labels
    check = final_check(session, bot, case)
    reasons = [] if case.klarmeldt_at is not None else [words.get("readiness", "not_klarmeldt")]
    if check.missing:
        items = ", ".join(final_labels(bot.rules, check.missing))
        reasons.append(words.get("readiness", "missing").format(items=items))
    reasons += [words.get("readiness", "review").format(
        role=bot.rules.role_names[r.role], state=review_state_label(bot, r))
        for r in check.rejected]
    return Readiness(not reasons, reasons)


def _leaves_agenda(session: Session, bot: Bot, case: Case) -> bool:
    """A queued case that no longer belongs on its agenda. With two phases only a rejected
    current review takes it off: what final approval needs cannot go missing again, and a
    case queued before an upgrade to two phases keeps its place without a klarmelding."""
    if two_phases(bot):
        return bool(final_check(session, bot, case).rejected)
    return not readiness(session, bot, case).ready


def _ready_at(session: Session, case: Case) -> datetime:
    """When the last condition was met: the latest of the last approval, the last update
    and the klarmelding."""
    assert case.id is not None
    return max([as_utc(case.updated_at)] + [as_utc(m) for m in (case.klarmeldt_at,)
                                             if m is not None]
               + [as_utc(r.answered_at) for r in current_reviews(session, case.id)
                  if r.answered_at is not None])


def queue_ready_cases(session: Session, bot: Bot, now: datetime) -> int:
    """Put every case that became ready on the agenda of the first meeting whose deadline it
    made, and tell the applicant the date. A queued case that is no longer ready leaves
    (unless its agenda has gone out). Returns the number of cases queued."""
    calendar = CouncilCalendar(bot.settings.council)
    queued = 0
    for case in session.exec(select(Case).where(col(Case.decision).is_(None),
                                                col(Case.status).in_(OPEN_STATUSES))).all():
        if case.meeting_date is not None:
            if agenda_sent(session, case.meeting_date):
                continue
            if _leaves_agenda(session, bot, case):
                _unqueue(session, bot, case, now)
            elif _meeting_passed(calendar, case.meeting_date, now):
                _missed(session, bot, calendar, case, now)
            continue
        if readiness(session, bot, case).ready:
            case.ready_at = _ready_at(session, case)
            queue(session, bot, case, first_open_meeting(session, calendar, case.ready_at), now)
            queued += 1
    return queued


def _meeting_passed(calendar: CouncilCalendar, day: date, now: datetime) -> bool:
    """The meeting on `day` has started (or, moved out of the calendar, its day is over)."""
    meeting = calendar.meeting_on(day)
    if meeting is None:
        return day < now.astimezone(calendar.zone).date()
    return meeting.starts <= now


def _missed(session: Session, bot: Bot, calendar: CouncilCalendar, case: Case,
            now: datetime) -> None:
    """The case waited for a meeting whose agenda never went out (the daemon was down from
    its deadline until after it began): it goes on the first agenda still open, and the
    applicant is told the new date, so no case is stranded on a meeting that is past."""
    assert case.meeting_date is not None
    log.warning("[%s] the agenda for %s was never sent; moved to the next meeting",
                case.ref, case.meeting_date)
    record(session, case.id, None, now, "agenda_missed",
           f"the agenda for {case.meeting_date} was never sent (the daemon was down)")
    queue(session, bot, case, first_open_meeting(session, calendar, now), now, moved=True)


def _unqueue(session: Session, bot: Bot, case: Case, now: datetime) -> None:
    """Off its agenda, with the reasons in its timeline: back to `klarmeldt` with two phases,
    else (one phase, or a case queued before an upgrade to two phases) to `complete`."""
    reasons = readiness(session, bot, case).reasons
    was = case.meeting_date
    case.meeting_date, case.ready_at = None, None
    case.status = check_transition(case.status, CaseStatus.KLARMELDT
                                   if two_phases(bot) and case.klarmeldt_at is not None
                                   else CaseStatus.COMPLETE)
    session.add(case)
    record(session, case.id, None, now, "unqueued",
           f"off the agenda of {was}: no longer ready ({'; '.join(reasons)})")


def first_open_meeting(session: Session, calendar: CouncilCalendar,
                       ready_at: datetime) -> Meeting:
    """The first meeting whose deadline is at or after `ready_at` and whose agenda has not
    gone out yet."""
    meeting = calendar.next_meeting(ready_at)
    while agenda_sent(session, meeting.day):
        meeting = calendar.next_meeting(meeting.deadline + timedelta(minutes=1))
    return meeting


def following_meeting(session: Session, bot: Bot, after: date) -> Meeting:
    """The first meeting after `after` whose agenda has not gone out: "the next agenda".
    Raises ValueError when none lies within 400 days."""
    calendar = CouncilCalendar(bot.settings.council)
    for meeting in calendar.meetings(after + timedelta(days=1), after + timedelta(days=400)):
        if not agenda_sent(session, meeting.day):
            return meeting
    raise ValueError("no later council meeting: check [council] no_meeting_periods")


def queue(session: Session, bot: Bot, case: Case, meeting: Meeting, now: datetime,
          moved: bool = False, klarmelding: bool = False) -> None:
    """Put the case on `meeting`'s agenda and tell the applicant the date. With two phases
    the mail also names the nearer meeting it missed (its deadline passed or its agenda went
    out) and the reviewers who have not answered yet; `klarmelding`: it answers her
    klarmelding."""
    case.meeting_date = meeting.day
    case.status = check_transition(case.status, CaseStatus.QUEUED)
    session.add(case)
    record(session, case.id, None, now, "moved" if moved else "queued",
           f"meeting {meeting.day.isoformat()} (deadline {meeting.deadline:%Y-%m-%d %H:%M})")
    mail_about_case(session, bot, case, template="applicant_meeting", purpose=Purpose.MEETING,
                    to=[case.applicant_address], now=now, language=case.language,
                    context={**meeting_texts(meeting), "moved": moved,
                             **_final_note(session, bot, case, meeting, now, moved,
                                           klarmelding)})


class FinalNote(TypedDict):
    """What `applicant_meeting` says besides the date: `phases`; with two phases whether
    it answers a `klarmelding`, the nearer meeting it `missed` ("" for none; in Danish and
    English with its deadline) and the reviewers still `waiting` to answer."""

    phases: int
    klarmelding: bool
    missed: str
    missed_en: str
    missed_deadline: str
    missed_deadline_en: str
    waiting: list[str]


def _final_note(session: Session, bot: Bot, case: Case, meeting: Meeting, now: datetime,
                moved: bool, klarmelding: bool) -> FinalNote:
    assert case.id is not None
    note = FinalNote(phases=bot.settings.council.phases, klarmelding=klarmelding, missed="",
                     missed_en="", missed_deadline="", missed_deadline_en="", waiting=[])
    if not two_phases(bot):
        return note
    nearest = CouncilCalendar(bot.settings.council).upcoming(now)
    if not moved and nearest.day < meeting.day:
        texts = meeting_texts(nearest)
        note["missed"], note["missed_en"] = texts["meeting"], texts["meeting_en"]
        note["missed_deadline"], note["missed_deadline_en"] = (texts["deadline"],
                                                               texts["deadline_en"])
    note["waiting"] = [bot.rules.role_name(r.role, case.language)
                       for r in current_reviews(session, case.id) if r.verdict is None]
    return note


def next_agenda_version(session: Session, meeting_day: date) -> int:
    """1 for a meeting's first agenda; each later send is an updated version."""
    versions = session.exec(select(Agenda.version).where(Agenda.meeting_date == meeting_day))
    return max(versions.all(), default=0) + 1


def agenda_sent(session: Session, meeting_day: date) -> bool:
    return session.exec(select(Agenda).where(Agenda.meeting_date == meeting_day)).first() \
        is not None


# -- the agenda at the deadline ----------------------------------------------------------------
def first_run_at(session: Session, now: datetime) -> datetime:
    """When the daemon first ran here; the first call records `now`."""
    installation = session.get(Installation, 1)
    if installation is None:
        installation = Installation(id=1, first_run_at=now)
        session.add(installation)
        session.flush()
    return as_utc(installation.first_run_at)


def due_meetings(bot: Bot, now: datetime, since: datetime) -> list[Meeting]:
    """Meetings whose deadline has passed (but not before `since`, the first run) and which
    have not started yet."""
    calendar = CouncilCalendar(bot.settings.council)
    today = now.astimezone(calendar.zone).date()
    return [m for m in calendar.meetings(today - timedelta(days=1), today + timedelta(days=60))
            if since <= m.deadline <= now < m.starts]


def send_due_agendas(bot: Bot, now: datetime) -> int:
    """Each due meeting's agenda, once: the row is unique per (meeting, version), written in
    the same transaction as the mail, so a crash, a restart or a second instance cannot send
    it twice, and a daemon that was down at the deadline sends it when it comes back. A
    deadline that passed before the daemon first ran is not sent (a fresh install)."""
    with transaction(bot.engine) as session:
        since = first_run_at(session, now)
    sent = 0
    for meeting in due_meetings(bot, now, since):
        try:
            with transaction(bot.engine) as session:
                if agenda_sent(session, meeting.day):
                    continue
                if send_agenda(session, bot, meeting, now, version=1) is not None:
                    sent += 1
        except IntegrityError:
            log.info("agenda for %s was sent by another instance", meeting.day)
    return sent


def agenda_cases(session: Session, meeting_day: date) -> list[Case]:
    cases = session.exec(select(Case).where(Case.meeting_date == meeting_day)).all()
    return sorted(cases, key=lambda c: (as_utc(c.ready_at or c.created_at), c.ref))


def waiting_cases(session: Session, bot: Bot, meeting: Meeting) -> list[tuple[Case, Readiness]]:
    """Open cases that were aimed at `meeting` (opened before its deadline) but are not on
    any agenda, each with why it is not ready."""
    rows = session.exec(select(Case).where(col(Case.decision).is_(None),
                                           col(Case.meeting_date).is_(None),
                                           col(Case.status).in_(OPEN_STATUSES))
                        .order_by(col(Case.id))).all()
    return [(c, readiness(session, bot, c)) for c in rows
            if as_utc(c.created_at) <= meeting.deadline]


class WaitingCase(TypedDict):
    ref: str
    title: str
    reasons: list[str]


class AgendaContext(TypedDict):
    """What the agenda templates (mail, subject and DOCX) see. `deadline` is
    "2027-03-01 12.00" here (MeetingTexts has the applicant's wording)."""

    meeting: str
    meeting_iso: str
    starts: str
    deadline: str
    week: int
    version: int
    items: list[AgendaItem]
    waiting: list[WaitingCase]
    bot_name: str
    item_files: bool  # one Word file per item is attached (at most MAX_ITEM_FILES items)
    item_files_max: int


def agenda_context(session: Session, bot: Bot, meeting: Meeting, version: int
                   ) -> AgendaContext:
    """The meeting, `items` (each case as an agenda item in the municipal form, see
    mailbot.council.agenda_item, in agenda order) and `waiting` (cases aimed at it but not
    ready)."""
    items = [agenda_item(session, bot, case, number)
             for number, case in enumerate(agenda_cases(session, meeting.day), start=1)]
    texts = meeting_texts(meeting)
    return AgendaContext(
        meeting=texts["meeting"], meeting_iso=meeting.day.isoformat(), starts=texts["starts"],
        deadline=f"{meeting.deadline:%Y-%m-%d %H.%M}", week=meeting.day.isocalendar().week,
        version=version, items=items,
        waiting=[WaitingCase(ref=c.ref, title=c.title, reasons=r.reasons)
                 for c, r in waiting_cases(session, bot, meeting)],
        bot_name=bot.settings.bot.name, item_files=len(items) <= MAX_ITEM_FILES,
        item_files_max=MAX_ITEM_FILES)


def send_agenda(session: Session, bot: Bot, meeting: Meeting, now: datetime,
                version: int) -> Agenda | None:
    """Queue the agenda mail (text, HTML, the DOCX of the whole agenda, one DOCX per item
    and the documents as one ZIP) to `council.secretary` and add its unique (meeting,
    version) row; None when the agenda is
    empty and `council.empty_agenda = "skip"` (the row is still written), or when no
    secretary is configured (no row: a warning)."""
    if not bot.settings.council.secretary:
        log.warning("agenda for %s not sent: council.secretary is empty", meeting.day)
        return None  # no row: it goes out once a secretary is configured (before the meeting)
    context = agenda_context(session, bot, meeting, version)
    if not context["items"] and bot.settings.council.empty_agenda == "skip" and version == 1:
        session.add(Agenda(meeting_date=meeting.day, version=version, message_id="",
                           created_at=now))
        log.info("no items for %s; empty agenda not sent (council.empty_agenda = skip)",
                 meeting.day)
        return None
    agenda = Agenda(meeting_date=meeting.day, version=version, message_id="",
                    case_refs=[i["case"]["ref"] for i in context["items"]],
                    waiting_refs=[w["ref"] for w in context["waiting"]], created_at=now)
    session.add(agenda)
    session.flush()  # the unique (meeting, version) row first: a second sender stops here
    crash_point("building_agenda")
    files = bot.rules.labels
    day = meeting.day.isoformat()
    attachments: list[Attachment] = [(files.get("files", "agenda_docx").format(meeting=day),
                                      agenda_docx(bot.renderer, context), DOCX_TYPE)]
    if context["item_files"]:
        attachments += [(files.get("files", "agenda_item_docx").format(
                            meeting=day, number=item["number"], ref=item["case"]["ref"]),
                         item_docx(bot.renderer, context, item), DOCX_TYPE)
                        for item in context["items"]]
    bundle = _documents_zip(session, bot, meeting.day)
    if bundle is not None:
        attachments.append((files.get("files", "documents_zip").format(meeting=day), bundle,
                            "application/zip"))
    row = queue_mail(session, bot, template="agenda", purpose=Purpose.AGENDA,
                     to=bot.settings.council.secretary, context=context, now=now,
                     sign_ref=agenda_ref(meeting.day), attachments=attachments)
    agenda.message_id = row.message_id
    session.add(agenda)
    record(session, None, None, now, "agenda_sent",
           f"{meeting.day} v{version}: {', '.join(agenda.case_refs) or 'no items'}")
    return agenda


def _documents_zip(session: Session, bot: Bot, meeting_day: date) -> bytes | None:
    limit = bot.settings.council.agenda_zip_max_mb * 1024 * 1024
    files: list[tuple[str, CaseDocument]] = []
    for case in agenda_cases(session, meeting_day):
        assert case.id is not None
        files += [(case.ref, d) for d in latest_documents(session, case.id)]
    if not files or sum(d.size for _, d in files) > limit:
        return None  # the agenda lists the documents instead
    buffer = io.BytesIO()
    written: set[str] = set()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for ref, document in files:
            payload = bot.blobs.get(document.blob_sha256)
            # forwarded_name as in the review requests: a ZIP member as itself, never an
            # archive under a document's name, no "/" (zip-slip) in the case's folder
            name = f"{ref}/{forwarded_name(document.filename, payload) or document.kind}"
            if name not in written:  # an archive several members' rows hold goes once
                written.add(name)
                archive.writestr(name, payload)
    return buffer.getvalue()

