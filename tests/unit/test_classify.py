"""classify(): one decision for the daemon and `mailbot inspect` (pure: no database)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from mailbot.config import Settings
from mailbot.errors import ConfigError
from mailbot.intake.classify import (
    AgendaReply,
    CaseFacts,
    CaseMail,
    Disposition,
    MachineMail,
    NewBrief,
    ReviewReply,
    StrayReply,
    classify,
)
from mailbot.intake.inspection import inspect_details, settings_without_config
from mailbot.intake.parse import parse
from mailbot.intake.screen import screen
from mailbot.intake.threads import find_thread, reply_to_address, signed_message_id
from mailbot.resources import shipped
from mailbot.rules import Rules, load_rules
from mailbot.vocabulary import AutoSubmitted, Purpose
from tests.mails import brief

BOT = "it.projekter@kommune.test"
SECRET = b"classify secret"
SECRETARY = "sekretaer@kommune.test"
APPLICANT = "mette.holm@kommune.test"


def settings() -> Settings:
    return Settings.model_validate({
        "bot": {"address": BOT},
        "imap": {"host": "-", "username": "-", "password": ""}, "smtp": {"host": "-"},
        "council": {"secretary": [SECRETARY]},
        "reviewers": {"it_architect": ["arkitekt@kommune.test"]},
    })


def disposition(raw: bytes, rules: Rules, applicant: str | None = APPLICANT) -> Disposition:
    mail = parse(raw)
    thread = find_thread(mail, "kommune.test", SECRET, BOT)
    facts = CaseFacts(thread.case_ref, applicant) if thread.case_ref and applicant is not None \
        else None
    return classify(mail, screen(mail, rules, BOT), thread, settings(), rules, facts)


def on_thread(sender: str, body: str = "Her er det sidste svar.\n",
              parent: str = "", **headers: str) -> bytes:
    parent = parent or signed_message_id("receipt", "ITP-2027-0001", "kommune.test", SECRET)
    return brief(sender=sender, subject="SV: [ITP-2027-0001] Booking", body=body,
                 attachments=(), headers={"In-Reply-To": parent, **headers})


def test_a_new_brief(rules: Rules) -> None:
    assert isinstance(disposition(brief(), rules), NewBrief)


def test_out_of_office_on_the_thread_is_machine_mail(rules: Rules) -> None:
    found = disposition(on_thread(APPLICANT, **{"Auto-Submitted": "auto-replied"}), rules)
    assert isinstance(found, MachineMail) and found.case_ref == "ITP-2027-0001"


@pytest.mark.parametrize(("body", "action"), [
    ("status\n", "status"), ("Udsæt sagen\n", "postpone"), ("Træk sagen tilbage\n", "withdraw"),
    ("Hvor meget: 20.000 kr.\n", "update")])
def test_the_applicant_on_the_thread(rules: Rules, body: str, action: str) -> None:
    found = disposition(on_thread(APPLICANT, body), rules)
    assert isinstance(found, CaseMail)
    assert (found.sender, found.action, found.tampered) == ("applicant", action, False)


@pytest.mark.parametrize(("sender", "role"), [
    ("arkitekt@kommune.test", "reviewer"), ("kollega@kommune.test", "colleague"),
    ("leverandor@firma.test", "outsider")])
def test_others_on_the_thread(rules: Rules, sender: str, role: str) -> None:
    found = disposition(on_thread(sender), rules)
    assert isinstance(found, CaseMail) and found.sender == role


def test_without_a_database_the_sender_is_unverified(rules: Rules) -> None:
    found = disposition(on_thread("leverandor@firma.test"), rules, applicant="")
    assert isinstance(found, CaseMail) and found.sender == "unverified"


def test_a_case_that_does_not_exist_here_is_a_stray_reply(rules: Rules) -> None:
    found = disposition(on_thread(APPLICANT), rules, applicant=None)
    assert isinstance(found, StrayReply) and "not a case here" in found.reason


def test_review_reply_needs_our_signed_id(rules: Rules) -> None:
    ours = signed_message_id("review", "ITP-2027-0001", "kommune.test", SECRET, review=7)
    found = disposition(on_thread("arkitekt@kommune.test", "Godkendt.", parent=ours), rules)
    assert isinstance(found, ReviewReply) and found.review == 7
    forged = ours.replace("mb.review", "mb.review").replace(ours[-30:-22], "aaaaaaaa")
    found = disposition(on_thread("arkitekt@kommune.test", "Godkendt.", parent=forged), rules)
    assert isinstance(found, CaseMail) and found.tampered


def test_agenda_reply_counts_only_from_the_secretary(rules: Rules) -> None:
    agenda = signed_message_id("agenda", "AGD-2027-0308", "kommune.test", SECRET)
    raw = on_thread(SECRETARY, "ITP-2027-0001: Godkendt.", parent=agenda)
    found = disposition(raw, rules)
    assert isinstance(found, AgendaReply) and found.from_secretary
    found = disposition(on_thread(APPLICANT, "ITP-2027-0001: Godkendt.", parent=agenda), rules)
    assert isinstance(found, AgendaReply) and not found.from_secretary


def test_secretary_naming_cases_without_an_agenda_reply(rules: Rules) -> None:
    raw = brief(sender=SECRETARY, subject="Beslutninger", body="ITP-2027-0001: Godkendt.\n",
                attachments=())
    found = disposition(raw, rules)
    assert isinstance(found, StrayReply) and found.event == "decisions_not_applied"


def test_inspect_shows_what_the_daemon_would_do_and_reads_reply_tokens(rules: Rules) -> None:
    token = reply_to_address(BOT, "ITP-2027-0001", 3, SECRET, date(2027, 3, 1))
    raw = brief(sender="arkitekt@kommune.test", to=token, subject="SV: vurdering",
                body="Godkendt.\n", attachments=())
    shape, details = inspect_details(raw, rules, settings(), secret=SECRET)
    assert shape["case_ref"] == "ITP-2027-0001" and shape["verdict"] == "approved"
    assert details["disposition"] == "ReviewReply"
    shape, details = inspect_details(brief(), rules, settings_without_config(BOT))
    assert shape["kind"] == "brief" and details["disposition"] == "NewBrief"


@pytest.mark.parametrize(("purpose", "label"), [
    (Purpose.RECEIPT, AutoSubmitted.REPLIED), (Purpose.STATUS, AutoSubmitted.REPLIED),
    (Purpose.UPDATE, AutoSubmitted.REPLIED), (Purpose.ASK_BACK, AutoSubmitted.REPLIED),
    (Purpose.UNMAPPED, AutoSubmitted.REPLIED), (Purpose.REVIEW, AutoSubmitted.GENERATED),
    (Purpose.REMIND, AutoSubmitted.GENERATED), (Purpose.REMINDER, AutoSubmitted.GENERATED),
    (Purpose.GUIDANCE, AutoSubmitted.GENERATED), (Purpose.ATTENTION, AutoSubmitted.GENERATED),
    (Purpose.MEETING, AutoSubmitted.GENERATED), (Purpose.AGENDA, AutoSubmitted.GENERATED),
    (Purpose.DECISION, AutoSubmitted.GENERATED), (Purpose.BOARD, AutoSubmitted.GENERATED)])
def test_rfc3834_label_of_every_purpose(purpose: Purpose, label: AutoSubmitted) -> None:
    assert purpose.auto_submitted == label


def test_labels_file_must_have_every_danish_word(tmp_path: Path) -> None:
    for source in shipped("rules").glob("*.yaml"):
        (tmp_path / source.name).write_text(source.read_text(encoding="utf-8"), "utf-8")
    labels = tmp_path / "labels.yaml"
    labels.write_text(labels.read_text("utf-8").replace("    rejected: afvist\n", "", 1),
                      "utf-8")
    with pytest.raises(ConfigError) as err:
        load_rules(tmp_path)
    assert "labels.yaml" in str(err.value) and "review_states.da" in str(err.value)
    assert "rejected" in str(err.value)
