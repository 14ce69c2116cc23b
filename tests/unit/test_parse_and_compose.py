from __future__ import annotations

import time
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from mailbot.blobs import BlobStore
from mailbot.delivery.compose import build_message, tagged_subject
from mailbot.errors import PermanentError
from mailbot.intake.parse import content_sha256, html_to_text, msgid_hash, parse, strict_address
from mailbot.intake.threads import find_thread, is_own_message_id, read_own_id, signed_message_id
from mailbot.vocabulary import AutoSubmitted
from tests.conftest import shared_path
from tests.mails import brief

SECRET = b"test secret"


@pytest.mark.parametrize(("value", "expected"), [
    ("Anna <Anna@Kommune.DK>", "anna@kommune.dk"),
    ('"anna@kommune.dk" <anna@kommune.dk>', "anna@kommune.dk"),
    ('"Sørensen, Åse" <aase@kommune.dk>', "aase@kommune.dk"),
    ("alice@evil.example)<bob@kommune.dk>", ""),
    ("a@kommune.dk, b@kommune.dk", ""),
    ("Undisclosed recipients:;", ""),
    ("", ""),
])
def test_from_is_one_unambiguous_address(value: str, expected: str) -> None:
    assert strict_address(value) == expected


def test_two_from_headers_make_the_sender_unknown() -> None:
    raw = b"From: a@kommune.test\r\nFrom: b@kommune.test\r\nSubject: x\r\n\r\nbody\r\n"
    assert parse(raw).from_address == ""


def test_not_a_mail_is_a_permanent_error() -> None:
    with pytest.raises(PermanentError, match="no mail header"):
        parse(b"\x00\x01 garbage \xff")


def test_trace_headers_do_not_change_the_content_hash() -> None:
    raw = brief(message_id="<x@kommune.test>")
    traced = b"Received: from a by b; Mon, 2 Nov 2026\r\nDelivered-To: bot@k.test\r\n" + raw
    assert content_sha256(raw) == content_sha256(traced)
    assert content_sha256(raw) != content_sha256(raw.replace(b"Borgerservice", b"Skole"))


def test_mail_without_message_id_is_keyed_by_its_bytes() -> None:
    assert msgid_hash("", b"one") != msgid_hash("", b"two")
    assert msgid_hash("<A@x>", b"one") == msgid_hash("<a@x>", b"two")


def test_inline_logo_is_not_a_document() -> None:
    raw = (shared_path("samples", "cases") / "002-chatbot-outlook-html.eml").read_bytes()
    mail = parse(raw)
    assert "image001.png" in [a.filename for a in mail.attachments]
    assert "image001.png" not in [a.filename for a in mail.documents]
    assert len(mail.documents) == 4
    assert "Hvem" in mail.text  # HTML-only body reduced to text


def test_each_outlook_paragraph_is_a_paragraph_of_its_own() -> None:
    """Outlook writes every paragraph as <p class=MsoNormal>, often with no empty spacer
    paragraph between them: the greeting must not run into the first answer."""
    markup = ('<p class=MsoNormal>Hej<o:p></o:p></p><p class=MsoNormal>Vi vil gerne have en app.'
              '<o:p></o:p></p><p class=MsoNormal>&nbsp;<o:p></o:p></p>'
              '<p class=MsoNormal>Venlig hilsen<br>Anna</p>')
    assert html_to_text(markup) == "Hej\n\nVi vil gerne have en app.\n\nVenlig hilsen\nAnna"


def test_subject_tag_is_sanitised_and_not_stacked() -> None:
    assert tagged_subject("ITP-2026-0001", "SV: [ITP-2026-0001] Re: Chatbot") == \
        "[ITP-2026-0001] Chatbot"
    assert "\n" not in tagged_subject("ITP-2026-0001", "a\r\nBcc: x@evil.test")
    assert "XXXXXX-XXXX" in tagged_subject("ITP-2026-0001", "Sag om 010190-1234")
    assert len(tagged_subject("ITP-2026-0001", "x" * 10_000)) < 220


def test_every_outgoing_mail_is_marked_automatic_and_threaded() -> None:
    message_id = signed_message_id("receipt", "ITP-2026-0007", "kommune.test", SECRET)
    msg = build_message(
        sender_name='IT-Projektrådet, "Albertslund"', sender_address="bot@kommune.test",
        to=("anna@kommune.test",), subject="[ITP-2026-0007] a\r\nBcc: x@evil.test",
        text="Kære Åse", html="<p>Kære Åse</p>", message_id=message_id,
        now=datetime(2026, 3, 2, 11, 0, tzinfo=UTC), in_reply_to="<orig@kommune.test>",
        references=("<orig@kommune.test>",), auto_submitted=AutoSubmitted.REPLIED,
    )
    parsed = message_from_bytes(msg, policy=policy.default)
    assert parsed["Auto-Submitted"] == "auto-replied"
    assert parsed["X-Auto-Response-Suppress"] == "All"
    assert parsed["X-Mailbot-Loop"] == "bot@kommune.test"
    assert parsed["Message-ID"] == message_id and is_own_message_id(message_id, "kommune.test")
    assert parsed["In-Reply-To"] == "<orig@kommune.test>"
    assert parsed["Bcc"] is None and "\n" not in str(parsed["Subject"])
    assert parsed["From"].addresses[0].display_name == 'IT-Projektrådet, "Albertslund"'
    assert parsed["Date"].endswith(("+0100", "+0200"))


def test_reply_finds_its_case_by_our_message_id_before_the_subject() -> None:
    ours = signed_message_id("review", "ITP-2026-0003", "kommune.test", SECRET, review=7)
    raw = brief(subject="SV: [ITP-2026-0009] noget andet", headers={"In-Reply-To": ours})
    match = find_thread(parse(raw), "kommune.test", SECRET)
    assert (match.case_ref, match.via, match.review) == ("ITP-2026-0003", "message-id", 7)
    other_domain = ours.replace("@kommune.test", "@evil.test")
    foreign = brief(subject="SV: [ITP-2026-0009] x", headers={"In-Reply-To": other_domain})
    assert find_thread(parse(foreign), "kommune.test", SECRET).via == "subject"


def test_signed_ids_resist_tampering_and_survive_case_changes() -> None:
    ours = signed_message_id("review", "ITP-2026-0003", "kommune.test", SECRET, review=7)
    own = read_own_id(ours, "kommune.test", SECRET)
    assert own is not None and own.valid and own.review == 7
    upper = read_own_id(ours.upper().replace("KOMMUNE.TEST", "kommune.test"), "kommune.test",
                        SECRET)
    assert upper is not None and upper.valid
    for tampered in (ours.replace(".7.", ".8."), ours.replace("ITP-2026-0003", "ITP-2026-0004"),
                     ours[:-15] + ("a" if ours[-15] != "a" else "b") + ours[-14:]):
        forged = read_own_id(tampered, "kommune.test", SECRET)
        assert forged is not None and not forged.valid
    assert not read_own_id(ours, "kommune.test", b"another secret").valid  # type: ignore[union-attr]
    damaged = ours.replace(".7.", ".8.")
    raw = brief(subject="SV: [ITP-2026-0003] x", headers={"In-Reply-To": damaged})
    match = find_thread(parse(raw), "kommune.test", SECRET)
    assert (match.via, match.review, match.tampered) == ("subject", 0, True)


@pytest.mark.parametrize("name", ["../../../../etc/cron.d/x", "/etc/passwd", "C:\\Windows\\x.dll"])
def test_blob_paths_are_hashes_never_names(tmp_path: Path, name: str) -> None:
    store = BlobStore(tmp_path / "blobs")
    digest = store.put(name.encode())
    assert store.get(digest) == name.encode()
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files == [store.path(digest)] and files[0].name == digest
    with pytest.raises(ValueError):
        store.path("../../etc/passwd")


def test_mail_parser_writers_are_never_used() -> None:
    package = Path(__file__).resolve().parents[2] / "mailbot"
    for source in package.rglob("*.py"):
        text = source.read_text(encoding="utf-8")
        assert "write_attachments" not in text and "write_sample" not in text, source


def nested_message(depth: int) -> bytes:
    """A message/rfc822 enclosing another, `depth` times (flanker's enclosed-endless shape)."""
    inner = b"From: a@kommune.test\r\nSubject: inderst\r\n\r\nHej\r\n"
    for level in range(depth):
        inner = (b"From: a@kommune.test\r\nSubject: lag %d\r\nMIME-Version: 1.0\r\n"
                 b"Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n"
                 b"Content-Type: text/plain\r\n\r\nse bilag\r\n--b%d\r\n"
                 b"Content-Type: message/rfc822\r\n\r\n" % (level, level, level, level)
                 + inner + b"\r\n--b%d--\r\n" % level)
    return inner


def test_a_3000_part_nested_mail_is_refused_before_parsing() -> None:
    """SCENARIOS P3: depth and part caps are checked on the raw bytes, fast."""
    raw = nested_message(1000)  # 3,000 Content-Type headers
    started = time.monotonic()
    with pytest.raises(PermanentError, match="MIME tree of 3000 parts"):
        parse(raw)
    assert time.monotonic() - started < 0.5
    with pytest.raises(PermanentError, match="11 enclosed messages exceed 10"):
        parse(nested_message(11))
    assert parse(nested_message(3)).subject == "lag 2"
