"""Two hosts on one PostgreSQL database and one mailbox (issue #15, "Tests"): two real
`mailbot run` daemons, each with a data_dir of its own (no shared disk: the two configs of
tests/e2e/test_takeover.py differ only in it), real Dovecot and aiosmtpd. While both run,
every brief gets one case and one receipt; when the leader is killed with SIGKILL in the
middle of a backlog, the standby takes over within bot.takeover_seconds and finishes it,
reading the raw mail the first one stored (the database blob store), with every brief still
answered exactly once.

What the SMTP server received is counted by Message-ID and In-Reply-To; a receipt left
`uncertain` (the kill fell after the final "." of its DATA) counts only when the server got it.
"""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from email.parser import BytesHeaderParser

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from mailbot.db import make_engine
from tests.conftest import World, wait_until
from tests.e2e.records import cases, every_outbox_row, rows
from tests.e2e.test_takeover import TAKEOVER, Daemon, _two_hosts

pytestmark = [pytest.mark.e2e, pytest.mark.postgresql_only]

DRAIN_SECONDS = 300  # a guard against a hang: 300 briefs take about a minute


def _deliver(world: World, count: int) -> dict[str, str]:
    """`count` briefs, each from an applicant of its own (the flood guard answers at most 5
    a sender an hour); applicant -> the brief's Message-ID."""
    briefs = {}
    tag = random.randrange(10**6)
    for number in range(count):
        applicant = f"two{number:03d}-{world.applicant}"
        message_id = f"<two-{tag}-{number}@kommune.test>"
        world.deliver(world.brief(sender=f"Ansøger {number} <{applicant}>",
                                  subject=f"Projektforslag {number:03d}: Ny mødebooking",
                                  message_id=message_id))
        briefs[applicant] = message_id
    return briefs


def _quiet_world(world: World, briefs: int) -> None:
    """Hundreds of receipts within minutes are a backlog, not a loop (the circuit breaker
    would hold them); the server records what it accepts without storing it in Dovecot."""
    world.write_config(limits={"breaker_mails": 10 * briefs})
    world.smtp.deliver = None


def _drained(engine: Engine, briefs: int) -> bool:
    """Every brief fetched, handled and moved; nothing left to send."""
    with engine.connect() as db:
        moved = db.execute(text("SELECT count(moved_at) FROM raw_message")).scalar_one()
        waiting = db.execute(text("SELECT count(*) FROM outbox WHERE state IN "
                                  "('pending', 'sending')")).scalar_one()
    return _ledger(engine) == (briefs, briefs) and moved == briefs and waiting == 0


def _ledger(engine: Engine) -> tuple[int, int]:
    """Briefs stored (fetched, their raw mail kept), and of those handled."""
    with engine.connect() as db:
        stored, handled = db.execute(text(
            "SELECT count(*), coalesce(sum(CASE WHEN state != 'received' THEN 1 ELSE 0 END), 0)"
            " FROM raw_message")).one()
    return int(stored), int(handled)


def _one_case_and_one_receipt_each(world: World, briefs: dict[str, str]) -> None:
    ledger = rows(world)
    assert Counter(r.state for r in ledger) == {"processed": len(briefs)}, [
        (r.id, r.state, r.attempts, r.reason) for r in ledger if r.state != "processed"]
    per_applicant = Counter(c.applicant_address for c in cases(world))
    assert per_applicant == Counter(list(briefs)), "not exactly one case per brief"
    headers = BytesHeaderParser()
    received: Counter[str] = Counter()
    answers: dict[str, list[str]] = {}  # applicant -> In-Reply-To of each mail to them
    for delivered in world.smtp.history:
        head = headers.parsebytes(delivered.raw)
        received[str(head["Message-ID"]).strip()] += 1
        for rcpt in delivered.recipients:
            if rcpt in briefs:
                answers.setdefault(rcpt, []).append(str(head["In-Reply-To"]).strip())
    wrong = {a: got for a, message_id in briefs.items()
             if (got := answers.get(a, [])) != [message_id]}
    assert not wrong, f"{len(wrong)} applicants without exactly one receipt: {wrong}"
    outbox = every_outbox_row(world)
    assert not [r for r in outbox if r.state not in ("sent", "uncertain")]
    assert not [r for r in outbox if received[r.message_id] != 1 and
                r.delivery == "at_most_once"], "an applicant's mail lost or sent twice"
    assert world.folder("INBOX") == [] and world.folder("Quarantine") == []
    assert len(world.folder("Processed")) == len(briefs)


def test_two_daemons_on_one_database_answer_100_briefs_once_each(world: World) -> None:
    _quiet_world(world, 100)
    a_config, b_config = _two_hosts(world)
    engine = make_engine(world.settings().database_url)
    a, b = Daemon(a_config, world.tmp), None
    try:
        a.wait_for("event=leader")
        b = Daemon(b_config, world.tmp)
        b.wait_for("event=standby")
        briefs = _deliver(world, 100)
        wait_until(lambda: _drained(engine, 100), timeout=DRAIN_SECONDS, interval=0.5)
        assert not b.said("event=leader"), b.output()
    finally:
        codes = [d.stop() for d in (a, b) if d is not None]
        engine.dispose()
    assert codes == [0, 0], a.output()
    _one_case_and_one_receipt_each(world, briefs)


def test_the_leader_killed_in_a_300_brief_backlog_the_standby_finishes_it(
        world: World) -> None:
    _quiet_world(world, 300)
    a_config, b_config = _two_hosts(world)
    engine = make_engine(world.settings().database_url)
    briefs = _deliver(world, 300)
    a, b = Daemon(a_config, world.tmp), None
    try:
        a.wait_for("event=leader")
        b = Daemon(b_config, world.tmp)
        b.wait_for("event=standby")
        # in the middle: A has stored a batch of raw mail (in the database) and handled
        # part of it; B must read the rest from what A stored
        wait_until(lambda: _ledger(engine)[1] >= 30, timeout=120, interval=0.05)
        killed_at = time.monotonic()
        assert a.stop(signal.SIGKILL) == -signal.SIGKILL
        stored, handled = _ledger(engine)
        b.wait_for("event=leader", timeout=TAKEOVER + 10)
        took = time.monotonic() - killed_at
        print(f"\ntakeover: the standby led {took:.1f} s after the SIGKILL (takeover_seconds "
              f"= {TAKEOVER}); of 300 briefs {stored} were stored and {handled} handled then")
        assert took <= TAKEOVER + 2, f"took {took:.1f} s"
        assert stored > handled, "the standby must read raw mail the leader stored"
        started = time.monotonic()
        wait_until(lambda: _drained(engine, 300), timeout=DRAIN_SECONDS, interval=0.5)
        print(f"the standby finished the backlog in {time.monotonic() - started:.1f} s")
    finally:
        codes = [d.stop() for d in (a, b) if d is not None]
        engine.dispose()
    assert codes[1:] == [0], b.output()
    _one_case_and_one_receipt_each(world, briefs)
