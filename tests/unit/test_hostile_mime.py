"""Broken and hostile MIME (SCENARIOS P2, P4, P5, P9, P10): every mail is read or refused with
a reason, quickly, and nothing in it is silently lost. Mails are built here byte by byte."""

from __future__ import annotations

import base64
import time
from datetime import date
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from mailbot.errors import PermanentError
from mailbot.intake.parse import MAX_HEADER_BYTES, Inbound, parse
from mailbot.reading.brief import read_brief
from mailbot.rules import Rules
from tests.conftest import shared_path
from tests.mails import brief

HEAD = (b"From: Mette Holm <mette@kommune.test>\r\nTo: bot@kommune.test\r\n"
        b"Subject: Projektforslag\r\nMessage-ID: <hostile@kommune.test>\r\n"
        b"Date: Mon, 02 Nov 2026 09:00:00 +0100\r\nMIME-Version: 1.0\r\n")
PDF_B64 = b"JVBERi0xLjQgdGVzdAo="  # b"%PDF-1.4 test\n"


def timed_parse(raw: bytes, limit: float = 2.0) -> Inbound:
    started = time.monotonic()
    mail = parse(raw)
    assert time.monotonic() - started < limit
    return mail


# -- P2: a huge header block is refused before any parser runs ------------------------------
def test_twenty_thousand_recipients_are_refused_before_parsing() -> None:
    recipients = ",\r\n ".join(f"modtager{n:05d}@kommune.test" for n in range(20_000))
    raw = HEAD.replace(b"To: bot@kommune.test", b"To: " + recipients.encode()) + \
        b"Content-Type: text/plain\r\n\r\nHvem: Mette\r\n"
    assert len(raw) > 500_000
    started = time.monotonic()
    with pytest.raises(PermanentError, match=f"exceeds {MAX_HEADER_BYTES}"):
        parse(raw)
    assert time.monotonic() - started < 0.1


# -- P4: missing and false boundaries ----------------------------------------------------------
def test_missing_final_boundary_keeps_every_part_and_records_the_defect() -> None:
    raw = HEAD + (b'Content-Type: multipart/mixed; boundary="XX"\r\n\r\n'
                  b"--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHvem: Mette Holm\r\n"
                  b"--XX\r\nContent-Type: application/pdf\r\n"
                  b'Content-Disposition: attachment; filename="Teknisk beskrivelse.pdf"\r\n'
                  b"Content-Transfer-Encoding: base64\r\n\r\n" + PDF_B64 + b"\r\n")
    mail = timed_parse(raw)
    assert "CloseBoundaryNotFoundDefect" in mail.defects
    assert "Hvem: Mette Holm" in mail.text
    [attachment] = mail.attachments
    assert attachment.filename == "Teknisk beskrivelse.pdf"
    assert attachment.payload == b"%PDF-1.4 test\n"


@pytest.mark.parametrize("content_type", [
    b'multipart/mixed; boundary="never-used"',  # the boundary never appears
    b'multipart/alternative; boundary="YY"',  # a false multipart: plain text under it
    b"multipart/mixed",  # no boundary parameter at all
])
def test_a_multipart_without_its_boundary_is_read_as_text_not_lost(content_type: bytes,
                                                                    rules: Rules) -> None:
    """The email parser keeps such a body as one payload and mail-parser then finds no part:
    the text used to vanish (an empty brief). It is read as the mail's text, the defect
    recorded."""
    body = "Hvem: Mette Holm, Borgerservice.\r\nHvad: Et nyt bookingsystem.\r\n"
    raw = HEAD + b"Content-Type: " + content_type + b"\r\n\r\n" + body.encode() + b"\r\n"
    mail = timed_parse(raw)
    assert "MultipartInvariantViolationDefect" in mail.defects
    assert "Hvem: Mette Holm" in mail.text and "bookingsystem" in mail.text
    reading = read_brief(mail, rules, date(2026, 11, 2))
    assert reading.answers["who"] and reading.answers["what"]


# -- P5: charsets that cannot be decoded --------------------------------------------------------
@pytest.mark.parametrize(("charset", "encoding", "payload", "readable"), [
    (b"utf-8", b"8bit", "你好 Hvem: Mette".encode("gb2312"), "Hvem: Mette"),  # GB2312 as UTF-8
    (b"utf-8", b"8bit", b"Hvem: M\xc3\x28ette \xff\xfe", "Hvem: M"),  # invalid UTF-8
    (b"x-unknown", b"8bit", b"Hvem: M\xe6tte", "Hvem: Mætte"),  # a charset nobody knows
    (b"x-unknown", b"quoted-printable", b"Hvem: M=E6tte", "Hvem: Mætte"),
])
def test_undecodable_text_is_decoded_without_replacement(charset: bytes, encoding: bytes,
                                                          payload: bytes, readable: str) -> None:
    """Issue 11: bytes that do not fit their label are decoded by what decodes cleanly
    (UTF-8, windows-1252, charset-normalizer), never to U+FFFD (mailbot.intake.charsets)."""
    raw = (HEAD + b"Content-Type: text/plain; charset=" + charset +
           b"\r\nContent-Transfer-Encoding: " + encoding + b"\r\n\r\n" + payload + b"\r\n")
    mail = timed_parse(raw)
    assert readable in mail.text and "\ufffd" not in mail.text
    assert mail.from_address == "mette@kommune.test"


def test_unknown_charsets_in_headers_and_an_enclosed_mail_do_not_stop_the_mail() -> None:
    """An encoded-word in an unknown charset, and a forwarded mail (message/rfc822) whose
    part declares `charset=x-unknown`: this one used to raise LookupError out of parse, so
    the mail failed three times and was quarantined instead of read."""
    raw = (HEAD.replace(b"Subject: Projektforslag", b"Subject: =?x-unknown?q?M=E6de?= ok")
           + b'Content-Type: multipart/mixed; boundary="XX"\r\n\r\n'
           b"--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHvem: Mette\r\n"
           b'--XX\r\nContent-Type: message/rfc822; charset="x-unknown"\r\n'
           b'Content-Disposition: attachment; filename="videresendt.eml"\r\n\r\n'
           b"From: anna@kommune.test\r\nSubject: inner\r\n\r\nM\xe6tte\r\n--XX--\r\n")
    mail = timed_parse(raw)
    assert mail.subject.endswith("ok") and "Hvem: Mette" in mail.text
    [enclosed] = mail.attachments
    assert enclosed.filename == "videresendt.eml" and b"Subject: inner" in enclosed.payload


# -- P9: NUL bytes, CR-only and LF-only line endings ---------------------------------------------
@pytest.mark.parametrize("variant", ["lf", "cr", "nul"])
def test_line_ending_variants_and_nul_bytes_are_parsed(variant: str, rules: Rules) -> None:
    raw = brief(attachments=("Teknisk beskrivelse.pdf",))
    assert b"Content-Transfer-Encoding: 8bit" in raw
    changed = {"lf": raw.replace(b"\r\n", b"\n"),  # sisimai's bsd variant
               "cr": raw.replace(b"\r\n", b"\r"),  # mac
               "nul": raw.replace(b"Hvem: Mette", b"Hvem: Me\x00tte")}[variant]
    mail = timed_parse(changed)
    assert mail.from_address == "mette.holm@kommune.test"
    assert mail.subject == "Projektforslag: Ny mødebooking"
    assert [a.filename for a in mail.attachments] == ["Teknisk beskrivelse.pdf"]
    reading = read_brief(mail, rules, date(2026, 11, 2))
    assert reading.answers["what"] and reading.answers["where"]


# -- P10: Outlook .msg and TNEF winmail.dat --------------------------------------------------------
OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(range(256)) * 4  # an Outlook item (OLE2)
TNEF = b"\x78\x9f\x3e\x22" + b"\x01\x00" + bytes(range(256)) * 2  # TNEF signature


def test_outlook_msg_and_winmail_dat_are_kept_as_opaque_attachments(rules: Rules) -> None:
    def part(name: str, content_type: bytes, payload: bytes) -> bytes:
        return (b"--XX\r\nContent-Type: " + content_type + b"\r\n"
                b'Content-Disposition: attachment; filename="' + name.encode() + b'"\r\n'
                b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(payload))

    raw = HEAD + (b'Content-Type: multipart/mixed; boundary="XX"\r\n\r\n'
                  b"--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHvem: Mette\r\n"
                  + part("Videresendt ansøgning.msg", b"application/vnd.ms-outlook", OLE)
                  + part("winmail.dat", b"application/ms-tnef", TNEF) + b"--XX--\r\n")
    mail = timed_parse(raw)
    kept = {a.filename: a.payload for a in mail.attachments}
    assert kept == {"Videresendt ansøgning.msg": OLE, "winmail.dat": TNEF}
    reading = read_brief(mail, rules, date(2026, 11, 2))
    kinds = {d.filename: d.kind for d in reading.documents}
    assert kinds == {"Videresendt ansøgning.msg": "other", "winmail.dat": "other"}


def test_spamscope_outlook_item_attached_to_a_mail_is_kept_byte_for_byte(rules: Rules) -> None:
    """spamscope's `mail_outlook_1` is a real Outlook .msg file (OLE2, not MIME): alone it is
    refused as "no mail header" (tests/unit/test_corpus.py); attached to a brief it is kept
    as it came and read as `other`."""
    item = shared_path("corpus", "public", "spamscope-mail-parser", "mail_outlook_1").read_bytes()
    assert item.startswith(OLE[:8])
    raw = brief(attachments=())
    msg = message_from_bytes(raw, policy=policy.SMTP)
    assert isinstance(msg, EmailMessage)
    msg.add_attachment(item, maintype="application", subtype="vnd.ms-outlook",
                       filename="Ansøgning.msg")
    mail = timed_parse(msg.as_bytes(), limit=5.0)
    [kept] = mail.attachments
    assert kept.filename == "Ansøgning.msg" and kept.payload == item
    [reading] = read_brief(mail, rules, date(2026, 11, 2)).documents
    assert reading.kind == "other"
