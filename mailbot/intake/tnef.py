"""Outlook's `winmail.dat` (`application/ms-tnef`): the files inside it, as if attached directly.

Outlook and Exchange send rich-text mail as a TNEF stream ([MS-OXTNEF]: Transport Neutral
Encapsulation Format): the mail's attachments travel inside one `winmail.dat` part. The
`tnefparse` library reads the stream; this module only decides whether a part is TNEF, keeps
hostile input away from it, and names the files.

Hostile input: tnefparse is pure Python and trusts the counts in the stream (a property list
that claims 4 billion properties makes it loop for hours, a multi-valued property with such a
count fills the memory), and it copies the rest of the stream for every object it reads. So
before tnefparse sees a stream, `stream_problem` walks its objects ([MS-OXTNEF] 2.1.3.1:
level, id, length, data, checksum) and the MAPI property lists inside them ([MS-OXTNEF]
2.1.3.4 MsgPropertyList: count, then tag, value) with every count checked against the bytes
that remain, within MAX_TNEF_BYTES, MAX_TNEF_OBJECTS and MAX_MAPI_PROPERTIES. A stream that
fails stays one attachment, classified as `other` with the reason.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from pathlib import PurePosixPath

TNEF_SIGNATURE = b"\x78\x9f\x3e\x22"  # 0x223E9F78, little-endian ([MS-OXTNEF] 2.1.3.1)
TNEF_TYPES = frozenset({"application/ms-tnef", "application/vnd.ms-tnef"})
MAX_TNEF_BYTES = 25 * 1024 * 1024
MAX_TNEF_OBJECTS = 500
MAX_MAPI_PROPERTIES = 5000
MAX_TNEF_FILES = 100  # as many as a ZIP may hold (mailbot.reading.extract.MAX_ZIP_ENTRIES)

_ATT_ATTACH_DATA = 0x800F  # attAttachData: the file's bytes
_ATT_ATTACH_TITLE = 0x8010  # attAttachTitle: its short name, in the OEM code page
_ATT_RECIP_TABLE = 0x9004  # attRecipTable: rows of MAPI property lists
_MAPI_LISTS = frozenset({0x9003, 0x9005})  # attMsgProps, attAttachment
_ATT_RENDDATA = 0x9002  # attAttachRendData: starts each attachment
_ATT_OEM_CODEPAGE = 0x9007
_PR_ATTACH_LONG_FILENAME = 0x3707
_MV_FLAG = 0x1000
_FIXED_SIZES = {0x0002: 2, 0x000B: 2, 0x0003: 4, 0x0004: 4, 0x000A: 4, 0x0005: 8, 0x0006: 8,
                0x0007: 8, 0x0014: 8, 0x0040: 8, 0x0048: 16, 0x0001: 0}
_VARIABLE = frozenset({0x0000, 0x000D, 0x001E, 0x001F, 0x0102})

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TnefFile:
    filename: str  # "" when the stream names none
    payload: bytes


def is_tnef(payload: bytes) -> bool:
    """The stream's own signature decides (a part named winmail.dat may be anything)."""
    return payload[:4] == TNEF_SIGNATURE


def unpack(payload: bytes) -> tuple[list[TnefFile], str]:
    """The files inside a TNEF stream, or ([], why not)."""
    problem = stream_problem(payload)
    if problem:
        return [], problem
    import tnefparse

    logging.getLogger("tnefparse").setLevel(logging.CRITICAL)  # it logs every odd property
    try:
        stream = tnefparse.TNEF(payload, do_checksum=False)
        titles = _titles(stream, _codepage(stream))
        files = []
        for index, attachment in enumerate(stream.attachments[:MAX_TNEF_FILES]):
            data = attachment.data
            if not isinstance(data, bytes) or not data:
                continue  # an embedded Outlook item or an empty attachment: no file
            name = _long_filename(attachment) or (titles[index] if index < len(titles) else "")
            files.append(TnefFile(_safe_name(name), data))
    except Exception as err:  # tnefparse raises many types on broken streams
        return [], f"winmail.dat (TNEF) could not be unpacked: {type(err).__name__}"[:300]
    return files, ""


def stream_problem(payload: bytes) -> str:
    """Why the TNEF stream must not be given to tnefparse ("" when it may)."""
    if len(payload) > MAX_TNEF_BYTES:
        return f"winmail.dat of {len(payload)} bytes exceeds {MAX_TNEF_BYTES}: not unpacked"
    if not is_tnef(payload):
        return "not a TNEF stream (no TNEF signature)"
    offset, objects = 6, 0
    while offset + 12 < len(payload):
        objects += 1
        if objects > MAX_TNEF_OBJECTS:
            return f"winmail.dat with more than {MAX_TNEF_OBJECTS} objects: not unpacked"
        name, length = struct.unpack_from("<HxxI", payload, offset + 1)
        data = payload[offset + 9: offset + 9 + length]
        if len(data) < length:
            return "winmail.dat is cut off (an object is longer than the stream)"
        if name in _MAPI_LISTS and _mapi_end(data, 0) is None:
            return "winmail.dat with a malformed property list: not unpacked"
        if name == _ATT_RECIP_TABLE and not _rows_ok(data):
            return "winmail.dat with a malformed recipient table: not unpacked"
        offset += length + 11
    return ""


def _rows_ok(data: bytes) -> bool:
    if len(data) < 4:
        return False
    (rows,) = struct.unpack_from("<I", data, 0)
    if rows > len(data) // 4 or rows > MAX_MAPI_PROPERTIES:
        return False
    at: int | None = 4
    for _ in range(rows):
        assert at is not None
        at = _mapi_end(data, at)
        if at is None:
            return False
    return True


def _mapi_end(data: bytes, start: int) -> int | None:
    """The offset after one MAPI property list at `start`, None when a count or length in it
    exceeds what remains ([MS-OXTNEF] 2.1.3.4, the layout tnefparse's decode_mapi reads)."""
    try:
        (count,) = struct.unpack_from("<I", data, start)
        at = start + 4
        if count > MAX_MAPI_PROPERTIES or count * 4 > len(data) - at:
            return None
        for _ in range(count):
            if at >= len(data):
                return at  # tnefparse skips the rest
            kind, name = struct.unpack_from("<HH", data, at)
            at += 4
            if name >= 0x8000:  # a named property: GUID, kind, id or name
                at += 16
                (named_kind,) = struct.unpack_from("<I", data, at)
                at += 4
                if named_kind == 0:
                    at += 4
                else:
                    (size,) = struct.unpack_from("<I", data, at)
                    at += 4 + size + (-size % 4)
            values = 0
            if kind & _MV_FLAG:
                kind ^= _MV_FLAG
                (values,) = struct.unpack_from("<I", data, at)
                at += 4
                if values > len(data) - at:
                    return None
            for _ in range(values or 1):
                end = _value_end(data, at, kind, values > 0)
                if end is None or end > len(data):
                    return None
                at = end
            if (values or 1) % 2 and kind in (0x0002, 0x000B):
                at += 2  # tnefparse's padding of 16-bit values
        return at
    except struct.error:
        return None


def _value_end(data: bytes, at: int, kind: int, multi: bool) -> int | None:
    if kind in _FIXED_SIZES:
        return at + _FIXED_SIZES[kind]
    if kind not in _VARIABLE:
        return None  # tnefparse stops at an unknown type; so does this check
    count = 1
    if not multi:
        (count,) = struct.unpack_from("<I", data, at)
        at += 4
        if count * 4 > len(data) - at:
            return None
    for _ in range(count):
        (size,) = struct.unpack_from("<I", data, at)
        at += 4 + size + (-size % 4)
    return at


def _codepage(stream: object) -> str:
    codepage = getattr(stream, "codepage", None)
    return codepage if isinstance(codepage, str) and codepage else "cp1252"


def _titles(stream: object, codepage: str) -> list[str]:
    """Each attachment's attAttachTitle, decoded from the stream's OEM code page (tnefparse
    decodes it as UTF-8 and fails on "æ" in cp1252)."""
    titles: list[str] = []
    for obj in getattr(stream, "objects", []):
        if obj.name == _ATT_RENDDATA:
            titles.append("")
        elif obj.name == _ATT_ATTACH_TITLE and titles and isinstance(obj.data, bytes):
            titles[-1] = _decode(obj.data.rstrip(b"\x00"), codepage)
    return titles


def _long_filename(attachment: object) -> str:
    for attr in getattr(attachment, "mapi_attrs", []):
        if getattr(attr, "name", None) == _PR_ATTACH_LONG_FILENAME:
            try:
                value = attr.data
            except Exception:
                return ""
            if isinstance(value, list):
                value = value[0] if value else ""
            if isinstance(value, bytes):
                value = _decode(value, "cp1252")
            return str(value).strip("\x00")
    return ""


def _decode(raw: bytes, codepage: str) -> str:
    for encoding in ("utf-8", codepage, "cp1252"):
        try:
            return raw.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            continue
    return raw.decode("latin-1")


def _safe_name(name: str) -> str:
    """A display name only: no folders, no control characters."""
    base = PurePosixPath(name.replace("\\", "/")).name
    return "".join(ch for ch in base if ch >= " " and ch != "\x7f")[:200]
