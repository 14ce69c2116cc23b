"""Personal data end to end, on real servers (Dovecot and aiosmtpd): retention removes raw
mail, attachments and the Processed copies of closed cases and keeps a blob another case
still uses, then anonymises the case; the access export holds one person's data and nobody
else's; erasure leaves an export without the address (SCENARIOS G4, G5, G6, F7)."""

from __future__ import annotations

import base64
import imaplib
import io
import quopri
import zipfile
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlmodel import Session, select

from mailbot.clock import COPENHAGEN
from mailbot.mailworld import PASSWORD
from mailbot.models import Case, CaseDocument, CaseEvent, RawMessage
from mailbot.privacy.gdpr import exactly
from mailbot.service import Service
from tests.conftest import World
from tests.e2e.test_reviews import ROLES
from tests.unit.conftest import stored_text

pytestmark = pytest.mark.e2e

T0 = datetime(2027, 2, 25, 10, 0, tzinfo=COPENHAGEN)
SHARED = "Teknisk beskrivelse.pdf"  # tests.mails.payload_for: the same bytes in both briefs
OWN = "Udkast til kontrakt.docx"


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="minutes")


def other_applicant(world: World) -> str:
    return world.applicant.replace("mette", "anna")


def colleague(world: World) -> str:
    return world.applicant.replace("mette", "kurt")


def away(world: World) -> str:
    return world.applicant.replace("mette", "ferie")


def two_cases(world: World, withdraw: bool = True) -> bytes:
    """Mette's brief (a colleague on Cc; one attachment shared with Anna's brief, one her
    own), Anna's brief, an out-of-office reply; then Mette withdraws her case. Returns
    Mette's brief."""
    mettes = world.brief(subject="Projektforslag: Mettes booking", attachments=(SHARED, OWN),
                         headers={"Cc": f"Kurt Kollega <{colleague(world)}>"})
    world.deliver(mettes)
    world.deliver(world.brief(subject="Projektforslag: Annas portal", attachments=(SHARED,),
                              sender=f"Anna Berg <{other_applicant(world)}>"))
    world.deliver(world.brief(subject="Autosvar: ude af huset", attachments=(),
                              sender=f"Ferie <{away(world)}>", body="Jeg er på ferie.",
                              headers={"Auto-Submitted": "auto-replied"}))
    world.run_once(T0)
    if withdraw:
        receipt = next(m for m in world.received_by(world.applicant)
                       if "ITP-2027-0001" in str(m["Subject"]))
        world.deliver(world.brief(subject=f"SV: {receipt['Subject']}", body="træk tilbage",
                                  attachments=(),
                                  headers={"In-Reply-To": str(receipt["Message-ID"]).strip()}))
        world.run_once(T0 + timedelta(hours=1))
        assert case(world, "ITP-2027-0001").status == "withdrawn"
    return mettes


def cases_of(world: World) -> list[Case]:
    with Session(world.bot().engine) as session:
        return list(session.exec(select(Case)).all())


def case(world: World, ref: str) -> Case:
    with Session(world.bot().engine) as session:
        found = session.exec(select(Case).where(Case.ref == ref)).first()
        assert found is not None
        return found


def digest_of(world: World, filename: str) -> str:
    """The blob hash of the document with this name (in whichever case)."""
    with Session(world.bot().engine) as session:
        digests = {d.blob_sha256 for d in session.exec(select(CaseDocument)).all()
                   if d.filename == filename}
    assert len(digests) == 1, digests
    return digests.pop()


def on_disk(world: World, digest: str) -> bool:
    """The blob is still stored (in data_dir/blobs or, with blob_store = "database", the
    blob table: the store the bot is built with)."""
    return world.bot().blobs.exists(digest)


def in_folder(world: World, folder: str, sender: str) -> int:
    """How many mails from `sender` are in the bot's `folder`: a real IMAP SELECT/SEARCH."""
    imap = imaplib.IMAP4("127.0.0.1", world.imap.port)
    try:
        imap.login(world.imap.user(world.bot_address), PASSWORD)
        status, _ = imap.select(f'"{folder}"', readonly=True)
        assert status == "OK"
        _, data = imap.uid("SEARCH", "FROM", f'"{sender}"')
        return len(data[0].split())
    finally:
        imap.logout()


def texts_of(member: bytes) -> str:
    """A ZIP member as text, lower case: its bytes, and for a mail every part decoded
    (base64, quoted-printable) and every header decoded."""
    out = [member.decode("utf-8", "replace")]
    msg = message_from_bytes(member, policy=policy.default)
    if isinstance(msg, EmailMessage) and msg.keys():
        out += [str(value) for value in msg.values()]
        for part in msg.walk():
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                out.append(payload.decode("utf-8", "replace"))
    for chunk in member.split():  # a base64 or quoted-printable line, wherever it is
        for decode in (base64.b64decode, quopri.decodestring):
            try:
                out.append(decode(chunk).decode("utf-8", "replace"))
            except ValueError:
                continue
    return "\n".join(out).lower()


def export(world: World, address: str, now: datetime) -> dict[str, str]:
    out = world.tmp / f"export-{address}.zip"
    result = world.cli("gdpr", "export", address, "--out", str(out), "--now", iso(now))
    assert result.returncode == 0, result.stderr
    with zipfile.ZipFile(io.BytesIO(Path(out).read_bytes())) as archive:
        return {name: texts_of(archive.read(name)) for name in archive.namelist()}


# -- G4 retention, F7 ------------------------------------------------------------------------
def test_retention_removes_a_closed_cases_mail_keeps_a_shared_blob_then_anonymises(
        world: World) -> None:
    mettes = two_cases(world)
    processed = world.settings().imap.processed_folder
    own, shared = digest_of(world, OWN), digest_of(world, SHARED)
    assert in_folder(world, processed, world.applicant) == 2
    assert on_disk(world, own) and on_disk(world, shared)

    dry = world.cli("retention", "run", "--dry-run", "--now", iso(T0 + timedelta(days=800)))
    assert dry.returncode == 0, dry.stderr
    assert "would remove" in dry.stdout and "ITP-2027-0001" in dry.stdout
    assert world.applicant not in dry.stdout and "Mettes booking" not in dry.stdout
    assert in_folder(world, processed, world.applicant) == 2 and on_disk(world, own)
    assert case(world, "ITP-2027-0001").applicant_address == world.applicant

    early = world.cli("retention", "run", "--now", iso(T0 + timedelta(days=89)))
    assert early.returncode == 0, early.stderr
    assert in_folder(world, processed, world.applicant) == 2 and on_disk(world, own)

    due = world.cli("retention", "run", "--dry-run", "--now", iso(T0 + timedelta(days=91)))
    ran = world.cli("retention", "run", "--now", iso(T0 + timedelta(days=91)))
    assert ran.returncode == 0, ran.stderr
    assert "case_mail 2" in ran.stdout and "ITP-2027-0001" in ran.stdout
    deleted = ran.stdout.split("copies deleted on IMAP: ")[1].split()[0]
    assert int(deleted) > 0 and f"copies on IMAP to be deleted: {deleted}" in due.stdout
    assert "retention_purge" in world.cli("case", "ITP-2027-0001").stdout  # on the case too
    assert in_folder(world, processed, world.applicant) == 0
    assert in_folder(world, processed, other_applicant(world)) == 1  # an open case: kept
    assert not on_disk(world, own)
    assert on_disk(world, shared)  # Anna's open case still needs it (F7)
    assert in_folder(world, processed, away(world)) == 0  # machine mail, 30 days
    kept = case(world, "ITP-2027-0001")
    assert kept.applicant_address == world.applicant and kept.anonymised_at is None
    with Session(world.bot().engine) as session:
        ledger = session.exec(select(RawMessage).where(RawMessage.case_id == kept.id)).all()
        events = session.exec(select(CaseEvent).where(
            CaseEvent.kind == "retention_purge")).all()
    assert all(r.purged_at and r.sender == "" and r.subject == "" and r.msgid_hash
               for r in ledger)
    listed = world.cli("messages", "--json")
    assert listed.returncode == 0 and '"sender": null' in listed.stdout
    assert "(deleted)" in world.cli("messages").stdout
    assert events and all(world.applicant not in e.detail for e in events)

    world.cli("retention", "run", "--now", iso(T0 + timedelta(days=731)))
    outbox = world.cli("outbox", "--json", "--limit", "1000")
    assert outbox.returncode == 0, outbox.stderr
    assert not exactly(world.applicant).search(outbox.stdout)  # delivery results too
    gone = case(world, "ITP-2027-0001")
    assert gone.anonymised_at is not None and gone.status == "withdrawn"
    assert world.applicant not in gone.applicant_address and gone.applicant_name == ""
    assert "booking" not in gone.title.lower()
    assert case(world, "ITP-2027-0002").applicant_address == other_applicant(world)

    # the same brief delivered again is still known by the ledger: no case, no answer
    answered = len(world.received_by(world.applicant))
    world.deliver(mettes)
    world.run_once(T0 + timedelta(days=732))
    assert len(world.received_by(world.applicant)) == answered
    assert len(cases_of(world)) == 2


def test_an_unreachable_mailbox_leaves_the_copies_for_the_next_run(world: World) -> None:
    """The IMAP server cannot be reached: the database and blob part is done, the run exits
    0 and says so, an event records it; the daemon's next run deletes the copies."""
    two_cases(world)
    processed = world.settings().imap.processed_folder
    own = digest_of(world, OWN)
    later = T0 + timedelta(days=91)

    ran = world.cli("retention", "run", "--now", iso(later), env={"MAILBOT_IMAP__PORT": "1"})
    assert ran.returncode == 0, ran.stderr
    assert "IMAP failed" in ran.stdout and "Traceback" not in ran.stderr
    assert not on_disk(world, own) and in_folder(world, processed, world.applicant) == 2
    with Session(world.bot().engine) as session:
        failed = session.exec(select(CaseEvent).where(
            CaseEvent.kind == "retention_imap_failed")).all()
    assert len(failed) == 1

    Service(world.bot(later + timedelta(days=1))).run_retention()  # the daily job
    assert in_folder(world, processed, world.applicant) == 0
    assert in_folder(world, processed, other_applicant(world)) == 1


def test_both_copies_of_a_mail_delivered_twice_go_with_its_case(world: World) -> None:
    """The same brief delivered twice (To and Cc): the second is a duplicate on the same
    case, not machine mail, so nothing goes after 30 days; both identical copies in
    Processed (one per ledger row) go with the case's raw mail."""
    mettes = world.brief(subject="Projektforslag: Mettes portal", attachments=(SHARED,))
    world.deliver(mettes)
    world.deliver(mettes)
    world.run_once(T0)
    processed = world.settings().imap.processed_folder
    assert in_folder(world, processed, world.applicant) == 2
    with Session(world.bot().engine) as session:
        states = sorted((r.state, r.case_id) for r in session.exec(select(RawMessage)).all())
    assert states == [("duplicate", 1), ("processed", 1)]
    with Session(world.bot().engine) as session:
        withdrawn = session.exec(select(Case)).one()
        withdrawn.status, withdrawn.decided_at = "withdrawn", T0
        session.add(withdrawn)
        session.commit()

    world.cli("retention", "run", "--now", iso(T0 + timedelta(days=31)))
    assert in_folder(world, processed, world.applicant) == 2
    ran = world.cli("retention", "run", "--now", iso(T0 + timedelta(days=91)))
    assert ran.returncode == 0, ran.stderr
    assert "case_mail 2" in ran.stdout and "machine_mail 0" in ran.stdout
    assert in_folder(world, processed, world.applicant) == 0


# -- G5 access export ------------------------------------------------------------------------
def test_export_holds_the_applicants_mail_and_cases_and_nobody_elses_address(
        world: World) -> None:
    two_cases(world, withdraw=False)
    members = export(world, world.applicant, T0 + timedelta(days=1))

    names = sorted(members)
    assert "indeks.txt" in names and "data.json" in names
    assert [n for n in names if n.startswith("mails/")], names
    assert [n for n in names if n.startswith("sendt/")], names
    assert {n.split("-", 1)[1] for n in names if n.startswith("bilag/")} == {
        SHARED, OWN}
    assert "itp-2027-0001" in members["indeks.txt"] and "ansøger" in members["indeks.txt"]
    assert "itp-2027-0002" not in " ".join(members.values())
    assert world.applicant in members["data.json"]
    others = [other_applicant(world), colleague(world), world.secretary,
              *(world.reviewer(role) for role in ROLES)]
    for name, text in members.items():
        for address in others:
            assert address.lower() not in text, (name, address)
    [brief] = [text for name, text in members.items() if name.startswith("mails/")]
    assert "[anden person]" in brief and "anna berg" not in brief


@pytest.mark.postgresql_only  # blob_store = "database" needs PostgreSQL (config.py)
def test_mail_stored_in_the_database_is_exported_after_switching_back_to_files(
        world: World) -> None:
    """Trial 15 F11: bot.blob_store "database" -> "files". The mail and attachments the
    table holds are still read, so the access export has the .eml and the attachments."""
    world.write_config(bot={"blob_store": "database"})
    files = (SHARED, OWN)
    world.deliver(world.brief(subject="Projektforslag: Mettes booking", attachments=files))
    world.run_once(T0)
    assert not (world.tmp / "data" / "blobs").exists()  # all of it is in the table
    world.write_config(bot={"blob_store": "files"})
    members = export(world, world.applicant, T0 + timedelta(days=1))
    assert len([n for n in members if n.startswith("mails/")]) == 1, sorted(members)
    assert {n.split("-", 1)[1] for n in members if n.startswith("bilag/")} == set(files)
    assert "ikke gemt" not in members["indeks.txt"]
    assert "kan ikke læses" not in members["indeks.txt"]


def test_export_on_a_host_that_cannot_read_the_mail_says_so_not_that_it_was_never_stored(
        world: World) -> None:
    """Trial 15 F13: mail stored in another host's data_dir/blobs (here: the blobs folder
    taken away) is listed as stored but unreadable on this server, naming bot.blob_store and
    data_dir/blobs; the old words stay for mail that was never stored."""
    import shutil

    world.write_config(bot={"blob_store": "files"})
    two_cases(world, withdraw=False)
    shutil.rmtree(world.tmp / "data" / "blobs")
    index = export(world, world.applicant, T0 + timedelta(days=1))["indeks.txt"]
    assert "kan ikke læses på denne server" in index
    assert "bot.blob_store" in index and "data_dir/blobs" in index
    assert "indholdet er ikke gemt" not in index


# -- G6 erasure ------------------------------------------------------------------------------
def test_erase_then_export_holds_nothing_of_the_address(world: World) -> None:
    two_cases(world, withdraw=False)
    now = iso(T0 + timedelta(days=2))
    processed = world.settings().imap.processed_folder
    own, shared = digest_of(world, OWN), digest_of(world, SHARED)

    dry = world.cli("gdpr", "erase", world.applicant, "--dry-run", "--now", now)
    assert dry.returncode == 0, dry.stderr
    assert "would erase" in dry.stdout and "ITP-2027-0001" in dry.stdout
    assert case(world, "ITP-2027-0001").applicant_address == world.applicant
    assert in_folder(world, processed, world.applicant) == 1 and on_disk(world, own)

    erased = world.cli("gdpr", "erase", world.applicant, "--now", now)
    assert erased.returncode == 0, erased.stderr
    mette = case(world, "ITP-2027-0001")
    assert mette.status == "withdrawn" and world.applicant not in mette.applicant_address
    assert in_folder(world, processed, world.applicant) == 0
    assert not on_disk(world, own) and on_disk(world, shared)  # Anna's case: F7
    assert case(world, "ITP-2027-0002").applicant_address == other_applicant(world)
    assert in_folder(world, processed, other_applicant(world)) == 1

    named = exactly(world.applicant)  # whole: the reviewers' addresses here contain it
    stored = stored_text(world.bot().engine)  # every column of every table, base64 decoded
    assert [line for line in stored.splitlines() if named.search(line)] == []
    assert not named.search(world.cli("outbox", "--json", "--limit", "1000").stdout)

    members = export(world, world.applicant, T0 + timedelta(days=3))
    assert list(members) == ["indeks.txt"]
    assert "ingen oplysninger" in members["indeks.txt"]
    for name, text in members.items():
        assert world.applicant.lower() not in text, name
    # Anna's own export is untouched by Mette's erasure
    assert [n for n in export(world, other_applicant(world), T0 + timedelta(days=3))
            if n.startswith("mails/")]
