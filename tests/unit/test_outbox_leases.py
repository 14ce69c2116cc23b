"""Who may resolve an outbox row left `sending` (issue #15 item 3): recovery takes a row
whose lease ran out or whose owner is provably gone (on this host: its pid no longer runs;
on PostgreSQL: no session carries its name), never a live owner's row within its lease.

Real databases (SQLite in tmp_path, and the test cluster's PostgreSQL); a process on
"another host" is a real PostgreSQL session named as that process's leader lock connection
is (mailbot.leadership.identity: `mailbot HOST:PID`).
"""

from __future__ import annotations

import socket
import subprocess
from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from mailbot.config import SmtpSettings
from mailbot.delivery.outbox import LEASE, Sender, lease_owner
from mailbot.models import Outbox

NOW = datetime(2026, 3, 2, 10, 59, tzinfo=UTC)



def _sending(engine: Engine, owner: str, *, leased_for: timedelta = LEASE,
             data_at: datetime | None = None) -> int:
    """A row in an SMTP transaction of `owner`, its lease running `leased_for` from NOW."""
    with Session(engine) as session:
        row = Outbox.model_validate({
            "kind": "attention", "message_id": f"<{owner}-{leased_for}@kommune.test>",
            "recipients": ["sekretaer@kommune.test"], "raw": b"Subject: x\r\n\r\nx\r\n",
            "state": "sending", "attempts": 1, "created_at": NOW, "next_attempt_at": NOW,
            "lease_owner": owner, "lease_until": NOW + leased_for, "data_at": data_at})
        session.add(row)
        session.commit()
        assert row.id is not None
        return row.id


def _states(engine: Engine) -> dict[int, str]:
    with Session(engine) as session:
        return {r.id: r.state for r in session.exec(select(Outbox).order_by(col(Outbox.id)))
                if r.id is not None}


def _recover(engine: Engine) -> int:
    return Sender(engine, SmtpSettings(host="127.0.0.1"), "bot@kommune.test").recover(NOW)


def _dead_pid() -> int:
    """The pid of a process that ran on this host and has ended (and been reaped)."""
    done = subprocess.Popen(["true"])
    done.wait()
    return done.pid


def test_a_live_owner_keeps_its_row_until_its_lease_runs_out(engine: Engine) -> None:
    here = socket.gethostname()
    mine = _sending(engine, lease_owner())  # this process: alive
    dead = _sending(engine, f"{here}:{_dead_pid()}:0a0a0a0a")
    expired = _sending(engine, lease_owner(), leased_for=-timedelta(seconds=1))
    uncertain = _sending(engine, f"{here}:{_dead_pid()}:0b0b0b0b", data_at=NOW)

    assert _recover(engine) == 1
    assert _states(engine) == {mine: "sending", dead: "pending", expired: "pending",
                               uncertain: "uncertain"}


def test_an_owner_on_another_host_is_alive_while_it_may_be(engine: Engine) -> None:
    """SQLite: another host cannot share the file, so its death cannot be told and its row
    waits for the lease. PostgreSQL: alive exactly while a session carries its name."""
    gone = _sending(engine, "otherhost:4242:0c0c0c0c")
    live = _sending(engine, "otherhost:4243:0d0d0d0d")
    if engine.dialect.name != "postgresql":
        assert _recover(engine) == 0
        assert _states(engine) == {gone: "sending", live: "sending"}
        return
    import psycopg

    other = psycopg.connect(engine.url.render_as_string(hide_password=False).replace(
        "postgresql+psycopg", "postgresql"), application_name="mailbot otherhost:4243")
    try:
        _recover(engine)
        assert _states(engine) == {gone: "pending", live: "sending"}
    finally:
        other.close()
    _recover(engine)  # its session ended: the process is gone
    assert _states(engine) == {gone: "pending", live: "pending"}
