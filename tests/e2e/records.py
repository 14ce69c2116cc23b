"""What the bot's database holds, read after (or between) runs: shared by the e2e tests."""

from __future__ import annotations

from sqlmodel import Session, select

from mailbot.db import make_engine
from mailbot.leadership import Holder, leader_state
from mailbot.models import Case, Outbox, RawMessage
from tests.conftest import World


def rows(world: World) -> list[RawMessage]:
    """Every ledger row (one per mail the bot fetched or recorded)."""
    with Session(world.bot().engine) as session:
        return list(session.exec(select(RawMessage)).all())


def cases(world: World) -> list[Case]:
    with Session(world.bot().engine) as session:
        return list(session.exec(select(Case)).all())


def case_count(world: World) -> int:
    return len(cases(world))


def outbox(world: World) -> list[Outbox]:
    """The receipts in the outbox (review requests go to reviewers, not to the applicant)."""
    with Session(world.bot().engine) as session:
        return list(session.exec(select(Outbox).where(Outbox.kind == "receipt")).all())


def every_outbox_row(world: World) -> list[Outbox]:
    with Session(world.bot().engine) as session:
        return list(session.exec(select(Outbox)).all())


def leader(world: World) -> Holder | None:
    """Who holds the leader lock now (the file lock on SQLite, the advisory lock on
    PostgreSQL: mailbot.leadership.leader_state), None: nobody."""
    settings = world.settings()
    engine = make_engine(settings.database_url)
    try:
        return leader_state(settings, engine).holder
    finally:
        engine.dispose()
