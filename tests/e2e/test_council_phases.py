"""The council's two phases (issue #12), end to end on Dovecot + aiosmtpd with `now` moved:
guidance on the drafts, the applicant's klarmelding with the final documents, ONE answer
(the meeting, or ONE list of what final approval still needs), the agenda at the deadline,
a klarmelding a minute late, a rejected final version, and `phases = 1` as before."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from email.message import EmailMessage

import pytest
from sqlmodel import Session, select

from mailbot.clock import COPENHAGEN
from mailbot.models import Case, CaseEvent
from tests.conftest import World
from tests.e2e.test_reviews import ROLES, attachments_of, body_of, reply, request_for
from tests.mails import COMPLETE_BODY

pytestmark = pytest.mark.e2e

THURSDAY = datetime(2027, 2, 25, 10, 0, tzinfo=COPENHAGEN)
DEADLINE = datetime(2027, 3, 1, 12, 0, tzinfo=COPENHAGEN)  # Monday; meeting Monday 8 March
# the brief names the system owner, so final approval needs only documents here
BRIEF_BODY = COMPLETE_BODY.replace("Hej\n\n", "Hej\n\nSystemejer: Jens Jensen, Borgerservice\n\n")
FINAL_DOCUMENTS = ("Kontrakt endelig.docx", "Databehandleraftale endelig.pdf")


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2027, 3 if day < 20 else 2, day, hour, minute, tzinfo=COPENHAGEN)


def two_phases(world: World, **council: object) -> None:
    world.write_config(council={"phases": 2, **council})


def the_case(world: World) -> Case:
    with Session(world.bot().engine) as session:
        found = session.exec(select(Case)).first()
        assert found is not None
        return found


def events(world: World) -> list[str]:
    with Session(world.bot().engine) as session:
        return [e.kind for e in session.exec(select(CaseEvent)).all()]


def to_applicant(world: World) -> list[EmailMessage]:
    return world.received_by(world.applicant)


def write_on_thread(world: World, body: str, attachments: tuple[str, ...] = ()) -> None:
    """The applicant replies on the receipt's thread."""
    receipt = to_applicant(world)[0]
    world.deliver(world.brief(subject=f"SV: {receipt['Subject']}", body=body,
                              attachments=attachments,
                              headers={"In-Reply-To": str(receipt["Message-ID"]).strip()}))


def guidance_from_everyone(world: World, when: datetime, verdicts: dict[str, str] | None = None
                           ) -> None:
    """The brief with drafts, then an answer from each of the four roles at `when`."""
    world.deliver(world.brief(body=BRIEF_BODY))
    world.run_once(THURSDAY)
    answers = {"it_operations": "Godkendt.",
               "it_architect": "Godkendt, men husk at logge ind med kommunens SSO.",
               "contract_manager": "Bemærkninger: kontrakten mangler en exit-klausul.",
               "security_coordinator": "Godkendt.", **(verdicts or {})}
    for role in ROLES:
        world.deliver(reply(world, request_for(world, role), world.reviewer(role),
                            answers[role]))
    world.run_once(when)


def agendas(world: World) -> list[EmailMessage]:
    return [m for m in world.received_by(world.secretary) if "agsorden" in str(m["Subject"])]


def test_guidance_then_klarmelding_then_the_missing_list_then_the_agenda(world: World) -> None:
    two_phases(world)
    guidance_from_everyone(world, at(25, 11))
    [receipt] = to_applicant(world)
    assert "to faser" in body_of(receipt) and "klarmelding" in body_of(receipt)
    # the sentence with its subject (the trial of issue #16 read "…, og sender dig")
    assert "sendt til vurdering, og vi sender dig vejledningen" in " ".join(
        body_of(receipt).split())
    assert "Projektbeskrivelse (skal først bruges til den endelige godkendelse)" in body_of(
        receipt)
    case = the_case(world)
    assert case.status == "guided" and case.guidance_given_at is not None

    world.run_once(at(25, 11, 10))  # the guidance relay's batch window has passed
    _, guidance = to_applicant(world)
    text = body_of(guidance)
    assert "exit-klausul" in text and "husk at logge ind" in text
    assert "Nu har alle givet vejledning" in text and "Sådan klarmelder du" in text
    assert "Endelig kontrakt" in text and "Projektbeskrivelse" in text
    assert "Systemejer" not in text  # the brief named one

    # the klarmelding with the final contract and DPA, but no project description
    write_on_thread(world, "Hej\n\nHermed klarmelder jeg sagen med de endelige dokumenter.\n",
                    FINAL_DOCUMENTS)
    world.run_once(at(26, 10))
    [answer] = to_applicant(world)[2:]  # ONE answer
    text = body_of(answer)
    assert "Tak for klarmeldingen" in text and "- Projektbeskrivelse" in text
    for given in ("Endelig kontrakt", "Endelig databehandleraftale", "Business case",
                  "Systemejer", "Svar på spørgsmålet"):
        assert given not in text, given
    assert "Næste frist er mandag 1. marts 2027 kl. 12.00 (mødet 8. marts 2027)" in text
    case = the_case(world)
    assert case.status == "klarmeldt" and case.meeting_date is None
    assert "klarmelding" in events(world)
    # the final versions went to their reviewers as new versions
    final_request = body_of(request_for(world, "contract_manager"))
    assert "ny version" in final_request and "Endelig kontrakt" in final_request
    assert "Udkast til kontrakt" not in final_request
    assert "ny version" in body_of(request_for(world, "security_coordinator"))

    # a second mail with the project description, before the deadline, no phrase needed
    write_on_thread(world, "Her er projektbeskrivelsen.\n", ("Projektbeskrivelse.docx",))
    world.run_once(at(1, 11))
    [meeting] = to_applicant(world)[3:]
    text = " ".join(body_of(meeting).split())
    assert "klar til endelig godkendelse og sat på dagsordenen" in text
    assert "møde 8. marts 2027" in text and "lukket" not in text
    # the final versions are still out for review: said, and they do not hold the case back
    assert "den kontraktansvarlige" in text and "informationssikkerhedskoordinatoren" in text
    assert the_case(world).meeting_date.isoformat() == "2027-03-08"  # type: ignore[union-attr]

    world.run_once(at(1, 12, 5))
    [agenda] = agendas(world)
    assert "8. marts 2027" in str(agenda["Subject"])
    text = body_of(agenda)
    assert "ITP-2027-0001 Ny mødebooking" in text
    # the item in the municipal form names the final versions as final, the drafts' guidance
    # apart from the current verdicts
    for heading in ("RESUMÉ", "SAGSFREMSTILLING", "ØKONOMI", "INDSTILLING", "BESLUTNING"):
        assert heading in text
    assert "Endelig kontrakt: " in text and "Endelig databehandleraftale: " in text
    assert "Udkast til kontrakt: " not in text and "Vejledning (tidligere versioner)" in text
    assert {"Dagsorden 2027-03-08.docx", "Dagsordenspunkt 1 - ITP-2027-0001.docx"} \
        <= set(attachments_of(agenda))

    shown = json.loads(world.cli("case", "ITP-2027-0001", "--json").stdout)
    assert shown["phase"] == "final" and shown["stage"] == "klarmeldt"
    assert shown["status"] == "queued"
    assert shown["klarmeldt_at"].startswith("2027-02-26T10:00")
    assert shown["guidance_given_at"].startswith("2027-02-25T11:00")
    text_view = world.cli("case", "ITP-2027-0001").stdout
    assert "phase:     final, klarmeldt (guidance given 2027-02-25 11:00 CET, " \
           "klarmeldt 2027-02-26" in text_view


def test_a_klarmelding_at_1201_on_the_deadline_goes_to_the_following_meeting(
        world: World) -> None:
    two_phases(world)
    guidance_from_everyone(world, at(25, 11))
    write_on_thread(world, "Sagen er klar til ITP.\n",
                    (*FINAL_DOCUMENTS, "Projektbeskrivelse.docx"))
    world.run_once(DEADLINE + timedelta(minutes=1))
    [meeting] = [m for m in to_applicant(world) if "Tak for klarmeldingen" in body_of(m)]
    text = body_of(meeting)
    assert "Tak for klarmeldingen" in text and "møde 15. marts 2027" in text
    assert "Dagsordenen til mødet 8. marts 2027 er lukket (fristen var mandag 1. marts 2027 " \
           "kl. 12.00)" in " ".join(text.split())
    assert the_case(world).meeting_date.isoformat() == "2027-03-15"  # type: ignore[union-attr]


def test_a_rejected_final_version_takes_the_case_off_the_agenda(world: World) -> None:
    two_phases(world, empty_agenda="send")
    guidance_from_everyone(world, at(25, 11))
    write_on_thread(world, "Klarmelding.\n", (*FINAL_DOCUMENTS, "Projektbeskrivelse.docx"))
    world.run_once(at(26, 10))
    assert the_case(world).meeting_date.isoformat() == "2027-03-08"  # type: ignore[union-attr]

    final_request = request_for(world, "contract_manager")
    assert attachments_of(final_request) == ["Kontrakt endelig.docx"]
    world.deliver(reply(world, final_request, world.reviewer("contract_manager"),
                        "Kan ikke anbefales: den endelige kontrakt har ingen exit-klausul."))
    world.run_once(at(26, 14))
    case = the_case(world)
    assert case.status == "klarmeldt" and case.meeting_date is None
    assert "unqueued" in events(world)
    world.run_once(at(26, 14, 10))
    told = to_applicant(world)[-1]
    assert "ingen exit-klausul" in body_of(told)
    assert "kommer ikke på dagsordenen til endelig godkendelse" in body_of(told)

    world.run_once(at(1, 12, 5))
    [agenda] = agendas(world)
    text = body_of(agenda)
    assert "Ingen punkter" in text
    assert "ITP-2027-0001" in text and "den kontraktansvarlige: afvist" in text


def test_a_klarmelding_before_the_guidance_is_complete_names_who_has_not_answered(
        world: World) -> None:
    two_phases(world)
    world.deliver(world.brief(body=BRIEF_BODY,
                              attachments=("Teknisk beskrivelse.pdf", "Kontrakt.docx",
                                           "Databehandleraftale.pdf", "Business case.docx",
                                           "Projektbeskrivelse.docx")))
    world.run_once(THURSDAY)
    for role in ("it_operations", "it_architect"):
        world.deliver(reply(world, request_for(world, role), world.reviewer(role), "Godkendt."))
    world.run_once(at(25, 11))
    write_on_thread(world, "Klar til godkendelse.\n", FINAL_DOCUMENTS)
    world.run_once(at(25, 12))
    [meeting] = to_applicant(world)[1:]
    text = " ".join(body_of(meeting).split())
    assert "møde 8. marts 2027" in text
    assert "Disse har endnu ikke svaret på de seneste dokumenter: den kontraktansvarlige og " \
           "informationssikkerhedskoordinatoren" in text
    case = the_case(world)
    assert case.status == "queued" and case.guidance_given_at is None


def test_waiting_cases_on_the_agenda_give_the_phase_two_reasons(world: World) -> None:
    two_phases(world, empty_agenda="send")
    guidance_from_everyone(world, at(25, 11))
    world.run_once(at(1, 12, 5))
    [agenda] = agendas(world)
    text = " ".join(body_of(agenda).split())
    assert "ITP-2027-0001" in text and "ikke klarmeldt" in text
    assert "mangler Endelig kontrakt, Endelig databehandleraftale, Projektbeskrivelse" in text


def test_one_phase_puts_the_case_on_the_agenda_by_itself_as_before(world: World) -> None:
    world.write_config(council={"phases": 1})
    world.deliver(world.brief(body=BRIEF_BODY))
    world.run_once(THURSDAY)
    assert "to faser" not in body_of(to_applicant(world)[0])
    for role in ROLES:
        world.deliver(reply(world, request_for(world, role), world.reviewer(role), "Godkendt."))
    world.run_once(at(25, 11))
    case = the_case(world)
    assert case.status == "queued" and case.meeting_date.isoformat() == "2027-03-08"  # type: ignore[union-attr]
    assert case.guidance_given_at is None and case.klarmeldt_at is None
    [meeting] = [m for m in to_applicant(world) if "sat på dagsordenen" in body_of(m)]
    assert "alle vurderinger er godkendt, og intet mangler" in body_of(meeting)
    # a klarmelding phrase is just an update here: the checklist comes back
    write_on_thread(world, "Hermed klarmelder jeg sagen.\n")
    world.run_once(at(25, 12))
    assert "Tak, vi har opdateret sag" in body_of(to_applicant(world)[-1])
    assert "klarmelding" not in events(world)


def test_a_system_owner_named_in_a_follow_up_completes_the_list(world: World) -> None:
    two_phases(world)
    world.deliver(world.brief())  # names no system owner
    world.run_once(THURSDAY)
    for role in ROLES:
        world.deliver(reply(world, request_for(world, role), world.reviewer(role), "Godkendt."))
    world.run_once(at(25, 11, 10))  # the guidance mail goes out
    write_on_thread(world, "Klarmelding.\n", (*FINAL_DOCUMENTS, "Projektbeskrivelse.docx"))
    world.run_once(at(26, 10))
    [answer] = to_applicant(world)[2:]
    assert "- Systemejer: hvem ejer systemet" in body_of(answer)
    assert "Projektbeskrivelse" not in body_of(answer)
    write_on_thread(world, "Systemejer: Jens Jensen, Borgerservice\n")
    world.run_once(at(26, 11))
    [meeting] = to_applicant(world)[3:]
    assert "møde 8. marts 2027" in " ".join(body_of(meeting).split())
    case = the_case(world)
    assert case.system_owner == "Jens Jensen" and case.status == "queued"


def test_a_case_queued_with_one_phase_keeps_its_place_after_switching_to_two(
        world: World) -> None:
    """The upgrade: a case on an agenda under `phases = 1` stays there under `phases = 2`,
    without a klarmelding and without a guidance mail about klarmelding."""
    world.write_config(council={"phases": 1})
    world.deliver(world.brief(body=BRIEF_BODY))
    world.run_once(THURSDAY)
    for role in ROLES:
        world.deliver(reply(world, request_for(world, role), world.reviewer(role), "Godkendt."))
    world.run_once(at(25, 11))
    assert the_case(world).status == "queued"
    before = len(to_applicant(world))
    two_phases(world)
    world.run_once(at(25, 12))
    world.run_once(at(1, 12, 5))
    case = the_case(world)
    assert case.status == "queued" and case.meeting_date.isoformat() == "2027-03-08"  # type: ignore[union-attr]
    assert case.guidance_given_at is not None  # marked, silently
    assert len(to_applicant(world)) == before
    [agenda] = agendas(world)
    assert "ITP-2027-0001 Ny mødebooking" in body_of(agenda)


def test_a_case_whose_agenda_never_went_out_moves_to_the_next_meeting(world: World) -> None:
    """The daemon is down from the deadline (1 March 12:00) until after the meeting began
    (8 March 09:00): that agenda is never sent (too late to be of use), so the case must not
    stay queued for a meeting that is past. It goes on the next open agenda, and the
    applicant is told the new date."""
    world.write_config(council={"phases": 1})
    world.deliver(world.brief(body=BRIEF_BODY))
    world.run_once(THURSDAY)
    for role in ROLES:
        world.deliver(reply(world, request_for(world, role), world.reviewer(role), "Godkendt."))
    world.run_once(at(25, 11))
    assert the_case(world).meeting_date.isoformat() == "2027-03-08"  # type: ignore[union-attr]
    world.run_once(at(8, 10))  # back after the meeting began: its agenda is not sent now
    assert agendas(world) == []
    case = the_case(world)
    assert case.status == "queued" and case.meeting_date.isoformat() == "2027-03-15"  # type: ignore[union-attr]
    assert "agenda_missed" in events(world)
    moved = " ".join(body_of(to_applicant(world)[-1]).split())
    assert "15. marts 2027" in moved
    world.run_once(at(8, 12, 5))  # the next deadline (Monday 8 March 12:00) sends it
    [agenda] = agendas(world)
    assert "15. marts 2027" in str(agenda["Subject"]) and "ITP-2027-0001" in body_of(agenda)

