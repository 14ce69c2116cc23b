"""The kind of each attached document: from its file name, else from its own text.

By its text, every kind is scored (`rules/documents.yaml`): a phrase naming the kind in the
title (the first lines) counts most, the same phrase further down only as a mention, and the
terms a kind defines and the headings of its structure add up. A data processing agreement
defines "dataansvarlig", "databehandler", "instruks", "underdatabehandlere", "tredjelande";
a contract "parter", "vederlag", "leverance", "ophør", "misligholdelse", "bilag". So a
document that merely mentions another kind (a contract whose appendix 3 is "the data
processing agreement") keeps its own kind.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from mailbot.intake.parse import Attachment
from mailbot.reading.extract import extension, extract_text, hazard, sniff, zip_members
from mailbot.rules import Rules
from mailbot.vocabulary import Hazard, MacroPolicy

if TYPE_CHECKING:
    from mailbot.config import AttachmentSettings

_SEPARATORS = re.compile(r"[_\-.+()\[\]]+")
TITLE_LINES = 3
TITLE_POINTS = 6  # a phrase naming the kind in the title
MENTION_POINTS = 1  # the same phrase anywhere else
TERM_POINTS = 1  # each distinct term of the kind
STRUCTURE_POINTS = 2  # each distinct heading of the kind
MIN_POINTS = 3  # below this, the text names no kind
OTHER = "other"  # the kind of a file that is no required document, or is held


@dataclass(frozen=True)
class DocumentReading:
    filename: str  # ZIP members as "archive.zip/member.pdf"
    kind: str
    note: str = ""  # why it is `other`, or how the kind was found
    text: str = ""  # the beginning of its text, when it had to be read
    source: str = ""  # the attachment it came from (the ZIP, for a member)
    hazard: str = ""  # a mailbot.vocabulary.Hazard, "" for a plain document
    # not forwarded and never counted as a document (kind `other`): every hazard but a macro
    # under `[attachments] macros = "warn"`
    held: bool = False
    # a ZIP member's own bytes, as read within extract.zip_members' limits: what is stored and
    # forwarded for it; None: the attachment's bytes (a plain file, a held archive, a member
    # a limit kept unread)
    payload: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class AttachmentPolicy:
    """`[attachments]`: what a file with macros gets, and the per-mail caps (SCENARIOS F3,
    F5). The defaults are the config's."""

    macros: MacroPolicy = MacroPolicy.WARN
    max_count: int = 40  # attachments per mail
    max_total_bytes: int = 50 * 1024 * 1024  # decoded bytes of a mail's attachments together


def attachment_policy(settings: AttachmentSettings) -> AttachmentPolicy:
    """The `[attachments]` section as read_attachments takes it (MB = 1,048,576 bytes)."""
    return AttachmentPolicy(macros=MacroPolicy(settings.macros), max_count=settings.max_count,
                            max_total_bytes=int(settings.max_total_mb * 1024 * 1024))


def read_attachments(attachments: Iterable[Attachment], rules: Rules,
                     policy: AttachmentPolicy = AttachmentPolicy()
                     ) -> tuple[DocumentReading, ...]:
    """Every attachment's readings (classify), in mail order, under `policy`.

    Caps (SCENARIOS F5): counting in mail order, the first attachment beyond
    `policy.max_count`, or the one that takes the running total of decoded bytes beyond
    `policy.max_total_bytes`, and every later one, is not read at all: a held reading with
    hazard too_many / too_large (the mail's text is still read; the caller records it
    without its bytes). A file with macros is held when `policy.macros` is quarantine. An
    archive with any held member is held whole, as the one reading of that member: its bytes
    travel together.
    """
    out: list[DocumentReading] = []
    total = 0
    for number, attachment in enumerate(attachments, 1):
        total += attachment.size
        if number > policy.max_count:
            out.append(_over_cap(attachment, Hazard.TOO_MANY,
                                 f"attachment {number} of the mail; the limit is "
                                 f"{policy.max_count} ([attachments] max_count)"))
        elif total > policy.max_total_bytes:
            out.append(_over_cap(attachment, Hazard.TOO_LARGE,
                                 f"the mail's attachments reach {total} bytes here; the limit "
                                 f"is {policy.max_total_bytes} ([attachments] max_total_mb)"))
        else:
            out.extend(_one_source(classify(attachment, rules), policy))
    return tuple(out)


def _over_cap(attachment: Attachment, cap: Hazard, why: str) -> DocumentReading:
    return DocumentReading(attachment.filename, OTHER, f"not accepted: {why}",
                           source=attachment.filename, hazard=cap, held=True)


def _one_source(readings: list[DocumentReading], policy: AttachmentPolicy
                ) -> list[DocumentReading]:
    """The readings of one attachment under the macro policy; one held reading for all of
    them when any is held (an archive whose member is held goes nowhere)."""
    readings = [_hold(r, r.note + f"; held: [attachments] macros = {policy.macros.value}")
                if r.hazard == Hazard.MACRO and policy.macros == MacroPolicy.QUARANTINE else r
                for r in readings]
    held = next((r for r in readings if r.held), None)
    # a held archive is kept as it came, the archive's bytes under its member's name
    return [replace(held, payload=None)] if held is not None else readings


def _hold(reading: DocumentReading, note: str) -> DocumentReading:
    return replace(reading, kind=OTHER, note=note, held=True)


def kinds_from_filename(filename: str, rules: Rules) -> list[str]:
    """Every kind the file name names, in the order of `rules/documents.yaml`."""
    stem = PurePosixPath(filename.replace("\\", "/")).stem
    # "Teknisk_beskrivelse-v2" and "Teknisk beskrivelse v2" read the same.
    spaced = " ".join(_SEPARATORS.sub(" ", stem).split())
    return [kind.id for kind in rules.kinds
            if any(p.search(stem) or p.search(spaced) for p in kind.patterns)]


def kind_from_filename(filename: str, rules: Rules) -> str:
    found = kinds_from_filename(filename, rules)
    return found[0] if found else "other"


@dataclass(frozen=True)
class KindScore:
    kind: str
    points: int
    found: tuple[str, ...]  # what counted: "title", "mention", terms and headings as found


def score_text(text: str, rules: Rules) -> list[KindScore]:
    """Every kind's score for a document's text, highest first (ties in rule order)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    title = "\n".join(lines[:TITLE_LINES])
    rest = "\n".join(lines[TITLE_LINES:])
    scores = []
    for kind in rules.kinds:
        found: list[str] = []
        points = 0
        if any(p.search(title) for p in kind.content_patterns):
            points += TITLE_POINTS
            found.append("title")
        elif any(p.search(rest) for p in kind.content_patterns):
            points += MENTION_POINTS
            found.append("mention")
        for pattern in kind.terms:
            match = pattern.search(text)
            if match:
                points += TERM_POINTS
                found.append(match.group(0).lower())
        for pattern in kind.structure:
            match = pattern.search(text)
            if match:
                points += STRUCTURE_POINTS
                found.append("heading " + " ".join(match.group(0).split()))
        scores.append(KindScore(kind.id, points, tuple(found)))
    return sorted(scores, key=lambda s: -s.points)  # stable: rule order on a tie


def read_kind(text: str, rules: Rules, among: list[str] | None = None) -> tuple[str, str]:
    """The kind a document's text scores highest for (at least MIN_POINTS), and why;
    ("other", why not) when none does. `among` limits the kinds (a name that names two)."""
    scores = [s for s in score_text(text, rules) if among is None or s.kind in among]
    if not scores or scores[0].points < MIN_POINTS:
        return "other", ""
    best = scores[0]
    runner = next((s for s in scores[1:] if s.points), None)
    why = f"document text: {best.kind} {best.points} points ({', '.join(best.found[:6])})"
    if runner is not None:
        why += f" over {runner.kind} {runner.points}"
    return best.kind, why


def kind_from_text(text: str, rules: Rules) -> str:
    """The kind the text scores highest for, or "other"."""
    return read_kind(text, rules)[0]


def classify(attachment: Attachment, rules: Rules) -> list[DocumentReading]:
    """One reading per document; a ZIP gives one per member (no nested archives). A
    password-protected ZIP (or a program named .zip or .jar) is one held reading, never
    opened."""
    name = attachment.filename
    if extension(name) == "zip" or (sniff(attachment.payload) == "zip"
                                    and extension(name) not in _OFFICE):
        found, why = hazard(name, attachment.payload)
        if found is not None and found != Hazard.MACRO:
            return [DocumentReading(name, OTHER, why, source=name, hazard=found, held=True)]
        return _classify_zip(attachment, rules)
    reading = _classify_file(name, attachment.payload, rules)
    return [replace(reading, source=name)]


_OFFICE = {"docx", "docm", "xlsx", "xlsm", "odt", "ods", "pptx", "pptm"}
# names whose bytes are rightly a ZIP
ARCHIVE_OR_OFFICE = frozenset(_OFFICE | {"zip"})


def _classify_file(name: str, payload: bytes, rules: Rules) -> DocumentReading:
    """One file's reading: a hazard first (mailbot.reading.extract.hazard), so that an
    encrypted or disguised file is never classified by its name; a file with macros is
    classified as usual and carries the hazard (the policy decides later)."""
    found, why = hazard(name, payload)
    if found is not None and found != Hazard.MACRO:
        return DocumentReading(name, OTHER, why, hazard=found, held=True)
    reading = _classify_plain(name, payload, rules)
    return replace(reading, hazard=found, note=f"{reading.note}; {why}") if found else reading


def _classify_plain(name: str, payload: bytes, rules: Rules) -> DocumentReading:
    if sniff(payload) == "tnef":  # one that mailbot.intake.tnef could not unpack
        return DocumentReading(name, "other", "an Outlook winmail.dat (TNEF) that could not "
                               "be unpacked")
    if sniff(payload) == "image":
        # a screenshot of a document never satisfies the requirement for it
        return DocumentReading(name, "other", "an image, not a document")
    by_name = kinds_from_filename(name, rules)
    if len(by_name) == 1:
        return DocumentReading(name, by_name[0], "file name")
    extracted = extract_text(name, payload)
    if by_name:  # the name names two kinds: its text decides between them
        kind, why = ("other", "") if extracted.problem else \
            read_kind(extracted.text, rules, by_name)
        if kind != "other":
            return DocumentReading(name, kind, f"file name names {' and '.join(by_name)}; "
                                   + why, extracted.text)
        return DocumentReading(name, by_name[0], "file name (first of "
                               f"{', '.join(by_name)})", extracted.text)
    if extracted.problem:
        return DocumentReading(name, "other", extracted.problem)
    by_text, why = read_kind(extracted.text, rules)
    if by_text != "other":
        return DocumentReading(name, by_text, why, extracted.text)
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
            readings.append(DocumentReading(shown, OTHER, member.problem, source=source))
        elif extension(member.name) == "zip" or (sniff(member.payload) == "zip" and \
                extension(member.name) not in _OFFICE):
            readings.append(DocumentReading(shown, "other", "nested archive not opened",
                                            source=source, payload=member.payload))
        else:
            reading = _classify_file(member.name, member.payload, rules)
            readings.append(replace(reading, filename=shown, source=source,
                                    payload=member.payload))
    return readings or [DocumentReading(source, "other", "empty archive", source=source)]
