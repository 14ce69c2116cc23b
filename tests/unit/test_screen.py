from __future__ import annotations

import json

import pytest

from mailbot.intake.parse import parse
from mailbot.intake.screen import screen
from mailbot.rules import Rules
from tests.conftest import shared_path
from tests.mails import brief

BOT = "it.projekter@kommune.test"


def category(raw: bytes, rules: Rules) -> str:
    return screen(parse(raw), rules, BOT).category


@pytest.mark.parametrize(("headers", "subject", "expected"), [
    ({"Auto-Submitted": "auto-replied"}, "Ferie", "auto_reply"),
    ({"Auto-Submitted": "auto-generated"}, "Besked", "auto_reply"),
    ({"Auto-Submitted": "no"}, "Projektforslag", "human"),
    ({"X-Autoreply": "yes"}, "Re: sag", "auto_reply"),
    ({"X-Auto-Response-Suppress": "All"}, "Projektforslag", "human"),
    ({"Precedence": "bulk"}, "Nyhedsbrev", "bulk"),
    ({"List-Id": "<nyt.kommune.test>"}, "Nyhedsbrev", "bulk"),
    ({"Return-Path": "<>"}, "Besked", "bounce"),
    ({"X-Mailbot-Loop": BOT}, "Re: [ITP-2026-0001]", "own"),
], ids=lambda value: str(value)[:30])
def test_machine_markers(rules: Rules, headers: dict[str, str], subject: str,
                         expected: str) -> None:
    assert category(brief(subject=subject, headers=headers), rules) == expected


@pytest.mark.parametrize("subject", ["Automatisk svar: Projektforslag", "Fraværsmeddelelse: væk",
                                     "Out of Office: away"])
def test_autoresponder_subjects_without_headers(rules: Rules, subject: str) -> None:
    """An autoresponder's subject marks its reply; a mail that reads as a brief under such a
    subject is a person's (tests/unit/test_screen_machines.py)."""
    raw = brief(subject=subject, body="Tak for din mail. Jeg er tilbage mandag.\n",
                attachments=())
    assert category(raw, rules) == "auto_reply"


def test_bot_own_address_and_mailer_daemon(rules: Rules) -> None:
    assert category(brief(sender=f"Bot <{BOT.upper()}>"), rules) == "own"
    assert category(brief(sender="MAILER-DAEMON@mx.kommune.test"), rules) == "bounce"
    assert category(brief(sender="postmaster@kommune.test"), rules) == "bounce"


def test_mail_loop_by_hop_count(rules: Rules) -> None:
    raw = brief()
    hops = b"".join(b"Received: from hop%d by mx\r\n" % i for i in range(60))
    assert category(hops + raw, rules) == "loop"
    assert category(hops[: 10 * 26] + raw, rules) == "human"


@pytest.mark.parametrize("name", ["013-autosvar-ferie", "014-bounce-ukendt-modtager",
                                  "001-besoegsregistrering-komplet", "009-review-godkendt"])
def test_samples_are_screened_as_labelled(rules: Rules, name: str) -> None:
    folder = shared_path("samples", "cases")
    raw = (folder / f"{name}.eml").read_bytes()
    expected = json.loads((folder / f"{name}.json").read_text())["kind"]
    result = screen(parse(raw), rules, "it.projekter@albertslund.dk")
    assert (result.message_kind if result.is_machine else "person") == (
        expected if expected in ("auto_reply", "bounce") else "person")
