"""Bad attachments get kind `other` with a reason: no crash, no hang, nothing extracted."""

from __future__ import annotations

import io
import time
import zipfile

import pytest
from pypdf import PdfReader, PdfWriter

from mailbot.intake.parse import MAX_NAME_CHARS, Attachment, parse
from mailbot.reading.documents import DocumentReading, classify
from mailbot.rules import Rules
from mailbot.vocabulary import Hazard
from tests.docs import pdf


def read(name: str, payload: bytes, rules: Rules) -> list[DocumentReading]:
    started = time.monotonic()
    readings = classify(Attachment(name, "application/octet-stream", payload, False), rules)
    # a guard against a hang (a loop over a hostile file), not a speed target: the speed is
    # measured by tests/benchmarks/bench_inspect.py; 30 s holds on a loaded CI machine
    assert time.monotonic() - started < 30
    return readings


def test_encrypted_pdf(rules: Rules) -> None:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf("Teknisk beskrivelse"))))
    writer.encrypt(user_password="hemmeligt", owner_password="ejer")
    buffer = io.BytesIO()
    writer.write(buffer)
    [reading] = read("Teknisk beskrivelse.pdf", buffer.getvalue(), rules)
    assert reading.kind == "other" and "encrypted" in reading.note
    assert reading.hazard == Hazard.ENCRYPTED and reading.held


def encrypted_zip(name: str, payload: bytes) -> bytes:
    """A ZIP whose one member is marked encrypted (general purpose flag bit 0, in the local
    header and the central directory), as a password-protected archive is: zipfile can
    read such archives but not write them, so the bit is set in the bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(name, payload)
    data = bytearray(buffer.getvalue())
    local = data.index(b"PK\x03\x04")
    central = data.index(b"PK\x01\x02")
    data[local + 6] |= 0x01
    data[central + 8] |= 0x01
    return bytes(data)


def test_encrypted_zip(rules: Rules) -> None:
    """F6: a password-protected archive is held whole with a "cannot be read" label, never
    opened (zipfile would ask for a password) and never taken for the document it names."""
    payload = encrypted_zip("Teknisk beskrivelse.pdf", pdf("Teknisk beskrivelse"))
    assert zipfile.ZipFile(io.BytesIO(payload)).infolist()[0].flag_bits & 0x1
    [reading] = read("Bilag.zip", payload, rules)
    assert reading.filename == "Bilag.zip"
    assert reading.kind == "other" and reading.note == "password-protected ZIP"
    assert reading.hazard == Hazard.ENCRYPTED and reading.held


def test_corrupt_docx(rules: Rules) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("word/document.xml", "<w:document><unclosed")
    [reading] = read("dokument.docx", buffer.getvalue(), rules)
    assert reading.kind == "other" and "not readable XML" in reading.note
    assert not reading.held  # broken, not dangerous: listed as `other` like any unread file


def test_truncated_pdf(rules: Rules) -> None:
    [reading] = read("Bilag 2.pdf", pdf("Teknisk beskrivelse")[:200], rules)
    assert reading.kind == "other" and reading.note


def test_zip_bomb_by_ratio_is_not_inflated(rules: Rules) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("Teknisk beskrivelse.pdf", b"\0" * 10_000_000)
    payload = buffer.getvalue()
    assert len(payload) < 50_000
    [reading] = read("bilag.zip", payload, rules)
    assert reading.kind == "other" and "zip bomb" in reading.note
    assert reading.filename == "bilag.zip/Teknisk beskrivelse.pdf"


def test_zip_bomb_by_total_size(rules: Rules) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for i in range(6):
            archive.writestr(f"part{i}.pdf", b"\0" * 10_000_000)
    [reading] = read("bilag.zip", buffer.getvalue(), rules)
    assert reading.kind == "other" and "zip bomb" in reading.note


def test_zip_with_too_many_entries(rules: Rules) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(500):
            archive.writestr(f"f{i}.txt", "x")
    [reading] = read("mange.zip", buffer.getvalue(), rules)
    assert reading.kind == "other" and "entries" in reading.note


def test_zip_member_names_cannot_traverse(rules: Rules) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("../../etc/Teknisk beskrivelse.pdf", pdf("Teknisk beskrivelse"))
    [reading] = read("bilag.zip", buffer.getvalue(), rules)
    assert reading.filename == "bilag.zip/Teknisk beskrivelse.pdf"
    assert reading.kind == "technical_description"


def test_thirty_megabyte_pdf_is_read_quickly(rules: Rules) -> None:
    payload = pdf("Bilag", pages=3) + b"%" + b"0" * 30_000_000 + b"\n"
    assert len(payload) > 30_000_000
    [reading] = read("scan_0001.pdf", payload, rules)
    assert reading.kind in ("other", "technical_description")


@pytest.mark.parametrize("name", ["Teknisk beskrivelse.pdf", "Bilag 1.pdf"])
def test_pdf_that_is_really_an_executable(rules: Rules, name: str) -> None:
    payload = b"MZ\x90\x00" + b"\x00" * 60 + b"This program cannot be run in DOS mode" + b"\0" * 200
    [reading] = read(name, payload, rules)
    assert reading.kind == "other" and reading.hazard == Hazard.EXECUTABLE and reading.held
    assert "executable program (exe)" in reading.note


def test_docx_that_is_really_a_pdf(rules: Rules) -> None:
    [reading] = read("Udkast til kontrakt.docx", pdf("Udkast til kontrakt"), rules)
    assert reading.kind == "other" and "content is pdf" in reading.note


def test_nested_archive_is_listed_not_opened(rules: Rules) -> None:
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as archive:
        archive.writestr("Teknisk beskrivelse.pdf", pdf("Teknisk beskrivelse"))
    outer = io.BytesIO()
    with zipfile.ZipFile(outer, "w") as archive:
        archive.writestr("indre.zip", inner.getvalue())
    [reading] = read("ydre.zip", outer.getvalue(), rules)
    assert reading.kind == "other" and "nested" in reading.note


def test_screenshot_named_like_a_document_satisfies_nothing(rules: Rules) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100
    [reading] = read("Teknisk beskrivelse.png", png, rules)
    assert reading.kind == "other" and "image" in reading.note


def test_docx_whose_xml_expands_to_20_mb_is_not_opened(rules: Rules) -> None:
    """SCENARIOS R9/F2: a DOCX of ~100 KB whose document.xml is 20 MB would take hundreds of
    MB in python-docx; the container's directory is checked before it is opened."""
    paragraph = "<w:p><w:r><w:t>Udkast til kontrakt</w:t></w:r></w:p>"
    xml = ('<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
           "<w:body>" + paragraph * (20_000_000 // len(paragraph)) + "</w:body></w:document>")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", xml)
    assert len(buffer.getvalue()) < 200_000
    [reading] = read("Bilag 3.docx", buffer.getvalue(), rules)
    assert reading.kind == "other" and "possible bomb, not read" in reading.note


def _mail_with_filename(disposition: str) -> bytes:
    """A mail whose one attachment has the Content-Disposition header written as given."""
    return (b"From: Mette Holm <mette@kommune.test>\r\nTo: itp@kommune.test\r\n"
            b"Subject: Forslag\r\nMessage-ID: <f1@kommune.test>\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n\r\nHej\r\n--b\r\n"
            b"Content-Type: application/pdf\r\nContent-Disposition: " + disposition.encode()
            + b"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b--\r\n")


@pytest.mark.parametrize(("disposition", "shown"), [
    ('attachment; filename="../../../../etc/cron.d/x.pdf"', "x.pdf"),
    ('attachment; filename="/etc/passwd"', "passwd"),
    ('attachment; filename="C:\\\\Windows\\\\x.dll"', "x.dll"),
    ("attachment; filename*=UTF-8''..%2F..%2Fx.pdf", "x.pdf"),
    ('attachment; filename="a\x01b.pdf"', "a b.pdf"),
    # a right-to-left override shows "fdp.exe" as "exe.pdf": it becomes a visible space
    ('attachment; filename*=UTF-8\'\'fdp%E2%80%AEexe.pdf', "fdp exe.pdf"),
    # nothing left of the name: named like a part without one
    ('attachment; filename="../.."', "vedhæftet-1.pdf"),
])
def test_an_attachments_name_is_shown_without_its_path_or_hidden_characters(
        disposition: str, shown: str) -> None:
    """SCENARIOS F1: the name every mail, the agenda and its ZIP use (the raw mail keeps the
    original bytes)."""
    [attachment] = parse(_mail_with_filename(disposition)).documents
    assert attachment.filename == shown


def test_a_300_character_name_is_cut_to_120_with_its_extension_kept() -> None:
    name = "Teknisk beskrivelse " + "x" * 280 + ".pdf"
    [attachment] = parse(_mail_with_filename(f'attachment; filename="{name}"')).documents
    assert len(attachment.filename) == MAX_NAME_CHARS
    assert attachment.filename.startswith("Teknisk beskrivelse xx")
    assert attachment.filename.endswith(".pdf")
