"""What the bot's database holds, read after (or between) runs: shared by the e2e tests.

Every list is in id order (the order the bot wrote the rows): without ORDER BY, PostgreSQL
returns rows in whatever order its heap holds them, which changes once a row is updated."""

from __future__ import annotations

from sqlmodel import Session, col, select

from mailbot.db import make_engine
from mailbot.leadership import Holder, leader_state
from mailbot.models import Case, Outbox, RawMessage
from tests.conftest import World


def rows(world: World) -> list[RawMessage]:
    """Every ledger row (one per mail the bot fetched or recorded)."""
    with Session(world.bot().engine) as session:
        return list(session.exec(select(RawMessage).order_by(col(RawMessage.id))).all())


def cases(world: World) -> list[Case]:
    with Session(world.bot().engine) as session:
        return list(session.exec(select(Case).order_by(col(Case.id))).all())


def case_count(world: World) -> int:
    return len(cases(world))


def outbox(world: World) -> list[Outbox]:
    """The receipts in the outbox (review requests go to reviewers, not to the applicant)."""
    with Session(world.bot().engine) as session:
        return list(session.exec(select(Outbox).where(Outbox.kind == "receipt")
                                 .order_by(col(Outbox.id))).all())


def every_outbox_row(world: World) -> list[Outbox]:
    with Session(world.bot().engine) as session:
        return list(session.exec(select(Outbox).order_by(col(Outbox.id))).all())


def leader(world: World) -> Holder | None:
    """Who holds the leader lock now (the file lock on SQLite, the advisory lock on
    PostgreSQL: mailbot.leadership.leader_state), None: nobody."""
    settings = world.settings()
    engine = make_engine(settings.database_url)
    try:
        return leader_state(settings, engine).holder
    finally:
        engine.dispose()
