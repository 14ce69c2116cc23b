"""Telling database and disk trouble from other errors (mailbot.storage, SCENARIOS R10, R11),
with real faults: a SQLite file locked by a second real connection, and a file size limit
(RLIMIT_FSIZE) that makes the kernel refuse a blob write with EFBIG."""

from __future__ import annotations

import errno
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from mailbot.db import SQLITE_TIMEOUT_SECONDS, make_engine, sqlite_timeout
from mailbot.storage import describe, storage_error


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
