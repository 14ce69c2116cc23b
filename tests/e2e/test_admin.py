"""The admin commands against real servers (Dovecot when installed, else the embedded IMAP
server; aiosmtpd): a quarantined mail released after its cause is fixed gets exactly one case
and one receipt and leaves the quarantine folder; a deleted one leaves no copy, no file and
keeps its trace; a corrected document kind reaches the reviewer of its new kind."""

from __future__ import annotations

import json
import re
import signal
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, col, select

from mailbot.models import CaseEvent, RawMessage
from tests.conftest import World, wait_until
from tests.e2e.records import case_count, leader, outbox, rows

pytestmark = pytest.mark.e2e

POISON = {"MAILBOT_CRASH_AT": "while_handling", "MAILBOT_CRASH_IF": "POISON-MARKER"}


def _events(world: World, kind: str) -> list[CaseEvent]:
    with Session(world.bot().engine) as session:
        return list(session.exec(select(CaseEvent).where(CaseEvent.kind == kind)
                                 .order_by(col(CaseEvent.id))).all())


def _poisoned(world: World) -> RawMessage:
    """A brief on which the daemon dies (SIGKILL while handling it, as the OOM killer
    would), until it is quarantined as poison (pipeline.MAX_ATTEMPTS)."""
    world.deliver(world.brief(subject="Giftig", body="Hvem: POISON-MARKER\nHvad: Et system\n"))
    for _ in range(6):  # a supervisor restarting the daemon after each death
        result = world.cli("run", "--once", env=POISON)
        if result.returncode == 0:
            break
        assert result.returncode == -signal.SIGKILL
    [row] = rows(world)
    assert row.state == "quarantined" and "died 3 times" in row.reason
    assert len(world.folder("Quarantine")) == 1 and world.folder("INBOX") == []
    return row


def test_a_released_poison_mail_gets_one_case_and_one_receipt(world: World) -> None:
    row = _poisoned(world)
    shown = world.cli("quarantine", "show", str(row.id))
    assert shown.returncode == 0, shown.stderr
    assert "attempts:   4\n" in shown.stdout
    assert re.search(r"\n  Subject: +Giftig\n", shown.stdout), shown.stdout

    # the cause is fixed (here: the crash is no longer asked for); the operator releases it
    released = world.cli("quarantine", "release", str(row.id), "--json")
    assert released.returncode == 0, released.stderr
    assert json.loads(released.stdout)["state"] == "released"
    assert world.folder("Quarantine") == [] and len(world.folder("INBOX")) == 1

    for _ in range(2):  # a second sweep changes nothing: handled exactly once
        assert world.cli("run", "--once").returncode == 0
    old, new = sorted(rows(world), key=lambda r: r.id or 0)
    assert (old.state, new.state) == ("released", "processed")
    assert new.attempts == 1 and new.message_id == old.message_id and new.uid != old.uid
    assert case_count(world) == 1
    [receipt] = world.received_by(world.applicant)
    assert "Giftig" in str(receipt["Subject"])
    assert world.folder("Quarantine") == [] and world.folder("INBOX") == []
    assert len(world.folder("Processed")) == 1
    [event] = _events(world, "quarantine_released")
    assert event.raw_message_id == old.id
    assert world.cli("quarantine", "list").stdout == "no quarantined mail\n"

    again = world.cli("quarantine", "release", str(old.id))
    assert again.returncode == 2 and "is released, not quarantined" in again.stderr


def test_delete_removes_the_copy_and_the_file_and_keeps_a_tombstone(world: World) -> None:
    row = _poisoned(world)
    bot = world.bot()
    assert bot.blobs.exists(row.raw_sha256)
    deleted = world.cli("quarantine", "delete", str(row.id))
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout.startswith(f"mail {row.id} deleted")
    assert world.folder("Quarantine") == [] and not bot.blobs.exists(row.raw_sha256)
    [tomb] = rows(world)
    assert (tomb.state, tomb.sender, tomb.subject) == ("quarantined", "", "")
    assert tomb.purged_at is not None and tomb.imap_removed_at is not None
    [event] = _events(world, "quarantine_deleted")
    assert event.raw_message_id == row.id and "deleted by the operator" in event.detail
    listed = json.loads(world.cli("messages", "--json").stdout)
    assert [(m["id"], m["sender"]) for m in listed] == [(row.id, None)]
    # the mail is never read again: its UID stays known to the ledger
    assert world.cli("run", "--once").returncode == 0
    assert case_count(world) == 0 and world.received_by(world.applicant) == []


def test_a_corrected_document_kind_reaches_the_reviewer_of_that_kind(world: World) -> None:
    world.deliver(world.brief(attachments=("Teknisk beskrivelse.pdf", "Bilag 3.pdf",
                                           "Databehandleraftale udkast.pdf",
                                           "Business case.docx")))
    world.run_once()
    before = json.loads(world.cli("case", "ITP-2026-0001", "--json").stdout)
    kinds = {d["filename"]: d["kind"] for d in before["documents"]}
    assert kinds["Bilag 3.pdf"] == "other" and "contract_draft" in before["missing"]
    contract_manager = world.reviewer("contract_manager")
    assert world.received_by(contract_manager) == []

    result = world.cli("document", "ITP-2026-0001", "Bilag 3.pdf", "--kind", "contract_draft")
    assert result.returncode == 0, result.stderr
    assert "review requests queued: contract_manager" in result.stdout
    world.run_once()

    after = json.loads(world.cli("case", "ITP-2026-0001", "--json").stdout)
    assert "contract_draft" not in after["missing"]
    [request] = world.received_by(contract_manager)
    assert [p.get_filename() for p in request.iter_attachments()] == ["Bilag 3.pdf"]
    assert [r["role"] for r in after["reviews"] if r["role"] == "contract_manager"] == \
        ["contract_manager"]
    [event] = _events(world, "document_kind_corrected")
    assert event.detail.startswith("Bilag 3.pdf: other -> contract_draft v1")


def test_a_failed_receipt_retried_after_the_fix_arrives_once(world: World) -> None:
    """The relay refused the receipt for good (550): `failed`. Once the relay is corrected
    the operator retries it; it arrives once, and a second retry is refused."""
    world.smtp.reply_code = 550
    world.deliver(world.brief(attachments=()))
    world.run_once()
    [row] = [r for r in outbox(world) if r.kind == "receipt"]
    assert row.state == "failed"
    world.smtp.reply_code = None
    retried = world.cli("outbox", "retry", str(row.id))
    assert retried.returncode == 0, retried.stderr
    for _ in range(2):
        world.run_once()
    assert len(world.received_by(world.applicant)) == 1
    [sent] = [r for r in outbox(world) if r.id == row.id]
    assert sent.state == "sent"
    again = world.cli("outbox", "retry", str(row.id))
    assert again.returncode == 2 and "is sent: only a failed or uncertain" in again.stderr


def test_an_uncertain_receipt_is_retried_only_when_the_operator_says_it_did_not_arrive(
        world: World) -> None:
    world.write_config(smtp={"timeout_seconds": 1})
    world.smtp.stall_after_data = 3  # taken, but the answer comes too late: uncertain
    world.deliver(world.brief(attachments=()))
    world.run_once()
    world.smtp.stall_after_data = 0
    [row] = [r for r in outbox(world) if r.kind == "receipt"]
    assert row.state == "uncertain"
    refused = world.cli("outbox", "retry", str(row.id))
    assert refused.returncode == 2 and "--not-delivered" in refused.stderr
    world.run_once()
    assert len([d for d in world.smtp.history if world.applicant in d.recipients]) == 1

    # the operator found that it never reached the applicant's mailbox
    retried = world.cli("outbox", "retry", str(row.id), "--not-delivered", "--json")
    assert retried.returncode == 0, retried.stderr
    assert json.loads(retried.stdout)["previous_state"] == "uncertain"
    world.run_once()
    assert len([d for d in world.smtp.history if world.applicant in d.recipients]) == 2
    cancel = world.cli("outbox", "cancel", str(row.id))
    assert cancel.returncode == 2 and "is sent: only a pending, failed or" in cancel.stderr


def test_a_cancelled_mail_is_never_sent(world: World) -> None:
    world.smtp.reply_code = 451  # greylisted: the receipt waits, pending
    world.deliver(world.brief(attachments=()))
    world.run_once()
    [row] = [r for r in outbox(world) if r.kind == "receipt"]
    assert row.state == "pending"
    world.smtp.reply_code = None
    cancelled = world.cli("outbox", "cancel", str(row.id), "--json")
    assert json.loads(cancelled.stdout)["state"] == "cancelled"
    world.run_once(datetime.now(UTC) + timedelta(hours=2))  # long after its next attempt
    assert world.received_by(world.applicant) == []


def test_release_beside_the_running_daemon(world: World) -> None:
    """`quarantine release` needs no stop: the running daemon (which holds the leader lock)
    reads the released mail at its next sweep and answers it once; `document --kind` is
    refused while it runs."""
    row = _poisoned(world)
    daemon = world.spawn("run")
    try:
        wait_until(lambda: leader(world) is not None, timeout=30)
        released = world.cli("quarantine", "release", str(row.id))
        assert released.returncode == 0, released.stderr
        wait_until(lambda: len(world.smtp.to(world.applicant)) == 1, timeout=90)
        assert case_count(world) == 1
        refused = world.cli("document", "ITP-2026-0001", "Business case.docx", "--kind",
                            "other")
        assert refused.returncode == 2 and "another mailbot is running" in refused.stderr
    finally:
        daemon.send_signal(signal.SIGTERM)
        out, _ = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, out
    assert world.folder("Quarantine") == [] and len(world.folder("Processed")) == 1
    assert len(world.received_by(world.applicant)) == 1
