"""The outbox at the edges, on real servers: a crash after the server took a reviewer's
request, a rollback after a mail was queued, a reply that overtakes its request, a SIGTERM in
the middle of DATA, and Reply-To as a false identity (SCENARIOS O2, O8, C5, R13, A7)."""

from __future__ import annotations

import signal
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from sqlmodel import Session, select

from mailbot.models import CaseEvent, Outbox, Review
from tests.conftest import World, wait_until
from tests.e2e.test_reliability import case_count, every_outbox_row, outbox, rows
from tests.e2e.test_reviews import FRIDAY, _not_applied, reply, reviews

pytestmark = pytest.mark.e2e


def requests_to(world: World, address: str) -> list[EmailMessage]:
    """Every copy of a review request the SMTP server accepted for `address`."""
    out = []
    for delivered in world.smtp.to(address):
        msg = message_from_bytes(delivered.raw, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        out.append(msg)
    return out


# -- O2: at least once for reviewers -----------------------------------------------------------
def test_killed_after_smtp_accepted_a_review_request_resends_it_with_the_same_id(
        world: World) -> None:
    """The process dies right after the server's 250 for the architect's request, before
    `sent` is committed. A reviewer's request is at-least-once: after the restart it goes
    out once more with the SAME Message-ID (a reply to either copy matches the review), the
    outbox keeps ONE row for it, `sent`, and the case records the possible duplicate. The
    applicant's receipt (at most once) is not sent again."""
    architect = world.reviewer("it_architect")
    world.deliver(world.brief())
    died = world.cli("run", "--once", env={"MAILBOT_CRASH_AT": "after_smtp",
                                           "MAILBOT_CRASH_IF": architect})
    assert died.returncode == -signal.SIGKILL
    [first] = requests_to(world, architect)
    [row] = [r for r in every_outbox_row(world) if architect in r.recipients]
    assert row.state == "sending" and row.data_at is not None

    assert world.cli("run", "--once").returncode == 0

    copies = requests_to(world, architect)
    assert len(copies) == 2
    assert copies[0]["Message-ID"] == copies[1]["Message-ID"] == first["Message-ID"]
    once, again = world.smtp.to(architect)
    assert once.raw == again.raw  # the same stored message, byte for byte
    [row] = [r for r in every_outbox_row(world) if architect in r.recipients]
    assert row.state == "sent" and row.attempts == 2
    assert row.message_id == str(first["Message-ID"])
    with Session(world.bot().engine) as session:
        notes = [e.detail for e in session.exec(select(CaseEvent)).all()
                 if row.message_id in e.detail and "possible duplicate" in e.detail]
    assert len(notes) == 1
    assert len(world.received_by(world.applicant)) == 1  # the receipt went once
    for role in ("it_operations", "contract_manager", "security_coordinator"):
        assert len(requests_to(world, world.reviewer(role))) == 1, role


# -- O8: nothing leaves for a transaction that did not commit ---------------------------------
def test_a_receipt_queued_in_a_rolled_back_transaction_is_never_sent(world: World) -> None:
    """The receipt is queued first, then the review requests are rendered; a broken local
    request template makes the handling fail AFTER the receipt's outbox row was added. The
    transaction rolls back: no case, no outbox row, no mail, three times over; then the mail
    is quarantined and still nothing was sent."""
    local = world.tmp / "templates" / "da"
    local.mkdir(parents=True)
    (local / "reviewer_request.txt.j2").write_text("{{ no_such_name }}\n", "utf-8")
    world.write_config(bot={"templates_dir": str(world.tmp / "templates")})
    world.deliver(world.brief())
    for attempt in (1, 2, 3):
        world.run_once()
        assert every_outbox_row(world) == [], attempt
        assert case_count(world) == 0
    [row] = rows(world)
    assert row.state == "quarantined" and "UndefinedError" in row.reason
    assert world.smtp.history == []


# -- C5: the reply overtakes its request ----------------------------------------------------------
def test_reviewer_reply_while_the_request_is_still_in_the_outbox_is_matched(
        world: World) -> None:
    """The SMTP server is away, so the requests wait in the outbox; a reviewer answers
    anyway (the request reached them another way: a colleague's copy with our Message-ID).
    The reply is matched to its review on the right case: a verdict, not a new case."""
    world.smtp.stop()
    world.deliver(world.brief())
    world.run_once(FRIDAY)
    [pending] = [r for r in every_outbox_row(world)
                 if world.reviewer("contract_manager") in r.recipients]
    assert pending.state == "pending"
    request = message_from_bytes(pending.raw, policy=policy.default)
    assert isinstance(request, EmailMessage)
    world.deliver(reply(world, request, world.reviewer("contract_manager"), "Godkendt."))

    world.run_once(FRIDAY.replace(hour=11))

    assert case_count(world) == 1
    review = reviews(world)["contract_manager"]
    assert review.verdict == "approved"
    assert review.request_message_id == pending.message_id
    assert [r.kind for r in sorted(rows(world), key=lambda r: r.id or 0)] == ["brief", "reply"]
    with Session(world.bot().engine) as session:
        still = session.get(Outbox, pending.id)
        assert still is not None and still.state == "pending"  # it goes when SMTP is back


# -- R13: SIGTERM in the middle of an SMTP transaction --------------------------------------
def test_sigterm_during_data_finishes_that_mail_and_leaves_the_rest_pending(
        world: World) -> None:
    """SIGTERM arrives while the server holds the first receipt's DATA (its answer comes
    after 3 s). The daemon waits for the answer, records the row `sent`, sends nothing
    more, and exits 0: no row is left `sending`. The next start sends the second receipt
    and never the first again."""
    world.write_config(smtp={"timeout_seconds": 20})
    world.smtp.stall_after_data = 3
    world.deliver(world.brief(subject="Første", attachments=()))
    world.deliver(world.brief(subject="Anden", attachments=()))
    daemon = world.spawn("run")
    try:
        wait_until(lambda: len(world.smtp.to(world.applicant)) == 1, timeout=30)
    finally:
        daemon.send_signal(signal.SIGTERM)
        out, _ = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, out
    assert "mailbot stopped" in out
    assert [r.state for r in outbox(world)] == ["sent", "pending"]
    assert len(world.smtp.to(world.applicant)) == 1

    world.smtp.stall_after_data = 0
    assert world.cli("run", "--once").returncode == 0

    receipts = world.received_by(world.applicant)
    assert sorted(str(m["Subject"]).split("] ")[1] for m in receipts) == ["Anden", "Første"]
    assert [r.state for r in outbox(world)] == ["sent", "sent"]


# -- A7: Reply-To is never identity --------------------------------------------------------------
def test_reply_to_naming_a_council_member_grants_nothing(world: World) -> None:
    """An outsider answers the security coordinator's request with Reply-To set to the
    coordinator: no verdict (identity is From), the secretary is told; and a brief from an
    outsider with Reply-To set to the secretary is answered to its From only."""
    world.deliver(world.brief())
    world.run_once(FRIDAY)
    coordinator = world.reviewer("security_coordinator")
    [request] = requests_to(world, coordinator)
    outsider = f"ude-{world.applicant}".replace("kommune.test", "evil.test")
    world.deliver(reply(world, request, outsider, "Godkendt.",
                        headers={"Reply-To": coordinator}))
    world.run_once(FRIDAY.replace(hour=11))
    _not_applied(world, "security_coordinator", f"kom fra {outsider} og ikke fra den")
    assert len(requests_to(world, coordinator)) == 1  # nothing more went to the coordinator

    world.deliver(world.brief(sender=f"Ude <{outsider}>", subject="Projektforslag: Udefra",
                              headers={"Reply-To": world.secretary}, attachments=()))
    world.run_once(FRIDAY.replace(hour=12))
    [receipt] = [d for d in world.smtp.history if "Udefra" in d.raw.decode("utf-8", "replace")]
    assert receipt.recipients == [outsider]
    with Session(world.bot().engine) as session:
        secretary_reviews = session.exec(select(Review).where(
            Review.answered_by == world.secretary)).all()
    assert secretary_reviews == []
