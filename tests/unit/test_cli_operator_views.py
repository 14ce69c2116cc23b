"""What the operator sees in `mailbot outbox` and `mailbot messages`: every failed or
uncertain row, the whole error and each refused recipient's reply, one mail with the text to
send by hand, quarantined mail with its sender, subject and whole reason; `--json` of each.
The real CLI on a real SQLite database (found missing by a new operator, issue #10)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlmodel import Session

from mailbot.db import make_engine
from mailbot.models import Outbox, RawMessage
from tests.unit.conftest import MailbotRunner, add_case

AT = datetime(2026, 3, 2, 10, 59, tzinfo=UTC)  # 11:59 in Copenhagen
LONG_ERROR = ("TimeoutError after the end of DATA: the SMTP server did not answer the final "
              "dot within 60 seconds; the server may have it: not resent")
REFUSED = "550 5.1.1 <mette@kommune.dk>: Recipient address rejected: User unknown in virtual "\
          "mailbox table"
POISON = ("the process died 3 times while handling this mail (killed or out of memory); not "
          "parsed again")


def _mail(text: str, attachment: str | None = None) -> bytes:
    mail = EmailMessage()
    mail["From"] = "IT-Projektrådet <it.projekter@kommune.dk>"
    mail["To"] = "mette@kommune.dk"
    mail["Subject"] = "Kvittering: Lokalebooking"
    mail["Message-ID"] = "<r1@kommune.dk>"
    mail.set_content(text)
    mail.add_alternative(f"<p>{text}</p>", subtype="html")
    if attachment:
        mail.add_attachment(b"PK\x03\x04", maintype="application", subtype="zip",
                            filename=attachment)
    return mail.as_bytes()


def _outbox(url: str, number: int, **fields: object) -> None:
    values: dict[str, object] = {
        "kind": "applicant_receipt", "message_id": f"<r{number}@kommune.dk>",
        "recipients": ["mette@kommune.dk"], "subject": f"Kvittering {number}",
        "raw": _mail(f"Tak for din mail nummer {number}."), "state": "sent", "attempts": 1,
        "created_at": AT, "next_attempt_at": AT, **fields}
    with Session(make_engine(url)) as session:
        session.add(Outbox.model_validate(values))
        session.commit()


def _message(url: str, uid: int, **fields: object) -> None:
    values: dict[str, object] = {
        "folder": "INBOX", "uidvalidity": 1, "uid": uid, "msgid_hash": f"h{uid}",
        "raw_sha256": f"{uid:064x}", "content_sha256": f"{uid:064x}", "size": 100,
        "fetched_at": AT, "state": "processed", **fields}
    with Session(make_engine(url)) as session:
        session.add(RawMessage.model_validate(values))
        session.commit()


def _lines_of(out: str, row_id: int) -> list[str]:
    """The lines of table row `row_id`: its first line and the wrapped ones below it."""
    lines = out.splitlines()
    first = next(i for i, line in enumerate(lines) if line.split()[:1] == [str(row_id)])
    following = []
    for line in lines[first + 1:]:
        if not line.strip() or not line.startswith(" "):
            break
        following.append(line)
    return [lines[first], *following]


def _joined(lines: list[str], column: int) -> str:
    """The text of a wrapped column starting at character `column`, lines joined."""
    return " ".join(part for line in lines if (part := line[column:].strip()))


def test_outbox_wraps_the_whole_error_and_shows_the_refusing_servers_reply(
        config: Path, url: str, mailbot: MailbotRunner) -> None:
    _outbox(url, 1, state="uncertain", last_error=LONG_ERROR)
    _outbox(url, 2, state="failed", last_error="every recipient refused",
            results={"mette@kommune.dk": REFUSED})
    _outbox(url, 3, state="sent", recipients=["a@kommune.dk", "b@kommune.dk"],
            results={"a@kommune.dk": "250 accepted", "b@kommune.dk": "550 5.1.1 unknown"})
    result = mailbot("--config", str(config), "outbox")
    assert result.code == 0, result.err
    out = result.out
    column = out.splitlines()[0].index("last error")
    assert _joined(_lines_of(out, 1), column) == LONG_ERROR
    assert _joined(_lines_of(out, 2), column) == \
        f"every recipient refused: mette@kommune.dk: {REFUSED}"
    assert _joined(_lines_of(out, 3), column) == "b@kommune.dk: 550 5.1.1 unknown"
    assert max(map(len, out.splitlines())) < 160  # wrapped, not one endless line
    to_column = out.splitlines()[0].index("to ")
    assert [line[to_column:].split()[0] for line in _lines_of(out, 3)] == \
        ["a@kommune.dk", "b@kommune.dk"]  # every recipient, one per line


def test_outbox_state_lists_every_uncertain_row_beyond_the_limit(
        config: Path, url: str, mailbot: MailbotRunner) -> None:
    for number in range(1, 4):
        _outbox(url, number, state="uncertain", last_error=LONG_ERROR)
    _outbox(url, 4, state="failed", last_error="550 5.7.1 relaying denied")
    for number in range(5, 65):
        _outbox(url, number)
    default = mailbot("--config", str(config), "outbox").out
    assert "uncertain" not in default.split("\n\n")[0]  # the 50 newest are all sent
    assert default.rstrip().endswith(
        "newest 50 of 64 shown; 1 more failed: `mailbot outbox --state failed`; "
        "3 more uncertain: `mailbot outbox --state uncertain`")

    uncertain = mailbot("--config", str(config), "outbox", "--state", "uncertain").out
    ids = [line.split()[0] for line in uncertain.splitlines()[2:] if line[:1].isdigit()]
    assert ids == ["3", "2", "1"]
    limited = mailbot("--config", str(config), "outbox", "--state", "uncertain", "--limit", "2")
    assert limited.out.rstrip().endswith("newest 2 of 3 shown; `--limit 3` shows all")
    assert mailbot("--config", str(config), "outbox", "--state", "pending").out == \
        "no outbox rows in state pending\n"
    wrong = mailbot("--config", str(config), "outbox", "--state", "lost")
    assert wrong.code == 2 and wrong.err == (
        "command line: [--state] 'lost' is not an outbox state. Fix: use one of pending, "
        "sending, sent, failed, uncertain, cancelled\n")


def test_outbox_show_prints_the_mail_to_send_by_hand(
        config: Path, url: str, mailbot: MailbotRunner) -> None:
    add_case(url, "ITP-2026-0001")
    _outbox(url, 1, case_id=1, state="uncertain", last_error=LONG_ERROR,
            subject="Kvittering: Lokalebooking",
            raw=_mail("Kære Mette\n\nTak for dit projektforslag.\n", "bilag.zip"),
            results={"mette@kommune.dk": "451 4.7.1 greylisted"})
    result = mailbot("--config", str(config), "outbox", "show", "1")
    assert result.code == 0, result.err
    out = result.out
    assert out.startswith("outbox 1: applicant_receipt (at most once)\n")
    for line in ("state:      uncertain", "to:         mette@kommune.dk",
                 "subject:    Kvittering: Lokalebooking", "case:       ITP-2026-0001",
                 "attempts:   1", "created:    2026-03-02 11:59:00 CET",
                 "Message-ID: <r1@kommune.dk>", "  mette@kommune.dk  451 4.7.1 greylisted",
                 "attachments: bilag.zip"):
        assert f"\n{line}\n" in out, line
    error_lines = out.partition("last error: ")[2].partition("\nresults:")[0]
    assert " ".join(error_lines.split()) == \
        f"{LONG_ERROR}: mette@kommune.dk: 451 4.7.1 greylisted"
    assert "never sends it again by itself" in " ".join(out.split())
    text = out.partition("--- text part ")[2]
    assert "\nKære Mette\n\nTak for dit projektforslag.\n" in text and "<p>" not in text

    data = json.loads(mailbot("--config", str(config), "outbox", "show", "1", "--json").out)
    assert data["state"] == "uncertain" and data["message_id"] == "<r1@kommune.dk>"
    assert data["results"] == {"mette@kommune.dk": "451 4.7.1 greylisted"}
    assert data["text"] == "Kære Mette\n\nTak for dit projektforslag.\n"
    assert data["attachments"] == ["bilag.zip"] and data["case_ref"] == "ITP-2026-0001"
    assert data["created_at"] == "2026-03-02T11:59:00+01:00"


@pytest.mark.parametrize(("args", "error"), [
    (("show",), "command line: [ID] `outbox show` needs the row's id. Fix: `mailbot outbox "
                "list` lists them (the id column), e.g. `mailbot outbox show 7`"),
    (("show", "9"), "command line: [ID] there is no outbox row 9. Fix: `mailbot outbox list` "
                    "lists them (the id column)"),
    (("show", "x"), "command line: [ID] 'x' is not an id. Fix: give the number from the id "
                    "column of `mailbot outbox list`"),
    (("show", "99999999999999999999999"), "command line: [ID] 99999999999999999999999 is "
     "larger than any row id. Fix: give the number from the id column of `mailbot outbox "
     "list`"),
    (("retry", str(2**63)), f"command line: [ID] {2**63} is larger than any row id. Fix: give "
     "the number from the id column of `mailbot outbox list`"),
    # one above PostgreSQL's `integer`, which its id columns are: refused before the database
    # says "integer out of range"
    (("retry", str(2**31)), f"command line: [ID] {2**31} is larger than any row id. Fix: give "
     "the number from the id column of `mailbot outbox list`"),
    (("show", "²"), "command line: [ID] '²' is not an id. Fix: give the number from the id "
                    "column of `mailbot outbox list`"),
    (("resume", "1"), "command line: [ID] `outbox resume` takes no ID. Fix: use `mailbot "
                      "outbox show ID` to see one mail"),
    (("send",), "command line: [ACTION] 'send' is not an outbox action. Fix: use `mailbot "
                "outbox list`, `show ID`, `retry ID`, `cancel ID` or `resume`"),
])
def test_outbox_show_errors_are_one_line(config: Path, url: str, mailbot: MailbotRunner,
                                         args: tuple[str, ...], error: str) -> None:
    result = mailbot("--config", str(config), "outbox", *args)
    assert (result.code, result.out, result.err) == (2, "", error + "\n")


def test_outbox_json_lists_rows_with_their_results(config: Path, url: str,
                                                   mailbot: MailbotRunner) -> None:
    _outbox(url, 1, state="failed", last_error="every recipient refused",
            results={"mette@kommune.dk": REFUSED})
    _outbox(url, 2, state="pending", attempts=2, last_error="ConnectionRefusedError",
            next_attempt_at=AT + timedelta(minutes=2))
    data = json.loads(mailbot("--config", str(config), "outbox", "--json").out)
    assert [(row["id"], row["state"]) for row in data] == [(2, "pending"), (1, "failed")]
    assert data[0]["next_attempt_at"] == "2026-03-02T12:01:00+01:00"
    assert data[1]["results"] == {"mette@kommune.dk": REFUSED}
    assert data[1]["last_error"] == "every recipient refused"
    only = json.loads(mailbot("--config", str(config), "outbox", "--state", "failed",
                              "--json").out)
    assert [row["id"] for row in only] == [1]


def test_quarantined_messages_show_sender_subject_and_the_whole_reason(
        config: Path, url: str, mailbot: MailbotRunner) -> None:
    long_reason = ("failed 3 times: UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff "
                   "in position 4711: invalid start byte while reading the attachment "
                   "Projektbeskrivelse.docx")
    _message(url, 10, state="quarantined", sender="anna@kommune.dk",
             subject="Projektforslag: Ny booking af mødelokaler", reason=long_reason)
    _message(url, 11, state="quarantined", reason=POISON, attempts=4)
    _message(url, 12, state="quarantined", raw_sha256="", content_sha256="", size=40_000_000,
             reason="message of 40000000 bytes exceeds imap.max_message_mb (26214400 bytes)")
    _message(url, 13, sender="bo@kommune.dk", subject="Status?", reason="status")
    _message(url, 14, state="quarantined", sender="cy@kommune.dk", reason="dmarc=fail for x.dk",
             imap_anomaly="not moved by mailbot: another client removed it first")
    result = mailbot("--config", str(config), "messages", "--state", "quarantined")
    assert result.code == 0, result.err
    out = result.out
    header = out.splitlines()[0]
    reason_at, subject_at, from_at = (header.index(name) for name in
                                      ("reason", "subject", "from"))
    anna = _lines_of(out, 1)
    assert anna[0][from_at:].startswith("anna@kommune.dk ")
    assert " ".join(line[subject_at:reason_at].strip() for line in anna).strip() == \
        "Projektforslag: Ny booking af mødelokaler"
    assert _joined(anna, reason_at) == long_reason
    poison = _lines_of(out, 2)
    assert poison[0][from_at:].startswith("(not parsed) ")
    assert _joined(poison, reason_at) == POISON
    assert _lines_of(out, 3)[0][from_at:].startswith("(not downloaded) ")
    assert "bo@kommune.dk" not in out
    assert _joined(_lines_of(out, 5), reason_at) == (
        "dmarc=fail for x.dk (mailbox: not moved by mailbot: another client removed it first)")


def test_messages_json(config: Path, url: str, mailbot: MailbotRunner) -> None:
    add_case(url, "ITP-2026-0001")
    _message(url, 10, sender="anna@kommune.dk", subject="Projektforslag", reason="brief",
             kind="brief", case_id=1)
    _message(url, 11, state="quarantined", reason=POISON, attempts=4)
    data = json.loads(mailbot("--config", str(config), "messages", "--json").out)
    assert [row["id"] for row in data] == [2, 1]
    poison, brief = data
    assert poison["state"] == "quarantined" and poison["parsed"] is False
    assert poison["sender"] is None and poison["subject"] is None
    assert poison["reason"] == POISON and poison["attempts"] == 4
    assert brief["sender"] == "anna@kommune.dk" and brief["subject"] == "Projektforslag"
    assert brief["case_ref"] == "ITP-2026-0001" and brief["parsed"] is True
    assert brief["fetched_at"] == "2026-03-02T11:59:00+01:00"
    only = json.loads(mailbot("--config", str(config), "messages", "--state", "quarantined",
                              "--json").out)
    assert [row["id"] for row in only] == [2]


def test_messages_says_when_the_limit_hides_some(config: Path, url: str,
                                                 mailbot: MailbotRunner) -> None:
    for uid in range(1, 5):
        _message(url, uid, sender="a@kommune.dk", reason="brief")
    out = mailbot("--config", str(config), "messages", "--limit", "3").out
    assert out.rstrip().endswith("newest 3 of 4 shown; `--limit 4` shows all")
