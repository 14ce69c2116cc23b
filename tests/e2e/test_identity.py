"""Who sent it, end to end on Dovecot + aiosmtpd (issue #13 item 5; SCENARIOS A4, A5, A9,
A10): an expired request, a sender our own server found failing DMARC, a homoglyph of a
reviewer's address and headers that claim a case or a decision change nothing; the
secretary is told where a person must look, the sender never."""

from __future__ import annotations

from datetime import timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import make_msgid

import pytest
from sqlmodel import Session, col, select

from mailbot.intake.threads import signed_message_id
from mailbot.models import Case, CaseEvent, RawMessage, Review
from tests.conftest import World
from tests.e2e.test_agenda import ready_case
from tests.e2e.test_reviews import FRIDAY, body_of, complete_brief, reply, request_for, reviews

pytestmark = pytest.mark.e2e

OURS = "mx.kommune.test"
DMARC_FAIL = (f"Authentication-Results: {OURS}; dkim=pass header.d=angriber.test; "
              "spf=pass smtp.mailfrom=angriber.test; dmarc=fail (p=none) "
              "header.from=kommune.test\r\n").encode()


def attention_mails(world: World) -> list[EmailMessage]:
    return [m for m in world.received_by(world.secretary)
            if "Til opmærksomhed" in str(m["Subject"])]


def events(world: World, kind: str) -> list[CaseEvent]:
    with Session(world.bot().engine) as session:
        return list(session.exec(select(CaseEvent).where(CaseEvent.kind == kind)
                                 .order_by(col(CaseEvent.id))).all())


# -- A4: a reply on a request older than reviews.token_days -------------------------------------
def test_a_verdict_on_an_expired_request_is_not_applied_and_the_secretary_is_told(
        world: World) -> None:
    complete_brief(world)
    request = request_for(world, "it_architect")
    late = FRIDAY + timedelta(days=121)  # reviews.token_days = 120 (the default)
    world.deliver(reply(world, request, world.reviewer("it_architect"), "Godkendt."))
    world.run_once(late)
    assert reviews(world)["it_architect"].verdict is None
    notice = attention_mails(world)[-1]
    assert "mere end 120 dage gammel" in body_of(notice)
    assert world.reviewer("it_architect") in body_of(notice)
    # the reviewer hears nothing about why (A4): no mail to her but the request and reminders
    assert all("Til opmærksomhed" not in str(m["Subject"])
               for m in world.received_by(world.reviewer("it_architect")))
    # within the limit the same answer counts
    request = request_for(world, "contract_manager")
    world.deliver(reply(world, request, world.reviewer("contract_manager"), "Godkendt."))
    world.run_once(FRIDAY + timedelta(days=120))
    assert reviews(world)["contract_manager"].verdict == "approved"


def test_a_legacy_id_without_a_day_counts_from_the_request_in_the_database(
        world: World) -> None:
    """Mail in flight at the upgrade: a reply to a request whose id was written without an
    issue day counts until token_days after the request was sent (Review.requested_at)."""
    world.write_config(reviews={"token_days": 30})
    complete_brief(world)
    bot = world.bot()
    with Session(bot.engine) as session:
        by_role = {r.role: r.id for r in session.exec(select(Review)).all()}
    for role, days, verdict in (("it_operations", 30, "approved"),
                                ("security_coordinator", 31, None)):
        request = request_for(world, role)
        legacy = signed_message_id("review", "ITP-2027-0001", bot.domain, bot.secret,
                                   review=by_role[role] or 0)
        assert legacy.count(".") == request["Message-ID"].count(".") - 1  # no day field
        del request["Message-ID"]
        request["Message-ID"] = legacy
        world.deliver(reply(world, request, world.reviewer(role), "Godkendt."))
        world.run_once(FRIDAY + timedelta(days=days))
        assert reviews(world)[role].verdict == verdict
    assert "mere end 30 dage gammel" in body_of(attention_mails(world)[-1])


# -- A5: our own server says dmarc=fail ---------------------------------------------------------
def test_a_verdict_and_a_withdrawal_failing_dmarc_are_not_applied_and_told_once(
        world: World) -> None:
    world.write_config(security={"authserv_id": [OURS]})
    complete_brief(world)
    request = request_for(world, "it_architect")
    for hour in (11, 12):  # the forger tries twice: the secretary hears once
        world.deliver(DMARC_FAIL + reply(world, request, world.reviewer("it_architect"),
                                         "Godkendt."))
        world.run_once(FRIDAY.replace(hour=hour))
    [receipt] = world.received_by(world.applicant)
    withdrawal = world.brief(subject=f"SV: {receipt['Subject']}", body="træk tilbage",
                             attachments=(),
                             headers={"In-Reply-To": str(receipt["Message-ID"]).strip()})
    world.deliver(DMARC_FAIL + withdrawal)
    world.run_once(FRIDAY.replace(hour=13))

    assert reviews(world)["it_architect"].verdict is None
    with Session(world.bot().engine) as session:
        states = session.exec(select(RawMessage.state)).all()
    assert states.count("quarantined") == 3
    assert len(world.folder("Quarantine")) == 3
    found = events(world, "unauthenticated")
    assert len(found) == 3 and all("dmarc=fail for kommune.test" in e.detail for e in found)
    notices = attention_mails(world)
    assert len(notices) == 2  # one per sender on the case: the "reviewer", the "applicant"
    assert all("DMARC fejlede for kommune.test" in body_of(m) for m in notices)
    assert [m["Message-ID"] for m in world.received_by(world.applicant)] == [
        receipt["Message-ID"]]  # no answer to a forged sender
    with Session(world.bot().engine) as session:
        case = session.exec(select(Case)).one()
    assert case.status != "withdrawn"


# -- A10: a homoglyph of the reviewer's address ---------------------------------------------
@pytest.mark.parametrize("domain", [
    "k\u043emmune.test",  # Cyrillic "о"
    "xn--kmmune-3ye.test",  # an IDN's ASCII form: another domain
    "\uff4bommune.test",  # fullwidth "ｋ"
])
def test_a_reply_from_a_homoglyph_of_the_reviewer_is_not_applied(world: World,
                                                                 domain: str) -> None:
    complete_brief(world)
    request = request_for(world, "it_architect")
    real = world.reviewer("it_architect")
    raw = reply(world, request, real, "Godkendt.")
    forged = real.replace("kommune.test", domain)
    raw = raw.replace(f"From: {real}".encode(), f"From: {forged}".encode(), 1)
    assert forged.encode("utf-8") in raw
    world.deliver(raw)
    world.run_once(FRIDAY.replace(hour=11))
    assert reviews(world)["it_architect"].verdict is None
    assert world.smtp.to(forged) == []
    # the very same reply from the reviewer's own address counts
    world.deliver(reply(world, request, real, "Godkendt."))
    world.run_once(FRIDAY.replace(hour=12))
    assert reviews(world)["it_architect"].verdict == "approved"


# -- A9: headers that claim a case or a decision ------------------------------------------------
def test_x_bot_headers_from_an_outsider_change_nothing(world: World) -> None:
    ready_case(world, FRIDAY.replace(month=2, day=26, hour=11))
    with Session(world.bot().engine) as session:
        before = len(session.exec(select(CaseEvent)).all())
    msg = EmailMessage(policy=SMTP)
    msg["From"] = "angriber@evil.example"
    msg["To"] = world.bot_address
    msg["Subject"] = "SV: Beslutning"
    msg["Message-ID"] = make_msgid(domain="evil.example")
    msg["In-Reply-To"] = "<elsewhere@evil.example>"
    msg["X-Bot-Case-Id"] = "ITP-2027-0001"
    msg["X-Bot-Decision"] = "godkendt"
    msg["X-Mailbot-Decision"] = "approved"
    msg.set_content("Godkendt.\n")
    world.deliver(msg.as_bytes())
    world.run_once(FRIDAY.replace(month=2, day=26, hour=12))
    with Session(world.bot().engine) as session:
        case = session.exec(select(Case)).one()
        new_events = session.exec(select(CaseEvent)).all()[before:]
        [row] = session.exec(select(RawMessage).where(
            RawMessage.sender == "angriber@evil.example")).all()
    assert case.decision is None and case.ref == "ITP-2027-0001"
    assert all(e.case_id is None for e in new_events if e.raw_message_id == row.id)
    assert not [e for e in new_events if e.kind in ("decision", "verdict")]
    assert row.case_id is None and row.state == "ignored"
    assert world.smtp.to("angriber@evil.example") == []
