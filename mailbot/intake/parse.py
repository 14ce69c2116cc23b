"""Raw bytes -> a typed Inbound. mail-parser does the MIME work; nothing of its dicts leaks out."""

from __future__ import annotations

import binascii
import codecs
import hashlib
import html
import io
import mimetypes
import re
import unicodedata
import zipfile
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import Message
from email.parser import BytesFeedParser
from email.utils import getaddresses, parseaddr

import mailparser

from mailbot.errors import PermanentError
from mailbot.intake.charsets import decode_header_text, decode_raw_header, decode_text
from mailbot.intake.headerblock import repair_header_block
from mailbot.intake.returned import Returned, returned_message
from mailbot.intake.smime import SIGNED
from mailbot.intake.smime import unwrap as unwrap_smime
from mailbot.intake.tnef import is_tnef
from mailbot.intake.tnef import unpack as unpack_tnef
from mailbot.redact import redact_cpr

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
# an address anywhere in a text (display names, free text): what redaction and erasure replace
# (mailbot.privacy), the loose shape mail clients write, not RFC 5322's whole grammar
ADDRESS_PATTERN = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_SIGNATURE_TYPES = frozenset({"application/pkcs7-signature", "application/x-pkcs7-signature",
                              "application/pgp-signature"})
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
    # "signed": read from inside an opaque S/MIME signature; "encrypted": S/MIME that only
    # the recipient's private key opens, so nothing of it can be read (mailbot.intake.smime)
    smime: str = ""
    # the headers of a message the mail returns (a bounce's returned message): intake/returned
    returned: Returned | None = None

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
        """Attachments that can be documents: inline images (logos, screenshots) and the
        signature of a signed mail (smime.p7s, RFC 8551 section 3.5.3) cannot."""
        return tuple(
            a for a in self.attachments
            if not (a.inline and a.content_type.startswith("image/"))
            and a.content_type not in _SIGNATURE_TYPES
        )


def clean_header_text(value: str) -> str:
    """Decoded header text safe to reuse in an outgoing header (no CR/LF/NUL, no bidi tricks)."""
    return " ".join(_CONTROL.sub(" ", value).split())


def _header_end(raw: bytes) -> tuple[int, int]:
    """(where the header block ends, where the body starts) in `raw`: at the first empty
    line, CRLF before LF before CR; (len(raw), len(raw)) when there is none."""
    for sep in (b"\r\n\r\n", b"\n\n", b"\r\r"):
        at = raw.find(sep)
        if at >= 0:
            return at, at + len(sep)
    return len(raw), len(raw)


def split_header_block(raw: bytes) -> tuple[bytes, bytes]:
    """(header block, body) of a mail, both copies: use header_block for the header alone."""
    head_end, body_start = _header_end(raw)
    return raw[:head_end], raw[body_start:]


def header_block(raw: bytes) -> bytes:
    """The header block of a mail, without copying its body (a 25 MB mail is read with
    a peak of a few times its size: tests/benchmarks/bench_memory.py)."""
    return raw[:_header_end(raw)[0]]


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
    head = header_block(raw)
    match = re.search(rb"^message-id:[ \t]*(.*(?:\r?\n[ \t].*)*)", head, re.I | re.M)
    if not match:
        return ""
    found = re.search(rb"<[^<>\s]+>", match.group(1))
    return found.group(0).decode("ascii", "replace") if found else ""


def strict_address(value: str) -> str:
    """One unambiguous ASCII address, lower-cased, or "" (SCENARIOS A8: two addresses, groups,
    CVE-2023-27043 shapes, a quoted local part holding an address; A10: any non-ASCII
    character in the address, so no Unicode look-alike or case folding can match).

    Outlook writes `"anna@kommune.dk" <anna@kommune.dk>`, so a display name may repeat the
    address; any second, different address makes the header ambiguous.
    """
    if not value or ";" in value:
        return ""
    seen = {m.lower() for m in ADDRESS_PATTERN.findall(value)}
    if len(seen) != 1:
        return ""
    # "Sørensen, Åse <aase@kommune.dk>" (an unquoted comma in a raw display name) splits into
    # a bare word and one address: only parts with an @ are addresses.
    pairs = [pair for pair in getaddresses([value]) if "@" in pair[1]]
    if len(pairs) != 1:
        return ""
    written = pairs[0][1].strip()
    if not written.isascii():
        # a look-alike (Cyrillic "а", fullwidth "ｋ") or a character that str.lower() turns
        # into ASCII (the Kelvin sign "K" becomes "k"): never equal to an address we know
        # (SCENARIOS A10); addresses are compared as ASCII only
        return ""
    address = written.lower()
    if address not in seen:
        return ""
    return address


def html_to_text(markup: str) -> str:
    """Readable text from HTML: paragraphs and rows become lines, table cells are joined
    with " | " so that a question column and its answer column stay on one line, and the
    lines inside a <blockquote> (a quoted mail) start with ">" as in a plain-text reply."""
    markup = re.sub(r"(?is)<(script|style|head|title)\b.*?</\1\s*>", " ", markup)
    markup = re.sub(r"(?is)<!--.*?-->", " ", markup)
    markup = re.sub(r"(?i)<br\s*/?>", "\n", markup)
    markup = re.sub(r"(?i)<blockquote\b[^>]*>", f"\n{_QUOTE_IN}", markup)
    markup = re.sub(r"(?i)</blockquote\s*>", f"{_QUOTE_OUT}\n", markup)
    # a paragraph ends a paragraph: Outlook writes each one as <p class=MsoNormal>, often
    # without an empty spacer paragraph between them ("Hej" must not run into the answer)
    markup = re.sub(r"(?i)</p\s*>", "\n\n", markup)
    markup = re.sub(r"(?i)</(div|tr|li|h[1-6]|table)\s*>", "\n", markup)
    markup = re.sub(r"(?i)<(td|th)\b[^>]*>", "\x1f", markup)
    markup = re.sub(r"(?i)<li\b[^>]*>", "\n• ", markup)
    markup = re.sub(r"(?s)<[^>]+>", "", markup)
    text = html.unescape(markup).replace("\xa0", " ")
    lines = []
    depth = 0
    for line in text.splitlines():
        depth += line.count(_QUOTE_IN)
        line = line.replace(_QUOTE_IN, "")
        cells = [" ".join(cell.split()) for cell in line.replace(_QUOTE_OUT, "").split("\x1f")]
        joined = " | ".join(cell for cell in cells if cell)
        lines.append(("> " * depth + joined) if depth and joined else joined)
        depth = max(0, depth - line.count(_QUOTE_OUT))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


_QUOTE_IN, _QUOTE_OUT = "\ue000", "\ue001"  # <blockquote>, </blockquote> (private-use: never split)


def _attachments(message: Message) -> tuple[Attachment, ...]:
    """Every attachment, in the order of the MIME tree: named parts, parts without a name
    (kept under a stable name from their type, never dropped), and the files inside an
    Outlook winmail.dat in its place."""
    out: list[Attachment] = []
    nameless = 0
    for part in message.walk():
        disposition = (part.get_content_disposition() or "").lower()
        if part.is_multipart() and disposition != "attachment":
            continue
        name = display_name(_part_filename(part))
        if not name and not part.is_multipart() and disposition != "attachment" \
                and part.get_content_type() in ("text/plain", "text/html"):
            continue  # body text (read by mail-parser)
        payload = _part_payload(part)
        content_type = part.get_content_type().lower()
        inline = disposition == "inline" or (bool(part.get("content-id"))
                                             and disposition != "attachment")
        if is_tnef(payload):
            files, problem = unpack_tnef(payload)
            if not problem:
                for file in files:
                    shown = display_name(file.filename)
                    if not shown:
                        nameless += 1
                    out.append(Attachment(
                        shown or placeholder_name(nameless, "", file.payload),
                        _type_of(shown), file.payload, False))
                continue
        if not name:
            nameless += 1
            name = placeholder_name(nameless, content_type, payload)
        out.append(Attachment(name, content_type, payload, inline))
    return tuple(out)


_RAW_NAME = re.compile(r"""(?:^|;)\s*(?:filename|name)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^";\s]+))""",
                       re.IGNORECASE)


def _part_filename(part: Message) -> str:
    """The part's file name (RFC 2231 `filename*=`, RFC 2047 encoded-words, or raw 8-bit
    bytes decoded by what decodes cleanly: mailbot.intake.charsets), "" when it has none."""
    raw = _raw_8bit_filename(part)
    if raw:
        return clean_header_text(decode_header_text(raw))
    try:
        name = part.get_filename() or ""
    except (ValueError, LookupError, UnicodeError, TypeError):
        name = ""
    return clean_header_text(decode_header_text(str(name)))


def _raw_8bit_filename(part: Message) -> str:
    """A `filename="…"` or `name="…"` written as raw 8-bit bytes (no RFC 2231 or 2047
    encoding), as the email package keeps them (surrogate escapes); "" when there is none.
    `get_filename` would turn those bytes into U+FFFD, losing the letters for good."""
    for header, value in part.raw_items():
        if header.lower() not in ("content-disposition", "content-type"):
            continue
        for match in _RAW_NAME.finditer(str(value)):
            written = match.group(1) if match.group(1) is not None else match.group(2)
            if any("\udc80" <= c <= "\udcff" for c in written):
                return re.sub(r"\\(.)", r"\1", written)
    return ""


def _part_payload(part: Message) -> bytes:
    """The decoded bytes of a part; an attached message or container as its MIME text."""
    if part.is_multipart():
        try:
            return b"".join(m.as_bytes() for m in part.get_payload()
                            if isinstance(m, Message))
        except Exception:  # as_bytes re-encodes with the declared charsets and may refuse
            return b""
    decoded = _base64_payload(part)
    if decoded is not None:
        return decoded
    try:
        data = part.get_payload(decode=True)
    except Exception:
        return b""
    return data if isinstance(data, bytes) else b""


def _base64_payload(part: Message) -> bytes | None:
    """A base64 part's bytes decoded straight from the parsed text, or None to leave it to
    Message.get_payload(decode=True). That call encodes the text, splits it into lines and
    joins them before decoding: 112 MB at its peak for an 18 MB attachment (issue #16).
    binascii.a2b_base64 skips the line breaks itself and is what the stdlib decodes with
    (email._encoded_words.decode_b); text that is not ASCII or needs the stdlib's padding
    repair raises here and takes the stdlib's way, with its defects."""
    if str(part.get("content-transfer-encoding", "")).lower() != "base64":
        return None
    encoded = part.get_payload()
    if not isinstance(encoded, str) or not encoded.isascii():
        return None
    try:
        return binascii.a2b_base64(encoded)
    except (binascii.Error, ValueError):
        return None


_EXTENSIONS = {
    "application/pdf": "pdf", "application/msword": "doc", "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "application/vnd.oasis.opendocument.text": "odt",
    "application/vnd.oasis.opendocument.spreadsheet": "ods",
    "application/zip": "zip", "application/x-zip-compressed": "zip",
    "application/rtf": "rtf", "text/rtf": "rtf", "text/plain": "txt", "text/html": "html",
    "text/csv": "csv", "text/calendar": "ics", "image/png": "png", "image/jpeg": "jpg",
    "image/gif": "gif", "message/rfc822": "eml", "application/ms-tnef": "dat",
    "application/vnd.ms-tnef": "dat", "application/vnd.ms-outlook": "msg",
}
_OFFICE_MEMBERS = (("word/document.xml", "docx"), ("xl/workbook.xml", "xlsx"),
                   ("ppt/presentation.xml", "pptx"))
PLACEHOLDER_STEM = "vedhæftet"


MAX_NAME_CHARS = 120
_UNSAFE_IN_NAME = re.compile(r"[\x00-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def display_name(name: str) -> str:
    """An attachment's name as mailbot shows and writes it (SCENARIOS F1, F2): the last path
    component only (no "/" or "\\", so no "../../etc/cron.d/x" in a review mail or as a ZIP
    member: zip-slip), without control characters, NUL or bidirectional overrides (a
    "fdp.exe" shown as "exe.pdf"), without leading dots, at most MAX_NAME_CHARS characters
    with its extension kept, CPR numbers as XXXXXX-XXXX (SCENARIOS G1); "" when nothing is
    left (the caller names it like a nameless part). The raw mail keeps the original bytes."""
    name = _UNSAFE_IN_NAME.sub("", name)
    name = re.split(r"[/\\]", name)[-1]
    # redacted before the cut, which could leave half a CPR number that no longer matches
    name = redact_cpr(" ".join(name.split()).lstrip(". "))
    if len(name) <= MAX_NAME_CHARS:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext) > 10:
        return name[:MAX_NAME_CHARS].rstrip()
    return f"{stem[:MAX_NAME_CHARS - len(ext) - 1].rstrip()}.{ext}"


def placeholder_name(number: int, content_type: str, payload: bytes) -> str:
    """A stable name for the `number`th attachment without a name ("vedhæftet-1.pdf"): the
    extension from the bytes where they tell (PDF, Office files, ZIP), else from the declared
    type, else "bin". The same mail always gives the same names."""
    return f"{PLACEHOLDER_STEM}-{number}.{_extension_of(content_type, payload)}"


def _extension_of(content_type: str, payload: bytes) -> str:
    head = payload[:1024]
    if b"%PDF-" in head:
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        return _zip_extension(payload)
    declared = _EXTENSIONS.get(content_type.lower())
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return declared if declared in ("doc", "xls", "msg") else "doc"
    return declared or "bin"


def _zip_extension(payload: bytes) -> str:
    """docx, xlsx, pptx, odt/ods or zip, from the names in the ZIP's directory."""
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            names = set(archive.namelist()[:MAX_MIME_PARTS])
            mimetype = archive.read("mimetype")[:100] if "mimetype" in names else b""
    except (zipfile.BadZipFile, ValueError, OSError, RuntimeError, NotImplementedError):
        return "zip"
    for member, extension in _OFFICE_MEMBERS:
        if member in names:
            return extension
    if mimetype.startswith(b"application/vnd.oasis.opendocument."):
        return "ods" if mimetype.endswith(b"spreadsheet") else "odt"
    return "zip"


def _type_of(filename: str) -> str:
    """A content type for a file from a TNEF stream (which carries none), by its name."""
    guessed, _ = mimetypes.guess_type(filename or "x.bin", strict=False)
    return guessed or "application/octet-stream"


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
    charset = message.get_param("charset")
    return decode_text(payload, charset if isinstance(charset, str) else None).strip()


def _headers(parsed: mailparser.MailParser) -> dict[str, tuple[str, ...]]:
    """Every header as written (encoded-words kept), raw 8-bit bytes decoded, not U+FFFD."""
    out: dict[str, list[str]] = {}
    for name, value in parsed.message.raw_items():
        out.setdefault(name.lower(), []).append(clean_header_text(decode_raw_header(str(value))))
    return {k: tuple(v) for k, v in out.items()}


def _raw_values(parsed: mailparser.MailParser, name: str) -> list[str]:
    return [str(v) for k, v in parsed.message.raw_items() if k.lower() == name]


_NAME_BEFORE_ANGLE = re.compile(r"^\s*(.*?)\s*<[^<>]*>\s*$", re.S)


def sender(from_values: list[str]) -> tuple[str, str]:
    """(address, display name) of the one From header; ("", "") when it is missing, repeated
    or ambiguous. The address is parsed BEFORE encoded-words are decoded (RFC 2047 section 5:
    an encoded-word is never part of an address), so an encoded name holding a comma, as
    Outlook writes "=?utf-8?Q?S=C3=B8rensen=2C_=C3=85se?=", is a name and not a second
    address; a header that is one encoded-word throughout is read decoded as before."""
    if len(from_values) != 1:
        return "", ""
    raw = clean_header_text(decode_raw_header(from_values[0]))
    address = strict_address(raw)
    if not address:
        decoded = clean_header_text(decode_header_text(raw))
        address = strict_address(decoded)
        return (address, clean_header_text(parseaddr(decoded)[0])) if address else ("", "")
    angle = _NAME_BEFORE_ANGLE.match(raw)
    name = angle.group(1) if angle else parseaddr(raw)[0]
    if len(name) > 1 and name[0] == name[-1] == '"':
        name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return address, clean_header_text(decode_header_text(name))


def _subject(parsed: mailparser.MailParser) -> str:
    """The Subject decoded: raw 8-bit bytes and encoded-words by what decodes cleanly."""
    values = _raw_values(parsed, "subject")
    return clean_header_text(decode_header_text(values[0])) if values else ""


class _Parser(mailparser.MailParser):  # type: ignore[misc]
    """mail-parser with the body charset rules of mailbot.intake.charsets."""

    def _decode_body_payload(self, part: Message, charset: str, part_index: int) -> str:
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes) and any(byte > 0x7F for byte in payload):
            return unicodedata.normalize("NFC", decode_text(payload, part.get_content_charset()))
        return str(super()._decode_body_payload(part, charset, part_index))


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


# email.message_from_bytes (what mail-parser's from_bytes calls) decodes the whole mail into
# one str and reads it through a StringIO, which holds four bytes a character: 125 MB for a
# 25 MB mail. Fed in pieces, the parser holds the pieces' lines instead.
_FEED_BYTES = 1 << 16


def _message(raw: bytes) -> Message:
    """`raw` parsed as email.message_from_bytes parses it (compat32 policy, Message class,
    the same feed parser), fed _FEED_BYTES at a time."""
    parser = BytesFeedParser()
    for start in range(0, len(raw), _FEED_BYTES):
        parser.feed(raw[start:start + _FEED_BYTES])
    message: Message = parser.close()
    return message


def parse(raw: bytes) -> Inbound:
    """Parse a stored mail. PermanentError when it is not a mail at all."""
    head_bytes = _header_end(raw)[0]
    if head_bytes > MAX_HEADER_BYTES:
        raise PermanentError(f"header block of {head_bytes} bytes exceeds {MAX_HEADER_BYTES}")
    structure_problem = mime_structure_problem(raw)
    if structure_problem:
        raise PermanentError(structure_problem)
    raw, smime, smime_problem = _without_smime(raw)
    try:
        parsed = _Parser(_message(repair_header_block(raw)))
    except Exception as err:  # mail-parser raises a variety of types on broken input
        raise PermanentError(f"mail-parser failed: {type(err).__name__}: {err}") from err
    headers = _headers(parsed)
    if not headers or not ({"from", "message-id", "subject", "date"} & headers.keys()):
        raise PermanentError("no mail header found (From, Subject, Date and Message-ID all absent)")
    from_address, from_name = sender(_raw_values(parsed, "from"))
    html_text = html_to_text("\n".join(parsed.text_html)) if parsed.text_html else ""
    text = "\n".join(parsed.text_plain).strip() or html_text or unsplit_body(parsed)
    return Inbound(
        message_id=header_message_id(raw),
        from_address=from_address,
        from_name=from_name,
        to=tuple(a.lower() for _, a in parsed.to if a),
        cc=tuple(a.lower() for _, a in getattr(parsed, "cc", []) or [] if a),
        subject=_subject(parsed),
        text=text,
        html_text=html_text,
        headers=headers,
        attachments=_attachments(parsed.message),
        content_type=parsed.message.get_content_type(),
        defects=tuple(str(d) for d in parsed.defects_categories)
        + ((smime_problem,) if smime_problem else ()),
        smime=smime,
        returned=returned_message(parsed.message),
    )


def _without_smime(raw: bytes) -> tuple[bytes, str, str]:
    """The mail inside an opaque S/MIME signature (RFC 8551 section 3.5.2), its S/MIME state
    and why a layer was left as it came; the inner mail meets the same MIME caps."""
    unwrapped = unwrap_smime(raw)
    if unwrapped.state == SIGNED:
        problem = mime_structure_problem(unwrapped.raw)
        if problem:
            raise PermanentError(f"inside the S/MIME signature: {problem}")
    return unwrapped.raw, unwrapped.state, unwrapped.problem


def display_address(name: str, address: str) -> str:
    """A From/To header value that survives quotes, commas and non-ASCII (SCENARIOS X2)."""
    local, _, domain = address.partition("@")
    return str(Address(display_name=clean_header_text(name), username=local, domain=domain))
