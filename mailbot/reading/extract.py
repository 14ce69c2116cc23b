"""Text from attached documents: PDF, DOCX, ODT, XLSX, and the members of a ZIP.

Only as much text as a decision needs is read (the first pages or paragraphs), the file type
is sniffed from its bytes (the name may lie), and every failure becomes a reason, not a crash.
"""

from __future__ import annotations

import hashlib
import io
import re
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Generic, TypeVar

from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeXml

from mailbot.vocabulary import Hazard

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
_OOXML_OR_ODF = (*_CONTAINERS, "pptx", "pptm")


@dataclass(frozen=True)
class Extracted:
    text: str
    problem: str = ""  # why no text could be read ("" when fine)


@dataclass(frozen=True)
class Member:
    name: str
    payload: bytes | None  # None when a limit kept it unread
    problem: str = ""


# Mach-O (32/64 bit, either byte order) and universal binaries; CAFEBABE is a Java class too
_MACH_O = frozenset({b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe",
                     b"\xcf\xfa\xed\xfe", b"\xca\xfe\xba\xbe"})
PROGRAMS = frozenset({"exe", "elf", "macho", "script"})  # sniff() types that run
# names Windows (or a Java runtime) runs or installs on a double click, whatever the bytes
EXECUTABLE_EXTENSIONS = frozenset({
    "exe", "com", "bat", "cmd", "js", "jse", "vbs", "vbe", "wsf", "wsh", "ps1", "psm1",
    "scr", "pif", "msi", "msp", "jar", "hta", "cpl", "lnk", "dll", "reg", "sh", "appx"})


def sniff(payload: bytes) -> str:
    """The real type from the first bytes: tnef, pdf, zip, ole, exe (PE "MZ"), elf, macho,
    script ("#!"), image, text or unknown."""
    head = payload[:1024]
    if head.startswith(b"\x78\x9f\x3e\x22"):
        return "tnef"  # Outlook's winmail.dat ([MS-OXTNEF]); may hold "%PDF-" near its start
    # magic numbers and "#!" at offset 0 first: a ZIP that stores a PDF, or a program with
    # "%PDF-" in its first kilobyte, is a ZIP or a program, not a PDF
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "zip"
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return "ole"  # legacy .doc/.xls/.msg
    if head.startswith(b"MZ"):
        return "exe"
    if head.startswith(b"\x7fELF"):
        return "elf"
    if head[:4] in _MACH_O:
        return "macho"
    if head.startswith(b"#!"):
        return "script"  # a shell, Python, … script: the kernel runs it by this line
    if b"%PDF-" in head:  # ISO 32000 lets the header start anywhere in the first 1,024 bytes
        return "pdf"
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
    """The beginning of a document's text (at most MAX_CHARS characters), by its real type
    and its extension; `problem` says why there is none. Read once per (SHA-256 of the
    bytes, extension) while the result stays in TEXTS: the same document attached to a
    brief, inside its ZIP and again in a follow-up is parsed once."""
    return TEXTS.recall((_digest(payload), extension(filename)),
                        lambda: _extract_text(filename, payload))


def _extract_text(filename: str, payload: bytes) -> Extracted:
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
    """Why an Office container (a ZIP of XML) must not be opened ("" when it may): not a
    ZIP, or a dangerous shape (container_danger), or an XML part that is not well-formed."""
    problem, _ = _container_check(payload)
    return problem


def container_danger(payload: bytes) -> str:
    """Why an Office container is dangerous to open ("" when it is not): its directory
    promises a bomb (declared sizes, entry count, compression ratio: SCENARIOS F2), or an
    XML part declares a DTD (entities: billion laughs, external entities). A container that
    is merely broken is not dangerous: it stays a document that cannot be read."""
    problem, dangerous = _container_check(payload)
    return problem if dangerous else ""


def _container_check(payload: bytes) -> tuple[str, bool]:
    """(why not to open it, whether that is a danger); ("", False) for a sound container.
    Once per SHA-256 of the bytes while it stays in CONTAINERS (hazard and extract_text both
    ask)."""
    return CONTAINERS.recall((_digest(payload), ""), lambda: _check_container(payload))


def _check_container(payload: bytes) -> tuple[str, bool]:
    """Only the directory and each XML part's prolog are read; nothing is inflated whole."""
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            return _check_parts(archive)
    except (zipfile.BadZipFile, ValueError) as err:
        return f"not a readable Office file: {err}"[:300], False


def _check_parts(archive: zipfile.ZipFile) -> tuple[str, bool]:
    infos = archive.infolist()
    if len(infos) > MAX_CONTAINER_ENTRIES:
        return f"Office file with {len(infos)} parts (limit {MAX_CONTAINER_ENTRIES})", True
    total = sum(i.file_size for i in infos)
    if total > MAX_CONTAINER_TOTAL:
        return (f"Office file expands to {total} bytes (limit {MAX_CONTAINER_TOTAL}): not "
                "read", True)
    for info in infos:
        ratio = info.file_size / max(1, info.compress_size)
        if info.filename.endswith(".xml") and (info.file_size > MAX_CONTAINER_XML
                                               or ratio > MAX_ZIP_RATIO * 5):
            return (f"Office part {info.filename} expands to {info.file_size} bytes (ratio "
                    f"{ratio:.0f}): possible bomb, not read", True)
    return _declarations_check(archive, infos)


_XML_PARTS = (".xml", ".rels")
# a prolog is fed in pieces this big: an Office part's root start tag, namespaces and all,
# ends within the first one or two (the old 16 KB iterparse read parsed whole paragraphs)
_PROLOG_PIECE = 1024


def _declarations_check(archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo]
                        ) -> tuple[str, bool]:
    """An XML part of an Office container that must not reach a parser: a DTD (entity
    declarations: billion laughs; external entities: file or network reads) is a danger, a
    part whose prolog is not XML is not. No Office application writes a DTD (the Open
    Packaging Conventions, ECMA-376 Part 2, do not allow DTD declarations in a package's
    XML). python-docx and openpyxl parse with lxml, so each part's prolog is read here with
    defusedxml first (https://pypi.org/project/defusedxml/), up to its root element's start
    tag only: a DTD must come before it (XML 1.0 section 2.8). A part broken further in is
    python-docx's to find (extract_text: "unreadable docx")."""
    for info in infos:
        if not info.filename.lower().endswith(_XML_PARTS):
            continue
        try:
            _read_prolog(archive, info)
        except DefusedXmlException as err:
            return (f"Office part {info.filename}: {type(err).__name__}: not read"[:300],
                    True)
        except (SafeXml.ParseError, zipfile.BadZipFile, OSError, ValueError,
                RuntimeError, NotImplementedError) as err:
            return f"Office part {info.filename} is not readable XML: {err}"[:300], False
    return "", False


class _RootReached(Exception):
    """The root element's start tag was parsed: the prolog is over."""


class _StopAtRoot:
    """A parser target that ends the parse at the root element's start tag (expat calls
    `start` only for a well-formed tag, after any DOCTYPE has reached defusedxml)."""

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        raise _RootReached


def _read_prolog(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    """Parse one part with defusedxml up to its root element's start tag, inflating and
    feeding _PROLOG_PIECE bytes at a time. Raises DefusedXmlException (a DTD, an entity),
    ParseError (no root element, or a prolog that is not XML) or zipfile's errors."""
    parser = SafeXml.DefusedXMLParser(target=_StopAtRoot(), forbid_dtd=True)
    try:
        with archive.open(info) as part:
            while piece := part.read(_PROLOG_PIECE):
                parser.feed(piece)
        parser.close()  # the whole part without a root element: ParseError
    except _RootReached:
        return


def hazard(filename: str, payload: bytes) -> tuple[Hazard | None, str]:
    """_hazard's finding, found once per (SHA-256 of the bytes, extension) while it stays in
    HAZARDS (both depend on nothing else: not on the rest of the name, not on config)."""
    return HAZARDS.recall((_digest(payload), extension(filename)),
                          lambda: _hazard(filename, payload))


def _hazard(filename: str, payload: bytes) -> tuple[Hazard | None, str]:
    """What makes a file dangerous to forward or impossible to read, from its bytes and its
    name, with the reason for the case record; (None, "") for a plain document.

    In this order, so that a more serious finding is never hidden by a lesser one: a
    program (PE, ELF, Mach-O, a "#!" script, or a name Windows runs: EXECUTABLE_EXTENSIONS);
    a password (PDF, ZIP member, OLE-wrapped OOXML per [MS-OFFCRYPTO] section 2.3.4); bytes
    that are not the type the name promises; an Office container that must not be opened
    (bomb, DTD); VBA macros ([MS-OVBA] section 2.2.1; OLE files via oletools)."""
    actual = sniff(payload)
    ext = extension(filename)
    if actual in PROGRAMS:
        return Hazard.EXECUTABLE, f"an executable program ({actual}), not a document"
    if ext in EXECUTABLE_EXTENSIONS:
        return Hazard.EXECUTABLE, f"a .{ext} file runs as a program: not a document"
    locked = encryption(actual, payload)
    if locked:
        return Hazard.ENCRYPTED, locked
    mismatch = type_mismatch(filename, payload)
    if mismatch:
        return Hazard.MISMATCH, mismatch
    if actual == "zip" and ext in _OOXML_OR_ODF:
        danger = container_danger(payload)
        if danger:
            return Hazard.UNREADABLE, danger
    if has_macros(actual, payload):
        return Hazard.MACRO, "contains VBA macros"
    return None, ""


def encryption(actual: str, payload: bytes) -> str:
    """Why the file cannot be read without a password, "" when it can. `actual` is
    sniff(payload). A PDF with only an owner password (printing or copying restricted)
    opens in every reader, as it does here with the empty user password: not encrypted in
    this sense (ISO 32000-1 section 7.6.3.1)."""
    if actual == "pdf":
        return "encrypted PDF (password protected)" if _pdf_locked(payload) else ""
    if actual == "zip":
        try:
            with zipfile.ZipFile(io.BytesIO(payload)) as archive:
                if any(info.flag_bits & 0x1 for info in archive.infolist()):
                    return "password-protected ZIP"
        except (zipfile.BadZipFile, ValueError):
            return ""
    if actual == "ole" and _ole_streams(payload) >= {"encryptioninfo", "encryptedpackage"}:
        return "password-protected Office file (EncryptionInfo, EncryptedPackage)"
    return ""


# The name /Encrypt as it may be written in a PDF, any character as #XX (ISO 32000-1 section
# 7.3.5). An encrypted PDF names its encryption dictionary in the trailer or the cross-reference
# stream's dictionary, which are never compressed nor encrypted (sections 7.5.4, 7.5.8, 7.6.1).
_ENCRYPT_NAME = re.compile(b"/" + b"".join(b"(?:%c|#%X|#%x)" % (c, c, c) for c in b"Encrypt"))


def _pdf_locked(payload: bytes) -> bool:
    """True when `payload`, a PDF, opens only with a password. A PDF that never names
    /Encrypt is not encrypted, and is answered without pypdf, which takes a tenth of a second
    to import (`mailbot inspect` of a brief with PDFs whose names say what they are)."""
    if not _ENCRYPT_NAME.search(payload):
        return False
    import pypdf

    try:
        reader = pypdf.PdfReader(io.BytesIO(payload))
        if not reader.is_encrypted:
            return False
        return not reader.decrypt("")
    except Exception:  # a broken PDF is unreadable, not encrypted: extract_text says why
        return False


def _ole_streams(payload: bytes) -> set[str]:
    """The lower-cased names of an OLE file's top-level streams (empty when unreadable)."""
    import olefile

    try:
        with olefile.OleFileIO(payload) as ole:
            return {entry[0].lower() for entry in ole.listdir(streams=True, storages=False)
                    if len(entry) == 1}
    except Exception:  # olefile raises OSError and its own types on broken files
        return set()


def has_macros(actual: str, payload: bytes) -> bool:
    """True when the file carries a VBA project: an OOXML part named vbaProject.bin (a .docm,
    .xlsm, .pptm, or a .docx that really holds one: ECMA-376 names the part by its
    relationship, so the name is checked anywhere in the package) or, in an OLE file
    (.doc, .xls), a VBA storage as oletools.olevba finds it ([MS-OVBA] section 2.2.1).
    Of an OOXML file only the ZIP's directory is read; of an OLE file oletools reads the
    directory and scans the streams for VBA (bounded by `imap.max_message_mb`). No macro is
    decompressed or run."""
    if actual == "zip":
        try:
            with zipfile.ZipFile(io.BytesIO(payload)) as archive:
                return any(name.replace("\\", "/").lower().rsplit("/", 1)[-1]
                           == "vbaproject.bin" for name in archive.namelist())
        except (zipfile.BadZipFile, ValueError):
            return False
    if actual == "ole":
        from oletools.olevba import VBA_Parser

        try:
            parser = VBA_Parser("attachment", data=payload)
            try:
                return bool(parser.detect_vba_macros())
            finally:
                parser.close()
        except Exception:  # oletools raises its own types on files it cannot parse
            return False
    return False


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
        # defusedxml: an entity declaration (billion laughs) or an external entity raises
        # instead of expanding or fetching (https://pypi.org/project/defusedxml/)
        root = SafeXml.fromstring(archive.read(info))
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


_T = TypeVar("_T")
_ENTRY_CHARS = 200  # what an entry costs besides its text: key, tuple, object headers


def _digest(payload: bytes) -> bytes:
    return hashlib.sha256(payload).digest()


class ReadingMemo(Generic[_T]):
    """What reading a payload found, by (SHA-256 of its bytes, extension), least recently
    used first out. Bounded by characters kept (the text and reasons in the results, plus
    _ENTRY_CHARS an entry), not by entries alone: `max_chars` 8,000,000 is about 16 MB of
    str at most. In-process (not stored with the blob): a finding depends on this code's
    rules, which an upgrade may change, and a daemon meets the same bytes again within the
    hours a case is busy. Thread-safe; a value is computed outside the lock (two threads may
    both compute it once; they find the same)."""

    def __init__(self, max_chars: int, size: Callable[[_T], int]) -> None:
        self.max_chars = max_chars
        self._size = size
        self._entries: OrderedDict[tuple[bytes, str], tuple[_T, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.chars = 0
        self.hits = 0
        self.misses = 0

    def recall(self, key: tuple[bytes, str], compute: Callable[[], _T]) -> _T:
        """The value remembered under `key` (digest, extension), else compute()'s, kept."""
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return found[0]
            self.misses += 1
        value = compute()
        cost = self._size(value) + _ENTRY_CHARS
        with self._lock:
            if key not in self._entries and cost <= self.max_chars:
                self._entries[key] = (value, cost)
                self.chars += cost
                while self.chars > self.max_chars:
                    _, (_, dropped) = self._entries.popitem(last=False)
                    self.chars -= dropped
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.chars = self.hits = self.misses = 0


TEXTS: ReadingMemo[Extracted] = ReadingMemo(8_000_000, lambda e: len(e.text) + len(e.problem))
HAZARDS: ReadingMemo[tuple[Hazard | None, str]] = ReadingMemo(1_000_000, lambda h: len(h[1]))
CONTAINERS: ReadingMemo[tuple[str, bool]] = ReadingMemo(1_000_000, lambda c: len(c[0]))
