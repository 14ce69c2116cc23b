"""A case's project type, "digitaliseringsprojekt" or "it-projekt": the bot proposes it from
the brief (mailbot.reading.project_type) and the secretary has the last word."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from mailbot.audit import record
from mailbot.models import Case
from mailbot.reading.project_type import ProjectTypeProposal, propose_project_type
from mailbot.redact import redact_cpr
from mailbot.rules import Rules
from mailbot.vocabulary import ProjectType, ProjectTypeSource


def set_proposal(case: Case, proposal: ProjectTypeProposal) -> bool:
    """Store the bot's proposal on the case, unless the secretary has chosen already.
    Returns True when anything changed."""
    if case.project_type_source == ProjectTypeSource.SECRETARY:
        return False
    before = (case.project_type, case.project_type_reason, case.project_type_source)
    case.project_type = proposal.kind
    case.project_type_reason = redact_cpr(proposal.reason)
    case.project_type_source = ProjectTypeSource.PROPOSED
    return before != (case.project_type, case.project_type_reason, case.project_type_source)


def propose_again(case: Case, rules: Rules) -> bool:
    """The proposal from the case's answers as they stand now (the applicant filled a gap
    by replying). Returns True when it changed."""
    texts = {**case.answers, "subject": case.subject or case.title}
    return set_proposal(case, propose_project_type(texts, rules.agenda))


def choose(session: Session, case: Case, kind: str, words: str, now: datetime) -> None:
    """The secretary's choice (`kind` a ProjectType value) in her reply to the agenda; her
    words are the reason, and the change is on the audit trail (`project_type` event).
    Raises ValueError for a kind that is not a ProjectType."""
    chosen = ProjectType(kind)
    previous = case.project_type or "-"
    case.project_type = chosen
    case.project_type_reason = redact_cpr(words)
    case.project_type_source = ProjectTypeSource.SECRETARY
    session.add(case)
    record(session, case.id, None, now, "project_type",
           f"{chosen} (secretary; was {previous}): {words}")
