"""One calendar, one sending path, RFC 3834 labels, the council's name, and the first start:
what applicants and the secretary read agrees with itself (issue 8)."""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage

import pytest
from sqlmodel import Session, select

from mailbot.clock import COPENHAGEN
from mailbot.models import Agenda, Case
from tests.conftest import World
from tests.e2e.test_reviews import ROLES, body_of, reply, request_for

pytestmark = pytest.mark.e2e

ENGLISH_BODY = """Hello

Who: Clara Holm, HR. Users are all 2,300 employees.
What: An e-learning platform (a standard product).
Where: HR, Centre for Staff.
When: Go-live 1 September 2027.
Why: Mandatory GDPR training must be documented.
Cost: DKK 150,000 a year, paid by HR.

Kind regards
Clara Holm
"""


def local(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=COPENHAGEN)  # type: ignore[misc]


def the_case(world: World) -> Case:
    with Session(world.bot().engine) as session:
        found = session.exec(select(Case)).first()
        assert found is not None
        return found


def approve_all(world: World, answer: str = "Godkendt.") -> None:
    for role in ROLES:
        world.deliver(reply(world, request_for(world, role), world.reviewer(role), answer))


def ask_status(world: World, now: datetime) -> EmailMessage:
    """The applicant writes "status" on the receipt's thread; returns the bot's answer."""
    receipt = world.received_by(world.applicant)[0]
    before = len(world.received_by(world.applicant))
    world.deliver(world.brief(subject=f"SV: {receipt['Subject']}", body="status\n",
                              attachments=(),
                              headers={"In-Reply-To": str(receipt["Message-ID"]).strip()}))
    world.run_once(now)
    answers = world.received_by(world.applicant)[before:]
    status = [m for m in answers if "status for sag" in body_of(m)
              or "status of case" in body_of(m).lower()]
    assert status, [body_of(m)[:80] for m in answers]
    return status[-1]


def agendas(world: World) -> list[EmailMessage]:
    return [m for m in world.received_by(world.secretary) if "agsorden" in str(m["Subject"])]


@pytest.mark.parametrize(("periods", "brief_at", "meeting_day", "meeting_text", "deadline_text"), [
    # Easter Monday 29 March 2027: the meeting moves to Tuesday 30 March; the deadline stays
    # Monday 22 March 12:00. The old hard-coded calendar named Monday 29 March.
    ([], local(2027, 3, 18, 10, 0), "2027-03-30", "30. marts 2027",
     "mandag 22. marts 2027 kl. 12.00"),
    # Summer break 5 July - 8 August 2027: the next meeting is 9 August (deadline 2 August).
    # The old calendar named 12 July.
    (["2027-07-05..2027-08-08"], local(2027, 6, 29, 10, 0), "2027-08-09", "9. august 2027",
     "mandag 2. august 2027 kl. 12.00"),
])
def test_status_mail_names_the_meeting_the_agenda_uses(
        world: World, periods: list[str], brief_at: datetime, meeting_day: str,
        meeting_text: str, deadline_text: str) -> None:
    world.write_config(council={"no_meeting_periods": periods})
    world.deliver(world.brief())
    world.run_once(brief_at)
    status = ask_status(world, brief_at.replace(hour=11))
    text = body_of(status)
    assert f"{deadline_text} (mødet {meeting_text})" in text
    approve_all(world)
    world.run_once(brief_at.replace(hour=12))
    assert str(the_case(world).meeting_date) == meeting_day  # the agenda's meeting
    notice = [m for m in world.received_by(world.applicant) if "sat på dagsordenen" in body_of(m)]
    assert notice and meeting_text in body_of(notice[-1])


def test_each_kind_of_mail_carries_its_rfc3834_label(world: World) -> None:
    world.write_config(council={"empty_agenda": "send"})
    world.deliver(world.brief())
    world.run_once(local(2027, 3, 1, 9, 0))
    [receipt] = world.received_by(world.applicant)
    assert receipt["Auto-Submitted"] == "auto-replied"  # a direct answer to her brief
    for role in ROLES:
        assert request_for(world, role)["Auto-Submitted"] == "auto-generated"
    status = ask_status(world, local(2027, 3, 1, 9, 30))
    assert status["Auto-Submitted"] == "auto-replied"
    approve_all(world)
    world.run_once(local(2027, 3, 1, 10, 0))
    [notice] = [m for m in world.received_by(world.applicant) if "sat på dagsordenen" in body_of(m)]
    assert notice["Auto-Submitted"] == "auto-generated"
    world.run_once(local(2027, 3, 1, 12, 5))
    [agenda] = agendas(world)
    assert agenda["Auto-Submitted"] == "auto-generated"
    world.deliver(reply(world, agenda, world.secretary, "ITP-2027-0001: Godkendt.\nXYZ: hmm"))
    world.run_once(local(2027, 3, 8, 14, 0))
    [decision] = [m for m in world.received_by(world.applicant) if "Beslutning" in body_of(m)]
    assert decision["Auto-Submitted"] == "auto-generated"


def test_fresh_install_sends_no_agenda_for_a_deadline_before_its_first_run(
        world: World) -> None:
    world.write_config(council={"empty_agenda": "send"})
    world.deliver(world.brief(attachments=("Teknisk beskrivelse.pdf",)))
    # first ever run: Tuesday 2 March 2027, a day after the deadline of the 8 March meeting
    world.run_once(local(2027, 3, 2, 10, 0))
    world.run_once(local(2027, 3, 2, 10, 5))
    assert agendas(world) == []
    # a case opened after the 15 March deadline was not aimed at that meeting
    world.run_once(local(2027, 3, 8, 11, 0))
    world.deliver(world.brief(subject="Projektforslag: Sent", attachments=()))
    world.run_once(local(2027, 3, 8, 12, 30))
    [agenda] = agendas(world)
    assert "15. marts 2027" in str(agenda["Subject"])
    with Session(world.bot().engine) as session:
        [row] = session.exec(select(Agenda)).all()
    assert row.meeting_date.isoformat() == "2027-03-15"
    assert row.waiting_refs == ["ITP-2027-0001"]  # not ITP-2027-0002, opened after it
    text = body_of(agenda)
    assert "ITP-2027-0001" in text and "ITP-2027-0002" not in text


def test_english_applicant_reads_english_review_states(world: World) -> None:
    world.deliver(world.brief(subject="New IT project: E-learning", body=ENGLISH_BODY))
    world.run_once(local(2027, 3, 1, 9, 0))
    world.deliver(reply(world, request_for(world, "it_architect"),
                        world.reviewer("it_architect"), "Godkendt."))
    world.run_once(local(2027, 3, 1, 9, 30))
    receipt = world.received_by(world.applicant)[0]
    world.deliver(world.brief(subject=f"RE: {receipt['Subject']}", body="status\n",
                              attachments=(),
                              headers={"In-Reply-To": str(receipt["Message-ID"]).strip()}))
    world.run_once(local(2027, 3, 1, 10, 0))
    status = body_of(world.received_by(world.applicant)[-1])
    assert "approved" in status and "awaiting an answer" in status
    assert "godkendt" not in status and "afventer" not in status


def test_bot_name_names_the_council_everywhere(world: World) -> None:
    world.write_config(bot={"name": "Digitaliseringsrådet"},
                       council={"empty_agenda": "send"})
    world.deliver(world.brief(attachments=("Teknisk beskrivelse.pdf",)))
    world.run_once(local(2027, 3, 1, 9, 0))
    status = body_of(ask_status(world, local(2027, 3, 1, 9, 30)))
    assert "møde i Digitaliseringsrådet" in status
    world.run_once(local(2027, 3, 1, 12, 5))
    [agenda] = agendas(world)
    assert str(agenda["Subject"]) == "Dagsorden – Digitaliseringsrådets møde 8. marts 2027"
    assert "IT-Projektråd" not in body_of(agenda)
