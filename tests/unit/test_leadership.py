"""Leadership (mailbot.leadership, issue #15): the advisory lock on a real PostgreSQL, the
file lock on SQLite, and `mailbot status` on both. Two holders are two database sessions
(or two flocks) in this process: the server and the kernel see them as two processes."""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from mailbot.config import Settings, load_settings
from mailbot.db import make_engine, migrate
from mailbot.leadership import (
    AdvisoryLock,
    AlreadyRunning,
    file_lock,
    identity,
    lead,
    leader_state,
    lock_key,
    wait_to_lead,
)
from tests.conftest import wait_until
from tests.postgres import Postgres
from tests.unit.conftest import MailbotRunner, write_config


def _settings(tmp_path: Path, url: str | None = None) -> tuple[Path, Settings]:
    config = write_config(tmp_path)
    environ = {"MAILBOT_BOT__DATABASE_URL": url} if url else {}
    return config, load_settings(config, environ=environ)


def _pg_url(postgres: Postgres | None) -> str:
    if postgres is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true: PostgreSQL is mandatory")
        pytest.skip("PostgreSQL is not installed here (apt-get install postgresql)")
    return postgres.new_database()


def test_the_lock_key_is_the_mailbox_s_and_stable(tmp_path: Path) -> None:
    """The same mailbox gives the same key on every host and version (a changed key would
    let two versions lead at once during an upgrade); another folder another key."""
    _, settings = _settings(tmp_path)
    key = lock_key(settings)
    assert -2**63 <= key < 2**63
    assert key == lock_key(settings.model_copy(update={"imap": settings.imap.model_copy(
        update={"host": settings.imap.host.upper()})}))
    other = settings.model_copy(update={"imap": settings.imap.model_copy(
        update={"folder": "Other"})})
    assert lock_key(other) != key
    # pinned: "mailbot:HOST:USERNAME:FOLDER" hashed, so every release computes this value
    import hashlib
    name = f"mailbot:{settings.imap.host.lower()}:{settings.imap.username.lower()}:INBOX"
    assert key == int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big",
                                 signed=True)


def test_on_postgresql_one_session_leads_and_the_refusal_names_it(
        tmp_path: Path, postgres: Postgres | None) -> None:
    url = _pg_url(postgres)
    _, settings = _settings(tmp_path, url)
    engine = make_engine(url)
    assert leader_state(settings, engine).holder is None
    with lead(settings, engine) as lock:
        state = leader_state(settings, engine)
        assert state.holder is not None and state.holder.name == identity()
        assert state.holder.host == socket.gethostname()
        assert state.holder.pid == os.getpid() and state.holder.since is not None
        with pytest.raises(AlreadyRunning) as refused, lead(settings, engine):
            pass
        assert "another mailbot is running on" in str(refused.value)
        assert f"(leader: {identity()} since " in str(refused.value)
        assert "postgresql+psycopg://mailbot@127.0.0.1" in str(refused.value)
        assert lock.check()
    assert leader_state(settings, engine).holder is None  # the row deleted, the lock gone


def test_a_terminated_lock_session_is_a_lost_leadership_and_a_standby_takes_it(
        tmp_path: Path, postgres: Postgres | None) -> None:
    """pg_terminate_backend (PostgreSQL docs 9.28.2) of the leader's lock connection: its
    check() says so, and a waiting standby takes the lock at its next try."""
    url = _pg_url(postgres)
    _, settings = _settings(tmp_path, url)
    settings.bot.takeover_seconds = 1.5
    engine = make_engine(url)
    leader = wait_to_lead(settings, engine, threading.Event())
    assert isinstance(leader, AdvisoryLock) and leader.check()
    got: list[object] = []
    stop = threading.Event()
    standby = threading.Thread(target=lambda: got.append(wait_to_lead(settings, engine, stop)))
    standby.start()
    try:
        def sessions() -> int:
            with engine.connect() as conn:
                return int(conn.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name"),
                    {"name": identity()}).scalar() or 0)

        wait_until(lambda: sessions() == 2, timeout=10)  # the leader's and the standby's
        state = leader_state(settings, engine)
        assert state.holder is not None and len(state.standbys) == 1
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype ="
                              " 'advisory' AND granted"))
        assert not leader.check()
        standby.join(timeout=10)
        assert not standby.is_alive()
        [taken] = got
        assert isinstance(taken, AdvisoryLock) and taken.check()
        taken.release()
    finally:
        stop.set()
        standby.join(timeout=10)
        leader.release()


def test_sqlite_keeps_the_file_lock(tmp_path: Path) -> None:
    _, settings = _settings(tmp_path)
    engine = make_engine(settings.database_url)
    migrate(engine, quiet=True)
    with lead(settings, engine):
        state = leader_state(settings, engine)
        assert state.holder is not None and state.holder.pid == os.getpid()
        assert state.holder.since is not None
        with pytest.raises(AlreadyRunning, match="another mailbot is running on .* "
                                                  r"\(lock .*mailbot.lock\); stop it first"):
            file_lock(settings.bot.data_dir)
    assert leader_state(settings, engine).holder is None


def test_status_shows_backend_migration_and_leader(
        tmp_path: Path, mailbot: MailbotRunner, postgres: Postgres | None) -> None:
    config, settings = _settings(tmp_path)
    missing = mailbot("status", "--config", str(config))
    assert missing.code == 0, missing.err
    assert "backend:   sqlite" in missing.out and "no database yet" in missing.out
    assert not (tmp_path / "data" / "mailbot.sqlite3").exists()  # read-only: created nothing
    assert mailbot("migrate", "--config", str(config)).code == 0
    engine = make_engine(settings.database_url)
    with lead(settings, engine):
        shown = mailbot("status", "--json", "--config", str(config))
    data = json.loads(shown.out)
    assert data["backend"] == "sqlite" and data["migration"]["state"] == "up to date"
    assert data["leader"]["pid"] == os.getpid() and data["leader"]["since"]

    url = _pg_url(postgres)
    env = {"MAILBOT_BOT__DATABASE_URL": url}
    _, pg = _settings(tmp_path, url)
    pg_engine = make_engine(url)
    nobody = mailbot("status", "--config", str(config), env=env)
    assert "backend:   postgresql postgresql+psycopg://mailbot@" in nobody.out
    assert "leader:    nobody" in nobody.out and "up to date" in nobody.out
    with lead(pg, pg_engine):
        led = mailbot("status", "--config", str(config), env=env)
    assert f"leader:    {identity()} since " in led.out, led.out


def test_health_s_leader_check_reads_the_advisory_lock_on_postgresql(
        tmp_path: Path, postgres: Postgres | None) -> None:
    from datetime import UTC, datetime

    from mailbot.health import OK, judge

    url = _pg_url(postgres)
    _, settings = _settings(tmp_path, url)
    engine = make_engine(url)

    def leader_check() -> tuple[int, str]:
        [check] = [c for c in judge(settings, engine, datetime.now(UTC)).checks
                   if c.name == "leader"]
        return check.status, check.detail

    status, detail = leader_check()
    assert status == OK and detail.startswith(f"nobody holds advisory lock {lock_key(settings)}")
    with lead(settings, engine):
        status, detail = leader_check()
    assert status == OK and detail.startswith(f"{identity()} since ")
