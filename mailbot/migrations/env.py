"""Alembic environment: the engine comes from mailbot.db (never from alembic.ini).

Every upgrade runs in ONE transaction, on SQLite too. pysqlite opens no transaction for DDL,
so alembic's SQLite steps were each committed on their own: two processes starting on a new
database both read "no revision" and both ran CREATE TABLE ("table case already exists"),
and a process killed half-way left tables without a revision stamp. `BEGIN IMMEDIATE` takes
SQLite's write lock before alembic reads the current revision (https://sqlite.org/lang_transaction.html),
so a second process waits (busy_timeout), then finds the schema current; a kill rolls the
whole upgrade back.

PostgreSQL has transactional DDL, but two transactions may both read "no revision" and both
CREATE TABLE (the second fails on a duplicate key in pg_type). A transaction-level advisory
lock taken before alembic reads the revision serialises them the same way; PostgreSQL releases
it at commit or when the session dies (PostgreSQL docs 13.3.5, "Advisory Locks"), and under
READ COMMITTED the waiter's next statement sees the winner's schema.
"""

from alembic import context
from sqlmodel import SQLModel

import mailbot.models  # noqa: F401  (registers the tables)

MIGRATION_LOCK = 0x6D61696C626F74  # "mailbot": one key for every upgrade of this database

engine = context.config.attributes["engine"]
with engine.connect() as connection:
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    elif connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=True,
        transactional_ddl=True,
    )
    # read under the lock: a `migrate` that waited for another reports "nothing to do"
    # (mailbot.db.migrate), not the revision it saw before the winner committed
    heads = context.get_context().get_current_heads()
    context.config.attributes["before"] = heads[0] if heads else None
    context.run_migrations()
    connection.commit()
