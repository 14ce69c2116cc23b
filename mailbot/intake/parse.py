"""Raw bytes -> a typed Inbound. mail-parser does the MIME work; nothing of its dicts leaks out."""

from __future__ import annotations

import base64
import codecs
import hashlib
import html
import re
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.headerregistry import Address
from email.utils import getaddresses, parseaddr

import mailparser

from mailbot.errors import PermanentError

MAX_HEADER_BYTES = 256 * 1024
# MIME structure caps (SCENARIOS P3): a brief with its attachments has a few dozen parts; a
# 3,000-part nested message/rfc822 chain costs seconds and memory in any parser. Counted on the
# raw bytes before mail-parser sees them.
MAX_MIME_PARTS = 500
MAX_NESTED_MESSAGES = 10
_PART_HEADER = re.compile(rb"^content-type:", re.IGNORECASE | re.MULTILINE)
_NESTED_MESSAGE = re.compile(rb"^content-type:[ \t]*message/rfc822",
                             re.IGNORECASE | re.MULTILINE)
# Trace headers differ between two deliveries of the same mail (To + Cc, a re-send by the MTA).
_TRACE_HEADERS = frozenset(
    {"received", "return-path", "delivered-to", "x-original-to", "x-delivered-to",
     "authentication-results", "arc-seal", "arc-message-signature",
     "arc-authentication-results", "x-ms-exchange-organization-authas"}
)
_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069]")


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    payload: bytes
    inline: bool

    @property
    def size(self) -> int:
        return len(self.payload)


@dataclass(frozen=True)
class Inbound:
    """One inbound mail, as every later stage sees it."""

    message_id: str
    from_address: str  # lower-cased; "" when From is missing or ambiguous
    from_name: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    subject: str  # decoded, control characters removed
    text: str  # text/plain, or text/html reduced to text
    html_text: str  # text/html reduced to text ("" without an HTML part)
    headers: dict[str, tuple[str, ...]]  # lower-cased names
    attachments: tuple[Attachment, ...]
    content_type: str
    defects: tuple[str, ...] = field(default=())

    def header(self, name: str) -> str:
        values = self.headers.get(name.lower(), ())
        return values[0] if values else ""

    @property
    def in_reply_to(self) -> tuple[str, ...]:
        """References in order, then In-Reply-To (the nearest parent) last."""
        ids = " ".join(self.headers.get("references", ())) + " " + self.header("in-reply-to")
        return tuple(re.findall(r"<[^<>\s]+>", ids))

    @property
    def documents(self) -> tuple[Attachment, ...]:
        """Attachments that can be documents: inline images (logos, screenshots) cannot."""
        return tuple(
            a for a in self.attachments
            if not (a.inline and a.content_type.startswith("image/"))
        )


def clean_header_text(value: str) -> str:
    """Decoded header text safe to reuse in an outgoing header (no CR/LF/NUL, no bidi tricks)."""
    return " ".join(_CONTROL.sub(" ", value).split())


def split_header_block(raw: bytes) -> tuple[bytes, bytes]:
    for sep in (b"\r\n\r\n", b"\n\n", b"\r\r"):
        head, found, body = raw.partition(sep)
        if found:
            return head, body
    return raw, b""


def content_sha256(raw: bytes) -> str:
    """Hash of the mail without its trace headers: equal for two deliveries of one mail."""
    head, body = split_header_block(raw)
    kept: list[bytes] = []
    skipping = False
    for line in re.split(rb"\r?\n", head):
        if line[:1] in (b" ", b"\t"):
            if not skipping:
                kept.append(line.strip())
            continue
        name = line.split(b":", 1)[0].strip().lower().decode("ascii", "replace")
        skipping = name in _TRACE_HEADERS
        if not skipping:
            kept.append(line.strip())
    digest = hashlib.sha256(b"\n".join(kept))
    digest.update(b"\x00")
    digest.update(body.replace(b"\r\n", b"\n"))
    return digest.hexdigest()


def msgid_hash(message_id: str, raw: bytes) -> str:
    """Key for de-duplication; a mail without Message-ID is keyed by its bytes (R6)."""
    key = message_id.strip().lower() or "sha256:" + hashlib.sha256(raw).hexdigest()
    return hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()


def header_message_id(raw: bytes) -> str:
    """The Message-ID read from the header block alone (cheap, for the ledger)."""
    head, _ = split_header_block(raw)
    match = re.search(rb"^message-id:[ \t]*(.*(?:\r?\n[ \t].*)*)", head, re.I | re.M)
    if not match:
        return ""
    found = re.search(rb"<[^<>\s]+>", match.group(1))
    return found.group(0).decode("ascii", "replace") if found else ""


def strict_address(value: str) -> str:
    """One unambiguous address or "" (SCENARIOS A8: two addresses, groups, CVE-2023-27043).

    Outlook writes `"anna@kommune.dk" <anna@kommune.dk>`, so a display name may repeat the
    address; any second, different address makes the header ambiguous.
    """
    if not value or ";" in value:
        return ""
    seen = {m.lower() for m in _ADDRESS.findall(value)}
    if len(seen) != 1:
        return ""
    pairs = getaddresses([value])
    if len(pairs) != 1:
        return ""
    address = pairs[0][1].strip().lower()
    if address not in seen:
        return ""
    return address


def html_to_text(markup: str) -> str:
    """Readable text from HTML: paragraphs and rows become lines, table cells are joined
    with " | " so that a question column and its answer column stay on one line."""
    markup = re.sub(r"(?is)<(script|style|head|title)\b.*?</\1\s*>", " ", markup)
    markup = re.sub(r"(?is)<!--.*?-->", " ", markup)
    markup = re.sub(r"(?i)<br\s*/?>", "\n", markup)
    markup = re.sub(r"(?i)</(p|div|tr|li|h[1-6]|table|blockquote)\s*>", "\n", markup)
    markup = re.sub(r"(?i)<(td|th)\b[^>]*>", "\x1f", markup)
    markup = re.sub(r"(?i)<li\b[^>]*>", "\n• ", markup)
    markup = re.sub(r"(?s)<[^>]+>", "", markup)
    text = html.unescape(markup).replace("\xa0", " ")
    lines = []
    for line in text.splitlines():
        cells = [" ".join(cell.split()) for cell in line.split("\x1f")]
        lines.append(" | ".join(cell for cell in cells if cell))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _attachments(parsed: mailparser.MailParser) -> tuple[Attachment, ...]:
    out: list[Attachment] = []
    for item in parsed.attachments:
        payload_text = item.get("payload") or ""
        if item.get("binary"):
            try:
                payload = base64.b64decode(payload_text)
            except (ValueError, TypeError):
                payload = b""
        else:
            payload = str(payload_text).encode(codec(item.get("charset")), "replace")
        disposition = str(item.get("content-disposition") or "").lower()
        inline = disposition.startswith("inline") or (
            bool(item.get("content-id")) and not disposition.startswith("attachment")
        )
        out.append(Attachment(
            filename=clean_header_text(str(item.get("filename") or "unnamed")),
            content_type=str(item.get("mail_content_type") or "application/octet-stream").lower(),
            payload=payload,
            inline=inline,
        ))
    return tuple(out)


def codec(charset: object) -> str:
    """A codec Python knows for a declared charset: the charset itself, else UTF-8 (an
    unknown name such as `x-unknown` must not stop the mail: SCENARIOS P5)."""
    name = str(charset or "").strip() or "utf-8"
    try:
        codecs.lookup(name)
    except (LookupError, ValueError):
        return "utf-8"
    return name


def unsplit_body(parsed: mailparser.MailParser) -> str:
    """The body of a mail that declares multipart/* but has no boundary in it (missing,
    wrong or never started: SCENARIOS P4). The email parser then keeps the whole body as
    one payload and mail-parser finds no part at all; read it as text so nothing is
    silently lost ("" for any other mail)."""
    message = parsed.message
    if message.get_content_maintype() != "multipart" or message.is_multipart():
        return ""
    payload = message.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    return payload.decode(codec(message.get_param("charset")), "replace").strip()


def _headers(parsed: mailparser.MailParser) -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {}
    for name, value in parsed.message.items():
        out.setdefault(name.lower(), []).append(clean_header_text(str(value)))
    return {k: tuple(v) for k, v in out.items()}


def _decoded_header(values: list[object]) -> str:
    """A header that must occur once (From): "" when repeated, else its decoded text."""
    if len(values) != 1:
        return ""
    try:
        return clean_header_text(str(make_header(decode_header(str(values[0])))))
    except (ValueError, LookupError, UnicodeError):
        return clean_header_text(str(values[0]))


def mime_structure_problem(raw: bytes) -> str:
    """Why the mail's MIME tree is too large to parse ("" when it is not): more than
    MAX_MIME_PARTS parts or more than MAX_NESTED_MESSAGES enclosed messages, counted from the
    Content-Type headers in the raw bytes (a cheap upper bound: no parser runs)."""
    parts = len(_PART_HEADER.findall(raw))
    if parts > MAX_MIME_PARTS:
        return f"MIME tree of {parts} parts exceeds {MAX_MIME_PARTS}"
    nested = len(_NESTED_MESSAGE.findall(raw))
    if nested > MAX_NESTED_MESSAGES:
        return f"{nested} enclosed messages exceed {MAX_NESTED_MESSAGES}"
    return ""


def parse(raw: bytes) -> Inbound:
    """Parse a stored mail. PermanentError when it is not a mail at all."""
    head, _ = split_header_block(raw)
    if len(head) > MAX_HEADER_BYTES:
        raise PermanentError(f"header block of {len(head)} bytes exceeds {MAX_HEADER_BYTES}")
    structure_problem = mime_structure_problem(raw)
    if structure_problem:
        raise PermanentError(structure_problem)
    try:
        parsed = mailparser.parse_from_bytes(raw)
    except Exception as err:  # mail-parser raises a variety of types on broken input
        raise PermanentError(f"mail-parser failed: {type(err).__name__}: {err}") from err
    headers = _headers(parsed)
    if not headers or not ({"from", "message-id", "subject", "date"} & headers.keys()):
        raise PermanentError("no mail header found (From, Subject, Date and Message-ID all absent)")
    from_header = _decoded_header(parsed.message.get_all("from") or [])
    from_address = strict_address(from_header)
    from_name = clean_header_text(parseaddr(from_header)[0]) if from_address else ""
    html_text = html_to_text("\n".join(parsed.text_html)) if parsed.text_html else ""
    text = "\n".join(parsed.text_plain).strip() or html_text or unsplit_body(parsed)
    return Inbound(
        message_id=header_message_id(raw),
        from_address=from_address,
        from_name=from_name,
        to=tuple(a.lower() for _, a in parsed.to if a),
        cc=tuple(a.lower() for _, a in getattr(parsed, "cc", []) or [] if a),
        subject=clean_header_text(parsed.subject or ""),
        text=text,
        html_text=html_text,
        headers=headers,
        attachments=_attachments(parsed),
        content_type=parsed.message.get_content_type(),
        defects=tuple(str(d) for d in parsed.defects_categories),
    )


def display_address(name: str, address: str) -> str:
    """A From/To header value that survives quotes, commas and non-ASCII (SCENARIOS X2)."""
    local, _, domain = address.partition("@")
    return str(Address(display_name=clean_header_text(name), username=local, domain=domain))
