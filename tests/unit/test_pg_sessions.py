"""PostgreSQL sessions of mailbot's pool (issue #15 trial, F6): a frozen process's open
transaction must not block the leader that took over. Real PostgreSQL (the `postgres` fixture)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from mailbot.db import make_engine
from mailbot.storage import storage_error
from tests.conftest import required
from tests.postgres import Postgres


def test_a_session_idle_in_transaction_is_ended_and_the_next_update_proceeds(
        postgres: Postgres | None) -> None:
    url = required(postgres).new_database(migrated=False)
    name = url.rpartition("/")[2]
    required(postgres).execute("CREATE TABLE item (id int PRIMARY KEY, owner text)", name)
    required(postgres).execute("INSERT INTO item VALUES (1, 'nobody')", name)
    # the frozen process: 1 s instead of the 5-minute backstop, through the same code path
    frozen = make_engine(url, idle_in_transaction_ms=1000)
    leader = make_engine(url)
    try:
        held = frozen.connect()
        held.execute(text("UPDATE item SET owner = 'frozen' WHERE id = 1"))  # idle in transaction
        started = time.monotonic()
        with leader.begin() as conn:  # waits for the row lock until the server ends the other
            changed = conn.execute(text("UPDATE item SET owner = 'leader' WHERE id = 1")).rowcount
        assert changed == 1
        assert time.monotonic() - started < 10  # not the 30 s lock_timeout, nor hours
        with leader.connect() as conn:
            assert conn.execute(text("SELECT owner FROM item")).scalar() == "leader"
        with pytest.raises(DBAPIError) as woke:  # the frozen one wakes to a closed session
            held.execute(text("SELECT 1"))
        # ... which the daemon treats as storage trouble (retried), not as a bug
        assert storage_error(woke.value) is not None
        held.close()
    finally:
        frozen.dispose()
        leader.dispose()


def test_every_pool_connection_has_the_lock_connection_s_keepalives(
        postgres: Postgres | None) -> None:
    url = required(postgres).new_database(migrated=False)
    engine = make_engine(url, takeover_seconds=9)
    try:
        with engine.connect() as conn:
            got = {name: conn.execute(text(f"SHOW {name}")).scalar() for name in (
                "tcp_keepalives_idle", "tcp_user_timeout", "idle_in_transaction_session_timeout")}
    finally:
        engine.dispose()
    assert got == {"tcp_keepalives_idle": "3", "tcp_user_timeout": "3000",  # milliseconds
                   "idle_in_transaction_session_timeout": "5min"}
