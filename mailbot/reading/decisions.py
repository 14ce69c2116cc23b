"""The council's decisions, read from the secretary's reply to the agenda mail.

A decision is written the way a secretary writes minutes: one case per line
("ITP-2026-0042: Godkendt"), several cases in one sentence ("ITP-2026-0045 og ITP-2026-0046
blev begge udsat", "ITP-2026-0041, ITP-2026-0042 og ITP-2026-0043 godkendt"), the decision
before the cases ("Godkendt: ITP-…", "Rådet godkendte ITP-…", "Rådet besluttede at godkende
ITP-… og at afvise ITP-…"), or a heading over a list ("Udsat:" and one case per line below
it). Every verb form counts (present, past, participle, infinitive, passive; Danish and
English). A case mentioned only "til orientering" is not decided; an aside in parentheses or
between dashes ("ITP-… (til orientering: leverandøren er skiftet) blev godkendt") neither makes
a case informational nor hides its decision.

How the text is cut: the case references are grouped first; two references belong to one
group when only a connector ("og", "and", ",", "&", "samt", or a short title ending in one)
stands between them, on one line, without a decision word. Each group owns the text after
its last reference up to the next group (the trailing text: "…: Godkendt. Da projektet er
strategisk, sendes det videre til SIT.") and the words before its first reference since the
last sentence or clause end (", mens", ", men", "; " — `clause_breaks`) or, within one
clause, since the last connector ("Godkendt: ", "Til orientering: ", "og at afvise "). The
group's decision comes from its trailing text, else from its own words before, else from a
heading line ending in ":" above a list of references, else from an aside; nothing else is
guessed. A case named in a decision that cannot be read, or given two different decisions, is
listed back to the secretary — never dropped.

The same words may name the case's project type, her correction of the bot's proposal
("ITP-2026-0042: it-projekt", "ITP-2026-0042 er et digitaliseringsprojekt", "Godkendt som
digitaliseringsprojekt"; rules/decisions.yaml `project_types`). A line that names a type
and no decision is read (the type), not listed back.
"""

from __future__ import annotations

import functools
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
# within one clause, the last of these before a reference starts that reference's words
# ("Rådet besluttede at godkende A og at afvise B": "at afvise" is B's)
_CONNECTOR = re.compile(r",|&|\bog\b|\band\b|\bsamt\b", re.IGNORECASE)
# an aside: in parentheses, or between two dashes set off by spaces
_ASIDE = re.compile(r"\([^()]*\)|\[[^\[\]]*\]|(?<=\s)[–—-]\s[^–—\n]*?\s[–—-](?=\s|$)")


@dataclass(frozen=True)
class DecisionReading:
    decisions: dict[str, str]  # ref -> approved | rejected | postponed | forwarded
    texts: dict[str, str]  # ref -> the secretary's words about it
    unmapped: list[str]  # lines naming a case without a decision the bot can map
    additions: list[str]  # refs the secretary asks to add ("tilføj ITP-...")
    informed: list[str] = field(default_factory=list)  # refs mentioned "til orientering"
    # ref -> "digitaliseringsprojekt" | "it-projekt": her correction of the bot's proposal
    project_types: dict[str, str] = field(default_factory=dict)
    project_type_texts: dict[str, str] = field(default_factory=dict)  # ref -> her words


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
    ends = _ends(rules.decision_words.clause_breaks)
    _assign_text(own, groups, ends)
    decisions: dict[str, str] = {}
    texts: dict[str, str] = {}
    unmapped: list[str] = []
    additions: list[str] = []
    informed: list[str] = []
    conflicts: set[str] = set()
    types = _TypeChoices()
    for group in groups:
        prefix_words = group.prefix.lower().split()
        shown = " ".join((group.prefix + own[group.start:group.end] + group.trailing).split())
        typed = types.read(group, shown, _heading(own, group.line_start), rules, unmapped)
        if any(word.strip(":,.") in rules.decision_words.add_to_agenda
               for word in prefix_words):
            additions.extend(r for r in group.refs if r not in additions)
            continue
        prefix, prefix_asides = _asides(group.prefix)
        trailing, trailing_asides = _asides(group.trailing)
        heading = _heading(own, group.line_start)
        first_clause = ends.split(trailing.lstrip(" :–-"), maxsplit=1)[0]
        before, after = _kind(prefix, rules), _kind(trailing, rules)
        kind = after or before or _kind(heading, rules)
        if _informational(prefix, rules) or _informs_first(first_clause, rules) or (
                kind is None and _informational(heading, rules)):
            informed.extend(r for r in group.refs if r not in informed)
            continue
        if before and after and before != after:
            if {before, after} != {"approved", "forwarded"}:
                # "Rådet godkendte A, B blev afvist": whose is which is not ours to guess
                if shown not in unmapped:
                    unmapped.append(shown)
                continue
            kind = "forwarded"  # "Godkendt: A. … sendes videre til SIT"
        asides = [a for a in (trailing_asides + prefix_asides) if not _informational(a, rules)]
        kind = kind or next((k for k in (_kind(a, rules) for a in asides) if k), None)
        if kind is None:
            if any(_informational(a, rules) for a in trailing_asides + prefix_asides):
                informed.extend(r for r in group.refs if r not in informed)  # "A (til orientering)"
                continue
            if typed or all(r in decisions or r in conflicts for r in group.refs):
                continue  # her project type only, or mentioned again after its decision
            if shown not in unmapped:
                unmapped.append(shown)
            continue
        for ref in group.refs:
            if ref in informed:
                informed.remove(ref)  # mentioned for information earlier, decided here
            if ref in conflicts:
                continue
            earlier = decisions.get(ref)
            if earlier is None or (earlier, kind) == ("approved", "forwarded"):
                decisions[ref], texts[ref] = kind, shown  # "godkendt … sendes videre til SIT"
            elif earlier != kind and (earlier, kind) != ("forwarded", "approved"):
                # two different decisions for one case: both lines go back, nothing is guessed
                conflicts.add(ref)
                for line in (texts.pop(ref), shown):
                    if line not in unmapped:
                        unmapped.append(line)
                del decisions[ref]
    return DecisionReading(decisions, texts, unmapped, additions, informed,
                           types.kinds, types.texts)


@dataclass
class _TypeChoices:
    """The secretary's project types, ref by ref; a case given two different types goes
    back to her with both lines, as two decisions do."""

    kinds: dict[str, str] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    conflicts: set[str] = field(default_factory=set)

    def read(self, group: _Group, shown: str, heading: str, rules: Rules,
             unmapped: list[str]) -> bool:
        """Record the type the group's own words (or the heading above it) name for its
        refs; True when they name one."""
        kind = _project_type(group.prefix + " " + group.trailing, rules)
        if kind is None and heading:
            kind, shown = _project_type(heading, rules), f"{heading} {shown}"
        if kind is None:
            return False
        for ref in group.refs:
            earlier = self.kinds.get(ref)
            if ref in self.conflicts or earlier == kind:
                continue
            if earlier is not None:
                self.conflicts.add(ref)
                for line in (self.texts.pop(ref), shown):
                    if line not in unmapped:
                        unmapped.append(line)
                del self.kinds[ref]
                continue
            self.kinds[ref], self.texts[ref] = kind, shown
        return True


def _project_type(words: str, rules: Rules) -> str | None:
    """The one project type `words` name ("it-projekt", "er et digitaliseringsprojekt"),
    not counting a negated mention ("ikke et it-projekt"); None for none or both."""
    named = set()
    for kind, patterns in rules.decision_words.project_types.items():
        for pattern in patterns:
            if any(not _negated(words[:m.start()], rules) for m in pattern.finditer(words)):
                named.add(kind)
    return named.pop() if len(named) == 1 else None


def _negated(before: str, rules: Rules) -> bool:
    return any(p.search(before) for p in rules.decision_words.project_type_negations)


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


def _assign_text(own: str, groups: list[_Group], ends: re.Pattern[str]) -> None:
    """Cut the text between two groups: up to the last sentence or clause end before the next
    group (or the start of its line, or a heading line above it, or within one clause the last
    connector) is the first one's trailing text, the rest the next one's prefix."""
    for index, group in enumerate(groups):
        floor = groups[index - 1].end if index else 0
        if index + 1 < len(groups):
            nxt = groups[index + 1]
            cut = _cut(own, group.end, nxt.start, ends)
            group.trailing = own[group.end:cut]
        else:
            group.trailing = own[group.end:]
        prev_cut = _cut(own, floor, group.start, ends) if index else group.line_start
        group.prefix = own[prev_cut:group.start]


def _cut(own: str, start: int, end: int, ends: re.Pattern[str]) -> int:
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
    sentence_ends = [m.end() for m in ends.finditer(span)]
    if sentence_ends:
        return start + sentence_ends[-1]
    # one clause: the words after its last connector are the next group's ("og at afvise ")
    connectors = [m.end() for m in _CONNECTOR.finditer(_blank_asides(span))]
    return start + connectors[-1] if connectors else end


@functools.lru_cache(maxsize=8)
def _ends(clause_breaks: tuple[str, ...]) -> re.Pattern[str]:
    """Sentence ends, and the comma before a word that opens a new clause (", mens")."""
    if not clause_breaks:
        return _SENTENCE_END
    words = "|".join(re.escape(w) for w in clause_breaks)
    return re.compile(rf"[.!?;](?=\s)|\n|,(?=\s*(?:{words})\b)", re.IGNORECASE)


def _asides(text: str) -> tuple[str, list[str]]:
    """The text without its asides (in parentheses, between dashes), and the asides."""
    asides = [m.group(0).strip("()[]–—- ") for m in _ASIDE.finditer(text)]
    return _ASIDE.sub(" ", text), asides


def _blank_asides(text: str) -> str:
    """The text with each aside blanked out, its length kept (positions stay valid)."""
    return _ASIDE.sub(lambda m: " " * len(m.group(0)), text)


def _informs_first(clause: str, rules: Rules) -> bool:
    """True when the clause says "til orientering" before any decision ("til orientering:
    SIT har godkendt den"), not after one ("blev godkendt og taget til orientering")."""
    info = [m.start() for p in rules.decision_words.informational
            for m in [p.search(clause)] if m]
    if not info:
        return False
    decided = [m.start() for kind in DECISIONS for p in rules.decision_words.patterns[kind]
               for m in [p.search(clause)] if m]
    return not decided or min(info) < min(decided)


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


_SENTENCE = re.compile(r"[^.!?\n]+[.!?]*")


def declares_ready(subject: str, text: str, rules: Rules) -> bool:
    """The applicant's klarmelding (two phases): a phrase of `applicant_klarmelding`
    (rules/decisions.yaml) in her own words (the quote cut) or in the subject, in a sentence
    that is no question, has none of `klarmelding_negations` before the phrase and none of
    `klarmelding_later` anywhere, so "Er sagen klar til godkendelse?", "Vi er ikke klar til
    godkendelse endnu" and "Klarmelding følger i næste uge" are none."""
    words = rules.decision_words
    for sentence in _SENTENCE.findall(f"{own_text(text, rules)}\n{subject}"):
        if sentence.rstrip().endswith("?"):
            continue
        for pattern in words.applicant_klarmelding:
            match = pattern.search(sentence)
            if match and not _klarmelding_negated(sentence[:match.start()],
                                                  words.klarmelding_negations) \
                    and not _klarmelding_negated(sentence, words.klarmelding_later):
                return True
    return False


def _klarmelding_negated(before: str, negations: tuple[str, ...]) -> bool:
    lowered = before.lower()
    return any(re.search(rf"(?<!\w){re.escape(n)}(?!\w)", lowered) for n in negations)
