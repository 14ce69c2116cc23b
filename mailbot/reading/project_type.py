"""Digitaliseringsprojekt or it-projekt: the bot's proposal from the brief, with its reason.

The municipality's page on the IT-Projektråd: "digitaliseringsprojekter" are new technology
that changes how the municipality works, the services it delivers, or how it delivers them;
"it-projekter" are new versions, updates, hardware and systems, unless they mean significant
changes in work processes, products or services. The cues for each are rules/agenda.yaml
`project_types`; the secretary has the last word (mailbot.reading.decisions).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from mailbot.rules import AgendaWords, TypeCue
from mailbot.vocabulary import ProjectType

# what is read, in this order: the subject, then the answers that say what the project does
FIELDS = ("subject", "what", "why", "where", "who")
_SENTENCE_END = re.compile(r"[.!?;:](?=\s|$)|\n")
_CLAUSE_END = re.compile(r"[.!?;:](?=\s|$)|\n|,\s")
_NEGATION_WINDOW = 25  # characters before a cue, within its clause
MAX_WORDS_CHARS = 90  # the applicant's words quoted in a reason


@dataclass(frozen=True)
class ProjectTypeProposal:
    """`kind` is a ProjectType value, or None when the brief does not settle it (no cue, or
    both kinds equally). `reason` is a short Danish sentence: the deciding cue and the
    applicant's words, or both kinds' best cues for a tie; "" without any cue."""

    kind: str | None
    reason: str


@dataclass(frozen=True)
class _Hit:
    cue: TypeCue
    words: str  # the applicant's clause the cue was found in


def propose_project_type(texts: Mapping[str, str | None], words: AgendaWords
                         ) -> ProjectTypeProposal:
    """Score `texts` (FIELDS -> text; a missing or empty field counts nothing) against
    each type's cues, each cue once, and propose the type with the higher score; equal
    scores propose nothing. Pure: no database, no clock."""
    hits = {kind: _hits(texts, cues, words) for kind, cues in words.project_types.items()}
    scores = {kind: sum(h.cue.weight for h in found) for kind, found in hits.items()}
    digital, it = ProjectType.DIGITALISATION.value, ProjectType.IT.value
    if scores[digital] == scores[it]:
        if not hits[digital]:
            return ProjectTypeProposal(None, "")
        return ProjectTypeProposal(None, words.tie_reason.format(
            digital=_reason(_strongest(hits[digital]), words),
            it=_reason(_strongest(hits[it]), words)))
    kind = digital if scores[digital] > scores[it] else it
    return ProjectTypeProposal(kind, _reason(_strongest(hits[kind]), words))


def _hits(texts: Mapping[str, str | None], cues: tuple[TypeCue, ...], words: AgendaWords
          ) -> list[_Hit]:
    found = []
    for cue in cues:
        hit = next((h for field in FIELDS for h in [_find(texts.get(field) or "", cue, words)]
                    if h is not None), None)
        if hit is not None:
            found.append(hit)
    return found


def _find(text: str, cue: TypeCue, words: AgendaWords) -> _Hit | None:
    """The first match of the cue that no negation stands just before, in its clause."""
    for match in cue.pattern.finditer(text):
        clause_start, _ = _around(text, match.start(), match.end(), _CLAUSE_END)
        before = text[max(clause_start, match.start() - _NEGATION_WINDOW):match.start()]
        if any(n.search(before) for n in words.negations):
            continue
        start, end = _around(text, match.start(), match.end(), _SENTENCE_END)
        return _Hit(cue, _quote(text[start:end], match.start() - start))
    return None


def _around(text: str, start: int, end: int, ends: re.Pattern[str]) -> tuple[int, int]:
    """Where the sentence or clause (as `ends` cuts them) around text[start:end] begins and
    ends."""
    opening = max((m.end() for m in ends.finditer(text, 0, start)), default=0)
    closing = ends.search(text, end)
    return opening, closing.start() if closing else len(text)


def _quote(clause: str, at: int) -> str:
    """The clause on one line, cut around position `at` to MAX_WORDS_CHARS with "…"."""
    flat = " ".join(clause.split())
    if len(flat) <= MAX_WORDS_CHARS:
        return flat
    at = min(at, len(flat))
    begin = max(0, min(at - MAX_WORDS_CHARS // 3, len(flat) - MAX_WORDS_CHARS))
    begin = flat.rfind(" ", 0, begin) + 1 if begin else 0
    cut = flat[begin:begin + MAX_WORDS_CHARS].rsplit(" ", 1)[0]
    return ("…" if begin else "") + cut + "…"


def _strongest(hits: list[_Hit]) -> _Hit:
    """The heaviest cue; among equals the first in rules/agenda.yaml."""
    return max(hits, key=lambda h: h.cue.weight)


def _reason(hit: _Hit, words: AgendaWords) -> str:
    return words.reason.format(cue=hit.cue.cue, words=hit.words)
