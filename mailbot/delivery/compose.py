"""jinja2 templates -> the MIME message, as bytes, with the headers every mail of the bot
carries."""

from __future__ import annotations

import binascii
import hashlib
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.message import MIMEPart
from email.policy import SMTP
from email.utils import encode_rfc2231, format_datetime, quote
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateNotFound

from mailbot.clock import COPENHAGEN
from mailbot.errors import ConfigError
from mailbot.intake.parse import clean_header_text, display_address
from mailbot.intake.screen import LOOP_HEADER
from mailbot.redact import redact_cpr
from mailbot.vocabulary import AutoSubmitted

MAX_SUBJECT_CHARS = 200
_REPLY_PREFIXES = ("re:", "sv:", "aw:", "vs:", "fw:", "fwd:")


@dataclass(frozen=True)
class Outgoing:
    """A rendered mail ready for the outbox."""

    message_id: str
    recipients: tuple[str, ...]
    subject: str
    raw: bytes  # the message as sent (build_message), serialised once


def tagged_subject(ref: str, subject: str) -> str:
    """`[ITP-2026-0001] <subject>`, without stacking tags or reply prefixes, CPR redacted."""
    clean = redact_cpr(clean_header_text(subject)).replace(f"[{ref}]", " ")
    clean = " ".join(clean.split())
    previous = None
    while previous != clean:
        previous = clean
        for prefix in _REPLY_PREFIXES:
            if clean.lower().startswith(prefix):
                clean = clean[len(prefix):].strip()
    return f"[{ref}] {_capped(clean)}".strip()


def _capped(subject: str) -> str:
    """`subject` cut to MAX_SUBJECT_CHARS with an ellipsis: a 10 KB subject from a brief
    (SCENARIOS X5) makes no 10 KB header in any mail that quotes it."""
    if len(subject) > MAX_SUBJECT_CHARS:
        return subject[: MAX_SUBJECT_CHARS - 1].rstrip() + "…"
    return subject


def _is_html(name: str | None) -> bool:
    return bool(name) and str(name).endswith(".html.j2")


def genitive(name: str) -> str:
    """Danish genitive of a name: `IT-Projektrådet` -> `IT-Projektrådets`; a name ending in
    s, x or z takes an apostrophe (Retskrivningsordbogen, section 4)."""
    return f"{name}'" if name[-1:].lower() in ("s", "x", "z") else f"{name}s"


def oneline(text: object) -> str:
    """The text with every run of whitespace, line breaks included, as one space."""
    return " ".join(str(text).split())


def enumeration(items: Iterable[object], last: str = "og") -> str:
    """A list as a sentence writes it: "a, b og c" (`last` "and" in English); one item alone,
    two joined by `last` (Retskrivningsordbogen, section 56: no comma before "og")."""
    words = [str(item) for item in items]
    if len(words) < 3:
        return f" {last} ".join(words)
    return f"{', '.join(words[:-1])} {last} {words[-1]}"


class Renderer:
    """Templates by audience and purpose: `<language>/<name>.subject.j2`, `.txt.j2` and
    `.html.j2`, per language, with Danish as the fallback.

    Each template is read and compiled once per process, and whether a language has a
    template is decided once: a changed or added template takes effect when the process
    restarts (jinja2's auto_reload would stat every file on every mail)."""

    def __init__(self, folders: list[Path]) -> None:
        self.env = Environment(
            loader=FileSystemLoader([str(f) for f in folders]),
            undefined=StrictUndefined,
            autoescape=_is_html,
            keep_trailing_newline=True,
            auto_reload=False,
            cache_size=-1,  # never evict: the shipped set is about a hundred files
        )
        self.env.filters["genitive"] = genitive
        self.env.filters["oneline"] = oneline
        self.env.filters["enumeration"] = enumeration
        self._found: dict[str, bool] = {}

    def _exists(self, name: str) -> bool:
        found = self._found.get(name)
        if found is None:
            try:
                self.env.get_template(name)
                found = True
            except TemplateNotFound:
                found = False
            self._found[name] = found
        return found

    def render(self, language: str, name: str, context: Mapping[str, Any]) -> tuple[str, str]:
        """Returns (text, html) for `<language>/<name>.txt.j2` and `.html.j2`.
        Raises ConfigError when a template is missing."""
        language = self._language(language, name)
        return (self._render(f"{language}/{name}.txt.j2", context),
                self._render(f"{language}/{name}.html.j2", context))

    def render_mail(self, language: str, name: str, context: Mapping[str, Any]
                    ) -> tuple[str, str, str]:
        """(subject, text, html); the subject template's output on one line.
        Raises ConfigError when a template is missing."""
        text, html = self.render(language, name, context)
        subject = self._render(f"{self._language(language, name)}/{name}.subject.j2", context)
        return " ".join(subject.split()), text, html

    def render_one(self, language: str, template: str, context: Mapping[str, Any]) -> str:
        """One template, e.g. `agenda.docx.j2`, under `<language>/` (Danish as fallback).
        Raises ConfigError when it is missing."""
        if language != "da" and not self._exists(f"{language}/{template}"):
            language = "da"
        return self._render(f"{language}/{template}", context)

    def macros(self, language: str, template: str) -> Any:
        """The macros of `<language>/<template>` (Danish as fallback) as Python callables,
        each returning its text unescaped: for text that several formats share (the HTML
        template escapes it like any other value). Raises ConfigError when it is missing."""
        if language != "da" and not self._exists(f"{language}/{template}"):
            language = "da"
        try:
            return self.env.get_template(f"{language}/{template}").module
        except TemplateNotFound as err:
            raise ConfigError("templates", str(err), "template not found",
                              "restore it from the shipped templates/ folder") from err

    def _language(self, language: str, name: str) -> str:
        if language != "da" and not self._exists(f"{language}/{name}.txt.j2"):
            return "da"  # mail to staff (reviewers, the secretary) exists in Danish only
        return language

    def _render(self, template: str, context: Mapping[str, Any]) -> str:
        try:
            return self.env.get_template(template).render(context)
        except TemplateNotFound as err:
            raise ConfigError("templates", str(err), "template not found",
                              "restore it from the shipped templates/ folder") from err
        except UnicodeDecodeError as err:
            raise ConfigError("templates", template, "is not UTF-8 text",
                              "save the template as UTF-8") from err


def build_message(
    *,
    sender_name: str,
    sender_address: str,
    to: tuple[str, ...],
    subject: str,
    text: str,
    html: str,
    message_id: str,
    now: datetime,
    in_reply_to: str = "",
    references: tuple[str, ...] = (),
    auto_submitted: AutoSubmitted,
    language: str = "da",
    attachments: tuple[tuple[str, bytes, str], ...] = (),
    reply_to: str = "",
) -> bytes:
    """The whole MIME message as CRLF bytes, ready for the outbox and SMTP DATA: text + HTML
    alternative (RFC 2046 section 5.1.4), then attachments (multipart/mixed), with the
    headers every mail of the bot carries: `Auto-Submitted` (RFC 3834),
    `X-Auto-Response-Suppress` (Exchange), `Precedence`, our loop header and
    `Content-Language` (RFC 3282). `attachments` are (filename, payload, content type)
    triples; a text/*, multipart/* or message/* type (or none) is sent as
    application/octet-stream.

    Written directly rather than through EmailMessage, whose header registry parsed and
    refolded all 26 headers of every mail (most of the cost of queueing one): a header we
    write that is plain ASCII and fits on a line is written as it is; any other goes through
    the stdlib's registry (RFC 2047 encoded-words, RFC 5322 section 2.2.3 folding at 78),
    once per distinct value; the subject as _subject_header says. Message-ID, In-Reply-To
    and References are never folded inside an id (up to RFC 5322's 998: a folded Message-ID
    confuses some clients' threading). Attachments' base64 is encoded once per content
    (Base64Cache). Raises ValueError for a header value holding CR or LF (header
    injection) or a message id that is not one token."""
    subject = clean_header_text(subject)  # a tagged subject is cut before its tag
    head = [
        _header("From", display_address(sender_name, sender_address)),
        _header("To", ", ".join(to)),
        _subject_header(subject if subject.startswith("[") else _capped(subject)),
        _header("Reply-To", display_address(sender_name, reply_to)) if reply_to else "",
        _header("Date", format_datetime(now.astimezone(COPENHAGEN))),
        _ids_header("Message-ID", (message_id,)),
        _ids_header("In-Reply-To", (in_reply_to,)) if in_reply_to else "",
        _ids_header("References", references),
        _header("Auto-Submitted", auto_submitted),
        _header("X-Auto-Response-Suppress", "All"),
        _header("Precedence", "auto_reply"),
        _header(LOOP_HEADER, sender_address),
        _header("Content-Language", language),
        "MIME-Version: 1.0\r\n",
    ]
    # pieces joined once at the end: a 25 MB document is copied into the message once, not
    # once per level of nesting (issue #16: peak memory of a large mail)
    alternative = _multipart("alternative", [[_text_part(text, "plain")],
                                             [_text_part(html, "html")]])
    if attachments:
        body = _multipart("mixed", [alternative,
                                    *(_attachment_part(*a) for a in attachments)])
    else:
        body = alternative
    return b"".join(["".join(head).encode("ascii"), *body])


_MAX_LINE = 998  # RFC 5322 section 2.1.1: a line MUST be at most 998 characters
_TOKEN = re.compile(r"[a-z0-9!#$&^_.+-]{1,64}")  # RFC 6838 section 4.2 type and subtype names
# Headers are folded at 78 characters (RFC 5322 section 2.1.1, SHOULD), encoded-words at
# most 75 long (RFC 2047 section 2); Message-ID, In-Reply-To and References never inside an id.
_FOLD_POLICY = SMTP
_LONG_POLICY = SMTP.clone(max_line_length=_MAX_LINE)
_ADDRESS_HEADERS = frozenset({"from", "to", "cc", "reply-to", "sender"})


def _header(name: str, value: str) -> str:
    """`Name: value` CRLF-terminated; see build_message for when the registry folds it."""
    if "\r" in value or "\n" in value:
        raise ValueError(f"{name} may not contain CR or LF")
    if value.isascii() and "=?" not in value and len(name) + 2 + len(value) <= 78:
        return f"{name}: {value}\r\n"
    return _registry_folded(name, value)


@lru_cache(maxsize=2048)
def _registry_folded(name: str, value: str) -> str:
    """The stdlib's rendering of one header (headerregistry parse, RFC 2047 encoding of
    non-ASCII words, folding): what EmailMessage.as_bytes writes for it. Cached: the bot's
    own From and each case's subject recur in many mails."""
    header = _FOLD_POLICY.header_factory(name, value)
    folded = str(header.fold(policy=_FOLD_POLICY))
    if name.lower() in _ADDRESS_HEADERS and (folded.startswith(f"{name}:\r\n")
                                             or _addresses(name, folded)
                                             != _addresses(name, value)):
        # Python's parser (and mail-parser on it) reads a display name folded into two
        # encoded-words with a space inside it, and a header line should hold more than its
        # name: such a name stays whole, on a longer line (up to 998)
        folded = str(header.fold(policy=_LONG_POLICY))
    return folded


def _addresses(name: str, value: str) -> list[tuple[str, str]]:
    """(display name, address) pairs a reader gets from `value`, a header's value or the
    whole folded header line."""
    if value.startswith(f"{name}:"):
        value = "".join(value.partition(":")[2].lstrip(" ").splitlines())
    header = _FOLD_POLICY.header_factory(name, value)
    return [(a.display_name, a.addr_spec) for a in getattr(header, "addresses", ())]


def _subject_header(subject: str) -> str:
    """`Subject:` CRLF-terminated. ASCII text on one line (at most 998 characters, RFC 5322
    section 2.1.1; a subject is capped far below). Other text: its leading ASCII words as
    they are, the rest as UTF-8 Q encoded-words (RFC 2047 sections 4.2 and 5) of at most 75
    characters, one a line, folded at 78. Folding only between encoded-words keeps what
    readers see exact: whitespace between two encoded-words is not text (RFC 2047 section
    6.2), while mail-parser loses a folded space next to one (the stdlib's decode_header)."""
    if "\r" in subject or "\n" in subject:
        raise ValueError("Subject may not contain CR or LF")
    if subject.isascii() and "=?" not in subject and len(subject) <= _MAX_LINE - 9:
        return f"Subject: {subject}\r\n"
    words = subject.split(" ")
    plain = 0
    line = "Subject:"
    while (plain < len(words) - 1 and words[plain].isascii() and "=?" not in words[plain]
           and len(line) + 1 + len(words[plain]) <= 78 - 20):
        line += " " + words[plain]
        plain += 1
    lines, chunk = [], ""
    room = 78 - len(line) - 1
    for char in " ".join(words[plain:]):
        code = _q_encoded(char)
        if chunk and len(chunk) + len(code) > min(room, 75) - 12:
            lines.append(f"{line} =?utf-8?q?{chunk}?=")
            line, chunk, room = "", "", 77
        chunk += code
    lines.append(f"{line} =?utf-8?q?{chunk}?=")
    return "\r\n".join(lines) + "\r\n"


def _q_encoded(char: str) -> str:
    """One character in RFC 2047 Q encoding, limited to the characters section 5 (3) allows
    anywhere: letters, digits and !*+-/ as they are, space as _, any other byte as =XX."""
    if char == " ":
        return "_"
    if char.isascii() and (char.isalnum() or char in "!*+-/"):
        return char
    return "".join(f"={byte:02X}" for byte in char.encode("utf-8"))


def _ids_header(name: str, ids: tuple[str, ...]) -> str:
    """Message-ID / In-Reply-To / References (RFC 5322 section 3.6.4): ids as given, one
    line up to 998 characters, else folded between ids (never inside one); "" for none."""
    ids = tuple(i for i in ids if i)
    if not ids:
        return ""
    if any(not i.isascii() or "\r" in i or "\n" in i or " " in i for i in ids):
        raise ValueError(f"{name} holds an id that is not one ASCII token: {ids!r}")
    lines, line = [], f"{name}:"
    for i in ids:
        if len(line) + 1 + len(i) > _MAX_LINE and line != f"{name}:":
            lines.append(line)
            line = ""
        line += f" {i}"
    lines.append(line)
    return "\r\n".join(lines) + "\r\n"


def _text_part(text: str, subtype: str) -> bytes:
    """A text/plain or text/html part in UTF-8: lines up to 998 characters as 8bit (7bit
    when ASCII), as the stdlib's raw_data_manager chooses under policy.SMTP; a longer line
    makes the stdlib choose quoted-printable or base64 for us."""
    lines = text.encode("utf-8").splitlines()
    if max((len(line) for line in lines), default=0) > _MAX_LINE:
        part = MIMEPart(policy=_FOLD_POLICY)
        part.set_content(text, subtype=subtype)
        return part.as_bytes()
    cte = "7bit" if all(line.isascii() for line in lines) else "8bit"
    return (f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
            f"Content-Transfer-Encoding: {cte}\r\n\r\n").encode("ascii") + \
        b"\r\n".join(lines) + b"\r\n"


def _attachment_part(filename: str, payload: bytes, content_type: str) -> list[Piece]:
    maintype, _, subtype = content_type.lower().partition("/")
    if (maintype in ("text", "multipart", "message")
            or not _TOKEN.fullmatch(maintype) or not _TOKEN.fullmatch(subtype)):
        maintype, subtype = "application", "octet-stream"
    head = (f"Content-Type: {maintype}/{subtype}\r\n"
            "Content-Transfer-Encoding: base64\r\n"
            f"{_disposition(clean_header_text(filename))}\r\n")
    return [head.encode("ascii"), _BASE64.encoded(payload)]


def _disposition(filename: str) -> str:
    """`Content-Disposition: attachment; filename=…` as Message.set_param writes it: the
    name quoted (RFC 2045 section 5.1), a non-ASCII one in RFC 2231 form."""
    if filename.isascii():
        value = f'attachment; filename="{quote(filename)}"'
    else:
        value = f"attachment; filename*={encode_rfc2231(filename, 'utf-8', '')}"
    return _header("Content-Disposition", value)


Piece = bytes | bytearray  # a part of a message being built, joined once (build_message)
_BASE64_BLOCK = 57 * 1024  # bytes encoded at a time: 1,024 lines of 76 characters


def _base64_lines(payload: bytes) -> bytearray:
    """`payload` in base64, lines of 76 characters, each CRLF-terminated (RFC 2045 section
    6.8). Built a block at a time into one buffer: base64.encodebytes holds one object per
    line until its join (87 MB at the peak for an 18 MB document, issue #16)."""
    out = bytearray()
    view = memoryview(payload)
    for start in range(0, len(payload), _BASE64_BLOCK):
        flat = binascii.b2a_base64(view[start:start + _BASE64_BLOCK], newline=False)
        out += b"\r\n".join(flat[i:i + 76] for i in range(0, len(flat), 76))
        out += b"\r\n"
    return out


class Base64Cache:
    """Base64 bodies (RFC 2045 section 6.8: lines of 76 characters, CRLF) by the SHA-256 of
    their bytes, least recently used dropped first once they hold more than `max_bytes`
    of encoded text: one document goes to several mails (each role's request, its
    reminder, the request that supersedes it), and is encoded once. A body over
    `max_entry_bytes` (default a sixteenth of the cache) is encoded but not kept: one large
    document would push out the rest and stay in memory after its mail is queued."""

    def __init__(self, max_bytes: int, max_entry_bytes: int | None = None) -> None:
        self.max_bytes = max_bytes
        self.max_entry_bytes = max_bytes // 16 if max_entry_bytes is None else max_entry_bytes
        self.held = 0
        self._bodies: OrderedDict[bytes, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def encoded(self, payload: bytes) -> Piece:
        """`payload` in base64, each line CRLF-terminated."""
        key = hashlib.sha256(payload).digest()
        with self._lock:  # the web UI may queue mail from another thread than the sweep
            body = self._bodies.get(key)
            if body is not None:
                self._bodies.move_to_end(key)
                self.hits += 1
                return body
            self.misses += 1
        encoded = _base64_lines(payload)
        if len(encoded) > self.max_entry_bytes:
            return encoded
        body = bytes(encoded)  # kept: immutable
        with self._lock:
            if key not in self._bodies:
                self._bodies[key] = body
                self.held += len(body)
            while self.held > self.max_bytes:
                self.held -= len(self._bodies.popitem(last=False)[1])
        return body


# 64 MB of encoded text: a few hundred typical briefs' documents, bounded whatever comes
_BASE64 = Base64Cache(64 * 1024 * 1024)


def _multipart(subtype: str, parts: list[list[Piece]]) -> list[Piece]:
    """multipart/`subtype` (RFC 2046 section 5.1.1) of the given parts (each a list of
    pieces), with a boundary (the stdlib's form) that occurs in none of them; the pieces of
    the whole, to be joined once by the caller."""
    while True:
        boundary = f"==============={secrets.randbelow(10 ** 19):019d}=="
        marker = b"--" + boundary.encode("ascii")
        if not any(marker in piece for part in parts for piece in part):
            break
    head = f'Content-Type: multipart/{subtype}; boundary="{boundary}"\r\n\r\n'
    if len(head) > 78 + 4:  # RFC 5322 section 2.1.1, folded where the stdlib folds it
        head = head.replace("; ", ";\r\n ", 1)
    pieces: list[Piece] = [head.encode("ascii")]
    for part in parts:
        pieces += [marker + b"\r\n", *part, b"\r\n"]
    return [*pieces, marker + b"--\r\n"]


__all__ = ["Outgoing", "Renderer", "build_message", "genitive", "tagged_subject"]
