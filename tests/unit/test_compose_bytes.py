"""build_message writes the MIME message itself (issue #16): what readers see of it must be
what the stdlib's EmailMessage made of the same input, Danish names and subjects, long
headers, HTML and attachments included."""

from __future__ import annotations

import base64
import re
import shutil
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import mailparser
import pytest

from mailbot.delivery.compose import (
    Base64Cache,
    Renderer,
    _base64_lines,
    _capped,
    build_message,
)
from mailbot.intake.parse import clean_header_text, display_address
from mailbot.vocabulary import AutoSubmitted

NOW = datetime(2026, 3, 2, 11, 0, tzinfo=UTC)
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 400
DOCX = b"PK\x03\x04" + bytes(reversed(range(256))) * 300
LONG_DANISH = ("[ITP-2026-0042] Anmodning om vurdering: Ærø Kommunes ønske om et fælles "
               "bookingsystem til skøjtebanen, svømmehallen og biblioteket på Søndergade")


def _mail(**changes: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "sender_name": "IT-Projektrådet, Ærø", "sender_address": "bot@kommune.test",
        "to": ("åse@kommune.test".replace("å", "a"), "it-sikkerhed@kommune.test"),
        "subject": LONG_DANISH, "text": "Kære Åse Ærø\n\nSe bilagene.\n",
        "html": "<p>Kære Åse Ærø</p>\n<p>Se bilagene.</p>\n",
        "message_id": "<review.ITP-2026-0042.7.abc@kommune.test>", "now": NOW,
        "in_reply_to": "<brief-1@kommune.test>", "references": ("<brief-1@kommune.test>",),
        "auto_submitted": AutoSubmitted.GENERATED, "language": "da",
        "attachments": (("Teknisk beskrivelse æøå.pdf", PDF, "application/pdf"),
                        ("Udkast til kontrakt.docx", DOCX, "application/vnd.openxmlformats-"
                         "officedocument.wordprocessingml.document"),
                        ("Teknisk beskrivelse (kopi).pdf", PDF, "application/pdf")),
        "reply_to": "bot+r.42.7.abc@kommune.test",
    }
    return {**args, **changes}


def _stdlib_message(args: dict[str, Any]) -> bytes:
    """The message as build_message made it with EmailMessage before issue #16: the oracle."""
    msg = EmailMessage(policy=policy.SMTP.clone(max_line_length=998))
    msg["From"] = display_address(args["sender_name"], args["sender_address"])
    msg["To"] = ", ".join(args["to"])
    subject = clean_header_text(args["subject"])
    msg["Subject"] = subject if subject.startswith("[") else _capped(subject)
    if args["reply_to"]:
        msg["Reply-To"] = display_address(args["sender_name"], args["reply_to"])
    msg["Date"] = "x"
    msg["Message-ID"] = args["message_id"]
    if args["in_reply_to"]:
        msg["In-Reply-To"] = args["in_reply_to"]
    if args["references"]:
        msg["References"] = " ".join(args["references"])
    msg.set_content(args["text"])
    msg.add_alternative(args["html"], subtype="html")
    for filename, payload, content_type in args["attachments"]:
        maintype, _, subtype = content_type.partition("/")
        if not subtype or maintype in ("text", "multipart", "message"):
            maintype, subtype = "application", "octet-stream"
        msg.add_attachment(payload, maintype=maintype, subtype=subtype,
                           filename=clean_header_text(filename))
    return msg.as_bytes()


def _seen(raw: bytes) -> dict[str, Any]:
    """What a reader gets from the mail through the stdlib parser: decoded headers, and each
    leaf part's type, file name and decoded content."""
    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage) and not msg.defects
    headers = {k: str(msg[k]) for k in ("From", "To", "Subject", "Reply-To", "Message-ID",
                                        "In-Reply-To", "References")}
    parts = [(p.get_content_type(), p.get_filename(), p.get_content(), p.defects)
             for p in msg.walk() if not p.is_multipart()]
    return {"headers": headers, "structure": [p.get_content_type() for p in msg.walk()],
            "parts": parts}


def test_a_danish_mail_with_html_and_attachments_reads_back_whole() -> None:
    args = _mail()
    raw = build_message(**args)
    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage) and not msg.defects
    [sender] = msg["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("IT-Projektrådet, Ærø", "bot@kommune.test")
    assert msg["Reply-To"].addresses[0].addr_spec == "bot+r.42.7.abc@kommune.test"
    assert [a.addr_spec for a in msg["To"].addresses] == list(args["to"])
    assert str(msg["Subject"]) == LONG_DANISH
    assert str(msg["Message-ID"]) == args["message_id"]
    assert str(msg["In-Reply-To"]) == str(msg["References"]) == "<brief-1@kommune.test>"
    assert (msg["Auto-Submitted"], msg["X-Auto-Response-Suppress"], msg["Precedence"],
            msg["X-Mailbot-Loop"], msg["Content-Language"]) == (
        "auto-generated", "All", "auto_reply", "bot@kommune.test", "da")
    assert msg["Date"].datetime == NOW
    for subtype in ("plain", "html"):
        body = msg.get_body((subtype,))
        assert body is not None and body.get_content_charset() == "utf-8"
        assert body.get_content().replace("\r\n", "\n") == args[subtype.replace("plain", "text")]
    attached = [(a.get_filename(), a.get_content_type(), a.get_content())
                for a in msg.iter_attachments()]
    assert attached == [(n, t, p) for n, p, t in args["attachments"]]
    # RFC 5322 section 2.1.1 and RFC 2047 section 2: short lines, short encoded-words, 7-bit
    # headers; the message ids whole on their line
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii() and all(len(line) <= 78 for line in head.split(b"\r\n")
                                  if not line.startswith(b"Reply-To: "))
    assert all(len(w) <= 75 for w in re.findall(rb"=\?[^?]+\?[bqBQ]\?[^?]*\?=", head))
    assert f"\r\nMessage-ID: {args['message_id']}\r\n".encode() in raw
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))

    parsed = mailparser.parse_from_bytes(raw)
    assert parsed.subject == LONG_DANISH and parsed.message_id == args["message_id"]
    assert parsed.from_ == [("IT-Projektrådet, Ærø", "bot@kommune.test")]
    assert parsed.reply_to == [("IT-Projektrådet, Ærø", "bot+r.42.7.abc@kommune.test")]
    assert parsed.to == [("", address) for address in args["to"]]
    assert parsed.text_plain == [args["text"].replace("\n", "\r\n")]
    assert parsed.text_html == [args["html"].replace("\n", "\r\n")]
    assert [(a["filename"], a["mail_content_type"], base64.b64decode(a["payload"]))
            for a in parsed.attachments] == [(n, t, p) for n, p, t in args["attachments"]]


@pytest.mark.parametrize("changes", [
    {},
    {"attachments": (), "reply_to": "", "in_reply_to": "", "references": ()},
    {"subject": "Kvittering", "sender_name": "Bot"},
    {"subject": "=?utf-8?q?not_an_encoded_word?= literally, and \"quotes\" (x) <y>"},
    {"subject": "x" * 190 + " " + "y" * 100, "text": "", "html": ""},
    {"sender_name": 'Sørensen, Åse "<chef>" ' * 8},
    {"text": "Æ" * 1200 + "\nkort\n", "html": "<p>" + "a" * 2000 + "</p>"},
    {"text": "a\r\nb\rc\n\n", "html": "--===============1234==\n"},
    {"attachments": (("a\r\nb.txt", b"x", "text/plain"), ("æ" * 90 + ".pdf", b"y", "pdf"),
                     ("x.bin", b"", "application/x-empty"))},
    {"references": tuple(f"<{n}.{'r' * 60}@kommune.test>" for n in range(40))},
    {"subject": "[ITP-2026-0042] Anmodning om vurdering af x " + "😀🇩🇰" * 30},
], ids=["review", "bare", "ascii", "encoded-word-lookalike", "long-ascii", "long-name",
        "long-lines", "line-ends-and-boundary", "hostile-names", "long-references", "emoji"])
def test_readers_see_what_the_stdlib_message_showed(changes: dict[str, Any]) -> None:
    args = _mail(**changes)
    raw = build_message(**args)
    ours, theirs = _seen(raw), _seen(_stdlib_message(args))
    # the subject exactly as given, even text that looks like an encoded-word (which the
    # stdlib message sent as one, so readers saw it decoded)
    subject = clean_header_text(args["subject"])
    subject = subject if subject.startswith("[") else _capped(subject)
    assert ours["headers"].pop("Subject") == subject
    assert mailparser.parse_from_bytes(raw).subject == subject
    theirs["headers"].pop("Subject")
    assert ours["headers"] == theirs["headers"]
    assert ours["structure"] == theirs["structure"]
    assert [p[:3] for p in ours["parts"]] == [p[:3] for p in theirs["parts"]]
    assert all(not p[3] for p in ours["parts"])


def test_header_injection_is_refused() -> None:
    with pytest.raises(ValueError):
        build_message(**_mail(to=("a@kommune.test\r\nBcc: x@evil.test",)))
    with pytest.raises(ValueError):
        build_message(**_mail(message_id="<a@b> <c@d>"))
    hostile = "application/pdf; name=x\r\nBcc: x@evil.test"
    raw = build_message(**_mail(attachments=(("x.pdf", b"x", hostile),)))
    msg = message_from_bytes(raw, policy=policy.default)
    assert msg["Bcc"] is None and b"evil" not in raw
    assert [a.get_content_type() for a in msg.iter_attachments()] == ["application/octet-stream"]


def test_an_encoded_attachment_is_reused_for_the_same_bytes_only() -> None:
    cache = Base64Cache(max_bytes=3000, max_entry_bytes=3000)
    first = cache.encoded(b"a" * 1000)
    assert cache.encoded(b"a" * 1000) is first and (cache.hits, cache.misses) == (1, 1)
    other = cache.encoded(b"b" * 1000)
    assert other != first and base64.b64decode(other) == b"b" * 1000
    assert all(len(line) <= 76 for line in first.split(b"\r\n"))  # RFC 2045 section 6.8
    cache.encoded(b"c" * 1000)  # over 3000 encoded bytes: the least recently used goes
    assert cache.held <= 3000
    cache.encoded(b"b" * 1000)
    assert cache.hits == 2
    cache.encoded(b"a" * 1000)
    assert cache.misses == 4
    assert cache.encoded(b"") == b"" and cache.encoded(b"z" * 5000) == cache.encoded(
        b"z" * 5000)  # a body larger than the whole cache is encoded, not kept
    assert cache.held <= 3000
    small = Base64Cache(max_bytes=16_000)  # by default an entry is at most 1,000 bytes
    small.encoded(b"y" * 1000)
    assert small.held == 0 and base64.b64decode(small.encoded(b"y" * 1000)) == b"y" * 1000


def test_templates_are_read_once_and_english_falls_back_to_danish(tmp_path: Path) -> None:
    """Compiled once per process (issue #16): a template edited after its first use takes
    effect at the next start; staff mail exists in Danish only, whatever the language."""
    shipped = Path(__file__).resolve().parents[2] / "templates"
    folder = tmp_path / "templates"
    shutil.copytree(shipped, folder)
    renderer = Renderer([folder])
    context = {"bot_name": "IT-Projektrådet", "what": "Postkassen svarer ikke",
               "detail": "IMAP", "fix": "Tjek adgangskoden", "hours": 2, "incident": "imap",
               "more": ""}
    first = renderer.render_mail("en", "operator_alert", context)
    assert first[0] == "IT-Projektrådet: Postkassen svarer ikke"
    (folder / "da" / "operator_alert.subject.j2").write_text("changed", encoding="utf-8")
    assert renderer.render_mail("en", "operator_alert", context) == first
    assert renderer.render_mail("da", "operator_alert", context) == first
    assert Renderer([folder]).render_mail("da", "operator_alert", context)[0] == "changed"


@pytest.mark.parametrize("size", [0, 1, 56, 57, 58, 57 * 1024, 57 * 1024 + 1, 200_000])
def test_base64_lines_are_what_the_stdlib_writes_at_every_block_edge(size: int) -> None:
    """Built a block at a time (issue #16, memory of a large document): the same lines as
    base64.encodebytes, 76 characters each and CRLF-terminated (RFC 2045 section 6.8)."""
    data = bytes(range(256)) * (size // 256 + 1)
    data = data[:size]
    assert bytes(_base64_lines(data)) == base64.encodebytes(data).replace(b"\n", b"\r\n")
