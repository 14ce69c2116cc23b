"""The applicant writes again on the case's thread: new answers fill the gaps, new
documents (or new versions) are added, declarations are read, and what is missing is
worked out anew. Routing and the status mail are the council's part (mailbot.pipeline)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from mailbot.app import Bot
from mailbot.audit import record
from mailbot.cases.documents import latest_documents, store_documents
from mailbot.cases.opening import completeness, owner_note, set_system_owner
from mailbot.cases.project_type import propose_again
from mailbot.intake.parse import Inbound
from mailbot.models import Case, RawMessage
from mailbot.reading.brief import declarations, read_answers, system_owner
from mailbot.reading.documents import attachment_policy, read_attachments
from mailbot.reading.replies import own_text
from mailbot.redact import redact_cpr
from mailbot.rules import QUESTION_IDS, Rules
from mailbot.vocabulary import CaseStatus, OwnerSource, check_transition


@dataclass(frozen=True)
class FollowupResult:
    filled: list[str]  # question ids answered by this mail
    added: list[str]  # "file.pdf (contract_draft v2)"


def apply_followup(session: Session, bot: Bot, case: Case, mail: Inbound, raw: RawMessage,
                   now: datetime) -> FollowupResult:
    """Merge the applicant's mail into the case (caller's transaction) and record it."""
    assert case.id is not None and raw.id is not None
    # answers, declarations and the owner are read from CPR-redacted text (SCENARIOS G1)
    own = redact_cpr(own_text(mail.text or mail.html_text, bot.rules))
    filled = fill_answers(case, read_answers(own, bot.rules))
    if filled:
        propose_again(case, bot.rules)
    owner = system_owner(own, bot.rules)
    if owner == case.system_owner:
        owner = None  # the applicant repeats what the case has
    if owner:  # the applicant's own word wins over a guess from KITOS
        set_system_owner(case, owner, OwnerSource.APPLICANT,
                         owner_note(bot.rules, OwnerSource.APPLICANT))
    by_name = {a.filename: a for a in mail.documents}
    rows = store_documents(session, bot.blobs, case.id, raw.id,
                           [(by_name[reading.source], reading) for reading in read_attachments(
                               mail.documents, bot.rules,
                               attachment_policy(bot.settings.attachments))], now)
    present = {d.kind for d in latest_documents(session, case.id)}
    case.not_applicable = {**case.not_applicable, **declarations(own, present, bot.rules)}
    # final approval needs a system owner (two phases): the list asks her to name one
    case.system_owner = case.system_owner or system_owner(own, bot.rules)
    case.missing = missing_items(bot.rules, case, present)
    if case.status in (CaseStatus.INCOMPLETE, CaseStatus.COMPLETE):
        case.status = check_transition(case.status, completeness(case.missing))
    case.updated_at = now
    session.add(case)
    added = [f"{d.filename} ({d.kind} v{d.version})" for d in rows if not d.held]
    held = [f"{d.filename} ({d.hazard})" for d in rows if d.held]
    record(session, case.id, raw.id, now, "applicant_update",
           f"answers: {', '.join(filled) or 'none'}; documents: {', '.join(added) or 'none'}; "
           f"missing: {', '.join(case.missing) or 'nothing'}"
           + (f"; system owner: {owner}" if owner else "")
           + (f"; held: {', '.join(held)}" if held else ""))
    return FollowupResult(filled, added)


def missing_items(rules: Rules, case: Case, present: set[str]) -> list[str]:
    """Unanswered questions, then required documents neither present nor declared."""
    return [q for q in QUESTION_IDS if not case.answers.get(q)] + [
        k for k in rules.required if k not in present and k not in case.not_applicable]


def fill_answers(case: Case, answers: dict[str, str | None]) -> list[str]:
    """Fill the gaps, and correct what was only understood from prose: the receipt asked the
    applicant to correct those by replying, so a labelled answer in the reply replaces them.
    An answer the applicant gave under a label is never overwritten."""
    filled = []
    merged = dict(case.answers)
    guessed = set(case.from_prose)
    for qid, value in answers.items():
        if value and (not merged.get(qid) or qid in guessed):
            merged[qid] = value
            filled.append(qid)
            guessed.discard(qid)
    case.answers = merged
    case.from_prose = [q for q in case.from_prose if q in guessed]
    return filled
