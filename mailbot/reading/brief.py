"""The brief: six answers, the documents, declarations, signals, and what is missing."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

from mailbot.intake.parse import Inbound
from mailbot.reading.danish import Amount, When, normalise_when, parse_amounts, payer, total_cost
from mailbot.reading.documents import DocumentReading, classify
from mailbot.reading.extract import extract_text
from mailbot.rules import QUESTION_IDS, Rules

_BULLET = r"(?:[•\-*–·▪►|]|\d{1,2}[.)]|[a-f][.)])?"
_FORWARD_MARKERS = re.compile(
    r"^\s*-{2,}\s*(videresendt meddelelse|forwarded message|oprindelig meddelelse|"
    r"original message)", re.I | re.M)
_SENTENCE = re.compile(r"[^.!?\n]*(?:\n(?!\n)[^.!?\n]*)*[.!?]?")
MIN_ANSWERS_IN_ATTACHMENT = 3


@dataclass(frozen=True)
class BriefReading:
    answers: dict[str, str | None]
    documents: tuple[DocumentReading, ...]
    missing: tuple[str, ...]
    not_applicable: dict[str, str] = field(default_factory=dict)  # kind -> the declaration
    strategic: bool = False
    strategic_reason: str = ""
    sbsys_number: str | None = None
    system_owner: str | None = None
    when: When | None = None
    amounts: tuple[Amount, ...] = ()
    payer: str | None = None
    answers_from: str = "body"  # body | html | the attachment's name
    english: bool = False  # the labels were English: the applicant gets English mail


# -- the six answers ------------------------------------------------------------------------
def _label_pattern(rules: Rules) -> re.Pattern[str]:
    labels = sorted({label for q in rules.questions for label in q.labels}, key=len, reverse=True)
    alternatives = "|".join(re.escape(label) for label in labels)
    return re.compile(
        rf"^\s*{_BULLET}\s*\**\s*(?P<labels>(?:{alternatives})(?:\s*/\s*(?:{alternatives}))*)"
        rf"\s*\??\**\s*(?:(?<=\?)|(?<=\*)|[-–:?|]\s*|$)(?P<rest>.*)$",
        re.IGNORECASE,
    )


def _label_ids(found: str, rules: Rules) -> list[str]:
    ids = []
    for part in found.split("/"):
        word = " ".join(part.split()).lower()
        ids += [q.id for q in rules.questions if word in (label.lower() for label in q.labels)]
    return ids


def _strip_hint(rest: str, qids: list[str], rules: Rules) -> str:
    """Drop the council's own wording after a label ("Hvem - kontaktperson, og brugere:")."""
    lowered = rest.lower()
    for qid in qids:
        for hint in rules.question(qid).hints:
            if lowered.startswith(hint):
                return rest[len(hint):].lstrip(" ?:.-–").strip()
    return rest


def _body_of_interest(text: str) -> str:
    """A forwarded brief is read from the forwarded part; the forwarder's note is skipped."""
    match = _FORWARD_MARKERS.search(text)
    return text[match.end():] if match else text


class _Collector:
    """Walks the lines; each label opens an answer, which runs until the next label, an end
    marker (greeting, signature, disclaimer, quoted header) or a paragraph that is a statement
    of its own (attachments, strategy, personal data)."""

    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self.pattern = _label_pattern(rules)
        self.answers: dict[str, list[str]] = {}
        self.current: list[str] | None = None
        self.current_ids: list[str] = []
        self.after_blank = False
        self.labels_seen: list[str] = []

    def feed(self, raw_line: str) -> None:
        line = raw_line.strip()
        if line.startswith(">"):
            self._close()  # a quoted earlier mail is never part of this brief
            return
        if not line:
            self.after_blank = True
            if self.current is not None and self.current and self.current[-1] != "":
                self.current.append("")
            return
        new_paragraph, self.after_blank = self.after_blank, False
        match = self.pattern.match(line)
        ids = _label_ids(match.group("labels"), self.rules) if match else []
        if match and ids and ids != self.current_ids:
            self.labels_seen += [p.strip().lower() for p in match.group("labels").split("/")]
            self._open(ids, _strip_hint(match.group("rest").strip(), ids, self.rules))
            return
        lowered = line.lower()
        if any(lowered.startswith(marker) for marker in self.rules.end_markers):
            self._close()
            return
        if new_paragraph and any(p.search(line) for p in self.rules.paragraph_stops):
            self._close()
            return
        if self.current is not None:
            self.current.append(line)

    def _open(self, ids: list[str], rest: str) -> None:
        shared = self.answers.get(ids[0]) if len(ids) == 1 else None
        self.current = shared if shared is not None else []
        for qid in ids:
            self.answers.setdefault(qid, self.current)
        self.current_ids = ids
        if rest:
            self.current.append(rest)

    def _close(self) -> None:
        self.current, self.current_ids = None, []

    def result(self) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for qid in QUESTION_IDS:
            value = _paragraphs(self.answers.get(qid, []))
            empty = not value or value.lower().strip(" .!") in self.rules.empty_answers
            out[qid] = None if empty else value
        return out


def _paragraphs(lines: list[str]) -> str:
    """Lines wrapped by the mail client are joined; paragraphs stay apart."""
    paragraphs: list[list[str]] = [[]]
    for line in lines:
        if line == "":
            paragraphs.append([])
        else:
            paragraphs[-1].append(line)
    return "\n\n".join(" ".join(p) for p in paragraphs if p).strip()


def read_answers(text: str, rules: Rules) -> dict[str, str | None]:
    return _collect(text, rules).result()


def _collect(text: str, rules: Rules) -> _Collector:
    collector = _Collector(rules)
    for line in _body_of_interest(text).splitlines():
        collector.feed(line)
    return collector


def written_in_english(text: str, rules: Rules) -> bool:
    """Most of the brief's labels are English ("Who:", "How much:")."""
    seen = _collect(text, rules).labels_seen
    english = sum(label in rules.english_labels for label in seen)
    return bool(seen) and english * 2 > len(seen)


def _unquoted(text: str) -> str:
    return "\n".join(re.sub(r"^\s*(>\s?)+", "", line) for line in text.splitlines())


def _count(answers: dict[str, str | None]) -> int:
    return sum(v is not None for v in answers.values())


def _best_answers(mail: Inbound, documents: tuple[DocumentReading, ...],
                  rules: Rules) -> tuple[dict[str, str | None], str]:
    """The body, else its HTML twin (some clients put a stub in text/plain), else a filled-in
    brief attached as DOCX or PDF."""
    answers, source = read_answers(mail.text, rules), "body"
    if _count(answers) == 0 and mail.html_text:
        answers, source = read_answers(mail.html_text, rules), "html"
    if _count(answers) == 0:
        # a brief that only exists as a quote (a reply to one's own draft)
        answers, source = read_answers(_unquoted(mail.text), rules), "quoted body"
    if _count(answers) >= MIN_ANSWERS_IN_ATTACHMENT:
        return answers, source
    for attachment in mail.documents:
        text = next((d.text for d in documents if d.filename == attachment.filename and d.text),
                    "") or extract_text(attachment.filename, attachment.payload).text
        candidate = read_answers(text, rules)
        if _count(candidate) > _count(answers) and _count(candidate) >= MIN_ANSWERS_IN_ATTACHMENT:
            answers, source = candidate, attachment.filename
    return answers, source


# -- declarations and signals ---------------------------------------------------------------
_SENTENCE_END = re.compile(r"[.!?](?=\s+[A-ZÆØÅ\"(]|\s*$)|\n\s*\n")


def _sentence_around(text: str, start: int, end: int) -> str:
    """The sentence holding text[start:end]; "ca." or "kr." inside it do not end it."""
    left = 0
    for match in _SENTENCE_END.finditer(text, 0, start):
        left = match.end()
    after = _SENTENCE_END.search(text, end)
    right = after.end() if after else len(text)
    return " ".join(text[left:right].split())


def declarations(text: str, present: set[str], rules: Rules) -> dict[str, str]:
    declared: dict[str, str] = {}
    for kind_id in rules.required:
        kind = rules.kind(kind_id)
        if kind is None or kind_id in present:
            continue
        for pattern in kind.not_applicable:
            match = pattern.search(text)
            if match:
                declared[kind_id] = _sentence_around(text, match.start(), match.end())
                break
    return declared


def _strategic(text: str, amounts: list[Amount], rules: Rules) -> tuple[bool, str]:
    signals = rules.signals
    for pattern in signals.strategic_negative:
        match = pattern.search(text)
        if match:
            return False, _sentence_around(text, match.start(), match.end())
    for pattern in signals.strategic_positive:
        match = pattern.search(text)
        if match:
            return True, _sentence_around(text, match.start(), match.end())
    for pattern in signals.municipality_wide:
        match = pattern.search(text)
        if match:
            return True, f"hele kommunen: {_sentence_around(text, match.start(), match.end())}"
    cost = total_cost(amounts)
    if cost > signals.cost_threshold_dkk:
        return True, f"udgiften ({cost:,} kr.) er over {signals.cost_threshold_dkk:,} kr.".replace(
            ",", ".")
    return False, ""


def _system_owner(text: str, rules: Rules) -> str | None:
    labels = "|".join(re.escape(label) for label in rules.signals.system_owner_labels)
    match = re.search(rf"\b(?:{labels})\b\s*(?:er|is|:|-|–)\s*(?P<who>[^\n.;,]+)", text, re.I)
    return match.group("who").strip() if match else None


# -- the whole brief --------------------------------------------------------------------------
def read_brief(mail: Inbound, rules: Rules, today: date | None = None) -> BriefReading:
    today = today or date.today()
    documents = tuple(reading for attachment in mail.documents
                      for reading in classify(attachment, rules))
    answers, source = _best_answers(mail, documents, rules)
    text = _body_of_interest(mail.text or mail.html_text)
    present = {d.kind for d in documents}
    declared = declarations(text, present, rules)
    amounts = parse_amounts(answers["cost"])
    strategic, reason = _strategic(text, amounts, rules)
    sbsys = rules.signals.sbsys.search(mail.subject + "\n" + text)
    missing = tuple(qid for qid in QUESTION_IDS if answers[qid] is None) + tuple(
        kind for kind in rules.required if kind not in present and kind not in declared
    )
    return BriefReading(
        answers=answers, documents=documents, missing=missing, not_applicable=declared,
        strategic=strategic, strategic_reason=reason,
        sbsys_number=sbsys.group(0) if sbsys else None,
        system_owner=_system_owner(text, rules),
        when=normalise_when(answers["when"], today, rules.signals),
        amounts=tuple(amounts), payer=payer(answers["cost"], rules.signals),
        answers_from=source, english=written_in_english(mail.text or mail.html_text, rules),
    )
