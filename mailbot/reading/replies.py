"""A reply's own text (quotes and signature cut), and the reviewer's verdict in it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailbot.rules import Rules

VERDICTS = ("rejected", "changes_requested", "approved")


@dataclass(frozen=True)
class Verdict:
    verdict: str  # approved | changes_requested | rejected | unclear
    comment: str  # the reviewer's own text, as written
    phrase: str  # what decided it ("" for unclear)


def own_text(text: str, rules: Rules) -> str:
    """The writer's own words: up to the first quote header, without ">" lines or signature."""
    lines: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if any(p.search(stripped) for p in rules.replies.quote_headers):
            break
        if stripped.startswith(">"):
            continue
        if _is_sign_off(stripped, rules):
            break
        lines.append(line.rstrip())
    return "\n".join(lines).strip()


def _is_sign_off(line: str, rules: Rules) -> bool:
    lowered = line.lower().rstrip(".,!")
    return any(lowered == s or lowered.startswith(s + " ") or lowered.startswith(s + ",")
               for s in rules.replies.sign_offs)


def read_verdict(text: str, rules: Rules) -> Verdict:
    own = own_text(text, rules)
    for verdict in VERDICTS:
        for pattern in rules.replies.verdicts[verdict]:
            match = pattern.search(own)
            if match:
                return Verdict(verdict, own, match.group(0))
    return Verdict("unclear", own, "")


def asks_for_status(subject: str, text: str, rules: Rules) -> bool:
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    candidates = [first.lower().rstrip(".!"), re.sub(r"^(re|sv|aw):\s*", "", subject.lower())]
    return any(c in rules.replies.status_words for c in candidates) or any(
        re.search(r"^status\b", c) for c in (first.lower(),))
