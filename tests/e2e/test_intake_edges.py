"""Intake at the edges, on real servers: broken senders, people touching the mailbox first,
missing folders, odd dates, shared attachments, huge headers (SCENARIOS R7, I3, I4, R15, R16,
F7, P2)."""

from __future__ import annotations

import imaplib
import re
from email import message_from_bytes, policy

import pytest
from sqlmodel import Session, select

from mailbot.mailworld import PASSWORD
from mailbot.models import Case, CaseDocument, CaseEvent
from tests.conftest import World
from tests.e2e.test_reliability import case_count, rows

pytestmark = pytest.mark.e2e


def imap_as_a_person(world: World) -> imaplib.IMAP4:
    """The bot's mailbox opened by another client (Outlook, a colleague), read-write."""
    imap = imaplib.IMAP4("127.0.0.1", world.imap.port)
    imap.login(world.imap.user(world.bot_address), PASSWORD)
    return imap


def flags_in(world: World, folder: str = "INBOX") -> dict[str, set[str]]:
    """Subject -> IMAP flags of every mail in `folder` (\\Recent left out: session state)."""
    imap = imap_as_a_person(world)
    try:
        imap.select(f'"{folder}"', readonly=True)
        _, data = imap.uid("SEARCH", "ALL")
        found: dict[str, set[str]] = {}
        for uid in data[0].split():
            _, parts = imap.uid("FETCH", uid, "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            head = next(p for p in parts if isinstance(p, tuple))
            flags = re.search(rb"FLAGS \(([^)]*)\)", head[0])
            assert flags is not None
            subject = message_from_bytes(head[1], policy=policy.default)["Subject"]
            found[str(subject)] = {f.decode() for f in flags.group(1).split()} - {"\\Recent"}
        return found
    finally:
        imap.logout()


def cases_by_id(world: World) -> list[Case]:
    with Session(world.bot().engine) as session:
        return sorted(session.exec(select(Case)).all(), key=lambda c: c.id or 0)


# -- R7: one Message-ID, two different mails ------------------------------------------------
def test_same_message_id_with_other_content_is_kept_and_flagged_not_dropped(
        world: World) -> None:
    """A broken sender reuses a Message-ID for a different brief: not a duplicate. Both raw
    mails are kept, the second is recorded as a conflicting Message-ID and handled on its
    own (its own case and receipt), where a true duplicate would be dropped (R5)."""
    world.deliver(world.brief(subject="Projektforslag: Booking", message_id="<genbrugt@x.test>"))
    world.deliver(world.brief(subject="Projektforslag: Vagtplan", message_id="<genbrugt@x.test>",
                              body="Hvem: Anna\nHvad: En vagtplan.\n"))
    world.run_once()

    first, second = sorted(rows(world), key=lambda r: r.id or 0)
    assert first.msgid_hash == second.msgid_hash
    assert first.content_sha256 != second.content_sha256
    assert (first.state, second.state) == ("processed", "processed")
    assert second.duplicate_of is None
    bot = world.bot()
    assert bot.blobs.get(first.raw_sha256) != bot.blobs.get(second.raw_sha256)  # both kept
    with Session(bot.engine) as session:
        conflicts = session.exec(select(CaseEvent).where(
            CaseEvent.kind == "conflicting_message_id")).all()
    assert [e.raw_message_id for e in conflicts] == [second.id]
    assert [c.title for c in cases_by_id(world)] == ["Booking", "Vagtplan"]
    assert len(world.received_by(world.applicant)) == 2
    assert len(world.folder("Processed")) == 2


# -- I3 / I4: the mailbox's flags belong to the people who use it ----------------------------
def test_mail_a_person_already_read_is_still_ingested(world: World) -> None:
    """I3: someone opened the brief in Outlook (\\Seen) before the bot swept: it is found
    all the same (UID SEARCH ALL, not UNSEEN)."""
    world.deliver(world.brief(subject="Projektforslag: Allerede læst"))
    imap = imap_as_a_person(world)
    imap.select("INBOX")
    imap.uid("STORE", "1:*", "+FLAGS", "(\\Seen)")
    imap.logout()
    assert flags_in(world) == {"Projektforslag: Allerede læst": {"\\Seen"}}

    world.run_once()

    assert [c.title for c in cases_by_id(world)] == ["Allerede læst"]
    assert len(world.received_by(world.applicant)) == 1
    assert world.folder("INBOX") == [] and len(world.folder("Processed")) == 1


def test_fetching_sets_no_flag_until_the_bot_decides(world: World) -> None:
    """I4: a mail the bot fetched but could not handle yet (here: a broken local template
    makes the attempt fail; it stays in INBOX for the next attempt) keeps exactly the flags
    it had: unread stays unread, a person's \\Flagged stays (BODY.PEEK[])."""
    if not world.on_dovecot:
        pytest.skip("flags are checked on Dovecot")
    local = world.tmp / "templates" / "da"
    local.mkdir(parents=True)
    (local / "applicant_receipt.txt.j2").write_text("Kære {{ no_such_name }}\n", "utf-8")
    world.write_config(bot={"templates_dir": str(world.tmp / "templates")})
    world.deliver(world.brief(subject="Ulæst"))
    world.deliver(world.brief(subject="Markeret"))
    imap = imap_as_a_person(world)
    imap.select("INBOX")
    _, found = imap.uid("SEARCH", "SUBJECT", "Markeret")
    imap.uid("STORE", found[0].decode(), "+FLAGS", "(\\Flagged)")
    imap.logout()

    world.run_once()

    assert [(r.state, r.attempts) for r in rows(world)] == [("received", 1), ("received", 1)]
    assert all(r.raw_sha256 for r in rows(world))  # fetched and stored
    assert flags_in(world) == {"Ulæst": set(), "Markeret": {"\\Flagged"}}


# -- R15: the bot's folders are created when missing ----------------------------------------
def test_missing_processed_and_quarantine_folders_are_created(world: World) -> None:
    world.write_config(imap={"processed_folder": "Behandlet", "quarantine_folder": "Karantaene"})

    def folders() -> set[str]:
        imap = imap_as_a_person(world)
        try:
            _, listing = imap.list()
            return {line.decode().rsplit(" ", 1)[-1].strip('"') for line in listing
                    if isinstance(line, bytes)}
        finally:
            imap.logout()

    assert not {"Behandlet", "Karantaene"} & folders()
    world.deliver(world.brief())
    world.deliver(b"\x00 not a mail \xff\r\n\r\n")

    world.run_once()

    assert {"Behandlet", "Karantaene"} <= folders()
    assert len(world.folder("Behandlet")) == 1 and len(world.folder("Karantaene")) == 1
    assert world.folder("INBOX") == []


# -- R16: the Date header is the sender's word, not a clock ----------------------------------
def test_odd_date_headers_neither_crash_nor_reorder(world: World) -> None:
    """Briefs dated in 2099, in 1970, without a zone, with garbage and with no Date at all
    are each handled, in the order they arrived (UID), never in Date order."""
    dates = {"Fremtid": "Thu, 01 Jan 2099 00:00:00 +0000",
             "Epoke": "Thu, 01 Jan 1970 00:00:00 +0000",
             "Uden zone": "Mon, 02 Nov 2026 09:00:00",
             "Vrøvl": "i går ved frokosttid",
             "Ingen": ""}
    for subject, date in dates.items():
        raw = world.brief(subject=f"Projektforslag: {subject}", attachments=())
        replacement = f"Date: {date}\r\n".encode() if date else b""
        original = b"Date: Mon, 02 Nov 2026 09:00:00 +0100\r\n"
        assert original in raw
        raw = raw.replace(original, replacement)
        world.deliver(raw)

    world.run_once()

    assert [r.state for r in rows(world)] == ["processed"] * 5
    cases = cases_by_id(world)
    assert [c.title for c in cases] == list(dates)
    assert [c.ref for c in cases] == sorted(c.ref for c in cases)
    assert len(world.received_by(world.applicant)) == 5


# -- F7: one attachment, two mails ----------------------------------------------------------
def test_same_attachment_in_two_mails_is_stored_once_and_used_by_both_cases(
        world: World) -> None:
    shared = ("Teknisk beskrivelse.pdf",)
    world.deliver(world.brief(subject="Projektforslag: Et", attachments=shared))
    world.deliver(world.brief(subject="Projektforslag: To", attachments=shared,
                              sender=f"Anna <anna-{world.applicant}>"))
    world.run_once()

    with Session(world.bot().engine) as session:
        documents = session.exec(select(CaseDocument)).all()
    assert len({d.case_id for d in documents}) == 2
    [digest] = {d.blob_sha256 for d in documents}
    assert world.bot().blobs.get(digest) == b"%PDF-1.4 test\n"
    if world.backend == "sqlite":  # content-addressed: one file for both cases
        stored = list((world.tmp / "data" / "blobs").rglob(digest))
        assert len(stored) == 1


# -- P2: a 600 KB header block ------------------------------------------------------------------
def test_a_600_kb_header_is_quarantined_and_the_next_mail_goes_on(world: World) -> None:
    recipients = ",\r\n ".join(f"modtager{n:05d}@kommune.test" for n in range(20_000))
    huge = world.brief(subject="Projektforslag: Alle").replace(
        f"To: {world.bot_address}".encode(), f"To: {world.bot_address},\r\n {recipients}".encode())
    assert len(huge) > 600_000
    world.deliver(huge)
    world.deliver(world.brief(subject="Projektforslag: Almindelig"))

    world.run_once()

    big, normal = sorted(rows(world), key=lambda r: r.id or 0)
    assert big.state == "quarantined" and "header block of" in big.reason
    assert big.attempts == 1  # refused at once, not retried
    assert normal.state == "processed"
    assert case_count(world) == 1
    [receipt] = world.received_by(world.applicant)
    assert "Almindelig" in str(receipt["Subject"])
    assert len(world.folder("Quarantine")) == 1
