"""Who sent it, without servers (issue #13 item 5; SCENARIOS A4, A8, A9, A10): signed ids and
reply tokens carry their issue day under the signature and expire; the From header is read
strictly and compared as ASCII only; `[security] authserv_id` and its old name."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from mailbot.config import Settings, load_settings
from mailbot.errors import ConfigError
from mailbot.intake.classify import AgendaReply, CaseFacts, CaseMail, NewBrief, sender_role
from mailbot.intake.parse import parse, strict_address
from mailbot.intake.threads import (
    expired,
    find_thread,
    read_own_id,
    read_token,
    reply_to_address,
    signed_message_id,
)
from mailbot.rules import Rules
from tests.mails import brief
from tests.unit.test_classify import APPLICANT, BOT, SECRET, SECRETARY, disposition, on_thread
from tests.unit.test_config import write

ISSUED = date(2027, 3, 1)
REVIEWER = "arkitekt@kommune.test"


# -- A4: the issue day, under the signature ----------------------------------------------------
def test_a_signed_id_carries_its_issue_day_and_a_changed_day_is_a_forgery() -> None:
    ours = signed_message_id("review", "ITP-2027-0001", "kommune.test", SECRET, review=7,
                             issued=ISSUED)
    own = read_own_id(ours, "kommune.test", SECRET)
    assert own is not None and own.valid and (own.review, own.issued) == (7, ISSUED)
    day = ours.split(".")[4]
    later = ours.replace(f".{day}.", f".{int(day) + 100}.")
    forged = read_own_id(later, "kommune.test", SECRET)
    assert forged is not None and not forged.valid
    upper = read_own_id(ours.upper().replace("KOMMUNE.TEST", "kommune.test"), "kommune.test",
                        SECRET)
    assert upper is not None and upper.valid and upper.issued == ISSUED
    # no longer than the legacy form: a longer id gets folded as an encoded-word by some
    # writers and is then nobody's id
    legacy = signed_message_id("review", "ITP-2027-0001", "kommune.test", SECRET, review=7)
    assert len(ours) <= len(legacy)


def test_a_reply_token_carries_its_issue_day_and_a_changed_day_is_a_forgery() -> None:
    token = reply_to_address(BOT, "ITP-2027-0001", 7, SECRET, ISSUED)
    assert token.startswith("it.projekter+itp-2027-0001-7-2616-")
    found = read_token((token.upper(),), BOT, SECRET)
    assert found is not None and found.valid and (found.review, found.issued) == (7, ISSUED)
    forged = read_token((token.replace("-2616-", "-2716-"),), BOT, SECRET)
    assert forged is not None and not forged.valid
    # without the day it is the legacy form: its signature does not cover the day, so a
    # stripped day does not make a valid legacy token
    stripped = read_token((token.replace("-2616-", "-"),), BOT, SECRET)
    assert stripped is not None and not stripped.valid


def test_legacy_ids_and_tokens_in_flight_are_still_read_without_a_day() -> None:
    legacy_id = signed_message_id("review", "ITP-2027-0001", "kommune.test", SECRET, review=3)
    own = read_own_id(legacy_id, "kommune.test", SECRET)
    assert own is not None and own.valid and own.issued is None
    legacy_token = reply_to_address(BOT, "ITP-2027-0001", 3, SECRET)
    found = read_token((legacy_token,), BOT, SECRET)
    assert found is not None and found.valid and found.issued is None
    raw = brief(subject="SV: vurdering", to=legacy_token, attachments=())
    match = find_thread(parse(raw), "kommune.test", SECRET, BOT)
    assert (match.via, match.review, match.issued) == ("token", 3, None)


@pytest.mark.parametrize(("issued", "now", "days", "too_late"), [
    (date(2027, 3, 1), datetime(2027, 6, 29, 23, 0, tzinfo=UTC), 120, False),  # day 120
    (date(2027, 3, 1), datetime(2027, 6, 30, 0, 30, tzinfo=UTC), 120, True),  # day 121
    (date(2027, 3, 1), datetime(2027, 3, 2, tzinfo=UTC), 1, False),
    (date(2027, 3, 1), datetime(2027, 3, 3, tzinfo=UTC), 1, True),
    # legacy (no day): counted from the request in the database
    (None, datetime(2027, 6, 29, 23, 0, tzinfo=UTC), 120, False),
    (None, datetime(2027, 6, 30, 0, 30, tzinfo=UTC), 120, True),
])
def test_expired_counts_whole_utc_days(issued: date | None, now: datetime, days: int,
                                       too_late: bool) -> None:
    requested = datetime(2027, 3, 1, 9, 0)  # naive, as SQLite gives it back: UTC
    assert expired(issued, requested, now, days) is too_late


# -- configuration -------------------------------------------------------------------------
def test_token_days_and_security_authserv_id(tmp_path: Path) -> None:
    path = write(tmp_path)
    settings = load_settings(path, environ={})
    assert settings.reviews.token_days == 120 and settings.security.authserv_id == []
    settings = load_settings(path, environ={"MAILBOT_REVIEWS__TOKEN_DAYS": "30",
                                            "MAILBOT_SECURITY__AUTHSERV_ID": "mx1.k.dk,mx2.k.dk"})
    assert settings.reviews.token_days == 30
    assert settings.security.authserv_id == ["mx1.k.dk", "mx2.k.dk"]
    with pytest.raises(ConfigError, match=r"\[MAILBOT_REVIEWS__TOKEN_DAYS\]"):
        load_settings(path, environ={"MAILBOT_REVIEWS__TOKEN_DAYS": "0"})


def test_the_old_imap_authserv_id_is_read_as_security_authserv_id_with_one_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path)
    with caplog.at_level(logging.WARNING, logger="mailbot.config"):
        settings = load_settings(path, environ={"MAILBOT_IMAP__AUTHSERV_ID": "mx.k.dk"})
    assert settings.security.authserv_id == ["mx.k.dk"]
    [warning] = [r.getMessage() for r in caplog.records]
    assert "imap.authserv_id is deprecated" in warning and "[security] authserv_id" in warning
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={"MAILBOT_IMAP__AUTHSERV_ID": "mx.k.dk",
                                     "MAILBOT_SECURITY__AUTHSERV_ID": "other.k.dk"})
    assert "MAILBOT_IMAP__AUTHSERV_ID" in str(err.value) and "Fix:" in str(err.value)


# -- A8: the From header, strictly ---------------------------------------------------------
@pytest.mark.parametrize("value", [
    "a@kommune.test, b@kommune.test",  # two addresses
    "Undisclosed recipients:;", "undisclosed:;",  # group syntax
    f"Team: {SECRETARY};",
    f"alice@evil.example)<{SECRETARY}>",  # CVE-2023-27043 shapes
    f'"alice@evil.example" <{SECRETARY}>',
    f'"{SECRETARY}" <alice@evil.example>',
    f'"{SECRETARY}"@evil.example',  # a quoted local part holding our address
    f'Sekretær <"{SECRETARY}"@evil.example>',
    f"{SECRETARY} <alice@evil.example>",
])
def test_an_ambiguous_from_is_nobody(value: str, rules: Rules) -> None:
    assert strict_address(value) == ""
    raw = on_thread(SECRETARY, "ITP-2027-0001: Godkendt.").replace(
        f"From: {SECRETARY}".encode(), f"From: {value}".encode(), 1)
    mail = parse(raw)
    assert mail.from_address == ""
    found = disposition(raw, rules)
    assert not (isinstance(found, AgendaReply) and found.from_secretary)
    assert not (isinstance(found, CaseMail) and found.sender in ("applicant", "reviewer"))


# -- A10: IDN homoglyphs and Unicode case folding --------------------------------------------
@pytest.mark.parametrize("address", [
    "arkitekt@k\u043emmune.test",  # Cyrillic "о"
    "\u0430rkitekt@kommune.test",  # Cyrillic "а" in the local part
    "arkitekt@\uff4bommune.test",  # fullwidth "ｋ"
    "arkitekt@\u212aommune.test",  # Kelvin sign: str.lower() makes it "k"
    "\u212aarl@kommune.test",
    "arkitekt@kommune.te\u017ft",  # long "ſ": casefold() makes it "s"
    "arki\u200btekt@kommune.test",  # a zero-width space
    "ARKITEKT@KOMMUNE.TEST\u0307",  # a combining dot above
])
def test_a_non_ascii_address_is_never_anyone(address: str, rules: Rules) -> None:
    assert strict_address(address) == ""
    assert strict_address(f"Arkitekten <{address}>") == ""
    # as raw UTF-8 (SMTPUTF8) and as one RFC 2047 encoded-word
    for header in (address.encode(), f"=?utf-8?q?{_q(address)}?=".encode()):
        raw = (b"From: " + header + b"\r\nTo: " + BOT.encode()
               + b"\r\nSubject: x\r\n\r\nGodkendt.\r\n")
        assert parse(raw).from_address == ""


def _q(text: str) -> str:
    return "".join(chr(b) if chr(b).isalnum() and b < 128 else f"={b:02X}"
                   for b in text.encode())


def test_an_idn_in_its_ascii_form_is_another_domain_and_ascii_case_is_folded(
        rules: Rules) -> None:
    assert strict_address("arkitekt@xn--kmmune-3ye.test") == "arkitekt@xn--kmmune-3ye.test"
    assert strict_address("Arkitekt <ARKITEKT@Kommune.TEST>") == REVIEWER
    settings = Settings.model_validate({
        "bot": {"address": BOT}, "imap": {"host": "-", "username": "-", "password": ""},
        "smtp": {"host": "-"}, "reviewers": {"it_architect": [REVIEWER]}})
    facts = CaseFacts("ITP-2027-0001", APPLICANT)
    assert sender_role("arkitekt@xn--kmmune-3ye.test", facts, settings) == "outsider"
    assert sender_role(REVIEWER, facts, settings) == "reviewer"


def test_a_homoglyph_of_the_secretary_decides_nothing(rules: Rules) -> None:
    agenda = signed_message_id("agenda", "AGD-2027-0308", "kommune.test", SECRET,
                               issued=ISSUED)
    real = on_thread(SECRETARY, "ITP-2027-0001: Godkendt.", parent=agenda)
    found = disposition(real, rules)
    assert isinstance(found, AgendaReply) and found.from_secretary
    local, _, domain = SECRETARY.partition("@")
    for lookalike in (f"{local}@{domain.replace('o', chr(0x43E))}",
                      f"{local.replace('s', chr(0x17F), 1)}@{domain}",
                      f"{local}@xn--kmmune-3ye.test"):
        raw = real.replace(f"From: {SECRETARY}".encode(), f"From: {lookalike}".encode(), 1)
        found = disposition(raw, rules)
        assert isinstance(found, AgendaReply) and not found.from_secretary


# -- A9: headers that name a case or a decision ----------------------------------------------
def test_x_bot_headers_name_no_case_and_no_decision(rules: Rules) -> None:
    """The case comes from our signed ids, a token or the subject tag; a decision from the
    secretary's reply text. A mail that has only such headers is a new brief of its sender's."""
    raw = brief(sender="angriber@evil.example", subject="Projektforslag: noget",
                headers={"X-Bot-Case-Id": "ITP-2027-0001", "X-Bot-Decision": "godkendt",
                         "X-Mailbot-Case": "ITP-2027-0001"}, attachments=())
    mail = parse(raw)
    assert find_thread(mail, "kommune.test", SECRET, BOT).case_ref is None
    assert isinstance(disposition(raw, rules), NewBrief)


def test_replies_to_an_alert_and_to_the_encrypted_notice_are_read_as_such() -> None:
    """Our ids that name no case: an operator alert's reply is recognised as one (X6), and
    a reply to our "send it unencrypted" answer without a case is no case's (a brief)."""
    alert = signed_message_id("alert", "ALERT", "kommune.test", SECRET, issued=ISSUED)
    notice = signed_message_id("encrypted", "ENCRYPTED", "kommune.test", SECRET,
                               issued=ISSUED)
    for parent, via in ((alert, "alert"), (notice, "none")):
        own = read_own_id(parent, "kommune.test", SECRET)
        assert own is not None and own.valid
        raw = brief(subject="SV: noget", headers={"In-Reply-To": parent}, attachments=())
        match = find_thread(parse(raw), "kommune.test", SECRET, BOT)
        assert (match.case_ref, match.via, match.tampered) == (None, via, False)
