"""Attachment shapes that broke other helpdesks (issue 11, item 6): Outlook's winmail.dat
(TNEF) and attachment parts without a file name. Each variant is a mail built here, with the
documents a careful reader finds in it as the expected value; the public-bugs mails of
../shared are read through `inspect` (skipped when ../shared is absent)."""

from __future__ import annotations

import base64
import json
import struct
import time
from datetime import date

import pytest

from mailbot.intake.inspection import inspect_details, settings_without_config
from mailbot.intake.parse import parse
from mailbot.reading.brief import read_brief
from mailbot.rules import Rules
from tests.conftest import SHARED
from tests.docs import docx, odt, pdf
from tests.mails import COMPLETE_BODY
from tests.tnef_writer import attribute, tnef

DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
FOUR_KINDS = {"technical_description", "contract_draft", "dpa_draft", "business_case"}
ENGLISH_BODY = """Hello

Who: Mette Holm, Citizen Services. The users are 12 case workers.
What: A new system for booking meeting rooms.
Where: Citizen Services.
When: 1 March 2027.
Why: Double bookings today.
How much: DKK 50,000, paid by Citizen Services.

Kind regards
Mette
"""


def part(headers: list[str], payload: bytes) -> str:
    body = base64.encodebytes(payload).decode("ascii")
    return "\r\n".join([*headers, "Content-Transfer-Encoding: base64", "", body])


def mail(parts: list[str], body: str = COMPLETE_BODY, html: bool = False) -> bytes:
    """A multipart/mixed brief: the text (or an HTML alternative too), then `parts`."""
    text = part(['Content-Type: text/plain; charset="utf-8"'], body.encode())
    if html:
        markup = "<html><body>" + "".join(f"<p>{line}</p>" for line in body.splitlines()) + \
            "</body></html>"
        text = ("Content-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n--alt\r\n" + text
                + "\r\n--alt\r\n" + part(['Content-Type: text/html; charset="utf-8"'],
                                         markup.encode()) + "\r\n--alt--")
    head = ("From: Mette Holm <mette.holm@kommune.test>\r\nTo: it.projekter@kommune.test\r\n"
            "Subject: Projektforslag: Mødebooking\r\nDate: Mon, 02 Nov 2026 09:00:00 +0100\r\n"
            "Message-ID: <shape@kommune.test>\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="mix"\r\n\r\n')
    chunks = [text, *parts]
    return (head + "".join(f"--mix\r\n{c}\r\n" for c in chunks) + "--mix--\r\n").encode()


def documents(raw: bytes, rules: Rules) -> dict[str, str]:
    reading = read_brief(parse(raw), rules, date(2026, 11, 27))
    return {d.filename: d.kind for d in reading.documents}


TB_PDF = pdf("Teknisk beskrivelse", "Arkitektur og integrationer for mødebooking.")
TB_PDF_EN = pdf("Technical description", "Architecture and integrations of the booking tool.")
CONTRACT = docx("Udkast til kontrakt", "Parterne\nVederlag\nOphør\nMisligholdelse")
DPA = pdf("Databehandleraftale", "Den dataansvarlige og databehandleren. Instruks.")
BC = docx("Business case", "Gevinster og investering.")


# -- attachment parts without a file name ---------------------------------------------------
NAMELESS = [
    # (what, parts, html, body, expected documents)
    ("pdf with only a Content-Type",
     [part(["Content-Type: application/pdf"], TB_PDF)], False, COMPLETE_BODY,
     {"vedhæftet-1.pdf": "technical_description"}),
    ("Content-Disposition: attachment alone, DOCX bytes as octet-stream",
     [part(["Content-Type: application/octet-stream", "Content-Disposition: attachment"],
           CONTRACT)], False, COMPLETE_BODY,
     {"vedhæftet-1.docx": "contract_draft"}),
    ("empty name and filename parameters",
     [part(['Content-Type: application/pdf; name=""',
            'Content-Disposition: attachment; filename=""'], DPA)], True, COMPLETE_BODY,
     {"vedhæftet-1.pdf": "dpa_draft"}),
    ("two nameless parts numbered in order, one named between them",
     [part(["Content-Type: application/pdf"], TB_PDF),
      part([f'Content-Type: {DOCX_TYPE}; name="Business case.docx"'], BC),
      part([f"Content-Type: {DOCX_TYPE}"], CONTRACT)], False, COMPLETE_BODY,
     {"vedhæftet-1.pdf": "technical_description", "Business case.docx": "business_case",
      "vedhæftet-2.docx": "contract_draft"}),
    ("inline ODT without a name (Apple Mail)",
     [part(["Content-Type: application/vnd.oasis.opendocument.text",
            "Content-Disposition: inline"], odt("Teknisk beskrivelse"))], True, COMPLETE_BODY,
     {"vedhæftet-1.odt": "technical_description"}),
    ("English brief, nameless PDF, HTML alternative",
     [part(["Content-Type: application/pdf"], TB_PDF_EN)], True, ENGLISH_BODY,
     {"vedhæftet-1.pdf": "technical_description"}),
    ("text attachment without a name",
     [part(['Content-Type: text/plain; charset="utf-8"', "Content-Disposition: attachment"],
           b"Noter til projektet")], False, COMPLETE_BODY,
     {"vedhæftet-1.txt": "other"}),
]


@pytest.mark.parametrize(("what", "parts", "html", "body", "expected"), NAMELESS,
                         ids=[n[0] for n in NAMELESS])
def test_nameless_parts_are_kept_named_and_classified(rules: Rules, what: str,
                                                      parts: list[str], html: bool,
                                                      body: str,
                                                      expected: dict[str, str]) -> None:
    raw = mail(parts, body, html)
    assert documents(raw, rules) == expected
    assert documents(raw, rules) == expected  # the same names every time


def test_nameless_inline_image_is_kept_but_is_no_document(rules: Rules) -> None:
    raw = mail([part(["Content-Type: image/png", "Content-ID: <logo@kommune.test>"],
                     b"\x89PNG\r\n\x1a\n" + b"\0" * 32)])
    parsed = parse(raw)
    assert [a.filename for a in parsed.attachments] == ["vedhæftet-1.png"]
    assert parsed.documents == ()


def test_body_text_parts_are_not_attachments(rules: Rules) -> None:
    raw = mail([part(['Content-Type: text/plain; charset="utf-8"'], b"Mvh Mette")])
    assert parse(raw).attachments == ()


# -- Outlook winmail.dat (TNEF) -----------------------------------------------------------
def tnef_part(stream: bytes, content_type: str = "application/ms-tnef") -> str:
    return part([f'Content-Type: {content_type}; name="winmail.dat"',
                 'Content-Disposition: attachment; filename="winmail.dat"'], stream)


TNEF_VARIANTS = [
    ("four documents named in the OEM code page (æ in cp1252)",
     tnef([("Teknisk beskrivelse.pdf", TB_PDF, ""), ("Udkast til kontrakt.docx", CONTRACT, ""),
           ("Databehandleraftale.pdf", DPA, ""),
           ("Business case - ruteplanlægning.docx", BC, "")]),
     "application/ms-tnef", False,
     {"Teknisk beskrivelse.pdf": "technical_description",
      "Udkast til kontrakt.docx": "contract_draft", "Databehandleraftale.pdf": "dpa_draft",
      "Business case - ruteplanlægning.docx": "business_case"}),
    ("8.3 short names with Unicode long names (PidTagAttachLongFilename)",
     tnef([("TEKNIS~1.PDF", TB_PDF, "Teknisk beskrivelse – mødebooking.pdf"),
           ("UDKAST~1.DOC", CONTRACT, "Udkast til kontrakt (version 2).docx")]),
     "application/vnd.ms-tnef", True,
     {"Teknisk beskrivelse – mødebooking.pdf": "technical_description",
      "Udkast til kontrakt (version 2).docx": "contract_draft"}),
    ("generic names inside: classified by their text",
     tnef([("Bilag 1.pdf", TB_PDF, ""), ("Bilag 2.docx", CONTRACT, ""),
           ("Bilag 3.pdf", DPA, ""), ("Bilag 4.docx", BC, "")]),
     "application/ms-tnef", False,
     {"Bilag 1.pdf": "technical_description", "Bilag 2.docx": "contract_draft",
      "Bilag 3.pdf": "dpa_draft", "Bilag 4.docx": "business_case"}),
    ("a file without any name inside the TNEF",
     tnef([("", TB_PDF, ""), ("Business case.docx", BC, "")]),
     "application/ms-tnef", False,
     {"vedhæftet-1.pdf": "technical_description", "Business case.docx": "business_case"}),
    ("winmail.dat sent as application/octet-stream: the signature decides",
     tnef([("Teknisk beskrivelse.pdf", TB_PDF, "")]),
     "application/octet-stream", True,
     {"Teknisk beskrivelse.pdf": "technical_description"}),
    ("rich-text body only: no files, nothing to classify",
     tnef([], body_only=True), "application/ms-tnef", False, {}),
]


@pytest.mark.parametrize(("what", "stream", "content_type", "html", "expected"),
                         TNEF_VARIANTS, ids=[v[0] for v in TNEF_VARIANTS])
def test_tnef_files_are_classified_as_if_attached(rules: Rules, what: str, stream: bytes,
                                                  content_type: str, html: bool,
                                                  expected: dict[str, str]) -> None:
    assert documents(mail([tnef_part(stream, content_type)], html=html), rules) == expected


def test_tnef_beside_direct_attachments(rules: Rules) -> None:
    raw = mail([part(['Content-Type: application/pdf; name="Databehandleraftale.pdf"'], DPA),
                tnef_part(tnef([("Teknisk beskrivelse.pdf", TB_PDF, "")]))], ENGLISH_BODY)
    reading = read_brief(parse(raw), rules, date(2026, 11, 27))
    assert {d.filename: d.kind for d in reading.documents} == {
        "Databehandleraftale.pdf": "dpa_draft",
        "Teknisk beskrivelse.pdf": "technical_description"}
    assert set(reading.missing) == {"contract_draft", "business_case"}


HOSTILE = [
    ("a property list claiming 4 billion properties (tnefparse would loop for hours)",
     tnef([("Bilag.pdf", TB_PDF, "")]) + attribute(
         2, 0x9005, 0x0006, b"\xff\xff\xff\xff" + struct.pack("<HHi", 0x0003, 0x0E21, 7)),
     "malformed property list"),
    ("a stream cut off in the middle of a file",
     tnef([("Teknisk beskrivelse.pdf", TB_PDF, "")])[:200], "cut off"),
    ("more objects than any mail has",
     tnef([(f"f{i}.txt", b"x", "") for i in range(300)]), "objects"),
]


@pytest.mark.parametrize(("what", "stream", "reason"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_tnef_stays_one_unread_attachment(rules: Rules, what: str, stream: bytes,
                                                  reason: str) -> None:
    started = time.monotonic()
    reading = read_brief(parse(mail([tnef_part(stream)])), rules, date(2026, 11, 27))
    assert time.monotonic() - started < 5
    [document] = reading.documents
    assert (document.filename, document.kind) == ("winmail.dat", "other")
    assert "winmail.dat" in document.note or "TNEF" in document.note


# -- the public-bugs mails (../shared, not copied) ----------------------------------------
PUBLIC = SHARED / "cases" / "public-bugs"


def _inspect(name: str, rules: Rules) -> dict[str, object]:
    path = PUBLIC / name
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared is not beside this checkout)")
    shape, _ = inspect_details(path.read_bytes(), rules,
                               settings_without_config("it.projekter@albertslund.dk"),
                               date(2026, 3, 3))
    return json.loads(json.dumps(shape))  # type: ignore[no-any-return]


def test_public_bug_01_tnef(rules: Rules) -> None:
    shape = _inspect("01-tnef-winmail-dat.eml", rules)
    assert shape["kind"] == "brief" and shape["missing"] == []
    kinds = set(shape["documents"].values())  # type: ignore[attr-defined]
    assert kinds == FOUR_KINDS and len(shape["documents"]) == 4  # type: ignore[arg-type]
    assert all(a is not None for a in shape["answers"].values())  # type: ignore[attr-defined]


def test_public_bug_02_pdf_without_name(rules: Rules) -> None:
    shape = _inspect("02-pdf-without-name-or-disposition.eml", rules)
    assert shape["missing"] == []
    documents = shape["documents"]
    assert isinstance(documents, dict)
    assert documents["vedhæftet-1.pdf"] == "technical_description"


