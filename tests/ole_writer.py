"""A minimal OLE compound file ([MS-CFB] version 3) for the tests: storages and streams at
given paths, every stream padded to the 4,096-byte mini-stream cutoff so that only the FAT is
needed. olefile reads OLE files but cannot write new ones, and no sample of a Word 97 file
with VBA ships with oletools; this writes the structure [MS-OVBA] section 2.2.1 defines (a
storage with a PROJECT stream and a VBA storage with `dir` and `_VBA_PROJECT` streams), which
is what oletools.olevba looks for. The streams hold placeholder bytes, not compiled VBA.
"""

from __future__ import annotations

import struct

SECTOR = 512
CUTOFF = 4096
FREE, END, FAT_SECTOR, NO_STREAM = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF


def ole_file(streams: dict[str, bytes]) -> bytes:
    """An OLE file holding `streams` ("Macros/VBA/dir" -> bytes); storages are made from
    the paths. At most a few dozen streams (one FAT sector)."""
    tree: dict[str, dict[str, object]] = {}
    for path, data in streams.items():
        node = tree
        *folders, name = path.split("/")
        for folder in folders:
            node = node.setdefault(folder, {})  # type: ignore[assignment]
        node[name] = data
    entries: list[dict[str, object]] = [{"name": "Root Entry", "type": 5, "kids": tree}]
    _number(entries, 0)
    directory_sectors = (len(entries) + 3) // 4
    next_sector = 1 + directory_sectors
    fat = [FAT_SECTOR] + [i + 2 for i in range(directory_sectors - 1)] + [END]
    body = b""
    for entry in entries:
        data = entry.get("data")
        if isinstance(data, bytes):
            padded = data.ljust(CUTOFF, b"\0")
            padded += b"\0" * (-len(padded) % SECTOR)
            count = len(padded) // SECTOR
            entry["start"], entry["size"] = next_sector, len(padded)
            fat += [next_sector + i + 1 for i in range(count - 1)] + [END]
            next_sector += count
            body += padded
    assert len(fat) <= SECTOR // 4, "one FAT sector only"
    fat_bytes = struct.pack(f"<{len(fat)}I", *fat).ljust(SECTOR, b"\xff")
    directory = b"".join(_entry(e) for e in entries) + _EMPTY_ENTRY * (
        directory_sectors * 4 - len(entries))
    header = (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 16
              + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6) + b"\0" * 6
              + struct.pack("<IIIIIIIII", 0, 1, 1, 0, CUTOFF, END, 0, END, 0)
              + struct.pack("<I", 0) + b"\xff" * (108 * 4))
    assert len(header) == SECTOR
    return header + fat_bytes + directory + body


def _number(entries: list[dict[str, object]], index: int) -> None:
    """Append each child of entries[index] (depth first) and link them: the parent's child
    is the first, each child's right sibling the next (a degenerate but valid tree)."""
    kids = entries[index]["kids"]
    assert isinstance(kids, dict)
    previous: dict[str, object] | None = None
    for name, value in kids.items():
        entry: dict[str, object] = {"name": name}
        if isinstance(value, bytes):
            entry.update(type=2, data=value)
        else:
            entry.update(type=1, kids=value)
        entries.append(entry)
        number = len(entries) - 1
        if previous is None:
            entries[index]["child"] = number
        else:
            previous["right"] = number
        previous = entry
        if entry["type"] == 1:
            _number(entries, number)


def _entry(entry: dict[str, object]) -> bytes:
    name = str(entry["name"]).encode("utf-16-le") + b"\0\0"
    return (name.ljust(64, b"\0") + struct.pack("<HBB", len(name), int(str(entry["type"])), 1)
            + struct.pack("<III", NO_STREAM, _id(entry, "right"), _id(entry, "child"))
            + b"\0" * 16 + struct.pack("<I", 0) + b"\0" * 16
            + struct.pack("<IQ", _id(entry, "start", END), _id(entry, "size", 0)))


def _id(entry: dict[str, object], key: str, default: int = NO_STREAM) -> int:
    value = entry.get(key, default)
    assert isinstance(value, int)
    return value


_EMPTY_ENTRY = b"\0" * 64 + struct.pack("<HBB", 0, 0, 0) + struct.pack(
    "<III", NO_STREAM, NO_STREAM, NO_STREAM) + b"\0" * 36 + struct.pack("<IQ", 0, 0)


def word97_with_vba() -> bytes:
    """A .doc as Word 97-2003 stores a VBA project (the `Macros` storage)."""
    return ole_file({"WordDocument": b"\xec\xa5" + b"\0" * 100,
                     "Macros/PROJECT": b'ID="{00000000-0000-0000-0000-000000000000}"\r\n',
                     "Macros/VBA/dir": b"\x01" + b"\0" * 50,
                     "Macros/VBA/_VBA_PROJECT": b"\xcc\x61\xff\xff\x00\x00\x00"})


def word97_plain() -> bytes:
    """A .doc without macros."""
    return ole_file({"WordDocument": b"\xec\xa5" + b"\0" * 100,
                     "1Table": b"\0" * 64})
