"""CPR numbers never leave mailbot (issue #13 "Done when", SCENARIOS G1, G8), end to end on
Dovecot + aiosmtpd with `mailbot run --once --now …` as a subprocess (so its log lines are
the real, formatted ones): a strategic brief with CPR numbers in the subject, in the answers
and in an attachment's name, a reviewer's comment with one, and the secretary's decision
with one, a stranger's reply with one (the secretary's "Til opmærksomhed" quotes it),
through receipt, review requests, guidance, the agenda (text, HTML, both Word files, the
ZIP's member names), the decision, the strategic board's bundle, `mailbot case`, `case
--json`, `cases`, `messages` and `outbox`. No CPR number is in any mail the SMTP server
accepted, in any part the bot made, nor in what the CLI printed or logged; XXXXXX-XXXX
stands where each was. The applicant's own documents are forwarded byte for byte (they are
the record)."""

from __future__ import annotations

import io
import zipfile
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import make_msgid

import pytest

from mailbot.clock import COPENHAGEN
from mailbot.redact import REDACTED
from tests.conftest import World
from tests.e2e.test_reviews import ROLES, body_of, request_for

pytestmark = pytest.mark.e2e

THURSDAY = datetime(2027, 2, 25, 10, 0, tzinfo=COPENHAGEN)
DEADLINE = datetime(2027, 3, 1, 12, 0, tzinfo=COPENHAGEN)  # Monday; meeting Monday 8 March
MEETING = datetime(2027, 3, 8, 10, 0, tzinfo=COPENHAGEN)

# valid CPR numbers, each written in one place in one shape
IN_SUBJECT = "010190-1234"
IN_WHO = "2802851234"
IN_WHAT = "150375 4321"
IN_WHY = "01 01 90 1234"
IN_FILE_NAME = "120488-5678"
IN_DOCUMENT = "3107921111"  # in the business case's name and so in its bytes (tests.mails)
IN_COMMENT = "0505051234"
IN_DECISION = "241299 2222"
IN_STRANGER = "0707071234"  # a stranger's reply: "Til opmærksomhed" quotes its beginning
ALL = (IN_SUBJECT, IN_WHO, IN_WHAT, IN_WHY, IN_FILE_NAME, IN_DOCUMENT, IN_COMMENT,
       IN_DECISION, IN_STRANGER)

BODY = f"""Hej

Hvem: Mette Holm, Borgerservice (sagen om borger {IN_WHO}). Brugerne er 12 medarbejdere.
Hvad: Et nyt system til booking af mødelokaler, også for {IN_WHAT}.
Hvor: Borgerservice.
Hvornår: 1. marts 2027.
Hvorfor: Dobbeltbookinger i dag, se klagen fra {IN_WHY}.
Hvor meget: 50.000 kr., betales af Borgerservice.

Projektet er strategisk.

Med venlig hilsen
Mette
"""
DOCUMENTS = (f"Teknisk beskrivelse {IN_FILE_NAME}.pdf", "Udkast til kontrakt.docx",
             "Databehandleraftale.pdf", f"Business case {IN_DOCUMENT}.docx")


def shapes(cpr: str) -> set[str]:
    """The number as ddmmyy-xxxx, ddmmyyxxxx, ddmmyy xxxx and dd mm yy xxxx."""
    d = "".join(cpr.split()).replace("-", "")
    return {f"{d[:6]}-{d[6:]}", d, f"{d[:6]} {d[6:]}", f"{d[:2]} {d[2:4]} {d[4:6]} {d[6:]}"}


def assert_no_cpr(text: str, where: str) -> None:
    for cpr in ALL:
        for shape in shapes(cpr):
            assert shape not in text, f"{shape} in {where}"


def run(world: World, now: datetime) -> str:
    """`mailbot run --once` at `now` in its own process, at DEBUG; returns its log."""
    ran = world.cli("run", "--once", "--now", now.isoformat(),
                    env={"MAILBOT_BOT__LOG_LEVEL": "DEBUG"})
    assert ran.returncode == 0, ran.stderr
    return ran.stdout + ran.stderr


def reply(world: World, to: EmailMessage, sender: str, text: str) -> bytes:
    """A top-posted reply quoting the bot's mail."""
    msg = EmailMessage(policy=SMTP)
    msg["From"], msg["To"] = sender, world.bot_address
    msg["Subject"] = f"SV: {to['Subject']}"
    msg["Message-ID"] = make_msgid(domain="kommune.test")
    msg["In-Reply-To"] = msg["References"] = str(to["Message-ID"]).strip()
    quoted = "\n".join(f"> {line}" for line in body_of(to).splitlines())
    msg.set_content(f"{text}\n\nVenlig hilsen\n\n{quoted}")
    return msg.as_bytes()


def word_text(payload: bytes) -> str:
    """Every XML part of a Word file, as text."""
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        return "\n".join(archive.read(n).decode("utf-8") for n in archive.namelist()
                         if n.endswith((".xml", ".rels")))


def attachments(raw: bytes) -> set[bytes]:
    """The decoded bytes of every attachment of a mail."""
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return {bytes(p.get_payload(decode=True)) for p in message.iter_attachments()}


def readable(message: EmailMessage, where: str, originals: set[bytes]) -> str:
    """Everything a reader of `message` sees, decoded: the headers, every text part, every
    attachment's name and every file the bot made (Word files opened, the documents ZIP's
    member names). An attachment byte-identical to the applicant's document is the record,
    forwarded unchanged: its bytes are compared, not read. The same holds for the ZIP's
    members."""
    seen = [f"{name}: {value}" for name, value in message.items()]
    for part in message.walk():
        if part.is_multipart():
            continue
        name = part.get_filename()
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        if name:
            seen.append(str(name))
        if part.get_content_maintype() == "text":
            seen.append(str(part.get_content()))
        elif payload in originals:
            continue
        elif str(name).endswith(".docx"):
            seen.append(word_text(payload))
        elif str(name).endswith(".zip"):
            with zipfile.ZipFile(io.BytesIO(payload)) as archive:
                members = archive.namelist()
                assert all(archive.read(m) in originals for m in members), where
            seen += members
        else:
            pytest.fail(f"{where}: an attachment {name!r} the test does not know")
    return "\n".join(seen)


def test_no_cpr_number_leaves_mailbot(world: World) -> None:
    world.write_config()
    sent = world.brief(subject=f"Projektforslag: Booking for borger {IN_SUBJECT}", body=BODY,
                       attachments=DOCUMENTS)
    originals = attachments(sent)
    world.deliver(sent)
    logs = [run(world, THURSDAY)]

    [receipt] = world.received_by(world.applicant)
    assert str(receipt["Subject"]) == f"[ITP-2027-0001] Projektforslag: Booking for borger " \
                                      f"{REDACTED}"
    assert f"Teknisk beskrivelse {REDACTED}.pdf" in body_of(receipt)
    assert "Dobbeltbookinger i dag" not in body_of(receipt)  # G8: the body is not quoted
    request = request_for(world, "it_architect")
    assert f"borger {REDACTED}" in body_of(request)

    for role in ROLES:
        text = (f"Godkendt, men borger {IN_COMMENT} må ikke stå i testdata." if role ==
                "it_architect" else "Godkendt.")
        world.deliver(reply(world, request_for(world, role), world.reviewer(role), text))
    # someone who is not the reviewer answers a request: the secretary is told, with the
    # beginning of that mail
    world.deliver(reply(world, request, "fremmed@kommune.test",
                        f"Godkendt på vegne af borger {IN_STRANGER}."))
    logs.append(run(world, DEADLINE.replace(hour=11)))
    [attention] = [m for m in world.received_by(world.secretary)
                   if "fremmed@kommune.test" in body_of(m)]
    assert f"vegne af borger {REDACTED}" in body_of(attention)
    logs.append(run(world, DEADLINE.replace(hour=12, minute=5)))  # guidance relayed, agenda

    guidance = [m for m in world.received_by(world.applicant) if "testdata" in body_of(m)]
    assert guidance and f"borger {REDACTED} må ikke" in body_of(guidance[0])
    [agenda] = [m for m in world.received_by(world.secretary) if "agsorden" in str(m["Subject"])]
    agenda_text = readable(agenda, "agenda", originals)
    assert f"Booking for borger {REDACTED}" in body_of(agenda)
    assert f"ITP-2027-0001/Teknisk beskrivelse {REDACTED}.pdf" in agenda_text  # a ZIP member
    words = [word_text(p.get_payload(decode=True)) for p in agenda.iter_attachments()
             if str(p.get_filename()).endswith(".docx")]
    assert len(words) == 2 and all(REDACTED in w for w in words)

    decision = (f"ITP-2027-0001: Godkendt. Borger {IN_DECISION} er orienteret. Da projektet er "
                "strategisk, sendes det videre til SIT.")
    world.deliver(reply(world, agenda, world.secretary, decision))
    logs.append(run(world, MEETING))

    told = [m for m in world.received_by(world.applicant) if "Beslutning:" in body_of(m)]
    assert told and f"Borger {REDACTED} er orienteret" in body_of(told[0])
    [bundle] = world.received_by(f"sit-{world.applicant}")
    assert REDACTED in str(bundle["Subject"]) and f"Borger {REDACTED}" in body_of(bundle)
    forwarded = [p.get_payload(decode=True) for p in bundle.iter_attachments()]
    assert set(forwarded) == originals  # the applicant's documents, byte for byte
    assert any(IN_DOCUMENT.encode() in payload for payload in forwarded)

    mails = [message_from_bytes(d.raw, policy=policy.default) for d in world.smtp.history]
    assert len(mails) >= 10
    for number, mail in enumerate(mails):
        assert isinstance(mail, EmailMessage)
        assert_no_cpr(readable(mail, f"mail {number} {mail['Subject']}", originals),
                      f"mail {number} ({mail['Subject']})")

    printed = {" ".join(args): world.cli(*args) for args in (
        ("case", "ITP-2027-0001"), ("case", "ITP-2027-0001", "--json"), ("cases",),
        ("cases", "--json"), ("messages",), ("messages", "--json"), ("outbox",),
        ("outbox", "--json"))}
    for where, ran in printed.items():
        assert ran.returncode == 0, ran.stderr
        assert_no_cpr(ran.stdout + ran.stderr, where)
        if "--json" in where or where.startswith("case "):  # tables cut long subjects
            assert REDACTED in ran.stdout, where
    as_json = printed["case ITP-2027-0001 --json"]
    assert f"Godkendt. Borger {REDACTED} er orienteret." in as_json.stdout
    assert f"borger {REDACTED} må ikke" in as_json.stdout
    for number, log in enumerate(logs):
        assert log.strip(), "the runs log nothing: the assertion below would be empty"
        assert_no_cpr(log, f"log of run {number}")
