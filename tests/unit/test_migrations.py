from __future__ import annotations

from datetime import UTC, datetime

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlmodel import Session, SQLModel

from mailbot.db import make_engine, migrate, pending_migrations
from mailbot.models import ServiceState
from tests.conftest import required
from tests.postgres import Postgres


def test_migrations_build_exactly_the_models(empty_database_url: str) -> None:
    """On each backend (an empty SQLite file, an empty PostgreSQL database): the migrations
    from nothing give the tables, columns, types and constraints the models declare."""
    engine = make_engine(empty_database_url)
    assert pending_migrations(engine) != []
    migrate(engine)
    migrate(engine)  # idempotent at every start
    assert pending_migrations(engine) == []
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    engine.dispose()
    assert diff == []


def test_postgresql_times_written_before_0022_read_back_unchanged_after_it(
        postgres: Postgres | None) -> None:
    """On a server whose TimeZone is Europe/Copenhagen (as a Danish DBA's often is), a time
    mailbot wrote into one of the nine columns that were `timestamp without time zone` was
    stored as local time (14:00 for 12:00 UTC) and read back as 14:00 UTC; after 0022 it
    reads 12:00 UTC, and new writes keep it."""
    server = required(postgres)
    url = server.new_database(migrated=False)
    server.execute(f"ALTER DATABASE \"{url.rsplit('/', 1)[1]}\" SET timezone = "
                   "'Europe/Copenhagen'")
    engine = make_engine(url)
    noon = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    migrate(engine, "0019", quiet=True)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO service_state (id, last_sweep_at, sweep_seconds, "
                          "imap_state, imap_detail) VALUES (1, :at, 1, 'ok', '')"),
                     {"at": noon})
    migrate(engine, quiet=True)
    with Session(engine) as session:
        state = session.get(ServiceState, 1)
        assert state is not None and state.last_sweep_at == noon
        state.imap_since = noon
        session.add(state)
        session.commit()
    with Session(engine) as session:
        again = session.get(ServiceState, 1)
        assert again is not None and (again.last_sweep_at, again.imap_since) == (noon, noon)
    engine.dispose()
