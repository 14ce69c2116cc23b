"""The council's two phases (`[council] phases = 2`; the municipality's page on
IT-Projektrådet): the reviewers' answers on the DRAFT documents are guidance ("vejledning"),
and "when you have received guidance, you can go on with your project"; "when the project is
ready" the applicant declares it ready ("klarmelding") with the final documents and the
project description, for final approval.

This module says where a case stands in that process: what final approval still needs, when
the guidance is complete, and when an applicant is reminded. Every function runs inside the
caller's transaction; the klarmelding answer is mailbot.council.klarmelding.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TypedDict

from sqlmodel import Session, col, select

from mailbot.app import Bot
from mailbot.audit import record
from mailbot.cases.documents import latest_documents
from mailbot.cases.summary import (
    MissingAnswer,
    MissingDocument,
    answer_label,
    final_phase_start,
    missing_answers,
)
from mailbot.clock import as_utc
from mailbot.council.meetings import add_working_days
from mailbot.council.owner import owner_missing
from mailbot.council.reviews import current_reviews
from mailbot.delivery.compose import enumeration
from mailbot.models import Case, Guidance, Review
from mailbot.rules import QUESTION_IDS, Rules
from mailbot.vocabulary import OPEN_STATUSES, CaseStatus, Phase, Verdict, check_transition

SYSTEM_OWNER = "system_owner"  # the missing item for final approval: no system owner yet


def two_phases(bot: Bot) -> bool:
    """`[council] phases = 2`: guidance first, then klarmelding for final approval."""
    return bot.settings.council.phases == 2


def stage(case: Case) -> str:
    """Where a case stands in the two phases, as the applicant's mails say it: `guidance`
    (reviewers giving guidance on the drafts), `guided` (guidance given, not yet klarmeldt)
    or `klarmeldt` (declared ready for final approval; on an agenda or not)."""
    if case.klarmeldt_at is not None:
        return "klarmeldt"
    return "guided" if case.guidance_given_at is not None else Phase.GUIDANCE.value


# -- what final approval needs ------------------------------------------------------------------
def final_missing(session: Session, rules: Rules, case: Case) -> list[str]:
    """What final approval still needs, in this order: unanswered questions (`who` …), the
    documents of documents.yaml `required_final` neither present nor declared not applicable
    (for a `final` kind the newest version must have come at or after `final_phase_start`,
    so a draft from the brief does not count), then `system_owner` (mailbot.council.owner)."""
    assert case.id is not None
    start = final_phase_start(case)
    newest = {d.kind: as_utc(d.received_at) for d in latest_documents(session, case.id)}
    missing = [q for q in QUESTION_IDS if not case.answers.get(q)]
    for kind, mode in rules.required_final.items():
        received = newest.get(kind)
        final_enough = received is not None and (mode == "any" or (start is not None
                                                                  and received >= start))
        if not final_enough and kind not in case.not_applicable:
            missing.append(kind)
    if owner_missing(case):
        missing.append(SYSTEM_OWNER)
    return missing


@dataclass(frozen=True)
class FinalCheck:
    """Where a case stands for final approval."""

    missing: list[str]  # final_missing
    rejected: list[Review]  # current reviews whose verdict is `rejected`: they block
    unanswered: list[Review]  # current reviews without a verdict: shown, they do not block

    @property
    def complete(self) -> bool:
        """Nothing missing and nothing rejected (the klarmelding still decides)."""
        return not self.missing and not self.rejected


def final_check(session: Session, bot: Bot, case: Case) -> FinalCheck:
    """final_missing plus the current reviews that are rejected or still unanswered."""
    assert case.id is not None
    current = current_reviews(session, case.id)
    return FinalCheck(final_missing(session, bot.rules, case),
                      [r for r in current if r.verdict == Verdict.REJECTED],
                      [r for r in current if r.verdict is None])


def final_labels(rules: Rules, items: list[str], language: str = "da") -> list[str]:
    """Short names of what final approval misses: `Hvem`, `Endelig kontrakt`, `Systemejer`."""
    return [answer_label(rules, item, language) if item in QUESTION_IDS
            else rules.labels.get("items", item, language) if item == SYSTEM_OWNER
            else rules.title(item, language, final=rules.required_final.get(item) == "final")
            for item in items]


class FinalMissing(TypedDict):
    """What final approval misses, as the applicant's mails list it."""

    answers: list[MissingAnswer]
    documents: list[MissingDocument]
    system_owner: bool


def final_missing_lines(rules: Rules, items: list[str], language: str) -> FinalMissing:
    """final_missing for a mail: each question in plain words with an example, each
    document by the name of the version needed (with who reviews it), the system owner."""
    last = "and" if language == "en" else "og"
    documents = [MissingDocument(
        kind=item,
        title=rules.title(item, language, final=rules.required_final[item] == "final"),
        reviewers=enumeration((rules.role_name(r, language)
                               for r in rules.reviewers_of(item)), last), held="")
        for item in items if item in rules.required_final]
    return FinalMissing(answers=missing_answers(rules, items, language), documents=documents,
                        system_owner=SYSTEM_OWNER in items)


# -- the guidance is complete -------------------------------------------------------------------
def guidance_complete(session: Session, case: Case) -> bool:
    """Nothing missing for guidance (`Case.missing`, documents.yaml `required`) and every
    role with documents has answered its current review, whatever the verdict."""
    assert case.id is not None
    current = current_reviews(session, case.id)
    return not case.missing and bool(current) and all(r.verdict is not None for r in current)


def give_guidance(session: Session, bot: Bot, now: datetime) -> int:
    """Two phases: every open case whose guidance became complete is marked so
    (`guidance_given_at`, phase `final`; status `guided` unless the applicant already
    klarmeldte it), and the next guidance relay tells the applicant how to klarmelde (not
    when the case is on an agenda already).
    A job (also for cases from before the upgrade); returns the number of cases marked."""
    if not two_phases(bot):
        return 0
    marked = 0
    for case in session.exec(select(Case).where(col(Case.guidance_given_at).is_(None),
                                                col(Case.status).in_(OPEN_STATUSES))).all():
        if guidance_complete(session, case):
            _mark_guided(session, case, now)
            marked += 1
    return marked


def _mark_guided(session: Session, case: Case, now: datetime) -> None:
    assert case.id is not None
    current = current_reviews(session, case.id)
    # the moment the last condition was met, like the agenda's ready_at: a document that came
    # with or after it is a final version
    case.guidance_given_at = max([as_utc(case.updated_at)] + [
        as_utc(r.answered_at) for r in current if r.answered_at is not None])
    case.phase = Phase.FINAL
    if case.status == CaseStatus.COMPLETE:
        case.status = check_transition(case.status, CaseStatus.GUIDED)
    session.add(case)
    record(session, case.id, None, now, "guidance_given",
           "; ".join(f"{r.role}: {r.verdict}" for r in current))
    if case.status != CaseStatus.QUEUED:  # one on an agenda has been told its meeting
        _relay_completion(session, case.id, current, now)


def _relay_completion(session: Session, case_id: int, current: list[Review],
                      now: datetime) -> None:
    """The guidance relay that carries the last verdict says the guidance is complete; when
    that verdict had no comment to relay, an item of its own is queued."""
    waiting = session.exec(select(Guidance).where(Guidance.case_id == case_id,
                                                  col(Guidance.relayed_at).is_(None))
                           .order_by(col(Guidance.id))).all()
    item = waiting[-1] if waiting else None
    if item is None:
        last = max(current, key=lambda r: as_utc(r.answered_at or r.requested_at))
        assert last.id is not None
        item = Guidance(case_id=case_id, review_id=last.id, created_at=now,
                        verdict=last.verdict or "", comment=last.comment)
    item.completes_guidance = True
    session.add(item)


# -- reminders ----------------------------------------------------------------------------------
def applicant_reminder_due(session: Session, bot: Bot, case: Case) -> datetime | None:
    """When the applicant's ONE reminder about what is missing falls due, None for none.
    One phase: `reviews.applicant_reminder_working_days` after the case was opened, while
    `Case.missing` is not empty. Two phases: the same in the guidance phase; a guided case
    negotiating its contract is not reminded; after a klarmelding that still misses
    something for final approval, one reminder that many working days after it."""
    days = bot.settings.reviews.applicant_reminder_working_days
    reminded = case.applicant_reminded_at
    if not two_phases(bot) or final_phase_start(case) is None:
        if reminded is not None or not case.missing:
            return None
        return add_working_days(as_utc(case.created_at), days)
    if case.status != CaseStatus.KLARMELDT or case.klarmeldt_at is None:
        return None
    klarmeldt = as_utc(case.klarmeldt_at)
    if reminded is not None and as_utc(reminded) >= klarmeldt:
        return None
    if not final_missing(session, bot.rules, case):
        return None  # a rejected review is the reviewer's and the applicant's to talk over
    return add_working_days(klarmeldt, days)
