"""A brief arrives, a case opens, the applicant is answered - on real IMAP and SMTP servers."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from mailbot.models import Outbox, RawMessage
from tests.conftest import World
from tests.e2e.records import cases

pytestmark = pytest.mark.e2e


def test_brief_opens_one_case_and_one_receipt_and_is_moved(world: World) -> None:
    world.deliver(world.brief())

    world.run_once()

    [case] = cases(world)
    assert case.ref.startswith("ITP-") and case.applicant_address == world.applicant
    [receipt] = world.received_by(world.applicant)
    assert receipt["Subject"] == f"[{case.ref}] Projektforslag: Ny mødebooking"
    body = receipt.get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content()
    assert case.ref in text and "Teknisk beskrivelse.pdf" in text
    assert "Din ansøgning er komplet" in text
    # the whole sentence, its subject included (the two-phase wording had lost its "vi")
    assert "Dokumenterne er sendt til vurdering, og du hører fra os" in " ".join(text.split())
    assert world.folder("INBOX") == []
    assert len(world.folder("Processed")) == 1


def test_receipt_lists_what_is_missing_once(world: World) -> None:
    body = "Hvem: Mette Holm\nHvad: Et nyt system\n"
    world.deliver(world.brief(body=body, attachments=("Teknisk beskrivelse.pdf",)))

    world.run_once()

    [receipt] = world.received_by(world.applicant)
    text = receipt.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert text.count("Der mangler stadig") == 1
    assert "Hvor i organisationen" in text and "Hvor meget koster det" in text
    assert "Udkast til kontrakt (vurderes af den kontraktansvarlige)" in text
    assert "Hvem er kontaktperson" not in text  # answered, so not missing


def test_same_mail_delivered_twice_gives_one_case_one_receipt(world: World) -> None:
    raw = world.brief(message_id="<twice@kommune.test>")
    world.deliver(raw)
    world.deliver(raw)

    world.run_once()
    world.run_once()

    assert len(cases(world)) == 1
    assert len(world.received_by(world.applicant)) == 1
    with Session(world.bot().engine) as session:
        states = sorted(r.state for r in session.exec(select(RawMessage)).all())
    assert states == ["duplicate", "processed"]
    assert len(world.folder("Processed")) == 2


def test_second_run_sends_nothing_again(world: World) -> None:
    world.deliver(world.brief())
    world.run_once()
    world.run_once()
    assert len(world.received_by(world.applicant)) == 1


def test_receipt_carries_automation_and_thread_headers(world: World) -> None:
    world.deliver(world.brief(message_id="<orig-1@kommune.test>"))
    world.run_once()
    [receipt] = world.received_by(world.applicant)
    domain = world.bot_address.partition("@")[2]
    assert receipt["Auto-Submitted"] == "auto-replied"
    assert receipt["X-Auto-Response-Suppress"] == "All"
    assert receipt["Message-ID"].endswith(f"@{domain}>")
    assert receipt["In-Reply-To"] == "<orig-1@kommune.test>"
    assert "<orig-1@kommune.test>" in receipt["References"]
    with Session(world.bot().engine) as session:
        [row] = session.exec(select(Outbox).where(Outbox.kind == "receipt")).all()
    assert row.message_id == receipt["Message-ID"] and row.state == "sent"


def test_encoded_crlf_in_subject_injects_no_header(world: World) -> None:
    raw = world.brief(subject="PLACEHOLDER").replace(
        b"Subject: PLACEHOLDER", b"Subject: =?utf-8?q?a=0D=0ABcc:x@evil.test?=")
    assert b"=0D=0ABcc" in raw
    world.deliver(raw)
    world.run_once()

    [delivered] = world.smtp.to(world.applicant)
    head = delivered.raw.split(b"\r\n\r\n", 1)[0]
    assert b"\nBcc:" not in head and b"\nbcc:" not in head.lower().replace(b"\r", b"")
    assert delivered.recipients == [world.applicant]
    assert world.smtp.to("x@evil.test") == []


def test_reply_on_the_thread_opens_no_new_case(world: World) -> None:
    world.deliver(world.brief())
    world.run_once()
    [case] = cases(world)
    [receipt] = world.received_by(world.applicant)
    reply = world.brief(subject=f"SV: {receipt['Subject']}",
                  body="Her er business casen.", attachments=(),
                  headers={"In-Reply-To": receipt["Message-ID"]})
    world.deliver(reply)

    world.run_once()

    assert len(cases(world)) == 1
    receipt, update = world.received_by(world.applicant)  # the follow-up gets a status update
    assert update["Subject"] == receipt["Subject"]
    assert "Tak, vi har opdateret sag" in update.get_body(  # type: ignore[union-attr]
        preferencelist=("plain",)).get_content()
    with Session(world.bot().engine) as session:
        kinds = [r.kind for r in session.exec(select(RawMessage)).all()]
    assert kinds == ["brief", "reply"]
    assert case.ref in world.cli("case", case.ref).stdout


def test_receipt_and_case_show_declarations_strategy_and_sbsys(world: World) -> None:
    import json

    body = (
        "Hvem: Mette Holm og 12 sagsbehandlere.\nHvad: Et nyt system.\nHvor: Borgerservice.\n"
        "Hvornår: uge 12 2027.\nHvorfor: Dobbeltbookinger.\n"
        "Hvor meget: kr. 1,5 mio., betales af Borgerservice.\n\n"
        "Systemet behandler ingen personoplysninger, så der er ingen databehandleraftale.\n"
    )
    world.deliver(world.brief(body=body, attachments=(
        "Teknisk beskrivelse.pdf", "Udkast til kontrakt.docx", "Business case.docx")))
    world.run_once()

    [receipt] = world.received_by(world.applicant)
    text = receipt.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "Udkast til databehandleraftale: ikke relevant ifølge din mail" in text
    assert "Der mangler stadig" not in text
    assert "strategisk" in text and "1.500.000 kr." in text
    assert 'skabelonen "Projekter - Projektidé og opstart"' in text
    [case] = cases(world)
    data = json.loads(world.cli("case", case.ref, "--json").stdout)
    assert data["missing"] == [] and list(data["not_applicable"]) == ["dpa_draft"]
    assert data["strategic"] is True
    assert data["when"]["start"] == "2027-03-22" and data["when"]["precision"] == "week"
    assert data["cost"]["amounts"][0]["dkk"] == 1_500_000
    assert data["cost"]["payer"] == "Borgerservice"


def test_english_brief_gets_an_english_receipt(world: World) -> None:
    body = ("Hello\n\nWho: Clara Holm, HR.\nWhat: A new e-learning platform.\nWhere: HR.\n"
            "When: Q2 2027.\nWhy: Training is tracked by hand.\nHow much: DKK 150,000.\n")
    world.deliver(world.brief(subject="New IT project: e-learning", body=body))
    world.run_once()
    [receipt] = world.received_by(world.applicant)
    text = receipt.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert text.startswith("Dear Mette Holm") and "Your application is complete" in text
    assert cases(world)[0].language == "en"


def test_english_receipt_asks_the_missing_questions_in_english(world: World) -> None:
    body = "Who: Clara Holm.\nWhat: A new platform.\nWhy: Manual tracking.\n"
    world.deliver(world.brief(subject="New IT project", body=body, attachments=()))
    world.run_once()
    [receipt] = world.received_by(world.applicant)
    text = receipt.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "Still missing:" in text
    assert "An answer to: How much does it cost, and who pays?" in text
    assert "Draft contract (reviewed by the contract manager)" in text
    assert "Hvor meget" not in text and "Udkast" not in text


def test_first_start_on_an_old_mailbox_answers_only_new_mail(world: World) -> None:
    """`imap.start_from = "now"` (the default): a mailbox with mail from before mailbot is
    connected gets no receipts for that mail; it is recorded, left in place, and the first
    new brief is answered."""
    world.write_config(imap={"start_from": "now"})
    world.deliver(world.brief(subject="Gammel 1"))
    world.deliver(world.brief(subject="Gammel 2"))
    world.run_once()
    assert world.received_by(world.applicant) == []
    assert len(world.folder("INBOX")) == 2
    world.deliver(world.brief(subject="Ny"))
    world.run_once()
    [receipt] = world.received_by(world.applicant)
    assert "Ny" in str(receipt["Subject"])
    assert len(world.folder("INBOX")) == 2 and len(world.folder("Processed")) == 1
    listing = world.cli("messages", "--state", "ignored")
    assert listing.returncode == 0 and listing.stdout.count("start_from") == 2
