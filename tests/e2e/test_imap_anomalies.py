"""What an IMAP server (or another client) does that it should not, on a real Dovecot: a new
UIDVALIDITY (I1), a UID reused under the same UIDVALIDITY (I2), a mail gone before our
UID MOVE (I6), a second mailbot with its own database on the same mailbox (C2), one FETCH
response the client cannot parse (I10), and a backlog taken in batches (R12)."""

from __future__ import annotations

import imaplib
import logging
from collections.abc import Iterator
from email import message_from_bytes, policy

import pytest
from sqlmodel import Session, select

from mailbot.app import Bot
from mailbot.intake.ledger import FETCH_ATTEMPTS
from mailbot.intake.mailbox import Mailbox
from mailbot.mailworld import PASSWORD
from mailbot.models import CaseEvent, CircuitBreaker, FetchFailure, MailboxState, Outbox
from mailbot.pipeline import ingest, move_done, process_pending, sweep
from tests.conftest import World
from tests.dovecot import Dovecot
from tests.e2e.test_alerts import with_operator
from tests.e2e.test_reliability import case_count, rows
from tests.imap_proxy import CorruptingProxy

pytestmark = pytest.mark.e2e


def on_dovecot(world: World) -> Dovecot:
    if not isinstance(world.imap, Dovecot):
        pytest.skip("needs Dovecot (doveadm, its Maildir files)")
    return world.imap


def subjects(raws: list[bytes]) -> list[str]:
    return sorted(str(message_from_bytes(raw, policy=policy.default)["Subject"])
                  for raw in raws)


def opened(bot: Bot) -> Mailbox:
    mailbox = Mailbox(bot.settings.imap)
    mailbox.open()
    return mailbox


def events(world: World, kind: str) -> list[CaseEvent]:
    with Session(world.bot().engine) as session:
        return list(session.exec(select(CaseEvent).where(CaseEvent.kind == kind)).all())


@pytest.fixture
def errors(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.WARNING)
    yield caplog


def event_lines(caplog: pytest.LogCaptureFixture, event: str) -> int:
    return sum(f"event={event}" in r.getMessage() for r in caplog.records)


# -- I1 -------------------------------------------------------------------------------------
def test_a_new_uidvalidity_answers_only_unknown_mail_and_alerts_once(
        world: World, errors: pytest.LogCaptureFixture) -> None:
    """I1: after `doveadm mailbox update --uid-validity` every UID in INBOX is new to the
    ledger. A mail handled but not yet moved becomes `duplicate` (Message-ID + content), a
    mail left in place by imap.start_from = "now" is recognised by its Message-ID and stays,
    and only the brief that is really new gets a case and a receipt. One alert, and the new
    UIDVALIDITY is stored."""
    dovecot = on_dovecot(world)
    operator = with_operator(world, imap={"start_from": "now"})
    world.deliver(world.brief(subject="Gammel"))
    world.run_once()  # recorded, not answered, left in INBOX
    world.deliver(world.brief(subject="Første"))
    bot = world.bot()
    mailbox = opened(bot)
    assert ingest(bot, mailbox).stored == 1
    assert process_pending(bot) == (1, 0)
    mailbox.close()  # handled, its receipt queued, not moved yet (as after a crash, R2)
    dovecot.set_uidvalidity(dovecot.user(world.bot_address), 4242)
    world.deliver(world.brief(subject="Ny"))

    world.run_once()
    world.run_once()

    assert case_count(world) == 2
    receipts = world.received_by(world.applicant)
    assert sorted(str(m["Subject"]).split("] ")[1] for m in receipts) == ["Første", "Ny"]
    after = [r for r in rows(world) if r.uidvalidity == 4242]
    assert sorted(r.state for r in after) == ["duplicate", "duplicate", "processed"]
    assert subjects(world.folder("INBOX")) == ["Gammel"]
    assert subjects(world.folder("Processed")) == ["Første", "Ny"]
    with Session(world.bot().engine) as session:
        state = session.get(MailboxState, "INBOX")
        assert state is not None and state.uidvalidity == 4242
    assert event_lines(errors, "uidvalidity_changed") == 1
    [alert] = world.received_by(operator)
    assert "UIDVALIDITY" in str(alert.get_body(("plain",)).get_content())  # type: ignore[union-attr]


# -- I2 -------------------------------------------------------------------------------------
def test_a_reused_uid_is_fetched_deduplicated_and_alerted(
        world: World, errors: pytest.LogCaptureFixture) -> None:
    """I2: Dovecot made to hand out UID 1 again under the same UIDVALIDITY (its uidlist's
    next UID lowered, the index rebuilt). Before, a known UID was never fetched again, so
    the new mail there was never seen; now the cheap fingerprint (Message-ID, size) shows
    another mail, it is stored as generation 1 of that UID, and the content hash keeps a
    re-delivered known mail from opening a second case. One mailbox_anomaly alert."""
    dovecot = on_dovecot(world)
    operator = with_operator(world)
    first = world.brief(subject="Første", message_id="<first-i2@kommune.test>")
    world.deliver(first)
    world.run_once()
    [row] = rows(world)
    assert (row.uid, row.generation, row.moved_at is not None) == (1, 0, True)
    uidvalidity = row.uidvalidity

    dovecot.reset_uidnext(dovecot.user(world.bot_address), 1)
    world.deliver(first)  # the same mail again, on the reused UID 1
    world.deliver(world.brief(subject="Anden"))  # UID 2
    world.run_once()

    later = sorted(rows(world), key=lambda r: r.id or 0)[1:]
    assert [(r.uid, r.generation, r.uidvalidity) for r in later] == [
        (1, 1, uidvalidity), (2, 0, uidvalidity)]
    reused, second = later
    assert reused.state == "duplicate" and "reused" in reused.imap_anomaly
    assert second.state == "processed" and second.imap_anomaly == ""
    assert case_count(world) == 2
    assert len(world.received_by(world.applicant)) == 2
    assert world.folder("INBOX") == []
    assert event_lines(errors, "mailbox_anomaly") == 1
    [alert] = world.received_by(operator)
    assert "UID 1" in str(alert.get_body(("plain",)).get_content())  # type: ignore[union-attr]
    world.run_once()  # nothing more: the reused UID is known now
    assert len(rows(world)) == 3


# -- I6 -------------------------------------------------------------------------------------
def remove_by_another_client(world: World, subject: str, into: str | None) -> None:
    """A person's mail client (imaplib) moves the mail into `into`, or deletes it."""
    imap = imaplib.IMAP4("127.0.0.1", world.imap.port)
    imap.login(world.imap.user(world.bot_address), PASSWORD)
    imap.select("INBOX")
    _, found = imap.uid("SEARCH", "SUBJECT", subject)
    uid = found[0].decode()
    assert uid, f"no mail {subject!r} in INBOX"
    if into is not None:
        imap.create(into)
        assert imap.uid("MOVE", uid, into)[0] == "OK"
    else:
        imap.uid("STORE", uid, "+FLAGS", "(\\Deleted)")
        imap.expunge()
    imap.logout()


def test_a_mail_removed_by_another_client_before_our_move_is_not_claimed(
        world: World, errors: pytest.LogCaptureFixture) -> None:
    """I6: between the commit and the move a person moves one mail away. UID MOVE answers
    OK without COPYUID for that UID: the bot records "not moved by mailbot" on the row (its
    outcome stands), never tries to move it again, alerts mailbox_anomaly once, and the
    other mail of the same MOVE is moved as usual. Applicant mail is not paused."""
    on_dovecot(world)
    operator = with_operator(world)
    world.deliver(world.brief(subject="Flyttes af en person"))
    world.deliver(world.brief(subject="Bliver"))
    bot = world.bot()
    mailbox = opened(bot)
    ingest(bot, mailbox)
    process_pending(bot)
    remove_by_another_client(world, "Flyttes", into="Sagsbehandler")
    assert move_done(bot, mailbox) == 2
    assert move_done(bot, mailbox) == 0  # nothing is moved twice
    mailbox.close()

    gone, kept = sorted(rows(world), key=lambda r: r.id or 0)
    assert gone.state == "processed" and gone.moved_at is not None
    assert "not moved by mailbot" in gone.imap_anomaly
    assert "another client removed it" in gone.imap_anomaly
    assert kept.imap_anomaly == "" and kept.moved_at is not None
    assert subjects(world.folder("Processed")) == ["Bliver"]
    assert subjects(world.folder("Sagsbehandler")) == ["Flyttes af en person"]
    assert [e.raw_message_id for e in events(world, "moved_by_other")] == [gone.id]
    assert event_lines(errors, "mailbox_anomaly") == 1
    world.run_once()  # the receipts go out: nothing is paused for a person's move
    assert len(world.received_by(world.applicant)) == 2
    [alert] = world.received_by(operator)
    assert "COPYUID" in str(alert.get_body(("plain",)).get_content())  # type: ignore[union-attr]


# -- C2 -------------------------------------------------------------------------------------
def test_a_second_mailbot_with_its_own_database_pauses_applicant_mail(
        world: World, errors: pytest.LogCaptureFixture) -> None:
    """C2 (unsupported, detected): two bots with two data directories on one mailbox both
    handle the same brief. The first moves it to Processed; the second's UID MOVE finds it
    gone and Processed holding it more often than its own ledger put it there: a critical
    another_instance alert, and its circuit breaker holds its receipt, so the applicant is
    answered once."""
    on_dovecot(world)
    operator = with_operator(world)
    world.deliver(world.brief(subject="Begge ser den"))
    first = world.bot()
    world.write_config(bot=world.own_database(world.tmp / "second"))
    second = world.bot()
    assert second.settings.bot.data_dir != first.settings.bot.data_dir
    mailboxes = opened(first), opened(second)
    for bot, mailbox in zip((first, second), mailboxes, strict=True):
        ingest(bot, mailbox)
        process_pending(bot)
    move_done(first, mailboxes[0])
    move_done(second, mailboxes[1])
    for mailbox in mailboxes:
        mailbox.close()
    first.sender.flush(first.clock.now())
    second.sender.flush(second.clock.now())

    assert len(world.received_by(world.applicant)) == 1  # the first bot's receipt only
    with Session(second.engine) as session:
        breaker = session.get(CircuitBreaker, 1)
        assert breaker is not None and breaker.opened_at is not None
        assert "another mailbot" in breaker.reason
        held = session.exec(select(Outbox).where(Outbox.kind == "receipt")).one()
        assert held.state == "pending"
    assert event_lines(errors, "another_instance") >= 1
    assert any(r.levelno == logging.CRITICAL for r in errors.records)
    alerts = world.received_by(operator)
    assert [str(m["Subject"]) for m in alerts if "anden mailbot" in str(m["Subject"])]
    with Session(first.engine) as session:
        breaker = session.get(CircuitBreaker, 1)
        assert breaker is None or breaker.opened_at is None  # the first bot goes on


# -- I10 ------------------------------------------------------------------------------------
def test_one_unparseable_fetch_is_skipped_after_three_tries_while_the_rest_go_on(
        world: World, errors: pytest.LogCaptureFixture) -> None:
    """I10: a relay between the bot and Dovecot breaks the FETCH response of UID 2 with a
    token no parser knows (Zammad #2754). Each run fetches UIDs 1 and 3 and processes them;
    UID 2 is counted as failed, and at the third failure it is recorded as quarantined
    without its body, moved to Quarantine, and alerted once (fetch_failing)."""
    dovecot = on_dovecot(world)
    operator = with_operator(world)
    proxy = CorruptingProxy(dovecot.port, broken_uid=2).start()
    try:
        world.write_config(imap={"port": proxy.port})
        for subject in ("Første", "Uleselig", "Tredje"):
            world.deliver(world.brief(subject=subject))
        world.run_once()
        assert case_count(world) == 2
        assert subjects(world.folder("INBOX")) == ["Uleselig"]
        for _ in range(FETCH_ATTEMPTS - 1):
            world.run_once()
    finally:
        proxy.stop()
    assert proxy.corrupted >= FETCH_ATTEMPTS
    with Session(world.bot().engine) as session:
        failure = session.get(FetchFailure, ("INBOX", rows(world)[0].uidvalidity, 2))
        assert failure is not None and failure.attempts == FETCH_ATTEMPTS
    broken = [r for r in rows(world) if r.uid == 2]
    assert [(r.state, r.raw_sha256) for r in broken] == [("quarantined", "")]
    assert "FETCH failed 3 times" in broken[0].reason
    assert subjects(world.folder("Quarantine")) == ["Uleselig"]
    assert world.folder("INBOX") == []
    assert case_count(world) == 2 and len(world.received_by(world.applicant)) == 2
    assert event_lines(errors, "fetch_failing") == 1
    [alert] = world.received_by(operator)
    assert "UID 2" in str(alert.get_body(("plain",)).get_content())  # type: ignore[union-attr]


# -- R12 / imap.batch_size ------------------------------------------------------------------
def test_a_backlog_is_taken_in_batches_in_order(world: World) -> None:
    """R12 at small scale: with imap.batch_size = 3, one sweep of 7 waiting briefs fetches,
    processes and moves only the 3 oldest and says 4 are waiting; `run --once` takes the
    rest batch by batch; every brief gets one case, cases are numbered in arrival order."""
    world.write_config(imap={"batch_size": 3})
    for number in range(7):  # seven applicants: the receipt flood guard counts per address
        world.deliver(world.brief(subject=f"Forslag {number}", attachments=(),
                                  sender=f"a{number}-{world.applicant}"))
    bot = world.bot()
    mailbox = opened(bot)
    report = sweep(bot, mailbox)
    mailbox.close()
    assert (report.fetched, report.processed, report.moved, report.waiting) == (3, 3, 3, 4)
    assert len(world.folder("INBOX")) == 4

    world.run_once()

    assert world.folder("INBOX") == [] and len(world.folder("Processed")) == 7
    ordered = sorted(rows(world), key=lambda r: r.id or 0)
    assert [r.uid for r in ordered] == sorted(r.uid for r in ordered)
    assert [r.subject.rsplit(" ", 1)[1] for r in ordered] == [str(n) for n in range(7)]
    assert case_count(world) == 7
    assert all(len(world.received_by(f"a{n}-{world.applicant}")) == 1 for n in range(7))
