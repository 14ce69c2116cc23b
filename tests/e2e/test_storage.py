"""Database and disk trouble under a running daemon (SCENARIOS R10, R11; issue #10, item 6).

Real faults, no mocks: a second real database session holding the write lock (the database
is locked: SQLite's `BEGIN EXCLUSIVE`, PostgreSQL's `LOCK TABLE ... IN EXCLUSIVE MODE` on
every table), and a small tmpfs filled to the last byte (the disk is full) or remounted
read-only. In each case a brief arrives during the fault: nothing is moved on IMAP, the daemon
(a real `mailbot run` subprocess) keeps running and logs ONE `event=storage_trouble`, the
operator gets ONE alert mail, and once the fault is gone the brief gets exactly one case and
one receipt, lands in Processed, and `event=storage_recovered` is logged.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP as SMTPProtocol
from aiosmtpd.smtp import Envelope
from aiosmtpd.smtp import Session as SmtpSession
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from mailbot.delivery.outbox import LEASE
from mailbot.mailworld import SmtpSink, _Handler
from mailbot.models import Alert, Case, RawMessage
from mailbot.service import Service
from mailbot.storage import storage_error
from mailbot.vocabulary import Incident
from tests.conftest import World, wait_until
from tests.e2e.test_alerts import text_of
from tests.e2e.test_outbox_takeover import _queue, _received, _rows
from tests.e2e.test_reliability import make_due

pytestmark = pytest.mark.e2e

LOCK_TIMEOUT = 1  # seconds a write waits for the lock (`?timeout=` in the SQLite URL)
# what each backend says when that wait is over
LOCKED = {"sqlite": "database is locked", "postgresql": "canceling statement due to lock timeout"}


def operator_of(world: World) -> str:
    return f"drift-{world.applicant}"


def database_file(world: World) -> Path:
    return world.tmp / "data" / "mailbot.sqlite3"


def configure(world: World) -> str:
    """An operator to alert and a database whose writes give up on a lock after
    LOCK_TIMEOUT s (30 s by default, which would only make this test slow): SQLite's
    `?timeout=`, PostgreSQL's lock_timeout in the URL's options (README "PostgreSQL and two
    hosts"). The raw mail stays in files on both: the disk tests fill that disk."""
    operator = operator_of(world)
    if world.database_url is None:
        url = f"sqlite:///{database_file(world)}?timeout={LOCK_TIMEOUT}"
    else:
        options = urllib.parse.quote(f"-c lock_timeout={LOCK_TIMEOUT}s")
        url = f"{world.database_url}?options={options}"
    world.write_config(operator={"addresses": [operator]},
                       bot={"database_url": url, "blob_store": "files"})
    return operator


@contextmanager
def database_locked(world: World) -> Iterator[None]:
    """Another real session holds the database's write lock until the block ends, as a
    backup, a stuck `sqlite3` shell or a stuck psql session would: reads go on, writes wait.
    SQLite: `BEGIN EXCLUSIVE` (in WAL mode readers go on). PostgreSQL: every table of the
    database locked IN EXCLUSIVE MODE, which lets plain SELECTs through and nothing else
    (PostgreSQL docs 13.3.1, "Table-Level Locks")."""
    if world.database_url is None:
        holder = sqlite3.connect(database_file(world), isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            holder.rollback()
            holder.close()
        return
    engine = create_engine(world.database_url)
    try:
        with engine.connect() as conn:
            _lock_every_table(conn)
            try:
                yield
            finally:
                conn.rollback()
    finally:
        engine.dispose()


def _lock_every_table(conn: Connection) -> None:
    """LOCK TABLE takes its tables one by one, so it can meet a daemon's transaction that
    holds one of them and waits for another: PostgreSQL then ends one of the two as a
    deadlock (seen in CI). A DBA's session would try again; so does this one."""
    tables = conn.execute(text("SELECT tablename FROM pg_tables "
                               "WHERE schemaname = 'public'")).scalars().all()
    names = ", ".join(f'"{table}"' for table in tables)
    for attempt in range(20):
        try:
            conn.execute(text(f"LOCK TABLE {names} IN EXCLUSIVE MODE"))
            return
        except OperationalError as err:
            conn.rollback()
            if "deadlock detected" not in str(err) or attempt == 19:
                raise
            time.sleep(0.2)


def cases(world: World) -> list[Case]:
    with Session(world.bot().engine) as session:
        return list(session.exec(select(Case)).all())


def raw_rows(world: World) -> list[RawMessage]:
    with Session(world.bot().engine) as session:
        return list(session.exec(select(RawMessage)).all())


@contextmanager
def running_daemon(world: World) -> Iterator[list[str]]:
    """`mailbot run` as a subprocess, up and idle (its first brief answered); yields a list
    that holds the daemon's whole output once it has stopped on SIGTERM with exit code 0."""
    daemon = world.spawn("run")
    output: list[str] = []
    try:
        world.deliver(world.brief(subject="Før fejlen"))
        wait_until(lambda: len(world.smtp.to(world.applicant)) == 1, timeout=60)
        yield output
        assert daemon.poll() is None, "the daemon died"
    finally:
        daemon.send_signal(signal.SIGTERM)
        out, _ = daemon.communicate(timeout=60)
        output.append(out)
        print(out)  # shown by pytest when the test fails: the daemon's side of the story
    assert daemon.returncode == 0, out


def assert_waited_then_handled_once(world: World, output: list[str], operator: str) -> None:
    """After the fault: both briefs have one case and one receipt each, INBOX is empty, the
    operator has exactly one alert, one incident and one recovery were logged."""
    out = output[0]
    assert out.count("event=storage_trouble") == 1, out
    assert "event=storage_recovered" in out, out
    assert "Traceback" not in out, out
    assert 1 <= out.count("storage still failing") <= 8, out  # retried, backing off
    assert len(world.received_by(operator)) == 1
    receipts = world.received_by(world.applicant)
    assert sorted(str(mail["Subject"]).count("Under fejlen") for mail in receipts) == [0, 1]
    assert len(cases(world)) == 2
    assert world.folder("INBOX") == []
    assert len(world.folder("Processed")) == 2
    assert all(row.attempts <= 1 for row in raw_rows(world))  # trouble is not the mail's fault


def still_waiting(world: World) -> None:
    """The brief is in INBOX, not moved, and not answered (the first brief's receipt only)."""
    assert len(world.folder("INBOX")) == 1
    assert len(world.folder("Processed")) == 1
    assert len(world.smtp.to(world.applicant)) == 1


# -- R10: the database is locked by another process --------------------------------------------
def test_a_brief_while_the_database_is_locked_waits_and_is_handled_once(world: World) -> None:
    """R10 and the alert's direct path: the database is locked by a real second connection
    (`BEGIN EXCLUSIVE`, as a backup or a stuck `sqlite3` shell would), so the alert cannot be
    stored either and goes to the operator straight over SMTP, once."""
    operator = configure(world)
    with running_daemon(world) as output:
        with database_locked(world):
            world.deliver(world.brief(subject="Under fejlen"))
            wait_until(lambda: len(world.smtp.to(operator)) == 1, timeout=60)
            time.sleep(6)  # the daemon retries, backing off: 1-2 s, 2-4 s, …
            still_waiting(world)
            assert len(world.smtp.to(operator)) == 1  # one incident, one mail
        wait_until(lambda: len(world.smtp.to(world.applicant)) == 2, timeout=60)
    assert_waited_then_handled_once(world, output, operator)
    [alert] = world.received_by(operator)
    assert alert["Auto-Submitted"] == "auto-generated"
    assert LOCKED[world.backend] in text_of(alert)


class _LockAtFirstRcpt(_Handler):
    """The test SMTP server's handler, which at the first RCPT waits until the test has
    locked the database: the row is claimed by then, its DATA not yet begun."""

    def __init__(self, sink: SmtpSink, seen: threading.Event, locked: threading.Event) -> None:
        super().__init__(sink)
        self.seen, self.locked = seen, locked

    async def handle_RCPT(self, server: SMTPProtocol, session: SmtpSession,
                          envelope: Envelope, address: str, rcpt_options: list[str]) -> str:
        if not self.seen.is_set():
            self.seen.set()
            await asyncio.get_running_loop().run_in_executor(None, self.locked.wait, 60)
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)


def test_a_database_locked_before_the_final_dot_ends_the_flush_at_once(world: World) -> None:
    """The database locks while a mail is in its SMTP transaction: `data_at` cannot be
    committed before the final ".", so the "." never goes and the server keeps nothing. The
    flush drops that connection and raises the storage error at once. A QUIT there would be
    read as mail content and never answered: the flush, and the daemon's every flush and
    alert behind it, would wait smtp.timeout_seconds (seen under CI load as a daemon silent
    for a minute). Once the lease has run out the mail goes out, once."""
    configure(world)
    world.write_config(smtp={"timeout_seconds": 600})  # a hang cannot pass for a wait
    [message_id] = _queue(world, 1)
    seen, locked = threading.Event(), threading.Event()
    assert world.smtp.controller is not None
    world.smtp.controller.handler = _LockAtFirstRcpt(world.smtp, seen, locked)
    bot = world.bot()
    now = bot.clock.now()
    raised: list[BaseException] = []

    def flush() -> None:
        try:
            bot.sender.flush(now)
        except Exception as err:  # what the daemon's watcher would be handed
            raised.append(err)

    flusher = threading.Thread(target=flush, daemon=True)
    flusher.start()
    assert seen.wait(60)
    with database_locked(world):
        locked.set()
        flusher.join(timeout=60)
        assert not flusher.is_alive(), "the flush hangs on a connection left in DATA"
    [err] = raised
    assert storage_error(err) is not None, err
    assert _received(world) == Counter()  # no final ".": nothing delivered
    [row] = _rows(world)
    assert row.state == "sending" and row.data_at is None  # claimed, never past DATA
    assert bot.sender.flush(now + LEASE + timedelta(seconds=1)).sent == 1
    assert _received(world) == Counter([message_id])


def test_alerts_the_database_cannot_store_are_mailed_directly_once(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    """The fallback of mailbot.alerts: with the database locked, every incident is an ERROR
    line, and the operator gets one mail straight over SMTP, not one per incident."""
    operator = configure(world)
    bot = world.bot()
    with database_locked(world):
        for number in range(3):
            bot.alerts.raise_alert(Incident.STORAGE_TROUBLE, f"test incident {number}")
    assert caplog.text.count("event=storage_trouble") == 3
    assert caplog.text.count("mailing the operator directly") == 3
    [alert] = world.received_by(operator)
    assert "test incident 0" in text_of(alert)
    with Session(bot.engine) as session:
        assert session.get(Alert, Incident.STORAGE_TROUBLE.value) is None  # nothing stored


# -- R11: the disk is full, or read-only ---------------------------------------------------------
@contextmanager
def small_disk(path: Path, size: str = "4m") -> Iterator[Path]:
    """A real tmpfs of `size` mounted at `path` (root with CAP_SYS_ADMIN; skipped otherwise)."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()}); needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path: Path) -> None:
    """Write `path` until the disk has no byte left (ENOSPC), in smaller and smaller pieces."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        size = 1 << 16
        while size:
            try:
                os.write(fd, b"\0" * size)
            except OSError:
                size //= 2
    finally:
        os.close(fd)


def remount(path: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True)


@pytest.mark.parametrize("fault,where", [
    ("full", "blobs"),  # raw mail cannot be stored, the database can: the alert is queued
    # SQLite's file and raw mail on the full disk: the alert goes directly (PostgreSQL's
    # database is on its server's disk: the alert is queued)
    ("full", "data"),
    ("read-only", "blobs"),  # the file system turned read-only (as after an I/O error)
])
def test_a_brief_while_the_disk_fails_waits_and_is_handled_once(
        world: World, fault: str, where: str) -> None:
    """R11: a brief arrives while the disk under `data_dir/<where>` is full or read-only."""
    disk = world.tmp / "data" if where == "data" else world.tmp / "data" / "blobs"
    with small_disk(disk):
        operator = configure(world)
        with running_daemon(world) as output:
            filler = disk / "filler"
            if fault == "full":
                fill(filler)
            else:
                remount(disk, "ro")
            try:
                world.deliver(world.brief(subject="Under fejlen"))
                wait_until(lambda: len(world.smtp.to(operator)) == 1, timeout=60)
                time.sleep(4)  # the daemon retries, backing off
                still_waiting(world)
            finally:
                if fault == "full":
                    filler.unlink()
                else:
                    remount(disk, "rw")
            wait_until(lambda: len(world.smtp.to(world.applicant)) == 2, timeout=60)
        assert_waited_then_handled_once(world, output, operator)


def test_scheduler_jobs_on_a_locked_database_are_one_incident_not_a_traceback_each(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    """The outbox and reminder jobs of the daemon run every 15 and 60 s: on a locked database
    they log no traceback, the incident is raised once, mail waits in the outbox, and the next
    sweep that works ends the incident."""
    operator = configure(world)
    world.smtp.stop()
    world.deliver(world.brief())
    world.run_once()  # the receipt waits in the outbox: SMTP is down
    world.smtp.start()
    make_due(world)
    service = Service(world.bot())
    with database_locked(world):
        for _ in range(3):
            service._outbox_job()
        service._jobs_job()
    assert caplog.text.count("event=storage_trouble") == 1
    assert "Traceback" not in caplog.text and "flush failed" not in caplog.text
    assert world.smtp.to(world.applicant) == []  # waited in the outbox
    assert len(world.received_by(operator)) == 1
    service._outbox_job()
    assert len(world.received_by(world.applicant)) == 1
    mailbox = service._connect()
    try:
        service._sweep_until_quiet(mailbox)
    finally:
        mailbox.close()
    assert caplog.text.count("event=storage_recovered") == 1
