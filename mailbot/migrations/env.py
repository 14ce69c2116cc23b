"""Alembic environment: the engine comes from mailbot.db (never from alembic.ini).

Every upgrade runs in ONE transaction, on SQLite too. pysqlite opens no transaction for DDL,
so alembic's SQLite steps were each committed on their own: two processes starting on a new
database both read "no revision" and both ran CREATE TABLE ("table case already exists"),
and a process killed half-way left tables without a revision stamp. `BEGIN IMMEDIATE` takes
SQLite's write lock before alembic reads the current revision (https://sqlite.org/lang_transaction.html),
so a second process waits (busy_timeout), then finds the schema current; a kill rolls the
whole upgrade back. PostgreSQL has transactional DDL already.
"""

from alembic import context
from sqlmodel import SQLModel

import mailbot.models  # noqa: F401  (registers the tables)

engine = context.config.attributes["engine"]
with engine.connect() as connection:
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=True,
        transactional_ddl=True,
    )
    context.run_migrations()
    connection.commit()
