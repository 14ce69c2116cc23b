"""The operator's admin commands (issue #14 part 2) through the real CLI on a real SQLite
database: `outbox list|retry|cancel`, `cases --meeting`, `case --withdraw`, `quarantine
list|show|release|delete` and `document --kind`, each with its audit event, its `--json`
and its refusals (unknown id, wrong state, an uncertain mail without --not-delivered, a row
the daemon is sending, a daemon holding the lock)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from mailbot.db import make_engine
from mailbot.leadership import file_lock
from mailbot.models import Case, CaseEvent, Outbox
from tests.unit.conftest import MailbotRunner, add_case
from tests.unit.test_cli_operator_views import _outbox

AT = datetime(2026, 3, 2, 10, 59, tzinfo=UTC)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[None]:
    """The lock a running daemon holds on data_dir (leadership.file_lock), held by this test."""
    with file_lock(tmp_path / "data"):
        yield


def _row(url: str, row_id: int) -> Outbox:
    with Session(make_engine(url)) as session:
        row = session.get(Outbox, row_id)
        assert row is not None
        return row


def _events(url: str, kind: str) -> list[str]:
    with Session(make_engine(url)) as session:
        return list(session.exec(select(CaseEvent.detail).where(CaseEvent.kind == kind)
                                 .order_by(col(CaseEvent.id))).all())


# -- outbox -----------------------------------------------------------------------------------
def test_outbox_list_is_the_bare_outbox(config: Path, url: str, mailbot: MailbotRunner
                                        ) -> None:
    _outbox(url, 1, state="failed", last_error="550 5.1.1 unknown")
    _outbox(url, 2, state="cancelled")
    bare = mailbot("--config", str(config), "outbox")
    listed = mailbot("--config", str(config), "outbox", "list")
    assert bare.code == listed.code == 0 and bare.out == listed.out
    only = json.loads(mailbot("--config", str(config), "outbox", "list", "--state",
                              "cancelled", "--json").out)
    assert [row["id"] for row in only] == [2]


def test_retry_puts_a_failed_row_back_and_keeps_accepted_recipients(
        config: Path, url: str, mailbot: MailbotRunner) -> None:
    _outbox(url, 1, state="failed", recipients=["a@kommune.dk", "b@kommune.dk"],
            last_error="every recipient refused",
            results={"a@kommune.dk": "250 accepted", "b@kommune.dk": "550 5.2.2 full"},
            next_attempt_at=datetime(2026, 1, 1, tzinfo=UTC))
    result = mailbot("--config", str(config), "--now", "2026-03-03T09:00", "outbox", "retry",
                     "1")
    assert result.code == 0, result.err
    assert result.out.startswith("outbox 1 (applicant_receipt to a@kommune.dk, b@kommune.dk): "
                                 "failed -> pending;")
    row = _row(url, 1)
    assert row.state == "pending"
    # b is tried again; a, who has it, is never sent it twice
    assert row.results == {"a@kommune.dk": "250 accepted"}
    due = row.next_attempt_at.replace(tzinfo=UTC) - datetime(2026, 3, 3, 8, 0, tzinfo=UTC)
    assert abs(due.total_seconds()) < 60  # due now: the next flush sends it
    assert row.last_error.startswith("retried by the operator (command line); it was failed")
    assert _events(url, "outbox_retried") == [
        "applicant_receipt <r1@kommune.dk>: failed -> pending by the operator (command line)"]


def test_an_uncertain_row_is_retried_only_with_not_delivered(
        config: Path, url: str, mailbot: MailbotRunner) -> None:
    _outbox(url, 1, state="uncertain", last_error="TimeoutError after the end of DATA")
    refused = mailbot("--config", str(config), "outbox", "retry", "1")
    assert refused.code == 2 and refused.out == ""
    assert refused.err == (
        "command line: [--not-delivered] outbox row 1 is uncertain: the SMTP server may have "
        "delivered it already, and a mail is never sent twice by itself. Fix: search the SMTP "
        "server's log for <r1@kommune.dk> or ask the recipient; if it did not arrive, run "
        "`mailbot outbox retry 1 --not-delivered`\n")
    assert _row(url, 1).state == "uncertain" and _events(url, "outbox_retried") == []

    done = mailbot("--config", str(config), "outbox", "retry", "1", "--not-delivered",
                   "--json")
    assert done.code == 0, done.err
    data = json.loads(done.out)
    assert (data["id"], data["state"], data["previous_state"]) == (1, "pending", "uncertain")
    assert data["retried_at"] is not None and data["next_attempt_at"] is not None
    assert _events(url, "outbox_retried")[0].endswith(
        "the operator checked that it was not delivered (--not-delivered)")


@pytest.mark.parametrize(("state", "action", "error"), [
    ("sending", "retry", "command line: [ID] outbox row 1 is being sent right now (state "
     "sending, leased by host:42). Fix: wait for the attempt to end, then `mailbot outbox "
     "show 1`"),
    ("sending", "cancel", "command line: [ID] outbox row 1 is being sent right now (state "
     "sending, leased by host:42). Fix: wait for the attempt to end, then `mailbot outbox "
     "show 1`"),
    ("sent", "retry", "command line: [ID] outbox row 1 is sent: only a failed or uncertain "
     "row can be retried. Fix: `mailbot outbox show 1` shows it; there is nothing to retry"),
    ("pending", "retry", "command line: [ID] outbox row 1 is pending: only a failed or "
     "uncertain row can be retried. Fix: `mailbot outbox show 1` shows it; there is nothing "
     "to retry"),
    ("sent", "cancel", "command line: [ID] outbox row 1 is sent: only a pending, failed or "
     "uncertain row can be cancelled. Fix: `mailbot outbox show 1` shows it; there is "
     "nothing to cancel"),
    ("cancelled", "cancel", "command line: [ID] outbox row 1 is cancelled: only a pending, "
     "failed or uncertain row can be cancelled. Fix: `mailbot outbox show 1` shows it; there "
     "is nothing to cancel"),
])
def test_retry_and_cancel_refuse_a_row_in_another_state(
        config: Path, url: str, mailbot: MailbotRunner, state: str, action: str,
        error: str) -> None:
    _outbox(url, 1, state=state, lease_owner="host:42")
    result = mailbot("--config", str(config), "outbox", action, "1")
    assert (result.code, result.out, result.err) == (2, "", error + "\n")
    assert _row(url, 1).state == state


@pytest.mark.parametrize(("args", "error"), [
    (("retry",), "command line: [ID] `outbox retry` needs the row's id. Fix: `mailbot outbox "
                 "list` lists them (the id column), e.g. `mailbot outbox retry 7`"),
    (("cancel", "9"), "command line: [ID] there is no outbox row 9. Fix: `mailbot outbox "
                      "list` lists them (the id column)"),
])
def test_retry_and_cancel_need_a_known_id(config: Path, url: str, mailbot: MailbotRunner,
                                          args: tuple[str, ...], error: str) -> None:
    result = mailbot("--config", str(config), "outbox", *args)
    assert (result.code, result.out, result.err) == (2, "", error + "\n")


def test_cancel_works_beside_a_running_daemon_and_the_sender_never_claims_it(
        config: Path, url: str, mailbot: MailbotRunner, daemon: None) -> None:
    from mailbot.config import SmtpSettings
    from mailbot.delivery.outbox import Sender

    _outbox(url, 1, state="pending")
    result = mailbot("--config", str(config), "outbox", "cancel", "1")
    assert result.code == 0, result.err
    assert result.out == ("outbox 1 (applicant_receipt to mette@kommune.dk): pending -> "
                          "cancelled; it is never sent\n")
    assert _row(url, 1).state == "cancelled"
    assert _events(url, "outbox_cancelled") == [
        "applicant_receipt <r1@kommune.dk>: pending -> cancelled by the operator (command "
        "line); never sent"]
    # the daemon's sender claims with a conditional UPDATE: a cancelled row is not sent
    sender = Sender(make_engine(url), SmtpSettings(host="localhost"), "bot@kommune.dk")
    assert sender._claim([1], AT) == [] and _row(url, 1).state == "cancelled"


# -- cases --meeting, case --withdraw -----------------------------------------------------------
def test_cases_meeting_lists_one_agenda_in_ref_order(config: Path, url: str,
                                                    mailbot: MailbotRunner) -> None:
    add_case(url, "ITP-2026-0002", status="queued", meeting_date=date(2026, 3, 10))
    add_case(url, "ITP-2026-0001", status="queued", meeting_date=date(2026, 3, 10))
    add_case(url, "ITP-2026-0003", status="queued", meeting_date=date(2026, 4, 7))
    add_case(url, "ITP-2026-0004", status="incomplete")
    data = json.loads(mailbot("--config", str(config), "cases", "--meeting", "2026-03-10",
                              "--json").out)
    assert [(c["ref"], c["meeting"]) for c in data] == [
        ("ITP-2026-0001", "2026-03-10"), ("ITP-2026-0002", "2026-03-10")]
    table = mailbot("--config", str(config), "cases", "--meeting", "2026-03-10").out
    assert table.index("ITP-2026-0001") < table.index("ITP-2026-0002")
    assert "ITP-2026-0003" not in table and "meeting" in table.splitlines()[0]
    assert mailbot("--config", str(config), "cases", "--meeting", "2026-05-05").out == \
        "no cases on the agenda of 2026-05-05\n"
    wrong = mailbot("--config", str(config), "cases", "--meeting", "10/3")
    assert (wrong.code, wrong.err) == (2, "command line: [--meeting] '10/3' is not a date. "
                                       "Fix: write YYYY-MM-DD, a day from `mailbot calendar`\n")


def _case(url: str, ref: str) -> Case:
    with Session(make_engine(url)) as session:
        found = session.exec(select(Case).where(Case.ref == ref)).one()
        return found


def test_withdraw_takes_the_case_off_the_agenda_and_tells_the_applicant(
        config: Path, url: str, mailbot: MailbotRunner) -> None:
    add_case(url, "ITP-2026-0001", status="queued", meeting_date=date(2026, 3, 10),
             thread_message_id="<brief@kommune.dk>")
    result = mailbot("--config", str(config), "case", "ITP-2026-0001", "--withdraw")
    assert result.code == 0, result.err
    assert result.out.startswith("ITP-2026-0001 withdrawn: off the agenda, no more reminders")
    case = _case(url, "ITP-2026-0001")
    assert (case.status, case.meeting_date) == ("withdrawn", None)
    assert _events(url, "withdrawn") == ["by the operator (command line)"]
    with Session(make_engine(url)) as session:
        mail = session.exec(select(Outbox)).one()
    assert (mail.kind, mail.recipients) == ("decision", ["mette@kommune.dk"])
    from mailbot.views import mail_text

    text = mail_text(mail.raw)[0]
    # the applicant did not ask: the mail does not say she did
    assert "Sag ITP-2026-0001 (Lokalebooking) er trukket tilbage.\r\n" in text
    assert "som du bad om" not in text

    again = mailbot("--config", str(config), "case", "ITP-2026-0001", "--withdraw")
    assert (again.code, again.err) == (
        2, "command line: [REF] ITP-2026-0001 is withdrawn: withdraw only an open case. Fix: "
           "`mailbot case ITP-2026-0001` shows it\n")
    unknown = mailbot("--config", str(config), "case", "ITP-2026-0099", "--withdraw")
    assert (unknown.code, unknown.err) == (
        2, "command line: [REF] there is no case ITP-2026-0099. Fix: `mailbot cases` lists "
           "them\n")


def _case_with_reviewer_mail(url: str, status: str, review: str, remind: str) -> int:
    """Case ITP-2026-0001 in `status` with a review request (outbox 1, to drift@) and a
    reminder (outbox 2, to jura@) in the given outbox states; returns the case's id."""
    add_case(url, "ITP-2026-0001", status=status, thread_message_id="<brief@kommune.dk>")
    case_id = _case(url, "ITP-2026-0001").id
    assert case_id is not None
    _outbox(url, 1, kind="review", state=review, case_id=case_id,
            recipients=["drift@kommune.dk"])
    _outbox(url, 2, kind="remind", state=remind, case_id=case_id,
            recipients=["jura@kommune.dk"])
    return case_id


def test_withdraw_cancels_the_unsent_mail_to_reviewers(
        config: Path, url: str, mailbot: MailbotRunner) -> None:
    case_id = _case_with_reviewer_mail(url, "complete", review="failed", remind="pending")
    _outbox(url, 3, kind="review", state="sent", case_id=case_id)
    _outbox(url, 4, kind="receipt", state="failed", case_id=case_id)
    result = mailbot("--config", str(config), "case", "ITP-2026-0001", "--withdraw")
    assert result.code == 0, result.err
    assert "unsent mail to reviewers cancelled: outbox 1 (review to drift@kommune.dk), " \
        "outbox 2 (remind to jura@kommune.dk)" in result.out
    assert [_row(url, n).state for n in (1, 2, 3, 4)] == [
        "cancelled", "cancelled", "sent", "failed"]
    assert _events(url, "outbox_cancelled") == [
        "review <r1@kommune.dk>: failed -> cancelled; the case was withdrawn; never sent",
        "remind <r2@kommune.dk>: pending -> cancelled; the case was withdrawn; never sent"]


def test_cancelling_a_review_request_says_the_review_still_waits(
        config: Path, url: str, mailbot: MailbotRunner) -> None:
    from mailbot.models import Review

    add_case(url, "ITP-2026-0001", status="complete")
    case_id = _case(url, "ITP-2026-0001").id
    assert case_id is not None
    _outbox(url, 1, kind="review", state="failed", case_id=case_id,
            recipients=["drift@kommune.dk"])
    with Session(make_engine(url)) as session:
        session.add(Review(case_id=case_id, role="it_operations",
                           recipients=["drift@kommune.dk"], requested_at=AT,
                           request_message_id="<r1@kommune.dk>"))
        session.commit()
    result = mailbot("--config", str(config), "outbox", "cancel", "1")
    assert result.code == 0, result.err
    assert " ".join(result.out.split()) == (
        "outbox 1 (review to drift@kommune.dk): failed -> cancelled; it is never sent. The "
        "review of it_operations (drift@kommune.dk) still waits for an answer, and none can "
        "come: the reviewer never got the request and is not reminded of it; a new request "
        "goes out when the applicant sends a new version of its documents")


@pytest.mark.parametrize("status", ["withdrawn", "decided"])
def test_retry_refuses_a_review_request_of_a_case_that_is_over(
        config: Path, url: str, mailbot: MailbotRunner, status: str) -> None:
    add_case(url, "ITP-2026-0001", status=status)
    case_id = _case(url, "ITP-2026-0001").id
    _outbox(url, 1, kind="review", state="failed", case_id=case_id)
    _outbox(url, 2, kind="decision", state="failed", case_id=case_id)
    refused = mailbot("--config", str(config), "outbox", "retry", "1")
    assert (refused.code, refused.err) == (2, (
        f"command line: [ID] outbox row 1 is a review mail to reviewers of ITP-2026-0001, and "
        f"ITP-2026-0001 is {status}: no reviewer is asked about a case that is over. Fix: "
        "`mailbot outbox cancel 1`\n"))
    assert _row(url, 1).state == "failed"
    # the applicant's decision mail is still hers to get
    assert mailbot("--config", str(config), "outbox", "retry", "2").code == 0


def test_withdraw_is_refused_while_the_daemon_runs(config: Path, url: str,
                                                   mailbot: MailbotRunner, daemon: None,
                                                   tmp_path: Path) -> None:
    add_case(url, "ITP-2026-0001", status="incomplete")
    result = mailbot("--config", str(config), "case", "ITP-2026-0001", "--withdraw")
    assert result.code == 2 and result.out == ""
    assert result.err == (
        f"another mailbot is running on {tmp_path / 'data'} (lock "
        f"{tmp_path / 'data' / 'mailbot.lock'}); stop it first; systemctl stop mailbot, run "
        "this again, systemctl start mailbot (the daemon changes cases too)\n")
    assert _case(url, "ITP-2026-0001").status == "incomplete"


# -- quarantine ---------------------------------------------------------------------------------
POISON_MAIL = (b"From: Ukendt <x@example.org>\r\nTo: it.projekter@kommune.dk\r\n"
               b"Subject: =?utf-8?q?Projekt_=C3=A6=C3=B8=C3=A5?=\r\n"
               b"Message-ID: <poison@example.org>\r\nDate: Mon, 2 Mar 2026 11:59:00 +0100\r\n"
               b"\r\nbody\r\n")


def _quarantined(url: str, tmp_path: Path, uid: int, **fields: object) -> None:
    from mailbot.blobs import BlobStore
    from tests.unit.test_cli_operator_views import _message

    sha = BlobStore(tmp_path / "data" / "blobs").put(POISON_MAIL)
    values: dict[str, object] = {
        "state": "quarantined", "message_id": "<poison@example.org>", "raw_sha256": sha,
        "size": len(POISON_MAIL), "attempts": 3, "target_folder": "Quarantine",
        "moved_at": AT, "reason": "failed 3 times: ValueError: boom", **fields}
    _message(url, uid, **values)


def test_quarantine_list_and_show(config: Path, url: str, mailbot: MailbotRunner,
                                  tmp_path: Path) -> None:
    from tests.unit.test_cli_operator_views import _message

    assert mailbot("--config", str(config), "quarantine", "list").out == \
        "no quarantined mail\n"
    _quarantined(url, tmp_path, 7)
    _message(url, 8, state="processed")
    _quarantined(url, tmp_path, 9, purged_at=AT)  # deleted: not listed any more
    listed = mailbot("--config", str(config), "quarantine", "list")
    assert listed.code == 0, listed.err
    rows = [line.split()[0] for line in listed.out.splitlines()[2:] if line[:1].isdigit()]
    assert rows == ["1"] and "failed 3 times: ValueError: boom" in listed.out
    data = json.loads(mailbot("--config", str(config), "quarantine", "list", "--json").out)
    assert [(m["id"], m["uid"], m["attempts"]) for m in data] == [(1, 7, 3)]

    shown = mailbot("--config", str(config), "quarantine", "show", "1")
    assert shown.code == 0, shown.err
    assert "attempts:   3\n" in shown.out and "copy in:    Quarantine\n" in shown.out
    assert "fetched:    2026-03-02 11:59:00 CET\n" in shown.out  # local, with its zone
    assert "reason:     failed 3 times: ValueError: boom\n" in shown.out
    assert "  Subject:    Projekt æøå\n" in shown.out
    assert "  Message-ID: <poison@example.org>\n" in shown.out
    detail = json.loads(mailbot("--config", str(config), "quarantine", "show", "1",
                                "--json").out)
    assert ["From", "Ukendt <x@example.org>"] in detail["headers"]
    assert detail["reason"] == "failed 3 times: ValueError: boom"


def test_quarantine_show_reads_a_released_or_deleted_mail_and_its_events(
        config: Path, url: str, mailbot: MailbotRunner, tmp_path: Path) -> None:
    from mailbot.audit import record
    from tests.unit.test_cli_operator_views import _message

    _quarantined(url, tmp_path, 7, state="released")
    _quarantined(url, tmp_path, 8, purged_at=AT, reason="deleted by the operator")
    _message(url, 9, state="processed")
    with Session(make_engine(url)) as session:
        record(session, None, 1, AT, "quarantine_released", "mail 1 (UID 7) released")
        record(session, None, 2, AT, "quarantine_deleted", "mail 2 (UID 8) deleted")
        session.commit()
    released = mailbot("--config", str(config), "quarantine", "show", "1")
    assert released.code == 0, released.err
    assert "state:      released\n" in released.out
    assert "events:\n  2026-03-02 11:59:00 CET  quarantine_released mail 1 (UID 7) released" \
        in released.out
    assert "quarantined mail 1 is released; it was released" in released.out
    assert "quarantine release 1" not in released.out
    deleted = json.loads(mailbot("--config", str(config), "quarantine", "show", "2",
                                 "--json").out)
    assert deleted["quarantine_state"] == "deleted"
    assert [(e["kind"], e["detail"]) for e in deleted["events"]] == [
        ("quarantine_deleted", "mail 2 (UID 8) deleted")]
    assert "is deleted; it was deleted: only this tombstone is left" in mailbot(
        "--config", str(config), "quarantine", "show", "2").out
    never = mailbot("--config", str(config), "quarantine", "show", "3")
    assert (never.code, never.err) == (2, "command line: [ID] mail 3 is processed, not "
                                          "quarantined. Fix: `mailbot quarantine list` lists "
                                          "the quarantined mails (the id column)\n")


@pytest.mark.parametrize(("action", "uid", "fields", "error"), [
    ("show", 0, {}, "command line: [ID] there is no mail 5 in the ledger. Fix: `mailbot "
     "quarantine list` lists the quarantined mails (the id column)"),
    ("release", 7, {"state": "processed"}, "command line: [ID] mail 1 is processed, not "
     "quarantined. Fix: `mailbot quarantine list` lists the quarantined mails (the id "
     "column)"),
    ("delete", 7, {"purged_at": AT}, "command line: [ID] mail 1 was deleted (its content is "
     "gone). Fix: `mailbot quarantine list` lists the quarantined mails (the id column)"),
    ("release", 7, {"moved_at": None}, "command line: [ID] mail 1 is still in INBOX: the "
     "daemon moves it to Quarantine at its next sweep. Fix: try `mailbot quarantine release "
     "1` again after that sweep (`mailbot run --once` makes one)"),
    ("release", 7, {"message_id": ""}, "command line: [ID] mail 1 has no Message-ID, so its "
     "copy in Quarantine cannot be told from other mail. Fix: move it by hand in a mail "
     "client from Quarantine to INBOX"),
    ("delete", 7, {"imap_anomaly": "not moved by mailbot: gone"}, "command line: [ID] mail 1 "
     "has no copy in Quarantine that mailbot put there (not moved by mailbot: gone). Fix: "
     "look for it in the mailbox with a mail client"),
])
def test_quarantine_refusals(config: Path, url: str, mailbot: MailbotRunner, tmp_path: Path,
                             action: str, uid: int, fields: dict[str, object], error: str
                             ) -> None:
    if uid:
        _quarantined(url, tmp_path, uid, **fields)
    result = mailbot("--config", str(config), "quarantine", action, "5" if not uid else "1")
    assert (result.code, result.out, result.err) == (2, "", error + "\n")
    assert _events(url, "quarantine_released") == _events(url, "quarantine_deleted") == []


def test_released_mail_is_no_duplicate_and_retention_leaves_other_copies(
        config: Path, url: str, tmp_path: Path) -> None:
    """The ledger's side of a release (the IMAP side is tests/e2e/test_admin.py): the row
    becomes `released` with its reason kept, the copy that comes back is not a duplicate of
    it, and purging the released row later never deletes a copy by its Message-ID."""
    from mailbot.admin import mark_released
    from mailbot.app import build_bot
    from mailbot.clock import Clock
    from mailbot.config import load_settings
    from mailbot.intake.ledger import earlier_copy
    from mailbot.models import RawMessage
    from mailbot.privacy.purge import purge_mail

    _quarantined(url, tmp_path, 7)
    bot = build_bot(load_settings(config, environ={}), Clock(AT), make_engine(url))
    released = mark_released(bot, 1, AT)
    assert released.state == "released" and released.attempts == 3
    assert released.reason == ("released by the operator (command line); it was quarantined: "
                               "failed 3 times: ValueError: boom")
    assert _events(url, "quarantine_released")[0].startswith(
        "mail 1 (UID 7, <poison@example.org>) released by the operator (command line): its "
        "copy went from Quarantine back to INBOX")
    from tests.unit.test_cli_operator_views import _message

    _message(url, 20, state="received", message_id="<poison@example.org>",
             msgid_hash="h7", raw_sha256=released.raw_sha256,
             content_sha256=released.content_sha256)
    with Session(make_engine(url)) as session:
        again = session.exec(select(RawMessage).where(RawMessage.uid == 20)).one()
        assert again.attempts == 0 and earlier_copy(session, again) is None
        old = session.get(RawMessage, 1)
        assert old is not None
        purge_mail(session, old, ("Processed", "Quarantine"), AT)
        assert old.message_id == ""  # so remove_copies never looks for its copy


def test_quarantine_delete_refuses_nothing_found_and_keeps_a_tombstone(
        config: Path, url: str, tmp_path: Path) -> None:
    from mailbot.admin import delete_quarantined
    from mailbot.app import build_bot
    from mailbot.clock import Clock
    from mailbot.config import load_settings
    from mailbot.models import RawMessage

    _quarantined(url, tmp_path, 7)
    bot = build_bot(load_settings(config, environ={}), Clock(AT), make_engine(url))
    row, sha = delete_quarantined(bot, 1, AT)
    assert sha == row.raw_sha256 and bot.blobs.exists(sha)  # the caller releases it
    with Session(make_engine(url)) as session:
        tomb = session.get(RawMessage, 1)
        assert tomb is not None
        assert (tomb.state, tomb.sender, tomb.subject, tomb.reason) == (
            "quarantined", "", "", "deleted by the operator (command line)")
        assert tomb.purged_at is not None and tomb.message_id == "<poison@example.org>"
    assert _events(url, "quarantine_deleted") == [
        f"mail 1 (UID 7 of INBOX, {len(POISON_MAIL)} bytes) deleted by the operator (command "
        "line): its content, its stored file and its copy in Quarantine"]


def test_quarantine_delete_without_message_id_tombstones_and_leaves_the_copy_to_a_person(
        config: Path, url: str, tmp_path: Path, mailbot: MailbotRunner) -> None:
    from mailbot.blobs import BlobStore
    from mailbot.models import RawMessage

    _quarantined(url, tmp_path, 7, message_id="")
    sha = _row_sha(url)
    result = mailbot("--config", str(config), "quarantine", "delete", "1")
    assert result.code == 0, result.err
    assert " ".join(result.out.split()) == (
        "mail 1 deleted: its content and stored file; the ledger keeps a tombstone. mail 1 "
        "has no Message-ID, so mailbot cannot tell its copy in Quarantine from other mail: "
        "delete it by hand in a mail client from Quarantine")
    with Session(make_engine(url)) as session:
        tomb = session.get(RawMessage, 1)
        assert tomb is not None and tomb.purged_at is not None and tomb.reason == (
            "deleted by the operator (command line)")
    assert not BlobStore(tmp_path / "data" / "blobs").exists(sha)
    assert _events(url, "quarantine_deleted")[0].endswith(
        "its content and its stored file; it has no Message-ID, so its copy in Quarantine is "
        "left for a person to delete in a mail client")


def _row_sha(url: str) -> str:
    from mailbot.models import RawMessage

    with Session(make_engine(url)) as session:
        row = session.get(RawMessage, 1)
        assert row is not None
        return row.raw_sha256


# -- document --kind ----------------------------------------------------------------------------
def _documents(url: str, tmp_path: Path) -> None:
    """ITP-2026-0001 with a technical description, a DPA, a business case, and a contract
    the reader took for `other` (its raw mail is a ledger row)."""
    from mailbot.blobs import BlobStore
    from mailbot.models import CaseDocument
    from tests.unit.test_cli_operator_views import _message

    add_case(url, "ITP-2026-0001", status="incomplete", missing=["contract_draft"],
             answers=dict.fromkeys(("who", "what", "where", "when", "why", "cost"), "x"))
    _message(url, 3, case_id=1)
    blobs = BlobStore(tmp_path / "data" / "blobs")
    with Session(make_engine(url)) as session:
        for name, kind in (("Teknisk beskrivelse.pdf", "technical_description"),
                           ("Databehandleraftale.pdf", "dpa_draft"),
                           ("Business case.pdf", "business_case"),
                           ("Aftale med leverandør.pdf", "other")):
            session.add(CaseDocument(case_id=1, raw_message_id=1, filename=name, kind=kind,
                                     content_type="application/pdf", size=10,
                                     blob_sha256=blobs.put(b"%PDF-1.4 " + name.encode()),
                                     received_at=AT))
        session.commit()
    _route_as_opened(url, tmp_path)


def _route_as_opened(url: str, tmp_path: Path) -> None:
    """The review requests the brief's documents got when the case was opened."""
    from mailbot.app import build_bot
    from mailbot.clock import Clock
    from mailbot.config import load_settings
    from mailbot.council.reviews import route
    from mailbot.db import transaction

    bot = build_bot(load_settings(tmp_path / "mailbot.toml", environ={}), Clock(AT),
                    make_engine(url))
    with transaction(bot.engine) as session:
        case = session.exec(select(Case)).one()
        assert {r.role for r in route(session, bot, case, AT)} == {
            "it_operations", "it_architect", "security_coordinator"}


def test_document_kind_correction_routes_it_and_completes_the_case(
        config: Path, url: str, mailbot: MailbotRunner, tmp_path: Path) -> None:
    _documents(url, tmp_path)
    result = mailbot("--config", str(config), "document", "ITP-2026-0001",
                     "Aftale med leverandør.pdf", "--kind", "contract_draft")
    assert result.code == 0, result.err
    assert result.out == (
        "ITP-2026-0001: Aftale med leverandør.pdf is contract_draft (v1), was other; missing: "
        "nothing (was: contract_draft); review requests queued: contract_manager\n")
    case = _case(url, "ITP-2026-0001")
    assert (case.missing, case.status) == ([], "complete")
    with Session(make_engine(url)) as session:
        mails = session.exec(select(Outbox).where(Outbox.kind == "review")
                             .order_by(col(Outbox.id))).all()[3:]  # after the first three
    assert [m.recipients for m in mails] == [["kontrakter@kommune.dk"]]
    from email import message_from_bytes, policy

    sent = message_from_bytes(mails[0].raw, policy=policy.default)
    assert [p.get_filename() for p in sent.iter_attachments()] == ["Aftale med leverandør.pdf"]
    assert _events(url, "document_kind_corrected") == [
        "Aftale med leverandør.pdf: other -> contract_draft v1 by the operator (command line); "
        "missing: nothing; review requests: contract_manager"]
    data = json.loads(mailbot("--config", str(config), "case", "ITP-2026-0001", "--json").out)
    assert {"filename": "Aftale med leverandør.pdf", "kind": "contract_draft", "version": 1,
            "note": "kind set by the operator (command line); it was other: ",
            "hazard": "", "held": False} in data["documents"]

    back = json.loads(mailbot("--config", str(config), "document", "ITP-2026-0001",
                              "Aftale med leverandør.pdf", "--kind", "other", "--json").out)
    assert back["missing"] == ["contract_draft"] and back["status"] == "incomplete"
    assert back["corrected"] == {"filename": "Aftale med leverandør.pdf",
                                 "old_kind": "contract_draft", "kind": "other", "version": 1,
                                 "missing_before": [], "review_requests": []}
    mailbot("--config", str(config), "document", "ITP-2026-0001", "Aftale med leverandør.pdf",
            "--kind", "dpa_draft")
    # one note: the latest correction and the reader's original reading, not nested
    notes = [d["note"] for d in json.loads(mailbot(
        "--config", str(config), "case", "ITP-2026-0001", "--json").out)["documents"]
        if d["filename"] == "Aftale med leverandør.pdf"]
    assert notes == ["kind set by the operator (command line); it was other; first read as "
                     "other: "]


def test_a_correction_cancels_the_unsent_request_it_supersedes_and_claims_no_new_version(
        config: Path, url: str, mailbot: MailbotRunner, tmp_path: Path) -> None:
    """Two corrections before the daemon sends anything: the contract manager gets one
    request (the newest), and it says the documents were corrected, not that a new version
    came (issue #14 trial: two mails within a second, the first void)."""
    from email import message_from_bytes, policy

    _documents(url, tmp_path)
    for name in ("Aftale med leverandør.pdf", "Business case.pdf"):
        result = mailbot("--config", str(config), "document", "ITP-2026-0001", name,
                         "--kind", "contract_draft")
        assert result.code == 0, result.err
    with Session(make_engine(url)) as session:
        mails = session.exec(select(Outbox).where(Outbox.kind == "review")
                             .order_by(col(Outbox.id))).all()
    to_contracts = [m for m in mails if m.recipients == ["kontrakter@kommune.dk"]]
    assert [m.state for m in to_contracts] == ["cancelled", "pending"]
    text = message_from_bytes(to_contracts[1].raw, policy=policy.default)
    body = text.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "ny version" not in body
    assert "Dokumenterne til din vurdering i sag ITP-2026-0001 er blevet rettet" in body
    assert "Business case.pdf" in body
    assert f"{to_contracts[0].message_id}: pending -> cancelled: its review request was " \
        "superseded before it was sent" in " ".join(_events(url, "outbox_cancelled"))
    superseded = [e for e in _events(url, "review_superseded")
                  if e.startswith("contract_manager")]
    assert superseded == ["contract_manager: documents corrected by the operator, now "
                          "Business case.pdf (v2)"]


@pytest.mark.parametrize(("args", "error"), [
    (("ITP-2026-0009", "x.pdf", "--kind", "other"), "command line: [REF] there is no case "
     "ITP-2026-0009. Fix: `mailbot cases` lists them"),
    (("ITP-2026-0001", "x.pdf", "--kind", "contract"), "command line: [--kind] 'contract' is "
     "not a document kind. Fix: use one of dpa_draft, contract_draft, technical_description, "
     "business_case, project_description, other (rules/documents.yaml)"),
    (("ITP-2026-0001", "x.pdf", "--kind", "other"), "command line: [FILENAME] ITP-2026-0001 "
     "has no document 'x.pdf' (its documents: Aftale med leverandør.pdf, Business case.pdf, "
     "Databehandleraftale.pdf, Teknisk beskrivelse.pdf). Fix: give the name as `mailbot case "
     "ITP-2026-0001` shows it"),
    (("ITP-2026-0001", "Business case.pdf", "--kind", "business_case"), "command line: "
     "[--kind] Business case.pdf is business_case already. Fix: give the kind it should "
     "have"),
])
def test_document_refusals(config: Path, url: str, mailbot: MailbotRunner, tmp_path: Path,
                           args: tuple[str, ...], error: str) -> None:
    _documents(url, tmp_path)
    result = mailbot("--config", str(config), "document", *args)
    assert (result.code, result.out, result.err) == (2, "", error + "\n")
    assert _events(url, "document_kind_corrected") == []


def test_document_is_refused_while_the_daemon_runs(config: Path, url: str,
                                                   mailbot: MailbotRunner, tmp_path: Path,
                                                   daemon: None) -> None:
    _documents(url, tmp_path)
    result = mailbot("--config", str(config), "document", "ITP-2026-0001",
                     "Aftale med leverandør.pdf", "--kind", "contract_draft")
    assert result.code == 2 and "another mailbot is running on" in result.err
    assert _case(url, "ITP-2026-0001").missing == ["contract_draft"]


# -- local times with their zone ----------------------------------------------------------------
def test_printed_times_are_local_and_name_their_zone(config: Path, url: str,
                                                     mailbot: MailbotRunner) -> None:
    from mailbot.models import CircuitBreaker

    calendar = mailbot("--config", str(config), "calendar", "--year", "2027").out
    assert "2027-01-04  Mon 09:00 CET   2026-12-28 Mon 12:00 CET" in calendar
    assert "2027-04-05  Mon 09:00 CEST" in calendar
    _outbox(url, 1, state="failed", last_error="550 5.7.1 relay denied")
    with Session(make_engine(url)) as session:
        session.merge(CircuitBreaker(id=1, opened_at=AT, reason="200 mails"))
        session.commit()
    listing = mailbot("--config", str(config), "outbox", "list").out
    assert listing.startswith("CIRCUIT BREAKER OPEN since 2026-03-02 11:59:00 CET: 200 mails")
    shown = " ".join(mailbot("--config", str(config), "outbox", "show", "1").out.split())
    assert "created: 2026-03-02 11:59:00 CET" in shown
    assert "then `mailbot outbox retry 1`" in shown  # what to do, with the row's id


def test_a_retried_row_is_given_up_counting_from_the_retry(config: Path, url: str,
                                                           mailbot: MailbotRunner) -> None:
    """smtp.give_up_hours counts from `outbox retry`, not from when the row was queued: a
    receipt retried days later that meets an SMTP server down waits (pending) again."""
    from mailbot.config import SmtpSettings
    from mailbot.delivery.outbox import Sender
    from mailbot.mailworld import free_port

    _outbox(url, 1, state="failed", last_error="554 relay denied")  # queued on 2 March
    now = "2026-03-09T10:00"
    assert mailbot("--config", str(config), "--now", now, "outbox", "retry", "1").code == 0
    down = SmtpSettings(host="127.0.0.1", port=free_port(), security="none", auth="none",
                        timeout_seconds=2)
    report = Sender(make_engine(url), down, "bot@kommune.dk").flush(
        datetime(2026, 3, 9, 9, 1, tzinfo=UTC))
    assert (report.retry, report.failed) == (1, 0)
    row = _row(url, 1)
    assert row.state == "pending" and "SMTP server unavailable" in row.last_error


def test_a_decision_cancels_the_unsent_mail_to_reviewers(config: Path, url: str) -> None:
    """As a withdrawal does: a reviewer is never asked about a case the council decided (a
    postponed case is not decided, and keeps them)."""
    from mailbot.app import build_bot
    from mailbot.clock import Clock
    from mailbot.config import load_settings
    from mailbot.council.decisions import decide
    from mailbot.db import transaction
    from mailbot.vocabulary import Decision

    case_id = _case_with_reviewer_mail(url, "queued", review="pending", remind="failed")
    bot = build_bot(load_settings(config, environ={}), Clock(AT))

    def council_decides(decision: Decision, text: str, day: date) -> None:
        with transaction(bot.engine) as session:
            case = session.get(Case, case_id)
            assert case is not None
            decide(session, bot, case, decision, text, day, AT)

    council_decides(Decision.POSTPONED, "", date(2026, 3, 9))
    assert [_row(url, n).state for n in (1, 2)] == ["pending", "failed"]
    council_decides(Decision.APPROVED, "Godkendt.", date(2026, 3, 16))
    assert [_row(url, n).state for n in (1, 2)] == ["cancelled", "cancelled"]
    assert _events(url, "outbox_cancelled") == [
        "review <r1@kommune.dk>: pending -> cancelled; the case was decided (approved); "
        "never sent",
        "remind <r2@kommune.dk>: failed -> cancelled; the case was decided (approved); "
        "never sent"]
