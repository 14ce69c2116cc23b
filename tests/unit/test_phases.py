"""The council's two phases (issue #12): the status transitions, the klarmelding phrases,
what final approval needs, when the guidance is complete and when an applicant is reminded.

On a real SQLite database with the real case, document and review code; nothing is faked
(the mails go into the outbox table and are never sent)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from mailbot.app import Bot, build_bot
from mailbot.cases.documents import store_documents
from mailbot.cases.opening import open_case
from mailbot.clock import COPENHAGEN, Clock
from mailbot.config import Settings
from mailbot.council.klarmelding import answer_followup
from mailbot.council.phases import (
    applicant_reminder_due,
    final_labels,
    final_missing,
    give_guidance,
    stage,
)
from mailbot.council.reminders import remind
from mailbot.council.reviews import apply_verdict, route
from mailbot.db import migrate
from mailbot.intake.inspection import settings_without_config
from mailbot.intake.parse import Attachment, Inbound, parse
from mailbot.models import Case, CaseEvent, Guidance, RawMessage, Review
from mailbot.reading.brief import read_brief
from mailbot.reading.decisions import declares_ready
from mailbot.reading.documents import DocumentReading
from mailbot.reading.replies import Verdict as VerdictReading
from mailbot.rules import Rules
from mailbot.vocabulary import CaseStatus, InvalidTransition, check_transition
from tests.mails import brief

THURSDAY = datetime(2027, 2, 25, 10, 0, tzinfo=COPENHAGEN)
ROLES = ("it_operations", "it_architect", "contract_manager", "security_coordinator")


# -- transitions ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("old", "new"), [
    ("complete", "guided"), ("incomplete", "klarmeldt"), ("complete", "klarmeldt"),
    ("guided", "klarmeldt"), ("guided", "queued"), ("klarmeldt", "queued"),
    ("queued", "klarmeldt"), ("guided", "withdrawn"), ("klarmeldt", "decided"),
])
def test_the_two_phases_move_a_case_only_forward(old: str, new: str) -> None:
    assert check_transition(old, CaseStatus(new)) == new


@pytest.mark.parametrize(("old", "new"), [
    ("incomplete", "guided"),  # guidance needs nothing missing first
    ("guided", "incomplete"), ("guided", "complete"), ("klarmeldt", "guided"),
    ("klarmeldt", "complete"), ("decided", "klarmeldt"), ("withdrawn", "guided"),
])
def test_a_klarmelding_or_the_guidance_is_never_taken_back(old: str, new: str) -> None:
    with pytest.raises(InvalidTransition):
        check_transition(old, CaseStatus(new))


# -- the klarmelding phrases ----------------------------------------------------------------------
@pytest.mark.parametrize("text", [
    "Hej\n\nHermed klarmelder jeg sagen. Den endelige kontrakt er vedhæftet.",
    "Klarmelding af ITP-2027-0001 med endelige dokumenter.",
    "Sagen er klar til ITP.",
    "Projektet er nu klar til IT-Projektraadet (se bilag).",
    "Vi er klar til endelig godkendelse",
    "Please find the final contract attached. We are ready for final approval.",
    "Ready for approval.",
])
def test_the_applicants_ways_of_declaring_ready(text: str, rules: Rules) -> None:
    assert declares_ready("SV: [ITP-2027-0001] Projektforslag: Booking", text, rules)


@pytest.mark.parametrize("text", [
    "Er sagen klar til godkendelse?",
    "Vi er ikke klar til godkendelse endnu, kontrakten forhandles.",
    "Hvordan laver jeg en klarmelding?",
    "Jeg sender klarmeldingen, når kontrakten er underskrevet.",
    "We are not ready for approval yet.",
    # a klarmelding announced for later is none yet
    "Klarmelding følger i næste uge.",
    "Vi vender tilbage med en klarmelding, når kontrakten er underskrevet.",
    "Jeg klarmelder sagen, når DBA er underskrevet.",
    "Vi er langt fra klar til godkendelse.",
    "We will be ready for approval once the DPA is signed.",
    "Her er den nye version af kontrakten.\n\n> Sådan klarmelder du: svar med ordet "
    "\"klarmelding\"\n> og de endelige dokumenter.",
])
def test_questions_negations_other_words_and_our_quote_are_no_klarmelding(
        text: str, rules: Rules) -> None:
    assert not declares_ready("SV: [ITP-2027-0001] Projektforslag: Booking", text, rules)


def test_a_klarmelding_in_the_subject_counts(rules: Rules) -> None:
    assert declares_ready("Klarmelding: ITP-2027-0001", "Se vedhæftede.", rules)


# -- a case on a real database --------------------------------------------------------------------
@pytest.fixture
def bot(tmp_path: Path) -> Bot:
    base = settings_without_config("it.projekter@kommune.test")
    settings = Settings.model_validate({
        **base.model_dump(mode="python"),
        "bot": {**base.bot.model_dump(mode="python"), "data_dir": tmp_path / "data"},
        "reviewers": {role: [f"{role}@kommune.test"] for role in ROLES},
        "council": {"secretary": ["sekretaer@kommune.test"]},
    })
    bot = build_bot(settings, Clock(THURSDAY))
    migrate(bot.engine)
    return bot


def one_phase(bot: Bot) -> Bot:
    from dataclasses import replace

    council = bot.settings.council.model_copy(update={"phases": 1})
    return replace(bot, settings=bot.settings.model_copy(update={"council": council}))


def opened(session: Session, bot: Bot, **kwargs: object) -> tuple[Case, Inbound]:
    """A case from a brief with drafts (technical description, contract, DPA, business case),
    its reviews requested."""
    mail = parse(brief(sender="Mette Holm <mette@kommune.test>", **kwargs))  # type: ignore[arg-type]
    raw = RawMessage(folder="INBOX", uidvalidity=1, uid=1, msgid_hash="x", raw_sha256="",
                     content_sha256="", size=0, fetched_at=THURSDAY)
    session.add(raw)
    session.flush()
    case = open_case(session, bot, mail, raw, read_brief(mail, bot.rules, THURSDAY.date()),
                     THURSDAY)
    route(session, bot, case, THURSDAY)
    return case, mail


def add_document(session: Session, bot: Bot, case: Case, filename: str, kind: str,
                 at: datetime) -> None:
    assert case.id is not None
    raw = session.exec(select(RawMessage)).first()
    assert raw is not None and raw.id is not None
    attachment = Attachment(filename=filename, content_type="application/pdf",
                            payload=b"%PDF-1.4 final\n", inline=False)
    store_documents(session, bot.blobs, case.id, raw.id,
                    [(attachment, DocumentReading(filename, kind, "test"))], at)


def answer_all(session: Session, bot: Bot, case: Case, mail: Inbound, at: datetime,
               verdict: str = "approved", but: str = "") -> None:
    for review in session.exec(select(Review).where(Review.case_id == case.id)).all():
        if review.role != but:
            apply_verdict(session, bot, case, review,
                          VerdictReading(verdict, "Godkendt, husk SSO.", "Godkendt"), mail, at)


def test_final_approval_needs_final_versions_the_project_description_and_the_owner(
        bot: Bot) -> None:
    with Session(bot.engine) as session:
        case, _ = opened(session, bot)
        # KITOS is not set up here: the owner lookup leaves it to the applicant
        case.system_owner_source = "kitos_disabled"
        assert final_missing(session, bot.rules, case) == [
            "contract_draft", "dpa_draft", "project_description", "system_owner"]
        assert final_labels(bot.rules, final_missing(session, bot.rules, case)) == [
            "Endelig kontrakt", "Endelig databehandleraftale", "Projektbeskrivelse",
            "Systemejer"]
        # the klarmelding starts the final phase: a contract from then on is final, the
        # drafts from the brief are not
        klarmelding = THURSDAY + timedelta(days=3)
        case.klarmeldt_at = klarmelding
        add_document(session, bot, case, "Kontrakt endelig.pdf", "contract_draft", klarmelding)
        add_document(session, bot, case, "Projektbeskrivelse.pdf", "project_description",
                     THURSDAY + timedelta(days=1))
        assert final_missing(session, bot.rules, case) == ["dpa_draft", "system_owner"]
        case.not_applicable = {**case.not_applicable, "dpa_draft": "ingen personoplysninger"}
        case.system_owner = "Jens Jensen, Borgerservice"
        assert final_missing(session, bot.rules, case) == []
        case.answers = {**case.answers, "cost": ""}
        assert final_missing(session, bot.rules, case) == ["cost"]


def test_a_contract_sent_after_the_guidance_is_final(bot: Bot) -> None:
    with Session(bot.engine) as session:
        case, mail = opened(session, bot)
        answer_all(session, bot, case, mail, THURSDAY + timedelta(hours=1))
        assert give_guidance(session, bot, THURSDAY + timedelta(hours=2)) == 1
        add_document(session, bot, case, "Kontrakt forhandlet.pdf", "contract_draft",
                     THURSDAY + timedelta(days=5))
        assert "contract_draft" not in final_missing(session, bot.rules, case)
        assert "dpa_draft" in final_missing(session, bot.rules, case)


@pytest.mark.parametrize(("arrived", "meeting"), [
    # reached the mailbox at 11:58, read at 12:03: the deadline was met
    (datetime(2027, 3, 1, 11, 58, tzinfo=COPENHAGEN), "2027-03-08"),
    # no arrival known, or one that cannot be (after the reading, or weeks before): read time
    (None, "2027-03-15"),
    (datetime(2027, 3, 1, 12, 30, tzinfo=COPENHAGEN), "2027-03-15"),
    (datetime(2027, 2, 1, 11, 0, tzinfo=COPENHAGEN), "2027-03-15"),
])
def test_the_deadline_is_met_by_the_mails_arrival(bot: Bot, arrived: datetime | None,
                                                  meeting: str) -> None:
    read = datetime(2027, 3, 1, 12, 3, tzinfo=COPENHAGEN)
    with Session(bot.engine) as session:
        case, mail = opened(session, bot)
        answer_all(session, bot, case, mail, THURSDAY + timedelta(hours=1))
        give_guidance(session, bot, THURSDAY + timedelta(hours=2))
        for name, kind in (("Kontrakt endelig.pdf", "contract_draft"),
                           ("DBA endelig.pdf", "dpa_draft"),
                           ("Projektbeskrivelse.pdf", "project_description")):
            add_document(session, bot, case, name, kind, THURSDAY + timedelta(days=3))
        case.system_owner = "Jens Jensen, Borgerservice"
        assert answer_followup(session, bot, case, True, read, arrived)
        assert case.meeting_date is not None and case.meeting_date.isoformat() == meeting


def test_guidance_is_complete_when_every_role_answered_whatever_the_verdict(bot: Bot) -> None:
    with Session(bot.engine) as session:
        case, mail = opened(session, bot)
        answer_all(session, bot, case, mail, THURSDAY + timedelta(hours=1),
                   but="security_coordinator")
        assert give_guidance(session, bot, THURSDAY + timedelta(hours=2)) == 0
        assert case.status == "complete" and stage(case) == "guidance"
        [pending] = session.exec(select(Review).where(Review.role == "security_coordinator"))
        apply_verdict(session, bot, case, pending,
                      VerdictReading("rejected", "Kan ikke anbefales.", "Kan ikke anbefales"),
                      mail, THURSDAY + timedelta(hours=3))
        assert give_guidance(session, bot, THURSDAY + timedelta(hours=4)) == 1
        assert case.status == "guided" and case.phase == "final" and stage(case) == "guided"
        assert case.guidance_given_at is not None
        # the moment the last answer came, not when the job ran
        assert case.guidance_given_at == THURSDAY + timedelta(hours=3)
        assert give_guidance(session, bot, THURSDAY + timedelta(hours=5)) == 0  # once
        events = [e.kind for e in session.exec(select(CaseEvent)).all()]
        assert events.count("guidance_given") == 1
        # the relay that carries the last answer says the guidance is complete
        flagged = session.exec(select(Guidance).where(Guidance.completes_guidance)).all()
        assert len(flagged) == 1


def test_one_phase_gives_no_guidance_status(bot: Bot) -> None:
    single = one_phase(bot)
    with Session(single.engine) as session:
        case, mail = opened(session, single)
        answer_all(session, single, case, mail, THURSDAY + timedelta(hours=1))
        assert give_guidance(session, single, THURSDAY + timedelta(hours=2)) == 0
        assert case.status == "complete" and case.guidance_given_at is None


def test_a_guided_case_is_not_reminded_until_it_is_klarmeldt(bot: Bot) -> None:
    with Session(bot.engine) as session:
        case, mail = opened(session, bot, attachments=("Teknisk beskrivelse.pdf",
                                                       "Udkast til kontrakt.docx",
                                                       "Databehandleraftale udkast.pdf"))
        # the guidance phase: one reminder five working days after the brief
        assert case.missing == ["business_case"]
        assert applicant_reminder_due(session, bot, case) == datetime(
            2027, 3, 4, 10, 0, tzinfo=COPENHAGEN)
        case.missing = []
        answer_all(session, bot, case, mail, THURSDAY + timedelta(hours=1))
        give_guidance(session, bot, THURSDAY + timedelta(hours=2))
        assert applicant_reminder_due(session, bot, case) is None  # negotiating its contract
        # klarmeldt on Monday 1 March with the project description still missing
        case.klarmeldt_at = datetime(2027, 3, 1, 11, 0, tzinfo=COPENHAGEN)
        case.status = CaseStatus.KLARMELDT
        case.applicant_reminded_at = THURSDAY + timedelta(days=4)  # the guidance reminder
        assert applicant_reminder_due(session, bot, case) == datetime(
            2027, 3, 8, 11, 0, tzinfo=COPENHAGEN)
        case.applicant_reminded_at = datetime(2027, 3, 8, 11, 0, tzinfo=COPENHAGEN)
        assert applicant_reminder_due(session, bot, case) is None  # once per phase


def test_reviewers_of_a_decided_case_are_not_reminded(bot: Bot) -> None:
    """A reviewer who has not answered is reminded while the case is open; once the council
    has decided (or the applicant withdrew), nobody waits for the answer any more."""
    with Session(bot.engine) as session:
        case, _ = opened(session, bot)
        later = THURSDAY + timedelta(days=14)
        requested = len(session.exec(select(Review)).all())
        assert requested >= 4 and remind(session, bot, later) >= requested
        case.status, case.decision = CaseStatus.DECIDED, "approved"
        session.add(case)
        assert remind(session, bot, later + timedelta(days=14)) == 0


def test_a_reviewer_whose_request_was_cancelled_is_not_reminded(bot: Bot) -> None:
    """`mailbot outbox cancel` of a review request: the reviewer never got it, so a reminder
    would ask about documents they do not have."""
    from mailbot.admin import cancel_outbox
    from mailbot.models import Outbox

    with Session(bot.engine) as session:
        opened(session, bot)
        session.commit()
        reviews = session.exec(select(Review)).all()
        first = reviews[0]
        row = session.exec(select(Outbox).where(
            Outbox.message_id == first.request_message_id)).one()
        assert row.id is not None
    cancel_outbox(bot.engine, row.id, THURSDAY)
    with Session(bot.engine) as session:
        later = THURSDAY + timedelta(days=14)
        assert remind(session, bot, later) >= len(reviews) - 1
        reminded = {r.id for r in session.exec(select(Review)).all() if r.reminders_sent}
        assert first.id not in reminded and len(reminded) == len(reviews) - 1


def test_one_phase_reminds_as_before(bot: Bot) -> None:
    single = one_phase(bot)
    with Session(single.engine) as session:
        case, _ = opened(session, single, attachments=("Teknisk beskrivelse.pdf",))
        assert applicant_reminder_due(session, single, case) == datetime(
            2027, 3, 4, 10, 0, tzinfo=COPENHAGEN)
        case.applicant_reminded_at = THURSDAY
        assert applicant_reminder_due(session, single, case) is None


@pytest.mark.parametrize(("file", "old", "new", "problem"), [
    ("documents.yaml", "  project_description: any\n", "  project_description: later\n",
     "[required_final.project_description] must be final or any"),
    ("documents.yaml", "  business_case: any\n", "  budget: any\n",
     "[required_final.budget] is not defined under kinds"),
    ("decisions.yaml", "applicant_klarmelding:", "klarmelding_phrases:",
     "[applicant_klarmelding] must be a list of strings"),
    ("labels.yaml", "    system_owner: Systemejer\n", "    systemejer: Systemejer\n",
     "[items.da] unknown key 'systemejer'"),
])
def test_the_phase_rules_are_checked_at_load(tmp_path: Path, file: str, old: str, new: str,
                                             problem: str) -> None:
    from mailbot.errors import ConfigError
    from mailbot.resources import shipped
    from mailbot.rules import load_rules

    for source in shipped("rules").glob("*.yaml"):
        (tmp_path / source.name).write_text(source.read_text("utf-8"), "utf-8")
    path = tmp_path / file
    text = path.read_text("utf-8")
    assert old in text
    path.write_text(text.replace(old, new), "utf-8")
    with pytest.raises(ConfigError) as err:
        load_rules(tmp_path)
    assert file in str(err.value) and problem in str(err.value)


def test_a_reviewer_who_answers_twice_in_one_batch_has_each_answer_relayed_once(
        bot: Bot) -> None:
    """The guidance relay carries each reply as it was written: a second reply to the same
    request replaces the review's verdict and comment, and once made the later one go out
    twice and the first never."""
    from email import message_from_bytes, policy
    from email.message import EmailMessage

    from mailbot.council.reminders import relay_guidance
    from mailbot.models import Outbox

    with Session(bot.engine) as session:
        case, mail = opened(session, bot)
        [review] = session.exec(select(Review).where(Review.role == "it_operations"))
        apply_verdict(session, bot, case, review,
                      VerdictReading("changes_requested", "Bemærkninger: ring til driften.",
                                     "Bemærkninger"), mail, THURSDAY + timedelta(minutes=1))
        apply_verdict(session, bot, case, review,
                      VerdictReading("approved", "Godkendt. Husk backup.", "Godkendt"),
                      mail, THURSDAY + timedelta(minutes=3))
        assert relay_guidance(session, bot, THURSDAY + timedelta(minutes=10)) == 1
        [relayed] = session.exec(select(Outbox).where(Outbox.kind == "guidance")).all()
        message = message_from_bytes(relayed.raw, policy=policy.default)
        body = message.get_body(("plain",))
        assert isinstance(body, EmailMessage)
        text = body.get_content()
        assert text.count("Bemærkninger: ring til driften.") == 1
        assert text.count("Godkendt. Husk backup.") == 1
