"""The message a bounce returns, so that the bounce is attached to its case.

A delivery status notification (RFC 3464, inside the RFC 6522 multipart/report) returns the
undelivered message, or only its headers, as the report's third part: `message/rfc822` or
`text/rfc822-headers` (RFC 6532: `message/global`, `message/global-headers`). Older mail
servers (qmail, Exim without DSN, Exchange 2003, sendmail's "unsent message follows") paste
a copy below a line such as "This is a copy of the message, including all the headers". The
returned Subject is often one RFC 2047 encoded-word (the case tag hides inside it), so it is
decoded before the case reference is looked for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from email.parser import BytesHeaderParser

from mailbot.intake.charsets import decode_header_text, decode_text
from mailbot.intake.headerblock import repair_header_block

RETURNED_MESSAGE_TYPES = ("message/rfc822", "message/global")
RETURNED_HEADER_TYPES = ("text/rfc822-headers", "message/global-headers")
# Lines below which a bounce pastes the returned message (Exim, qmail, sendmail, Postfix
# without DSN, Exchange, Danish Exchange/Outlook texts).
COPY_MARKERS = re.compile(
    r"^[\s>-]*(?:"
    r".*\bcopy of (?:the|your) (?:original )?message\b"
    r"|.*\b(?:original|unsent|returned|undelivered) message (?:follows|below|headers?)\b"
    r"|.*\bbelow this line is a copy\b"
    r"|.*\boriginal message headers\b"
    r"|.*\bkopi af (?:den oprindelige |din |den )?(?:meddelelse|besked|mail|e-mail)\b"
    r"|.*\boprindelig(?:e)? meddelelse(?:s)?(?: følger| nedenfor|sheadere| headere)\b"
    r").*$",
    re.IGNORECASE | re.MULTILINE)
_MESSAGE_ID = re.compile(r"<[^<>\s]+>")
MAX_SCANNED_TEXT = 200_000


@dataclass(frozen=True)
class Returned:
    """The headers of the message a bounce returns."""

    subject: str  # decoded
    message_ids: tuple[str, ...]  # its Message-ID, then In-Reply-To and References


def _from_headers(headers: Message) -> Returned | None:
    values: dict[str, list[str]] = {}
    for name, value in headers.raw_items():
        values.setdefault(name.lower(), []).append(str(value))
    if not ({"subject", "message-id"} & values.keys()):
        return None
    subject = decode_header_text(values.get("subject", [""])[0])
    ids: list[str] = []
    for name in ("message-id", "in-reply-to", "references"):
        for value in values.get(name, []):
            ids.extend(_MESSAGE_ID.findall(value))
    return Returned(" ".join(subject.split()), tuple(ids))


def _header_block(data: bytes) -> Returned | None:
    return _from_headers(BytesHeaderParser().parsebytes(repair_header_block(data.lstrip())))


def _pasted_copy(part: Message) -> Returned | None:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return None
    text = decode_text(payload[:MAX_SCANNED_TEXT], part.get_content_charset())
    marker = COPY_MARKERS.search(text)
    if marker is None:
        return None
    below = text[marker.end():].lstrip("\r\n -")
    return _header_block(below.encode("utf-8", "surrogateescape"))


def returned_message(message: Message) -> Returned | None:
    """The returned message's headers, from the report's returned part, or from a copy
    pasted below a "copy of the message" line in a text part; None when there is none."""
    pasted: Returned | None = None
    for part in message.walk():
        content_type = part.get_content_type()
        if content_type in RETURNED_MESSAGE_TYPES:
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                found = _from_headers(inner[0])
            else:
                raw = part.get_payload(decode=True)
                found = _header_block(raw) if isinstance(raw, bytes) else None
            if found is not None:
                return found
        elif content_type in RETURNED_HEADER_TYPES:
            raw = part.get_payload(decode=True)
            found = _header_block(raw) if isinstance(raw, bytes) else None
            if found is not None:
                return found
        elif content_type == "text/plain" and pasted is None:
            pasted = _pasted_copy(part)
    return pasted


def parse_returned(raw: bytes) -> Returned | None:
    """returned_message() of raw bytes."""
    return returned_message(message_from_bytes(raw))
