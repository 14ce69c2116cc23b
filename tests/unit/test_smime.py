"""S/MIME (issue 11, item 6; RFC 8551): an opaque-signed mail is read as the mail inside it,
an encrypted one is recognised (and answered, tests/e2e/test_smime.py) without a case. The
mails are built here with `cryptography` and a throwaway key; the public-bugs mail of ../shared
is read through `inspect` (skipped when ../shared is absent)."""

from __future__ import annotations

import base64
from datetime import date

import pytest

from mailbot.intake.classify import EncryptedMail
from mailbot.intake.inspection import inspect_details, settings_without_config
from mailbot.intake.parse import parse
from mailbot.intake.smime import MAX_SMIME_DEPTH
from mailbot.reading.brief import read_brief
from mailbot.rules import Rules
from tests.conftest import SHARED
from tests.docs import docx, pdf
from tests.mails import COMPLETE_BODY
from tests.smime_writer import enveloped_der, mail, signed_der, smime_entity

TODAY = date(2026, 11, 27)
SETTINGS = settings_without_config("it.projekter@kommune.test")
ENGLISH = ("Who: Mette Holm, Citizen Services, 12 users.\nWhat: A booking system.\n"
           "Where: Citizen Services.\nWhen: 1 March 2027.\nWhy: Double bookings.\n"
           "How much: DKK 50,000, paid by Citizen Services.\n")


def b64(data: bytes) -> str:
    return base64.encodebytes(data).decode("ascii").replace("\n", "\r\n")


def inner_mixed(body: str, files: dict[str, bytes], html: bool = False) -> bytes:
    """The signed MIME entity: the brief and its documents."""
    text = f'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: base64' \
           f"\r\n\r\n{b64(body.encode())}"
    if html:
        markup = "<p>" + "</p><p>".join(body.splitlines()) + "</p>"
        text = ('Content-Type: multipart/alternative; boundary="a"\r\n\r\n--a\r\n' + text +
                '\r\n--a\r\nContent-Type: text/html; charset="utf-8"\r\n'
                f"Content-Transfer-Encoding: base64\r\n\r\n{b64(markup.encode())}\r\n--a--")
    parts = [text] + [
        (f'Content-Type: application/octet-stream; name="{name}"\r\n' if name else
         "Content-Type: application/pdf\r\n") +
        (f'Content-Disposition: attachment; filename="{name}"\r\n' if name else "") +
        f"Content-Transfer-Encoding: base64\r\n\r\n{b64(data)}"
        for name, data in files.items()]
    return ('Content-Type: multipart/mixed; boundary="inner"\r\n\r\n' +
            "".join(f"--inner\r\n{p}\r\n" for p in parts) + "--inner--\r\n").encode()


FOUR = {"Teknisk beskrivelse.pdf": pdf("Teknisk beskrivelse"),
        "Udkast til kontrakt.docx": docx("Udkast til kontrakt"),
        "Databehandleraftale.pdf": pdf("Databehandleraftale"),
        "Business case.docx": docx("Business case")}


def reading_of(raw: bytes, rules: Rules) -> tuple[dict[str, str], list[str], str]:
    parsed = parse(raw)
    reading = read_brief(parsed, rules, TODAY)
    return ({d.filename: d.kind for d in reading.documents}, list(reading.missing),
            parsed.smime)


SIGNED = [
    ("application/pkcs7-mime, Danish brief and four documents",
     smime_entity(signed_der(inner_mixed(COMPLETE_BODY, FOUR))), 4, []),
    ("application/x-pkcs7-mime (older Outlook), text and HTML",
     smime_entity(signed_der(inner_mixed(COMPLETE_BODY, FOUR, html=True)),
                  "application/x-pkcs7-mime"), 4, []),
    ("application/octet-stream named smime.p7m, no smime-type: the DER decides",
     smime_entity(signed_der(inner_mixed(ENGLISH, {"": pdf("Technical description")})),
                  "application/octet-stream", None), 1,
     ["contract_draft", "dpa_draft", "business_case"]),
    ("English text/plain only, no documents",
     smime_entity(signed_der(b'Content-Type: text/plain; charset="utf-8"\r\n\r\n'
                             + ENGLISH.encode())), 0,
     ["technical_description", "contract_draft", "dpa_draft", "business_case"]),
    ("signed twice (a gateway signs a signed mail)",
     smime_entity(signed_der(smime_entity(signed_der(inner_mixed(COMPLETE_BODY, FOUR))))), 4,
     []),
]


@pytest.mark.parametrize(("what", "entity", "documents", "missing"), SIGNED,
                         ids=[s[0] for s in SIGNED])
def test_opaque_signed_mail_is_read_as_its_inner_mail(rules: Rules, what: str, entity: bytes,
                                                      documents: int,
                                                      missing: list[str]) -> None:
    found, missing_now, state = reading_of(mail(entity), rules)
    assert state == "signed"
    assert len(found) == documents and "other" not in found.values()
    assert sorted(missing_now) == sorted(missing)  # all six answers found


def test_headers_come_from_the_outer_mail(rules: Rules) -> None:
    parsed = parse(mail(smime_entity(signed_der(inner_mixed(COMPLETE_BODY, FOUR)))))
    assert parsed.from_address == "mette.holm@kommune.test"
    assert parsed.subject == "Projektforslag: Mødebooking"
    assert parsed.message_id == "<smime@kommune.test>"


def test_too_deep_nesting_is_left_unread_without_a_crash(rules: Rules) -> None:
    entity = inner_mixed(COMPLETE_BODY, FOUR)
    for _ in range(MAX_SMIME_DEPTH + 1):
        entity = smime_entity(signed_der(entity))
    parsed = parse(mail(entity))
    assert any("nested more than" in d for d in parsed.defects)
    assert [a.filename for a in parsed.attachments] == ["smime.p7m"]


def test_broken_der_is_an_unread_attachment(rules: Rules) -> None:
    parsed = parse(mail(smime_entity(b"\x30\x82\xff\xff garbage")))
    assert parsed.smime == "" and any("unreadable S/MIME" in d for d in parsed.defects)
    assert [a.filename for a in parsed.attachments] == ["smime.p7m"]


def test_clear_signed_signature_is_no_document(rules: Rules) -> None:
    inner = inner_mixed(COMPLETE_BODY, FOUR)
    raw = mail(b'Content-Type: multipart/signed; protocol="application/pkcs7-signature"; '
               b'micalg=sha-256; boundary="s"\r\n\r\n--s\r\n' + inner + b"\r\n--s\r\n"
               b'Content-Type: application/pkcs7-signature; name="smime.p7s"\r\n'
               b'Content-Disposition: attachment; filename="smime.p7s"\r\n'
               b"Content-Transfer-Encoding: base64\r\n\r\n"
               b"MIAGCSqGSIb3DQEHAqCAMIACAQE=\r\n--s--\r\n")
    found, missing, _ = reading_of(raw, rules)
    assert "smime.p7s" not in found and len(found) == 4 and missing == []


ENCRYPTED = [
    ("application/pkcs7-mime; smime-type=enveloped-data",
     smime_entity(enveloped_der(inner_mixed(COMPLETE_BODY, FOUR)), smime_type="enveloped-data")),
    ("x-pkcs7-mime without smime-type: the DER decides",
     smime_entity(enveloped_der(b"Content-Type: text/plain\r\n\r\nHej"),
                  "application/x-pkcs7-mime", None)),
    ("signed, then encrypted inside",
     smime_entity(signed_der(smime_entity(enveloped_der(b"Content-Type: text/plain\r\n\r\nHej"),
                                          smime_type="enveloped-data")))),
]


@pytest.mark.parametrize(("what", "entity"), ENCRYPTED, ids=[e[0] for e in ENCRYPTED])
def test_encrypted_mail_is_recognised_and_opens_no_case(rules: Rules, what: str,
                                                        entity: bytes) -> None:
    raw = mail(entity)
    assert parse(raw).smime == "encrypted"
    shape, details = inspect_details(raw, rules, SETTINGS, TODAY)
    assert shape["kind"] == "encrypted"
    assert details["disposition"] == EncryptedMail.__name__


def test_public_bug_06_opaque_signed(rules: Rules) -> None:
    path = SHARED / "cases" / "public-bugs" / "06-smime-opaque-signed-p7m.eml"
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared is not beside this checkout)")
    shape, _ = inspect_details(path.read_bytes(), rules,
                               settings_without_config("it.projekter@albertslund.dk"),
                               date(2026, 3, 3))
    assert shape["kind"] == "brief" and shape["missing"] == []
    assert all(answer for answer in shape["answers"].values())
    assert set(shape["documents"].values()) == {
        "technical_description", "contract_draft", "dpa_draft", "business_case"}
