"""Engine, sessions and migrations.

`run`, `check` and `migrate` bring the schema to the newest revision (migrate); the read-only
commands open an existing database that must already be there (open_current) and never
change it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Table, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.sql import Update
from sqlmodel import Session, create_engine

from mailbot.errors import ConfigError, TransientError

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).parent / "migrations"
KEY = "bot.database_url"
MIGRATE_FIX = "run `mailbot migrate`"
# the extra that brings the driver of each database mailbot supports besides SQLite
_EXTRAS = {"postgresql": "pip install 'mailbot[postgres]'"}
SQLITE_TIMEOUT_SECONDS = 30.0  # a write waits this long for another process's lock
# PostgreSQL waits for a lock for ever by default: a stuck session would hang the daemon
LOCK_TIMEOUT_MS = int(SQLITE_TIMEOUT_SECONDS * 1000)
# up to the LAST '@' before the query: an un-encoded '@' in the password is hidden too
_PASSWORD = re.compile(r"(://[^:/@?#]*:)[^?#]*@")
# percent-encoded in a URL's user or password (RFC 3986 section 3.2.1)
_ENCODE_HINT = ("; percent-encode the special characters of the password "
                "(@ %40, : %3A, / %2F, ? %3F, # %23)")
# the largest row id either database holds: the id columns are `integer` on PostgreSQL (4 bytes,
# PostgreSQL docs 8.1.1, "Integer Types"); SQLite's INTEGER is 8 bytes. A larger number bound
# to an id is an error in the database ("integer out of range"), not "no such row"
MAX_ROW_ID = 2**31 - 1
TAKEOVER_SECONDS = 15.0  # bot.takeover_seconds' default
# A session idle inside an open transaction is ended by the server after this long. A frozen
# process (a paused VM, a cut network) keeps its pool connection's transaction and row locks
# until TCP notices, and a standby that took over cannot send the rows it holds; 5 minutes is
# the outbox LEASE (mailbot.delivery.outbox): no transaction of ours is meant to idle that long,
# and a lease left behind is taken over after it anyway (PostgreSQL docs 20.11.1, "Statement
# Behavior": idle_in_transaction_session_timeout)
IDLE_IN_TRANSACTION_MS = 5 * 60 * 1000


def make_engine(url: str, source: str = "<config>", key: str = KEY,
                takeover_seconds: float = TAKEOVER_SECONDS,
                idle_in_transaction_ms: int = IDLE_IN_TRANSACTION_MS) -> Engine:
    """An engine for `url`; a SQLite file's folder is created.

    On PostgreSQL every connection gets the TCP keepalives of keepalive_args(takeover_seconds)
    (bot.takeover_seconds, in seconds) and idle_in_transaction_ms (milliseconds) as its
    idle_in_transaction_session_timeout, as the leader's lock connection does. SQLite: neither.
    Raises ConfigError(source, key, ...) for a URL SQLAlchemy cannot read, an unknown database
    or a driver that is not installed (source, key: where the URL was set, see
    Settings.origin).
    """
    sqlite_file = sqlite_path(url)
    if sqlite_file is not None:
        sqlite_file.parent.mkdir(parents=True, exist_ok=True)
    return _create(url, source, key, takeover_seconds, idle_in_transaction_ms)


def keepalive_args(takeover_seconds: float) -> tuple[dict[str, int], dict[str, int]]:
    """(libpq connection parameters, server settings) that notice a vanished peer within
    about a third of takeover_seconds: TCP keepalives every probe seconds, 3 unanswered ones
    or probe seconds of unacknowledged data end the connection. The client side lets a
    process notice the server is gone; the server side (settable per session, PostgreSQL docs
    20.3.1 "Connection Settings") ends the session, its locks and its transaction, of a host
    that froze or lost the network, before a standby takes over."""
    probe = max(1, int(takeover_seconds / 3))
    interval = max(1, probe // 3)
    client = {"keepalives": 1, "keepalives_idle": probe, "keepalives_interval": interval,
              "keepalives_count": 3, "tcp_user_timeout": probe * 1000}
    server = {"tcp_keepalives_idle": probe, "tcp_keepalives_interval": interval,
              "tcp_keepalives_count": 3, "tcp_user_timeout": probe * 1000}
    return client, server


def _create(url: str, source: str, key: str, takeover_seconds: float = TAKEOVER_SECONDS,
            idle_in_transaction_ms: int = IDLE_IN_TRANSACTION_MS) -> Engine:
    try:
        if sqlite_path(url) is not None:
            timeout = sqlite_timeout(url)
            engine = create_engine(url, connect_args={"timeout": timeout})
            event.listen(engine, "connect", partial(_sqlite_pragmas, timeout))
            return engine
        if _dialect(url) != "postgresql":
            return create_engine(url, pool_pre_ping=True)
        client, server = keepalive_args(takeover_seconds)
        # the URL's own parameters win: a DBA may have tuned them
        query = url.partition("?")[2]
        engine = create_engine(url, pool_pre_ping=True, connect_args={
            name: value for name, value in client.items() if f"{name}=" not in query})
        event.listen(engine, "connect", _postgresql_lock_timeout)
        event.listen(engine, "connect", partial(
            _postgresql_session, {**server,
                                  "idle_in_transaction_session_timeout": idle_in_transaction_ms}))
        return engine
    except ModuleNotFoundError as err:
        dialect = _dialect(url)
        if dialect == "postgresql" and err.name == "psycopg2":  # the extra brings psycopg 3
            fix = "write postgresql+psycopg:// (psycopg 3, the driver mailbot installs)"
        elif dialect in _EXTRAS:
            fix = f"install the extra: {_EXTRAS[dialect]}"
        else:
            fix = f"install the Python package {err.name}"
        raise ConfigError(source, key, f"the {dialect} driver {err.name!r} is not installed",
                          fix) from err
    except ArgumentError as err:
        raise ConfigError(source, key, f"{hide_password(url)!r} is not a database URL ({err})",
                          "write a SQLAlchemy URL such as "
                          "postgresql+psycopg://mailbot@db.kommune.dk/mailbot, or remove the "
                          "setting for SQLite in data_dir") from err


def _dialect(url: str) -> str:
    return url.partition(":")[0].partition("+")[0]


def sqlite_path(url: str) -> Path | None:
    """The file of a `sqlite:///FILE` URL; None for other databases and in-memory SQLite."""
    match = re.match(r"^sqlite(?:\+\w+)?:///([^?]+)", url)
    if match is None or match[1] == ":memory:":
        return None
    return Path(match[1])


def sqlite_timeout(url: str) -> float:
    """How long a SQLite write waits for a lock another process holds before it fails as
    `database is locked`: `?timeout=SECONDS` in the URL, else SQLITE_TIMEOUT_SECONDS."""
    match = re.search(r"[?&]timeout=([0-9.]+)(?:&|$)", url)
    return float(match[1]) if match else SQLITE_TIMEOUT_SECONDS


def hide_password(url: str) -> str:
    """`postgresql://user:***@host/db`: URLs go into error messages and logs."""
    return _PASSWORD.sub(r"\1***@", url)


def where(url: str) -> str:
    """How an operator recognises the database: the SQLite file, else the URL."""
    path = sqlite_path(url)
    return str(path) if path is not None else hide_password(url)


def _sqlite_pragmas(timeout: float, dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
    cursor.close()


def _postgresql_lock_timeout(dbapi_conn: Any, _record: Any) -> None:
    """A statement waits at most LOCK_TIMEOUT_MS for a lock another session holds (a stuck
    psql session, a backup that locks tables), as a SQLite write waits for the file lock;
    then it fails with LockNotAvailable, an OperationalError that mailbot.storage treats as
    storage trouble, retried. A lock_timeout the DBA set for the role or the database, or
    the URL's `options=-c lock_timeout=...`, is kept (PostgreSQL docs 20.11.1, "Statement
    Behavior"). Committed at once: a SET in the pool's first transaction would be undone
    by its rollback."""
    cursor = dbapi_conn.cursor()
    cursor.execute("SELECT current_setting('lock_timeout')")
    if cursor.fetchone()[0] == "0":
        cursor.execute(f"SET lock_timeout = {LOCK_TIMEOUT_MS}")
    cursor.close()
    dbapi_conn.commit()


def _postgresql_session(settings: dict[str, int], dbapi_conn: Any, _record: Any) -> None:
    """SET each of `settings` (name: value) for this session; an
    idle_in_transaction_session_timeout the DBA set for the role or the database, or the URL's
    `options=-c ...`, is kept, as _postgresql_lock_timeout keeps a lock_timeout. Committed at
    once, as there."""
    cursor = dbapi_conn.cursor()
    for name, value in settings.items():
        if name == "idle_in_transaction_session_timeout":
            cursor.execute(f"SELECT current_setting('{name}')")
            if cursor.fetchone()[0] != "0":
                continue
        cursor.execute(f"SET {name} = {int(value)}")
    cursor.close()
    dbapi_conn.commit()


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any exception."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except Exception:
            session.rollback()
            raise


def rows_changed(session: Session, statement: Update) -> int:
    """Run a conditional UPDATE (`... WHERE state = 'pending'`) in the caller's transaction;
    returns how many rows it changed (0: another process changed the row first). The one
    way to change a row two processes may change: a read-then-write would not see the
    other's commit (pysqlite reads outside a transaction)."""
    result = session.execute(statement)
    return int(getattr(result, "rowcount", 0))


def insert_if_missing(db: Session | Connection, table: Table, values: dict[str, Any],
                      key: list[str]) -> int:
    """INSERT `values` into `table` unless a row with the same `key` columns is there, in the
    caller's transaction: `INSERT ... ON CONFLICT (key) DO NOTHING` (PostgreSQL docs, "INSERT",
    ON CONFLICT Clause; SQLite "UPSERT", the same syntax). Two processes inserting the same key
    at once both succeed and leave one row: on PostgreSQL the second waits for the first's
    transaction and does nothing if it committed; on SQLite writers are serialised. Returns the
    rows inserted: 1, or 0 when the key was there."""
    dialect = db.get_bind().dialect.name if isinstance(db, Session) else db.dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        statement: Any = pg_insert(table).values(**values).on_conflict_do_nothing(
            index_elements=key)
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        statement = sqlite_insert(table).values(**values).on_conflict_do_nothing(
            index_elements=key)
    return int(getattr(db.execute(statement), "rowcount", 0))


# -- migrations -------------------------------------------------------------------------------
@contextmanager
def _quiet_alembic() -> Iterator[None]:
    """Alembic logs every look at a schema at INFO; the CLI prints its own summary instead."""
    logger = logging.getLogger("alembic")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _alembic_config(engine: Engine | None, secret_file: Path | None = None) -> AlembicConfig:
    # alembic is imported only where a schema is looked at: most commands never need it;
    # quiet, because it logs its plugins at INFO as it loads
    with _quiet_alembic():
        from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    cfg.attributes["secret_file"] = secret_file
    return cfg


def _scripts(engine: Engine | None = None) -> ScriptDirectory:
    with _quiet_alembic():
        from alembic.script import ScriptDirectory

        return ScriptDirectory.from_config(_alembic_config(engine))


def head_revision() -> str:
    """The newest revision this mailbot's migrations know."""
    head = _scripts().get_current_head()
    assert head is not None, "mailbot ships at least one migration"
    return head


@dataclass(frozen=True)
class Schema:
    """Where a database stands against this mailbot's migrations."""

    current: str | None  # the database's revision; None: never migrated
    head: str  # the newest revision this mailbot knows
    known: bool  # current is one of this mailbot's revisions (or None)

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def schema(engine: Engine) -> Schema:
    """Read the database's revision (no change, no log lines). SQLAlchemy errors propagate."""
    with _quiet_alembic():  # before the import: alembic logs its plugins as it loads
        from alembic.runtime.migration import MigrationContext

        scripts = _scripts(engine)
        with engine.connect() as conn:
            heads = MigrationContext.configure(conn).get_current_heads()
    current = heads[0] if heads else None
    known = current is None or any(rev.revision == current for rev in scripts.walk_revisions())
    return Schema(current, head_revision(), known)


def migrate(engine: Engine, revision: str = "head", quiet: bool = False,
            secret_file: Path | None = None) -> list[str]:
    """Bring the schema to `revision` (safe to call at every start).

    Returns the revisions applied, oldest first, each as "0004 council agenda and decisions".
    Raises TransientError when the database refuses (the driver's own errors vary).
    quiet: no alembic log lines (the caller reports). secret_file: data_dir/secret, whose
    value migration 0020 keeps as the shared signing secret when the file exists
    (mailbot.app.load_secret); without it that migration makes a random one.
    """
    with _quiet_alembic():  # before the import: alembic logs its plugins as it loads
        from alembic import command

    try:
        cfg = _alembic_config(engine, secret_file)
        with _quiet_alembic() if quiet else nullcontext():
            command.upgrade(cfg, revision)
        before = cfg.attributes["before"]  # read under the migration lock (env.py)
        after = schema(engine).current
    except Exception as err:  # the driver's own errors vary by database
        raise TransientError(f"database migration failed: {err}") from err
    if after is None or after == before:
        return []
    steps = _scripts(engine).iterate_revisions(after, before or "base")
    return [f"{step.revision} {step.doc}" for step in reversed(list(steps))]


def pending_migrations(engine: Engine) -> list[str]:
    """Revisions not yet applied; empty when the database is up to date."""
    with _quiet_alembic():
        from alembic.runtime.migration import MigrationContext

        script = _scripts(engine)
        with engine.connect() as conn:
            current = set(MigrationContext.configure(conn).get_current_heads())
    head = script.get_current_head()
    if head in current:
        return []
    return [rev.revision for rev in script.walk_revisions() if rev.revision not in current]


def open_current(url: str, source: str = "<config>", key: str = KEY,
                 takeover_seconds: float = TAKEOVER_SECONDS) -> Engine:
    """An engine on an existing database at this mailbot's revision, for read-only commands.

    Never creates, migrates or writes. Raises ConfigError naming the database (its file or URL)
    and bot.database_url when it is missing, unreachable, behind or ahead of this mailbot;
    the fix for missing or behind is `mailbot migrate`.
    """
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        raise ConfigError(str(path), KEY, f"there is no database yet, this mailbot needs "
                          f"revision {head_revision()} (is bot.data_dir right?)",
                          f"{MIGRATE_FIX} to create it")
    engine = _create(url, source, key, takeover_seconds)
    state = reachable_schema(engine, url)
    if not state.up_to_date:
        engine.dispose()
        raise schema_error(url, state)
    return engine


def reachable_schema(engine: Engine, url: str) -> Schema:
    """schema(engine), with a database that cannot be reached or read as a ConfigError
    naming it (`url`: how it was configured)."""
    try:
        return schema(engine)
    except SQLAlchemyError as err:
        engine.dispose()
        reason = _without_password(
            str(getattr(err, "orig", None) or err).strip().splitlines()[0], url)
        fix = ("check that the file is mailbot's SQLite database and that this user may "
               "read it" if sqlite_path(url) is not None else
               "check the URL, that the server runs and that the user may log in"
               + (_ENCODE_HINT if url.partition("://")[2].partition("?")[0].count("@") > 1
                  else ""))
        raise ConfigError(where(url), KEY, f"cannot read the database ({reason})", fix) from err


def _without_password(text: str, url: str) -> str:
    """`text` with every piece of the URL's password starred out: an un-encoded '@' or '/'
    in the password makes the driver read its tail as the host and quote it."""
    match = re.match(r"^[^:]+://[^:/@?#]*:([^?#]*)@", url)
    for piece in re.split(r"[@/:?#]", match[1]) if match else []:
        if len(piece) > 1:
            text = text.replace(piece, "***")
    return text


def schema_error(url: str, state: Schema) -> ConfigError:
    """The one line for a database that is not at this mailbot's revision."""
    if not state.known:
        return ConfigError(where(url), KEY,
                           f"the database is at revision {state.current}, which this mailbot "
                           f"does not know (it needs {state.head}): a newer mailbot migrated it",
                           "run the mailbot version that migrated it, or restore a backup")
    return ConfigError(where(url), KEY,
                       f"the database is at revision {state.current or 'none (never migrated)'},"
                       f" this mailbot needs {state.head}", MIGRATE_FIX)
