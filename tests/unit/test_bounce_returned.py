"""Issue 11 item 6, bounces: the case is found in the message a bounce returns, when its
Subject is an encoded-word, in message/rfc822, message/global, text/rfc822-headers, or in a
copy pasted below a "copy of the message" line (so the bounce is attached to its case)."""

from __future__ import annotations

import base64
from email.header import Header

import pytest

from mailbot.intake.inspection import inspect_mail, settings_without_config
from mailbot.intake.parse import parse
from mailbot.intake.screen import screen
from mailbot.intake.threads import find_thread, signed_message_id
from mailbot.rules import Rules
from tests.conftest import shared_path

BOT = "it.projekter@kommune.test"
DOMAIN = "kommune.test"
SECRET = b"bounce test secret"


def encoded(subject: str, charset: str = "utf-8", encoding: str = "b") -> str:
    if encoding == "b":
        return f"=?{charset}?B?{base64.b64encode(subject.encode(charset)).decode()}?="
    return Header(subject, charset).encode()


def returned_headers(subject: str, message_id: str = "<receipt-1@kommune.test>") -> str:
    return (f"From: =?utf-8?q?IT-Projektr=C3=A5det?= <{BOT}>\r\n"
            "To: <kontrakt@leverandoer.example>\r\n"
            f"Subject: {subject}\r\n"
            "Date: Wed, 18 Feb 2026 13:40:00 +0100\r\n"
            f"Message-ID: {message_id}\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n")


def report(returned_type: str, returned: str, outer_subject: str = "Delivery Status "
           "Notification (Failure)") -> bytes:
    return (f"From: Mail Delivery System <MAILER-DAEMON@mx.kommune.test>\r\nTo: {BOT}\r\n"
            f"Subject: {outer_subject}\r\nDate: Wed, 18 Feb 2026 13:41:00 +0100\r\n"
            "Message-ID: <dsn-returned@mx.kommune.test>\r\nMIME-Version: 1.0\r\n"
            "Auto-Submitted: auto-replied\r\n"
            "Content-Type: multipart/report; report-type=delivery-status; boundary=\"R\"\r\n\r\n"
            "--R\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            "Din meddelelse kunne ikke leveres.\r\n"
            "--R\r\nContent-Type: message/delivery-status\r\n\r\n"
            "Reporting-MTA: dns; mx.kommune.test\r\n\r\n"
            "Final-Recipient: rfc822; kontrakt@leverandoer.example\r\nAction: failed\r\n"
            "Status: 5.1.1\r\n\r\n"
            f"--R\r\nContent-Type: {returned_type}\r\n\r\n{returned}\r\n--R--\r\n").encode()


def plain_bounce(text: str) -> bytes:
    return (f"From: MAILER-DAEMON@mail.leverandoer.example\r\nTo: {BOT}\r\n"
            "Subject: failure notice\r\nDate: Wed, 18 Feb 2026 13:41:00 +0100\r\n"
            "Message-ID: <plain-bounce@leverandoer.example>\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n" + text).encode()


SUBJECT = "[ITP-2026-0035] Anmodning om review: Løsning til ruteplanlægning"


def case_of(raw: bytes, rules: Rules) -> tuple[str, str | None]:
    mail = parse(raw)
    screening = screen(mail, rules, BOT)
    thread = find_thread(mail, DOMAIN, SECRET, BOT, bounce=screening.category == "bounce")
    return screening.category, thread.case_ref


@pytest.mark.parametrize("subject", [
    encoded(SUBJECT), encoded(SUBJECT, "utf-8", "q"), encoded(SUBJECT, "iso-8859-1", "q"),
    encoded(SUBJECT, "iso-8859-1", "b"), SUBJECT,
    # folded over two encoded-words, the tag split between them
    encoded(SUBJECT[:6]) + "\r\n " + encoded(SUBJECT[6:]),
    "SV: " + encoded(SUBJECT),
], ids=["utf8-b", "utf8-q", "latin1-q", "latin1-b", "plain", "split", "prefixed"])
@pytest.mark.parametrize("returned_type", ["message/rfc822", "text/rfc822-headers"])
def test_case_ref_in_the_returned_subject(rules: Rules, subject: str,
                                         returned_type: str) -> None:
    raw = report(returned_type, returned_headers(subject) + "\r\nTil leverandøren\r\n")
    assert case_of(raw, rules) == ("bounce", "ITP-2026-0035")
    reading = inspect_mail(raw, rules, settings_without_config(BOT))
    assert reading == {"kind": "bounce", "case_ref": "ITP-2026-0035"}


def test_message_global_with_utf8_subject(rules: Rules) -> None:
    raw = report("message/global", returned_headers(SUBJECT) + "\r\nHej\r\n")
    assert case_of(raw, rules) == ("bounce", "ITP-2026-0035")


def test_our_signed_message_id_in_the_returned_message_names_case_and_review(
        rules: Rules) -> None:
    ours = signed_message_id("review", "ITP-2026-0041", DOMAIN, SECRET, review=3)
    raw = report("text/rfc822-headers", returned_headers("Anmodning om review", ours))
    mail = parse(raw)
    thread = find_thread(mail, DOMAIN, SECRET, BOT, bounce=True)
    assert (thread.case_ref, thread.review, thread.via) == ("ITP-2026-0041", 3,
                                                            "returned-message-id")


@pytest.mark.parametrize("text", [
    # qmail
    "Hi. This is the qmail-send program at mail.leverandoer.example.\r\n"
    "I'm afraid I wasn't able to deliver your message to the following addresses.\r\n\r\n"
    "<kontrakt@leverandoer.example>:\r\nSorry, no mailbox here by that name.\r\n\r\n"
    "--- Below this line is a copy of the message.\r\n\r\n{headers}\r\nTil leverandøren\r\n",
    # Exim
    "This message was created automatically by mail delivery software.\r\n\r\n"
    "A message that you sent could not be delivered to one or more of its recipients.\r\n\r\n"
    "  kontrakt@leverandoer.example\r\n    mailbox unavailable\r\n\r\n"
    "------ This is a copy of the message, including all the headers. ------\r\n\r\n"
    "{headers}\r\nTil leverandøren\r\n",
    # sendmail
    "The original message was received at Wed, 18 Feb 2026 13:40:00 +0100\r\n\r\n"
    "   ----- Unsent message follows -----\r\n{headers}\r\nTil leverandøren\r\n",
    # Danish
    "Meddelelsen kunne ikke leveres til kontrakt@leverandoer.example.\r\n\r\n"
    "Her følger en kopi af den oprindelige meddelelse:\r\n\r\n{headers}\r\nTil leverandøren\r\n",
], ids=["qmail", "exim", "sendmail", "danish"])
def test_case_ref_in_a_copy_pasted_below_the_text(rules: Rules, text: str) -> None:
    raw = plain_bounce(text.format(headers=returned_headers(encoded(SUBJECT))))
    assert case_of(raw, rules) == ("bounce", "ITP-2026-0035")


def test_a_bounce_that_returns_nothing_names_no_case(rules: Rules) -> None:
    raw = plain_bounce("Sorry, your message could not be delivered.\r\n")
    assert case_of(raw, rules) == ("bounce", None)


def test_the_bounce_own_subject_still_counts(rules: Rules) -> None:
    raw = report("text/rfc822-headers", returned_headers("[ITP-2026-0099] x"),
                 outer_subject="Undeliverable: [ITP-2026-0035] Anmodning om review")
    assert case_of(raw, rules) == ("bounce", "ITP-2026-0035")


def test_a_person_forwarding_our_mail_is_not_matched_by_the_enclosed_message(
        rules: Rules) -> None:
    """Only a bounce is matched by the message it returns: a person who attaches one of our
    mails to a new brief does not put the brief on that case."""
    raw = (f"From: Mette Holm <mette@kommune.test>\r\nTo: {BOT}\r\n"
           "Subject: Projektforslag: nyt system\r\nDate: Wed, 18 Feb 2026 13:41:00 +0100\r\n"
           "Message-ID: <fwd@kommune.test>\r\nMIME-Version: 1.0\r\n"
           "Content-Type: multipart/mixed; boundary=\"F\"\r\n\r\n"
           "--F\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSe vedhæftede.\r\n"
           "--F\r\nContent-Type: message/rfc822\r\n\r\n" + returned_headers(encoded(SUBJECT))
           + "\r\nHej\r\n--F--\r\n").encode()
    assert case_of(raw, rules) == ("human", None)


def test_public_bug_dsn_returned_subject_encoded_word(rules: Rules) -> None:
    path = shared_path("cases", "public-bugs", "13-dsn-returned-subject-encoded-word.eml")
    reading = inspect_mail(path.read_bytes(), rules, settings_without_config(
        "it.projekter@albertslund.dk"))
    assert reading == {"kind": "bounce", "case_ref": "ITP-2026-0035"}
