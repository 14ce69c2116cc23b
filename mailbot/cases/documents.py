"""A case's documents and their versions: the one place that numbers versions and picks
the newest of each."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlmodel import Session, col, select

from mailbot.blobs import BlobStore
from mailbot.clock import as_utc
from mailbot.intake.parse import Attachment
from mailbot.models import CaseDocument
from mailbot.reading.documents import DocumentReading
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


def store_documents(session: Session, blobs: BlobStore, case_id: int, raw_id: int,
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
        row = CaseDocument(
            # a name from inside a ZIP has not been through display_name: redacted here, the
            # one place a document's name is stored (SCENARIOS G1)
            case_id=case_id, raw_message_id=raw_id, filename=redact_cpr(reading.filename),
            kind=reading.kind, content_type=attachment.content_type, size=attachment.size,
            blob_sha256="" if refused else blobs.put(attachment.payload), version=version,
            received_at=now, note=redact_cpr(reading.note), hazard=reading.hazard,
            held=reading.held)
        session.add(row)
        added.append(row)
    session.flush()
    return added


def as_attachments(blobs: BlobStore, documents: Iterable[CaseDocument]
                   ) -> tuple[tuple[str, bytes, str], ...]:
    """(filename, payload, content type) of each document, to attach to a mail. A held
    document is a bug here (ValueError): it must never leave the bot."""
    chosen = list(documents)
    held = [d.filename for d in chosen if d.held]
    if held:
        raise ValueError(f"held attachments may not be forwarded: {', '.join(held)}")
    return tuple((d.filename, blobs.get(d.blob_sha256), d.content_type) for d in chosen)


def held_documents(session: Session, case_id: int, received_at: datetime | None = None
                   ) -> list[CaseDocument]:
    """The case's held attachments, oldest first; with `received_at`, only those stored at
    that moment (the mail being answered)."""
    return [d for d in all_documents(session, case_id) if d.held
            and (received_at is None or as_utc(d.received_at) == as_utc(received_at))]
