"""Text from attached documents: PDF, DOCX, ODT, XLSX, and the members of a ZIP.

Only as much text as a decision needs is read (the first pages or paragraphs), the file type
is sniffed from its bytes (the name may lie), and every failure becomes a reason, not a crash.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath
from xml.etree import ElementTree

MAX_CHARS = 6000  # enough for a title and the first page or two
MAX_PDF_PAGES = 3
MAX_DOCX_PARAGRAPHS = 200
MAX_XLSX_CELLS = 2000
# ZIP limits (SCENARIOS F2): entries, total uncompressed bytes, compression ratio per member.
MAX_ZIP_ENTRIES = 100
MAX_ZIP_TOTAL = 50 * 1024 * 1024
MAX_ZIP_RATIO = 100
MAX_MEMBER_READ = 15 * 1024 * 1024
# Office containers (DOCX, XLSX, ODT are ZIPs of XML) are checked the same way BEFORE a parser
# opens them: a 108 KB DOCX whose document.xml expands to 20 MB took 274 MB of memory in
# python-docx (SCENARIOS R9, F2). A real contract's document.xml is well below 10 MB.
MAX_CONTAINER_ENTRIES = 1000
MAX_CONTAINER_XML = 10 * 1024 * 1024
MAX_CONTAINER_TOTAL = 50 * 1024 * 1024
_CONTAINERS = ("docx", "docm", "xlsx", "xlsm", "odt", "ods")


@dataclass(frozen=True)
class Extracted:
    text: str
    problem: str = ""  # why no text could be read ("" when fine)


@dataclass(frozen=True)
class Member:
    name: str
    payload: bytes | None  # None when a limit kept it unread
    problem: str = ""


def sniff(payload: bytes) -> str:
    """The real type from the first bytes: tnef, pdf, zip, ole, exe, elf, image, text or
    unknown."""
    head = payload[:1024]
    if head.startswith(b"\x78\x9f\x3e\x22"):
        return "tnef"  # Outlook's winmail.dat ([MS-OXTNEF]); may hold "%PDF-" near its start
    if b"%PDF-" in head:
        return "pdf"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "zip"
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return "ole"  # legacy .doc/.xls/.msg
    if head.startswith(b"MZ"):
        return "exe"
    if head.startswith(b"\x7fELF"):
        return "elf"
    if head[:8].startswith((b"\x89PNG", b"\xff\xd8\xff", b"GIF8")):
        return "image"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "unknown"
    return "text"


def extension(filename: str) -> str:
    return PurePosixPath(filename.replace("\\", "/")).suffix.lower().lstrip(".")


_EXPECTED = {"pdf": "pdf", "docx": "zip", "docm": "zip", "xlsx": "zip", "xlsm": "zip",
             "odt": "zip", "ods": "zip", "zip": "zip", "doc": "ole", "xls": "ole"}


def type_mismatch(filename: str, payload: bytes) -> str:
    """A reason when the name promises a type the bytes are not (F4), else ""."""
    expected = _EXPECTED.get(extension(filename))
    actual = sniff(payload)
    if expected is None or expected == actual:
        return ""
    return f"named .{extension(filename)} but the content is {actual}"


def extract_text(filename: str, payload: bytes) -> Extracted:
    """The beginning of a document's text, by its real type and its extension."""
    mismatch = type_mismatch(filename, payload)
    if mismatch:
        return Extracted("", mismatch)
    ext = extension(filename)
    if ext in _CONTAINERS:
        problem = container_problem(payload)
        if problem:
            return Extracted("", problem)
    try:
        if sniff(payload) == "pdf":
            return _pdf(payload)
        if ext in ("docx", "docm"):
            return _docx(payload)
        if ext in ("odt", "ods"):
            return _odf(payload)
        if ext in ("xlsx", "xlsm"):
            return _xlsx(payload)
        if ext in ("txt", "md", "csv"):
            return Extracted(payload[:MAX_CHARS].decode("utf-8", "replace"))
    except Exception as err:  # every parser raises its own types on broken files
        return Extracted("", f"unreadable {ext or 'file'}: {type(err).__name__}: {err}"[:300])
    return Extracted("", f"no text reader for .{ext or '?'}")


def container_problem(payload: bytes) -> str:
    """Why an Office container (a ZIP of XML) must not be opened, from its directory alone
    (declared sizes, entry count, compression ratio); "" when it may. Nothing is inflated."""
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, ValueError) as err:
        return f"not a readable Office file: {err}"[:300]
    if len(infos) > MAX_CONTAINER_ENTRIES:
        return f"Office file with {len(infos)} parts (limit {MAX_CONTAINER_ENTRIES})"
    total = sum(i.file_size for i in infos)
    if total > MAX_CONTAINER_TOTAL:
        return f"Office file expands to {total} bytes (limit {MAX_CONTAINER_TOTAL}): not read"
    for info in infos:
        ratio = info.file_size / max(1, info.compress_size)
        if info.filename.endswith(".xml") and (info.file_size > MAX_CONTAINER_XML
                                               or ratio > MAX_ZIP_RATIO * 5):
            return (f"Office part {info.filename} expands to {info.file_size} bytes (ratio "
                    f"{ratio:.0f}): possible bomb, not read")
    return ""


def _pdf(payload: bytes) -> Extracted:
    import pypdf

    reader = pypdf.PdfReader(io.BytesIO(payload))
    if reader.is_encrypted:
        try:
            if not reader.decrypt(""):
                return Extracted("", "encrypted PDF (password protected)")
        except Exception:
            return Extracted("", "encrypted PDF (password protected)")
    parts: list[str] = []
    for page in reader.pages[:MAX_PDF_PAGES]:
        parts.append(page.extract_text() or "")
        if sum(map(len, parts)) >= MAX_CHARS:
            break
    text = "\n".join(parts)[:MAX_CHARS]
    return Extracted(text, "" if text.strip() else "PDF without a text layer (scanned?)")


def _docx(payload: bytes) -> Extracted:
    import docx

    document = docx.Document(io.BytesIO(payload))
    lines: list[str] = []
    for paragraph in document.paragraphs[:MAX_DOCX_PARAGRAPHS]:
        lines.append(paragraph.text)
        if sum(map(len, lines)) >= MAX_CHARS:
            break
    if sum(map(len, lines)) < MAX_CHARS:
        for table in document.tables[:5]:
            for row in table.rows[:50]:
                lines.append("\t".join(cell.text for cell in row.cells))
    return Extracted("\n".join(lines)[:MAX_CHARS])


def _odf(payload: bytes) -> Extracted:
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        info = archive.getinfo("content.xml")
        if info.file_size > MAX_MEMBER_READ:
            return Extracted("", "ODF content.xml too large")
        root = ElementTree.fromstring(archive.read(info))
    lines = []
    for element in root.iter():
        if element.tag.endswith("}p") or element.tag.endswith("}h"):
            lines.append("".join(element.itertext()))
        if sum(map(len, lines)) >= MAX_CHARS:
            break
    return Extracted("\n".join(lines)[:MAX_CHARS])


def _xlsx(payload: bytes) -> Extracted:
    import openpyxl

    book = openpyxl.load_workbook(io.BytesIO(payload), read_only=True, data_only=True)
    cells: list[str] = []
    try:
        for sheet in book.worksheets[:3]:
            cells.append(str(sheet.title))
            for row in sheet.iter_rows(values_only=True):
                cells.extend(str(v) for v in row if v is not None)
                if len(cells) >= MAX_XLSX_CELLS:
                    break
    finally:
        book.close()
    return Extracted("\n".join(cells)[:MAX_CHARS])


def zip_members(payload: bytes) -> tuple[list[Member], str]:
    """The members of a ZIP, each read only within the limits; never extracted to disk."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(payload))
    except (zipfile.BadZipFile, ValueError) as err:
        return [], f"not a readable ZIP: {err}"
    with archive:
        infos = [i for i in archive.infolist() if not i.is_dir()]
        if len(infos) > MAX_ZIP_ENTRIES:
            return [], f"ZIP with {len(infos)} entries (limit {MAX_ZIP_ENTRIES})"
        total = sum(i.file_size for i in infos)
        if total > MAX_ZIP_TOTAL:
            return [], f"ZIP expands to {total} bytes (limit {MAX_ZIP_TOTAL}): possible zip bomb"
        members = []
        for info in infos:
            name = _member_name(info.filename)
            ratio = info.file_size / max(1, info.compress_size)
            if ratio > MAX_ZIP_RATIO:
                members.append(Member(name, None, f"compression ratio {ratio:.0f}: zip bomb?"))
            elif info.flag_bits & 0x1:
                members.append(Member(name, None, "encrypted ZIP member"))
            elif info.file_size > MAX_MEMBER_READ:
                members.append(Member(name, None, "member too large to read"))
            else:
                try:
                    members.append(Member(name, _read_capped(archive, info)))
                except (zipfile.BadZipFile, OSError, ValueError, RuntimeError) as err:
                    members.append(Member(name, None, f"unreadable member: {err}"))
        return members, ""


def _read_capped(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """Reads at most the declared size (+1 byte): a lying header cannot make it read more."""
    with archive.open(info) as handle:
        data = handle.read(info.file_size + 1)
    if len(data) > info.file_size:
        raise ValueError("member larger than its header says")
    return data


def _member_name(name: str) -> str:
    """Display name only: no directories, no traversal, no control characters."""
    base = PurePosixPath(name.replace("\\", "/")).name
    return re.sub(r"[\x00-\x1f]", "", base)[:200] or "unnamed"
