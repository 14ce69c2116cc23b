"""Alembic environment: the engine comes from mailbot.db (never from alembic.ini)."""

from alembic import context
from sqlmodel import SQLModel

import mailbot.models  # noqa: F401  (registers the tables)

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=True,
    )
    context.run_migrations()
