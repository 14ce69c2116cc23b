"""`mailbot demo`: the whole flow on an embedded mail world, then a report of what happened."""

from __future__ import annotations

import shutil
import smtplib
import socket
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from mailbot import views
from mailbot.app import build_bot
from mailbot.clock import COPENHAGEN, Clock
from mailbot.config import load_settings
from mailbot.council.meetings import CouncilCalendar
from mailbot.db import migrate
from mailbot.mailworld import Pymap, SmtpSink, read_mailbox, settings_dict, to_toml
from mailbot.models import Case, RawMessage, Review
from mailbot.resources import shipped
from mailbot.service import Service

BOT_ADDRESS = "it.projekter@kommune.test"
OUT_OF_OFFICE = """From: Frida Fravaer <frida@kommune.test>\r
To: it.projekter@kommune.test\r
Subject: =?utf-8?q?Automatisk_svar=3A_Ferie?=\r
Message-ID: <demo-ooo@kommune.test>\r
Auto-Submitted: auto-replied\r
Date: Mon, 02 Nov 2026 15:00:00 +0100\r
\r
Jeg er på ferie til og med 9. november.\r
""".encode()


DEMO_USER = "demo"


def run_demo(keep: bool, echo: Callable[[str], None], serve: bool = False) -> None:
    """The demo's flow, reported through `echo`; `serve`: then the overview on the demo's
    cases until Ctrl-C (_serve). `keep`: the temporary folder stays."""
    root = Path(tempfile.mkdtemp(prefix="mailbot-demo-"))
    imap = Pymap(username="it.projekter")
    sink = SmtpSink(deliver=lambda rcpt, raw: (
        imap.deliver(rcpt, raw) if rcpt.lower() == BOT_ADDRESS else None))
    try:
        imap.start()
        sink.start()
        echo(f"Mail world: IMAP (pymap) on 127.0.0.1:{imap.port}, "
             f"SMTP (aiosmtpd) on 127.0.0.1:{sink.port}")
        briefs = sorted(shipped("demo_briefs").glob("*.eml"))
        with smtplib.SMTP("127.0.0.1", sink.port) as smtp:
            for path in briefs:
                raw = path.read_bytes()
                sender = message_from_bytes(raw, policy=policy.default)["From"].addresses[0]
                smtp.sendmail(sender.addr_spec, [BOT_ADDRESS], raw)
            smtp.sendmail("frida@kommune.test", [BOT_ADDRESS], OUT_OF_OFFICE)
        echo(f"Sent {len(briefs)} briefs and 1 out-of-office reply to {BOT_ADDRESS}.\n")
        sink.received.clear()
        config = root / "mailbot.toml"
        config.write_text(to_toml(settings_dict(imap.port, sink.port, root / "data",
                                                BOT_ADDRESS, "it.projekter")), "utf-8")
        bot = build_bot(load_settings(config, environ={}), Clock())
        migrate(bot.engine)
        Service(bot).run_once()
        _report(bot.engine, sink, imap, echo)
        _review_round(bot.settings.reviewers.model_dump(), config, sink, imap, echo)
        _council_round(bot.settings.reviewers.model_dump(), config, sink, imap, echo)
        if serve:
            _serve(config, echo)
    finally:
        sink.stop()
        imap.stop()
        if keep:
            echo(f"\nKept {root}; see it with: mailbot --config {root / 'mailbot.toml'} cases")
        else:
            shutil.rmtree(root, ignore_errors=True)


def demo_socket() -> socket.socket:
    """A listening socket at [web] listen's default (127.0.0.1:8025, the address README
    "Run" names), or any free port on that host when it is taken. Raises ListenError when
    neither can be had. The demo's own config listens on port 0
    (mailbot.mailworld.settings_dict) so that its daemon never collides with a real one;
    the overview served afterwards should not move for that."""
    from mailbot.config import WebSettings
    from mailbot.web.server import Listen, ListenError, bind

    listen = Listen.parse(WebSettings.model_fields["listen"].default)
    try:
        return bind(listen)
    except ListenError:
        return bind(Listen(listen.host, 0))


def _serve(config: Path, echo: Callable[[str], None]) -> None:
    """The overview (mailbot.web) on the demo's database at demo_socket() until Ctrl-C,
    with a secretary user made for this demo only, whose name and password are printed."""
    import secrets

    from mailbot.web.app import create_app
    from mailbot.web.auth import add_user
    from mailbot.web.server import WebServer

    password = secrets.token_urlsafe(12)
    add_user(config, DEMO_USER, "secretary", password)
    bot = build_bot(load_settings(config, environ={}), Clock())
    server = WebServer(create_app(bot), demo_socket())
    echo(f"\n== The overview: {server.address}/ ==\nSign in as {DEMO_USER!r} with the "
         f"password {password!r} (made for this demo only). Ctrl-C stops it.")
    server.serve_forever()


REVIEWER_ANSWERS = {
    "it_architect": "Godkendt fra arkitektsiden. Husk at administratorerne skal logge ind "
                    "med kommunens SSO.",
    "contract_manager": "Kontrakten mangler en exit-klausul om udlevering af vores data - "
                        "ret venligst, så kigger jeg på den igen.",
}


def _review_round(reviewers: dict[str, list[str]], config: Path, sink: SmtpSink, imap: Pymap,
                  echo: Callable[[str], None]) -> None:
    """Two reviewers answer the first case by replying; the applicant gets their guidance."""
    echo("\n== Reviewers ==")
    requests = [d for d in sink.received if "Anmodning om vurdering" in
                str(message_from_bytes(d.raw, policy=policy.default)["Subject"])]
    by_role = {role: addresses[0] for role, addresses in reviewers.items()}
    for delivered in requests:
        msg = message_from_bytes(delivered.raw, policy=policy.default)
        files = [p.get_filename() for p in msg.iter_attachments()]
        echo(f"{delivered.recipients[0]:26} got {msg['Subject']} with {', '.join(map(str, files))}")
    first_case = [d for d in requests  # the first case of the year ends in -0001
                  if "-0001]" in str(message_from_bytes(d.raw, policy=policy.default)["Subject"])]
    sink.received.clear()
    for role, text in REVIEWER_ANSWERS.items():
        request = next(message_from_bytes(d.raw, policy=policy.default) for d in first_case
                       if d.recipients[0] == by_role[role])
        answer = EmailMessage()
        answer["From"] = by_role[role]
        answer["To"] = BOT_ADDRESS
        answer["Subject"] = f"SV: {request['Subject']}"
        answer["Message-ID"] = f"<demo-answer-{role}@kommune.test>"
        answer["In-Reply-To"] = str(request["Message-ID"]).strip()
        quote = f"> {request['Subject']}"
        answer.set_content(f"{text}\n\nMed venlig hilsen\n{by_role[role]}\n\n{quote}")
        imap.deliver(BOT_ADDRESS, answer.as_bytes())
        echo(f"{by_role[role]} answers: {text}")
    settings = load_settings(config, environ={})
    Service(build_bot(settings, Clock())).run_once()
    # comments are batched for guidance_batch_minutes; run again as if 10 minutes had passed
    bot = build_bot(settings, Clock(datetime.now(UTC) + timedelta(minutes=10)))
    Service(bot).run_once()
    with Session(bot.engine) as session:
        reviews = session.exec(select(Review).where(Review.verdict != None)).all()  # noqa: E711
        for review in reviews:
            echo(f"recorded: {review.role} -> {review.verdict}")
    for delivered in sink.received:
        _show(delivered.raw, f"Guidance to {delivered.recipients[0]}", echo)


def _parse(raw: bytes) -> EmailMessage:
    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def _plain(raw: bytes) -> str:
    body = _parse(raw).get_body(preferencelist=("plain",))
    return str(body.get_content()).rstrip() if body is not None else ""


def _show(raw: bytes, heading: str, echo: Callable[[str], None]) -> None:
    echo(f"\n== {heading} ==")
    echo(f"Subject: {_parse(raw)['Subject']}")
    echo(_plain(raw))


def _answer(imap: Pymap, request: EmailMessage, sender: str, text: str, tag: str) -> None:
    """A reviewer's or the secretary's reply to one of the bot's mails."""
    _applicant_mail(imap, request, sender, text, (), tag)


# the chatbot case's final documents (two phases): with the klarmelding, then the rest
KLARMELDING = ("Hej\n\nHermed klarmelder jeg sagen. Kontrakten og databehandleraftalen er "
               "forhandlet færdig; de endelige udgaver er vedhæftet.",
               ("Kontrakt endelig - chatbot.pdf", "Databehandleraftale endelig - chatbot.pdf"))
COMPLETION = ("Hej\n\nHer er projektbeskrivelsen.\n\nSystemejer: Dorthe Ølgaard, "
              "Kommunikation", ("Projektbeskrivelse chatbot.pdf",))


def _council_round(reviewers: dict[str, list[str]], config: Path, sink: SmtpSink,
                   imap: Pymap, echo: Callable[[str], None]) -> None:
    """The council's two phases on the chatbot case: every reviewer gives guidance on the
    drafts and the applicant is told how to klarmelde; her klarmelding with the final
    contract and DPA gets ONE list of what is missing; the project description and the
    system owner put the case on the agenda; at the deadline the secretary gets the agenda,
    she replies with the decision, the applicant is told."""
    settings = load_settings(config, environ={})
    chatbot = [message_from_bytes(d.raw, policy=policy.default) for d in sink.history
               if "-0004] Anmodning om vurdering" in
               str(message_from_bytes(d.raw, policy=policy.default)["Subject"])]
    now = datetime.now(UTC)
    ref = f"ITP-{now.astimezone(COPENHAGEN).year}-0004"  # the fourth brief of the demo
    echo(f"\n== The council, phase 1: every reviewer gives guidance on {ref} ==")
    for role, addresses in reviewers.items():
        request = next(m for m in chatbot if addresses[0] in str(m["To"]))
        _answer(imap, request, addresses[0], "Godkendt.", f"approve-{role}")
        echo(f"{addresses[0]} answers: Godkendt.")
    sink.received.clear()
    Service(build_bot(settings, Clock())).run_once()
    # the guidance relay waits guidance_batch_minutes for more answers
    Service(build_bot(settings, Clock(now + timedelta(minutes=10)))).run_once()
    applicant = _show_to_applicant(sink, "Guidance", echo)
    receipt = next(_parse(d.raw) for d in sink.history if applicant in d.recipients)
    for step, (text, attached) in enumerate((KLARMELDING, COMPLETION), start=1):
        echo(f"\n== The council, phase 2: {applicant} writes on the thread "
             f"({', '.join(attached)}) ==\n{text}")
        _applicant_mail(imap, receipt, applicant, text, attached, f"klarmelding-{step}")
        sink.received.clear()
        Service(build_bot(settings, Clock(now + timedelta(minutes=10 + step)))).run_once()
        _show_to_applicant(sink, "Answer", echo)
    # the meeting whose deadline the last mail made
    next_meeting = CouncilCalendar(settings.council).next_meeting(now + timedelta(minutes=12))
    deadline, meeting = next_meeting.deadline, next_meeting.day
    echo(f"\n== The council: {ref} is klarmeldt and complete; next agenda deadline "
         f"{deadline:%Y-%m-%d %H:%M}, meeting {meeting} ==")
    sink.received.clear()
    Service(build_bot(settings, Clock(deadline + timedelta(minutes=5)))).run_once()
    raw = next(d.raw for d in sink.received if "Dagsorden" in str(_parse(d.raw)["Subject"]))
    agenda = _parse(raw)
    files = [str(p.get_filename()) for p in agenda.iter_attachments()]
    _show(raw, f"Agenda to the secretary ({', '.join(files)})", echo)
    _answer(imap, agenda, settings.council.secretary[0],
            f"{ref}: Godkendt.", "decision")
    sink.received.clear()
    meeting_day = datetime.combine(meeting, datetime.min.time(), COPENHAGEN)
    Service(build_bot(settings, Clock(meeting_day + timedelta(hours=14)))).run_once()
    echo(f"\n{settings.council.secretary[0]} answers: {ref}: Godkendt.")
    for delivered in sink.received:
        # the week also brought reminders to late reviewers; show the decisions
        if "Beslutning:" in _plain(delivered.raw):
            _show(delivered.raw, f"Decision to {delivered.recipients[0]}", echo)


def _show_to_applicant(sink: SmtpSink, heading: str, echo: Callable[[str], None]) -> str:
    """Show what the chatbot case's applicant got in the last run; returns her address."""
    for delivered in sink.received:
        if "-0004]" in str(_parse(delivered.raw)["Subject"]) and \
                "Anmodning om vurdering" not in str(_parse(delivered.raw)["Subject"]):
            _show(delivered.raw, f"{heading} to {delivered.recipients[0]}", echo)
            return delivered.recipients[0]
    raise AssertionError("the chatbot case's applicant got no mail")  # a demo that lies


def _applicant_mail(imap: Pymap, receipt: EmailMessage, sender: str, text: str,
                    files: tuple[str, ...], tag: str) -> None:
    """A reply on the thread of one of the bot's mails (the applicant's on her receipt), with
    (tiny PDF) attachments."""
    answer = EmailMessage()
    answer["From"] = sender
    answer["To"] = BOT_ADDRESS
    answer["Subject"] = f"SV: {receipt['Subject']}"
    answer["Message-ID"] = f"<demo-{tag}@kommune.test>"
    answer["In-Reply-To"] = str(receipt["Message-ID"]).strip()
    answer.set_content(f"{text}\n\nMed venlig hilsen\n{sender}")
    for name in files:
        answer.add_attachment(f"%PDF-1.4 {name}\n".encode(), maintype="application",
                              subtype="pdf", filename=name)
    imap.deliver(BOT_ADDRESS, answer.as_bytes())


def _report(engine: Engine, sink: SmtpSink, imap: Pymap,
            echo: Callable[[str], None]) -> None:
    with Session(engine) as session:
        cases = list(session.exec(select(Case).order_by(col(Case.id))).all())
        ignored = list(session.exec(
            select(RawMessage).where(RawMessage.state != "processed")).all())
    echo("== Cases ==")
    echo(views.cases_table(cases))
    for row in ignored:
        echo(f"\nNot answered: {row.sender} ({row.state}: {row.reason})")
    processed = read_mailbox(imap.port, imap.username, "Processed")
    echo(f"\nThe bot's mailbox: INBOX is empty again; {len(processed)} mails are in Processed.")
    for case in cases:
        for delivered in sink.to(case.applicant_address):
            _show(delivered.raw, f"Reply to {case.applicant_address}", echo)
