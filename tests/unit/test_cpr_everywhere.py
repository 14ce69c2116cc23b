"""CPR numbers never leave mailbot (SCENARIOS G1, G3, G8): each place derived text is stored
redacts it, the one composing path redacts every mail, the agenda's Word files and the CLI
print none, and migration 0014 redacts what an older database holds. On a real SQLite
database through the real reading, case opening, review and decision code; nothing is faked."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from datetime import date, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from mailbot.app import Bot, build_bot
from mailbot.cases.followup import apply_followup
from mailbot.cases.opening import open_case
from mailbot.clock import COPENHAGEN, Clock
from mailbot.config import Settings
from mailbot.council.agenda_docx import docx_bytes
from mailbot.council.decisions import decide
from mailbot.db import make_engine, migrate
from mailbot.delivery.mail import queue_mail
from mailbot.intake.parse import MAX_NAME_CHARS, display_name, parse
from mailbot.models import Case, CaseDocument, Outbox, RawMessage, Review
from mailbot.reading.brief import read_brief
from mailbot.reading.replies import read_verdict
from mailbot.redact import REDACTED, redact_cpr, redact_data
from mailbot.vocabulary import Decision, Purpose
from tests.mails import brief, payload_for
from tests.unit.conftest import MailbotRunner, add_case, migrated_database, write_config

NOW = datetime(2027, 3, 1, 12, 5, tzinfo=COPENHAGEN)
# valid dates in the three shapes (and the spaced one of SCENARIOS G1)
CPRS = ("010190-1234", "2802851234", "150375 4321", "01 01 90 1234")
# SCENARIOS G3: no such day, a phone number, an invoice number, our own references
LOOK_ALIKES = ("320199-1234", "311399-1234", "300299-1234", "310499-1234", "+45 12345678",
               "tlf. 43 68 68 68", "faktura 2026-000123", "Faktura nr. 4711-2026",
               "ITP-2026-0042", "27.00.00-G01-1-24")

BODY = f"""Hej

Borgeren med CPR {CPRS[0]} har bedt om det.

Hvem: Anna Sørensen (cpr {CPRS[1]}), teamleder i Borgerservice. Brugerne er 40 medarbejdere.
Hvad: Et nyt bookingsystem til mødelokaler, sag om {CPRS[2]}.
Hvor: Borgerservice.
Hvornår: I drift senest 1. marts 2027.
Hvorfor: I dag bookes lokaler i et regneark ({CPRS[3]}), og det giver dobbeltbookinger.
Hvor meget: 80.000 kr. i etablering; betales af Borgerservice. Faktura nr. 4711-2026.

Systemejer: Søren Ravn {CPRS[0]}

Der er ingen databehandleraftale, da der ikke behandles personoplysninger om {CPRS[1]}.

Mvh Anna
"""


def assert_no_cpr(text: str) -> None:
    for cpr in CPRS:
        assert cpr not in text, f"{cpr} in {text[:300]!r}"


@pytest.mark.parametrize("cpr", (*CPRS, "290200-1237", "0101901234", "010190 1234"))
def test_each_shape_of_a_cpr_number_is_redacted(cpr: str) -> None:
    assert redact_cpr(f"CPR: {cpr}.") == f"CPR: {REDACTED}."


@pytest.mark.parametrize("text", LOOK_ALIKES)
def test_look_alikes_survive(text: str) -> None:
    assert redact_cpr(text) == text


def test_json_data_is_redacted_to_any_depth_and_keeps_its_shape() -> None:
    data = {"who": f"Anna {CPRS[0]}", "cost": {"amounts": [{"text": CPRS[1], "dkk": 5}]},
            "none": None, "pair": (CPRS[2], 1)}
    assert redact_data(data) == {"who": f"Anna {REDACTED}",
                                 "cost": {"amounts": [{"text": REDACTED, "dkk": 5}]},
                                 "none": None, "pair": (REDACTED, 1)}


def test_an_attachment_name_is_redacted_before_it_is_cut() -> None:
    assert display_name(f"Bilag {CPRS[0]}.pdf") == f"Bilag {REDACTED}.pdf"
    # the cut at MAX_NAME_CHARS would leave "010190-12", which no longer looks like a CPR
    long = "x" * (MAX_NAME_CHARS - 12) + f"{CPRS[0]} og mere tekst.pdf"
    shown = display_name(long)
    assert "010190" not in shown and REDACTED[:6] in shown and shown.endswith(".pdf")


def test_a_reviewer_comment_is_redacted_where_it_is_read() -> None:
    bot_rules = build_bot(_settings(Path("/nonexistent")), Clock(NOW)).rules
    verdict = read_verdict(f"Bemærkninger: borgeren {CPRS[0]} skal nævnes.\n", bot_rules)
    assert verdict.verdict == "changes_requested"
    assert verdict.comment == f"Bemærkninger: borgeren {REDACTED} skal nævnes."


def test_the_word_files_are_built_from_redacted_text() -> None:
    data = docx_bytes(f"# Dagsorden {CPRS[0]}\n**Hvem:** {CPRS[1]}\n| a | {CPRS[2]} |\n")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        xml = archive.read("word/document.xml").decode("utf-8")
    assert_no_cpr(xml)
    assert xml.count(REDACTED) == 3


def _settings(data_dir: Path, templates: Path | None = None) -> Settings:
    bot: dict[str, str] = {"address": "it.projekter@kommune.test", "data_dir": str(data_dir)}
    if templates is not None:
        bot["templates_dir"] = str(templates)
    return Settings.model_validate({
        "bot": bot, "imap": {"host": "-", "username": "-", "password": ""},
        "smtp": {"host": "-"},
        "council": {"secretary": ["sekretaer@kommune.test"],
                    "strategic_board": ["sit@kommune.test"]}})


@pytest.fixture
def bot(tmp_path: Path) -> Iterator[Bot]:
    made = build_bot(_settings(tmp_path / "data"), Clock(NOW))
    migrate(made.engine)
    yield made
    made.engine.dispose()


def _open(bot: Bot, mail_bytes: bytes) -> int:
    mail = parse(mail_bytes)
    with Session(bot.engine) as session:
        raw = RawMessage(folder="INBOX", uidvalidity=1, uid=1, msgid_hash="1", raw_sha256="",
                         content_sha256="", size=0, fetched_at=NOW)
        session.add(raw)
        session.flush()
        case = open_case(session, bot, mail, raw, read_brief(mail, bot.rules, NOW.date()), NOW)
        session.commit()
        assert case.id is not None
        return case.id


def _zip_with(name: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, payload_for(name))
    return buffer.getvalue()


def test_a_new_case_stores_every_derived_text_redacted(bot: Bot) -> None:
    case_id = _open(bot, brief(subject=f"Projektforslag: Booking for {CPRS[0]}", body=BODY,
                               attachments=(f"Teknisk beskrivelse {CPRS[1]}.pdf",
                                            "Udkast til kontrakt.docx")))
    with Session(bot.engine) as session:
        case = session.get(Case, case_id)
        assert case is not None
        stored = json.dumps(case.model_dump(mode="json"), ensure_ascii=False)
        names = [d.filename for d in session.exec(select(CaseDocument)).all()]
    assert_no_cpr(stored)
    assert case.title == f"Booking for {REDACTED}"
    assert case.answers["who"] is not None and REDACTED in case.answers["who"]
    assert case.answers["why"] is not None and REDACTED in case.answers["why"]
    assert case.system_owner == f"Søren Ravn {REDACTED}"
    assert "Faktura nr. 4711-2026" in str(case.answers["cost"])  # G3: a look-alike stays
    assert f"Teknisk beskrivelse {REDACTED}.pdf" in names
    assert_no_cpr(" ".join(names))


def test_the_receipt_quotes_no_cpr_and_not_the_body(bot: Bot) -> None:
    """SCENARIOS G8: the receipt restates what was read (redacted), never the body."""
    from mailbot.cases.opening import send_receipt

    mail = parse(brief(subject=f"Projektforslag: Booking {CPRS[0]}", body=BODY,
                       attachments=("Teknisk beskrivelse.pdf", "Udkast til kontrakt.docx")))
    with Session(bot.engine) as session:
        raw = RawMessage(folder="INBOX", uidvalidity=1, uid=1, msgid_hash="1", raw_sha256="",
                         content_sha256="", size=0, fetched_at=NOW)
        session.add(raw)
        session.flush()
        reading = read_brief(mail, bot.rules, NOW.date())
        case = open_case(session, bot, mail, raw, reading, NOW)
        row = send_receipt(session, bot, case, mail, reading, NOW, reviewed=True)
        assert row is not None
        session.commit()
        message = message_from_bytes(row.raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    text = _all_text(message)
    assert_no_cpr(text)
    assert f"[ITP-2027-0001] Projektforslag: Booking {REDACTED}" == message["Subject"]
    assert "Borgeren med CPR" not in text  # the body's free text is not quoted
    # the declaration the applicant made is restated, redacted
    assert f"ikke behandles personoplysninger om {REDACTED}" in text


def _mail(subject: str, body: str, files: dict[str, bytes]) -> bytes:
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"], msg["To"] = "Anna <anna@kommune.test>", "it.projekter@kommune.test"
    msg["Subject"], msg["Message-ID"] = subject, "<followup-1@kommune.test>"
    msg.set_content(body)
    for name, payload in files.items():
        msg.add_attachment(payload, maintype="application", subtype="octet-stream",
                           filename=name)
    return msg.as_bytes()


def test_a_followup_answer_and_a_zip_member_name_are_stored_redacted(bot: Bot) -> None:
    case_id = _open(bot, brief(body="Hvem: Anna.\nHvad: Booking.\nHvor: Borgerservice.\n"))
    # a ZIP's member names never went through display_name: stored redacted all the same
    reply = parse(_mail("Re: [ITP-2027-0001] Projektforslag",
                        f"Hvorfor: Borgeren {CPRS[2]} venter.\nSystemejer: Ib {CPRS[3]}\n",
                        {"Bilag.zip": _zip_with(f"Udkast til kontrakt {CPRS[1]}.docx")}))
    with Session(bot.engine) as session:
        case = session.get(Case, case_id)
        assert case is not None
        raw = RawMessage(folder="INBOX", uidvalidity=1, uid=2, msgid_hash="2", raw_sha256="",
                         content_sha256="", size=0, fetched_at=NOW)
        session.add(raw)
        session.flush()
        apply_followup(session, bot, case, reply, raw, NOW)
        session.commit()
        session.refresh(case)
        names = [d.filename for d in session.exec(select(CaseDocument)).all()]
    assert case.answers["why"] == f"Borgeren {REDACTED} venter."
    assert case.system_owner == f"Ib {REDACTED}"
    assert f"Bilag.zip/Udkast til kontrakt {REDACTED}.docx" in names


def test_a_decision_text_is_stored_and_told_redacted(bot: Bot) -> None:
    case_id = _open(bot, brief(body=BODY))
    with Session(bot.engine) as session:
        case = session.get(Case, case_id)
        assert case is not None
        decide(session, bot, case, Decision.APPROVED, f"Godkendt; borger {CPRS[0]} orienteres.",
               date(2027, 3, 8), NOW)
        session.commit()
        session.refresh(case)
        told = [r.raw for r in session.exec(select(Outbox)).all()]
    assert case.decision_text == f"Godkendt; borger {REDACTED} orienteres."
    assert told and all(CPRS[0].encode() not in raw for raw in told)


def test_every_mail_is_redacted_on_its_way_out_whatever_its_context(tmp_path: Path) -> None:
    """The one composing path redacts the subject, the text, the HTML and the attachments'
    names; the attachments' bytes go as they are (the applicant's documents are the record).
    A template of our own prints the context unfiltered, as a careless template would."""
    folder = tmp_path / "templates" / "da"
    folder.mkdir(parents=True)
    for suffix, body in (("subject", "Om {{ cpr }}"), ("txt", "Tekst {{ cpr }}"),
                         ("html", "<p>HTML {{ cpr }}</p>")):
        (folder / f"probe.{suffix}.j2").write_text(body, encoding="utf-8")
    made = build_bot(_settings(tmp_path / "data", tmp_path / "templates"), Clock(NOW))
    migrate(made.engine)
    original = f"Kontrakt for {CPRS[0]}".encode()
    with Session(made.engine) as session:
        row = queue_mail(session, made, template="probe", purpose=Purpose.ATTENTION,
                         to=["sekretaer@kommune.test"], context={"cpr": CPRS[1]}, now=NOW,
                         sign_ref="ITP-2027-0001",
                         attachments=[(f"Bilag {CPRS[2]}.pdf", original, "application/pdf")])
        session.commit()
        message = message_from_bytes(row.raw, policy=policy.default)
        subject = row.subject
    made.engine.dispose()
    assert isinstance(message, EmailMessage)
    assert subject == message["Subject"] == f"Om {REDACTED}"
    assert f"Tekst {REDACTED}" in _all_text(message)
    assert f"<p>HTML {REDACTED}</p>" in _all_text(message)
    attachment = next(message.iter_attachments())
    assert attachment.get_filename() == f"Bilag {REDACTED}.pdf"
    assert attachment.get_content() == original  # the document itself is not touched
    assert_no_cpr(_all_text(message))


def test_the_cli_prints_no_cpr_even_from_an_unredacted_row(
        tmp_path: Path, mailbot: MailbotRunner) -> None:
    """A row written before migration 0014 (or by hand): `cases`, `case` and `--json` still
    print XXXXXX-XXXX."""
    config = write_config(tmp_path)
    url = migrated_database(tmp_path / "data")
    add_case(url, "ITP-2026-0001", title=f"Booking {CPRS[0]}",
             answers={"who": f"Anna {CPRS[1]}"}, decision_text=f"Godkendt {CPRS[2]}")
    outputs = [mailbot("--config", str(config), *args)
               for args in (("cases",), ("cases", "--json"), ("case", "ITP-2026-0001"),
                            ("case", "ITP-2026-0001", "--json"))]
    for result in outputs:
        assert result.code == 0, result.err
        assert_no_cpr(result.out)
        assert REDACTED in result.out
    assert json.loads(outputs[3].out)["answers"]["who"] == f"Anna {REDACTED}"


def test_inspect_prints_no_cpr(tmp_path: Path, mailbot: MailbotRunner) -> None:
    eml = tmp_path / "brief.eml"
    eml.write_bytes(brief(subject=f"Projektforslag: Booking {CPRS[0]}", body=BODY,
                          attachments=(f"Teknisk beskrivelse {CPRS[1]}.pdf",)))
    for args in (("inspect", str(eml)), ("inspect", str(eml), "--json", "--details")):
        result = mailbot("--config", str(tmp_path / "none.toml"), *args)
        assert result.code == 0, result.err
        assert_no_cpr(result.out + result.err)
        assert REDACTED in result.out


def test_migration_0014_redacts_what_an_older_database_holds(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url)
    migrate(engine, "0013")
    at = "2026-03-02 10:59:00"
    with engine.begin() as conn:
        conn.execute(sa.text(
            'INSERT INTO "case" (id, ref, applicant_address, applicant_name, title, status, '
            'language, created_at, updated_at, thread_message_id, answers, missing, '
            'from_prose, not_applicable, strategic, strategic_reason, subject, decision_text, '
            'phase, project_type_reason, system_owner_source, system_owner_note) VALUES '
            "(1, 'ITP-2026-0001', 'a@k.dk', 'Anna', :title, 'complete', 'da', :at, :at, '', "
            ":answers, '[]', '[]', :na, :no, '', :title, '', 'guidance', '', '', '')"),
            {"title": f"Booking {CPRS[0]}", "at": at, "na": json.dumps({"dpa": CPRS[1]}),
             "no": False,
             "answers": json.dumps({"who": f"Anna {CPRS[2]}", "what": None,
                                    "cost": "Faktura nr. 4711-2026"})})
        conn.execute(sa.text(
            "INSERT INTO review (id, case_id, role, recipients, document_kinds, documents, "
            "request_message_id, state, comment, answered_by, requested_at, reminders_sent) "
            "VALUES (1, 1, 'it_architect', '[]', '[]', :docs, '', 'answered', :comment, '', "
            ":at, 0)"),
            {"docs": json.dumps([f"Bilag {CPRS[3]}.pdf"]), "comment": f"Se {CPRS[0]}",
             "at": at})
    migrate(engine)
    with Session(engine) as session:
        case = session.get(Case, 1)
        review_row = session.get(Review, 1)
    engine.dispose()
    assert case is not None
    assert case.title == case.subject == f"Booking {REDACTED}"
    assert case.answers == {"who": f"Anna {REDACTED}", "what": None,
                            "cost": "Faktura nr. 4711-2026"}
    assert case.not_applicable == {"dpa": REDACTED}
    assert review_row is not None and review_row.comment == f"Se {REDACTED}"
    assert review_row.documents == [f"Bilag {REDACTED}.pdf"]


def _all_text(message: EmailMessage) -> str:
    """Subject, every text part and every attachment's name."""
    parts = [str(message["Subject"])]
    for part in message.walk():
        if part.get_content_maintype() == "text":
            parts.append(str(part.get_content()))
        if part.get_filename():
            parts.append(str(part.get_filename()))
    return "\n".join(parts)
