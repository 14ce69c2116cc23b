"""Telling database and disk trouble from other errors (mailbot.storage, SCENARIOS R10, R11),
with real faults: a SQLite file locked by a second real connection, a PostgreSQL table locked
by a second real session, a PostgreSQL server that ends mailbot's sessions and lets no new one
in, and a file size limit (RLIMIT_FSIZE) that makes the kernel refuse a blob write with
EFBIG."""

from __future__ import annotations

import errno
import resource
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from mailbot.db import SQLITE_TIMEOUT_SECONDS, make_engine, sqlite_timeout
from mailbot.storage import describe, storage_error
from tests.conftest import required
from tests.postgres import Postgres


def test_sqlite_lock_wait_comes_from_the_url() -> None:
    assert sqlite_timeout("sqlite:////var/lib/mailbot/mailbot.sqlite3") == SQLITE_TIMEOUT_SECONDS
    assert sqlite_timeout("sqlite:////var/lib/mailbot/mailbot.sqlite3?timeout=2.5") == 2.5


def test_a_database_locked_by_another_connection_is_storage_trouble(tmp_path: Path) -> None:
    path = tmp_path / "mailbot.sqlite3"
    engine = make_engine(f"sqlite:///{path}?timeout=0.3")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    started = time.monotonic()
    try:
        with pytest.raises(OperationalError) as caught, engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
    finally:
        holder.rollback()
        holder.close()
    assert time.monotonic() - started < 5  # the URL's timeout, not the default 30 s
    wrapped = RuntimeError("while handling")
    wrapped.__cause__ = caught.value
    assert storage_error(wrapped) is caught.value
    assert describe(caught.value) == "database: database is locked"


def test_disk_errors_count_and_network_errors_do_not() -> None:
    assert storage_error(OSError(errno.ENOSPC, "No space left on device")) is not None
    assert storage_error(OSError(errno.EROFS, "Read-only file system")) is not None
    assert storage_error(ConnectionResetError(errno.ECONNRESET, "reset")) is None
    assert storage_error(TimeoutError("timed out")) is None
    assert storage_error(ValueError("bad mail")) is None


PUT_A_BLOB = """
import sys
from pathlib import Path
from mailbot.blobs import BlobStore
try:
    BlobStore(Path(sys.argv[1])).put(b"x" * 200_000)
except OSError as err:
    print(err.errno)
"""


def test_a_blob_the_disk_refuses_raises_and_leaves_no_partial_file(tmp_path: Path) -> None:
    """The kernel refuses to let the file grow past RLIMIT_FSIZE (EFBIG, SIGXFSZ ignored),
    the same path a full disk takes: the OSError reaches the caller, no file is left."""
    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (65_536, 65_536))

    result = subprocess.run([sys.executable, "-c", PUT_A_BLOB, str(tmp_path / "blobs")],
                            capture_output=True, text=True, preexec_fn=limit, timeout=60)
    assert result.stdout.strip() == str(errno.EFBIG), result.stderr
    assert storage_error(OSError(errno.EFBIG, "File too large")) is not None
    assert [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()] == []


def test_a_postgresql_table_locked_by_another_session_is_storage_trouble(
        postgres: Postgres | None) -> None:
    """A stuck session holding a table's lock: the write gives up after the URL's
    lock_timeout (mailbot's own default is 30 s) instead of hanging the daemon."""
    url = required(postgres).new_database()
    engine = make_engine(f"{url}?options={urllib.parse.quote('-c lock_timeout=300ms')}")
    holder = make_engine(url)
    started = time.monotonic()
    with holder.connect() as stuck:
        stuck.execute(text("LOCK TABLE outbox IN EXCLUSIVE MODE"))
        with pytest.raises(OperationalError) as caught, engine.begin() as conn:
            conn.execute(text("UPDATE outbox SET attempts = attempts + 1"))
        stuck.rollback()
    assert time.monotonic() - started < 5
    assert storage_error(caught.value) is caught.value
    assert describe(caught.value) == "database: canceling statement due to lock timeout"
    with engine.begin() as conn:  # the lock gone, the same engine works again
        conn.execute(text("UPDATE outbox SET attempts = attempts + 1"))
    engine.dispose()
    holder.dispose()


def test_a_postgresql_server_that_refuses_mailbot_is_storage_trouble_until_it_lets_it_in(
        postgres: Postgres | None) -> None:
    """The DBA (or a failover) ends mailbot's sessions and lets no new one in: an
    OperationalError that mailbot.storage counts as storage trouble, and the same engine
    connects again once the database takes connections (pool_pre_ping)."""
    server = required(postgres)
    url = server.new_database()
    name = url.rsplit("/", 1)[1]
    engine = make_engine(url)
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    # ALLOW_CONNECTIONS, not CONNECTION LIMIT: the tests' role is a superuser, which a
    # connection limit does not stop (PostgreSQL docs, ALTER DATABASE)
    server.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
    server.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                   f"WHERE datname = '{name}'")
    try:
        with pytest.raises(OperationalError) as caught, engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        assert storage_error(caught.value) is caught.value
        assert "is not currently accepting connections" in describe(caught.value)
    finally:
        server.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    with engine.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar() == 1
    engine.dispose()
