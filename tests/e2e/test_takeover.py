"""Two `mailbot run` daemons on one PostgreSQL database and one mailbox (issue #15): one
leads, the other waits as a hot standby and takes over when the leader's database session
ends (SIGKILL, or the session terminated by the server). Real subprocesses, each with a
data_dir of its own (two hosts), real IMAP and SMTP, a real PostgreSQL."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, World, wait_until
from tests.e2e.records import case_count, outbox
from tests.postgres import Postgres

pytestmark = [pytest.mark.e2e, pytest.mark.postgresql_only]

TAKEOVER = 3  # bot.takeover_seconds in these tests


class Daemon:
    """`mailbot run` with its own config; its log lines collected as they come."""

    def __init__(self, config: Path, cwd: Path) -> None:
        import os

        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILBOT_")}
        env["PYTHONPATH"] = str(ROOT)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mailbot.cli", "--config", str(config), "run"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def name(self) -> str:
        return f"mailbot {socket.gethostname()}:{self.process.pid}"

    def said(self, text: str) -> list[str]:
        return [line for line in self.lines if text in line]

    def wait_for(self, text: str, timeout: float = 30) -> str:
        wait_until(lambda: self.said(text), timeout=timeout)
        return self.said(text)[0]

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout=30)
        self.reader.join(timeout=10)
        return code

    def output(self) -> str:
        return "\n".join(self.lines)


def _two_hosts(world: World) -> tuple[Path, Path]:
    """Config A (world's, data_dir `data`) and B (the same, data_dir `data2`): two hosts on
    one database and one mailbox, sharing the signing secret."""
    a = world.write_config(bot={"takeover_seconds": TAKEOVER, "secret": "s" * 32})
    b = world.tmp / "host-b.toml"
    b.write_text(a.read_text().replace(str(world.tmp / "data"), str(world.tmp / "data2")))
    assert str(world.tmp / "data2") in b.read_text()
    return a, b


def test_a_standby_waits_then_takes_over_when_the_leader_is_killed(world: World) -> None:
    a_config, b_config = _two_hosts(world)
    a = Daemon(a_config, world.tmp)
    b = c = None
    try:
        a.wait_for("mailbot started for")
        assert a.said("event=leader") and "waited" in a.said("event=leader")[0]
        b = Daemon(b_config, world.tmp)
        line = b.wait_for("event=standby")
        assert f"waiting to take over (leader: {a.name} since " in line

        world.deliver(world.brief(subject="Mens A leder"))
        wait_until(lambda: len(world.smtp.to(world.applicant)) == 1, timeout=60)
        assert not b.said("connected to") and not b.said("swept")  # no IMAP, no SMTP

        refused = world.cli("run", "--once")
        assert refused.returncode == 2
        assert "another mailbot is running on" in refused.stderr
        assert f"(leader: {a.name} since " in refused.stderr

        status = world.cli("status")
        assert status.returncode == 0, status.stderr
        assert f"leader:    {a.name} since " in status.stdout
        assert "1 standby: " + b.name in status.stdout
        data = json.loads(world.cli("status", "--json").stdout)
        assert data["leader"]["pid"] == a.process.pid and data["leader"]["since"]
        assert [s["pid"] for s in data["standbys"]] == [b.process.pid]
        assert data["migration"]["state"] == "up to date"

        c = Daemon(b_config, world.tmp)  # a third, stopped while it waits
        c.wait_for("event=standby")
        assert c.stop() == 0 and c.said("mailbot stopped (it was a standby)")

        killed_at = time.monotonic()
        assert a.stop(signal.SIGKILL) == -signal.SIGKILL
        b.wait_for("event=leader", timeout=TAKEOVER + 10)
        took = time.monotonic() - killed_at
        print(f"takeover after SIGKILL of the leader: {took:.1f} s "
              f"(bot.takeover_seconds = {TAKEOVER})")
        assert took <= TAKEOVER + 2, f"took {took:.1f} s"

        world.deliver(world.brief(subject="Efter overtagelsen"))
        wait_until(lambda: len(world.smtp.to(world.applicant)) == 2, timeout=60)
    finally:
        for daemon in (a, b, c):
            if daemon is not None:
                daemon.stop(signal.SIGKILL if daemon is a else signal.SIGTERM)
    assert b.process.returncode == 0, b.output()
    assert case_count(world) == 2
    assert sorted(row.state for row in outbox(world)) == ["sent", "sent"]
    assert world.folder("INBOX") == [] and len(world.folder("Processed")) == 2


def test_a_leader_whose_lock_session_ends_stops_at_once_and_the_standby_leads(
        world: World, postgres: Postgres | None) -> None:
    """pg_terminate_backend of the leader's lock connection (what a database failover or a
    cut connection does): the old leader sweeps and sends no more and exits 3; the standby
    takes the lock and answers the mail delivered meanwhile, once."""
    assert postgres is not None and world.database_url is not None
    a_config, b_config = _two_hosts(world)
    a = Daemon(a_config, world.tmp)
    b = None
    try:
        a.wait_for("mailbot started for")
        b = Daemon(b_config, world.tmp)
        b.wait_for("event=standby")
        database = world.database_url.rpartition("/")[2]
        postgres.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                         f"application_name = '{a.name}' AND datname = '{database}'", database)
        world.deliver(world.brief(subject="Under skiftet"))
        assert a.process.wait(timeout=30) == 3, a.output()
        b.wait_for("event=leader", timeout=TAKEOVER + 10)
        wait_until(lambda: len(world.smtp.to(world.applicant)) == 1, timeout=60)
    finally:
        a.stop(signal.SIGKILL)
        if b is not None:
            b.stop()
    lost = a.output().split("event=leadership_lost", 1)
    assert len(lost) == 2, a.output()
    assert "swept:" not in lost[1] and "outbox:" not in lost[1]
    assert "lost the leadership (exit 3" in lost[1]
    assert case_count(world) == 1
    assert len(world.smtp.to(world.applicant)) == 1
