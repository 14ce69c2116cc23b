"""The secretary's read-only overview (issue #14): Sager, En sag, Møder, Drift.

Server-rendered HTML from templates/web (Danish, autoescaped), no JavaScript. Every value a
template prints passes the environment's `finalize` (redact_cpr), so no page can show a CPR
number whatever a template forgets. Nothing here writes to the database: each page reads in
its own session, which is closed without a commit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup
from sqlmodel import Session, col, select
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from mailbot.app import template_folders
from mailbot.clock import as_utc
from mailbot.council.meetings import CouncilCalendar, Meeting
from mailbot.db import MAX_ROW_ID
from mailbot.redact import redact_cpr
from mailbot.web import auth
from mailbot.web.auth import WebUser

if TYPE_CHECKING:
    from mailbot.app import Bot
    from mailbot.models import Case

READERS = ("secretary", "operator", "council")  # Sager, En sag, Møder
OPERATIONS = ("operator", "secretary")  # Drift
DOWNLOADERS = ("secretary", "council")  # a case's documents
MEETINGS_SHOWN = 6
ROWS_SHOWN = 100  # outbox rows and quarantined mails on Drift, newest first
# Security headers of every page: no script may run at all (the overview has none), styles
# only from us or inline (the agenda preview is the mail's own HTML with its style
# attributes), no framing of the overview by another site (CSP Level 3, W3C).
CSP = ("default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}

def _finalize(value: object) -> object:
    """Every printed value CPR-redacted (README "CPR numbers"); Markup stays Markup."""
    if isinstance(value, Markup):
        return Markup(redact_cpr(str(value)))
    return redact_cpr("" if value is None else str(value))


def environment(bot: Bot) -> Environment:
    """The pages' jinja2 environment: templates/web under the same folders as the mail
    templates (a local `bot.templates_dir` first), autoescaped, CPR redacted (_finalize)."""
    env = Environment(loader=FileSystemLoader([str(f) for f in template_folders(bot.settings)]),
                      autoescape=True, undefined=StrictUndefined, finalize=_finalize)
    env.filters["local"] = _local_filter(ZoneInfo(bot.settings.council.timezone))
    env.globals.update(two_phases=bot.settings.council.phases == 2,
                       bot_name=bot.settings.bot.name,
                       zone_name=bot.settings.council.timezone)
    # the words for stored values (statuses, mail purposes, events …) are template data
    env.globals["words"] = env.get_template("web/_words.html.j2").module
    return env


def _local_filter(zone: tzinfo) -> Any:
    def local(moment: datetime | None, shape: str = "%Y-%m-%d %H:%M %Z") -> str:
        """A stored moment (UTC) in the council's zone, the zone named ("CET", "CEST")."""
        return as_utc(moment).astimezone(zone).strftime(shape) if moment else "–"
    return local


@dataclass
class Overview:
    """What the pages share: the bot and its template environment."""

    bot: Bot
    env: Environment

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.bot.settings.council.timezone)

    def render(self, request: Request, template: str, context: dict[str, Any],
               status: int = 200) -> Response:
        """`template` with `context`, the signed-in user and the CSRF token of the sign-out
        form; the security headers of every page."""
        full = {"user": None, "path": request.url.path, "csrf": auth.csrf_token(request),
                "auth": self.bot.settings.web.auth, **context}
        html = self.env.get_template(template).render(full)
        return HTMLResponse(html, status_code=status, headers=HEADERS)

    def refuse(self, request: Request, user: WebUser | None, status: int) -> Response:
        return self.render(request, "web/refused.html.j2", {"user": user, "status": status},
                           status)


def routes(bot: Bot) -> list[BaseRoute]:
    """/ (to /sager), /sager, /sager/{ref}, /sager/{ref}/dokumenter/{id}, /moeder, /drift,
    /web.css and the sign-in routes (mailbot.web.auth)."""
    view = Overview(bot, environment(bot))

    def page(function: auth.Page, roles: tuple[str, ...]) -> Any:
        return auth.guarded(function, roles, view.refuse)

    async def home(request: Request) -> Response:
        return RedirectResponse("/sager", status_code=303)

    return [
        Route("/", home),
        Route("/sager", page(lambda r, u: cases_page(view, r, u), READERS)),
        Route("/sager/{ref}", page(lambda r, u: case_page(view, r, u), READERS)),
        Route("/sager/{ref}/dokumenter/{document}",
              page(lambda r, u: document_download(view, r, u), DOWNLOADERS)),
        Route("/moeder", page(lambda r, u: meetings_page(view, r, u), READERS)),
        Route("/drift", page(lambda r, u: operations_page(view, r, u), OPERATIONS)),
        Route("/web.css", lambda r: stylesheet(view)),
        *auth.routes(view.render),
    ]


def not_found(bot: Bot) -> Callable[[Request, Exception], Awaitable[Response]]:
    """The handler of Starlette's 404 (a path no route knows, or a path parameter of the
    wrong shape): the overview's Danish "Ikke fundet" page in its layout, the signed-in
    user's menu included, instead of the plain English "Not Found" (Starlette docs,
    "Exceptions": handlers keyed by status code)."""
    view = Overview(bot, environment(bot))

    async def handler(request: Request, exc: Exception) -> Response:
        return view.render(request, "web/missing.html.j2",
                           {"user": auth.current_user(request), "ref": request.url.path}, 404)
    return handler


def stylesheet(view: Overview) -> Response:
    """templates/web/web.css (a local templates folder may replace it)."""
    assert view.env.loader is not None
    text, _, _ = view.env.loader.get_source(view.env, "web/web.css")
    return Response(text, media_type="text/css",
                    headers={"Cache-Control": "max-age=3600", "X-Content-Type-Options": "nosniff"})


# -- Sager ------------------------------------------------------------------------------------
def cases_page(view: Overview, request: Request, user: WebUser) -> Response:
    """Every case (or those of `?status=` and `?moede=YYYY-MM-DD`), the next action due
    first, cases with nothing due (decided, withdrawn) last."""
    from mailbot.models import Case
    from mailbot.vocabulary import CaseStatus

    bot, now = view.bot, view.bot.clock.now()
    status = request.query_params.get("status", "").strip()
    asked_meeting = request.query_params.get("moede", "").strip()
    meeting = _day(asked_meeting)
    # a mistyped filter shows no case rather than every case: a wrong bookmark must not
    # look like a filter that worked (issue #14 trial)
    bad_status = status if status not in ("", *CaseStatus.__members__.values()) else ""
    bad_meeting = asked_meeting if asked_meeting and meeting is None else ""
    with Session(bot.engine) as session:
        query = select(Case)
        if status:
            query = query.where(Case.status == status)
        if meeting is not None:
            query = query.where(Case.meeting_date == meeting)
        clock = AgendaClock.at(bot, now)  # one calendar for every row
        rows = ([] if bad_status or bad_meeting else
                [case_row(session, bot, case, clock) for case in session.exec(query).all()])
        meetings = sorted({d for d in session.exec(select(col(Case.meeting_date))).all() if d})
    far = datetime.max.replace(tzinfo=ZoneInfo("UTC"))
    rows.sort(key=lambda r: (r["due"] is None, r["due"] or far, r["ref"]))
    return view.render(request, "web/sager.html.j2", {
        "user": user, "rows": rows, "status": "" if bad_status else status,
        "meeting": meeting.isoformat() if meeting else "", "meetings": meetings,
        "bad_status": bad_status, "bad_meeting": bad_meeting})


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text.strip()) if text.strip() else None
    except ValueError:
        return None


@dataclass(frozen=True)
class AgendaClock:
    """The council's calendar and the next agenda deadline at one moment: the same for every
    case of a page, so it is worked out once per page, not once per case."""

    calendar: CouncilCalendar
    deadline: datetime | None  # the next agenda deadline still ahead (UTC); None: none

    @classmethod
    def at(cls, bot: Bot, now: datetime) -> AgendaClock:
        calendar = CouncilCalendar(bot.settings.council)
        meeting = _next_meeting(calendar, now)
        return cls(calendar, meeting.deadline if meeting else None)


def case_row(session: Session, bot: Bot, case: Case, clock: AgendaClock) -> dict[str, Any]:
    """One line of Sager: the case's facts in Danish and its next step (`step`, `due`)."""
    from mailbot.cases.summary import missing_labels
    from mailbot.council.reviews import current_reviews, review_state_label

    assert case.id is not None
    reviews = current_reviews(session, case.id)
    step, due = next_step(bot, case, reviews, clock)
    return {"ref": case.ref, "title": case.title, "applicant": case.applicant_name,
            "address": case.applicant_address, "status": case.status, "phase": case.phase,
            "missing": missing_labels(bot.rules, case.missing),
            "reviews": [(bot.rules.role_name(r.role), review_state_label(bot, r))
                        for r in reviews],
            "meeting": case.meeting_date, "decision": _decision(bot, case),
            "step": step, "due": due}


def _decision(bot: Bot, case: Case) -> str:
    return bot.rules.labels.get("decisions", case.decision) if case.decision else ""


def next_step(bot: Bot, case: Case, reviews: list[Any], clock: AgendaClock
              ) -> tuple[str, datetime | None]:
    """What the case waits for and when it is due (UTC), from the rules the daemon acts on:
    a review answer by its next reminder (`reviews.reminder_working_days`), the applicant's
    missing items by the reminder (`reviews.applicant_reminder_working_days`), a queued case
    by its meeting, anything else by the next agenda deadline (CouncilCalendar). None: a
    decided or withdrawn case waits for nothing."""
    from mailbot.council.meetings import add_working_days

    if case.decision or case.status in ("decided", "withdrawn"):
        return "intet (afsluttet)", None
    if case.meeting_date is not None:
        meeting = clock.calendar.meeting_on(case.meeting_date)
        return "behandles på mødet", meeting.starts if meeting else None
    days = bot.settings.reviews
    waiting = [r for r in reviews if r.verdict is None]
    if waiting:
        due = min(add_working_days(as_utc(r.last_reminder_at or r.requested_at),
                                   days.reminder_working_days) for r in waiting)
        names = ", ".join(bot.rules.role_name(r.role) for r in waiting)
        return f"svar fra {names}", due
    deadline = clock.deadline
    if case.missing:
        if case.applicant_reminded_at is None:
            return "ansøgeren mangler noget", add_working_days(
                as_utc(case.created_at), days.applicant_reminder_working_days)
        return "ansøgeren mangler noget (påmindet)", deadline
    if case.status == "guided":
        return "klarmelding fra ansøgeren", deadline
    return "næste dagsorden", deadline


# -- En sag -----------------------------------------------------------------------------------
def case_page(view: Overview, request: Request, user: WebUser) -> Response:
    """One case: facts, answers, documents with versions (download links for DOWNLOADERS),
    reviews with comments, mails sent, and the timeline in local time."""
    from mailbot.cases.lookup import find_case
    from mailbot.cases.summary import answer_label
    from mailbot.models import CaseDocument, CaseEvent, Outbox
    from mailbot.views import case_data

    bot = view.bot
    with Session(bot.engine) as session:
        case = find_case(session, request.path_params["ref"])
        if case is None:
            return view.render(request, "web/missing.html.j2",
                               {"user": user, "ref": request.path_params["ref"]}, 404)
        data = case_data(session, case, view.zone)
        documents = session.exec(select(CaseDocument).where(CaseDocument.case_id == case.id)
                                 .order_by(col(CaseDocument.kind), col(CaseDocument.version),
                                           col(CaseDocument.id))).all()
        events = session.exec(select(CaseEvent).where(CaseEvent.case_id == case.id)
                              .order_by(col(CaseEvent.at), col(CaseEvent.id))).all()
        mails = session.exec(select(Outbox).where(Outbox.case_id == case.id)
                             .order_by(col(Outbox.created_at), col(Outbox.id))).all()
        row = case_row(session, bot, case, AgendaClock.at(bot, bot.clock.now()))
        context = {
            "user": user, "case": case, "row": row, "data": data,
            "answers": [(answer_label(bot.rules, qid), text) for qid, text
                        in data["answers"].items()],
            "documents": [{"doc": d, "title": bot.rules.title(d.kind),
                           "download": user.role in DOWNLOADERS and downloadable(d)}
                          for d in documents],
            "reviews": [{**r, "role_name": bot.rules.role_name(r["role"]),
                         "requested": datetime.fromisoformat(r["requested_at"]),
                         "verdict_words": bot.rules.labels.get("review_states",
                                                               r["verdict"] or "waiting")}
                        for r in data["reviews"]],
            "events": events, "mails": mails}
    return view.render(request, "web/sag.html.j2", context)


def downloadable(document: Any) -> bool:
    """A document whose bytes are kept and may be handed out: not held back (a hazard),
    not purged by retention, not refused before it was stored."""
    return bool(document.blob_sha256) and document.purged_at is None and not document.held


def row_id(text: str) -> int | None:
    """A row id from a URL: 1 … mailbot.db.MAX_ROW_ID as decimal digits, else None (a bigger
    number would make the database raise, i.e. a 500 with a traceback in the log)."""
    if not text.isascii() or not text.isdigit():
        return None
    number = int(text)
    return number if 0 < number <= MAX_ROW_ID else None


def document_download(view: Overview, request: Request, user: WebUser) -> Response:
    """The document's bytes as an attachment: application/octet-stream whatever the
    applicant's mail claimed, so a browser never renders it as a page."""
    from urllib.parse import quote

    from mailbot.cases.lookup import find_case
    from mailbot.models import CaseDocument

    with Session(view.bot.engine) as session:
        case = find_case(session, request.path_params["ref"])
        number = row_id(request.path_params["document"])
        document = session.get(CaseDocument, number) if number is not None else None
        if case is None or document is None or document.case_id != case.id \
                or not downloadable(document):
            return view.render(request, "web/missing.html.j2",
                               {"user": user, "ref": request.path_params["ref"]}, 404)
        payload = view.bot.blobs.get(document.blob_sha256)
        name = redact_cpr(document.filename)
    ascii_name = name.encode("ascii", "replace").decode().replace('"', "'").replace("?", "_")
    return Response(payload, media_type="application/octet-stream", headers={
        **HEADERS,
        # RFC 6266 section 4.3: a plain fallback name, and the real one in RFC 8187 form
        "Content-Disposition": f"attachment; filename=\"{ascii_name}\"; "
                               f"filename*=UTF-8''{quote(name)}"})


# -- Møder ------------------------------------------------------------------------------------
def meetings_page(view: Overview, request: Request, user: WebUser) -> Response:
    """The next meetings with their deadlines and the cases on each, the next agenda as it
    will be sent (the agenda mail's own rendering: mailbot.council.agenda), and the agendas
    already sent."""
    from mailbot.council.agenda import agenda_cases
    from mailbot.models import Agenda, Outbox

    bot, now = view.bot, view.bot.clock.now()
    calendar = CouncilCalendar(bot.settings.council)
    today = now.astimezone(view.zone).date()
    upcoming = [m for m in calendar.meetings(today, today + timedelta(days=400))
                if m.starts > now][:MEETINGS_SHOWN]
    with Session(bot.engine) as session:
        sent = session.exec(select(Agenda).order_by(col(Agenda.meeting_date).desc(),
                                                    col(Agenda.version).desc())).all()
        states = {o.message_id: o.state for o in session.exec(
            select(Outbox).where(col(Outbox.message_id).in_(
                [a.message_id for a in sent if a.message_id]))).all()}
        # newest version first (the query's order): a meeting's agenda state is its latest's
        latest = {a.meeting_date: a for a in reversed(sent)}
        meetings = [{"meeting": m, "week": m.day.isocalendar().week,
                     "cases": agenda_cases(session, m.day), "agenda": latest.get(m.day),
                     "state": states.get(latest[m.day].message_id, "")
                     if m.day in latest else ""} for m in upcoming]
        preview = agenda_preview(session, bot, _next_meeting(calendar, now))
    return view.render(request, "web/moeder.html.j2", {
        "user": user, "meetings": meetings, "preview": preview,
        "sent": [{"agenda": a, "state": states.get(a.message_id, "")} for a in sent]})


def _next_meeting(calendar: CouncilCalendar, now: datetime) -> Meeting | None:
    """The meeting `mailbot agenda` previews by default: CouncilCalendar.next_meeting, the
    first whose deadline is still ahead; None when there is none within 400 days."""
    try:
        return calendar.next_meeting(now)
    except ValueError:  # no meeting within 400 days: `mailbot check` says why
        return None


def agenda_preview(session: Session, bot: Bot, meeting: Any) -> dict[str, Any] | None:
    """The agenda mail for `meeting` as send_agenda would queue it now: subject, text and
    HTML from the same context and templates; None for no meeting."""
    from mailbot.council.agenda import agenda_context, next_agenda_version

    if meeting is None:
        return None
    context = agenda_context(session, bot, meeting, next_agenda_version(session, meeting.day))
    subject, text, html = bot.renderer.render_mail("da", "agenda", context)
    return {"meeting": meeting, "subject": subject, "text": text, "html": html,
            "item_count": len(context["items"]), "waiting_count": len(context["waiting"]),
            "skipped": not context["items"] and bot.settings.council.empty_agenda == "skip"}


# -- Drift ------------------------------------------------------------------------------------
def operations_page(view: Overview, request: Request, user: WebUser) -> Response:
    """mailbot.health's report, the outbox (rows not sent first) and the quarantine."""
    from mailbot.health import evaluate
    from mailbot.models import Outbox, RawMessage
    from mailbot.views import case_refs, message_sender, outbox_problem

    bot = view.bot
    report = evaluate(bot, bot.clock.now())
    with Session(bot.engine) as session:
        outbox = session.exec(select(Outbox).order_by(
            (col(Outbox.state) == "sent"), col(Outbox.id).desc()).limit(ROWS_SHOWN)).all()
        quarantined = session.exec(select(RawMessage).where(RawMessage.state == "quarantined")
                                   .order_by(col(RawMessage.id).desc()).limit(ROWS_SHOWN)).all()
        refs = case_refs(session, {r.case_id for r in outbox} | {r.case_id for r in quarantined})
    return view.render(request, "web/drift.html.j2", {
        "user": user, "report": report,
        "outbox": [{"row": r, "ref": refs.get(r.case_id), "problem": outbox_problem(r)}
                   for r in outbox],
        "quarantine": [{"row": r, "ref": refs.get(r.case_id), "sender": message_sender(r)}
                       for r in quarantined]})
