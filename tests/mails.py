"""A small builder for generated test mails (the named .eml fixtures live in fixtures/)."""

from __future__ import annotations

import io
import uuid
import zipfile
from email.message import EmailMessage
from email.policy import SMTP


def brief(
    sender: str = "Mette Holm <mette.holm@kommune.test>",
    to: str = "it.projekter@kommune.test",
    subject: str = "Projektforslag: Ny mødebooking",
    body: str | None = None,
    attachments: tuple[str, ...] = ("Teknisk beskrivelse.pdf", "Udkast til kontrakt.docx",
                                    "Databehandleraftale udkast.pdf", "Business case.docx"),
    message_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = "Mon, 02 Nov 2026 09:00:00 +0100"
    msg["Message-ID"] = message_id or f"<{uuid.uuid4()}@kommune.test>"
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body if body is not None else COMPLETE_BODY)
    for filename in attachments:
        msg.add_attachment(payload_for(filename), maintype="application",
                           subtype="octet-stream", filename=filename)
    return msg.as_bytes()


def payload_for(filename: str) -> bytes:
    """Bytes whose real type matches the extension (the bot sniffs; names may lie)."""
    if filename.lower().endswith((".docx", ".xlsx", ".odt", ".zip")):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("content.txt", filename)
        return buffer.getvalue()
    return b"%PDF-1.4 test\n"


COMPLETE_BODY = """Hej

Hvem: Mette Holm, Borgerservice. Brugerne er 12 medarbejdere.
Hvad: Et nyt system til booking af mødelokaler.
Hvor: Borgerservice.
Hvornår: 1. marts 2027.
Hvorfor: Dobbeltbookinger i dag.
Hvor meget: 50.000 kr., betales af Borgerservice.

Med venlig hilsen
Mette
"""
