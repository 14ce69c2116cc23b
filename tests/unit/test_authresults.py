"""Authentication-Results (RFC 8601): only our own server's topmost header is believed, and
its dmarc=fail makes the mail unauthenticated whatever else passed: on a thread nothing in it
is applied, a new brief is quarantined (SCENARIOS A5, A6)."""

from __future__ import annotations

import pytest

from mailbot.config import Settings
from mailbot.intake.authresults import (
    dmarc_failure,
    parse_authentication_results,
    trusted_results,
)
from mailbot.intake.classify import (
    AgendaReply,
    CaseFacts,
    CaseMail,
    Disposition,
    NewBrief,
    Quarantine,
    ReviewReply,
    Unauthenticated,
    classify,
)
from mailbot.intake.parse import parse
from mailbot.intake.screen import screen
from mailbot.intake.threads import find_thread, signed_message_id
from mailbot.rules import Rules
from tests.mails import brief
from tests.unit.test_classify import APPLICANT, BOT, SECRET, SECRETARY, on_thread

OURS = "mx.kommune.test"
# A5: the forger signed with a domain of their own (dkim=pass, unaligned); DMARC fails
SPOOFED = (f"{OURS}; dkim=pass (2048-bit key) header.d=angriber.test header.i=@angriber.test;"
           " spf=pass smtp.mailfrom=bounce@angriber.test;"
           " dmarc=fail (p=reject dis=none) header.from=kommune.test")
PASSED = f"{OURS}; dkim=pass header.d=kommune.test; dmarc=pass header.from=kommune.test"


def settings(authserv_id: list[str] | None = None) -> Settings:
    return Settings.model_validate({
        "bot": {"address": BOT},
        "imap": {"host": "-", "username": "-", "password": ""},
        "security": {"authserv_id": [OURS] if authserv_id is None else authserv_id},
        "smtp": {"host": "-"},
        "council": {"secretary": [SECRETARY]},
        "reviewers": {"it_architect": ["arkitekt@kommune.test"]},
    })


def with_results(raw: bytes, *values: str) -> bytes:
    """`raw` with Authentication-Results headers on top, in the order given (first on top),
    as the receiving servers prepend them."""
    return b"".join(f"Authentication-Results: {v}\r\n".encode() for v in values) + raw


def disposition(raw: bytes, rules: Rules, authserv_id: list[str] | None = None
                ) -> Disposition:
    mail = parse(raw)
    thread = find_thread(mail, "kommune.test", SECRET, BOT)
    facts = CaseFacts(thread.case_ref, APPLICANT) if thread.case_ref else None
    return classify(mail, screen(mail, rules, BOT), thread, settings(authserv_id),
                    rules, facts)


# -- the parser (RFC 8601 section 2.2) ------------------------------------------------------
def test_parser_reads_methods_results_and_properties_without_comments() -> None:
    found = parse_authentication_results(
        'MX.Kommune.test 1; dkim=pass (good (nested) signature) header.d=a.test '
        'header.b="ab;c"; spf=none; DMARC=FAIL reason="p=reject; dis=none" '
        'header.from=kommune.test; arc=none')
    assert found is not None and found.authserv_id == OURS
    assert [(r.method, r.result) for r in found.results] == [
        ("dkim", "pass"), ("spf", "none"), ("dmarc", "fail"), ("arc", "none")]
    assert found.results[0].prop("header.b") == "ab;c"
    assert found.results[2].prop("header.from") == "kommune.test"
    assert found.results[2].prop("reason") == ""  # a reason is not a property


@pytest.mark.parametrize("value", [
    f"{OURS}; none", f'"{OURS}"; none', f"(a comment) {OURS} (another); none"])
def test_parser_reads_a_header_without_results(value: str) -> None:
    found = parse_authentication_results(value)
    assert found is not None and (found.authserv_id, found.results) == (OURS, ())


@pytest.mark.parametrize("value", [
    "", "  ", "(only a comment)",
    # Exchange Online writes no authserv-id: it names no server, so it is no one's
    "spf=pass (sender IP is 192.0.2.1) smtp.mailfrom=kommune.test; dmarc=fail "
    "header.from=kommune.test"])
def test_a_header_without_an_authserv_id_is_nobodys(value: str) -> None:
    assert parse_authentication_results(value) is None
    assert dmarc_failure({"authentication-results": (value,)}, APPLICANT, [OURS]) == ""


def test_only_the_topmost_header_with_our_id_counts() -> None:
    """A6: a sender's forged header below ours (even with our id), or with another id."""
    forged_pass = f"{OURS}; dmarc=pass header.from=kommune.test"
    found = trusted_results(["elsewhere.test; dmarc=pass", SPOOFED, forged_pass], [OURS])
    assert found is not None and [r.result for r in found.results][-1] == "fail"
    assert trusted_results([SPOOFED], []) is None
    assert trusted_results(["elsewhere.test; dmarc=fail"], [OURS]) is None
    assert trusted_results([SPOOFED], ["MX.KOMMUNE.TEST "]) is not None  # case, spaces


@pytest.mark.parametrize(("values", "expected"), [
    ((SPOOFED,), "kommune.test"),
    ((PASSED,), ""),
    ((f"{OURS}; dmarc=none header.from=kommune.test",), ""),
    ((f"{OURS}; dmarc=temperror",), ""),
    ((f"{OURS}; dmarc=fail",), "kommune.test"),  # no header.from: From:'s domain
    ((f"{OURS}; dmarc=pass header.from=kommune.test", SPOOFED), ""),  # below ours: ignored
    (("evil.test; dmarc=fail header.from=kommune.test",), ""),
    ((), ""),
])
def test_dmarc_failure(values: tuple[str, ...], expected: str) -> None:
    assert dmarc_failure({"authentication-results": values}, APPLICANT, [OURS]) == expected


# -- classify -------------------------------------------------------------------------------
def test_dmarc_fail_makes_an_agenda_reply_from_the_secretarys_address_unauthenticated(
        rules: Rules) -> None:
    """A5: a spoofed decision mail replying to our signed agenda mail decides nothing."""
    agenda = signed_message_id("agenda", "AGD-2027-0308", "kommune.test", SECRET)
    raw = on_thread(SECRETARY, "ITP-2027-0001: Godkendt.", parent=agenda)
    assert isinstance(disposition(raw, rules), AgendaReply)
    found = disposition(with_results(raw, SPOOFED), rules)
    assert isinstance(found, Unauthenticated)
    assert (found.case_ref, found.agenda, found.failed_domain) == (
        None, "AGD-2027-0308", "kommune.test")
    assert found.reason.startswith("dmarc=fail for kommune.test")


def test_dmarc_fail_makes_a_verdict_and_a_followup_unauthenticated_and_quarantines_a_brief(
        rules: Rules) -> None:
    """A verdict, the applicant's klarmelding or withdrawal: recorded on the case, nothing
    applied. A new brief: quarantined, so no receipt goes to a forged address."""
    review = signed_message_id("review", "ITP-2027-0001", "kommune.test", SECRET, review=7)
    verdict = on_thread("arkitekt@kommune.test", "Godkendt.", parent=review)
    klar = on_thread(APPLICANT, "Træk sagen tilbage\n")
    assert isinstance(disposition(verdict, rules), ReviewReply)
    assert isinstance(disposition(klar, rules), CaseMail)
    assert isinstance(disposition(brief(), rules), NewBrief)
    for raw in (verdict, klar):
        found = disposition(with_results(raw, SPOOFED), rules)
        assert isinstance(found, Unauthenticated)
        assert (found.case_ref, found.agenda) == ("ITP-2027-0001", "")
    assert disposition(with_results(brief(), SPOOFED), rules) == Quarantine(
        "dmarc=fail for kommune.test")


def test_pass_absent_foreign_or_unconfigured_leave_the_mail_as_it_was(rules: Rules) -> None:
    agenda = signed_message_id("agenda", "AGD-2027-0308", "kommune.test", SECRET)
    raw = on_thread(SECRETARY, "ITP-2027-0001: Godkendt.", parent=agenda)
    for variant in (with_results(raw, PASSED), raw,
                    with_results(raw, "elsewhere.test; dmarc=fail header.from=kommune.test"),
                    with_results(raw, PASSED, SPOOFED)):
        assert isinstance(disposition(variant, rules), AgendaReply)
    # imap.authserv_id empty (the default): Authentication-Results is not read at all
    assert isinstance(disposition(with_results(raw, SPOOFED), rules, authserv_id=[]),
                      AgendaReply)


def test_machine_mail_with_dmarc_fail_stays_machine_mail(rules: Rules) -> None:
    """A bounce or an out-of-office is never answered anyway; it is not quarantined."""
    raw = with_results(on_thread(APPLICANT, **{"Auto-Submitted": "auto-replied"}), SPOOFED)
    assert not isinstance(disposition(raw, rules), Quarantine)
