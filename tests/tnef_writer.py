"""Writes small TNEF streams (Outlook's winmail.dat) for tests, following [MS-OXTNEF]
section 2.1.3: the signature 0x223E9F78, a legacy key, then attributes, each
level (1 message, 2 attachment) | id (16 bits) | type (16 bits) | length | data | checksum
(the sum of the data bytes modulo 65536). tnefparse reads TNEF but does not write it.

Each attachment is attAttachRendData (which starts it), attAttachTitle (its short name in the
OEM code page), attAttachData (its bytes) and, when given a long name, attAttachment: a MAPI
property list (2.1.3.4) with PidTagAttachLongFilename (0x3707) as a Unicode string."""

from __future__ import annotations

import struct

SIGNATURE = struct.pack("<I", 0x223E9F78)
LEVEL_MESSAGE, LEVEL_ATTACHMENT = 1, 2
T_BYTE, T_STRING, T_DWORD = 0x0006, 0x0007, 0x0008


def attribute(level: int, attr_id: int, attr_type: int, data: bytes) -> bytes:
    checksum = sum(data) % 65536
    return (struct.pack("<BHHI", level, attr_id, attr_type, len(data)) + data
            + struct.pack("<H", checksum))


def unicode_property(tag: int, text: str) -> bytes:
    """One PT_UNICODE (0x001F) property: type, tag, one value: length, UTF-16LE, padding."""
    value = (text + "\0").encode("utf-16-le")
    padding = b"\0" * (-len(value) % 4)
    return struct.pack("<HHII", 0x001F, tag, 1, len(value)) + value + padding


def mapi_list(*properties: bytes) -> bytes:
    return struct.pack("<I", len(properties)) + b"".join(properties)


def tnef(files: list[tuple[str, bytes, str]], codepage: int = 1252, key: int = 0x4711,
         body_only: bool = False) -> bytes:
    """A TNEF stream carrying `files` as (short name, bytes, long name or "")."""
    out = [SIGNATURE, struct.pack("<H", key),
           attribute(LEVEL_MESSAGE, 0x9006, T_DWORD, struct.pack("<I", 0x00010000)),
           attribute(LEVEL_MESSAGE, 0x9007, T_BYTE, struct.pack("<II", codepage, 0)),
           attribute(LEVEL_MESSAGE, 0x8008, T_STRING, b"IPM.Microsoft Mail.Note\0")]
    if body_only:
        out.append(attribute(LEVEL_MESSAGE, 0x800C, 0x0002, b"Hej, se teksten ovenfor.\0"))
    for short, data, long_name in files:
        rend = struct.pack("<HiHHI", 1, -1, 0, 0, 0)
        out.append(attribute(LEVEL_ATTACHMENT, 0x9002, T_BYTE, rend))
        if short:
            out.append(attribute(LEVEL_ATTACHMENT, 0x8010, T_STRING,
                                 short.encode(f"cp{codepage}") + b"\0"))
        out.append(attribute(LEVEL_ATTACHMENT, 0x800F, T_BYTE, data))
        if long_name:
            out.append(attribute(LEVEL_ATTACHMENT, 0x9005, T_BYTE,
                                 mapi_list(unicode_property(0x3707, long_name))))
    return b"".join(out)
