"""The six answers of a brief, read from label lines in the mail body."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailbot.parse import Inbound
from mailbot.reading.documents import kind_from_filename
from mailbot.rules import QUESTION_IDS, Rules

_BULLET = r"(?:[•\-*–·▪►>]|\d{1,2}[.)]|[a-f][.)])?"
_FORWARD_MARKERS = re.compile(
    r"^-{2,}\s*(videresendt meddelelse|forwarded message|oprindelig meddelelse)", re.I | re.M
)


@dataclass(frozen=True)
class DocumentReading:
    filename: str
    kind: str


@dataclass(frozen=True)
class BriefReading:
    answers: dict[str, str | None]
    documents: tuple[DocumentReading, ...]
    missing: tuple[str, ...]


def _label_pattern(rules: Rules) -> re.Pattern[str]:
    labels = sorted(
        ((label, q.id) for q in rules.questions for label in q.labels),
        key=lambda item: -len(item[0]),
    )
    alternatives = "|".join(re.escape(label) for label, _ in labels)
    return re.compile(
        rf"^\s*{_BULLET}\s*\**\s*(?P<labels>(?:{alternatives})(?:\s*/\s*(?:{alternatives}))*)"
        rf"\b\s*\??\**\s*(?:[-–:?]\s*|$)(?P<rest>.*)$",
        re.IGNORECASE,
    )


def _label_ids(found: str, rules: Rules) -> list[str]:
    ids = []
    for part in found.split("/"):
        word = " ".join(part.split()).lower()
        for q in rules.questions:
            if any(word == label.lower() for label in q.labels):
                ids.append(q.id)
    return ids


def _body_of_interest(text: str) -> str:
    """A forwarded brief is read from the forwarded part; the forwarder's note is skipped."""
    match = _FORWARD_MARKERS.search(text)
    return text[match.end():] if match else text


def read_answers(text: str, rules: Rules) -> dict[str, str | None]:
    pattern = _label_pattern(rules)
    collected: dict[str, list[str]] = {}
    current: list[str] = []
    for line in _body_of_interest(text).splitlines():
        stripped = line.strip().lstrip(">").strip()
        match = pattern.match(stripped)
        ids = _label_ids(match.group("labels"), rules) if match else []
        if ids and match:
            current = []
            for qid in ids:
                collected.setdefault(qid, current)
            rest = match.group("rest").strip()
            if rest.endswith(":") and len(rest) < 80:
                # the council's own wording after the label ("Hvem - kontaktperson, og brugere:")
                rest = ""
            if rest:
                current.append(rest)
            continue
        if any(stripped.lower().startswith(m) for m in rules.end_markers):
            current = []
            continue
        current.append(stripped)
    answers: dict[str, str | None] = {}
    for qid in QUESTION_IDS:
        value = "\n".join(collected.get(qid, [])).strip()
        value = re.sub(r"\n{3,}", "\n\n", value)
        empty = not value or value.lower().strip(" .") in rules.empty_answers
        answers[qid] = None if empty else value
    return answers


def read_brief(mail: Inbound, rules: Rules) -> BriefReading:
    answers = read_answers(mail.text, rules)
    if all(v is None for v in answers.values()) and mail.html_text:
        # some clients put a stub in text/plain ("see the HTML version")
        answers = read_answers(mail.html_text, rules)
    documents = tuple(
        DocumentReading(a.filename, kind_from_filename(a.filename, rules))
        for a in mail.documents
    )
    present = {d.kind for d in documents}
    missing = tuple(qid for qid in QUESTION_IDS if answers[qid] is None) + tuple(
        kind for kind in rules.required if kind not in present
    )
    return BriefReading(answers=answers, documents=documents, missing=missing)
