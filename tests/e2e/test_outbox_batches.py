"""The outbox sent in batches (issue #16): one SMTP connection for a whole flush, MAIL and
RCPT pipelined when the server offers PIPELINING (RFC 2920) with each recipient's reply
still its own, and a crash between two batched commits that loses and duplicates nothing.

Real aiosmtpd and real databases (both backends). aiosmtpd does not offer PIPELINING; the
sink here advertises it from its EHLO hook (its reader handles the lines of a pipeline in
order, as RFC 2920 asks of a server) and notes, when MAIL arrives, how many bytes already
wait behind it (a pipelining client wrote its RCPTs with it: more than 0; one command at a
time: 0). The crash test runs a real flushing process killed by the fault hook
(mailbot/faults.py: MAILBOT_CRASH_AT=after_smtp, MAILBOT_CRASH_IF=<one Message-ID>).
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import Engine
from sqlmodel import Session as DbSession
from sqlmodel import col, select

from mailbot.config import SmtpSettings
from mailbot.db import transaction
from mailbot.delivery.compose import Outgoing
from mailbot.delivery.outbox import (
    CLAIM_CHUNK,
    WRITE_AT_ONCE_BYTES,
    FlushReport,
    Sender,
    enqueue,
)
from mailbot.mailworld import free_port
from mailbot.models import Outbox
from mailbot.vocabulary import Purpose
from tests.conftest import World
from tests.e2e.test_outbox_takeover import _flusher, _received, _report, _rows

pytestmark = pytest.mark.e2e

NOW = datetime(2026, 3, 2, 10, 59, tzinfo=UTC)
BOT = "bot@kommune.test"


@dataclass
class _Handler:
    """What the sink saw: one peer (client address and port) per connection, each message's
    recipients, and the bytes waiting behind each MAIL command."""

    pipelining: bool
    refuse: dict[str, int] = field(default_factory=dict)  # recipient -> RCPT reply code
    peers: set[object] = field(default_factory=set)
    messages: list[list[str]] = field(default_factory=list)
    behind_mail: list[int] = field(default_factory=list)
    contents: list[bytes] = field(default_factory=list)

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope,
                          hostname: str, responses: list[str]) -> list[str]:
        session.host_name = hostname
        if self.pipelining:
            responses.insert(1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if address in self.refuse:
            return f"{self.refuse[address]} test server says no to {address}"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.peers.add(session.peer)
        self.messages.append(list(envelope.rcpt_tos))
        assert isinstance(envelope.original_content, bytes)
        self.contents.append(envelope.original_content)
        return "250 accepted"


class _Server(SMTP):
    async def smtp_MAIL(self, arg: str | None) -> None:
        handler = self.event_handler
        assert isinstance(handler, _Handler)
        # asyncio.StreamReader's buffer (private): what the client wrote after MAIL
        handler.behind_mail.append(len(self._reader._buffer))  # type: ignore[attr-defined]
        await super().smtp_MAIL(arg)


class _Controller(Controller):
    def factory(self) -> SMTP:
        return _Server(self.handler, **self.SMTP_kwargs)



def _sink(handler: _Handler) -> tuple[_Controller, int]:
    port = free_port()
    controller = _Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    return controller, port


def _queue(engine: Engine, recipients_of: list[tuple[str, ...]], *,
           delivery: str = "at_most_once", now: datetime = NOW) -> list[str]:
    """One pending mail per recipient tuple (kind attention: the circuit breaker holds
    nothing back); returns their Message-IDs."""
    ids = []
    with transaction(engine) as session:
        for n, recipients in enumerate(recipients_of):
            message_id = f"<batch-{n}-{os.getpid()}@kommune.test>"
            message = EmailMessage()
            message["From"], message["To"] = BOT, ", ".join(recipients)
            message["Subject"], message["Message-ID"] = f"Besked {n}", message_id
            message.set_content("Tak for din mail.")
            enqueue(session, Outgoing(message_id, recipients, f"Besked {n}",
                                      message.as_bytes()),
                    kind=Purpose.ATTENTION, case_id=None, now=now, delivery=delivery)
            ids.append(message_id)
    return ids


def _outbox(engine: Engine) -> list[Outbox]:
    with DbSession(engine) as session:
        return list(session.exec(select(Outbox).order_by(col(Outbox.id))).all())


def _flushed(engine: Engine, handler: _Handler) -> FlushReport:
    """One flush of the outbox to a sink with `handler`, stopped afterwards."""
    controller, port = _sink(handler)
    try:
        return _sender(engine, port).flush(NOW)
    finally:
        controller.stop()


def _sender(engine: Engine, port: int) -> Sender:
    return Sender(engine, SmtpSettings(host="127.0.0.1", port=port, security="none"), BOT)


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "one_by_one"])
def test_a_flush_sends_every_mail_over_one_connection(engine: Engine,
                                                      pipelining: bool) -> None:
    """More mails than one claim takes (CLAIM_CHUNK), with and without PIPELINING offered:
    one connection, every mail once to its recipients, every row `sent`."""
    count = 3 * CLAIM_CHUNK + 2
    _queue(engine, [(f"modtager{n}@kommune.test", f"kopi{n}@kommune.test")
                    for n in range(count)])
    handler = _Handler(pipelining=pipelining)
    report = _flushed(engine, handler)
    assert report.sent == count and report.retry == report.failed == 0
    assert len(handler.peers) == 1
    assert handler.messages == [[f"modtager{n}@kommune.test", f"kopi{n}@kommune.test"]
                                for n in range(count)]
    assert [r.state for r in _outbox(engine)] == ["sent"] * count
    # pipelined: the RCPTs came with each MAIL; else each command waited for its reply
    assert all(behind > 0 for behind in handler.behind_mail) == pipelining
    assert any(behind > 0 for behind in handler.behind_mail) == pipelining


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "one_by_one"])
def test_after_the_server_closes_the_connection_the_rest_goes_in_a_new_one(
        engine: Engine, pipelining: bool) -> None:
    """The server answers the third mail's RCPT with 421 (RFC 5321 4.2.2: it is closing
    the connection). That mail waits for a later flush; the ones after it go out over a
    second connection, in the same flush."""
    recipients = [f"modtager{n}@kommune.test" for n in range(5)]
    _queue(engine, [(r,) for r in recipients])
    handler = _Handler(pipelining=pipelining, refuse={recipients[2]: 421})
    report = _flushed(engine, handler)
    assert handler.messages == [[r] for r in recipients[:2] + recipients[3:]]
    assert len(handler.peers) == 2
    assert report.sent == 4 and report.retry == 1
    assert [r.state for r in _outbox(engine)] == ["sent", "sent", "pending", "sent", "sent"]


def test_pipelined_recipients_are_answered_one_by_one(engine: Engine) -> None:
    """One recipient refused for good (550), one for now (451), two taken, all in one
    pipeline: the mail goes to the two, the 550 is final for its recipient, the 451 is
    retried for that recipient alone and the later attempt goes to it only."""
    taken, gone, later = "a@kommune.test", "b@kommune.test", "c@kommune.test"
    other = "d@kommune.test"
    _queue(engine, [(taken, gone, later, other)])
    handler = _Handler(pipelining=True, refuse={gone: 550, later: 451})
    controller, port = _sink(handler)
    try:
        first = _sender(engine, port).flush(NOW)
        assert handler.behind_mail[0] > 0  # really pipelined
        assert handler.messages == [[taken, other]]
        [row] = _outbox(engine)
        assert first.retry == 1 and row.state == "pending" and row.attempts == 1
        assert row.results[taken] == row.results[other] == "250 accepted"
        assert row.results[gone].startswith("550") and row.results[later].startswith("451")

        del handler.refuse[later]
        second = _sender(engine, port).flush(NOW + timedelta(hours=2))  # past the backoff
    finally:
        controller.stop()
    assert second.sent == 1
    assert handler.messages == [[taken, other], [later]]  # not again to the others
    [row] = _outbox(engine)
    assert row.state == "sent" and row.attempts == 2
    assert row.results[later] == "250 accepted" and row.results[gone].startswith("550")


@pytest.mark.parametrize("delivery", ["at_most_once", "at_least_once"])
def test_a_crash_after_smtp_in_the_middle_of_a_batch(world: World, delivery: str) -> None:
    """The flushing process is killed right after the server's 250 for the 7th of 15 mails,
    in the middle of a claimed batch. The six before it are `sent` (their outcomes were
    committed with the next row's data_at); the 7th is `sending` past DATA; the rest of its
    batch `sending` without data_at, the rest `pending`. After the restart: each of the 15
    was taken by the server exactly once, except the 7th at least once, which goes again
    with the same Message-ID; at most once, it is `uncertain` and not resent."""
    engine = world.bot().engine
    ids = _queue(engine, [(world.applicant,)] * 15, delivery=delivery,
                 now=datetime.now(UTC))
    killed = _flusher(world, env={"MAILBOT_CRASH_AT": "after_smtp",
                                  "MAILBOT_CRASH_IF": ids[6]})
    killed.communicate(timeout=120)
    assert killed.returncode == -signal.SIGKILL
    assert _received(world) == Counter(ids[:7])
    rows = _rows(world)
    assert [r.state for r in rows[:6]] == ["sent"] * 6
    assert rows[6].state == "sending" and rows[6].data_at is not None
    in_batch = rows[7:CLAIM_CHUNK]
    assert all(r.state == "sending" and r.data_at is None for r in in_batch)
    assert [r.state for r in rows[CLAIM_CHUNK:]] == ["pending"] * (15 - CLAIM_CHUNK)

    report: dict[str, Any] = _report(_flusher(world, log="restart"))

    rows = _rows(world)
    if delivery == "at_most_once":
        assert _received(world) == Counter(ids)
        assert rows[6].state == "uncertain"  # by recover(), before the flush
        assert [r.state for r in rows[:6] + rows[7:]] == ["sent"] * 14
    else:
        assert _received(world) == Counter(ids) + Counter([ids[6]])
        assert [r.state for r in rows] == ["sent"] * 15
    assert report["sent"] == 15 - 6 - (delivery == "at_most_once")
    # a claimed row that never reached DATA is claimed again: its second attempt
    resent = delivery == "at_least_once"
    assert [r.attempts for r in rows] == ([1] * 6 + [2 if resent else 1]
                                          + [2] * (CLAIM_CHUNK - 7) + [1] * (15 - CLAIM_CHUNK))


def test_a_large_mail_among_small_ones_goes_out_byte_for_byte(engine: Engine) -> None:
    """A mail over WRITE_AT_ONCE_BYTES (a large document to a reviewer) is written at once
    when queued and read at its turn rather than with its claim (issue #16: memory); it and
    the small ones around it reach the server exactly as queued, in the order queued."""
    sizes = [10, WRITE_AT_ONCE_BYTES + 500_000, 10]
    raws = []
    with transaction(engine) as session:
        for n, size in enumerate(sizes):
            message_id = f"<large-{n}-{os.getpid()}@kommune.test>"
            message = EmailMessage()
            message["From"], message["To"] = BOT, f"modtager{n}@kommune.test"
            message["Subject"], message["Message-ID"] = f"Bilag {n}", message_id
            message.set_content("Se bilaget.")
            message.add_attachment(os.urandom(size), maintype="application", subtype="pdf",
                                   filename="bilag.pdf")
            raws.append(message.as_bytes(policy=SMTP_POLICY))
            row = enqueue(session, Outgoing(message_id, (f"modtager{n}@kommune.test",),
                                            f"Bilag {n}", raws[-1]),
                          kind=Purpose.ATTENTION, case_id=None, now=NOW)
            assert ("raw" in sa_inspect(row).dict) == (len(raws[-1]) <= WRITE_AT_ONCE_BYTES)
    handler = _Handler(pipelining=True)
    report = _flushed(engine, handler)
    assert report.sent == 3
    assert handler.messages == [[f"modtager{n}@kommune.test"] for n in range(3)]
    assert handler.contents == raws
    assert [r.state for r in _outbox(engine)] == ["sent"] * 3
