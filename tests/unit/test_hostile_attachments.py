"""Attachments that could hurt a reviewer or cannot be read (issue #13 item 4; SCENARIOS F3
macros, F4 programs and disguised types, F5 per-mail caps, F6 encryption, XML attacks, F8
mail-parser's writers). Every file is built here; nothing is faked."""

from __future__ import annotations

import io
import os
import tempfile
import time
import zipfile
from pathlib import Path

import pytest
from msoffcrypto.format.ooxml import OOXMLFile
from pypdf import PdfReader, PdfWriter

from mailbot.intake.parse import Attachment, parse
from mailbot.reading.documents import AttachmentPolicy, DocumentReading, read_attachments
from mailbot.rules import Rules
from mailbot.vocabulary import Hazard, MacroPolicy
from tests.docs import docx, pdf
from tests.ole_writer import word97_plain, word97_with_vba

WARN = AttachmentPolicy()
QUARANTINE = AttachmentPolicy(macros=MacroPolicy.QUARANTINE)


def read(name: str, payload: bytes, rules: Rules,
         policy: AttachmentPolicy = WARN) -> list[DocumentReading]:
    started = time.monotonic()
    readings = read_attachments(
        [Attachment(name, "application/octet-stream", payload, False)], rules, policy)
    assert time.monotonic() - started < 30  # a guard against a hang, not a speed target
    return list(readings)


def with_parts(package: bytes, extra: dict[str, bytes]) -> bytes:
    """The OOXML/ZIP package with more parts added."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(package)) as source, \
            zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(info, source.read(info))
        for name, data in extra.items():
            target.writestr(name, data)
    return buffer.getvalue()


VBA_PROJECT = word97_with_vba()  # an OLE VBA project, as Word stores word/vbaProject.bin


# -- F3: macros ---------------------------------------------------------------------------------
def test_a_docm_contract_is_labelled_macro_and_forwarded_under_warn(rules: Rules) -> None:
    docm = with_parts(docx("Udkast til kontrakt"), {"word/vbaProject.bin": VBA_PROJECT})
    [reading] = read("Udkast til kontrakt.docm", docm, rules)
    assert reading.hazard == Hazard.MACRO and not reading.held
    assert reading.kind == "contract_draft"  # classified as usual: the warning travels with it


def test_a_docm_is_held_under_quarantine(rules: Rules) -> None:
    docm = with_parts(docx("Udkast til kontrakt"), {"word/vbaProject.bin": VBA_PROJECT})
    [reading] = read("Udkast til kontrakt.docm", docm, rules, QUARANTINE)
    assert reading.hazard == Hazard.MACRO and reading.held and reading.kind == "other"


def test_a_docx_that_really_carries_a_vba_project_is_a_macro_file(rules: Rules) -> None:
    disguised = with_parts(docx("Teknisk beskrivelse"), {"word/vbaProject.bin": VBA_PROJECT})
    [reading] = read("Teknisk beskrivelse.docx", disguised, rules)
    assert reading.hazard == Hazard.MACRO


def test_an_xlsm_business_case_is_a_macro_file(rules: Rules) -> None:
    from tests.docs import xlsx

    xlsm = with_parts(xlsx("Business case"), {"xl/vbaProject.bin": VBA_PROJECT})
    [reading] = read("Business case.xlsm", xlsm, rules)
    assert reading.hazard == Hazard.MACRO


def test_an_ole_word_file_with_vba_is_a_macro_file_and_one_without_is_not(
        rules: Rules) -> None:
    """oletools.olevba finds the VBA storage ([MS-OVBA] 2.2.1) in a Word 97 file written by
    tests/ole_writer.py (the structure is genuine; the streams hold no compiled VBA)."""
    [macro] = read("Udkast til kontrakt.doc", word97_with_vba(), rules)
    assert macro.hazard == Hazard.MACRO and macro.kind == "contract_draft"
    [plain] = read("Udkast til kontrakt.doc", word97_plain(), rules)
    assert plain.hazard == "" and plain.kind == "contract_draft"


# -- F6: encrypted ------------------------------------------------------------------------------
def encrypted_pdf(title: str, user_password: str) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf(title))))
    writer.encrypt(user_password=user_password, owner_password="ejer")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def test_an_encrypted_pdf_named_like_the_technical_description_does_not_count(
        rules: Rules) -> None:
    [reading] = read("Teknisk beskrivelse.pdf", encrypted_pdf("Teknisk beskrivelse", "pw"),
                     rules)
    assert reading.hazard == Hazard.ENCRYPTED and reading.held
    assert reading.kind == "other"


def test_an_encrypted_pdf_that_spells_encrypt_with_escapes_is_still_held(
        rules: Rules) -> None:
    """pypdf is loaded only for a PDF that names /Encrypt; a name may write any character
    as #XX (ISO 32000-1 section 7.3.5), and such a PDF is as locked as the plain one."""
    payload = encrypted_pdf("Teknisk beskrivelse", "pw")
    assert payload.count(b"/Encrypt") == 1
    for spelling in (b"/Encr#79pt", b"/#45ncrypt", b"/Encryp#74"):
        [reading] = read("Teknisk beskrivelse.pdf", payload.replace(b"/Encrypt", spelling),
                         rules)
        assert reading.hazard == Hazard.ENCRYPTED and reading.held, spelling


def test_a_pdf_with_only_an_owner_password_opens_and_counts(rules: Rules) -> None:
    """Printing/copying restrictions (empty user password) open in every reader: not
    'kan ikke læses'."""
    [reading] = read("Teknisk beskrivelse.pdf", encrypted_pdf("Teknisk beskrivelse", ""), rules)
    assert reading.hazard == "" and reading.kind == "technical_description"


def test_an_encrypted_word_file_is_never_classified_by_its_name(rules: Rules) -> None:
    """Word's "Protect with password" writes an OLE file with EncryptionInfo and
    EncryptedPackage streams ([MS-OFFCRYPTO] 2.3.4); msoffcrypto-tool writes the same."""
    encrypted = io.BytesIO()
    OOXMLFile(io.BytesIO(docx("Teknisk beskrivelse"))).encrypt(
        "hemmeligt", encrypted)
    [reading] = read("Teknisk beskrivelse.docx", encrypted.getvalue(), rules)
    assert reading.hazard == Hazard.ENCRYPTED and reading.held and reading.kind == "other"


# -- F4: programs and disguised files ---------------------------------------------------------
EICAR = (b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*")


@pytest.mark.parametrize(("name", "payload", "hazard"), [
    ("Udkast til kontrakt.pdf", b"MZ\x90\x00" + b"\0" * 300, Hazard.EXECUTABLE),
    ("Teknisk beskrivelse.docx", b"MZ\x90\x00" + b"\0" * 300, Hazard.EXECUTABLE),
    ("Teknisk beskrivelse.pdf", b"\x7fELF\x02\x01\x01" + b"\0" * 300, Hazard.EXECUTABLE),
    ("Teknisk beskrivelse.pdf", b"\xcf\xfa\xed\xfe" + b"\0" * 300, Hazard.EXECUTABLE),
    ("installer.txt", b"#!/bin/sh\nrm -rf ~\n", Hazard.EXECUTABLE),
    ("Teknisk beskrivelse.exe", b"Teknisk beskrivelse\n", Hazard.EXECUTABLE),
    ("opdatering.ps1", b"Write-Host 'hej'\n", Hazard.EXECUTABLE),
    ("Kontrakt.js", b"WScript.Echo(1)\n", Hazard.EXECUTABLE),
    ("Business case.vbs", b"MsgBox 1\n", Hazard.EXECUTABLE),
    ("Kontrakt.bat", b"@echo off\n", Hazard.EXECUTABLE),
    ("Kontrakt.msi", word97_plain(), Hazard.EXECUTABLE),
    ("Kontrakt.pdf", EICAR, Hazard.MISMATCH),  # the EICAR test string, built here
    ("Udkast til kontrakt.pdf", docx("Udkast til kontrakt"), Hazard.MISMATCH),
])
def test_a_program_or_a_disguised_file_is_held_and_counts_as_nothing(
        rules: Rules, name: str, payload: bytes, hazard: Hazard) -> None:
    [reading] = read(name, payload, rules)
    assert (reading.hazard, reading.held, reading.kind) == (hazard, True, "other")


def test_a_jar_is_a_program_not_an_archive_to_open(rules: Rules) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("META-INF/MANIFEST.MF", "Main-Class: X\n")
    [reading] = read("Kontrakt.jar", buffer.getvalue(), rules)
    assert reading.hazard == Hazard.EXECUTABLE and reading.held


def test_a_zip_with_a_program_inside_is_held_whole(rules: Rules) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("Teknisk beskrivelse.pdf", pdf("Teknisk beskrivelse"))
        archive.writestr("setup.exe", b"MZ\x90\x00" + b"\0" * 300)
    [reading] = read("Bilag.zip", buffer.getvalue(), rules)
    assert reading.filename == "Bilag.zip/setup.exe"
    assert reading.hazard == Hazard.EXECUTABLE and reading.held and reading.kind == "other"


# -- F5: per-mail caps --------------------------------------------------------------------------
def test_attachments_beyond_max_count_are_not_read(rules: Rules) -> None:
    attachments = [Attachment(f"Bilag {n}.pdf", "application/pdf", pdf(f"Bilag {n}"), False)
                   for n in range(1, 43)]
    attachments[41] = Attachment("Teknisk beskrivelse.pdf", "application/pdf",
                                 pdf("Teknisk beskrivelse"), False)
    readings = read_attachments(attachments, rules, AttachmentPolicy(max_count=40))
    assert [r.hazard for r in readings[:40]] == [""] * 40
    assert [(r.filename, r.hazard, r.held, r.kind) for r in readings[40:]] == [
        ("Bilag 41.pdf", Hazard.TOO_MANY, True, "other"),
        ("Teknisk beskrivelse.pdf", Hazard.TOO_MANY, True, "other")]


def test_attachments_beyond_max_total_are_not_read(rules: Rules) -> None:
    big = pdf("Bilag") + b"%" + b"0" * 700_000 + b"\n"
    attachments = [Attachment(f"Bilag {n}.pdf", "application/pdf", big, False)
                   for n in range(1, 4)]
    readings = read_attachments(attachments, rules,
                                AttachmentPolicy(max_total_bytes=1_500_000))
    assert [r.hazard for r in readings] == ["", "", Hazard.TOO_LARGE]
    assert "limit is 1500000" in readings[2].note


# -- XML attacks (defusedxml) -------------------------------------------------------------------
BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
              for i in range(1, 10))
    + ']><office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:'
    'office:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"><office:body>'
    "<office:text><text:h>Teknisk beskrivelse</text:h><text:p>&lol9;</text:p></office:text>"
    "</office:body></office:document-content>")


def test_a_billion_laughs_odt_is_not_expanded(rules: Rules) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.text")
        archive.writestr("content.xml", BILLION_LAUGHS)
    started = time.monotonic()
    [reading] = read("Bilag 4.odt", buffer.getvalue(), rules)
    assert time.monotonic() - started < 5
    assert reading.hazard == Hazard.UNREADABLE and reading.held
    assert "lol" not in reading.text and "DTDForbidden" in reading.note


def test_an_external_entity_in_a_docx_reads_no_file(rules: Rules, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("HEMMELIGT-INDHOLD", encoding="utf-8")
    package = docx("Teknisk beskrivelse")
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        document = archive.read("word/document.xml").decode("utf-8")
    head, _, rest = document.partition("?>")
    hostile = (head + f'?><!DOCTYPE w:document [<!ENTITY x SYSTEM "file://{secret}">]>'
               + rest.replace("Teknisk beskrivelse", "&x;", 1))
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(package)) as source, \
            zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(info, hostile if info.filename == "word/document.xml"
                            else source.read(info))
    [reading] = read("Teknisk beskrivelse.docx", buffer.getvalue(), rules)
    assert reading.hazard == Hazard.UNREADABLE and reading.held and reading.kind == "other"
    assert "HEMMELIGT" not in reading.text + reading.note


# -- F8: mail-parser never writes a file --------------------------------------------------------
def test_parsing_an_attachment_named_to_climb_out_writes_no_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SCENARIOS F8: parse() keeps attachments in memory; `../../x` lands nowhere, neither
    in the temp folder nor in the working directory (nor two levels above it)."""
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    tempfile.tempdir = None  # make tempfile read TMPDIR again
    try:
        def tree() -> set[str]:
            return {str(p) for p in tmp_path.rglob("*")} | set(os.listdir(tempfile.gettempdir()))

        before = tree()
        raw = (b"From: Mette Holm <mette@kommune.test>\r\nTo: itp@kommune.test\r\n"
               b"Subject: Forslag\r\nMessage-ID: <f8@kommune.test>\r\nMIME-Version: 1.0\r\n"
               b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
               b"Content-Type: text/plain\r\n\r\nHej\r\n--b\r\n"
               b"Content-Type: application/octet-stream\r\n"
               b'Content-Disposition: attachment; filename="../../x"\r\n'
               b"Content-Transfer-Encoding: base64\r\n\r\naGVq\r\n--b--\r\n")
        [attachment] = parse(raw).documents
        assert attachment.filename == "x" and attachment.payload == b"hej"
        assert tree() == before
    finally:
        tempfile.tempdir = None


@pytest.mark.parametrize(("name", "lands_as"), [
    ("../../evil.txt", "evil.txt"), ("/etc/x", "x"), ("..\\..\\x", "x")])
def test_the_pinned_mail_parser_writes_only_basenames(tmp_path: Path, name: str,
                                                      lands_as: str) -> None:
    """SCENARIOS F8: mailbot never calls write_sample (the source scan in
    test_parse_and_compose.py), but should a later change do so, mail-parser >= 4.8.0 keeps
    the file inside its folder; this fails on a downgrade to a version that does not."""
    from mailparser.utils import write_sample

    target = tmp_path / "out"
    write_sample(False, "hej", str(target), name)
    assert [p.name for p in target.iterdir()] == [lands_as]
    assert {p.name for p in tmp_path.iterdir()} == {"out"}


@pytest.mark.parametrize("name", ["a\x00.pdf", "..", ""])
def test_the_pinned_mail_parser_refuses_names_without_a_file(tmp_path: Path,
                                                             name: str) -> None:
    from mailparser.utils import write_sample

    with pytest.raises(ValueError):
        write_sample(False, "hej", str(tmp_path / "out"), name)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_inspect_shows_what_the_daemon_would_hold_under_the_config(rules: Rules) -> None:
    """`mailbot inspect` follows `[attachments]`: the docm is held under quarantine."""
    from email.message import EmailMessage

    from mailbot.config import AttachmentSettings
    from mailbot.intake.inspection import inspect_details, settings_without_config

    msg = EmailMessage()
    msg["From"], msg["To"] = "mette@kommune.test", "it.projekter@kommune.test"
    msg["Subject"], msg["Message-ID"] = "Projektforslag: Booking", "<inspect-f3@kommune.test>"
    msg.set_content("Hvem: Mette\nHvad: Booking\n")
    msg.add_attachment(with_parts(docx("Udkast til kontrakt"),
                                  {"word/vbaProject.bin": VBA_PROJECT}),
                       maintype="application", subtype="octet-stream",
                       filename="Udkast til kontrakt.docm")
    settings = settings_without_config("it.projekter@kommune.test")
    warn = inspect_details(msg.as_bytes(), rules, settings)[1]
    assert warn["document_hazards"] == {"Udkast til kontrakt.docm": "macro"}
    held = inspect_details(msg.as_bytes(), rules, settings.model_copy(update={
        "attachments": AttachmentSettings(macros="quarantine")}))
    assert held[1]["document_hazards"] == {"Udkast til kontrakt.docm": "macro (held)"}
    assert held[0]["documents"] == {"Udkast til kontrakt.docm": "other"}
