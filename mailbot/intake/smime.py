"""Opaque S/MIME: a signed mail read as the mail inside it; an encrypted one recognised.

RFC 8551 (S/MIME 4.0) section 3.5.2: an opaque-signed mail is one `application/pkcs7-mime;
smime-type=signed-data` part (`smime.p7m`; older agents write `application/x-pkcs7-mime`,
and some `application/octet-stream` with a `.p7m` name, section 3.2.1) whose CMS SignedData
(RFC 5652 section 5) carries the whole signed MIME entity in its encapsulated content. No key
is needed to read it: the signature is not checked (the mail is trusted no more than any
other), the entity is taken out and read under the outer mail's headers.

An encrypted mail (smime-type enveloped-data or authEnveloped-data, RFC 8551 section 3.3 and
RFC 5083) cannot be read without the recipient's private key, which mailbot does not hold: it
is recognised, so that the sender is told (mailbot.pipeline), and no case is opened.

Hostile input: at most MAX_SMIME_DEPTH layers are unwrapped (signed inside signed), and an
unwrapped mail is checked against the MIME caps of mailbot.intake.parse again by the caller.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message

MAX_SMIME_DEPTH = 3
PKCS7_TYPES = frozenset({"application/pkcs7-mime", "application/x-pkcs7-mime"})
SIGNED, ENCRYPTED = "signed", "encrypted"
_ENCRYPTED_CMS = frozenset({"enveloped_data", "authenticated_enveloped_data",
                            "1.2.840.113549.1.9.16.1.23"})
_ENCRYPTED_PARAMS = frozenset({"enveloped-data", "authenveloped-data"})
_DROPPED = frozenset({"content-type", "content-transfer-encoding", "content-disposition",
                      "content-description", "content-id", "content-length"})
_HEADER_LINE = re.compile(rb"^[!-9;-~]+:")


@dataclass(frozen=True)
class Unwrapped:
    raw: bytes  # the mail to read: the inner mail under the outer headers, or as it came
    state: str  # "" (not S/MIME), "signed" or "encrypted"
    problem: str = ""  # why an S/MIME layer was left as it is


def unwrap(raw: bytes) -> Unwrapped:
    """The mail to read in place of `raw`, layer by layer."""
    from mailbot.intake.parse import split_header_block

    state = ""
    for _ in range(MAX_SMIME_DEPTH):
        head, body = split_header_block(raw)
        outer = message_from_bytes(head + b"\r\n\r\n")
        if not is_opaque_smime(outer):
            return Unwrapped(raw, state)
        if str(outer.get_param("smime-type") or "").lower() in _ENCRYPTED_PARAMS:
            return Unwrapped(raw, ENCRYPTED)
        kind, inner, problem = read_cms(_transfer_decoded(outer, body))
        if kind in _ENCRYPTED_CMS:
            return Unwrapped(raw, ENCRYPTED)
        if problem or inner is None:
            return Unwrapped(raw, state, problem or f"S/MIME {kind} carries no mail")
        raw, state = rebuild(head, inner), SIGNED
    head, _ = split_header_block(raw)
    if is_opaque_smime(message_from_bytes(head + b"\r\n\r\n")):
        return Unwrapped(raw, state, f"S/MIME nested more than {MAX_SMIME_DEPTH} layers deep")
    return Unwrapped(raw, state)


def is_opaque_smime(message: Message) -> bool:
    content_type = message.get_content_type()
    if content_type in PKCS7_TYPES:
        return True
    name = str(message.get_param("name") or message.get_filename() or "").lower()
    return content_type == "application/octet-stream" and name.endswith(".p7m")


def read_cms(der: bytes) -> tuple[str, bytes | None, str]:
    """(CMS content type, the encapsulated content of a SignedData or None, problem)."""
    from asn1crypto import cms

    try:
        info = cms.ContentInfo.load(der)
        kind = str(info["content_type"].native)
        if kind != "signed_data":
            return kind, None, ""
        content = info["content"]["encap_content_info"]["content"]
        if content.native is None:  # detached: the mail should have been multipart/signed
            return kind, None, "S/MIME signature without the signed content"
        inner = content.native
        return kind, inner if isinstance(inner, bytes) else bytes(inner), ""
    except Exception as err:  # asn1crypto raises many types on broken DER
        return "", None, f"unreadable S/MIME: {type(err).__name__}"[:300]


def _transfer_decoded(outer: Message, body: bytes) -> bytes:
    encoding = str(outer.get("content-transfer-encoding", "")).strip().lower()
    if encoding == "base64":
        try:
            return base64.b64decode(re.sub(rb"[^A-Za-z0-9+/=]", b"", body))
        except (binascii.Error, ValueError):
            return b""
    return body


def rebuild(head: bytes, inner: bytes) -> bytes:
    """The outer header block without its Content-* fields, then the inner MIME entity (its
    own Content-* fields and body)."""
    newline = b"\r\n" if b"\r\n" in inner[:2000] else b"\n"
    kept: list[bytes] = []
    skipping = False
    for line in re.split(rb"\r?\n", head):
        if line[:1] in (b" ", b"\t"):
            if not skipping:
                kept.append(line)
            continue
        name = line.split(b":", 1)[0].strip().lower().decode("ascii", "replace")
        skipping = name in _DROPPED
        if not skipping and line:
            kept.append(line)
    first = inner.lstrip(b"\r\n").split(b"\n", 1)[0]
    if not _HEADER_LINE.match(first):  # a bare body: RFC 8551 says text/plain by default
        inner = b"Content-Type: text/plain" + newline + newline + inner
    return newline.join(kept) + newline + inner.lstrip(b"\r\n")
