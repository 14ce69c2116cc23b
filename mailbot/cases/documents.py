"""A case's documents and their versions: the one place that numbers versions and picks
the newest of each."""

from __future__ import annotations

import mimetypes
from collections.abc import Iterable
from datetime import datetime

from sqlmodel import Session, col, select

from mailbot.blobs import BlobStorage
from mailbot.clock import as_utc
from mailbot.intake.parse import Attachment, display_name
from mailbot.models import CaseDocument
from mailbot.reading.documents import ARCHIVE_OR_OFFICE, DocumentReading
from mailbot.reading.extract import extension, sniff
from mailbot.redact import redact_cpr
from mailbot.vocabulary import Hazard

OTHER = "other"  # attachments of no required kind are never versioned against each other


def all_documents(session: Session, case_id: int) -> list[CaseDocument]:
    """Every stored document of the case, oldest first."""
    return list(session.exec(select(CaseDocument).where(CaseDocument.case_id == case_id)
                             .order_by(col(CaseDocument.id))).all())


def latest_documents(session: Session, case_id: int) -> list[CaseDocument]:
    """The newest version of each kind, plus every `other` attachment (newest per name);
    never a held file (issue #13 item 4): what this returns may be forwarded."""
    latest: dict[tuple[str, str], CaseDocument] = {}
    for row in all_documents(session, case_id):
        if not row.held:
            latest[(row.kind, row.filename)] = row
    newest = _newest_versions(latest.values())
    return [r for r in latest.values() if r.kind == OTHER or r.version == newest[r.kind]]


def _newest_versions(rows: Iterable[CaseDocument]) -> dict[str, int]:
    newest: dict[str, int] = {}
    for row in rows:
        newest[row.kind] = max(newest.get(row.kind, 0), row.version)
    return newest


def relabel(session: Session, document: CaseDocument, kind: str, note: str) -> None:
    """Give a stored document another kind (a person corrected a misread one,
    mailbot.admin.correct_kind): it becomes the next version of `kind` (1 for `other`),
    so it is the newest of that kind and routing sends it on. `note` says who and why."""
    newest = _newest_versions(d for d in all_documents(session, document.case_id)
                              if d.id != document.id)
    document.kind = kind
    document.version = 1 if kind == OTHER else newest.get(kind, 0) + 1
    document.note = redact_cpr(note)[:2000]
    session.add(document)
    session.flush()


def store_documents(session: Session, blobs: BlobStorage, case_id: int, raw_id: int,
                    found: Iterable[tuple[Attachment, DocumentReading]], now: datetime
                    ) -> list[CaseDocument]:
    """Store each (attachment, reading) as a document of the case: the payload in the blob
    store, a row with the next version number of its kind (1 for a kind not seen before;
    documents of one kind that arrive in the same mail share their version, so all of them
    are current; `other` is always 1). A held reading is recorded with its hazard; one
    refused by a per-mail cap is recorded without storing its bytes (blob_sha256 ""). Returns
    the new rows, flushed."""
    previous = _newest_versions(all_documents(session, case_id))
    added = []
    for attachment, reading in found:
        version = 1 if reading.kind == OTHER else previous.get(reading.kind, 0) + 1
        refused = reading.hazard in (Hazard.TOO_MANY, Hazard.TOO_LARGE)
        # a ZIP member read on its own is stored as itself: the reviewer gets the PDF, not
        # the archive under the PDF's name (issue #13 trial F10)
        member = reading.payload is not None
        payload = reading.payload if reading.payload is not None else attachment.payload
        row = CaseDocument(
            # a name from inside a ZIP has not been through display_name: redacted here, the
            # one place a document's name is stored (SCENARIOS G1)
            case_id=case_id, raw_message_id=raw_id, filename=redact_cpr(reading.filename),
            kind=reading.kind, size=len(payload) if member else attachment.size,
            content_type=_member_type(reading.filename) if member else attachment.content_type,
            blob_sha256="" if refused else blobs.put(payload), version=version,
            received_at=now, note=redact_cpr(reading.note), hazard=reading.hazard,
            held=reading.held)
        session.add(row)
        added.append(row)
    session.flush()
    return added


def _member_type(name: str) -> str:
    """The MIME type a ZIP member is sent with, from its extension (Python's mimetypes
    table); application/octet-stream when the extension says nothing."""
    return mimetypes.guess_type(name, strict=False)[0] or "application/octet-stream"


def forwarded_name(filename: str, payload: bytes) -> str:
    """The name a stored document leaves the bot under (a review request, the board bundle,
    the agenda's ZIP): never a "/" and never an archive under a document's name.

    `filename` is the stored name ("bilag.zip/Teknisk beskrivelse.pdf" for a ZIP member),
    `payload` the stored bytes. A member stored as itself goes under its own display name
    ("Teknisk beskrivelse.pdf"); a member whose row holds the whole archive (one a ZIP limit
    kept unread, or stored before members were kept on their own) goes as the archive,
    under the archive's name ("bilag.zip"). A plain attachment keeps its name."""
    archive, slash, member = filename.partition("/")
    if slash and sniff(payload) == "zip" and extension(member) not in ARCHIVE_OR_OFFICE:
        return display_name(archive)
    return display_name(filename)


def as_attachments(blobs: BlobStorage, documents: Iterable[CaseDocument]
                   ) -> tuple[tuple[str, bytes, str], ...]:
    """(filename, payload, content type) of each document, to attach to a mail, named by
    forwarded_name; an archive that several members' rows hold goes once. A held document
    is a bug here (ValueError): it must never leave the bot."""
    chosen = list(documents)
    held = [d.filename for d in chosen if d.held]
    if held:
        raise ValueError(f"held attachments may not be forwarded: {', '.join(held)}")
    out: dict[tuple[str, str], tuple[str, bytes, str]] = {}
    for d in chosen:
        payload = blobs.get(d.blob_sha256)
        name = forwarded_name(d.filename, payload)
        archive = name != display_name(d.filename)
        out.setdefault((name, d.blob_sha256), (
            name, payload, "application/zip" if archive else d.content_type))
    return tuple(out.values())


def held_documents(session: Session, case_id: int, received_at: datetime | None = None
                   ) -> list[CaseDocument]:
    """The case's held attachments, oldest first; with `received_at`, only those stored at
    that moment (the mail being answered)."""
    return [d for d in all_documents(session, case_id) if d.held
            and (received_at is None or as_utc(d.received_at) == as_utc(received_at))]
