"""The agenda item in the municipal form (Resumé, Sagsfremstilling, Økonomi, Indstilling,
Beslutning) in the agenda mail, its Word file and one Word file per item; and the
secretary's choice of project type in her reply. On a real SQLite database, through the
real reading, case opening, agenda and decision code; the mail is read back from the outbox
exactly as it would go to the SMTP server, and the Word files are opened with python-docx."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import docx
import pytest
from docx.document import Document
from sqlmodel import Session, col, select

from mailbot.app import Bot, build_bot
from mailbot.cases.opening import open_case
from mailbot.clock import COPENHAGEN, Clock
from mailbot.config import Settings
from mailbot.council.agenda import send_agenda
from mailbot.council.decisions import apply_decisions
from mailbot.council.meetings import CouncilCalendar, Meeting
from mailbot.db import migrate
from mailbot.intake.parse import parse
from mailbot.intake.threads import agenda_ref
from mailbot.models import Case, CaseEvent, Outbox, RawMessage, Review
from mailbot.reading.brief import read_brief
from mailbot.reading.decisions import read_decisions
from mailbot.rules import Rules
from tests.mails import brief

NOW = datetime(2027, 3, 1, 12, 5, tzinfo=COPENHAGEN)  # just after the deadline of 8 March
SECTIONS = ["Resumé", "Sagsfremstilling", "Økonomi", "Indstilling", "Beslutning"]

BOOKING = """Hej

Sagen i SBSYS: 27.00.00-G01-1-24. Systemejer: Søren Ravn.

Hvem: Anna Sørensen, teamleder i Borgerservice. Brugerne er 40 medarbejdere.
Hvad: Et nyt bookingsystem til mødelokaler (standardløsning fra Bookit ApS).
Hvor: Borgerservice.
Hvornår: I drift senest 1. marts 2027.
Hvorfor: I dag bookes lokaler i et regneark, og det giver dobbeltbookinger.
Hvor meget: 80.000 kr. i etablering og 12.000 kr. årligt; betales af Borgerservice.

Mvh Anna
"""

PAYROLL = """Hej

Hvem: Mette Holm, Løn og Personale. Brugerne er alle kommunens 2.300 ansatte.
Hvad: Opgradering af lønsystemet til ny version.
Hvor: Løn og Personale.
Hvornår: 3. kvartal 2027.
Hvorfor: Den nuværende version er ikke længere understøttet af leverandøren.
Hvor meget: kr. 1,2 mio. ekskl. moms og 20.000 kr. månedligt ekskl. moms, finansieres af \
Digitaliseringspuljen.

Mvh Mette
"""


@dataclass
class Council:
    bot: Bot
    meeting: Meeting

    def open(self, body: str, subject: str, uid: int) -> Case:
        """A case opened from a brief exactly as the daemon opens one, on the agenda."""
        mail = parse(brief(subject=subject, body=body))
        with Session(self.bot.engine) as session:
            raw = RawMessage(folder="INBOX", uidvalidity=1, uid=uid, msgid_hash=str(uid),
                             raw_sha256="", content_sha256="", size=0, fetched_at=NOW)
            session.add(raw)
            session.flush()
            case = open_case(session, self.bot, mail, raw, read_brief(mail, self.bot.rules,
                                                                      NOW.date()), NOW)
            case.meeting_date, case.ready_at, case.status = self.meeting.day, NOW, "queued"
            session.add(case)
            session.commit()
            session.refresh(case)
            return case

    def review(self, case: Case, role: str, verdict: str, comment: str, documents: str,
               state: str = "answered") -> None:
        with Session(self.bot.engine) as session:
            session.add(Review(case_id=case.id, role=role, recipients=[f"{role}@kommune.test"],
                               documents=[documents], state=state, verdict=verdict,
                               comment=comment, answered_by=f"{role}@kommune.test",
                               requested_at=NOW, answered_at=NOW))
            session.commit()

    def agenda(self, version: int = 1) -> EmailMessage:
        """Send the agenda and read the mail back from the outbox."""
        with Session(self.bot.engine) as session:
            send_agenda(session, self.bot, self.meeting, NOW, version)
            session.commit()
            row = session.exec(select(Outbox).where(Outbox.kind == "agenda")
                               .order_by(col(Outbox.id).desc())).first()
            assert row is not None
            message = message_from_bytes(row.raw, policy=policy.default)
        assert isinstance(message, EmailMessage)
        return message


@pytest.fixture
def council(tmp_path: Path) -> Iterator[Council]:
    settings = Settings.model_validate({
        "bot": {"address": "it.projekter@kommune.test", "data_dir": str(tmp_path / "data")},
        "imap": {"host": "-", "username": "-", "password": ""}, "smtp": {"host": "-"},
        "council": {"secretary": ["sekretaer@kommune.test"],
                    "strategic_board": ["sit@kommune.test"]},
    })
    bot = build_bot(settings, Clock(NOW))
    migrate(bot.engine)
    yield Council(bot, CouncilCalendar(settings.council).next_meeting(datetime(
        2027, 3, 1, 11, 0, tzinfo=COPENHAGEN)))
    bot.engine.dispose()


def word_files(message: EmailMessage) -> dict[str, Document]:
    return {str(part.get_filename()): docx.Document(io.BytesIO(part.get_content()))
            for part in message.iter_attachments()
            if str(part.get_filename()).endswith(".docx")}


def section(document: Document, heading: str) -> list[str]:
    """The paragraphs under a heading, up to the next heading of the same or a higher
    level."""
    paragraphs = document.paragraphs
    start = next(i for i, p in enumerate(paragraphs) if p.text == heading
                 and p.style.name.startswith("Heading"))
    level = paragraphs[start].style.name
    out = []
    for paragraph in paragraphs[start + 1:]:
        if paragraph.style.name.startswith("Heading") and paragraph.style.name <= level:
            break
        out.append(paragraph.text)
    return out


def plain(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content()).replace("\r\n", "\n")


def headings(document: Document) -> list[tuple[str, str]]:
    return [(p.style.name, p.text) for p in document.paragraphs
            if p.style.name.startswith("Heading")]


def test_the_mail_carries_the_agenda_and_one_word_file_per_item(council: Council) -> None:
    council.open(BOOKING, "Projektforslag: Lokalebooking", 1)
    council.open(PAYROLL, "Projektforslag: Nyt lønsystem", 2)
    names = [str(p.get_filename()) for p in council.agenda().iter_attachments()]
    assert names == ["Dagsorden 2027-03-08.docx", "Dagsordenspunkt 1 - ITP-2027-0001.docx",
                     "Dagsordenspunkt 2 - ITP-2027-0002.docx", "Bilag 2027-03-08.zip"]


def test_an_item_file_is_the_municipal_form_in_word_styles(council: Council) -> None:
    council.open(BOOKING, "Projektforslag: Lokalebooking", 1)
    item = word_files(council.agenda())["Dagsordenspunkt 1 - ITP-2027-0001.docx"]
    assert headings(item) == [("Heading 1", "1. ITP-2027-0001 Lokalebooking")] + [
        ("Heading 2", name) for name in SECTIONS]
    assert section(item, "Resumé") == [
        "Borgerservice ansøger om et nyt bookingsystem til mødelokaler (standardløsning fra "
        "Bookit ApS). Brugerne er 40 medarbejdere. I dag bookes lokaler i et regneark, og det "
        "giver dobbeltbookinger. Projektet er planlagt til 1. marts 2027 og koster 80.000 kr. "
        "som engangsudgift og 12.000 kr. om året, som betales af Borgerservice."]
    facts = section(item, "Sagsfremstilling")
    assert "Hvem: Anna Sørensen, teamleder i Borgerservice. Brugerne er 40 medarbejdere." \
        in facts
    assert "Forslag: digitaliseringsprojekt – afløser papir eller regneark: „I dag bookes " \
           "lokaler i et regneark, og det giver dobbeltbookinger“" in facts
    assert "Strategisk: nej" in facts
    assert "Systemejer: Søren Ravn – oplyst i ansøgningen" in facts
    assert "SBSYS-sagsnummer: 27.00.00-G01-1-24" in facts
    assert "Teknisk beskrivelse: Teknisk beskrivelse.pdf (v1)" in facts
    assert section(item, "Økonomi") == [
        "Engangsudgift: 80.000 kr.", "Årlig udgift: 12.000 kr.",
        "Finansiering: betales af Borgerservice",
        "Ansøgerens oplysning: „80.000 kr. i etablering og 12.000 kr. årligt; betales af "
        "Borgerservice.“"]
    assert section(item, "Indstilling") == ["IT-Projektrådet godkender projektet."]
    assert section(item, "Beslutning") == []
    bold = [run.text for p in item.paragraphs for run in p.runs if run.bold]
    assert "Hvem:" in bold and "Engangsudgift:" in bold
    bullets = [p.text for p in item.paragraphs if p.style.name == "List Bullet"]
    assert "Teknisk beskrivelse: Teknisk beskrivelse.pdf (v1)" in bullets


def test_a_strategic_item_is_recommended_on_to_sit(council: Council) -> None:
    council.open(PAYROLL, "Projektforslag: Nyt lønsystem", 1)
    message = council.agenda()
    item = word_files(message)["Dagsordenspunkt 1 - ITP-2027-0001.docx"]
    assert section(item, "Resumé") == [
        "Løn og Personale ansøger om opgradering af lønsystemet til ny version. Brugerne er "
        "alle kommunens 2.300 ansatte. Den nuværende version er ikke længere understøttet af "
        "leverandøren. Projektet er planlagt til 3. kvartal 2027 og koster 1.200.000 kr. som "
        "engangsudgift og 240.000 kr. om året (ekskl. moms), som betales af "
        "Digitaliseringspuljen."]
    facts = section(item, "Sagsfremstilling")
    assert "Forslag: it-projekt – opgradering: „Opgradering af lønsystemet til ny version“" \
        in facts
    assert any(f.startswith("Strategisk: ja – ") and f.endswith(
        "Projektet sendes efter godkendelse videre til SIT/Chefforum.") for f in facts)
    assert "Systemejer: ikke oplyst" in facts and "SBSYS-sagsnummer: ikke oplyst" in facts
    assert section(item, "Økonomi")[:3] == ["Engangsudgift: 1.200.000 kr.",
                                            "Årlig udgift: 240.000 kr.",
                                            "Beløbene er ekskl. moms."]
    assert section(item, "Indstilling") == [
        "IT-Projektrådet godkender projektet og sender det videre til SIT/Chefforum."]
    text = plain(message)
    assert "IT-Projektrådet godkender projektet og sender det videre til SIT/Chefforum." in text
    html = message.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
    assert "<h3 style=\"font-size: 11pt;\">Indstilling</h3>" in html


def test_the_whole_agenda_has_each_item_under_its_own_heading(council: Council) -> None:
    council.open(BOOKING, "Projektforslag: Lokalebooking", 1)
    council.open(PAYROLL, "Projektforslag: Nyt lønsystem", 2)
    whole = word_files(council.agenda())["Dagsorden 2027-03-08.docx"]
    assert headings(whole) == [
        ("Heading 1", "Dagsorden – IT-Projektrådets møde 8. marts 2027"),
        ("Heading 2", "1. ITP-2027-0001 Lokalebooking"),
        *[("Heading 3", name) for name in SECTIONS],
        ("Heading 2", "2. ITP-2027-0002 Nyt lønsystem"),
        *[("Heading 3", name) for name in SECTIONS]]


def test_a_short_brief_gives_a_short_resume_and_invents_nothing(council: Council) -> None:
    council.open("Hvad: RuteNet til ruteplanlægning\nHvorfor: hurtigere\n\nMvh Bo\n",
                 "Projektforslag: RuteNet", 1)
    message = council.agenda()
    item = word_files(message)["Dagsordenspunkt 1 - ITP-2027-0001.docx"]
    assert section(item, "Resumé") == [
        "Mette Holm ansøger om følgende: RuteNet til ruteplanlægning. Begrundelsen er: "
        "hurtigere."]
    assert section(item, "Økonomi") == ["Ansøgningen oplyser ikke, hvad projektet koster.",
                                        "Finansiering: ikke oplyst"]
    facts = section(item, "Sagsfremstilling")
    assert "Hvem: —" in facts and "Forslag: ikke afgjort – sekretæren vælger" in facts


def test_guidance_on_earlier_versions_and_the_final_verdicts(council: Council) -> None:
    case = council.open(BOOKING, "Projektforslag: Lokalebooking", 1)
    council.review(case, "contract_manager", "changes_requested", "Mangler exit-klausul.",
                   "Udkast til kontrakt.docx (v1)", state="superseded")
    council.review(case, "contract_manager", "approved", "Nu er den der.",
                   "Udkast til kontrakt.docx (v2)")
    message = council.agenda()
    text = plain(message)
    assert ("- den kontraktansvarlige (contract_manager@kommune.test) om Udkast til "
            "kontrakt.docx (v1): ønsker rettelser. Mangler exit-klausul.") in text
    assert "- den kontraktansvarlige (contract_manager@kommune.test): godkendt. Nu er den der." \
        in text
    facts = section(word_files(message)["Dagsordenspunkt 1 - ITP-2027-0001.docx"],
                    "Sagsfremstilling")
    assert facts.index("Vejledning (tidligere versioner):") < facts.index("Vurderinger:")


def test_many_items_go_without_a_word_file_each(council: Council) -> None:
    from mailbot.council.agenda import MAX_ITEM_FILES

    with Session(council.bot.engine) as session:
        for number in range(1, MAX_ITEM_FILES + 2):
            session.add(Case(ref=f"ITP-2027-{number:04d}", applicant_address="a@kommune.test",
                             title=f"Projekt {number}", status="queued", created_at=NOW,
                             updated_at=NOW, ready_at=NOW, meeting_date=council.meeting.day))
        session.commit()
    message = council.agenda()
    assert list(word_files(message)) == ["Dagsorden 2027-03-08.docx"]
    text = plain(message)
    assert f"med over {MAX_ITEM_FILES}\npunkter sendes punkterne ikke som hver sin Word-fil" \
        in text


# -- the secretary's choice ----------------------------------------------------------------
def _reply(text: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "sekretaer@kommune.test"
    msg["To"] = "it.projekter@kommune.test"
    msg["Subject"] = "SV: Dagsorden"
    msg["Message-ID"] = "<svar@kommune.test>"
    msg.set_content(text)
    return msg


def decide(council: Council, text: str) -> None:
    mail = parse(_reply(text).as_bytes())
    with Session(council.bot.engine) as session:
        apply_decisions(session, council.bot, agenda_ref(council.meeting.day), mail,
                        read_decisions(text, council.bot.rules), NOW)
        session.commit()


def test_the_secretary_corrects_the_type_alone_and_with_a_decision(council: Council) -> None:
    booking = council.open(BOOKING, "Projektforslag: Lokalebooking", 1)
    payroll = council.open(PAYROLL, "Projektforslag: Nyt lønsystem", 2)
    assert (booking.project_type, booking.project_type_source) == ("digitaliseringsprojekt",
                                                                   "proposed")
    decide(council, "ITP-2027-0001: it-projekt\n"
                    "ITP-2027-0002: Godkendt – sendes videre til SIT. Digitaliseringsprojekt.\n\n"
                    "Venlig hilsen\nBirgitte")
    with Session(council.bot.engine) as session:
        booking = session.get(Case, booking.id)
        payroll = session.get(Case, payroll.id)
        assert booking is not None and payroll is not None
        assert (booking.project_type, booking.project_type_source) == ("it-projekt",
                                                                       "secretary")
        assert booking.project_type_reason == "ITP-2027-0001: it-projekt"
        assert booking.decision is None  # a type alone decides nothing
        assert (payroll.project_type, payroll.decision) == ("digitaliseringsprojekt",
                                                            "forwarded")
        assert payroll.strategic and payroll.strategic_reason  # the flag and reason stay
        events = session.exec(select(CaseEvent).where(CaseEvent.kind == "project_type")
                              .order_by(col(CaseEvent.id))).all()
        assert [e.detail for e in events] == [
            "it-projekt (secretary; was digitaliseringsprojekt): ITP-2027-0001: it-projekt",
            "digitaliseringsprojekt (secretary; was it-projekt): ITP-2027-0002: Godkendt – "
            "sendes videre til SIT. Digitaliseringsprojekt."]
        # nothing was listed back to her: the type line is read
        assert session.exec(select(Outbox).where(Outbox.kind == "unmapped")).all() == []
    text = plain(council.agenda(version=2))
    assert "Projekttype: it-projekt (sekretærens valg: „ITP-2027-0001: it-projekt“)" in text


def test_several_cases_in_one_line_and_an_unknown_case(council: Council) -> None:
    council.open(BOOKING, "Projektforslag: Lokalebooking", 1)
    council.open(PAYROLL, "Projektforslag: Nyt lønsystem", 2)
    decide(council, "ITP-2027-0001 og ITP-2027-0002 er begge it-projekter.\n"
                    "ITP-2027-0099: digitaliseringsprojekt")
    with Session(council.bot.engine) as session:
        kinds = [(c.ref, c.project_type, c.project_type_source) for c in
                 session.exec(select(Case).order_by(col(Case.id))).all()]
        [listed_back] = session.exec(select(Outbox).where(Outbox.kind == "unmapped")).all()
    assert kinds == [("ITP-2027-0001", "it-projekt", "secretary"),
                     ("ITP-2027-0002", "it-projekt", "secretary")]
    mail = message_from_bytes(listed_back.raw, policy=policy.default)
    assert isinstance(mail, EmailMessage)
    assert "ITP-2027-0099: ingen sådan sag" in plain(mail)


def test_an_answer_given_later_brings_a_proposal_but_never_overrules_her(
        council: Council) -> None:
    from mailbot.cases.followup import apply_followup

    case = council.open("Hvem: Bo\nHvor: Vej og Park\n\nMvh Bo\n", "Projektforslag: Ruter", 1)
    assert (case.project_type, case.project_type_reason) == (None, "")

    def follow_up(text: str, uid: int) -> Case:
        mail = parse(brief(subject="SV: [ITP-2027-0001] Ruter", body=text, attachments=()))
        with Session(council.bot.engine) as session:
            raw = RawMessage(folder="INBOX", uidvalidity=1, uid=uid, msgid_hash=str(uid),
                             raw_sha256="", content_sha256="", size=0, fetched_at=NOW)
            session.add(raw)
            row = session.get(Case, case.id)
            assert row is not None
            apply_followup(session, council.bot, row, mail, raw, NOW)
            session.commit()
            session.refresh(row)
            return row

    updated = follow_up("Hvad: En ny version af RuteNet.\n\nMvh Bo", 2)
    assert (updated.project_type, updated.project_type_source) == ("it-projekt", "proposed")
    decide(council, "ITP-2027-0001: digitaliseringsprojekt")
    updated = follow_up("Hvorfor: Opgradering, fordi den gamle udløber.\n\nMvh Bo", 3)
    assert (updated.project_type, updated.project_type_source) == ("digitaliseringsprojekt",
                                                                   "secretary")


def test_a_sentence_under_hvor_is_not_made_the_subject(council: Council) -> None:
    council.open("Hvem: Bo Ærenlund\nHvad: En app til digitale parkeringstilladelser.\n"
                 "Hvor: Vi sidder i Vej og Park.\n\nMvh Bo\n", "Projektforslag: ParkApp", 1)
    item = word_files(council.agenda())["Dagsordenspunkt 1 - ITP-2027-0001.docx"]
    assert section(item, "Resumé") == [
        "Mette Holm ansøger om en app til digitale parkeringstilladelser."]


@pytest.mark.parametrize(("line", "owner"), [
    ("Systemejer: Søren Ravn.", "Søren Ravn"),
    ("Systemejer: Lise Lund <lise2@kommune.dk>", "Lise Lund <lise2@kommune.dk>"),
    ("Systemejer: lise3@kommune.dk.", "lise3@kommune.dk"),
    ("Systemejer er Lise Lund (lise4@kommune.dk), Vej og Park.", "Lise Lund (lise4@kommune.dk)"),
    ("Systemejer: Hanne Friis. Hun er orienteret.", "Hanne Friis"),
])
def test_a_system_owner_with_an_address_is_read_whole(line: str, owner: str,
                                                     rules: Rules) -> None:
    """A dot inside an address is not the end of the sentence: the owner's address reaches
    the review requests, the agenda and the owner's own Art. 15 export whole."""
    from mailbot.reading.brief import system_owner

    assert system_owner(f"Hvem: IT.\n{line}\n", rules) == owner
