"""A large mail is parsed piece by piece and its header repaired without splitting its body
(issue #16, tests/benchmarks/bench_memory.py): what is read must be exactly what was sent,
wherever a piece ends."""

from __future__ import annotations

import base64
import os
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import SMTP

import pytest

from mailbot.intake.headerblock import repair_header_block
from mailbot.intake.parse import header_block, parse, split_header_block
from tests.mails import COMPLETE_BODY

PIECE = 1 << 16  # mailbot.intake.parse feeds the parser this many bytes at a time


def mail_with(payload: bytes, subject: str = "Projektforslag: Ny mødebooking") -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = "Mette Holm <mette.holm@kommune.test>"
    msg["To"] = "it.projekter@kommune.test"
    msg["Subject"] = subject
    msg["Date"] = "Mon, 02 Nov 2026 09:00:00 +0100"
    msg["Message-ID"] = "<large@kommune.test>"
    msg.set_content(COMPLETE_BODY)
    msg.add_attachment(payload, maintype="application", subtype="pdf",
                       filename="Teknisk beskrivelse.pdf")
    return msg.as_bytes()


def test_an_attachment_over_many_pieces_is_read_back_exactly() -> None:
    payload = b"%PDF-1.4\n%" + os.urandom(5 * PIECE)
    # a CRLF cut in two by the end of the first piece, and lines cut at every other end
    raw = next(r for r in (mail_with(payload, "Projektforslag " + "x" * n) for n in range(80))
               if r[PIECE - 1:PIECE + 1] == b"\r\n")
    mail = parse(raw)
    [attachment] = mail.attachments
    assert attachment.payload == payload and attachment.filename == "Teknisk beskrivelse.pdf"
    assert mail.subject.startswith("Projektforslag x") and "Hvem:" in mail.text


def test_a_repaired_header_block_keeps_a_large_body_byte_for_byte() -> None:
    raw = mail_with(os.urandom(3 * PIECE))
    head, body = split_header_block(raw)
    # a line a mail export wrote above the headers, and a Subject cut by a program
    damaged = b"Message 12 of 40\r\n" + head.replace(b"Subject: ", b"Subject:\r\n") \
        + b"\r\n\r\n" + body
    repaired = repair_header_block(damaged)
    assert repaired.endswith(b"\r\n\r\n" + body) and not repaired.startswith(b"Message 12")
    assert parse(damaged).attachments == parse(raw).attachments
    assert header_block(raw) == head


def test_a_well_formed_mail_is_not_copied_by_the_repair() -> None:
    raw = mail_with(os.urandom(PIECE))
    assert repair_header_block(raw) is raw


BASE64_BODIES = {
    "lines of 76": base64.encodebytes(bytes(range(256)) * 40).decode(),
    "one long line": base64.b64encode(b"x" * 5000).decode() + "\n",
    "padding missing": base64.b64encode(b"ab").decode().rstrip("=") + "\n",
    "a stray character": "QUJD*REVG\n",
    "padding mid-stream": "QQ==\nQkM=\n",
    "not ASCII": "QUJDæREVG\n",
    "empty": "",
}


@pytest.mark.parametrize("body", BASE64_BODIES.values(), ids=BASE64_BODIES.keys())
def test_a_base64_attachment_decodes_as_the_stdlib_decodes_it(body: str) -> None:
    """Decoded straight from the parsed text (no copy per line: issue #16), with the same
    bytes as Message.get_payload(decode=True) gives, broken encodings included."""
    raw = ("From: a@kommune.test\r\nTo: b@kommune.test\r\nSubject: Bilag\r\n"
           "Message-ID: <b64@kommune.test>\r\nMIME-Version: 1.0\r\n"
           'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
           "Content-Type: text/plain\r\n\r\nSe bilaget.\r\n--b\r\n"
           "Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
           'Content-Disposition: attachment; filename="bilag.pdf"\r\n\r\n'
           f"{body}\r\n--b--\r\n").encode()
    stdlib = message_from_bytes(raw).get_payload()[1].get_payload(decode=True)
    [attachment] = parse(raw).attachments
    assert attachment.payload == stdlib
