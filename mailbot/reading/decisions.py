"""The council's decisions, read from the secretary's reply to the agenda mail."""

from __future__ import annotations

from dataclasses import dataclass

from mailbot.intake.threads import CASE_REF
from mailbot.reading.replies import own_text
from mailbot.rules import Rules

DECISIONS = ("forwarded", "postponed", "rejected", "approved")


@dataclass(frozen=True)
class DecisionReading:
    decisions: dict[str, str]  # ref -> approved | rejected | postponed | forwarded
    texts: dict[str, str]  # ref -> the secretary's words about it
    unmapped: list[str]  # lines naming a case without a decision the bot can map
    additions: list[str]  # refs the secretary asks to add ("tilføj ITP-...")


def read_decisions(text: str, rules: Rules) -> DecisionReading:
    own = own_text(text, rules)
    matches = list(CASE_REF.finditer(own))
    decisions: dict[str, str] = {}
    texts: dict[str, str] = {}
    unmapped: list[str] = []
    additions: list[str] = []
    for index, match in enumerate(matches):
        ref = f"ITP-{match.group(1)}-{match.group(2)}"
        start = own.rfind("\n", 0, match.start()) + 1
        end = len(own)
        if index + 1 < len(matches):
            # up to the line of the next reference ("tilføj ITP-…" belongs to that one)
            next_line = own.rfind("\n", 0, matches[index + 1].start()) + 1
            end = next_line if next_line > match.start() else matches[index + 1].start()
        block = " ".join(own[start:end].split())
        before = own[start:match.start()].lower()
        if any(word in before.split() for word in rules.decision_words.add_to_agenda):
            additions.append(ref)
            continue
        kind = _kind(block, rules)
        if kind is None:
            unmapped.append(block)
            continue
        decisions[ref], texts[ref] = kind, block
    return DecisionReading(decisions, texts, unmapped, additions)


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


