"""Property-based tests (hypothesis) of the reading half: whatever bytes or MIME tree come in,
`parse` and the readers either read them or refuse them with PermanentError (quarantine), never
with another exception, and always within a bound per mail (SCENARIOS P1, P4, P5)."""

from __future__ import annotations

import time
from email.message import EmailMessage
from email.policy import SMTP

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailbot.errors import PermanentError
from mailbot.intake.inspection import inspect_details, settings_without_config
from mailbot.rules import Rules

BOUND_SECONDS = 5.0  # SCENARIOS P1: each hard case handled within 5 s
SETTINGS = settings_without_config("it.projekter@kommune.test")
CHARSETS = ("utf-8", "iso-8859-1", "windows-1252", "us-ascii", "utf-16", "x-unknown", "gb2312")
ENCODINGS = ("7bit", "8bit", "base64", "quoted-printable", "x-uuencode", "bogus")
FILENAMES = st.sampled_from(("Teknisk beskrivelse.pdf", "Udkast til kontrakt.docx", "bilag.zip",
                             "../../etc/passwd", "dba.odt", "x" * 300, "æøå.xlsx", "", "a\tb"))


def read(raw: bytes, rules: Rules) -> str:
    """"read", or "refused" (PermanentError: the daemon quarantines it); any other exception
    fails the test, and so does taking longer than BOUND_SECONDS."""
    started = time.monotonic()
    try:
        details = inspect_details(raw, rules, SETTINGS)[1]
        outcome = "read" if "disposition" in details else "no disposition"
    except PermanentError:
        outcome = "refused"
    assert time.monotonic() - started < BOUND_SECONDS, outcome
    assert outcome != "no disposition"
    return outcome


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4000))
def test_arbitrary_bytes_are_read_or_refused(rules: Rules, raw: bytes) -> None:
    read(raw, rules)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(headers=st.dictionaries(
    st.sampled_from(("From", "To", "Subject", "Message-ID", "In-Reply-To", "Auto-Submitted",
                     "Content-Type", "Content-Transfer-Encoding", "References", "Date")),
    st.text(max_size=200), max_size=10),
    body=st.binary(max_size=3000))
def test_arbitrary_headers_and_bodies(rules: Rules, headers: dict[str, str],
                                      body: bytes) -> None:
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    read(head.encode("utf-8", "surrogateescape") + b"\r\n" + body, rules)


@st.composite
def mime_trees(draw: st.DrawFn, depth: int = 0) -> EmailMessage:
    """A MIME tree of text parts in many charsets and encodings, attachments with odd names,
    nested multiparts and enclosed messages."""
    msg = EmailMessage(policy=SMTP)
    kind = draw(st.sampled_from(("text", "attachment", "multipart", "message"))
                if depth < 4 else st.sampled_from(("text", "attachment")))
    if kind == "text":
        charset = draw(st.sampled_from(CHARSETS))
        text = draw(st.text(max_size=300))
        subtype = draw(st.sampled_from(("plain", "html")))
        msg["Content-Type"] = f'text/{subtype}; charset="{charset}"'
        msg["Content-Transfer-Encoding"] = draw(st.sampled_from(ENCODINGS))
        msg.set_payload(text.encode("utf-8", "surrogatepass"))
    elif kind == "attachment":
        msg["Content-Type"] = draw(st.sampled_from(("application/pdf", "application/zip",
                                                    "application/octet-stream", "image/png")))
        msg["Content-Disposition"] = f'attachment; filename="{draw(FILENAMES)}"'
        msg["Content-Transfer-Encoding"] = draw(st.sampled_from(ENCODINGS))
        msg.set_payload(draw(st.binary(max_size=500)))
    elif kind == "multipart":
        msg["Content-Type"] = f'multipart/mixed; boundary="b{depth}"'
        msg.set_payload([draw(mime_trees(depth + 1))
                         for _ in range(draw(st.integers(0, 4)))])
    else:
        msg["Content-Type"] = "message/rfc822"
        msg.set_payload([draw(mime_trees(depth + 1))])
    return msg


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=mime_trees(), sender=st.sampled_from(("Anna <anna@kommune.test>", "",
                                                  "a@b, c@d", "<>", "=?utf-8?q?=C3=86?= <x@y>")),
       subject=st.text(max_size=120))
def test_arbitrary_mime_trees_are_read_or_refused(rules: Rules, tree: EmailMessage,
                                                 sender: str, subject: str) -> None:
    envelope = (f"From: {sender}\r\nTo: it.projekter@kommune.test\r\n"
                f"Message-ID: <p@kommune.test>\r\nMIME-Version: 1.0\r\n"
                f"Subject: {' '.join(subject.split())}\r\n")
    read(envelope.encode("utf-8", "surrogateescape") + tree.as_bytes(policy=SMTP), rules)
