"""A dress rehearsal of every mail mailbot can send, for `mailbot check`.

A template with an undefined name, or a label with a wrong placeholder, fails only when it is
rendered, and most mails are rendered days after `check` ran (a reminder, the agenda at the
deadline). So `check` plays the whole process once, in Danish and in English, on a throwaway
SQLite database in a temporary folder: a brief with gaps, the receipt, review requests, the
applicant's status, the answer to an encrypted mail, an unclear verdict asked back and then
handed to the secretary, guidance, reminders, the meeting notice, the agenda with its Word
file, a decision with the board bundle, a withdrawal and decision lines listed back; all of
it with one phase and with two, and with two a klarmelding that misses something, the
guidance completed and a klarmelding that goes on the agenda. Every
mail goes through the real sending path and ends in the throwaway outbox; nothing is sent
and nothing touches the real database.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any

from sqlmodel import Session, SQLModel, col, select

from mailbot.app import Bot
from mailbot.blobs import BlobStore
from mailbot.cases.opening import open_case, send_receipt
from mailbot.config import Settings
from mailbot.council.agenda import agenda_sent, next_agenda_version, queue, send_agenda
from mailbot.council.attention import unauthenticated_agenda_reply
from mailbot.council.decisions import apply_decisions, decide, move_on_request
from mailbot.council.klarmelding import answer_followup
from mailbot.council.meetings import CouncilCalendar
from mailbot.council.phases import give_guidance
from mailbot.council.reminders import relay_guidance, remind
from mailbot.council.reviews import apply_verdict, requests_due, route
from mailbot.council.status import send_status
from mailbot.db import make_engine
from mailbot.delivery.mail import queue_mail
from mailbot.delivery.outbox import Sender
from mailbot.intake.classify import ENCRYPTED_REF
from mailbot.intake.parse import Inbound, parse
from mailbot.intake.threads import ALERT_REF, agenda_ref
from mailbot.models import Agenda, Case, Outbox, RawMessage, Review
from mailbot.reading.brief import read_brief
from mailbot.reading.decisions import DecisionReading
from mailbot.reading.replies import Verdict as VerdictReading
from mailbot.vocabulary import Decision, Incident, Purpose, Role

APPLICANT = "Åse Ærø <aase.aeroe@example.invalid>"
REHEARSAL_SECRET = b"rehearsal"  # signs the rehearsal's ids (a throwaway database, no mail)
# "Why" is given in prose, not under a label, so the receipt's "how we understood you" part
# is rendered too; "How much" is missing, so is the list of what is missing.
BRIEFS = {
    "da": "Hvem: Åse Ærø, Borgerservice\nHvad: Et nyt bookingsystem\nHvor: Borgerservice\n"
          "Hvornår: 1. marts 2027\n\nVi har brug for det, fordi borgerne i dag ringer for at "
          "booke.\n",
    "en": "Who: Åse Ærø, Citizen Services\nWhat: A booking system\nWhere: Citizen Services\n"
          "When: 1 March 2027\n\nWe need it because citizens phone us today to book.\n",
}


def rehearse(bot: Bot) -> int:
    """Render every kind of mail with sample data; returns how many mails were composed.
    Raises what rendering raises (jinja2.TemplateError, KeyError/ValueError from a label,
    ConfigError for a missing template)."""
    return len(rehearsal_mails(bot))


def rehearsal_mails(bot: Bot, briefs: Mapping[str, bytes] | None = None
                    ) -> list[tuple[str, bytes]]:
    """Every mail the rehearsal composes, as (outbox kind, the message's bytes), in the
    order queued. `briefs` replaces the sample brief per language ("da", "en") with raw
    bytes of one's own (a hostile subject: tests/unit/test_outgoing_headers.py). Signed
    with REHEARSAL_SECRET. Raises what rehearse raises."""
    with tempfile.TemporaryDirectory(prefix="mailbot-rehearsal-") as folder:
        stage = _stage_bot(bot, Path(folder))
        try:
            with Session(stage.engine) as session:
                # both `[council] phases`, whatever the config says: each has wording of its own
                plays = [(phases, language) for phases in (1, 2) for language in BRIEFS]
                for number, (phases, language) in enumerate(plays, start=1):
                    _play(session, _with_phases(stage, phases), language, number, briefs)
                for number, language in enumerate(BRIEFS, start=len(plays) + 1):
                    _two_phases(session, _with_phases(stage, 2), language, number * 10, briefs)
                _alerts(session, stage)
                _encrypted(session, stage)
                _export_index(stage)
                mails = [(row.kind, row.raw) for row in
                         session.exec(select(Outbox).order_by(col(Outbox.id))).all()]
                session.rollback()
            return mails
        finally:
            stage.engine.dispose()


def _stage_bot(bot: Bot, folder: Path) -> Bot:
    """The same rules, templates and clock, with a throwaway database, blob store, sample
    addresses for every role and a throwaway secret."""
    domain = bot.settings.bot.domain
    staff = {role.value: [f"{role.value}@{domain}"] for role in Role}
    settings = Settings.model_validate({
        **bot.settings.model_dump(mode="python"),
        "reviewers": staff,
        "council": {**bot.settings.council.model_dump(mode="python"),
                    "secretary": [f"sekretaer@{domain}"],
                    "strategic_board": [f"styregruppe@{domain}"]},
    })
    engine = make_engine(f"sqlite:///{folder / 'rehearsal.sqlite3'}")
    SQLModel.metadata.create_all(engine)
    return Bot(settings=settings, engine=engine, rules=bot.rules, renderer=bot.renderer,
               blobs=BlobStore(folder / "blobs"), clock=bot.clock,
               sender=Sender(engine, settings.smtp, settings.bot.address),
               fixed_secret=REHEARSAL_SECRET)


def _with_phases(bot: Bot, phases: int) -> Bot:
    council = bot.settings.council.model_copy(update={"phases": phases})
    return replace(bot, settings=bot.settings.model_copy(update={"council": council}))


def _brief(language: str, address: str) -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = APPLICANT
    msg["To"] = address
    msg["Subject"] = "Projektforslag: Prøve" if language == "da" else "New IT project: Trial"
    msg["Message-ID"] = f"<rehearsal-{language}@example.invalid>"
    msg.set_content(BRIEFS[language])
    msg.add_attachment(b"Teknisk beskrivelse\n", maintype="application", subtype="octet-stream",
                       filename="Teknisk beskrivelse.txt")
    return msg.as_bytes()


def _open(session: Session, bot: Bot, language: str, uid: int,
          briefs: Mapping[str, bytes] | None) -> tuple[Case, Inbound]:
    """A case from the sample brief (or the one `briefs` gives), with its receipt."""
    now = bot.clock.now()
    mail = parse((briefs or {}).get(language) or _brief(language, bot.settings.bot.address))
    raw = RawMessage(folder="rehearsal", uidvalidity=1, uid=uid, msgid_hash=language,
                     raw_sha256="", content_sha256="", size=0, fetched_at=now)
    session.add(raw)
    session.flush()
    reading = read_brief(mail, bot.rules, now.date())
    case = open_case(session, bot, mail, raw, reading, now)
    case.language = language  # both languages' applicant templates, whatever was read
    send_receipt(session, bot, case, mail, reading, now,
                 reviewed=requests_due(session, bot, case))  # as the pipeline
    route(session, bot, case, now)
    return case, mail


def _play(session: Session, bot: Bot, language: str, uid: int,
          briefs: Mapping[str, bytes] | None) -> None:
    now = bot.clock.now()
    case, mail = _open(session, bot, language, uid, briefs)
    route(session, bot, case, now)
    for purpose in (Purpose.STATUS, Purpose.UPDATE, Purpose.REMINDER):
        send_status(session, bot, case, purpose, now)
    _reviews(session, bot, case, mail, now)
    _council(session, bot, case, mail, now)


def _two_phases(session: Session, bot: Bot, language: str, uid: int,
                briefs: Mapping[str, bytes] | None) -> None:
    """With two phases: a klarmelding that still misses something (answers, documents, the
    system owner, a rejected review, one still to answer), the checklist then, the guidance
    relay that completes the guidance; a second case guided, then klarmeldt complete after
    the nearest meeting's agenda went out (the meeting mail names the meeting it missed)."""
    now = bot.clock.now()
    case, mail = _open(session, bot, language, uid, briefs)
    route(session, bot, case, now)
    reviews = list(session.exec(select(Review).where(Review.case_id == case.id)).all())
    rejected = VerdictReading("rejected", "Kan ikke anbefales: ingen logning.", "Kan ikke")
    apply_verdict(session, bot, case, reviews[0], rejected, mail, now)
    answer_followup(session, bot, case, True, now)
    send_status(session, bot, case, Purpose.STATUS, now)
    approved = VerdictReading("approved", "Godkendt.", "Godkendt")
    for review in reviews[1:]:
        apply_verdict(session, bot, case, review, approved, mail, now)
    case.missing = []
    give_guidance(session, bot, now)
    relay_guidance(session, bot, now + timedelta(days=1))

    guided, _ = _open(session, bot, language, uid + 1, briefs)
    route(session, bot, guided, now)
    for review in session.exec(select(Review).where(Review.case_id == guided.id)).all():
        apply_verdict(session, bot, guided, review, approved, mail, now)
    guided.missing = []
    give_guidance(session, bot, now)
    relay_guidance(session, bot, now + timedelta(days=1))
    send_status(session, bot, guided, Purpose.STATUS, now)
    guided.answers = {**guided.answers, "cost": "10.000 kr."}
    guided.system_owner = "Åse Ærø"
    guided.not_applicable = {kind: "Øvelse." for kind in bot.rules.required_final}
    meeting = CouncilCalendar(bot.settings.council).upcoming(now)
    if not agenda_sent(session, meeting.day):  # as if its agenda had gone out (no mail)
        session.add(Agenda(meeting_date=meeting.day, version=1, message_id="", created_at=now))
    answer_followup(session, bot, guided, True, now)


def _alerts(session: Session, bot: Bot) -> None:
    """One alert mail of every kind to the operator (without the ERROR lines a real incident
    writes)."""
    for incident in Incident:
        queue_mail(session, bot, template="operator_alert", purpose=Purpose.ALERT,
                   to=[f"drift@{bot.domain}"], now=bot.clock.now(), sign_ref=ALERT_REF,
                   context=bot.alerts.context(incident, "Øvelse: intet er sket.", 1))


def _encrypted(session: Session, bot: Bot) -> None:
    """The answer to an encrypted S/MIME mail: about no case, and on a case's thread."""
    for sign_ref, case_ref in ((ENCRYPTED_REF, ""), ("ITP-2000-0001", "ITP-2000-0001")):
        queue_mail(session, bot, template="encrypted_mail", purpose=Purpose.ENCRYPTED,
                   to=["aase.aeroe@example.invalid"], now=bot.clock.now(), sign_ref=sign_ref,
                   context={"mail_subject": "Projektforslag: Prøve", "case_ref": case_ref})


def _reviews(session: Session, bot: Bot, case: Case, mail: Inbound, now: datetime) -> None:
    reviews = list(session.exec(select(Review).where(Review.case_id == case.id)).all())
    unclear = VerdictReading("unclear", "Hmm, måske.", "")
    for _ in range(2):  # asked back once, then the secretary's attention
        apply_verdict(session, bot, case, reviews[0], unclear, mail, now)
    approved = VerdictReading("approved", "Godkendt, men husk dokumentationen.", "Godkendt")
    apply_verdict(session, bot, case, reviews[-1], approved, mail, now)
    relay_guidance(session, bot, now + timedelta(days=1))
    for weeks in (2, 4, 6):  # reminders, then the secretary is told
        remind(session, bot, now + timedelta(weeks=weeks))


def _council(session: Session, bot: Bot, case: Case, mail: Inbound, now: datetime) -> None:
    meeting = CouncilCalendar(bot.settings.council).next_meeting(now)
    case.missing = []
    queue(session, bot, case, meeting, now)
    queue(session, bot, case, meeting, now, moved=True)
    send_agenda(session, bot, meeting, now, next_agenda_version(session, meeting.day))
    decide(session, bot, case, Decision.FORWARDED, "Sendes videre til SIT.", meeting.day, now)
    found = DecisionReading(decisions={}, texts={}, unmapped=["ITP-2000-9999: måske"],
                            additions=[])
    apply_decisions(session, bot, agenda_ref(meeting.day), mail, found, now)
    unauthenticated_agenda_reply(session, bot, agenda_ref(meeting.day), mail, bot.domain, now)
    # a ref of its own, in the shape of a real one (so its mail's signed id reads back)
    withdrawn = Case(ref=f"{case.ref}9", applicant_address=case.applicant_address,
                     title=case.title, status="complete", language=case.language,
                     created_at=now, updated_at=now, meeting_date=meeting.day,
                     thread_message_id=case.thread_message_id)
    session.add(withdrawn)
    session.flush()
    move_on_request(session, bot, withdrawn, "withdraw", now)


def _export_index(stage: Bot) -> None:
    """The index of an access export (mailbot.privacy.gdpr), empty and with one of each."""
    from mailbot.privacy.gdpr import index_text

    when = "2026-03-02T10:00+01:00"
    filled: dict[str, Any] = {"created": when,
              "cases": [{"ref": "ITP-2026-0001", "roles": ["applicant", "reviewer:it_architect"],
                         "status": "decided", "created": when, "decided": when}],
              "mails_received": [{"file": "mails/1-2026-03-02.eml", "received": when,
                                  "case": "ITP-2026-0001"}],
              "mails_sent": [{"file": None, "written": when, "kind": "receipt",
                              "case": None}],
              "attachments": [{"file": "bilag/1-a.pdf", "received": when,
                               "case": "ITP-2026-0001"}],
              "events": [{"case": "ITP-2026-0001", "at": when, "kind": "opened",
                          "detail": ""}]}
    empty: dict[str, Any] = {key: [] for key in filled} | {"created": when}
    for data in (filled, empty):
        index_text(stage, data, {key: len(value) for key, value in data.items()
                                 if isinstance(value, list)})
