"""The council's decisions, read from the secretary's reply to the agenda mail.

A decision is written the way a secretary writes minutes: one case per line
("ITP-2026-0042: Godkendt"), several cases in one sentence ("ITP-2026-0045 og ITP-2026-0046
blev begge udsat", "ITP-2026-0041, ITP-2026-0042 og ITP-2026-0043 godkendt"), the decision
before the cases ("Godkendt: ITP-…"), or a heading over a list ("Udsat:" and one case per
line below it). A case mentioned only "til orientering" is not decided.

How the text is cut: the case references are grouped first; two references belong to one
group when only a connector ("og", "and", ",", "&", "samt", or a short title ending in one)
stands between them, on one line, without a decision word. Each group owns the text after
its last reference up to the next group (the trailing text: "…: Godkendt. Da projektet er
strategisk, sendes det videre til SIT.") and the words before its first reference since the
last sentence end ("Godkendt: ", "Til orientering: "). The group's decision comes from its
trailing text, else from its own words before, else from a heading line ending in ":" above
a list of references; nothing else is guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mailbot.intake.threads import CASE_REF
from mailbot.reading.replies import own_text
from mailbot.rules import Rules

DECISIONS = ("forwarded", "postponed", "rejected", "approved")

# what may stand between two references of one group (after a short title, if any)
_CONNECTOR_END = re.compile(r"(?:,|&|\+|/|\bog\b|\band\b|\bsamt\b|\bsamt med\b)\s*$",
                            re.IGNORECASE)
# a sentence ends here: what follows belongs to the next reference
_SENTENCE_END = re.compile(r"[.!?;](?=\s)|\n")


@dataclass(frozen=True)
class DecisionReading:
    decisions: dict[str, str]  # ref -> approved | rejected | postponed | forwarded
    texts: dict[str, str]  # ref -> the secretary's words about it
    unmapped: list[str]  # lines naming a case without a decision the bot can map
    additions: list[str]  # refs the secretary asks to add ("tilføj ITP-...")
    informed: list[str] = field(default_factory=list)  # refs mentioned "til orientering"


@dataclass
class _Group:
    refs: list[str]
    start: int  # of the first reference
    end: int  # of the last reference
    prefix: str = ""
    trailing: str = ""
    line_start: int = 0


def read_decisions(text: str, rules: Rules) -> DecisionReading:
    own = own_text(text, rules)
    groups = _groups(own, rules)
    _assign_text(own, groups)
    decisions: dict[str, str] = {}
    texts: dict[str, str] = {}
    unmapped: list[str] = []
    additions: list[str] = []
    informed: list[str] = []
    for group in groups:
        prefix_words = group.prefix.lower().split()
        shown = " ".join((group.prefix + own[group.start:group.end] + group.trailing).split())
        if any(word.strip(":,.") in rules.decision_words.add_to_agenda
               for word in prefix_words):
            additions.extend(r for r in group.refs if r not in additions)
            continue
        words = group.prefix + " " + group.trailing
        heading = _heading(own, group.line_start)
        first_sentence = _SENTENCE_END.split(group.trailing.lstrip(" :–-"), maxsplit=1)[0]
        if _informational(group.prefix + " " + first_sentence, rules) or (
                not _kind(words, rules) and _informational(heading, rules)):
            informed.extend(r for r in group.refs if r not in informed)
            continue
        kind = _kind(group.trailing, rules) or _kind(group.prefix, rules) or _kind(heading, rules)
        if kind is None:
            if all(r in decisions for r in group.refs):
                continue  # mentioned again after its decision ("ITP-… skal dog …")
            if shown not in unmapped:
                unmapped.append(shown)
            continue
        for ref in group.refs:
            if ref not in decisions:
                decisions[ref], texts[ref] = kind, shown
    return DecisionReading(decisions, texts, unmapped, additions, informed)


def _groups(own: str, rules: Rules) -> list[_Group]:
    groups: list[_Group] = []
    for match in CASE_REF.finditer(own):
        ref = f"ITP-{match.group(1)}-{match.group(2)}"
        if groups:
            last = groups[-1]
            between = own[last.end:match.start()]
            if _joins(between) and _kind(between, rules) is None \
                    and not _informational(between, rules):
                if ref not in last.refs:
                    last.refs.append(ref)
                last.end = match.end()
                continue
        groups.append(_Group([ref], match.start(), match.end(),
                             line_start=own.rfind("\n", 0, match.start()) + 1))
    return groups


def _joins(between: str) -> bool:
    """True when the text between two references makes them one group: on one line, no
    colon or sentence end, no decision, and ending in a connector ("og", ",", "and")."""
    if "\n" in between or ":" in between or re.search(r"[.!?;]\s", between):
        return False
    return len(between) <= 80 and bool(_CONNECTOR_END.search(between))


def _assign_text(own: str, groups: list[_Group]) -> None:
    """Cut the text between two groups: up to the last sentence end before the next group
    (or the start of its line, or a heading line above it) is the first one's trailing text,
    the rest the next one's prefix."""
    for index, group in enumerate(groups):
        floor = groups[index - 1].end if index else 0
        if index + 1 < len(groups):
            nxt = groups[index + 1]
            cut = _cut(own, group.end, nxt.start)
            group.trailing = own[group.end:cut]
        else:
            group.trailing = own[group.end:]
        prev_cut = _cut(own, floor, group.start) if index else group.line_start
        group.prefix = own[prev_cut:group.start]


def _cut(own: str, start: int, end: int) -> int:
    """Where the text between two groups is split (see _assign_text)."""
    span = own[start:end]
    line_start = own.rfind("\n", start, end) + 1 if "\n" in span else start
    lines_from = start
    for line in span.splitlines(keepends=True):
        stripped = line.strip()
        if stripped.endswith(":") and lines_from > start:
            return lines_from  # a heading ("Udsat:") goes with what follows it
        lines_from += len(line)
    if "\n" in span:
        return max(line_start, start)
    ends = [m.end() for m in _SENTENCE_END.finditer(span)]
    return start + ends[-1] if ends else end


def _heading(own: str, line_start: int) -> str:
    """The heading above a list of references: the nearest line above without a reference,
    in the same paragraph, that ends with ":" ("Godkendt:", "Til orientering:")."""
    lines = own[:line_start].splitlines()
    for line in reversed(lines):
        stripped = line.strip()
        if not stripped:
            return ""
        if CASE_REF.search(stripped):
            continue
        return stripped if stripped.endswith(":") else ""
    return ""


def _informational(words: str, rules: Rules) -> bool:
    return any(p.search(words) for p in rules.decision_words.informational)


def _kind(block: str, rules: Rules) -> str | None:
    for kind in DECISIONS:
        if any(p.search(block) for p in rules.decision_words.patterns[kind]):
            return kind
    return None


def applicant_command(text: str, rules: Rules) -> str | None:
    """"postpone" or "withdraw" when the applicant's own first line asks for it."""
    own = own_text(text, rules)
    first = next((line.strip().lower().rstrip(".!") for line in own.splitlines()
                  if line.strip()), "")
    if first in rules.decision_words.applicant_withdraw:
        return "withdraw"
    if first in rules.decision_words.applicant_postpone:
        return "postpone"
    return None
