"""Every kind of mail the bot sends, built through the real sending path (the rehearsal that
`mailbot check` plays: mailbot.rehearsal.rehearsal_mails, which composes each Purpose with
mailbot.delivery.mail.queue_mail on a throwaway database), from a brief with a hostile
subject and a hostile sender, under a hostile bot name: the headers hold (SCENARIOS X1-X6).
Nothing is faked; no server is needed because nothing is sent."""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from mailbot.app import build_bot
from mailbot.clock import Clock, as_utc
from mailbot.intake.inspection import settings_without_config
from mailbot.intake.threads import read_own_id
from mailbot.rehearsal import REHEARSAL_SECRET, rehearsal_mails
from mailbot.vocabulary import AutoSubmitted, Purpose

BOT = "it.projekter@kommune.test"
DOMAIN = "kommune.test"
# the bot's own display name, as an operator might write it: quotes, a comma, æøå and an
# address-like tail that must stay a name
BOT_NAME = 'IT-Projektrådet, "Albertslund" <angriber@evil.example>'
SSTI = "{{ 7*'7' }}"  # 7777777 if a template ever evaluated it (X3)
SCRIPT = "<script>alert(1)</script><img src=x onerror=alert(2)>"  # X4
# X1: a CRLF and a Bcc inside an encoded-word; X5: 10 KB
SUBJECT = (f"Projektforslag: {SSTI} {SCRIPT} Sørensen, \"Åse\"\r\nBcc: bcc@evil.example\r\n"
           + "lang " * 2000)
# X2: the applicant's display name with quotes, a comma, "<" and æøå
SENDER_NAME = '"Sørensen, Åse \\"<chef>\\"" '
BRIEF_IDS = {"da": "<hostile-da@example.invalid>", "en": "<hostile-en@example.invalid>"}
BODIES = {
    "da": "Hvem: Åse Ærø, Borgerservice\nHvad: Et nyt bookingsystem\nHvor: Borgerservice\n"
          f"Hvornår: 1. marts 2027\nHvorfor: {SSTI} {SCRIPT}\n",
    "en": "Who: Åse Ærø, Citizen Services\nWhat: A booking system\nWhere: Citizen Services\n"
          f"When: 1 March 2027\nWhy: {SSTI} {SCRIPT}\n",
}
ALLOWED = {"from", "to", "subject", "reply-to", "date", "message-id", "in-reply-to",
           "references", "auto-submitted", "x-auto-response-suppress", "precedence",
           "x-mailbot-loop", "content-language", "mime-version", "content-type",
           "content-transfer-encoding"}
ONCE = ("From", "To", "Subject", "Message-ID", "Date")
# mail that answers or continues the applicant's brief (or the secretary's agenda reply)
THREADED = {Purpose.RECEIPT, Purpose.STATUS, Purpose.UPDATE, Purpose.KLARMELDING,
            Purpose.REMINDER, Purpose.GUIDANCE, Purpose.MEETING, Purpose.DECISION,
            Purpose.UNMAPPED}


def _encoded_word(text: str) -> str:
    """`text` as RFC 2047 Q encoded-words of at most 75 characters, folded."""
    words, chunk = [], ""
    for byte in text.encode():
        char = chr(byte) if (chr(byte).isalnum() and byte < 128) else f"={byte:02X}"
        if len(chunk) + len(char) > 60:
            words.append(f"=?utf-8?q?{chunk}?=")
            chunk = ""
        chunk += char
    words.append(f"=?utf-8?q?{chunk}?=")
    return "\r\n ".join(words)


def _hostile_brief(language: str) -> bytes:
    """The brief with a document (so reviews are requested), its From and Subject written
    raw, as a hostile client would."""
    msg = EmailMessage(policy=SMTP)
    msg["From"] = "placeholder@example.invalid"
    msg["To"] = BOT
    msg["Subject"] = "placeholder"
    msg["Message-ID"] = BRIEF_IDS[language]
    msg["Date"] = "Mon, 1 Mar 2027 10:00:00 +0100"
    msg.set_content(BODIES[language])
    msg.add_attachment(b"Teknisk beskrivelse\n", maintype="application",
                       subtype="octet-stream", filename="Teknisk beskrivelse.txt")
    return msg.as_bytes().replace(
        b"From: placeholder@example.invalid",
        f"From: {SENDER_NAME}<aase.aeroe@example.invalid>".encode(), 1).replace(
        b"Subject: placeholder", f"Subject: {_encoded_word(SUBJECT)}".encode(), 1)


@pytest.fixture(scope="module")
def mails(tmp_path_factory: pytest.TempPathFactory
          ) -> dict[str, list[tuple[EmailMessage, bytes]]]:
    base = settings_without_config(BOT)
    data = tmp_path_factory.mktemp("outgoing") / "data"
    settings = base.model_copy(update={"bot": base.bot.model_copy(
        update={"data_dir": Path(data), "name": BOT_NAME})})
    bot = build_bot(settings, Clock())
    found: dict[str, list[tuple[EmailMessage, bytes]]] = {}
    briefs = {language: _hostile_brief(language) for language in BRIEF_IDS}
    for kind, raw in rehearsal_mails(bot, briefs):
        msg = message_from_bytes(raw, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        found.setdefault(kind, []).append((msg, raw))
    return found


def test_the_hostile_brief_reaches_the_mails() -> None:
    """The fixture's brief is read as meant: its subject and sender are what the bot uses."""
    from mailbot.intake.parse import parse

    mail = parse(_hostile_brief("da"))
    assert mail.from_address == "aase.aeroe@example.invalid"
    assert mail.from_name == 'Sørensen, Åse "<chef>"'
    assert SSTI in mail.subject and "Bcc" in mail.subject and len(mail.subject) > 10_000


def _parts(msg: EmailMessage, subtype: str) -> list[str]:
    return [str(part.get_content()) for part in msg.walk()
            if part.get_content_type() == f"text/{subtype}"]


@pytest.mark.parametrize("kind", [p.value for p in Purpose])
def test_every_kind_of_mail_has_sound_headers(
        kind: str, mails: dict[str, list[tuple[EmailMessage, bytes]]]) -> None:
    purpose = Purpose(kind)
    assert mails.get(kind), f"the rehearsal composed no {kind} mail"
    for msg, raw in mails[kind]:
        head = raw.split(b"\r\n\r\n", 1)[0]
        # X1: exactly one of each, nothing injected, Bcc nowhere
        for name in ONCE:
            assert len(msg.get_all(name) or []) == 1, (name, msg.get_all(name))
        assert {k.lower() for k in msg} <= ALLOWED, set(msg.keys())
        assert not re.search(rb"(?im)^bcc:", head) and msg.get_all("Bcc") is None
        assert all(line[:1] in b" \t" or re.match(rb"^[A-Za-z-]+: ", line)
                   for line in head.split(b"\r\n"))  # every line a header or folded
        assert all("evil.example" not in str(msg[name]) for name in msg
                   if name.lower() not in ("from", "reply-to", "subject"))
        # X2: one From address, ours, with the whole hostile name as its name
        [sender] = msg["From"].addresses
        assert (sender.addr_spec, sender.display_name) == (BOT, BOT_NAME)
        assert all("@" in a.addr_spec and "evil" not in a.addr_spec
                   for a in msg["To"].addresses)
        # X1, X5: the subject is one line and of sane length
        subject = str(msg["Subject"])
        assert "\n" not in subject and "\r" not in subject and len(subject) <= 260
        # X3: template syntax stays text; X4: markup is escaped in HTML
        for text in _parts(msg, "plain") + _parts(msg, "html") + [subject]:
            assert "7777777" not in text
        for html in _parts(msg, "html"):
            assert "<script" not in html.lower() and "<img src=x" not in html.lower()
        # X6: RFC 3834 label per kind, our signed id, a dated zone, threading
        assert msg["Auto-Submitted"] == purpose.auto_submitted.value
        assert purpose.auto_submitted == (
            AutoSubmitted.REPLIED if purpose in {
                Purpose.RECEIPT, Purpose.STATUS, Purpose.UPDATE, Purpose.KLARMELDING,
                Purpose.ASK_BACK, Purpose.UNMAPPED, Purpose.ENCRYPTED}
            else AutoSubmitted.GENERATED)
        own = read_own_id(str(msg["Message-ID"]), DOMAIN, REHEARSAL_SECRET)
        assert own is not None and own.valid and own.purpose == kind
        assert own.issued is not None
        date = parsedate_to_datetime(str(msg["Date"]))
        assert date.tzinfo is not None and re.search(r"[+-]\d{4}$", str(msg["Date"]))
        assert own.issued == as_utc(date).date()
        if purpose in THREADED:
            assert str(msg["In-Reply-To"]) in BRIEF_IDS.values()
            assert str(msg["In-Reply-To"]) in str(msg["References"]).split()


def test_the_hostile_subject_is_shown_literally_and_escaped(
        mails: dict[str, list[tuple[EmailMessage, bytes]]]) -> None:
    """X3, X4 with a positive side: the words are there, as text."""
    [(receipt, _), *_] = mails[Purpose.RECEIPT.value]
    assert SSTI in str(receipt["Subject"])
    agendas = [msg for msg, _ in mails[Purpose.AGENDA.value]]
    assert any("&lt;script&gt;" in html for msg in agendas for html in _parts(msg, "html"))
    assert any(SSTI in text for msg in agendas for text in _parts(msg, "plain"))
