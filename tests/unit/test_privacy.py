"""Retention's "what is due" at clocks before and after each period, the blob reference
check, and how the access export hides other people (SCENARIOS G4, G5, G6, F7), on a real
migrated SQLite database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlmodel import Session, select

from mailbot.config import RetentionSettings, load_settings
from mailbot.db import make_engine
from mailbot.errors import ConfigError
from mailbot.models import Case, CaseDocument, CaseEvent, Outbox, RawMessage
from mailbot.privacy.gdpr import Others, exactly
from mailbot.privacy.purge import in_use
from mailbot.privacy.retention import due
from mailbot.vocabulary import PurgeKind
from tests.unit.conftest import MailbotRunner, migrated_database, write_config

if TYPE_CHECKING:
    from mailbot.app import Bot

CLOSED = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SHA_A, SHA_B = "a" * 64, "b" * 64


def _mail(case_id: int | None, sha: str, uid: int, state: str = "processed",
          at: datetime = CLOSED) -> RawMessage:
    return RawMessage(folder="INBOX", uidvalidity=1, uid=uid, message_id=f"<{uid}@x.dk>",
                      msgid_hash=f"{uid}", raw_sha256=sha, content_sha256=sha, size=10,
                      fetched_at=at, state=state, case_id=case_id, sender="mette@kommune.dk",
                      subject="Projektforslag", target_folder="Processed", moved_at=at)


@pytest.fixture
def session(tmp_path: Path) -> Session:
    """A closed case (decided at CLOSED) with one mail and one document, an open case with
    one mail, an auto-reply without a case and a quarantined mail, both fetched at CLOSED,
    one sent receipt of the closed case and one pending mail."""
    engine = make_engine(migrated_database(tmp_path))
    s = Session(engine)
    s.add(Case(id=1, ref="ITP-2026-0001", applicant_address="mette@kommune.dk", title="A",
               status="decided", decision="approved", decided_at=CLOSED, created_at=CLOSED,
               updated_at=CLOSED))
    s.add(Case(id=2, ref="ITP-2026-0002", applicant_address="anna@kommune.dk", title="B",
               status="incomplete", created_at=CLOSED, updated_at=CLOSED))
    s.add_all([_mail(1, SHA_A, 1), _mail(2, SHA_B, 2), _mail(None, "c" * 64, 3, "ignored"),
               _mail(2, "d" * 64, 4, "quarantined"), _mail(None, "e" * 64, 5, "received")])
    s.flush()
    s.add(CaseDocument(case_id=1, raw_message_id=1, filename="x.pdf", kind="other",
                       blob_sha256=SHA_B, received_at=CLOSED))
    for n, state in ((1, "sent"), (2, "pending")):
        s.add(Outbox(case_id=1, kind="receipt", message_id=f"<o{n}@bot.dk>", raw=b"x",
                     state=state, created_at=CLOSED, next_attempt_at=CLOSED))
    s.commit()
    return s


def test_nothing_is_due_before_each_period_and_everything_after_it(session: Session) -> None:
    settings = RetentionSettings(raw_days=90, case_days=730, machine_days=30)

    early = due(session, settings, "INBOX", CLOSED + timedelta(days=29))
    assert early.empty and early.raw_refs == []

    machine = due(session, settings, "INBOX", CLOSED + timedelta(days=31))
    assert machine.ids[PurgeKind.MACHINE_MAIL] == [3, 4]  # the auto-reply, the quarantined one
    assert machine.ids[PurgeKind.CASE_MAIL] == [] and machine.ids[PurgeKind.CASE] == []

    raw = due(session, settings, "INBOX", CLOSED + timedelta(days=91))
    assert raw.ids[PurgeKind.CASE_MAIL] == [1] and raw.ids[PurgeKind.DOCUMENT] == [1]
    assert raw.ids[PurgeKind.SENT_MAIL] == [1]  # the pending one is never due
    assert raw.raw_refs == ["ITP-2026-0001"] and raw.ids[PurgeKind.CASE] == []

    late = due(session, settings, "INBOX", CLOSED + timedelta(days=731))
    assert late.ids[PurgeKind.CASE] == [1] and late.anonymise_refs == ["ITP-2026-0001"]
    assert "ITP-2026-0002" not in late.raw_refs + late.anonymise_refs


def test_open_cases_and_mail_being_handled_are_never_due(session: Session) -> None:
    found = due(session, RetentionSettings(), "INBOX", CLOSED + timedelta(days=5000))
    every = [i for ids in found.ids.values() for i in ids]
    assert 2 not in found.ids[PurgeKind.CASE_MAIL]  # the open case's brief
    assert 5 not in every  # `received`: still being handled
    assert found.ids[PurgeKind.CASE] == [1]


def test_a_withdrawn_case_counts_from_its_withdrawal(session: Session) -> None:
    case = session.get(Case, 2)
    assert case is not None
    case.status = "withdrawn"
    session.add(case)
    session.add(CaseEvent(case_id=2, at=CLOSED + timedelta(days=10), kind="withdrawn"))
    session.commit()
    settings = RetentionSettings()
    assert "ITP-2026-0002" not in due(session, settings, "INBOX",
                                      CLOSED + timedelta(days=99)).raw_refs
    assert "ITP-2026-0002" in due(session, settings, "INBOX",
                                  CLOSED + timedelta(days=101)).raw_refs


def test_a_blob_is_in_use_while_any_row_not_purged_names_it(session: Session) -> None:
    assert in_use(session, SHA_B)  # the open case's mail and the closed case's document
    mail = session.get(RawMessage, 2)
    assert mail is not None
    mail.purged_at = CLOSED
    session.add(mail)
    session.commit()
    assert in_use(session, SHA_B)  # the document still names it (F7)
    document = session.get(CaseDocument, 1)
    assert document is not None
    document.purged_at = CLOSED
    session.add(document)
    session.commit()
    assert not in_use(session, SHA_B) and not in_use(session, "")


def test_retention_days_must_be_positive(tmp_path: Path) -> None:
    path = write_config(tmp_path, ("# [retention]\n# raw_days = 90",
                                   "[retention]\nraw_days = 0"))
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    assert str(path) in str(err.value) and "retention.raw_days" in str(err.value)


def test_an_address_is_found_whole_not_inside_another() -> None:
    pattern = exactly("mette@kommune.dk")
    assert pattern.search("Til: METTE@Kommune.dk, anna@kommune.dk")
    assert not pattern.search("it-mette@kommune.dk")
    assert not pattern.search("mette@kommune.dk.example")
    assert pattern.search("<mette@kommune.dk>.")


def test_other_people_are_hidden_in_an_exported_mails_headers() -> None:
    others = Others(keep=frozenset({"mette@kommune.dk", "bot@kommune.dk"}),
                    names=("Anna Berg",), placeholder="[anden person]")
    raw = (b"From: Mette Holm <mette@kommune.dk>\r\n"
           b"To: bot@kommune.dk,\r\n =?utf-8?q?S=C3=B8rensen=2C_=C3=85se?= <aase@kommune.dk>\r\n"
           b"Cc: Anna Berg <anna@kommune.dk>\r\n"
           b"Message-ID: <abc@kommune.dk>\r\n"
           b"Received: from x by y for <kurt@kommune.dk>\r\n"
           b"Subject: Til Anna Berg\r\n\r\n"
           b"Hej anna@kommune.dk\r\n")
    out = others.headers(raw).decode()
    head, _, body = out.partition("\r\n\r\n")
    assert "aase@" not in head and "S=C3=B8rensen" not in head and "kurt@" not in head
    assert "To: bot@kommune.dk, [anden person]" in head and "Cc: [anden person]" in head
    assert "From: Mette Holm <mette@kommune.dk>" in head
    assert "Message-ID: <abc@kommune.dk>" in head and "Subject: Til [anden person]" in head
    assert body == "Hej anna@kommune.dk\r\n"  # the person's own words stay as sent


def test_erasure_of_a_reviewer_reaches_every_row_that_names_them(tmp_path: Path) -> None:
    """Kurt is a reviewer on Anna's case, its system owner, and named inside the base64 text
    of an agenda the bot sent (no case): after the erasure no row names him, Anna's case
    goes on, and a mail to him alone not sent yet is given up. (No mail from Kurt is held,
    so no IMAP server is asked.)"""
    from email.message import EmailMessage

    from mailbot.app import build_bot
    from mailbot.clock import Clock
    from mailbot.db import migrate
    from mailbot.models import KitosLookup, Review
    from mailbot.privacy.gdpr import erase

    kurt = "kurt@kommune.dk"
    bot = build_bot(load_settings(write_config(tmp_path), environ={}), Clock(CLOSED))
    migrate(bot.engine)
    agenda = EmailMessage()
    agenda["To"] = "sekretaer@kommune.dk"
    agenda.set_content(f"Systemejer: Kurt ({kurt})\n" + "æ" * 80, cte="base64")
    assert kurt.encode() not in agenda.as_bytes()
    with Session(bot.engine) as s:
        s.add(Case(id=1, ref="ITP-2026-0001", applicant_address="anna@kommune.dk", title="B",
                   status="complete", created_at=CLOSED, updated_at=CLOSED,
                   system_owner=f"Kurt ({kurt})"))
        s.flush()
        s.add(Review(case_id=1, role="it_architect", recipients=[kurt, "it@kommune.dk"],
                     answered_by=kurt, comment="Godkendt.", requested_at=CLOSED))
        s.add(Outbox(kind="agenda", message_id="<a@bot.dk>", raw=agenda.as_bytes(),
                     state="sent", created_at=CLOSED, next_attempt_at=CLOSED))
        s.add(KitosLookup(name="rutenet", looked_up_at=CLOSED, owner=f"Kurt ({kurt})"))
        s.add(Outbox(case_id=1, kind="remind", message_id="<r@bot.dk>", raw=b"Til: Kurt",
                     recipients=[kurt.upper()], state="pending", created_at=CLOSED,
                     next_attempt_at=CLOSED))
        s.commit()

    dry = erase(bot, kurt, CLOSED, dry_run=True)
    assert dry.counts["reviews"] == 1
    with Session(bot.engine) as s:
        assert s.exec(select(Review)).one().answered_by == kurt

    done = erase(bot, kurt, CLOSED)
    assert done.refs == []  # he is nobody's applicant: no case anonymised
    pattern = exactly(kurt)
    with Session(bot.engine) as s:
        case = s.get(Case, 1)
        review = s.exec(select(Review)).one()
        agenda_row, remind_row = s.exec(select(Outbox).order_by(Outbox.id)).all()
        lookup = s.exec(select(KitosLookup)).one()
    assert not pattern.search(lookup.owner)
    assert case is not None and case.status == "complete"
    assert case.applicant_address == "anna@kommune.dk"
    assert not pattern.search(str(case.system_owner))
    assert review.recipients == ["[slettet person]", "it@kommune.dk"]
    assert review.answered_by == "[slettet person]" and review.comment == "Godkendt."
    assert agenda_row.raw == b""  # the stored copy named him, in base64
    assert remind_row.state == "failed" and not pattern.search(str(remind_row.recipients))


def test_the_commands_refuse_a_bad_address_and_a_running_daemon(
        tmp_path: Path, mailbot: MailbotRunner) -> None:
    from mailbot.leadership import file_lock

    config = str(write_config(tmp_path))
    bad = mailbot("gdpr", "export", "Mette <a@x.dk>, b@x.dk", "--out", "x.zip",
                  "--config", config)
    assert bad.code == 2 and "is not one e-mail address" in bad.err
    assert not (tmp_path / "data").exists()  # refused before anything was created

    empty = mailbot("retention", "run", "--config", config)
    assert empty.code == 0 and "case_mail 0" in empty.out
    with file_lock(tmp_path / "data"):  # as a running daemon holds it
        refused = mailbot("retention", "run", "--config", config)
        erasing = mailbot("gdpr", "erase", "a@x.dk", "--config", config)
        dry = mailbot("gdpr", "erase", "a@x.dk", "--dry-run", "--config", config)
    assert refused.code == 2 and "another mailbot is running" in refused.err
    assert "03:30" in refused.err and "Traceback" not in refused.err
    assert erasing.code == 2 and "stop it" in erasing.err
    assert dry.code == 0 and "nothing held" in dry.out


def test_an_applicants_export_hides_the_system_owner_and_keeps_their_own_name(
        tmp_path: Path) -> None:
    import io
    import json
    import zipfile

    from mailbot.app import build_bot
    from mailbot.clock import Clock
    from mailbot.db import migrate
    from mailbot.privacy.gdpr import export

    bot = build_bot(load_settings(write_config(tmp_path), environ={}), Clock(CLOSED))
    migrate(bot.engine)
    with Session(bot.engine) as s:
        s.add(Case(ref="ITP-2026-0001", applicant_address="Mette@Kommune.dk",
                   applicant_name="Mette Holm", title="Booking til Søren Ravn",
                   created_at=CLOSED, updated_at=CLOSED,
                   system_owner="Søren Ravn (soren@kommune.dk), Bo Hansen (bo@kommune.dk)"))
        s.commit()
    result = export(bot, "mette@kommune.dk", CLOSED)
    with zipfile.ZipFile(io.BytesIO(result.data)) as archive:
        data = json.loads(archive.read("data.json"))
        index = archive.read("indeks.txt").decode()
    [case] = data["cases"]
    assert case["applicant_name"] == "Mette Holm" and case["roles"] == ["applicant"]
    assert case["title"] == "Booking til [anden person]"
    assert "Søren" not in json.dumps(data, ensure_ascii=False)
    assert "soren@" not in json.dumps(data) and "Bo Hansen" not in json.dumps(data)
    assert "ITP-2026-0001" in index and "ansøger" in index and result.counts["cases"] == 1


# -- the tester's findings of issue #13 (F4-F9) ------------------------------------------------
def _bot(tmp_path: Path) -> Bot:
    from mailbot.app import build_bot
    from mailbot.clock import Clock
    from mailbot.db import migrate

    bot = build_bot(load_settings(write_config(tmp_path), environ={}), Clock(CLOSED))
    migrate(bot.engine)
    return bot


def test_retention_values_are_bounded_and_case_days_is_not_below_raw_days(
        tmp_path: Path) -> None:
    huge = write_config(tmp_path, ("# [retention]\n# raw_days = 90",
                                   "[retention]\nraw_days = 100000000"))
    with pytest.raises(ConfigError) as err:  # was accepted, then OverflowError in the run
        load_settings(huge, environ={})
    assert str(huge) in str(err.value) and "retention.raw_days" in str(err.value)
    assert "36500" in str(err.value)
    small = write_config(tmp_path, ("# [retention]\n# raw_days = 90",
                                    "[retention]\ncase_days = 10"), name="small.toml")
    with pytest.raises(ConfigError) as err:
        load_settings(small, environ={})
    message = str(err.value)
    assert "retention.case_days" in message and "retention.raw_days" in message
    assert "Fix" in message and "90" in message


def test_the_help_of_every_command_shows_its_bracketed_words(
        mailbot: MailbotRunner) -> None:
    """Typer's rich markup took `[retention]` and `[anden person]` for style tags (help is
    plain text since issue #16, wrapped at 80 columns whatever COLUMNS says)."""
    import re

    from typer.main import get_command

    from mailbot.cli import app

    def commands(command: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            yield from commands(sub, (*path, name))

    checked = 0
    for path, command in commands(get_command(app), ()):
        written = " ".join([command.help or "", *(getattr(p, "help", "") or ""
                                                  for p in command.params)])
        ran = mailbot(*path, "--help", env={"COLUMNS": "250"})
        shown = " ".join(ran.out.split())
        for word in re.findall(r"\\?(\[[\w -]+\])", written):
            assert word in shown, (path, word)
            checked += 1
    assert checked >= 2
    assert "[retention]" in mailbot("retention", "run", "--help", env={"COLUMNS": "250"}).out


def test_the_bots_own_message_ids_stay_in_an_export() -> None:
    others = Others(keep=frozenset({"mette@kommune.dk"}), names=(), placeholder="[anden person]",
                    bot_domain="kommune.dk")
    text = "reply to <mb.review.ITP-2026-0001.7.2525.ab.cd@kommune.dk> from anna@kommune.dk"
    assert others.text(text) == ("reply to <mb.review.ITP-2026-0001.7.2525.ab.cd@kommune.dk> "
                                 "from [anden person]")
    assert "[anden person]" in others.text("<mb.x@other.dk>")  # not ours: hidden


def test_retention_records_its_event_on_each_case_and_the_dry_run_counts_imap_copies(
        tmp_path: Path) -> None:
    from mailbot.privacy.retention import run
    from tests.unit.conftest import stored_text

    bot = _bot(tmp_path)
    with Session(bot.engine) as s:
        s.add(Case(id=1, ref="ITP-2026-0001", applicant_address="mette@kommune.dk", title="A",
                   status="decided", decision="approved", decided_at=CLOSED,
                   created_at=CLOSED, updated_at=CLOSED))
        s.flush()
        mail = _mail(1, SHA_A, 1)
        mail.target_folder = bot.settings.imap.processed_folder  # its copy is on IMAP
        s.add(mail)
        s.add(Outbox(case_id=1, kind="receipt", message_id="<o1@bot.dk>", raw=b"x",
                     recipients=["mette@kommune.dk"], state="sent", created_at=CLOSED,
                     next_attempt_at=CLOSED, results={"mette@kommune.dk": "250 accepted"},
                     last_error="mette@kommune.dk: 451 try later"))
        s.commit()
    later = CLOSED + timedelta(days=731)  # raw_days and case_days both ran out

    dry = run(bot, later, dry_run=True)
    assert "  copies on IMAP to be deleted: 1" in dry.lines()  # what the real run deletes
    with Session(bot.engine) as s:
        row = s.get(RawMessage, 1)
        assert row is not None and row.purged_at is None  # the dry run changed nothing
        row.message_id = ""  # no copy to find: the run below asks no IMAP server
        s.add(row)
        s.commit()

    run(bot, later)
    with Session(bot.engine) as s:
        events = s.exec(select(CaseEvent).where(CaseEvent.case_id == 1,
                                                CaseEvent.kind == "retention_purge")).all()
    assert [e.detail for e in events] == ["case_mail 1, sent_mail 1, case 1"]  # `case REF`
    assert "mette@kommune.dk" not in stored_text(bot.engine)  # also the delivery results


def test_erase_deletes_the_persons_files_at_once_and_leaves_the_address_in_no_row(
        tmp_path: Path) -> None:
    """Anna's open case, her brief (a blob stored a moment ago: no 10-minute grace outside
    the daemon), an attachment whose bytes Mette's mail also has, a receipt and an agenda
    with per-recipient delivery results naming her."""
    from email.message import EmailMessage

    from mailbot.privacy.gdpr import erase
    from tests.unit.conftest import stored_text

    anna = "anna@kommune.dk"
    bot = _bot(tmp_path)
    own = bot.blobs.put(b"From: Anna Berg <anna@kommune.dk>\r\n\r\nmit forslag\r\n")
    shared = bot.blobs.put(b"%PDF-1.7 the same file in two cases")
    receipt = EmailMessage()
    receipt["To"] = f"Anna Berg <{anna}>"
    receipt.set_content(f"Kære Anna Berg ({anna})\n" + "æ" * 80, cte="base64")
    with Session(bot.engine) as s:
        s.add(Case(id=1, ref="ITP-2026-0001", applicant_address=anna, applicant_name="Anna Berg",
                   title="B", status="incomplete", created_at=CLOSED, updated_at=CLOSED))
        s.add(Case(id=2, ref="ITP-2026-0002", applicant_address="mette@kommune.dk", title="A",
                   status="incomplete", created_at=CLOSED, updated_at=CLOSED))
        s.flush()
        brief = _mail(1, own, 1)
        brief.sender, brief.message_id = anna, ""  # no copy on IMAP to find
        s.add_all([brief, _mail(2, shared, 2)])
        s.flush()
        s.add(CaseDocument(case_id=1, raw_message_id=1, filename="bilag.pdf", kind="other",
                           blob_sha256=shared, received_at=CLOSED))
        s.add(Outbox(case_id=1, kind="receipt", message_id="<r@bot.dk>",
                     raw=receipt.as_bytes(), recipients=[anna], state="sent",
                     created_at=CLOSED, next_attempt_at=CLOSED, results={anna: "250 accepted"}))
        s.add(Outbox(kind="agenda", message_id="<a@bot.dk>", raw=b"x", state="failed",
                     recipients=["sekretaer@kommune.dk", anna], created_at=CLOSED,
                     next_attempt_at=CLOSED, last_error=f"{anna}: 550 5.1.1 unknown",
                     results={"sekretaer@kommune.dk": "250 accepted",
                              anna: f"550 5.1.1 <{anna}> unknown"}))
        s.add(CaseEvent(case_id=1, at=CLOSED, kind="received", detail=f"brief from {anna}"))
        s.commit()

    dry = erase(bot, anna, CLOSED, dry_run=True)
    done = erase(bot, anna, CLOSED)
    assert dry.counts == done.counts  # the dry run tells what the erasure does
    assert {k: done.counts.get(k) for k in ("cases", "mails", "attachments", "mails_sent",
                                            "events")} == {
        "cases": 1, "mails": 1, "attachments": 1, "mails_sent": 2, "events": 1}
    assert not bot.blobs.exists(own) and bot.blobs.exists(shared)  # Mette's mail needs it
    assert (done.blobs_deleted, done.blobs_kept) == (1, 1)
    assert any("blob files kept: 1" in line for line in done.lines(False))
    assert anna not in stored_text(bot.engine)  # every column of every table
    with Session(bot.engine) as s:
        agenda = s.exec(select(Outbox).where(Outbox.kind == "agenda")).one()
    assert agenda.results["sekretaer@kommune.dk"] == "250 accepted"  # the others stay
