from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

from mailbot.db import make_engine, migrate, pending_migrations


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
