"""Whether a case still lacks its system owner ("systemejer"): the council's page asks that
every system has one, and final approval needs it."""

from __future__ import annotations

from mailbot.models import Case


def owner_missing(case: Case) -> bool:
    """True when final approval still needs the case's system owner: here, when
    `Case.system_owner` is empty. A placeholder: the KITOS helper (issue #12, item 4) refines
    this rule (the owner proposed from KITOS, a new system whose owner the applicant names)."""
    return not case.system_owner
