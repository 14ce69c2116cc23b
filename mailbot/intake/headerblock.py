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
no header is folded into the header before it when more headers follow it, and up to
MAX_STRAY_LINES of them are dropped at the top when headers follow them.
"""

from __future__ import annotations

import re

MAX_STRAY_LINES = 3
# RFC 5322 section 3.6.8: a field name is printable ASCII except the colon, then a colon.
_FIELD = re.compile(rb"^[!-9;-~]+[ \t]*:")
_LINE = re.compile(rb"[^\r\n]*(?:\r\n|\n|\r)?")
_BOM = b"\xef\xbb\xbf"


def _lines(block: bytes) -> list[bytes]:
    return [line for line in _LINE.findall(block) if line]


def _blank(line: bytes) -> bool:
    return not line.strip(b"\r\n")


def _is_field(line: bytes) -> bool:
    return bool(_FIELD.match(line))


def _is_continuation(line: bytes) -> bool:
    return line[:1] in (b" ", b"\t")


def repair_header_block(raw: bytes) -> bytes:
    """The mail with its header block repaired (see the module text); unchanged when the
    block is well-formed or when no header follows the odd lines (then it is no mail)."""
    lines = _lines(raw[len(_BOM):] if raw.startswith(_BOM) else raw)
    start = 0
    while start < len(lines) and start < MAX_STRAY_LINES and not _is_field(lines[start]):
        start += 1
    if start and (start >= len(lines) or not _is_field(lines[start])):
        return raw  # no header after the odd lines: leave it to the parser to refuse
    end = start
    while end < len(lines) and not _blank(lines[end]):
        end += 1
    head = lines[start:end]
    last_field = max((i for i, line in enumerate(head) if _is_field(line)), default=-1)
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
    return b"".join(repaired + lines[end:])
