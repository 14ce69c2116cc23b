"""The weekly agenda and the council's decisions, end to end with `now` moved."""

from __future__ import annotations

import io
import signal
import zipfile
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import make_msgid

import docx
import pytest
from sqlmodel import Session, select

from mailbot.cases.opening import MAX_TITLE_CHARS, title_from_subject
from mailbot.clock import COPENHAGEN
from mailbot.models import Agenda, Case, RawMessage
from tests.conftest import World
from tests.e2e.test_reviews import ROLES, body_of, reply, request_for

pytestmark = pytest.mark.e2e

THURSDAY = datetime(2027, 2, 25, 10, 0, tzinfo=COPENHAGEN)
DEADLINE = datetime(2027, 3, 1, 12, 0, tzinfo=COPENHAGEN)  # Monday; meeting Monday 8 March


def at(hour: int, minute: int, day: datetime = DEADLINE) -> datetime:
    return day.replace(hour=hour, minute=minute)


def ready_case(world: World, approved_at: datetime, subject: str = "Projektforslag: Booking",
               body: str | None = None) -> None:
    """A complete brief whose four reviews are all approved at `approved_at`."""
    kwargs = {"subject": subject} if body is None else {"subject": subject, "body": body}
    world.deliver(world.brief(**kwargs))
    world.run_once(THURSDAY)
    for role in ROLES:
        world.deliver(reply(world, request_for(world, role), world.reviewer(role),
                            "Godkendt, men husk dokumentationen." if role == "it_architect"
                            else "Godkendt."))
    world.run_once(approved_at)


def agendas_received(world: World, meeting: str = "8. marts 2027") -> list[EmailMessage]:
    """Agenda mails (first and updated) for one meeting that reached the secretary."""
    return [m for m in world.received_by(world.secretary)
            if "agsorden" in str(m["Subject"]) and meeting in str(m["Subject"])]


def case(world: World, ref: str = "ITP-2027-0001") -> Case:
    with Session(world.bot().engine) as session:
        found = session.exec(select(Case).where(Case.ref == ref)).first()
        assert found is not None
        return found


def test_ready_at_1159_goes_on_that_agenda(world: World) -> None:
    ready_case(world, at(11, 59))
    assert case(world).meeting_date.isoformat() == "2027-03-08"  # type: ignore[union-attr]
    meeting_mail = [m for m in world.received_by(world.applicant)
                    if "sat på dagsordenen" in body_of(m)]
    assert meeting_mail and "8. marts 2027" in body_of(meeting_mail[0])
    world.run_once(at(12, 5))
    [agenda] = agendas_received(world)
    text = body_of(agenda)
    assert "ITP-2027-0001 Booking" in text and "Hvem: Mette Holm" in text
    assert "IT-arkitekten" in text and "husk dokumentationen" in text
    assert "Teknisk beskrivelse.pdf (v1)" in text


def test_ready_at_1201_goes_on_the_next_agenda(world: World) -> None:
    ready_case(world, at(12, 1))
    assert case(world).meeting_date.isoformat() == "2027-03-15"  # type: ignore[union-attr]


def test_exactly_one_agenda_for_two_runs_at_1205(world: World) -> None:
    world.write_config(council={"empty_agenda": "send"})
    ready_case(world, at(11, 0))
    for _ in range(2):
        result = world.cli("--now", "2027-03-01T12:05", "run", "--once")
        assert result.returncode == 0, result.stderr
    assert len(agendas_received(world)) == 1


def test_killed_while_building_the_agenda_then_restarted(world: World) -> None:
    ready_case(world, at(11, 0))
    died = world.cli("--now", "2027-03-01T12:05", "run", "--once",
                     env={"MAILBOT_CRASH_AT": "building_agenda"})
    assert died.returncode == -signal.SIGKILL
    assert agendas_received(world) == []
    assert world.cli("--now", "2027-03-01T12:06", "run", "--once").returncode == 0
    assert world.cli("--now", "2027-03-01T12:07", "run", "--once").returncode == 0
    assert len(agendas_received(world)) == 1


def test_daemon_down_at_noon_sends_the_agenda_at_two(world: World) -> None:
    ready_case(world, at(11, 0))
    world.run_once(at(11, 30))
    assert agendas_received(world) == []
    world.run_once(at(14, 0))
    world.run_once(at(14, 5))
    assert len(agendas_received(world)) == 1
    with Session(world.bot().engine) as session:
        [row] = session.exec(select(Agenda).where(
            Agenda.meeting_date == DEADLINE.date().replace(day=8))).all()
    assert row.case_refs == ["ITP-2027-0001"]


def test_agenda_has_a_docx_with_every_item_and_escapes_html(world: World) -> None:
    hostile = "Projektforslag: <script>alert(1)</script> {{ 7*7 }}"
    ready_case(world, at(10, 0), subject=hostile)
    world.deliver(world.brief(subject="Projektforslag: Ufærdig", attachments=()))
    world.run_once(at(10, 30))
    world.run_once(at(12, 5))
    [agenda] = agendas_received(world)
    html = agenda.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
    assert "<script>" not in html
    # the title as written, escaped and not evaluated ("{{ 7*7 }}" must not become 49)
    assert "&lt;script&gt;alert(1)&lt;/script&gt; {{ 7*7 }}" in html
    words = {str(p.get_filename()): docx.Document(io.BytesIO(p.get_content()))
             for p in agenda.iter_attachments() if str(p.get_filename()).endswith(".docx")}
    text = "\n".join(p.text for p in words["Dagsorden 2027-03-08.docx"].paragraphs)
    assert "ITP-2027-0001" in text and "<script>" in text  # literal text in Word, not markup
    assert "Sager, der ikke er klar" in text and "ITP-2027-0002" in text
    item = "\n".join(p.text for p in words["Dagsordenspunkt 1 - ITP-2027-0001.docx"].paragraphs)
    assert "<script>alert(1)</script> {{ 7*7 }}" in item
    zips = [p for p in agenda.iter_attachments() if str(p.get_filename()).endswith(".zip")]
    assert len(zips) == 1


def test_agenda_item_in_the_municipal_form_and_the_secretarys_project_type(
        world: World) -> None:
    """The item as the municipality's other councils write it, in the mail, in the whole
    agenda's Word file and in a Word file of its own; the bot's proposal on it, and the
    secretary's correction in her reply recorded."""
    ready_case(world, at(10, 0))
    world.run_once(at(12, 5))
    [agenda] = agendas_received(world)
    text = body_of(agenda)
    for heading in ("RESUMÉ", "SAGSFREMSTILLING", "ØKONOMI", "INDSTILLING", "BESLUTNING"):
        assert f"   {heading}\n" in text.replace("\r\n", "\n")
    assert "Forslag: it-projekt – nyt system eller tilkøb: „Et nyt system til booking af " \
           "mødelokaler“" in text
    assert "IT-Projektrådet godkender projektet." in text
    words = {str(p.get_filename()): docx.Document(io.BytesIO(p.get_content()))
             for p in agenda.iter_attachments() if str(p.get_filename()).endswith(".docx")}
    assert list(words) == ["Dagsorden 2027-03-08.docx",
                           "Dagsordenspunkt 1 - ITP-2027-0001.docx"]
    item = words["Dagsordenspunkt 1 - ITP-2027-0001.docx"]
    assert [(p.style.name, p.text) for p in item.paragraphs
            if p.style.name.startswith("Heading")] == [
        ("Heading 1", "1. ITP-2027-0001 Booking"), ("Heading 2", "Resumé"),
        ("Heading 2", "Sagsfremstilling"), ("Heading 2", "Økonomi"),
        ("Heading 2", "Indstilling"), ("Heading 2", "Beslutning")]
    resume = item.paragraphs[[p.text for p in item.paragraphs].index("Resumé") + 1].text
    assert resume == ("Borgerservice ansøger om et nyt system til booking af mødelokaler. "
                      "Brugerne er 12 medarbejdere. Begrundelsen er: Dobbeltbookinger i dag. "
                      "Projektet er planlagt til 1. marts 2027 og koster 50.000 kr. som "
                      "engangsudgift, som betales af Borgerservice.")

    world.deliver(_decision_reply(world, agenda, world.secretary,
                                  "ITP-2027-0001: Godkendt. Digitaliseringsprojekt."))
    world.run_once(at(10, 0, DEADLINE.replace(day=8)))
    decided = case(world)
    assert decided.decision == "approved"
    assert (decided.project_type, decided.project_type_source) == ("digitaliseringsprojekt",
                                                                   "secretary")
    shown = world.cli("case", "ITP-2027-0001").stdout
    assert "type:      digitaliseringsprojekt (secretary: ITP-2027-0001: Godkendt. " \
           "Digitaliseringsprojekt.)" in shown


def _decision_reply(world: World, agenda: EmailMessage, sender: str, text: str,
                    thread: bool = True) -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = sender
    msg["To"] = world.bot_address
    msg["Subject"] = f"SV: {agenda['Subject']}"
    msg["Message-ID"] = make_msgid(domain="kommune.test")
    if thread:
        msg["In-Reply-To"] = str(agenda["Message-ID"]).strip()
        msg["References"] = str(agenda["Message-ID"]).strip()
    quoted = "\n".join(f"> {line}" for line in body_of(agenda).splitlines())
    msg.set_content(f"{text}\n\nVenlig hilsen\nBirgitte\n\n{quoted}")
    return msg.as_bytes()


def _three_cases_on_one_agenda(world: World) -> EmailMessage:
    strategic = ("Hvem: Mette Holm\nHvad: Nyt lønmodul\nHvor: Løn\nHvornår: 1. januar 2028\n"
                 "Hvorfor: Fejl\nHvor meget: kr. 2,4 mio.\n\nProjektet er strategisk.\n")
    for subject, body in (("Projektforslag: A", None), ("Projektforslag: B", None),
                          ("Projektforslag: C", strategic)):
        world.deliver(world.brief(subject=subject, **({"body": body} if body else {})))
        world.run_once(THURSDAY)
    for role in ROLES:
        requests = [m for m in world.received_by(world.reviewer(role))
                    if "Anmodning om vurdering" in str(m["Subject"])]
        for request in requests:
            world.deliver(reply(world, request, world.reviewer(role), "Godkendt."))
    world.run_once(at(11, 0))
    world.run_once(at(12, 5))
    [agenda] = agendas_received(world)
    return agenda


def test_decisions_are_applied_told_and_forwarded(world: World) -> None:
    agenda = _three_cases_on_one_agenda(world)
    text = ("Hej alle\n\nRådet traf følgende beslutninger:\n\n"
            "ITP-2027-0001 A: Godkendt.\n\n"
            "ITP-2027-0002 B: Udsat. Borgerservice undersøger leverandøren, og sagen kommer\n"
            "på igen på næste møde.\n\n"
            "ITP-2027-0003 C: Godkendt. Da projektet er strategisk, sendes det videre til SIT.\n\n"
            "ITP-2027-0004 D: Vi snakkede om det.\n")
    world.deliver(_decision_reply(world, agenda, world.secretary, text))
    world.run_once(at(10, 0, DEADLINE.replace(day=8)))

    assert case(world, "ITP-2027-0001").decision == "approved"
    assert case(world, "ITP-2027-0002").decision is None
    assert case(world, "ITP-2027-0002").meeting_date.isoformat() == "2027-03-15"  # type: ignore[union-attr]
    assert case(world, "ITP-2027-0003").decision == "forwarded"
    decisions = [body_of(m) for m in world.received_by(world.applicant)
                 if "Beslutning:" in body_of(m)]
    assert len(decisions) == 2
    assert any("flyttet til IT-Projektrådets møde 15. marts 2027" in body_of(m)
               for m in world.received_by(world.applicant))
    [bundle] = world.received_by(f"sit-{world.applicant}")
    assert "ITP-2027-0003" in str(bundle["Subject"])
    assert len(list(bundle.iter_attachments())) == 4
    listed_back = [m for m in world.received_by(world.secretary)
                   if "ikke kunne læses" in str(m["Subject"])]
    assert len(listed_back) == 1 and "ITP-2027-0004 D: Vi snakkede om det." in body_of(
        listed_back[0])
    json_out = world.cli("case", "ITP-2027-0003", "--json").stdout
    assert '"decision": "forwarded"' in json_out and '"meeting": "2027-03-08"' in json_out


def test_decisions_from_others_or_without_the_agenda_are_not_applied(world: World) -> None:
    agenda = _three_cases_on_one_agenda(world)
    world.deliver(_decision_reply(world, agenda, "formand@kommune.test",
                                  "ITP-2027-0001: Godkendt."))
    world.deliver(_decision_reply(world, agenda, world.secretary, "ITP-2027-0002: Godkendt.",
                                  thread=False))
    world.run_once(at(10, 0, DEADLINE.replace(day=8)))
    assert case(world, "ITP-2027-0001").decision is None
    assert case(world, "ITP-2027-0002").decision is None
    assert not any("Beslutning:" in body_of(m) for m in world.received_by(world.applicant))


def test_a_spoofed_decision_mail_failing_dmarc_is_quarantined_and_decides_nothing(
        world: World) -> None:
    """A5: someone forges the secretary's From: on a reply to the real agenda mail (its
    signed Message-ID copied from a leaked or forwarded agenda). Our server's own
    Authentication-Results says dmarc=fail, although the forger's DKIM signature for their
    own domain passes: no case is decided, the mail is quarantined with the reason, and the
    secretary is told ONCE however often the forger tries."""
    world.write_config(security={"authserv_id": ["mx.kommune.test"]})
    ready_case(world, at(11, 0))
    world.run_once(at(12, 5))
    [agenda] = agendas_received(world)
    to_applicant = len(world.received_by(world.applicant))
    to_secretary = len(world.received_by(world.secretary))
    for minute in (0, 2):
        spoofed = _decision_reply(world, agenda, world.secretary, "ITP-2027-0001: Godkendt.")
        world.deliver(b"Authentication-Results: mx.kommune.test; dkim=pass "
                      b"header.d=angriber.test; spf=pass smtp.mailfrom=angriber.test;"
                      b" dmarc=fail (p=none) header.from=kommune.test\r\n" + spoofed)
        world.run_once(at(10, minute, DEADLINE.replace(day=8)))

    assert case(world).decision is None
    assert len(world.received_by(world.applicant)) == to_applicant
    with Session(world.bot().engine) as session:
        rows = session.exec(select(RawMessage).where(
            RawMessage.state == "quarantined")).all()
    assert [r.reason.startswith("dmarc=fail for kommune.test") for r in rows] == [True, True]
    assert len(world.folder("Quarantine")) == 2
    [notice] = world.received_by(world.secretary)[to_secretary:]
    assert "svar på dagsordenen" in str(notice["Subject"])
    assert "DMARC fejlede for kommune.test" in body_of(notice)
    assert notice["Auto-Submitted"] == "auto-generated"
    # the same mail without the failing verdict is the secretary's decision
    world.deliver(_decision_reply(world, agenda, world.secretary, "ITP-2027-0001: Godkendt."))
    world.run_once(at(10, 5, DEADLINE.replace(day=8)))
    assert case(world).decision == "approved"


def test_late_addition_sends_an_updated_agenda(world: World) -> None:
    world.write_config(council={"empty_agenda": "send"})
    world.deliver(world.brief(subject="Projektforslag: Sen", attachments=()))
    world.run_once(THURSDAY)
    world.run_once(at(12, 5))
    [first] = agendas_received(world)
    assert "Ingen punkter" in body_of(first)
    world.deliver(_decision_reply(world, first, world.secretary, "tilføj ITP-2027-0001"))
    world.run_once(at(13, 0))
    first, updated = agendas_received(world)
    assert "Opdateret dagsorden" in str(updated["Subject"])
    assert "ITP-2027-0001 Sen" in body_of(updated)
    assert case(world).meeting_date.isoformat() == "2027-03-08"  # type: ignore[union-attr]


def test_applicant_can_postpone_and_withdraw(world: World) -> None:
    ready_case(world, at(11, 0))
    meeting_mail = next(m for m in world.received_by(world.applicant)
                    if "sat på dagsordenen" in body_of(m))
    msg = world.brief(subject=f"SV: {meeting_mail['Subject']}", body="udsæt", attachments=(),
                      headers={"In-Reply-To": str(meeting_mail["Message-ID"]).strip()})
    world.deliver(msg)
    world.run_once(at(11, 30))
    assert case(world).meeting_date.isoformat() == "2027-03-15"  # type: ignore[union-attr]
    world.deliver(world.brief(subject=f"SV: {meeting_mail['Subject']}", body="træk tilbage",
                              attachments=(),
                              headers={"In-Reply-To": str(meeting_mail["Message-ID"]).strip()}))
    world.run_once(at(11, 40))
    assert case(world).status == "withdrawn"
    world.run_once(at(12, 5))
    assert agendas_received(world) == []


def test_agenda_command_previews_and_sends(world: World) -> None:
    ready_case(world, at(11, 0))
    preview = world.cli("--now", "2027-03-01T11:30", "agenda", "--meeting", "2027-03-08")
    assert preview.returncode == 0, preview.stderr
    assert "Dagsorden - IT-Projektrådets møde 8. marts 2027" in preview.stdout
    assert "ITP-2027-0001" in preview.stdout
    assert agendas_received(world) == []  # a preview sends nothing
    sent = world.cli("--now", "2027-03-01T11:30", "agenda", "--meeting", "2027-03-08", "--send")
    assert sent.returncode == 0, sent.stderr
    assert len(agendas_received(world)) == 1
    world.run_once(at(12, 5))  # the deadline job sees it has gone out
    assert len(agendas_received(world)) == 1
    calendar = world.cli("calendar", "--year", "2027")
    assert "2027-05-18" in calendar.stdout and "helligdag" in calendar.stdout


def test_five_hundred_cases_on_one_agenda_are_all_listed(world: World) -> None:
    """X5: a week with 500 cases ready, one titled from a 10 KB subject: the agenda renders,
    every case is listed in the mail and in the Word document, the long title is cut, and
    the mail stays a sane size."""
    world.run_once(THURSDAY)  # the installation's first run, before the deadline
    meeting = DEADLINE.date().replace(day=8)
    refs = [f"ITP-2027-{n:04d}" for n in range(1, 501)]
    titles = [title_from_subject("Projektforslag: " + "lang " * 2_000)] + [
        f"Projekt {n}" for n in range(2, 501)]
    assert len(titles[0]) <= MAX_TITLE_CHARS
    with Session(world.bot().engine) as session:
        for ref, title in zip(refs, titles, strict=True):
            session.add(Case(ref=ref, applicant_address=world.applicant, title=title,
                             status="ready", created_at=THURSDAY, updated_at=THURSDAY,
                             ready_at=THURSDAY, meeting_date=meeting))
        session.commit()
    world.run_once(at(12, 5))
    [agenda] = agendas_received(world)
    text = body_of(agenda)
    assert all(f"{ref} {title}" in text for ref, title in zip(refs, titles, strict=True))
    assert max(len(line) for line in text.splitlines()) < 300
    [word] = [p for p in agenda.iter_attachments() if str(p.get_filename()).endswith(".docx")]
    document = docx.Document(io.BytesIO(word.get_content()))  # the whole agenda only (X5)
    paragraphs = "\n".join(p.text for p in document.paragraphs)
    assert all(ref in paragraphs for ref in refs)
    size = len(agenda.as_bytes())
    print(f"agenda with 500 cases: {size} bytes")
    assert size < 5 * 1024 * 1024
    with Session(world.bot().engine) as session:
        [row] = session.exec(select(Agenda).where(Agenda.meeting_date == meeting)).all()
    assert row.case_refs == refs


def test_a_path_in_an_attachments_name_never_reaches_a_mail_or_a_zip(world: World) -> None:
    """SCENARIOS F1/F2 (zip-slip): a file named "../../../../etc/cron.d/Teknisk
    beskrivelse.pdf" is shown and forwarded as "Teknisk beskrivelse.pdf", and the agenda's
    ZIP, which the secretary extracts, has no member that climbs out of its folder."""
    hostile = "../../../../etc/cron.d/Teknisk beskrivelse.pdf"
    world.deliver(world.brief(attachments=(hostile, "Udkast til kontrakt.docx",
                                           "Databehandleraftale.pdf", "Business case.docx")))
    world.run_once(THURSDAY)
    request = request_for(world, "it_operations")
    assert [str(p.get_filename()) for p in request.iter_attachments()] == [
        "Teknisk beskrivelse.pdf"]
    assert "cron.d" not in body_of(request) and "../" not in body_of(request)
    for role in ROLES:
        world.deliver(reply(world, request_for(world, role), world.reviewer(role),
                            "Godkendt."))
    world.run_once(at(10, 0))
    world.run_once(at(12, 5))
    [agenda] = agendas_received(world)
    [bundle] = [p for p in agenda.iter_attachments() if str(p.get_filename()).endswith(".zip")]
    with zipfile.ZipFile(io.BytesIO(bundle.get_content())) as archive:
        members = archive.namelist()
    assert "ITP-2027-0001/Teknisk beskrivelse.pdf" in members
    assert not any(".." in m or m.startswith("/") or "\\" in m for m in members)
