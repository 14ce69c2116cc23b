"""The applicant's klarmelding (`[council] phases = 2`): she declares the case ready for final
approval on its thread, with the final documents. The bot answers at once with ONE mail:
either the meeting whose agenda the case is on, or ONE list of what final approval still
needs. The klarmelding stands: a later mail that completes the list puts the case on the
agenda without saying it again.

Runs inside the caller's transaction, after the mail's documents and answers were taken in
and new versions routed to their reviewers (mailbot.pipeline)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session

from mailbot.app import Bot
from mailbot.audit import record
from mailbot.cases.documents import held_documents
from mailbot.cases.summary import fold_held, held_lines
from mailbot.council.agenda import first_open_meeting, queue
from mailbot.council.meetings import CouncilCalendar, meeting_texts
from mailbot.council.phases import final_check, final_missing_lines, two_phases
from mailbot.council.status import answer_applicant
from mailbot.models import Case
from mailbot.vocabulary import CaseStatus, Phase, Purpose, check_transition

# the statuses in which a mail from the applicant can klarmelde the case, or add to a
# klarmelding that still misses something
_BEFORE_THE_AGENDA = (CaseStatus.INCOMPLETE, CaseStatus.COMPLETE, CaseStatus.GUIDED,
                      CaseStatus.KLARMELDT)


def answer_followup(session: Session, bot: Bot, case: Case, klarmelding: bool,
                    now: datetime, arrived: datetime | None = None) -> bool:
    """The applicant's mail on the thread, with two phases: a klarmelding (`klarmelding`:
    the mail says so, rules/decisions.yaml `applicant_klarmelding`), or any mail on a case
    she klarmeldte before that is not on an agenda yet, gets the klarmelding answer here.
    Returns False when it is not such a mail (one phase, no klarmelding, a case already on
    an agenda or decided): the caller sends the usual checklist. `arrived` (default `now`) is
    when the mail reached the mailbox (IMAP INTERNALDATE): the deadline is met by the mail's
    arrival, not by when a busy or restarted daemon got to it (the council's page: items
    "senest" by the deadline)."""
    arrived = _arrival(now, arrived)
    if not two_phases(bot) or case.status not in _BEFORE_THE_AGENDA:
        return False
    if klarmelding and case.klarmeldt_at is None:
        case.klarmeldt_at, case.phase = arrived, Phase.FINAL
        session.add(case)
        record(session, case.id, None, now, "klarmelding", "the applicant declared the case "
               "ready for final approval")
    if case.klarmeldt_at is None:
        return False
    _answer(session, bot, case, klarmelding, now, arrived)
    return True


# An arrival further back than this is not trusted for the deadline (a mailbox restored from a
# backup, a clock that is wrong): the mail then counts from when it was read.
ARRIVAL_TRUSTED = timedelta(days=7)


def _arrival(now: datetime, arrived: datetime | None) -> datetime:
    """When the mail counts as received for the deadline: its arrival, when that lies at most
    ARRIVAL_TRUSTED before `now`; else `now`."""
    if arrived is None or arrived > now or now - arrived > ARRIVAL_TRUSTED:
        return now
    return arrived


def _answer(session: Session, bot: Bot, case: Case, klarmelding: bool, now: datetime,
            arrived: datetime) -> None:
    """On the agenda of the first open meeting when nothing is missing and no current review
    is rejected (the applicant gets the meeting mail); else the case is `klarmeldt` and she
    gets ONE list of what is missing (this mail's held attachments first), the rejections
    and the reviewers still to answer."""
    assert case.id is not None
    check = final_check(session, bot, case)
    if check.complete:
        case.ready_at = arrived
        calendar = CouncilCalendar(bot.settings.council)
        queue(session, bot, case, first_open_meeting(session, calendar, arrived), now,
              klarmelding=klarmelding)
        return
    case.status = check_transition(case.status, CaseStatus.KLARMELDT)
    session.add(case)
    record(session, case.id, None, now, "klarmelding_incomplete",
           f"missing: {', '.join(check.missing) or 'nothing'}; rejected: "
           f"{', '.join(r.role for r in check.rejected) or 'none'}")
    language = case.language
    meeting = first_open_meeting(session, CouncilCalendar(bot.settings.council), arrived)
    missing = final_missing_lines(bot.rules, check.missing, language)
    # the attachments of this mail that were held, first in the list; one meant as a missing
    # document is said on that document's line
    held, missing["documents"] = fold_held(
        held_lines(bot.rules, [(d.filename, d.hazard) for d in
                               held_documents(session, case.id, now)],
                   language, bot.settings.attachments), missing["documents"])
    answer_applicant(session, bot, case, template="applicant_klarmelding",
                     purpose=Purpose.KLARMELDING, now=now, context={
                         "klarmelding": klarmelding,
                         "held": held,
                         "missing": missing,
                         "rejected": [{"role_name": bot.rules.role_name(r.role, language),
                                       "documents": r.documents, "comment": r.comment}
                                      for r in check.rejected],
                         "unanswered": [bot.rules.role_name(r.role, language)
                                        for r in check.unanswered],
                         **meeting_texts(meeting)})
