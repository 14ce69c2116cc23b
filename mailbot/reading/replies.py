"""A reply's own text (quotes and signature cut), and the reviewer's verdict in it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailbot.redact import redact_cpr
from mailbot.rules import Rules

VERDICTS = ("rejected", "changes_requested", "approved")


@dataclass(frozen=True)
class Verdict:
    verdict: str  # approved | changes_requested | rejected | unclear
    comment: str  # the reviewer's own text, as written, CPR numbers redacted
    phrase: str  # what decided it ("" for unclear)


def own_text(text: str, rules: Rules) -> str:
    """The writer's own words, wherever she wrote them: above the quote (top-posting), below
    it (bottom-posting) or between quoted lines (interleaved). ">" lines are the quote; a quote
    header followed by ">" lines only introduces them, so reading goes on after the quote. A
    quote header followed by unmarked text (Outlook's "Fra:/Sendt:" block over the original)
    ends the own text, as does a sign-off (the signature)."""
    lines = text.splitlines()
    own: list[str] = []
    for index, line in enumerate(lines):
        stripped = line.strip()
        if any(p.search(stripped) for p in rules.replies.quote_headers):
            if _introduces_marked_quote(lines, index, rules):
                continue
            break
        if stripped.startswith(">"):
            continue
        if _is_sign_off(stripped, rules):
            break
        own.append(line.rstrip())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(own)).strip()


def _introduces_marked_quote(lines: list[str], index: int, rules: Rules) -> bool:
    """True when the quote header at `index` is followed (after blank lines and further
    header lines, e.g. a Gmail "Den … skrev:" over two lines) by a ">" line."""
    for line in lines[index + 1:]:
        stripped = line.strip()
        if not stripped or any(p.search(stripped) for p in rules.replies.quote_headers):
            continue
        return stripped.startswith(">")
    return False


def _is_sign_off(line: str, rules: Rules) -> bool:
    lowered = line.lower().rstrip(".,!")
    return any(lowered == s or lowered.startswith(s + " ") or lowered.startswith(s + ",")
               for s in rules.replies.sign_offs)


def read_verdict(text: str, rules: Rules) -> Verdict:
    """The verdict in a reviewer's reply and her own words (CPR-redacted: the comment is
    stored, relayed to the applicant and put on the agenda; SCENARIOS G1)."""
    own = redact_cpr(own_text(text, rules))
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
