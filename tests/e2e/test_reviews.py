"""Reviewers by email, end to end on Dovecot + aiosmtpd, with `now` moved where needed."""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import make_msgid

import pytest
from sqlmodel import Session, select

from mailbot.clock import COPENHAGEN
from mailbot.models import Review
from tests.conftest import World

pytestmark = pytest.mark.e2e

ROLES = ("it_operations", "it_architect", "contract_manager", "security_coordinator")
FRIDAY = datetime(2027, 5, 14, 10, 0, tzinfo=COPENHAGEN)  # Whit Monday is 17 May 2027


def body_of(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def attachments_of(msg: EmailMessage) -> list[str]:
    return sorted(str(p.get_filename()) for p in msg.iter_attachments())


def request_for(world: World, role: str) -> EmailMessage:
    requests = [m for m in world.received_by(world.reviewer(role))
                if "Anmodning om vurdering" in str(m["Subject"])]
    assert requests, f"no request reached {role}"
    return requests[-1]


def reply(world: World, to: EmailMessage, sender: str, own_text: str, style: str = "outlook",
          headers: dict[str, str] | None = None, thread_headers: bool = True,
          recipient: str = "") -> bytes:
    """A reply as Outlook (top-posted, Fra:/Sendt: block) or Gmail ("Den ... skrev:", > quotes)
    writes it: the quoted original is full of "Godkendt" and "Kan ikke anbefales"."""
    original = body_of(to)
    if style == "outlook":
        quoted = (f"\n\n________________________________\nFra: {to['From']}\n"
                  f"Sendt: fredag den 14. maj 2027 10:00\nTil: {sender}\nEmne: {to['Subject']}\n\n"
                  f"{original}")
    else:
        quoted = ("\n\nDen fre. 14. maj 2027 kl. 10.00 skrev IT-Projektrådet <"
                  f"{world.bot_address}>:\n" + "\n".join(f"> {line}" for line in
                                                        original.splitlines()))
    msg = EmailMessage(policy=SMTP)
    msg["From"] = sender
    msg["To"] = recipient or world.bot_address
    msg["Subject"] = f"SV: {to['Subject']}"
    msg["Message-ID"] = make_msgid(domain="kommune.test")
    if thread_headers:
        msg["In-Reply-To"] = str(to["Message-ID"]).strip()
        msg["References"] = str(to["Message-ID"]).strip()
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(own_text + quoted)
    return msg.as_bytes()


def reviews(world: World) -> dict[str, Review]:
    with Session(world.bot().engine) as session:
        rows = session.exec(select(Review)).all()
    return {r.role: r for r in rows if r.state != "superseded"}


def complete_brief(world: World) -> None:
    world.deliver(world.brief())
    world.run_once(FRIDAY)


# -- routing -----------------------------------------------------------------------------------
def test_each_role_gets_one_request_with_only_its_documents(world: World) -> None:
    complete_brief(world)
    expected = {
        "it_operations": ["Teknisk beskrivelse.pdf"],
        "it_architect": ["Teknisk beskrivelse.pdf"],
        "contract_manager": ["Udkast til kontrakt.docx"],
        "security_coordinator": ["Databehandleraftale udkast.pdf"],
    }
    for role, documents in expected.items():
        [request] = world.received_by(world.reviewer(role))
        assert attachments_of(request) == documents, role
        text = body_of(request)
        assert "Hvem: Mette Holm" in text and "svar blot på denne mail" in text.lower()
        assert request["Auto-Submitted"] == "auto-generated"  # the bot starts it (RFC 3834)
    assert set(reviews(world)) == set(ROLES)
    assert all(r.state == "requested" for r in reviews(world).values())


def test_declaration_is_shown_to_the_reviewer_of_that_document(world: World) -> None:
    body = ("Hvem: Mette\nHvad: System\nHvor: Borgerservice\nHvornår: 1. marts 2027\n"
            "Hvorfor: Kø\nHvor meget: 10.000 kr.\n\nVi skal ikke have en kontrakt, "
            "da det er et gratis værktøj.\n")
    world.deliver(world.brief(body=body, attachments=("Teknisk beskrivelse.pdf",
                                                      "Databehandleraftale.pdf",
                                                      "Business case.docx")))
    world.run_once(FRIDAY)
    assert world.received_by(world.reviewer("contract_manager")) == []
    assert "contract_manager" not in reviews(world)


# -- verdicts ----------------------------------------------------------------------------------
def test_replies_in_real_styles_give_the_right_verdict_on_the_right_review(world: World) -> None:
    complete_brief(world)
    answers = {
        "it_architect": ("OK fra arkitektsiden. En lille bemærkning: login skal ske via "
                         "kommunens SSO.\n\nVenlig hilsen\nSøren", "outlook", "approved"),
        "contract_manager": ("Jeg har læst kontraktudkastet. Jeg kan ikke godkende det i den "
                             "nuværende form:\n\n1. Der mangler en exit-klausul.\n\nMvh.\nPernille",
                             "outlook", "changes_requested"),
        "security_coordinator": ("Det er ikke foreneligt med vores politik. Jeg kan derfor ikke "
                                 "anbefale projektet og afviser det.\n\nVenlig hilsen\nTina",
                                 "gmail", "rejected"),
        "it_operations": ("Ingen bemærkninger herfra.", "gmail", "approved"),
    }
    for role, (text, style, _) in answers.items():
        world.deliver(reply(world, request_for(world, role), world.reviewer(role), text, style))
    world.run_once(FRIDAY.replace(hour=11))

    found = reviews(world)
    for role, (text, _, verdict) in answers.items():
        assert found[role].verdict == verdict, role
        assert found[role].comment.startswith(text.split("\n")[0])
        assert "Kære" not in found[role].comment  # nothing of the quoted request
    case_json = world.cli("case", "ITP-2027-0001", "--json").stdout
    assert '"verdict": "rejected"' in case_json and '"role": "contract_manager"' in case_json


def test_guidance_reaches_the_applicant_in_one_batched_mail(world: World) -> None:
    complete_brief(world)
    for role, text in (("it_architect", "Godkendt, men husk SSO."),
                       ("contract_manager", "Kontrakten mangler en exit-klausul - ret venligst.")):
        world.deliver(reply(world, request_for(world, role), world.reviewer(role), text))
    world.run_once(FRIDAY.replace(hour=11))
    assert len(world.received_by(world.applicant)) == 1  # only the receipt so far

    world.run_once(FRIDAY.replace(hour=11, minute=10))

    _receipt, guidance = world.received_by(world.applicant)
    text = body_of(guidance)
    assert "husk SSO" in text and "exit-klausul" in text
    assert "IT-arkitekten: godkendt" in text and "Den kontraktansvarlige: ønsker rettelser" in text
    world.run_once(FRIDAY.replace(hour=12))
    assert len(world.received_by(world.applicant)) == 2


def test_unclear_reply_is_asked_back_once_and_never_guessed(world: World) -> None:
    complete_brief(world)
    request = request_for(world, "it_operations")
    world.deliver(reply(world, request, world.reviewer("it_operations"), "Jeg kigger på det."))
    world.run_once(FRIDAY.replace(hour=11))
    assert reviews(world)["it_operations"].verdict is None
    ask = [m for m in world.received_by(world.reviewer("it_operations"))
           if "Din vurdering" in str(m["Subject"])]
    assert len(ask) == 1 and "Godkendt" in body_of(ask[0])


def test_out_of_office_from_a_reviewer_is_no_verdict_and_gets_no_answer(world: World) -> None:
    complete_brief(world)
    request = request_for(world, "it_architect")
    world.deliver(reply(world, request, world.reviewer("it_architect"),
                        "Jeg er på ferie. Godkendt af min stedfortræder? Spørg Bo.",
                        headers={"Auto-Submitted": "auto-replied"}))
    world.run_once(FRIDAY.replace(hour=11))
    assert reviews(world)["it_architect"].verdict is None
    assert len(world.received_by(world.reviewer("it_architect"))) == 1  # just the request


# -- identity ----------------------------------------------------------------------------------
def _not_applied(world: World, role: str, reason_part: str) -> None:
    assert reviews(world)[role].verdict is None
    attention = [m for m in world.received_by(world.secretary)
                 if "Til opmærksomhed" in str(m["Subject"])]
    assert attention and reason_part in body_of(attention[-1])


def test_valid_token_from_another_sender_is_not_applied(world: World) -> None:
    complete_brief(world)
    request = request_for(world, "contract_manager")
    world.deliver(reply(world, request, "kollega@kommune.test", "Godkendt."))
    world.run_once(FRIDAY.replace(hour=11))
    _not_applied(world, "contract_manager", "og ikke fra den, anmodningen blev sendt til")
    assert world.smtp.to("kollega@kommune.test") == []  # the sender learns nothing


def test_forged_from_without_our_id_is_not_applied(world: World) -> None:
    complete_brief(world)
    forged = world.brief(sender=world.reviewer("security_coordinator"),
                         subject="SV: [ITP-2027-0001] Anmodning", body="Godkendt.",
                         attachments=())
    world.deliver(forged)
    world.run_once(FRIDAY.replace(hour=11))
    _not_applied(world, "security_coordinator", "uden at svare på vores anmodning")


def test_tampered_token_is_not_applied(world: World) -> None:
    complete_brief(world)
    request = request_for(world, "it_architect")
    message_id = str(request["Message-ID"]).strip()
    tampered = message_id.replace(".0.", ".1.") if ".0." in message_id else \
        message_id[:-20] + ("a" if message_id[-20] != "a" else "b") + message_id[-19:]
    raw = reply(world, request, world.reviewer("it_architect"), "Godkendt.")
    raw = raw.replace(message_id.encode(), tampered.encode())
    world.deliver(raw)
    world.run_once(FRIDAY.replace(hour=11))
    _not_applied(world, "it_architect", "beskadiget eller forfalsket id")


def test_reply_to_a_request_forwarded_to_a_colleague_is_not_applied(world: World) -> None:
    complete_brief(world)
    request = request_for(world, "it_operations")
    forwarded_id = make_msgid(domain="kommune.test")
    raw = reply(world, request, "driftskollega@kommune.test", "Godkendt fra min side.")
    raw = raw.replace(b"References: ", f"References: {forwarded_id} ".encode(), 1)
    world.deliver(raw)
    world.run_once(FRIDAY.replace(hour=11))
    _not_applied(world, "it_operations", "driftskollega@kommune.test")


# -- new versions, status, reminders -------------------------------------------------------------
def test_second_version_of_the_contract_is_routed_again_and_supersedes(world: World) -> None:
    complete_brief(world)
    world.deliver(reply(world, request_for(world, "contract_manager"),
                        world.reviewer("contract_manager"), "Mangler exit-klausul."))
    world.run_once(FRIDAY.replace(hour=11))
    [receipt] = world.received_by(world.applicant)
    v2 = world.brief(subject=f"SV: {receipt['Subject']}", body="Her er v2 af kontrakten.",
                     attachments=("Udkast til kontrakt v2.docx",),
                     headers={"In-Reply-To": str(receipt["Message-ID"]).strip()})
    world.deliver(v2)
    world.run_once(FRIDAY.replace(hour=12))

    with Session(world.bot().engine) as session:
        contract = session.exec(select(Review).where(Review.role == "contract_manager")).all()
    assert [(r.state, r.verdict) for r in contract] == [
        ("superseded", "changes_requested"), ("requested", None)]
    newest = request_for(world, "contract_manager")
    assert attachments_of(newest) == ["Udkast til kontrakt v2.docx"]
    assert "ny version" in body_of(newest)
    assert len(world.received_by(world.reviewer("it_operations"))) == 1  # not re-sent


def test_status_on_the_thread_returns_the_checklist(world: World) -> None:
    world.deliver(world.brief(attachments=("Teknisk beskrivelse.pdf",)))
    world.run_once(FRIDAY)
    [receipt] = world.received_by(world.applicant)
    world.deliver(world.brief(subject=f"SV: {receipt['Subject']}", body="status\n",
                              attachments=(),
                              headers={"In-Reply-To": str(receipt["Message-ID"]).strip()}))
    world.run_once(FRIDAY.replace(hour=11))
    _, status = world.received_by(world.applicant)
    text = body_of(status)
    assert "Her er status for sag" in text and "Udkast til kontrakt" in text
    assert "IT-drift: afventer svar" in text
    # Friday 14 May 2027 11:00: the deadline for the 24 May meeting would be Monday 17 May,
    # Whit Monday, so it moves back to Friday 14 May 12:00 (the council's calendar)
    assert "Næste frist" in text and "fredag 14. maj 2027 kl. 12.00" in text
    assert "mødet 24. maj 2027" in text
    assert "(mødet 24. maj 2027)" in text


def test_reminders_count_working_days_and_stop_after_two(world: World) -> None:
    complete_brief(world)  # Friday 14 May 2027, 10:00; Monday 17 May is Whit Monday

    def reminders() -> int:
        return sum("Påmindelse" in str(m["Subject"])
                   for m in world.received_by(world.reviewer("it_operations")))

    world.run_once(datetime(2027, 5, 19, 11, 0, tzinfo=COPENHAGEN))  # Wednesday: 2 working days
    assert reminders() == 0
    world.run_once(datetime(2027, 5, 20, 10, 30, tzinfo=COPENHAGEN))  # Thursday: 3
    assert reminders() == 1
    world.run_once(datetime(2027, 5, 21, 10, 30, tzinfo=COPENHAGEN))
    assert reminders() == 1
    world.run_once(datetime(2027, 5, 25, 10, 31, tzinfo=COPENHAGEN))  # 3 more: Tuesday
    assert reminders() == 2
    world.run_once(datetime(2027, 5, 28, 11, 0, tzinfo=COPENHAGEN))
    world.run_once(datetime(2027, 6, 9, 11, 0, tzinfo=COPENHAGEN))
    assert reminders() == 2
    told = [m for m in world.received_by(world.secretary) if "IT-drift" in body_of(m)]
    assert len(told) == 1


def test_applicant_with_gaps_is_reminded_once_after_five_working_days(world: World) -> None:
    world.deliver(world.brief(attachments=("Teknisk beskrivelse.pdf",)))
    world.run_once(FRIDAY)
    world.run_once(datetime(2027, 5, 21, 11, 0, tzinfo=COPENHAGEN))  # 4 working days
    assert len(world.received_by(world.applicant)) == 1
    world.run_once(datetime(2027, 5, 24, 11, 0, tzinfo=COPENHAGEN))  # Monday: 5
    world.run_once(datetime(2027, 6, 7, 11, 0, tzinfo=COPENHAGEN))
    _receipt, reminder = world.received_by(world.applicant)
    assert "Påmindelse" in body_of(reminder) and "Udkast til kontrakt" in body_of(reminder)


# -- reply tokens (plus addressing) --------------------------------------------------------------
def _token_world(world: World) -> None:
    if not world.on_dovecot:
        import pytest

        pytest.skip("plus addressing needs Dovecot's recipient_delimiter")
    world.write_config(reviews={"reply_tokens": True})


def test_reply_token_alone_identifies_the_review(world: World) -> None:
    _token_world(world)
    complete_brief(world)
    request = request_for(world, "it_architect")
    reply_to = str(request["Reply-To"])
    assert "+itp-2027-0001-" in reply_to
    token_address = reply_to[reply_to.index("<") + 1:-1]
    # a client that drops In-Reply-To and References but answers the Reply-To address
    raw = reply(world, request, world.reviewer("it_architect"), "Godkendt.",
                thread_headers=False, recipient=token_address)
    world.imap.deliver(token_address, raw)
    world.run_once(FRIDAY.replace(hour=11))
    assert reviews(world)["it_architect"].verdict == "approved"


def test_tampered_reply_token_is_not_applied(world: World) -> None:
    _token_world(world)
    complete_brief(world)
    request = request_for(world, "it_architect")
    reply_to = str(request["Reply-To"])
    token_address = reply_to[reply_to.index("<") + 1:-1]
    forged = token_address.replace("-0001-", "-0002-")
    msg = EmailMessage(policy=SMTP)
    msg["From"] = world.reviewer("it_architect")
    msg["To"] = forged
    msg["Subject"] = f"SV: {request['Subject']}"
    msg["Message-ID"] = make_msgid(domain="kommune.test")
    msg.set_content("Godkendt.")
    world.imap.deliver(forged, msg.as_bytes())
    world.run_once(FRIDAY.replace(hour=11))
    _not_applied(world, "it_architect", "beskadiget eller forfalsket id")


def test_check_probes_plus_addressing(world: World) -> None:
    from mailbot.delivery.smtpcheck import probe_plus_addressing
    from mailbot.errors import ConfigError

    _token_world(world)
    result = world.cli("check")
    assert result.returncode == 0, result.stderr
    assert "ok    reply tokens" in result.stdout
    assert world.folder("INBOX") == []  # the probe removed itself
    world.smtp.deliver = None  # a mailbox that never receives plus-addressed mail
    import pytest

    with pytest.raises(ConfigError, match=r"\[reviews.reply_tokens\]"):
        probe_plus_addressing(world.settings(), timeout=2)


def test_colleague_is_recorded_and_outsider_goes_to_the_secretary(world: World) -> None:
    complete_brief(world)
    [receipt] = world.received_by(world.applicant)
    domain = world.bot_address.partition("@")[2]
    for sender in (f"kollega@{domain}", "leverandoer@firma.example"):
        world.deliver(world.brief(sender=sender, subject=f"SV: {receipt['Subject']}",
                                  body="Godkendt, det ser fint ud.", attachments=()))
    world.run_once(FRIDAY.replace(hour=11))
    assert all(r.verdict is None for r in reviews(world).values())
    json_out = world.cli("case", "ITP-2027-0001").stdout
    assert f"kollega@{domain} wrote on the thread" in json_out
    attention = [m for m in world.received_by(world.secretary) if "Til opmærksomhed" in
                 str(m["Subject"])]
    assert len(attention) == 1 and "leverandoer@firma.example" in body_of(attention[0])
    assert world.smtp.to("leverandoer@firma.example") == []
