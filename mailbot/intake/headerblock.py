"""Header blocks as real mail stores write them, repaired before parsing so that a person's
mail is read as a mail (the raw bytes are kept unchanged; only the parser sees the repair).

RFC 5322 section 2.2 says a header block is "Name: value" lines, continued by lines that start
with white space (section 2.2.3), ended by an empty line. Mail stores and gateways add:

- an mbox separator line `From sender date` (RFC 4155) or `>From ...` before the headers;
- a stray first line that is no header (a byte-order mark, a leading empty line, a line an
  export or a gateway wrote: "Return-path foo", "Message 12 of 40");
- a continuation line without its leading white space (a folded Subject or To cut by a
  program that trimmed lines).

Python's parser ends the header block at the first line that is no header, so all the
headers after such a line become body text and the mail "has no header". Here a line that is
no header is folded into the header before it when a mail system's header (MAIL_FIELDS)
follows it, and up to MAX_STRAY_LINES of them are dropped at the top when such a header
follows them. A mail whose body starts without the empty line keeps its body: its label lines
("Hvem: …") are no mail system's headers.
"""

from __future__ import annotations

import re

MAX_STRAY_LINES = 3
# RFC 5322 section 3.6.8: a field name is printable ASCII except the colon, then a colon.
_FIELD = re.compile(rb"^[!-9;-~]+[ \t]*:")
_LINE = re.compile(rb"[^\r\n]*(?:\r\n|\n|\r)?")
_BOM = b"\xef\xbb\xbf"


def _head_lines(mail: bytes) -> tuple[list[bytes], int]:
    """The lines repair_header_block looks at, each with its line break, and the offset of
    the rest of `mail`: the first MAX_STRAY_LINES + 1 lines and on to the first empty line
    after them. The body is not split: a 25 MB mail is 330,000 lines."""
    lines: list[bytes] = []
    offset = 0
    for match in _LINE.finditer(mail):
        if not match.group():
            continue  # the empty match at the end
        lines.append(match.group())
        offset = match.end()
        if len(lines) > MAX_STRAY_LINES and _blank(lines[-1]):
            break
    return lines, offset


def _blank(line: bytes) -> bool:
    return not line.strip(b"\r\n")


def _is_field(line: bytes) -> bool:
    return bool(_FIELD.match(line))


# Header fields that only mail systems write (RFC 5322 section 3.6, RFC 2045, RFC 2369 and
# the common X- and trace fields): a stray line is repaired only when such a field follows it,
# never because a brief's "Hvem: …" label line looks like a header.
MAIL_FIELDS = frozenset({
    b"from", b"to", b"cc", b"bcc", b"subject", b"date", b"message-id", b"in-reply-to",
    b"references", b"reply-to", b"sender", b"return-path", b"received", b"mime-version",
    b"dkim-signature", b"authentication-results", b"thread-topic", b"thread-index",
    b"importance", b"priority", b"precedence", b"auto-submitted", b"delivered-to",
    b"user-agent", b"organization", b"comments", b"keywords", b"errors-to", b"envelope-to",
    b"disposition-notification-to", b"accept-language", b"received-spf", b"feedback-id",
})
MAIL_FIELD_PREFIXES = (b"x-", b"content-", b"list-", b"resent-", b"arc-")


def _is_mail_field(line: bytes) -> bool:
    if not _is_field(line):
        return False
    name = line.split(b":", 1)[0].strip().lower()
    return name in MAIL_FIELDS or name.startswith(MAIL_FIELD_PREFIXES)


def _is_continuation(line: bytes) -> bool:
    return line[:1] in (b" ", b"\t")


def repair_header_block(raw: bytes) -> bytes:
    """The mail with its header block repaired (see the module text); unchanged when the
    block is well-formed or when no header follows the odd lines (then it is no mail)."""
    mail = raw[len(_BOM):] if raw.startswith(_BOM) else raw
    lines, rest = _head_lines(mail)
    start = 0
    while start < len(lines) and start < MAX_STRAY_LINES and not _is_field(lines[start]):
        start += 1
    if start and (start >= len(lines) or not _is_mail_field(lines[start])):
        return raw  # no mail header after the odd lines: leave it to the parser
    end = start
    while end < len(lines) and not _blank(lines[end]):
        end += 1
    head = lines[start:end]
    last_field = max((i for i, line in enumerate(head) if _is_mail_field(line)), default=-1)
    repaired: list[bytes] = []
    changed = start > 0 or raw.startswith(_BOM)
    for index, line in enumerate(head):
        if _is_field(line) or _is_continuation(line) or index > last_field or index == 0:
            repaired.append(line)
        else:  # a continuation line that lost its white space, with headers after it
            repaired.append(b" " + line)
            changed = True
    if not changed:
        return raw
    return b"".join([*repaired, *lines[end:], mail[rest:]])
