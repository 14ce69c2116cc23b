"""S/MIME on real servers: an opaque-signed brief opens a case like any brief; an encrypted
one is answered in Danish ("vi kan ikke læse krypteret mail") and opens none."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from mailbot.models import Case, RawMessage
from tests.conftest import World
from tests.mails import COMPLETE_BODY
from tests.smime_writer import enveloped_der, mail, signed_der, smime_entity

pytestmark = pytest.mark.e2e

PLAIN = ('Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n'
         + COMPLETE_BODY).encode()


def _cases(world: World) -> list[Case]:
    with Session(world.bot().engine) as session:
        return list(session.exec(select(Case)).all())


def test_signed_brief_opens_a_case(world: World) -> None:
    world.deliver(mail(smime_entity(signed_der(PLAIN)), world.applicant, world.bot_address))
    world.run_once()
    [case] = _cases(world)
    assert case.applicant_address == world.applicant
    [receipt] = world.received_by(world.applicant)
    assert case.ref in str(receipt["Subject"])


def test_encrypted_mail_is_answered_and_opens_no_case(world: World) -> None:
    world.deliver(mail(smime_entity(enveloped_der(PLAIN), smime_type="enveloped-data"),
                       world.applicant, world.bot_address))
    world.run_once()
    assert _cases(world) == []
    [answer] = world.received_by(world.applicant)
    assert "Vi kan ikke læse krypteret mail" in str(answer["Subject"])
    body = answer.get_body(preferencelist=("plain",))
    assert body is not None and "ukrypteret" in body.get_content()
    assert str(answer["Auto-Submitted"]) == "auto-replied"
    with Session(world.bot().engine) as session:
        [row] = session.exec(select(RawMessage)).all()
    assert row.kind == "encrypted" and row.state == "processed"
    world.run_once()  # nothing more: one answer per mail
    assert len(world.received_by(world.applicant)) == 1


def test_the_brief_sent_again_as_a_reply_opens_a_case(world: World) -> None:
    world.deliver(mail(smime_entity(enveloped_der(PLAIN), smime_type="enveloped-data"),
                       world.applicant, world.bot_address))
    world.run_once()
    [answer] = world.received_by(world.applicant)
    world.deliver(world.brief(subject=f"SV: {answer['Subject']}",
                              headers={"In-Reply-To": str(answer["Message-ID"]).strip()}))
    world.run_once()
    [case] = _cases(world)
    assert case.applicant_address == world.applicant
