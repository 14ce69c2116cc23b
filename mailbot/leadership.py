"""Who leads: the one process that sweeps the mailbox, sends the outbox and runs the jobs,
and every command that changes what that process changes (issue #15).

One way to become leader, two locks underneath:

- SQLite (one host): an exclusive `flock` on data_dir/mailbot.lock (SCENARIOS C1), as
  before. The kernel drops it when the process dies.
- PostgreSQL (one or more hosts on one database): a session-level advisory lock,
  `pg_try_advisory_lock(key)` (PostgreSQL docs, 9.27.10 "Advisory Lock Functions"), held on a
  connection of its own: never one of the pool's, which, handed back to the pool, would keep
  or lose the lock at random. The server drops it when that session ends: the process
  killed, the connection cut, the host gone (noticed by TCP keepalives and
  tcp_user_timeout, set on both ends to a third of bot.takeover_seconds).

The leader writes who it is and since when into the `leadership` row; readers (status,
check, health) check that row against the lock itself, since a killed leader leaves it.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from sqlalchemy import delete, text, update
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col

from mailbot.db import hide_password, keepalive_args, transaction, where
from mailbot.errors import MailbotError
from mailbot.models import Leadership

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from mailbot.config import Settings

log = logging.getLogger(__name__)

LOCK_NAME = "mailbot.lock"  # the SQLite leader's lock file in data_dir
PROC_LOCKS = Path("/proc/locks")  # Linux: every lock held, with its holder (proc(5))
NAME_PREFIX = "mailbot "  # application_name of every lock connection: "mailbot HOST:PID"


class AlreadyRunning(MailbotError):
    """Another process leads; the message names it (and how to stop it)."""


class LeadershipLost(MailbotError):
    """The lock went away under the leader (its database session ended): it must stop."""


def identity() -> str:
    """This process as `mailbot status` and pg_stat_activity show it: "mailbot HOST:PID"."""
    return f"{NAME_PREFIX}{socket.gethostname()}:{os.getpid()}"


def lock_key(settings: Settings) -> int:
    """The advisory lock key of this mailbox: the first 8 bytes of SHA-256 over
    "mailbot:HOST:USERNAME:FOLDER" (IMAP host and username lowercased) as a signed 64-bit
    integer (PostgreSQL's bigint key). Stable across versions and hosts: every mailbot on one
    mailbox computes the same key, whatever else its config says."""
    imap = settings.imap
    name = f"mailbot:{imap.host.lower()}:{imap.username.lower()}:{imap.folder}"
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


# -- the facts: who holds it ------------------------------------------------------------------
@dataclass(frozen=True)
class Holder:
    """A mailbot process on the lock: `name` "mailbot HOST:PID", `since` (UTC) when it took
    the lock (a standby: when it began to wait); None when not known."""

    name: str
    since: datetime | None = None

    @property
    def host(self) -> str:
        return self.name.removeprefix(NAME_PREFIX).rpartition(":")[0]

    @property
    def pid(self) -> int | None:
        pid = self.name.rpartition(":")[2]
        return int(pid) if pid.isdigit() else None

    def text(self) -> str:
        """ "mailbot web1:4242 since 2026-11-30 09:12:03 UTC" """
        return self.name + (f" since {self.since:%Y-%m-%d %H:%M:%S} UTC"
                            if self.since is not None else "")

    def as_dict(self) -> dict[str, Any]:
        return {"holder": self.name, "host": self.host, "pid": self.pid,
                "since": self.since.isoformat() if self.since is not None else None}


@dataclass(frozen=True)
class LeaderState:
    """Who leads, as `mailbot status`, `check` and `health` tell it. `holder` None: nobody;
    `standbys`: the other mailbot sessions waiting (PostgreSQL only); `lock`: what was asked
    (the lock file, or the advisory lock key); `error`: why it could not be read ("" read)."""

    backend: str  # "sqlite" | "postgresql"
    lock: str
    holder: Holder | None = None
    standbys: list[Holder] = field(default_factory=list)
    error: str = ""

    def text(self) -> str:
        """One line: "mailbot web1:4242 since … (advisory lock 123 on the database); 1
        standby: mailbot web2:77 since …"."""
        if self.error:
            return f"unknown ({self.error})"
        who = self.holder.text() if self.holder is not None else "nobody (no daemon runs)"
        line = f"{who} ({self.lock})"
        if self.standbys:
            line += (f"; {len(self.standbys)} standby: " if len(self.standbys) == 1 else
                     f"; {len(self.standbys)} standbys: ")
            line += ", ".join(s.text() for s in self.standbys)
        return line

    def as_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "lock": self.lock,
                "leader": self.holder.as_dict() if self.holder is not None else None,
                "standbys": [s.as_dict() for s in self.standbys], "error": self.error or None}


def recorded(engine: Engine) -> Holder | None:
    """The `leadership` row as written (maybe stale: see leader_state). SQLAlchemy errors
    propagate."""
    with Session(engine) as session:
        row = session.get(Leadership, 1)
        return Holder(row.holder, _utc(row.since)) if row is not None else None


def leader_state(settings: Settings, engine: Engine | None) -> LeaderState:
    """Who leads now, from the lock itself (PostgreSQL: pg_locks and pg_stat_activity,
    PostgreSQL docs 54.12 and 28.2.3; SQLite: /proc/locks), with `since` from the leadership
    row when it names the same process. Never raises: what cannot be read is `error` (on
    PostgreSQL without an `engine`: the database could not be opened)."""
    if settings.on_postgresql:
        lock = f"advisory lock {lock_key(settings)} on {hide_password(settings.database_url)}"
        if engine is None:
            return LeaderState("postgresql", lock, error="the database cannot be read")
        try:
            return _pg_state(settings, engine, lock)
        except SQLAlchemyError as err:
            return LeaderState("postgresql", lock, error=_first_line(err))
    path = settings.bot.data_dir / LOCK_NAME
    try:
        pid = lock_holder(settings.bot.data_dir)
    except (OSError, ValueError) as err:
        return LeaderState("sqlite", str(path), error=str(err))
    if pid is None:
        return LeaderState("sqlite", str(path))
    return LeaderState("sqlite", str(path), _with_since(engine, pid, None))


def _with_since(engine: Engine | None, pid: int, name: str | None) -> Holder:
    """The holder with process id `pid` (and application_name `name`, PostgreSQL), its since
    from the leadership row when the row is that process's (a database not migrated yet has
    no row: no since)."""
    try:
        row = recorded(engine) if engine is not None else None
    except SQLAlchemyError:
        row = None
    if row is not None and row.pid == pid and (name is None or row.name == name):
        return row
    return Holder(name or f"{NAME_PREFIX}?:{pid}")


def _pg_state(settings: Settings, engine: Engine, lock: str) -> LeaderState:
    # pg_locks shows a bigint advisory key as its high half in classid, its low half in
    # objid, objsubid 1 (PostgreSQL docs 54.12 "pg_locks"); advisory locks are per database
    with engine.connect() as conn:
        holders = conn.execute(text(
            "SELECT a.application_name, a.pid FROM pg_locks l JOIN pg_stat_activity a"
            " ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted AND l.classid = :hi"
            " AND l.objid = :lo AND l.objsubid = 1 AND l.database = (SELECT oid FROM"
            " pg_database WHERE datname = current_database())"), _halves(lock_key(settings))
        ).all()
        sessions = conn.execute(text(
            "SELECT application_name, backend_start, pid FROM pg_stat_activity WHERE datname ="
            " current_database() AND application_name LIKE :prefix AND pid <> pg_backend_pid()"
            " ORDER BY backend_start"), {"prefix": NAME_PREFIX + "%"}).all()
    holder, backend = None, None
    if holders:
        name, backend = str(holders[0][0]), holders[0][1]
        holder = _with_since(engine, Holder(name).pid or 0, name)
    standbys = [Holder(str(name), _utc(start)) for name, start, pid in sessions
                if pid != backend]
    return LeaderState("postgresql", lock, holder, standbys)


def lock_holder(data_dir: Path) -> int | None:
    """The process id holding data_dir/mailbot.lock (SQLite's leader lock), read from
    /proc/locks without touching the lock; None when nobody holds it. Raises OSError when
    /proc/locks cannot be read (not Linux)."""
    try:
        inode = (data_dir / LOCK_NAME).stat().st_ino
    except FileNotFoundError:
        return None
    for line in PROC_LOCKS.read_text().splitlines():
        # "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"; a waiter has "->" after "1:"
        parts = line.split()
        if len(parts) >= 6 and parts[1] == "FLOCK" and parts[5].rpartition(":")[2] == str(inode):
            return int(parts[4])
    return None


# -- holding it -------------------------------------------------------------------------------
class Lock:
    """A leadership held. check(): still held (thread-safe); release(): let go; as a context
    manager, released at the end of the block."""

    def __enter__(self) -> Lock:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()

    def check(self) -> bool:
        return True

    def release(self) -> None:
        """Let go; safe to call twice."""


class FileLock(Lock):
    """SQLite: the flock on data_dir/mailbot.lock. The kernel keeps it until release or
    death, so check() is always True."""

    def __init__(self, handle: IO[str]) -> None:
        self.handle: IO[str] | None = handle

    def release(self) -> None:
        if self.handle is not None:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None


def file_lock(data_dir: Path) -> FileLock:
    """Take data_dir/mailbot.lock (one daemon per data directory, SCENARIOS C1). Raises
    AlreadyRunning naming the directory and the lock file when another process holds it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / LOCK_NAME
    handle: IO[str] = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as err:
        handle.close()
        raise AlreadyRunning(
            f"another mailbot is running on {data_dir} (lock {path}); stop it first") from err
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return FileLock(handle)


class AdvisoryLock(Lock):
    """PostgreSQL: a session-level advisory lock on a connection of its own (no pool), in
    autocommit so it never sits idle in a transaction. Its application_name is identity(),
    so pg_stat_activity and pg_locks show the holder and its standbys.

    try_take() asks once, never waits (pg_try_advisory_lock); check() asks pg_locks whether
    this session still holds it; a broken connection is False (the lock went with it)."""

    def __init__(self, settings: Settings) -> None:
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        self.key = lock_key(settings)
        self.name = identity()
        # a dead peer is noticed before a standby takes over (the pool's connections get the
        # same, mailbot.db.make_engine)
        client, server = keepalive_args(settings.bot.takeover_seconds)
        options = " ".join(f"-c {name}={value}" for name, value in server.items())
        self.engine = create_engine(settings.database_url, poolclass=NullPool, connect_args={
            "application_name": self.name[:63],
            "connect_timeout": max(2, client["keepalives_idle"]), **client, "options": options})
        self.conn: Connection | None = None
        self.held = False
        self.mutex = threading.Lock()  # the watcher and the scheduler's jobs both check

    def _connection(self) -> Connection:
        if self.conn is None:
            self.conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        return self.conn

    def try_take(self) -> bool:
        """True when this session now holds the lock. Raises SQLAlchemyError when the
        database cannot be asked (the connection is dropped, a next call reconnects)."""
        with self.mutex:
            try:
                self.held = bool(self._connection().execute(
                    text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}).scalar())
            except SQLAlchemyError:
                self._drop()
                raise
            return self.held

    def check(self) -> bool:
        with self.mutex:
            if not self.held or self.conn is None:
                return False
            try:
                self.held = bool(self.conn.execute(text(
                    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND"
                    " granted AND pid = pg_backend_pid() AND classid = :hi AND objid = :lo AND"
                    " objsubid = 1)"), _halves(self.key)).scalar())
            except SQLAlchemyError as err:
                log.debug("the lock connection failed: %s", _first_line(err))
                self._drop()
            return self.held

    def release(self) -> None:
        """Unlock, then close the session. Closing alone would end the lock too, but only
        once the server has seen the connection go: a moment in which the next `status`
        or command still finds it held."""
        with self.mutex:
            if self.held and self.conn is not None:
                with suppress(SQLAlchemyError):  # gone with its connection: nothing to undo
                    self.conn.execute(text("SELECT pg_advisory_unlock(:key)"),
                                      {"key": self.key})
            self._drop()
        self.engine.dispose()

    def _drop(self) -> None:
        self.held = False
        if self.conn is not None:
            with suppress(SQLAlchemyError):  # a dead connection: closing it is all there is
                self.conn.close()
            self.conn = None


def _halves(key: int) -> dict[str, int]:
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    return {"hi": unsigned >> 32, "lo": unsigned & 0xFFFFFFFF}


# -- the one way to become leader ---------------------------------------------------------------
@contextmanager
def lead(settings: Settings, engine: Engine) -> Iterator[Lock]:
    """Be the leader for the block, or raise AlreadyRunning at once (the commands that
    change what the daemon changes: `run --once`, `send`, withdrawal, retention, erasure…).

    SQLite: the file lock (message: "another mailbot is running on DATA_DIR (lock FILE)");
    PostgreSQL: the advisory lock (message names the database and the holder, and since
    when). The leadership row is written on entry and deleted on exit."""
    lock = _take(settings, engine)
    try:
        yield lock
    finally:
        let_go(engine, lock)


def _take(settings: Settings, engine: Engine) -> Lock:
    if not settings.on_postgresql:
        lock: Lock = file_lock(settings.bot.data_dir)
    else:
        advisory = AdvisoryLock(settings)
        try:
            taken = advisory.try_take()
        except BaseException:
            advisory.release()
            raise
        if not taken:
            advisory.release()
            raise AlreadyRunning(f"another mailbot is running on {where(settings.database_url)}"
                                 f" (leader: {_holder_text(settings, engine)}); stop it first")
        lock = advisory
    try:
        _record(engine)
    except BaseException:
        lock.release()
        raise
    return lock


def let_go(engine: Engine, lock: Lock) -> None:
    """Delete this process's leadership row (when it still holds the lock: else the row may
    be the next leader's), then release the lock."""
    try:
        if lock.check():
            with transaction(engine) as session:
                session.execute(delete(Leadership).where(col(Leadership.holder) == identity()))
    except SQLAlchemyError as err:  # the database away: the next leader overwrites the row
        log.warning("could not clear the leadership row: %s", _first_line(err))
    finally:
        lock.release()


def wait_to_lead(settings: Settings, engine: Engine, stop: threading.Event,
                 beat: Callable[[], None] = lambda: None) -> Lock | None:
    """`mailbot run`'s way: lead now, or (PostgreSQL) wait as a hot standby until the lock
    comes free, trying every takeover_seconds / 3 (jittered, so two standbys do not ask in
    step), never touching IMAP or SMTP. Returns the lock, or None when `stop` was set while
    waiting. Logs one `event=standby` line per leader it waits for and `event=leader` with
    the time waited. SQLite: the file lock now, or AlreadyRunning. `beat`: called at every
    try (the systemd watchdog's heartbeat)."""
    if not settings.on_postgresql:
        return _take(settings, engine)
    interval = settings.bot.takeover_seconds / 3
    lock = AdvisoryLock(settings)
    started, waited_for, trouble = time.monotonic(), "", False
    while not stop.is_set():
        beat()
        try:
            if lock.try_take():
                _record(engine)
                waited = time.monotonic() - started
                log.info("event=leader %s leads the mailbox %s@%s (advisory lock %s; waited "
                         "%.1f s)", lock.name, settings.imap.username, settings.imap.host,
                         lock.key, waited)
                return lock
            holder = _holder_text(settings, engine)
            if holder != waited_for:
                waited_for = holder
                log.info("event=standby %s is a standby on %s, waiting to take over (leader: "
                         "%s); it tries every %.0f s", lock.name, where(settings.database_url),
                         holder, interval)
            trouble = False
        except SQLAlchemyError as err:
            if not trouble:  # one line per outage, not one per try
                log.warning("event=standby_database the database does not answer (%s); "
                            "trying again every %.0f s", _first_line(err), interval)
            trouble = True
        stop.wait(interval * random.uniform(0.7, 1.0))
    lock.release()
    return None


def _record(engine: Engine) -> None:
    """This process leads from now: the leadership row (UPDATE, an INSERT the first time)."""
    name, now = identity(), datetime.now(UTC)
    host, pid = socket.gethostname(), os.getpid()
    with transaction(engine) as session:
        done = session.execute(update(Leadership).where(col(Leadership.id) == 1)
                               .values(holder=name, host=host, pid=pid, since=now))
        if not getattr(done, "rowcount", 1):
            session.add(Leadership(holder=name, host=host, pid=pid, since=now))


def _holder_text(settings: Settings, engine: Engine) -> str:
    state = leader_state(settings, engine)
    if state.holder is not None:
        return state.holder.text()
    return "unknown (it let go a moment ago)" if not state.error else \
        f"unknown ({state.error})"


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _first_line(err: Exception) -> str:
    return str(getattr(err, "orig", None) or err).strip().splitlines()[0]
