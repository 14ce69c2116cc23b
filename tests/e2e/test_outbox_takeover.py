"""The outbox under two processes at once (issue #15 item 3): every row sent exactly once
when two processes flush one outbox together; a row taken over while its first owner was
frozen before the final "." of DATA goes out once, by the new owner alone; recovery leaves
the row of a live process alone and takes over a killed one's at once.

Real processes (tests/flusher.py: Sender.recover + Sender.flush from a config, without the
leader lock `mailbot send` takes), a real database (both backends) and aiosmtpd; what the
server received is counted by Message-ID. A process is frozen with the fault hook
MAILBOT_STOP_AT (mailbot/faults.py: SIGSTOP at a crash point, SIGCONT from the test), as a
paused virtual machine would be.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, col, select

from mailbot.db import transaction
from mailbot.delivery.compose import Outgoing
from mailbot.delivery.outbox import LEASE, enqueue
from mailbot.models import CaseEvent, Outbox
from mailbot.vocabulary import Purpose
from tests.conftest import ROOT, World, _env, wait_until

pytestmark = pytest.mark.e2e


def _queue(world: World, count: int) -> list[str]:
    """`count` pending mails, due now (not to applicants: the circuit breaker would hold
    some of 200 back), each with its Message-ID, which this returns."""
    now = datetime.now(UTC)
    ids = [f"<two-{n}-{os.getpid()}@kommune.test>" for n in range(count)]
    with transaction(world.bot().engine) as session:
        for message_id in ids:
            message = EmailMessage()
            message["From"] = world.bot_address
            message["To"] = world.applicant
            message["Subject"] = f"Kvittering {message_id}"
            message["Message-ID"] = message_id
            message.set_content("Tak for din mail.")
            outgoing = Outgoing(message_id, (world.applicant,), str(message["Subject"]),
                                message.as_bytes())
            enqueue(session, outgoing, kind=Purpose.ATTENTION, case_id=None, now=now)
    return ids


def _received(world: World) -> Counter[str]:
    """How often the SMTP server took each Message-ID."""
    with world.smtp.lock:
        raws = [d.raw for d in world.smtp.received]
    return Counter(str(message_from_bytes(raw, policy=policy.default)["Message-ID"])
                   for raw in raws)


def _rows(world: World) -> list[Outbox]:
    with Session(world.bot().engine) as session:
        return list(session.exec(select(Outbox).order_by(col(Outbox.id))).all())


def _flusher(world: World, *args: str, env: dict[str, str] | None = None,
             log: str = "flusher") -> subprocess.Popen[str]:
    world.settings()  # the config file exists
    return subprocess.Popen(
        [sys.executable, "-m", "tests.flusher", str(world.config_path), *args],
        stdout=subprocess.PIPE, stderr=(world.tmp / f"{log}.log").open("w"), text=True,
        env=_env(env), cwd=ROOT)


def _report(process: subprocess.Popen[str], timeout: float = 120) -> dict[str, Any]:
    out, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, out
    report: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return report


def _stopped(process: subprocess.Popen[str]) -> bool:
    """The process froze itself (SIGSTOP: /proc/PID/stat state T)."""
    stat = Path(f"/proc/{process.pid}/stat").read_text()
    return stat.rpartition(")")[2].split()[0] == "T"


def _frozen_before_the_final_dot(world: World) -> subprocess.Popen[str]:
    """A flusher frozen with its row claimed and the content of DATA sent, the final "."
    not yet: the row is `sending`, leased to it for LEASE."""
    first = _flusher(world, env={"MAILBOT_STOP_AT": "before_final_dot"}, log="first")
    wait_until(lambda: _stopped(first), timeout=60)
    [row] = _rows(world)
    assert row.state == "sending" and row.data_at is None
    return first


def test_two_processes_flushing_one_outbox_send_every_row_exactly_once(world: World) -> None:
    """The second starts (and recovers, as a daemon's start does) while the first is in the
    middle of the outbox, one of its rows in an SMTP transaction; then both claim rows from
    the same batches."""
    ids = _queue(world, 200)
    gates = [world.tmp / "go1", world.tmp / "go2"]
    flushers = [_flusher(world, "--gate", str(gate), log=gate.name) for gate in gates]
    for process in flushers:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
    started = time.monotonic()
    gates[0].touch()
    wait_until(lambda: sum(_received(world).values()) >= 20)
    gates[1].touch()
    reports = [_report(process) for process in flushers]
    print(f"\n{world.backend}: 200 rows flushed by two processes in "
          f"{time.monotonic() - started:.1f} s, {reports[0]['sent']} + {reports[1]['sent']}")

    assert _received(world) == Counter(ids)  # each one exactly once
    assert [r.state for r in _rows(world)] == ["sent"] * 200
    assert reports[0]["sent"] + reports[1]["sent"] == 200
    assert reports[0]["uncertain"] == reports[1]["uncertain"] == 0
    assert reports[1]["sent"] > 0, reports  # the second really sent beside the first


def test_a_row_taken_over_before_the_final_dot_arrives_once(world: World) -> None:
    """The first owner froze with the content of DATA sent; its lease ran out and a second
    process sent the mail. Woken, the first owner finds the row no longer its own: it sends
    no final "." (the server keeps nothing without it) and records nothing."""
    [message_id] = _queue(world, 1)
    first = _frozen_before_the_final_dot(world)
    try:
        # the second process's clock is past the first one's lease
        second = _report(_flusher(world, "--later", str(LEASE.total_seconds() + 60),
                                  log="second"))
        assert second["sent"] == 1
        assert _received(world) == Counter([message_id])
    finally:
        first.send_signal(signal.SIGCONT)
    assert _report(first)["sent"] == 0
    log = (world.tmp / "first.log").read_text()
    assert 'was taken over before the end of DATA; the final "." is not sent' in log

    time.sleep(0.5)  # the server would have delivered by now had it got the final "."
    assert _received(world) == Counter([message_id])
    assert len(world.received_by(world.applicant)) == 1
    [row] = _rows(world)
    assert row.state == "sent" and row.lease_owner == second["owner"]
    with Session(world.bot().engine) as session:
        [event] = session.exec(select(CaseEvent.detail)
                               .where(CaseEvent.kind == "outbox_pending")).all()
    assert "process died before DATA; sending again" in event and "its lease ran out" in event


def test_recovery_leaves_a_live_process_row_alone(world: World) -> None:
    """A process in its SMTP transaction, within its lease, keeps its row although another
    starts and recovers (as a standby that becomes leader does): it finishes the mail."""
    [message_id] = _queue(world, 1)
    first = _frozen_before_the_final_dot(world)
    try:
        second = _report(_flusher(world, log="second"))
        assert second["sent"] == second["uncertain"] == 0
        [row] = _rows(world)
        assert row.state == "sending" and row.lease_owner != second["owner"]
        assert _received(world) == Counter()
    finally:
        first.send_signal(signal.SIGCONT)
    assert _report(first)["sent"] == 1
    assert _received(world) == Counter([message_id])
    [row] = _rows(world)
    assert row.state == "sent" and row.attempts == 1


def test_recovery_takes_a_killed_process_row_over_at_once(world: World) -> None:
    """The owner was killed (not yet reaped by its parent: a zombie) within its lease:
    provably dead, so its row is sent again at once, not after LEASE."""
    [message_id] = _queue(world, 1)
    first = _frozen_before_the_final_dot(world)
    first.kill()
    wait_until(lambda: Path(f"/proc/{first.pid}/stat").read_text()
               .rpartition(")")[2].split()[0] == "Z")
    second = _report(_flusher(world, log="second"))
    first.wait()
    assert second["sent"] == 1
    assert _received(world) == Counter([message_id])
    [row] = _rows(world)
    assert row.state == "sent" and row.attempts == 2
