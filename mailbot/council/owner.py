"""The system owner of a case. The council's page: every system has a system owner
("systemejer"), and the list of system owners is in KITOS (issue #12, item 4).

The applicant may name one: a labelled "Systemejer: …" in the brief (source `brief`) or in a
later mail on the thread (`applicant`, mailbot.cases.followup). Otherwise a scheduled job,
`look_up_owners`, reads the names of systems in the case's title and its answer to Hvad
(mailbot.reading.systems) and proposes the holder of `kitos.owner_role` on the usage of that
system in KITOS (`kitos`). A brief that says the system is new (`new_system`), a system KITOS
has no usage (or no owner) of (`not_found`) and an installation without KITOS
(`kitos_disabled`) leave the owner to the applicant: `owner_missing` says so. KITOS failing
(`kitos_error`) never holds a case up; the note on the agenda says the owner was not looked
up, and the job tries again after RETRY_AFTER.

The HTTP requests run outside any transaction; each case's result is stored in a short one of
its own. KITOS's answer per normalised system name is kept `kitos.cache_hours` (table
`kitos_lookup`), so a day's cases about one system ask KITOS once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement
from sqlmodel import Session, col, or_, select

from mailbot.audit import record
from mailbot.cases.opening import owner_note, set_system_owner
from mailbot.clock import as_utc
from mailbot.db import transaction
from mailbot.kitos import KitosError, KitosProblem, Person
from mailbot.models import Case, KitosLookup
from mailbot.reading.systems import SystemName, normalise_name, says_new_system, system_names
from mailbot.vocabulary import OPEN_STATUSES, OwnerSource

if TYPE_CHECKING:
    from mailbot.app import Bot

log = logging.getLogger(__name__)

RETRY_AFTER = timedelta(hours=1)  # a case KITOS could not answer for is tried again then
# the applicant must name the system owner (an item of the missing list for final approval)
ASK_APPLICANT = frozenset({OwnerSource.NEW_SYSTEM, OwnerSource.NOT_FOUND,
                           OwnerSource.KITOS_DISABLED})


def owner_missing(case: Case) -> bool:
    """True when the applicant must name the system owner: the case has none, and its system
    is new, unknown to KITOS (or without an owner there), or KITOS is not set up. False while
    the lookup has not run yet, and when KITOS could not be asked: an error never holds a
    case up (the note on the agenda says so)."""
    return not case.system_owner and case.system_owner_source in ASK_APPLICANT


@dataclass(frozen=True)
class Pending:
    """What the job needs of a case, read before any request goes to KITOS."""

    case_id: int
    ref: str
    title: str
    answers: dict[str, str | None]
    source: str  # "", kitos_error or kitos_disabled: stored only if the case still says so


@dataclass(frozen=True)
class Finding:
    source: OwnerSource
    owner: str | None
    note: str


def pending_cases(session: Session, now: datetime, kitos_enabled: bool = False
                  ) -> list[Pending]:
    """Open cases not looked up yet, those KITOS failed for RETRY_AFTER ago or more, and,
    once `kitos_enabled`, those marked `kitos_disabled` before KITOS was set up."""
    retry = now - RETRY_AFTER
    source = col(Case.system_owner_source)
    again: list[ColumnElement[bool]] = [
        source == OwnerSource.NOT_LOOKED_UP,
        (source == OwnerSource.KITOS_ERROR) & (col(Case.system_owner_checked_at) <= retry)]
    if kitos_enabled:
        again.append(source == OwnerSource.KITOS_DISABLED)
    cases = session.exec(select(Case).where(col(Case.status).in_(OPEN_STATUSES), or_(*again))
                         .order_by(col(Case.id))).all()
    return [Pending(c.id, c.ref, c.title, dict(c.answers), c.system_owner_source)
            for c in cases if c.id is not None]


def look_up_owners(bot: Bot, now: datetime) -> int:
    """The scheduled job: a finding for every pending case (see the module). Returns the
    number of cases given one. KITOS's failures are findings, never raised; the database's
    are raised."""
    with Session(bot.engine) as session:
        pending = pending_cases(session, now, bot.settings.kitos.enabled)
    lookup = _Lookup(bot, now)
    stored = 0
    for item in pending:
        finding = lookup.find(item)
        with transaction(bot.engine) as session:
            stored += _store(session, item, finding, now)
    return stored


def _store(session: Session, item: Pending, finding: Finding, now: datetime) -> int:
    case = session.get(Case, item.case_id)
    if case is None or case.system_owner_source != item.source:
        return 0  # the applicant named an owner while KITOS was asked
    set_system_owner(case, finding.owner, finding.source, finding.note)
    case.system_owner_checked_at = now
    session.add(case)
    record(session, case.id, None, now, "system_owner",
           f"{finding.source}: {finding.owner or '-'} ({finding.note})")
    return 1


class _Lookup:
    """One run of the job: KITOS's organisation is found once, and after KITOS fails once
    the rest of the run's cases get the same error without asking again."""

    def __init__(self, bot: Bot, now: datetime) -> None:
        self.bot = bot
        self.now = now
        self.cues = bot.rules.signals.systems
        self.failure: KitosError | None = None
        self.organization_uuid = ""

    def find(self, item: Pending) -> Finding:
        text = "\n".join([item.title, *(a for a in item.answers.values() if a)])
        if says_new_system(text, self.cues):
            return self._finding(OwnerSource.NEW_SYSTEM)
        if not self.bot.settings.kitos.enabled:
            return self._finding(OwnerSource.KITOS_DISABLED)
        names = system_names(item.title, item.answers.get("what") or "", self.cues)
        if not names:
            return self._finding(OwnerSource.NOT_FOUND, "no_names")
        try:
            return self._in_kitos(names)
        except KitosError as err:
            self.failure = err
            log.warning("KITOS: %s; the system owner of %s is not looked up (tried again in "
                        "%s)", err.detail, item.ref, RETRY_AFTER)
            return self._finding(OwnerSource.KITOS_ERROR, reason=self._reason(err))

    def _in_kitos(self, names: tuple[SystemName, ...]) -> Finding:
        """The first name whose system has an owner in KITOS; else the first system found
        without one; else not found."""
        role = self.bot.settings.kitos.owner_role
        without_owner = ""
        for name in names:
            answer = self._answer(name)
            if answer.owner:
                return Finding(OwnerSource.KITOS, answer.owner, owner_note(
                    self.bot.rules, OwnerSource.KITOS, system=answer.system, role=role))
            without_owner = without_owner or answer.system
        if without_owner:
            return self._finding(OwnerSource.NOT_FOUND, "kitos_no_owner",
                                 system=without_owner, role=role)
        return self._finding(OwnerSource.NOT_FOUND,
                             names=", ".join(n.written for n in names))

    def _answer(self, name: SystemName) -> KitosLookup:
        """KITOS's answer for `name`: from the cache while it is fresh, else asked now and
        kept. Raises KitosError."""
        if self.failure is not None:
            raise self.failure
        fresh = timedelta(hours=self.bot.settings.kitos.cache_hours)
        with Session(self.bot.engine) as session:
            cached = session.get(KitosLookup, name.key)
        if cached is not None and self.now - as_utc(cached.looked_up_at) < fresh:
            return cached
        answer = self._ask(name)
        with transaction(self.bot.engine) as session:
            session.merge(answer)
        return answer

    def _ask(self, name: SystemName) -> KitosLookup:
        client, settings = self.bot.kitos, self.bot.settings.kitos
        if not self.organization_uuid:
            self.organization_uuid = client.organization(settings.organization_cvr).uuid
        usage = client.find_usage(self.organization_uuid, name.key,
                                  lambda system: normalise_name(system, self.cues) == name.key)
        owners = client.owners(self.organization_uuid, usage, settings.owner_role) \
            if usage else []
        log.info("KITOS: %r -> %s", name.key,
                 f"{usage.system_name}, {len(owners)} owner(s)" if usage else "no usage")
        return KitosLookup(name=name.key, looked_up_at=self.now,
                           system=usage.system_name if usage else "",
                           owner=", ".join(_person(p) for p in owners))

    def _finding(self, source: OwnerSource, key: str = "", **values: str) -> Finding:
        return Finding(source, None, owner_note(self.bot.rules, key or source, **values))

    def _reason(self, err: KitosError) -> str:
        """Why KITOS could not be asked, in the words of rules/labels.yaml `kitos_reasons`."""
        settings = self.bot.settings.kitos
        values = {KitosProblem.REFUSED: {"status": str(err.status)},
                  KitosProblem.TIMEOUT: {"seconds": f"{settings.timeout_seconds:g}"},
                  KitosProblem.NO_ORGANIZATION: {"cvr": settings.organization_cvr}}
        return self.bot.rules.labels.get("kitos_reasons", err.problem).format(
            **values.get(err.problem, {}))


def _person(person: Person) -> str:
    return f"{person.name} ({person.email})" if person.email else person.name
