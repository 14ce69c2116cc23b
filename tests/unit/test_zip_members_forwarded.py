"""A document found inside a ZIP leaves the bot as itself (issue #13 trial F10): the reviewer
gets the member's own bytes under the member's name, never the archive under a ".pdf" name
and never a "/" in an attachment name; the agenda's ZIP follows the same rule.

Through the real pipeline (mailbot.pipeline.handle) on a real SQLite database and blob
store, as tests/unit/test_gap_lines.py; nothing is faked. The review request is read from
the outbox row the pipeline adds."""

from __future__ import annotations

import io
import zipfile
from datetime import date
from pathlib import Path

from sqlmodel import Session, select

from mailbot.cases.documents import forwarded_name
from mailbot.council.agenda import _documents_zip
from mailbot.models import Case, CaseDocument
from tests.docs import docx, pdf
from tests.unit.test_gap_lines import _bot, _brief, _handle, _sent

MEMBER_PDF = pdf("Teknisk beskrivelse")


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_a_pdf_inside_a_zip_reaches_the_reviewers_as_that_pdf(tmp_path: Path) -> None:
    bot = _bot(tmp_path, "warn")
    bundle = _zip({"Teknisk beskrivelse 010190-1234.pdf": MEMBER_PDF,
                   "Business case.docx": docx("Business case")})
    _handle(bot, _brief({"bilag.zip": bundle}))
    requests = _sent(bot, "review")
    assert len(requests) == 2  # IT-drift and the IT-arkitekt
    for request in requests:
        [part] = list(request.iter_attachments())
        assert part.get_filename() == "Teknisk beskrivelse XXXXXX-XXXX.pdf"
        assert part.get_content_type() == "application/pdf"
        assert part.get_content() == MEMBER_PDF  # the member's bytes, not the archive's
    with Session(bot.engine) as session:
        rows = {d.filename: d for d in session.exec(select(CaseDocument)).all()}
        # the case still says where the file came from
        row = rows["bilag.zip/Teknisk beskrivelse XXXXXX-XXXX.pdf"]
        assert row.kind == "technical_description" and row.size == len(MEMBER_PDF)
        assert bot.blobs.get(row.blob_sha256) == MEMBER_PDF
        case = session.exec(select(Case)).one()
        case.meeting_date = date(2027, 5, 20)
        session.add(case)
        session.commit()
        agenda_zip = _documents_zip(session, bot, date(2027, 5, 20))
    assert agenda_zip is not None
    with zipfile.ZipFile(io.BytesIO(agenda_zip)) as archive:
        names = sorted(archive.namelist())
        assert names == ["ITP-2027-0001/Business case.docx",
                         "ITP-2027-0001/Teknisk beskrivelse XXXXXX-XXXX.pdf"]
        assert archive.read(names[1]) == MEMBER_PDF
    bot.engine.dispose()


def test_a_row_that_holds_the_whole_archive_goes_as_the_archive() -> None:
    """A member a ZIP limit kept unread, or one stored before members were kept on their
    own: its row holds the archive, so it goes as "bilag.zip", never as a ".pdf"."""
    archive = _zip({"Teknisk beskrivelse.pdf": MEMBER_PDF})
    assert forwarded_name("bilag.zip/Teknisk beskrivelse.pdf", archive) == "bilag.zip"
    assert forwarded_name("bilag.zip/Teknisk beskrivelse.pdf", MEMBER_PDF) == \
        "Teknisk beskrivelse.pdf"
    assert forwarded_name("bilag.zip/Business case.docx", docx("Business case")) == \
        "Business case.docx"  # an Office file is a ZIP by right
    assert forwarded_name("Teknisk beskrivelse.pdf", MEMBER_PDF) == "Teknisk beskrivelse.pdf"


