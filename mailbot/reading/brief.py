"""The brief: six answers, the documents, declarations, signals, and what is missing."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date
from typing import TypeVar, cast

from mailbot.intake.parse import Inbound
from mailbot.reading.danish import (
    Amount,
    When,
    ascii_spellings,
    date_precisions,
    normalise_when,
    parse_amounts,
    payer,
    total_cost,
)
from mailbot.reading.documents import AttachmentPolicy, DocumentReading, read_attachments
from mailbot.reading.extract import extract_text
from mailbot.reading.project_type import propose_project_type
from mailbot.reading.prose import (
    clauses,
    looks_english,
    old_cost,
    read_prose,
    score,
    sentences,
    unknown,
)
from mailbot.redact import redact_cpr, redact_data
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
    # questions answered by the prose reader, not by a label: the receipt shows how they
    # were understood and asks the applicant to correct them
    from_prose: tuple[str, ...] = ()
    statements: tuple[DocumentStatement, ...] = ()  # what the mail says about documents
    # the bot's proposal "digitaliseringsprojekt" / "it-projekt" (None: not settled), with
    # its reason (mailbot.reading.project_type)
    project_type: str | None = None
    project_type_reason: str = ""


@dataclass(frozen=True)
class DocumentStatement:
    """A sentence about documents: "Kontrakten har jeg ikke fået endnu" -> (contract_draft,
    missing). `kinds` is empty when the sentence names no particular kind ("bilagene")."""

    kinds: tuple[str, ...]
    state: str  # attached | announced | missing | negotiating
    text: str


# -- the six answers ------------------------------------------------------------------------
_T = TypeVar("_T")
# what is derived from loaded rules, by (what, id of the rules part it comes from): rules
# are loaded once and never change, so a mail (and each of its lines) costs a lookup, not a
# rebuild; the part itself is kept with it, so a later object that reuses an id is rebuilt
_DERIVED: dict[tuple[str, int], tuple[object, object]] = {}
_MAX_DERIVED = 64  # tests load many Rules; a daemon one


def _derived(what: str, part: object, build: Callable[[], _T]) -> _T:
    """build(), made once per (what, rules part object)."""
    key = (what, id(part))
    found = _DERIVED.get(key)
    if found is None or found[0] is not part:
        if len(_DERIVED) >= _MAX_DERIVED:
            _DERIVED.clear()
        found = (part, build())
        _DERIVED[key] = found
    return cast(_T, found[1])


def _spellings(rules: Rules) -> dict[str, str]:
    """Every way to write each label, lower-cased, with its question id: "hvornaar" -> when.
    Built once per loaded rules (it was rebuilt for every line of every mail)."""
    return _derived("spellings", rules.questions, lambda: {
        spelling.lower(): q.id for q in rules.questions for label in q.labels
        for spelling in ascii_spellings(label)})


def _label_pattern(rules: Rules) -> re.Pattern[str]:
    return _derived("labels", rules.questions, lambda: _compile_labels(rules))


def _compile_labels(rules: Rules) -> re.Pattern[str]:
    labels = sorted(_spellings(rules), key=len, reverse=True)
    alternatives = "|".join(re.escape(label) for label in labels)
    # The web form's gloss comes in parentheses ("Hvem (kontaktperson og brugere)"); the
    # answer may follow after a separator, right after the gloss, or on the next lines. A
    # form may also ask the whole question on a line of its own ("3. Hvor i organisationen
    # skal den bruges?"): the question is the label, the answer follows below it.
    return re.compile(
        rf"^\s*{_BULLET}\s*\**\s*(?P<labels>(?:{alternatives})(?:\s*/\s*(?:{alternatives}))*)"
        rf"\s*\??\**\s*(?:\((?P<gloss>[^()]{{0,120}})\)\s*\??\**\s*)?"
        rf"(?:(?P<sep>[-–:?|])\s*|(?<=\?)|(?<=\*)|(?<=\))|$"
        rf"|(?P<question>\s+[^?.!\n]{{1,90}}\?\**\s*$))(?P<rest>.*)$",
        re.IGNORECASE,
    )


def _label_ids(found: str, rules: Rules) -> list[str]:
    spellings = _spellings(rules)
    ids = []
    for part in found.split("/"):
        word = " ".join(part.split()).lower()
        if word in spellings:
            ids.append(spellings[word])
    return ids


_GLOSS = re.compile(r"^\s*\([^()]{0,120}\)\s*[:?.\-–]*\s*")
# a line that is only a gloss in parentheses: right after a label with no answer yet, it is
# the label's own wording (the web form copied into Outlook puts it below the question word)
_GLOSS_LINE = re.compile(r"^\([^()]{1,120}\)\s*[:?.]?$")


def _strip_hint(rest: str, qids: list[str], rules: Rules, sep: str = "") -> str:
    """Drop the council's own wording after a label ("Hvem - kontaktperson, og brugere:",
    "Hvem - (kontaktperson og brugere)")."""
    rest = _GLOSS.sub("", rest)
    lowered = rest.lower()
    for qid in qids:
        for hint in rules.question(qid).hints:
            if lowered.startswith(hint) and not rest[len(hint):len(hint) + 1].isalpha():
                return rest[len(hint):].lstrip(" ?:.-–").strip()
    if sep in "-–" and sep and rest.rstrip().endswith(("?", ":")) and len(rest) <= 80:
        # "Hvor meget - pris, og hvem betaler?" on its own line: a wording of the form's
        # question that `hints` does not list yet; the answer is on the next line
        return ""
    return rest


# -- sentences about the documents ------------------------------------------------------------
_STATE_ORDER = ("missing", "negotiating", "announced", "attached")


def _kinds_named(text: str, rules: Rules) -> tuple[str, ...]:
    """The document kinds a sentence names, by the kinds' own file-name words."""
    return tuple(kind.id for kind in rules.kinds if any(p.search(text) for p in kind.patterns))


def _any_state(rules: Rules) -> re.Pattern[str]:
    """All `states` patterns as one expression: most sentences match none, and one search is
    much cheaper than thirty (a 20,000-line mail stays within the time of `inspect`)."""
    words = rules.document_statements
    return _derived("states", words, lambda: re.compile(
        "|".join(f"(?:{p.pattern})" for patterns in words.states.values()
                 for p in patterns) or r"(?!)", re.IGNORECASE | re.MULTILINE))


def statement_about_documents(text: str, rules: Rules) -> DocumentStatement | None:
    """The sentence as a statement about documents, or None when it is not one: it must name a
    document and say it is attached, announced, missing or under negotiation."""
    words = rules.document_statements
    if not _any_state(rules).search(text):
        return None
    kinds = _kinds_named(text, rules)
    if not kinds and not any(p.search(text) for p in words.names):
        return None
    for state in _STATE_ORDER:
        if any(p.search(text) for p in words.states[state]):
            return DocumentStatement(kinds, state, " ".join(text.split()))
    return None


STATEMENT_CHARS = 20_000  # what a mail says about its documents is said on its first pages
_CONTRAST = re.compile(r",?\s+(?:men|mens|but|while|whereas)\s+|;\s*", re.I)


def document_statements(text: str, rules: Rules) -> tuple[DocumentStatement, ...]:
    """Every statement about documents in the mail's own text (quotes left out). A sentence
    that contrasts two ("… er vedhæftet, men kontrakten forhandles stadig") gives two."""
    found: list[DocumentStatement] = []
    own = "\n".join(line for line in text[:STATEMENT_CHARS].splitlines()
                    if not line.lstrip().startswith(">"))
    for paragraph in re.split(r"\n\s*\n", own):
        for sentence in sentences(" ".join(paragraph.split())):
            parts = _CONTRAST.split(sentence)
            for part in parts if len(parts) > 1 else [sentence]:
                statement = statement_about_documents(part, rules)
                if statement:
                    found.append(statement)
    return tuple(found)


_HEADER_LINE = re.compile(r"^\s*(fra|from|dato|date|sendt|sent|emne|subject|til|to|cc|bcc|"
                          r"reply-to|svar til)\s*:\s", re.I)


def _body_of_interest(text: str) -> str:
    """A forwarded brief is read from the forwarded part; the forwarder's note and the
    forwarded message's header lines (Fra:, Dato:, Emne:, Til:) are skipped."""
    match = _FORWARD_MARKERS.search(text)
    if not match:
        return text
    lines = text[match.end():].split("\n")[1:]  # the rest of the marker line goes too
    while lines and (not lines[0].strip() or _HEADER_LINE.match(lines[0])):
        if not lines[0].strip() and len(lines) > 1 and not _HEADER_LINE.match(lines[1]):
            break
        lines.pop(0)
    return "\n".join(lines)


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


class _Collector:
    """Walks the lines; each label opens an answer, which runs until the next label, an end
    marker (greeting, signature, disclaimer, quoted header), a paragraph that is a statement
    of its own (attachments, strategy, personal data) or a sentence about the documents
    ("Kontrakten har jeg ikke fået endnu"). Lines outside every answer, up to the greeting,
    are kept as `free` text for the prose reader."""

    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self.pattern = _label_pattern(rules)
        self.answers: dict[str, list[str]] = {}
        self.current: list[str] | None = None
        self.current_ids: list[str] = []
        self.after_blank = False
        self.labels_seen: list[str] = []
        self.free: list[str] = []  # unlabelled lines before the greeting; "" between paragraphs
        self.ended = False  # a greeting or signature was seen: no more free text
        self.skipping = False  # inside a paragraph about documents
        self.sentence_open = False  # the last line of the answer did not end a sentence
        self.labelled: set[str] = set()  # the questions some label in the mail names

    def scan(self, lines: list[str]) -> None:
        """Note which questions have a label anywhere in the mail before walking it."""
        for line in lines:
            match = self.pattern.match(line.strip())
            if match:
                self.labelled.update(_label_ids(match.group("labels"), self.rules))

    def feed(self, lines: list[str], index: int) -> None:
        # a control character (an Outlook en-dash bullet decoded with the wrong charset) is
        # invisible to the applicant, so it must not hide the label after it
        line = _CONTROL.sub("", lines[index]).strip()
        if line.startswith(">"):
            self._close()  # a quoted earlier mail is never part of this brief
            return
        if not line:
            self.after_blank, self.skipping = True, False
            if self.current is not None and self.current and self.current[-1] != "":
                self.current.append("")
            if self.free and self.free[-1] != "":
                self.free.append("")
            return
        new_paragraph, self.after_blank = self.after_blank, False
        match = self.pattern.match(line)
        ids = _label_ids(match.group("labels"), self.rules) if match else []
        if match and ids and ids != self.current_ids:
            self.labels_seen += [p.strip().lower() for p in match.group("labels").split("/")]
            rest = _strip_hint(match.group("rest").strip(), ids, self.rules,
                               match.group("sep") or "")
            self.skipping = False
            self._open(ids, rest)
            return
        if self.current is not None and not any(self.current) and _GLOSS_LINE.match(line):
            return  # the form's gloss below its label ("Hvem" / "(kontaktperson og brugere)")
        lowered = line.lower()
        if self._field_line(lowered):
            self._close()  # "SBSYS: …", "Systemejer: …" are read on their own, not as answers
            return
        if any(lowered.startswith(marker) for marker in self.rules.end_markers) \
                or any(p.search(line) for p in self.rules.closing_lines):
            self._close()
            self.ended = True
            return
        if new_paragraph and any(p.search(line) for p in self.rules.paragraph_stops):
            self._close()
            self.skipping = True
            return
        if new_paragraph and self.current is not None and self._about_another_question(lines,
                                                                                      index):
            self._close()  # "Why: …" is over where a paragraph states the unlabelled price
        starts_sentence = new_paragraph or not self.sentence_open
        matters = self.current is not None or not self.ended  # else the line goes nowhere
        if starts_sentence and matters and not self.skipping \
                and self._about_documents(lines, index):
            self._close()
            self.skipping = True  # the rest of its paragraph belongs to the statement
            return
        if self.skipping:
            return
        self.sentence_open = not line.endswith((".", "!", "?"))
        if self.current is not None:
            self.current.append(line)
        elif not self.ended:
            self.free.append(line)

    def _field_line(self, lowered: str) -> bool:
        """The line gives a field of its own (rules/signals.yaml `field_labels` and
        `system_owner_labels`, then a colon): it ends the answer above it."""
        signals = self.rules.signals
        return any(lowered.startswith(label.lower()) and lowered[len(label):].lstrip()
                   .startswith(":") for label in (*signals.field_labels,
                                                  *signals.system_owner_labels))

    def _about_another_question(self, lines: list[str], index: int) -> bool:
        """The paragraph starting here clearly answers a question that no label in the mail
        names (an answer in prose after a labelled one), so it is not part of this answer."""
        unlabelled = [q for q in QUESTION_IDS if q not in self.labelled]
        if not unlabelled:
            return False
        scores = score(_paragraph_at(lines, index), self.rules)
        own = max(scores[q] for q in self.current_ids)
        strong = self.rules.prose.min_score + 2
        return any(scores[q] >= strong and scores[q] > own for q in unlabelled)

    def _about_documents(self, lines: list[str], index: int) -> bool:
        """The sentence that starts on this line is about documents."""
        first = sentences(_paragraph_at(lines, index, first_sentence=True))
        return bool(first) and statement_about_documents(first[0], self.rules) is not None

    def _open(self, ids: list[str], rest: str) -> None:
        shared = self.answers.get(ids[0]) if len(ids) == 1 else None
        self.current = shared if shared is not None else []
        for qid in ids:
            self.answers.setdefault(qid, self.current)
        self.current_ids = ids
        self.sentence_open = False
        if rest:
            self.current.append(rest)
            self.sentence_open = not rest.endswith((".", "!", "?"))

    def _close(self) -> None:
        self.current, self.current_ids = None, []

    def result(self) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for qid in QUESTION_IDS:
            value = _without_closing(
                _without_statements(_paragraphs(self.answers.get(qid, [])), self.rules),
                self.rules)
            empty = not value or says_unknown(value, self.rules, qid)
            out[qid] = None if empty else value
        return out

    def free_paragraphs(self) -> list[str]:
        """The unlabelled text up to the greeting, one string per paragraph."""
        return _paragraphs(self.free).split("\n\n") if self.free else []


# How far ahead a boundary check reads: a sentence rarely runs longer, and a huge paragraph
# (a pasted log, a mail of 200 KB) stays cheap.
PARAGRAPH_LOOKAHEAD = 12  # lines
PARAGRAPH_CHARS = 2000
STATEMENT_SENTENCES = 40  # sentences per answer paragraph checked for statements


def _paragraph_at(lines: list[str], index: int, first_sentence: bool = False) -> str:
    """The lines from `index` to the end of their paragraph (at most PARAGRAPH_LOOKAHEAD),
    joined; with `first_sentence`, only up to the first line that ends a sentence."""
    paragraph = []
    for line in lines[index:index + PARAGRAPH_LOOKAHEAD]:
        if not line.strip():
            break
        paragraph.append(line.strip())
        if first_sentence and line.rstrip().endswith((".", "!", "?")):
            break
    return " ".join(paragraph)[:PARAGRAPH_CHARS]


def _paragraphs(lines: list[str]) -> str:
    """Lines wrapped by the mail client are joined; paragraphs stay apart."""
    paragraphs: list[list[str]] = [[]]
    for line in lines:
        if line == "":
            paragraphs.append([])
        else:
            paragraphs[-1].append(line)
    return "\n\n".join(" ".join(p) for p in paragraphs if p).strip()


def _without_statements(answer: str, rules: Rules) -> str:
    """The answer without its sentences about documents ("Hvor meget: 90.000 kr. Kontrakten
    forhandles stadig."); an answer that is nothing but such a sentence is left as it is."""
    kept = []
    for paragraph in answer.split("\n\n"):
        parts = sentences(paragraph)
        if len(parts) > 1:
            head, tail = parts[:STATEMENT_SENTENCES], parts[STATEMENT_SENTENCES:]
            parts = [p for p in head if statement_about_documents(p, rules) is None] + tail \
                or parts
        kept.append(" ".join(parts))
    return "\n\n".join(p for p in kept if p)


# "Det ved vi ikke endnu, vi har bedt om en plan", "… endnu – vi har bedt om tilbud": the
# words before a dash, a semicolon or a comma that opens a new statement ("vi har", "men")
# may say on their own that the answer is unknown; "ved vi ikke, hvem der …" goes on
_PIECE = re.compile(r"\s*;\s+|\s+[–—-]\s+|,\s+(?=(?:vi|jeg|de|men|og|we|i|they|but|and)\s)",
                    re.I)


def says_unknown(answer: str, rules: Rules, qid: str = "") -> bool:
    """Every clause of the answer says it is not known yet ("Det ved vi ikke endnu.",
    "Prisen kender vi ikke endnu.", "TBD", "følger") or, under `cost`, gives only what the old
    system cost ("Det gamle system kostede 50.000 kr. om året."): the question is not
    answered. An answer that also gives something ("Ved ikke, men senest 2027") is an answer.
    Under `cost` and `when`, what is measurable decides: "Prisen kender vi ikke endnu – vi har
    bedt om tilbud" says it is unknown and gives no amount, so it is no answer, whatever words
    explain the wait."""
    parts = [c for paragraph in answer.split("\n\n") for sentence in sentences(paragraph)
             for c in clauses(sentence)] or [answer]
    if all(unknown(part, rules) or (qid == "cost" and old_cost(part, rules)) for part in parts):
        return True
    pieces = [p for part in parts for p in _PIECE.split(part) if p.strip()]
    if qid not in ("cost", "when") or not any(unknown(piece, rules) for piece in pieces):
        return False
    if qid == "cost":
        return not any(parse_amounts(part) for part in parts if not old_cost(part, rules))
    return not any(date_precisions(part, rules.signals) for part in parts)


def _without_closing(answer: str, rules: Rules) -> str:
    """The answer without the closing sentences at its end ("120.000 kr. Ring endelig, hvis
    der er spørgsmål – 22 33 44 55.")."""
    if not answer or not rules.closing_lines:
        return answer
    paragraphs = answer.split("\n\n")
    parts = sentences(paragraphs[-1])
    while len(parts) > 1 and any(p.search(parts[-1]) for p in rules.closing_lines):
        parts.pop()
    paragraphs[-1] = " ".join(parts)
    return "\n\n".join(paragraphs)


def read_answers(text: str, rules: Rules) -> dict[str, str | None]:
    return _collect(text, rules).result()


def _collect(text: str, rules: Rules) -> _Collector:
    collector = _Collector(rules)
    lines = _body_of_interest(text).splitlines()
    collector.scan(lines)
    for index in range(len(lines)):
        collector.feed(lines, index)
    return collector


def written_in_english(text: str, rules: Rules, seen: list[str] | None = None) -> bool:
    """Most of the brief's labels are English ("Who:", "How much:"); without labels, most of
    its common words are. `seen`: the labels, when the text was walked already."""
    if seen is None:
        seen = _collect(text, rules).labels_seen
    if not seen:
        return looks_english(_body_of_interest(text), rules)
    english = sum(label in rules.english_labels for label in seen)
    return english * 2 > len(seen)


def _unquoted(text: str) -> str:
    return "\n".join(re.sub(r"^\s*(>\s?)+", "", line) for line in text.splitlines())


def _count(answers: dict[str, str | None]) -> int:
    return sum(v is not None for v in answers.values())


@dataclass(frozen=True)
class _Answers:
    answers: dict[str, str | None]
    source: str
    from_prose: tuple[str, ...] = ()
    body_labels: tuple[str, ...] = ()  # the labels of the text part (or the HTML without one)


def _with_prose(collector: _Collector, source: str, rules: Rules) -> _Answers:
    """The labelled answers, and for each question that no label names, what the prose around
    them says. Without any label at all, a mail counts as a prose brief only when it answers
    at least `prose.min_answers` questions from at least `prose.min_statements` clauses: one
    sentence wanting "et nyt system" is not a brief, nor is a thank-you whose one sentence
    names a week, a unit and users; nothing is credited."""
    answers = collector.result()
    unlabelled = {qid for qid in QUESTION_IDS if qid not in collector.answers}
    keep = lambda text: statement_about_documents(text, rules) is None  # noqa: E731
    found = read_prose(collector.free_paragraphs(), unlabelled, rules, keep,
                       1 if collector.answers else rules.prose.min_statements)
    if not collector.answers and len(found) < rules.prose.min_answers:
        found = {}
    for qid, text in found.items():
        answers[qid] = text
    return _Answers(answers, source, tuple(q for q in QUESTION_IDS if q in found))


def _best_answers(mail: Inbound, documents: tuple[DocumentReading, ...],
                  rules: Rules) -> _Answers:
    """_find_answers, with the labels of the text part the language is judged by."""
    found, body = _find_answers(mail, documents, rules)
    return replace(found, body_labels=tuple(body.labels_seen))


def _find_answers(mail: Inbound, documents: tuple[DocumentReading, ...],
                  rules: Rules) -> tuple[_Answers, _Collector]:
    """The body, else its HTML twin (some clients put a stub in text/plain), else a filled-in
    brief attached as DOCX or PDF; then, for what no label answers, the prose of the body."""
    body = _collect(mail.text or mail.html_text, rules)
    collector, source = body, "body"
    if _count(collector.result()) == 0 and mail.html_text:
        collector, source = _collect(mail.html_text, rules), "html"
    if _count(collector.result()) == 0 and re.search(r"^\s*>", mail.text, re.M):
        # a brief that only exists as a quote (a reply to one's own draft)
        quoted = _collect(_unquoted(mail.text), rules)
        if _count(quoted.result()):
            collector, source = quoted, "quoted body"
    answers = collector.result()
    if _count(answers) >= MIN_ANSWERS_IN_ATTACHMENT:
        return _with_prose(collector, source, rules), body
    best: _Answers | None = None
    held = {d.source for d in documents if d.held}  # never opened again, for answers neither
    for attachment in (a for a in mail.documents if a.filename not in held):
        text = next((d.text for d in documents if d.filename == attachment.filename and d.text),
                    "") or extract_text(attachment.filename, attachment.payload).text
        candidate = read_answers(text, rules)
        if _count(candidate) > max(_count(answers), _count(best.answers) if best else 0) \
                and _count(candidate) >= MIN_ANSWERS_IN_ATTACHMENT:
            best = _Answers(candidate, attachment.filename)
    if best is not None:
        return best, body
    if _count(answers) == 0:
        # no labels anywhere: the prose of the text part, or of the HTML when the text part
        # is a stub ("Se venligst HTML-udgaven")
        options = [_with_prose(body, "body (prose)", rules)]
        if mail.html_text:
            options.append(_with_prose(_collect(mail.html_text, rules), "html (prose)", rules))
        return max(options, key=lambda option: len(option.from_prose)), body
    return _with_prose(collector, source, rules), body


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


def declarations(text: str, present: set[str], rules: Rules,
                 statements: tuple[DocumentStatement, ...] | None = None) -> dict[str, str]:
    """Required documents the mail declares not applicable (kind -> the sentence). A document
    the mail says is on its way, missing or under negotiation ("Vi har ingen kontrakt endnu,
    den forhandles stadig") is not declared not applicable, whatever else the sentence says.
    `statements`: the text's document statements, when they were read already."""
    if statements is None:
        statements = document_statements(text, rules)
    pending = {kind for statement in statements
               if statement.state != "attached" for kind in statement.kinds}
    declared: dict[str, str] = {}
    for kind_id in rules.required:
        kind = rules.kind(kind_id)
        if kind is None or kind_id in present or kind_id in pending:
            continue
        for pattern in kind.not_applicable:
            match = pattern.search(text)
            if match:
                sentence = _sentence_around(text, match.start(), match.end())
                if _NOT_YET.search(sentence):
                    break  # "we have no contract or DPA yet": missing, not unneeded
                declared[kind_id] = sentence
                break
    return declared


# a document there is none of "yet" is still to come, so it stays on the missing list
_NOT_YET = re.compile(r"\b(endnu|yet|stadig|still|foreløbig|so far|for now)\b", re.IGNORECASE)


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


def system_owner(text: str, rules: Rules) -> str | None:
    """The name after a system owner label ("Systemejer: Søren Ravn"), or None; also None
    for a placeholder ("Systemejer: ved ikke endnu", rules/brief.yaml `empty_answers`)."""
    labels = "|".join(re.escape(label) for label in rules.signals.system_owner_labels)
    # a dot ends the name only where a sentence ends: "lise@kommune.dk" stays whole, so the
    # owner's address reaches the review requests, the agenda and an Art. 15 export
    match = re.search(rf"\b(?:{labels})\b\s*(?:er|is|:|-|–)\s*"
                      rf"(?P<who>(?:[^\n.;,]|\.(?=[^\s.]))+)", text, re.I)
    who = match.group("who").strip() if match else ""
    return who if who and not unknown(who, rules) else None


# -- the whole brief --------------------------------------------------------------------------
def read_brief(mail: Inbound, rules: Rules, today: date | None = None,
               policy: AttachmentPolicy | None = None) -> BriefReading:
    """Everything the brief says. `policy` is `[attachments]` (the defaults when None): a
    held attachment (mailbot.reading.documents.read_attachments) is in `documents` with
    `held` set, never counts as a document and is never read for answers."""
    today = today or date.today()
    documents = read_attachments(mail.documents, rules, policy or AttachmentPolicy())
    best = _best_answers(mail, documents, rules)
    # everything below is derived from CPR-redacted text, so no answer, declaration, reason
    # or owner the bot stores, shows or mails holds a CPR number (SCENARIOS G1)
    answers: dict[str, str | None] = redact_data(best.answers)
    subject = redact_cpr(mail.subject)
    # the declarations and statements are read where the answers were: the HTML, when the
    # text part is only a stub ("Se venligst HTML-udgaven")
    own = mail.html_text if best.source.startswith("html") else mail.text or mail.html_text
    text = redact_cpr(_body_of_interest(own))
    present = {d.kind for d in documents}
    statements = document_statements(text, rules)
    declared = declarations(text, present, rules, statements)
    amounts = parse_amounts(answers["cost"])
    strategic, reason = _strategic(text, amounts, rules)
    sbsys = rules.signals.sbsys.search(subject + "\n" + text)
    missing = tuple(qid for qid in QUESTION_IDS if answers[qid] is None) + tuple(
        kind for kind in rules.required if kind not in present and kind not in declared
    )
    proposal = propose_project_type({**answers, "subject": subject}, rules.agenda)
    return BriefReading(
        answers=answers, documents=documents, missing=missing, not_applicable=declared,
        strategic=strategic, strategic_reason=reason,
        sbsys_number=sbsys.group(0) if sbsys else None,
        system_owner=system_owner(text, rules),
        when=normalise_when(answers["when"], today, rules.signals),
        amounts=tuple(amounts), payer=payer(answers["cost"], rules.signals),
        answers_from=best.source,
        english=written_in_english(mail.text or mail.html_text, rules, list(best.body_labels)),
        from_prose=best.from_prose, statements=statements,
        project_type=proposal.kind, project_type_reason=proposal.reason,
    )
