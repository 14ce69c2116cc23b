"""Attachments that could hurt a reviewer, end to end on Dovecot (pymap without it) + aiosmtpd
(issue #13 item 4; SCENARIOS F3 macros, F4 programs, F5 caps, F6 encryption). The files are
built in the test; nothing is faked."""

from __future__ import annotations

import io
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP

import pytest
from pypdf import PdfReader, PdfWriter
from sqlmodel import Session, select

from mailbot.clock import COPENHAGEN
from mailbot.models import CaseDocument, CaseEvent
from tests.conftest import World
from tests.docs import docx, pdf
from tests.mails import COMPLETE_BODY
from tests.ole_writer import word97_with_vba
from tests.unit.test_hostile_attachments import with_parts

pytestmark = pytest.mark.e2e

FRIDAY = datetime(2027, 5, 14, 10, 0, tzinfo=COPENHAGEN)
ROLES = ("it_operations", "it_architect", "contract_manager", "security_coordinator")
PROGRAM = b"MZ\x90\x00\x03" + b"\0" * 58 + b"This program cannot be run in DOS mode.\r\n" \
    + b"\0" * 400


def encrypted_pdf(title: str) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf(title))))
    writer.encrypt(user_password="hemmeligt", owner_password="ejer")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def hostile_brief(world: World, files: dict[str, bytes]) -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = f"Mette Holm <{world.applicant}>"
    msg["To"] = world.bot_address
    msg["Subject"] = "Projektforslag: Ny mødebooking"
    msg["Message-ID"] = f"<hostile-{world.applicant}>"
    msg.set_content(COMPLETE_BODY)
    for name, payload in files.items():
        msg.add_attachment(payload, maintype="application", subtype="octet-stream",
                           filename=name)
    return msg.as_bytes()


def docm_contract() -> bytes:
    return with_parts(docx("Udkast til kontrakt", "Parter\nVederlag\nLeverance"),
                      {"word/vbaProject.bin": word97_with_vba()})


THREE_HOSTILE = {
    "Udkast til kontrakt.docm": docm_contract(),
    "Teknisk beskrivelse.pdf": encrypted_pdf("Teknisk beskrivelse"),
    "Databehandleraftale udkast.pdf": PROGRAM,  # an .exe renamed .pdf
    "Business case.docx": docx("Business case"),
}


def text_of(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain",))
    assert part is not None
    return " ".join(str(part.get_content()).split())  # lines joined: wrapping is not the test


def html_of(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


def names_sent(world: World) -> dict[str, list[str]]:
    """Every reviewer's received attachments, by role."""
    return {role: [str(p.get_filename()) for m in world.received_by(world.reviewer(role))
                   for p in m.iter_attachments()] for role in ROLES}


def test_a_macro_contract_an_encrypted_pdf_and_a_disguised_program(world: World) -> None:
    """Under `macros = "warn"` (the default): the .docm goes to the contract manager with the
    warning; the encrypted technical description and the program named like the DPA go to
    nobody, count as nothing, and the receipt's one list says what to send instead."""
    world.deliver(hostile_brief(world, THREE_HOSTILE))
    world.run_once(FRIDAY)

    [receipt] = world.received_by(world.applicant)
    text = text_of(receipt)
    assert text.count("Der mangler stadig") == 1
    received, _, missing = text.partition("Der mangler stadig")
    assert ("Udkast til kontrakt.docm (Udkast til kontrakt) – indeholder makroer: åbn den "
            "ikke med makroer slået til") in received
    assert "Business case.docx (Business case)" in received
    assert "Teknisk beskrivelse.pdf (" not in received  # never classified by its name
    # one item per gap: the document still missing, then the held file meant as it
    assert ("- Teknisk beskrivelse (vurderes af IT-drift og IT-arkitekten): Teknisk "
            "beskrivelse.pdf kan ikke læses (krypteret) – send den uden adgangskode") in missing
    assert ("- Udkast til databehandleraftale (vurderes af "
            "informationssikkerhedskoordinatoren): Databehandleraftale udkast.pdf er et "
            "program og ikke et dokument, så den er ikke sendt videre – send dokumentet som "
            "PDF eller Word-fil") in missing
    assert missing.count("Teknisk beskrivelse") == 2  # the document and the file, once each
    assert "Din ansøgning er komplet" not in text
    assert "kan ikke læses (krypteret)" in html_of(receipt)

    sent = names_sent(world)
    assert sent == {"it_operations": [], "it_architect": [],
                    "contract_manager": ["Udkast til kontrakt.docm"],
                    "security_coordinator": []}
    [request] = world.received_by(world.reviewer("contract_manager"))
    assert ("ADVARSEL: filen indeholder makroer: åbn den ikke med makroer slået til."
            in text_of(request))
    assert "ADVARSEL: filen indeholder makroer" in html_of(request)

    with Session(world.bot().engine) as session:
        rows = {d.filename: d for d in session.exec(select(CaseDocument)).all()}
        [opened] = session.exec(select(CaseEvent).where(CaseEvent.kind == "case_opened")).all()
    assert (rows["Teknisk beskrivelse.pdf"].hazard, rows["Teknisk beskrivelse.pdf"].held,
            rows["Teknisk beskrivelse.pdf"].kind) == ("encrypted", True, "other")
    assert (rows["Databehandleraftale udkast.pdf"].hazard,
            rows["Databehandleraftale udkast.pdf"].held) == ("executable", True)
    assert (rows["Udkast til kontrakt.docm"].hazard, rows["Udkast til kontrakt.docm"].held,
            rows["Udkast til kontrakt.docm"].kind) == ("macro", False, "contract_draft")
    assert "held: Teknisk beskrivelse.pdf (encrypted)" in opened.detail
    shown = world.cli("case", "ITP-2027-0001")
    assert shown.returncode == 0, shown.stderr
    assert "Teknisk beskrivelse.pdf  [other]  held: encrypted" in shown.stdout
    assert "Udkast til kontrakt.docm  [contract_draft]  macro" in shown.stdout


def test_under_quarantine_the_macro_file_is_held_and_a_version_without_is_asked_for(
        world: World) -> None:
    world.write_config(attachments={"macros": "quarantine"})
    world.deliver(hostile_brief(world, THREE_HOSTILE))
    world.run_once(FRIDAY)

    [receipt] = world.received_by(world.applicant)
    _, _, missing = text_of(receipt).partition("Der mangler stadig")
    assert ("- Udkast til kontrakt (vurderes af den kontraktansvarlige): Udkast til "
            "kontrakt.docm er ikke sendt videre, fordi den indeholder makroer – send en udgave "
            "uden makroer (fx PDF eller .docx)") in missing
    assert names_sent(world) == {role: [] for role in ROLES}


def test_attachments_beyond_the_caps_are_listed_not_stored(world: World) -> None:
    """F5: with max_count = 2 the case opens from the text and the first two files; the two
    later ones are not stored or forwarded, and the receipt says why."""
    world.write_config(attachments={"max_count": 2})
    files = {"Teknisk beskrivelse.pdf": pdf("Teknisk beskrivelse"),
             "Business case.docx": docx("Business case"),
             "Udkast til kontrakt.pdf": pdf("Udkast til kontrakt"),
             "Databehandleraftale udkast.pdf": pdf("Databehandleraftale")}
    world.deliver(hostile_brief(world, files))
    world.run_once(FRIDAY)

    [receipt] = world.received_by(world.applicant)
    _, _, missing = text_of(receipt).partition("Der mangler stadig")
    for name in ("Udkast til kontrakt.pdf", "Databehandleraftale udkast.pdf"):
        # said after the document it was meant to be (one item per gap)
        assert (f"): {name} er ikke modtaget, fordi mailen havde mere end 2 vedhæftede filer "
                "– send den som svar på denne mail") in missing
    sent = names_sent(world)
    assert sent["it_operations"] == ["Teknisk beskrivelse.pdf"]
    assert sent["contract_manager"] == [] and sent["security_coordinator"] == []
    with Session(world.bot().engine) as session:
        refused = [d for d in session.exec(select(CaseDocument)).all() if d.held]
    assert sorted((d.filename, d.hazard, d.blob_sha256) for d in refused) == [
        ("Databehandleraftale udkast.pdf", "too_many", ""),
        ("Udkast til kontrakt.pdf", "too_many", "")]


def test_a_held_file_in_a_reply_is_listed_in_the_update_and_not_routed(world: World) -> None:
    """A reply on the case's thread with an encrypted new contract: the update's list says
    so, the contract manager gets no new request, the old version stays current."""
    from email import message_from_bytes, policy

    from tests.e2e.test_reviews import reply

    world.deliver(world.brief())
    world.run_once(FRIDAY)
    [receipt] = world.received_by(world.applicant)
    raw = reply(world, receipt, f"Mette Holm <{world.applicant}>",
                "Hej\n\nHer er den nye version af kontrakten.\n\nMette")
    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    msg.add_attachment(encrypted_pdf("Udkast til kontrakt"), maintype="application",
                       subtype="pdf", filename="Udkast til kontrakt v2.pdf")
    world.deliver(msg.as_bytes())
    world.run_once(FRIDAY.replace(hour=11))

    [_, update] = world.received_by(world.applicant)
    text = text_of(update)
    assert ("- Udkast til kontrakt v2.pdf kan ikke læses (krypteret) – send den uden "
            "adgangskode") in text
    assert "Udkast til kontrakt.docx (Udkast til kontrakt, version 1)" in text
    [request] = world.received_by(world.reviewer("contract_manager"))  # no second request
    assert [str(p.get_filename()) for p in request.iter_attachments()] == [
        "Udkast til kontrakt.docx"]


def test_a_held_final_contract_comes_first_in_the_klarmelding_answer(world: World) -> None:
    """Two phases: a klarmelding whose final contract is encrypted; the answer's one list
    names the final contract as still missing and, on the same line, the file and why."""
    from email import message_from_bytes, policy

    from tests.e2e.test_council_phases import at, guidance_from_everyone, two_phases

    two_phases(world)
    guidance_from_everyone(world, at(25, 11))
    world.run_once(at(25, 11, 10))  # the guidance goes out
    receipt = world.received_by(world.applicant)[0]
    msg = message_from_bytes(world.brief(
        subject=f"SV: {receipt['Subject']}",
        body="Hej\n\nHermed klarmelder jeg sagen med de endelige dokumenter.\n",
        attachments=("Databehandleraftale endelig.pdf",),
        headers={"In-Reply-To": str(receipt["Message-ID"]).strip()}), policy=policy.default)
    assert isinstance(msg, EmailMessage)
    msg.add_attachment(encrypted_pdf("Kontrakt"), maintype="application", subtype="pdf",
                       filename="Kontrakt endelig.pdf")
    world.deliver(msg.as_bytes())
    world.run_once(at(26, 10))

    answer = world.received_by(world.applicant)[-1]
    text = text_of(answer)
    assert "Tak for klarmeldingen" in text
    listed = text.partition("mangler dette:")[2]
    # one item for the one gap: the final contract, with the held file meant as it
    assert listed.startswith(" - Endelig kontrakt (vurderes af den kontraktansvarlige): Kontrakt "
                             "endelig.pdf kan ikke læses (krypteret) – send den uden adgangskode")
    assert listed.count("Endelig kontrakt") == 1


def test_a_document_inside_a_zip_reaches_the_reviewer_as_itself(world: World) -> None:
    """Issue #13 trial F10: bilag.zip holding the technical description; IT-drift and the
    IT-arkitekt receive the PDF under its own (redacted) name, not the ZIP named .pdf."""
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("Teknisk beskrivelse 010190-1234.pdf", pdf("Teknisk beskrivelse"))
    world.deliver(hostile_brief(world, {"bilag.zip": buffer.getvalue()}))
    world.run_once(FRIDAY)

    for role in ("it_operations", "it_architect"):
        [request] = world.received_by(world.reviewer(role))
        [part] = list(request.iter_attachments())
        assert part.get_filename() == "Teknisk beskrivelse XXXXXX-XXXX.pdf"
        assert part.get_content_type() == "application/pdf"
        assert part.get_content().startswith(b"%PDF")
    [receipt] = world.received_by(world.applicant)
    assert "De dokumenter, vi har, er sendt til vurdering." in text_of(receipt)
