"""Issue 11 item 6: mail shapes that broke other helpdesks, each as a kind with variants of
its own (built here in code): charsets whose label lies, raw 8-bit headers, encoded From
names holding a comma, and header blocks as real mail stores write them. The expected value
is the reading a careful person makes."""

from __future__ import annotations

import re
from datetime import date

import pytest

from mailbot.errors import PermanentError
from mailbot.intake.charsets import decode_header_text, decode_text
from mailbot.intake.classify import NewBrief, classify
from mailbot.intake.inspection import inspect_mail, settings_without_config
from mailbot.intake.parse import parse
from mailbot.intake.screen import screen
from mailbot.intake.threads import find_thread
from mailbot.reading.brief import read_brief
from mailbot.rules import Rules
from tests.conftest import shared_path
from tests.mails import brief

BOT = "it.projekter@kommune.test"
C1_OR_REPLACEMENT = re.compile("[\x80-\x9f\ufffd]")

DANISH = ("Hej IT-Projektrådet\n\n"
          "– Hvem: Kontaktperson er Søren Ærø, leder i Børn og Unge. Brugerne er 40 pædagoger.\n"
          "– Hvad: Et nyt system til “fremmøderegistrering” i institutionerne.\n"
          "– Hvor: Børn og Unge, dagtilbud.\n"
          "– Hvornår: I drift 1. august 2027.\n"
          "– Hvorfor: Registreringen sker på papir i dag … og det tager tid.\n"
          "– Hvor meget: 90.000 kr. årligt, betales af Børn og Unge.\n\n"
          "Med venlig hilsen\nSøren\n")
ENGLISH = ("Dear council\n\n"
           "• Who: Contact is Åsa Berg, team lead in Facilities; 25 caretakers use it.\n"
           "• What: A new app for “room inspections” on tablets.\n"
           "• Where: Facilities, Town Hall.\n"
           "• When: In operation on 1 March 2027.\n"
           "• Why: Paper lists get lost – nobody sees the backlog.\n"
           "• How much: 45.000 kr. per year, paid by Facilities.\n\nKind regards\nÅsa\n")


def mail_bytes(headers: list[tuple[str, bytes]], content_type: bytes, body: bytes,
               cte: bytes = b"8bit") -> bytes:
    head = b"".join(name.encode() + b": " + value + b"\r\n" for name, value in headers)
    return (head + b"MIME-Version: 1.0\r\nContent-Type: " + content_type
            + b"\r\nContent-Transfer-Encoding: " + cte + b"\r\n\r\n" + body)


def basic_headers(subject: bytes = b"Projektforslag") -> list[tuple[str, bytes]]:
    return [("From", b"Mette Holm <mette.holm@kommune.test>"), ("To", BOT.encode()),
            ("Subject", subject), ("Date", b"Tue, 03 Mar 2026 10:15:00 +0100"),
            ("Message-ID", b"<shape@kommune.test>")]


def qp(data: bytes) -> bytes:
    import quopri
    return quopri.encodestring(data)


# -- charsets: a label that lies, or none -------------------------------------------------
@pytest.mark.parametrize(("label", "cte", "encode"), [
    (b"iso-8859-1", b"quoted-printable", "cp1252"),  # Outlook's label on windows-1252 bytes
    (b'"ISO-8859-1"', b"8bit", "cp1252"),
    (b"us-ascii", b"8bit", "cp1252"),
    (b"us-ascii", b"quoted-printable", "utf-8"),  # UTF-8 labelled us-ascii
    (b"iso-8859-1", b"8bit", "utf-8"),  # UTF-8 labelled latin-1
    (None, b"8bit", "cp1252"),  # no charset parameter at all
    (None, b"8bit", "utf-8"),
    (b"x-unknown", b"8bit", "cp1252"),
    (b"utf-8", b"8bit", "cp1252"),  # labelled UTF-8, written windows-1252
], ids=lambda value: str(value))
@pytest.mark.parametrize("text", [DANISH, ENGLISH], ids=["da", "en"])
def test_text_parts_whose_label_lies_are_read_right(rules: Rules, label: bytes | None,
                                                    cte: bytes, encode: str, text: str) -> None:
    payload = text.replace("\n", "\r\n").encode(encode)
    body = qp(payload) if cte == b"quoted-printable" else payload
    content_type = b"text/plain" + (b"; charset=" + label if label else b"")
    mail = parse(mail_bytes(basic_headers(), content_type, body, cte))
    assert mail.text.replace("\r\n", "\n") == text.strip()
    reading = read_brief(mail, rules, date(2026, 3, 3))
    assert set(reading.answers) == {"who", "what", "where", "when", "why", "cost"}
    assert all(reading.answers.values())


@pytest.mark.parametrize("label", [b"iso-8859-1", b"us-ascii", b"windows-1252"])
def test_html_labelled_latin1_with_windows_1252_bytes(label: bytes) -> None:
    html = ("<html><body><p>\x96 Hvem: Søren Ærø</p><p>\x93Citat\x94 \x85 slut</p>"
            "</body></html>").encode("latin-1")
    mail = parse(mail_bytes(basic_headers(), b"text/html; charset=" + label, html))
    assert mail.text.replace("\r\n", "\n") == "– Hvem: Søren Ærø\n\n“Citat” … slut"
    assert not C1_OR_REPLACEMENT.search(mail.text)


def test_decode_text_rules() -> None:
    assert decode_text("– “æøå” …".encode("cp1252"), "iso-8859-1") == "– “æøå” …"
    assert decode_text("æøå".encode(), "us-ascii") == "æøå"
    assert decode_text("æøå".encode("cp1252"), None) == "æøå"
    assert decode_text("Grüße".encode("cp1252"), "utf-8") == "Grüße"
    assert decode_text("Ærø".encode("iso-8859-15"), "iso-8859-15") == "Ærø"
    # the five bytes windows-1252 leaves undefined still become characters, never U+FFFD
    assert "\ufffd" not in decode_text(b"a\x81b\x8dc", "iso-8859-1")
    # a UTF-8 name cut inside a character keeps its letters
    cut = "Ansøgning om løsning".encode()[:-1]
    assert decode_text(cut, None).startswith("Ansøgning om løsnin")
    # text in another script, labelled wrongly, is not read as windows-1252 letters
    chinese = "这是一个关于新系统的测试邮件，请查收附件中的文件。".encode("gb18030")
    assert decode_text(chinese, "utf-8") == chinese.decode("gb18030")


# -- raw 8-bit bytes in headers -----------------------------------------------------------
@pytest.mark.parametrize("encode", ["utf-8", "cp1252"])
def test_raw_8bit_subject_from_and_filename(encode: str) -> None:
    parts = ("From: Åse Sørensen <aase@kommune.test>\r\nTo: " + BOT + "\r\n"
             "Subject: Ansøgning – “RuteNet” til Hjemmeplejen\r\n"
             "Date: Tue, 03 Mar 2026 10:15:00 +0100\r\nMessage-ID: <raw8@kommune.test>\r\n"
             "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
             "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHej\r\n--b\r\n"
             "Content-Type: application/pdf; name=\"Ansøgning – bilag.pdf\"\r\n"
             "Content-Disposition: attachment; filename=\"Ansøgning – bilag.pdf\"\r\n"
             "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b\r\n"
             "Content-Type: application/octet-stream\r\n"
             "Content-Disposition: attachment; filename=Økonomi.xlsx\r\n"
             "Content-Transfer-Encoding: base64\r\n\r\nUEsDBA==\r\n--b--\r\n")
    mail = parse(parts.encode(encode))
    assert mail.subject == "Ansøgning – “RuteNet” til Hjemmeplejen"
    assert (mail.from_address, mail.from_name) == ("aase@kommune.test", "Åse Sørensen")
    assert [a.filename for a in mail.attachments] == ["Ansøgning – bilag.pdf", "Økonomi.xlsx"]
    assert mail.headers["subject"] == ("Ansøgning – “RuteNet” til Hjemmeplejen",)


@pytest.mark.parametrize(("raw", "expected"), [
    ("Ans\udcf8gning \udc96 =?utf-8?b?w7g=?= x", "Ansøgning – ø x"),
    ("=?iso-8859-1?q?=96_Ans=F8gning?= og mere", "– Ansøgning og mere"),
    ("=?utf-8?q?a?= =?utf-8?q?b?= c", "ab c"),
    ("=?x-unknown?q?M=E6de?= ok", "Mæde ok"),
    ("Re: =?utf-8?B?W0lUUC0yMDI2LTAwMzVdIEzDuHNuaW5n?=", "Re: [ITP-2026-0035] Løsning"),
])
def test_header_text_is_decoded_by_what_decodes_cleanly(raw: str, expected: str) -> None:
    assert decode_header_text(raw) == expected


# -- From: an encoded display name with a comma ("Efternavn, Fornavn") --------------------
@pytest.mark.parametrize(("header", "address", "name"), [
    ("=?utf-8?Q?S=C3=B8rensen=2C_=C3=85se?= <aase.sorensen@kommune.test>",
     "aase.sorensen@kommune.test", "Sørensen, Åse"),
    ("=?utf-8?B?U8O4cmVuc2VuLCDDhXNl?= <aase.sorensen@kommune.test>",
     "aase.sorensen@kommune.test", "Sørensen, Åse"),
    ("=?iso-8859-1?Q?N=F8rgaard=2C_Bj=F8rn?= <bjoern@kommune.test>",
     "bjoern@kommune.test", "Nørgaard, Bjørn"),
    ('"=?utf-8?Q?Holm=2C_Mette?=" <Mette.Holm@Kommune.test>', "mette.holm@kommune.test",
     "Holm, Mette"),
    ("=?utf-8?Q?Smith=2C_John_=28Facilities=29?= <john.smith@kommune.test>",
     "john.smith@kommune.test", "Smith, John (Facilities)"),
    ("=?windows-1252?Q?=C6r=F8=2C_S=F8ren?=\r\n <soeren@kommune.test>", "soeren@kommune.test",
     "Ærø, Søren"),
])
def test_encoded_from_name_with_a_comma_opens_a_case(rules: Rules, header: str, address: str,
                                                     name: str) -> None:
    raw = brief(sender="placeholder@kommune.test").replace(
        b"From: placeholder@kommune.test", b"From: " + header.encode())
    mail = parse(raw)
    assert (mail.from_address, mail.from_name) == (address, name)
    settings = settings_without_config(BOT)
    disposition = classify(mail, screen(mail, rules, BOT),
                           find_thread(mail, "kommune.test", b""), settings, rules, None)
    assert isinstance(disposition, NewBrief)


@pytest.mark.parametrize("header", [
    "=?utf-8?Q?a=40evil.example?= <a@kommune.test>, b@kommune.test",
    "=?utf-8?Q?Holm=2C_Mette?= <mette@kommune.test>, <anna@kommune.test>",
    "a@kommune.test, b@kommune.test",
])
def test_two_addresses_stay_ambiguous(header: str) -> None:
    raw = brief(sender="placeholder@kommune.test").replace(
        b"From: placeholder@kommune.test", b"From: " + header.encode())
    assert parse(raw).from_address == ""


def test_an_encoded_word_that_hides_an_address_does_not_replace_the_real_one() -> None:
    raw = brief(sender="placeholder@kommune.test").replace(
        b"From: placeholder@kommune.test",
        b"From: =?utf-8?Q?direktoer=40kommune.test?= <mette@leverandoer.example>")
    mail = parse(raw)
    assert (mail.from_address, mail.from_name) == ("mette@leverandoer.example",
                                                   "direktoer@kommune.test")


# -- header blocks as mail stores write them ----------------------------------------------
GOOD = brief(sender="Mette Holm <mette.holm@kommune.test>", attachments=(),
             subject="Projektforslag: Ny mødebooking")


@pytest.mark.parametrize(("name", "raw"), [
    ("mbox From line", b"From mette.holm@kommune.test Tue Mar  3 10:15:00 2026\n" + GOOD),
    ("escaped mbox line", b">From mette.holm@kommune.test Tue Mar  3 10:15:00 2026\r\n" + GOOD),
    ("leading empty line", b"\r\n" + GOOD),
    ("byte-order mark", b"\xef\xbb\xbf" + GOOD),
    ("export line", b"Message 3 of 12\r\n" + GOOD),
    ("two stray lines", b"Return-path mette.holm@kommune.test\r\n-----\r\n" + GOOD),
    ("subject continuation without white space",
     GOOD.replace(b"Subject: Projektforslag: Ny m", b"Subject: Projektforslag:\r\nNy m")),
    ("to continuation without white space",
     GOOD.replace(b"To: it.projekter@kommune.test",
                  b"To: it.projekter@kommune.test,\r\nanna@kommune.test")),
])
def test_header_blocks_of_mail_stores_are_read_as_mail(rules: Rules, name: str,
                                                       raw: bytes) -> None:
    mail = parse(raw)
    assert mail.from_address == "mette.holm@kommune.test", name
    assert mail.subject in ("Projektforslag: Ny mødebooking", "Projektforslag: Ny mødebooking")
    assert "Hvem: Mette Holm" in mail.text
    assert mail.message_id.endswith("@kommune.test>")
    reading = read_brief(mail, rules, date(2026, 11, 2))
    assert all(reading.answers.values())


def test_a_folded_to_keeps_both_recipients() -> None:
    raw = GOOD.replace(b"To: it.projekter@kommune.test",
                       b"To: it.projekter@kommune.test,\r\nanna@kommune.test")
    assert parse(raw).to == ("it.projekter@kommune.test", "anna@kommune.test")


def test_what_is_no_mail_stays_no_mail() -> None:
    with pytest.raises(PermanentError, match="no mail header"):
        parse(b"Hej\r\nDette er bare tekst\r\nuden nogen headere\r\n")
    with pytest.raises(PermanentError, match="no mail header"):
        parse(b"\x00\x01 garbage \xff")


def test_a_body_without_separator_is_not_folded_into_the_headers() -> None:
    """Lines after the last header stay body text (a missing separator, SCENARIOS P4)."""
    raw = (b"From: mette@kommune.test\r\nSubject: Forslag\r\nDate: Tue, 03 Mar 2026 10:15:00"
           b" +0100\r\nHvem: Mette\r\nsom skriver uden tom linje\r\n")
    mail = parse(raw)
    assert mail.subject == "Forslag"
    # a first body line right below the headers is not folded into the Subject, and the
    # label lines below it stay the brief's text
    raw = (b"From: mette@kommune.test\r\nSubject: Forslag\r\nHej IT-Projektr\xc3\xa5det\r\n"
           b"Hvem: Mette Holm\r\nHvad: Et nyt system\r\n")
    mail = parse(raw)
    assert mail.subject == "Forslag"
    assert "Hvem: Mette Holm" in mail.text and "Hvad: Et nyt system" in mail.text


# -- the public bugs of these kinds (../shared, skipped when absent) ----------------------
def test_public_bug_iso_8859_1_label_really_cp1252(rules: Rules) -> None:
    path = shared_path("cases", "public-bugs", "10-iso-8859-1-label-really-cp1252.eml")
    reading = inspect_mail(path.read_bytes(), rules, settings_without_config(
        "it.projekter@albertslund.dk"))
    assert reading["kind"] == "brief"
    assert all(reading["answers"].values()) and not set(reading["missing"]) & {
        "who", "what", "where", "when", "why", "cost"}
    assert "“RuteNet”" in reading["answers"]["what"]


def test_public_bug_from_encoded_comma(rules: Rules) -> None:
    path = shared_path("cases", "public-bugs", "12-from-encoded-comma-lastname-firstname.eml")
    mail = parse(path.read_bytes())
    assert (mail.from_address, mail.from_name) == ("aase.sorensen@albertslund.dk",
                                                   "Sørensen, Åse")
    reading = inspect_mail(path.read_bytes(), rules, settings_without_config(
        "it.projekter@albertslund.dk"))
    assert reading["kind"] == "brief"


@pytest.mark.parametrize(("raw", "read"), [
    ("Projektforslag: =?utf-8?q?=C3=B8konomi,?=\r\n gevinstrealisering",
     "Projektforslag: økonomi, gevinstrealisering"),
    ("=?utf-8?q?Ny_m=C3=B8debooking?= til Borgerservice", "Ny mødebooking til Borgerservice"),
    ("Sag om =?utf-8?q?=C3=A6ndring?=", "Sag om ændring"),
    ("=?utf-8?q?K=C3=A6re?=\r\n =?utf-8?q?_Mette?=", "Kære Mette"),
])
def test_the_space_beside_an_encoded_word_is_kept(raw: str, read: str) -> None:
    """A subject folded after an encoded-word keeps the space before the next plain word
    (RFC 2047 section 6.2 drops only the white space between two encoded-words): the
    trial of issue #16 saw "økonomi,gevinstrealisering" in a case title."""
    assert decode_header_text(raw) == read
