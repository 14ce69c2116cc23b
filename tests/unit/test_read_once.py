"""An attachment is checked and read once per content (issue #16 item 2): the same bytes give
the same finding however often and under whatever name they come; different bytes never
share one; what is kept stays within its bound; and the cheaper DTD check still finds a DTD
wherever a part declares one. Every file is built here; nothing is faked."""

from __future__ import annotations

import io
import os
import time
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailbot.blobs import BlobStore
from mailbot.intake.parse import Attachment
from mailbot.reading import extract
from mailbot.reading.documents import read_attachments
from mailbot.reading.extract import ReadingMemo, extract_text, hazard
from mailbot.rules import Rules
from mailbot.vocabulary import Hazard
from tests.docs import docx, pdf


@pytest.fixture(autouse=True)
def empty_memos() -> Iterator[None]:
    for memo in (extract.TEXTS, extract.HAZARDS, extract.CONTAINERS):
        memo.clear()
    yield


def test_the_same_bytes_are_read_once_and_give_the_same_text() -> None:
    payload = docx("Udkast til kontrakt", paragraphs=5)
    first = extract_text("a.docx", payload)
    again = extract_text("b.docx", bytes(payload))  # equal bytes, another object and name
    assert first == again and "Udkast til kontrakt" in first.text
    assert (extract.TEXTS.misses, extract.TEXTS.hits) == (1, 1)


def test_different_bytes_never_share_a_reading() -> None:
    one = extract_text("bilag.pdf", pdf("Teknisk beskrivelse 1"))
    two = extract_text("bilag.pdf", pdf("Teknisk beskrivelse 2"))
    assert "Teknisk beskrivelse 1" in one.text and "Teknisk beskrivelse 2" in two.text
    assert extract.TEXTS.hits == 0


def test_the_same_bytes_under_another_extension_are_judged_again() -> None:
    payload = pdf("Teknisk beskrivelse")
    assert hazard("bilag.pdf", payload) == (None, "")
    found, why = hazard("bilag.docx", payload)
    assert found == Hazard.MISMATCH and "named .docx" in why
    assert hazard("setup.exe", payload)[0] == Hazard.EXECUTABLE


def test_a_document_attached_twice_and_inside_a_zip_is_checked_once(rules: Rules) -> None:
    payload = docx("Udkast til kontrakt")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("Udkast til kontrakt.docx", payload)
    mail = [Attachment("Udkast til kontrakt.docx", "application/octet-stream", payload, False),
            Attachment("Kopi af kontrakt.docx", "application/octet-stream", payload, False),
            Attachment("bilag.zip", "application/zip", buffer.getvalue(), False)]
    readings = read_attachments(mail, rules)
    assert [r.kind for r in readings] == ["contract_draft"] * 3
    assert not any(r.hazard for r in readings)
    # one check of the DOCX (and one of the ZIP): the other two found it remembered
    assert (extract.HAZARDS.misses, extract.HAZARDS.hits) == (2, 2)
    assert extract.CONTAINERS.misses == 1


def test_what_is_kept_stays_within_its_bound() -> None:
    memo: ReadingMemo[str] = ReadingMemo(3000, len)
    for n in range(20):
        assert memo.recall((bytes([n]), "txt"), lambda n=n: "x" * (500 + n)) == "x" * (500 + n)
    assert memo.chars <= 3000
    assert memo.recall((bytes([19]), "txt"), lambda: "recomputed") == "x" * 519  # newest kept
    assert memo.recall((bytes([0]), "txt"), lambda: "recomputed") == "recomputed"  # oldest out
    assert memo.recall((b"big", "txt"), lambda: "y" * 5000) == "y" * 5000  # too big: not kept
    assert memo.chars <= 3000


def _with_part(package: bytes, name: str, data: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(package)) as source, \
            zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            if info.filename != name:
                target.writestr(info, source.read(info))
        target.writestr(name, data)
    return buffer.getvalue()


def test_a_dtd_after_a_long_prolog_in_the_last_part_is_still_found() -> None:
    """Only prologs are parsed now, in 1 KB pieces: a DTD behind 5 KB of comments, in a part
    listed after the document, is still a danger."""
    comments = "".join(f"<!-- {'k' * 90} -->" for _ in range(50))
    hostile = ('<?xml version="1.0"?>' + comments + '<!DOCTYPE r [<!ENTITY a "b">]><r>&a;</r>')
    payload = _with_part(docx("Udkast til kontrakt"), "word/zzz.xml", hostile)
    found, why = hazard("Udkast til kontrakt.docx", payload)
    assert found == Hazard.UNREADABLE and "word/zzz.xml" in why and "DTDForbidden" in why


def test_a_root_start_tag_longer_than_a_piece_is_read_whole() -> None:
    spaces = " ".join(f'xmlns:n{i}="urn:example:{i}"' for i in range(200))  # ~5 KB start tag
    payload = _with_part(docx("Udkast til kontrakt"), "word/extra.xml", f"<r {spaces}><x/></r>")
    assert hazard("Udkast til kontrakt.docx", payload) == (None, "")


def test_a_part_without_a_root_element_is_unreadable_not_dangerous() -> None:
    payload = _with_part(docx("Udkast til kontrakt"), "word/empty.xml",
                         '<?xml version="1.0"?><!-- nothing -->')
    assert hazard("Udkast til kontrakt.docx", payload) == (None, "")
    text = extract_text("Udkast til kontrakt.docx", payload)
    assert "word/empty.xml is not readable XML" in text.problem


def test_a_stored_attachment_is_not_written_again_but_met_again(tmp_path: Path) -> None:
    """The file store (issue #16): bytes already stored are not rewritten (same inode, no
    temporary file); one not met for longer than TOUCH_SECONDS gets a fresh mtime, so
    retention's grace still sees that a mail is about to name it."""
    store = BlobStore(tmp_path / "blobs")
    payload = pdf("Teknisk beskrivelse")
    digest = store.put(payload)
    path = store.path(digest)
    first = path.stat()
    assert store.put(bytes(payload)) == digest
    assert path.stat().st_ino == first.st_ino and path.stat().st_mtime == first.st_mtime
    old = time.time() - 3600
    os.utime(path, (old, old))
    store.put(payload)
    assert time.time() - path.stat().st_mtime < 60 and path.stat().st_ino == first.st_ino
    assert not store.remove_if_idle(digest, datetime.now(UTC), 600)
    assert sorted(p.name for p in path.parent.iterdir()) == [digest]  # no .tmp- left
