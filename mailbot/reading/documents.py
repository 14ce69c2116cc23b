"""The kind of each attached document: from its file name, else from its own text."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from mailbot.intake.parse import Attachment
from mailbot.reading.extract import extension, extract_text, sniff, type_mismatch, zip_members
from mailbot.rules import Rules

_SEPARATORS = re.compile(r"[_\-.+()\[\]]+")
TITLE_LINES = 3


@dataclass(frozen=True)
class DocumentReading:
    filename: str  # ZIP members as "archive.zip/member.pdf"
    kind: str
    note: str = ""  # why it is `other`, or how the kind was found
    text: str = ""  # the beginning of its text, when it had to be read
    source: str = ""  # the attachment it came from (the ZIP, for a member)


def kind_from_filename(filename: str, rules: Rules) -> str:
    stem = PurePosixPath(filename.replace("\\", "/")).stem
    # "Teknisk_beskrivelse-v2" and "Teknisk beskrivelse v2" read the same.
    spaced = " ".join(_SEPARATORS.sub(" ", stem).split())
    for kind in rules.kinds:
        if any(p.search(stem) or p.search(spaced) for p in kind.patterns):
            return kind.id
    return "other"


def kind_from_text(text: str, rules: Rules) -> str:
    """The title (first lines) decides first; only then the first pages."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    title = "\n".join(lines[:TITLE_LINES])
    for scope in (title, text):
        for kind in rules.kinds:
            if any(p.search(scope) for p in kind.content_patterns):
                return kind.id
    return "other"


def classify(attachment: Attachment, rules: Rules) -> list[DocumentReading]:
    """One reading per document; a ZIP gives one per member (no nested archives)."""
    name = attachment.filename
    if extension(name) == "zip" or (sniff(attachment.payload) == "zip"
                                    and extension(name) not in _OFFICE):
        return _classify_zip(attachment, rules)
    reading = _classify_file(name, attachment.payload, rules)
    return [DocumentReading(reading.filename, reading.kind, reading.note, reading.text, name)]


_OFFICE = {"docx", "docm", "xlsx", "xlsm", "odt", "ods", "pptx"}


def _classify_file(name: str, payload: bytes, rules: Rules) -> DocumentReading:
    mismatch = type_mismatch(name, payload)
    if mismatch:
        return DocumentReading(name, "other", mismatch)
    if sniff(payload) in ("exe", "elf"):
        return DocumentReading(name, "other", "an executable program, not a document")
    if sniff(payload) == "image":
        # a screenshot of a document never satisfies the requirement for it
        return DocumentReading(name, "other", "an image, not a document")
    by_name = kind_from_filename(name, rules)
    if by_name != "other":
        return DocumentReading(name, by_name, "file name")
    extracted = extract_text(name, payload)
    if extracted.problem:
        return DocumentReading(name, "other", extracted.problem)
    by_text = kind_from_text(extracted.text, rules)
    if by_text != "other":
        return DocumentReading(name, by_text, "document text", extracted.text)
    return DocumentReading(name, "other", "neither the name nor the text names a document kind",
                           extracted.text)


def _classify_zip(attachment: Attachment, rules: Rules) -> list[DocumentReading]:
    source = attachment.filename
    members, problem = zip_members(attachment.payload)
    if problem:
        return [DocumentReading(source, "other", problem, source=source)]
    readings = []
    for member in members:
        shown = f"{source}/{member.name}"
        if member.payload is None:
            readings.append(DocumentReading(shown, "other", member.problem, source=source))
        elif extension(member.name) == "zip" or (sniff(member.payload) == "zip" and \
                extension(member.name) not in _OFFICE):
            readings.append(DocumentReading(shown, "other", "nested archive not opened",
                                            source=source))
        else:
            reading = _classify_file(member.name, member.payload, rules)
            readings.append(DocumentReading(shown, reading.kind, reading.note, reading.text,
                                            source))
    return readings or [DocumentReading(source, "other", "empty archive", source=source)]
