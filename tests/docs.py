"""Builds real PDF, DOCX, XLSX, ODT and ZIP files at test time (no binaries in the repo)."""

from __future__ import annotations

import io
import zipfile
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from fpdf import FPDF


def pdf(title: str, body: str = "", pages: int = 1) -> bytes:
    doc = FPDF()
    doc.set_font("helvetica", size=12)
    for page in range(pages):
        doc.add_page()
        if page == 0:
            doc.multi_cell(0, 8, title, new_x="LMARGIN", new_y="NEXT")
        text = body or f"Side {page + 1}. " + "Indhold om løsningen og driften. " * 30
        doc.multi_cell(0, 6, _latin1(text))
    return bytes(doc.output())


def _latin1(text: str) -> str:
    # fpdf's core fonts are latin-1; the en dash and typographic quotes are not
    return text.replace("–", "-").replace("“", '"').replace("”", '"').replace("•", "-")


def docx(title: str, body: str = "", paragraphs: int = 3) -> bytes:
    import docx as python_docx

    document = python_docx.Document()
    document.add_heading(title, level=1)
    for line in (body.splitlines() if body else []):
        document.add_paragraph(line)
    for i in range(paragraphs if not body else 0):
        document.add_paragraph(f"Afsnit {i + 1}. " + "Tekst om projektet. " * 20)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def xlsx(title: str, rows: int = 10) -> bytes:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Beregning"
    sheet.append([title])
    for i in range(rows):
        sheet.append([f"Post {i + 1}", 1000 * (i + 1)])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def odt(title: str, body: str = "Beskrivelse af løsningen.") -> bytes:
    from xml.sax.saxutils import escape

    paragraphs = "".join(f"<text:p>{escape(line)}</text:p>" for line in body.splitlines())
    content = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"'
        ' xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"><office:body><office:text>'
        f"<text:h>{escape(title)}</text:h>{paragraphs}"
        "</office:text></office:body></office:document-content>"
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.text")
        archive.writestr("content.xml", content)
    return buffer.getvalue()


def build(spec: dict[str, Any]) -> bytes:
    kind = spec["type"]
    if kind == "pdf":
        return pdf(spec["title"], spec.get("body", ""), spec.get("pages", 1))
    if kind == "docx":
        return docx(spec["title"], spec.get("body", ""))
    if kind == "xlsx":
        return xlsx(spec["title"])
    if kind == "odt":
        return odt(spec["title"], spec.get("body") or "Beskrivelse af løsningen.")
    if kind == "zip":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for member in spec["members"]:
                archive.writestr(member["filename"], build(member))
        return buffer.getvalue()
    raise ValueError(f"unknown generated type {kind}")


def with_attachments(raw: bytes, specs: list[dict[str, Any]]) -> bytes:
    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    for spec in specs:
        msg.add_attachment(build(spec), maintype="application", subtype="octet-stream",
                           filename=spec["filename"])
    return msg.as_bytes()
