"""The applicant's receipt tells the truth about held files (issue #13 trial F2, F3): it says
"sendt til vurdering" only when a review request went out, and a held file meant as a
required document is one item in the list of what is missing, not two.

The mail goes through the real pipeline (mailbot.pipeline.handle) on a real SQLite database
and blob store; nothing is faked. Only the IMAP fetch and the SMTP send are not run: the
receipt and the review requests are read from the outbox rows the pipeline adds."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import pytest
from sqlmodel import Session, select

from mailbot.app import Bot, build_bot
from mailbot.clock import Clock
from mailbot.config import Settings
from mailbot.db import migrate
from mailbot.models import Outbox, RawMessage, Review
from mailbot.pipeline import handle
from tests.docs import pdf
from tests.e2e.test_hostile_attachments import PROGRAM, docm_contract, encrypted_pdf
from tests.mails import COMPLETE_BODY

NOW = datetime(2027, 5, 14, 8, 0, tzinfo=UTC)
APPLICANT = "mette@kommune.test"
ROLES = ("it_operations", "it_architect", "contract_manager", "security_coordinator")


def _bot(tmp_path: Path, macros: str) -> Bot:
    settings = Settings.model_validate({
        "bot": {"address": "it.projekter@kommune.test", "data_dir": str(tmp_path / "data")},
        "imap": {"host": "-", "username": "-", "password": ""}, "smtp": {"host": "-"},
        "reviewers": {role: [f"{role.replace('_', '')}@kommune.test"] for role in ROLES},
        "attachments": {"macros": macros},
        "council": {"secretary": ["sekretaer@kommune.test"],
                    "strategic_board": ["sit@kommune.test"], "phases": 1}})
    bot = build_bot(settings, Clock(NOW))
    migrate(bot.engine)
    return bot


@pytest.fixture
def quarantine_bot(tmp_path: Path) -> Iterator[Bot]:
    bot = _bot(tmp_path, "quarantine")
    yield bot
    bot.engine.dispose()


def _brief(files: dict[str, bytes]) -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = f"Mette Holm <{APPLICANT}>"
    msg["To"] = "it.projekter@kommune.test"
    msg["Subject"] = "Projektforslag: Ny mødebooking"
    msg["Message-ID"] = "<gap-lines@kommune.test>"
    msg.set_content(COMPLETE_BODY)
    for name, payload in files.items():
        msg.add_attachment(payload, maintype="application", subtype="octet-stream",
                           filename=name)
    return msg.as_bytes()


def _handle(bot: Bot, raw: bytes) -> None:
    """Store the mail as the fetcher does (blob, then ledger row) and handle it."""
    sha = bot.blobs.put(raw)
    with Session(bot.engine) as session:
        row = RawMessage(folder="INBOX", uidvalidity=1, uid=1, msgid_hash=sha,
                         raw_sha256=sha, content_sha256=hashlib.sha256(raw).hexdigest(),
                         size=len(raw), fetched_at=NOW)
        session.add(row)
        session.commit()
        assert row.id is not None
        raw_id = row.id
    handle(bot, raw_id)


def _sent(bot: Bot, kind: str) -> list[EmailMessage]:
    with Session(bot.engine) as session:
        rows = session.exec(select(Outbox).where(Outbox.kind == kind)).all()
        out = [message_from_bytes(r.raw, policy=policy.default) for r in rows]
    return [m for m in out if isinstance(m, EmailMessage)]


def _text(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain",))
    assert part is not None
    return " ".join(str(part.get_content()).split())


def _html(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


ALL_HELD = {  # the trial's brief (s5.py) under quarantine: every document held
    "Udkast til kontrakt.docm": docm_contract(),
    "Teknisk beskrivelse.pdf": encrypted_pdf("Teknisk beskrivelse"),
    "Databehandleraftale udkast.pdf": PROGRAM,
}


def test_a_brief_whose_every_document_is_held_is_not_said_to_be_out_for_review(
        quarantine_bot: Bot) -> None:
    _handle(quarantine_bot, _brief(ALL_HELD))
    with Session(quarantine_bot.engine) as session:
        assert session.exec(select(Review)).all() == []
    assert _sent(quarantine_bot, "review") == []
    [receipt] = _sent(quarantine_bot, "receipt")
    assert "til vurdering" not in _text(receipt)
    assert "til vurdering" not in _html(receipt)
    assert "Send det, der mangler, som svar på denne mail." in _text(receipt)


def test_a_brief_with_one_readable_document_says_it_is_out_for_review(
        quarantine_bot: Bot) -> None:
    _handle(quarantine_bot, _brief({**ALL_HELD, "Teknisk beskrivelse v2.pdf":
                                    pdf("Teknisk beskrivelse")}))
    assert _sent(quarantine_bot, "review")
    [receipt] = _sent(quarantine_bot, "receipt")
    assert "De dokumenter, vi har, er sendt til vurdering." in _text(receipt)


def test_each_held_file_meant_as_a_required_document_is_one_item(quarantine_bot: Bot) -> None:
    """Three held files, each named as a required document, and the business case missing:
    four gaps, four items; each held file said after the document it was meant to be."""
    _handle(quarantine_bot, _brief(ALL_HELD))
    [receipt] = _sent(quarantine_bot, "receipt")
    part = receipt.get_body(preferencelist=("plain",))
    assert part is not None
    listed = str(part.get_content()).partition("Der mangler stadig:")[2].partition("\n\n")[0]
    items = [line[2:] for line in listed.splitlines() if line.startswith("- ")]
    assert len(items) == 4, items
    assert ("Udkast til kontrakt (vurderes af den kontraktansvarlige): Udkast til "
            "kontrakt.docm er ikke sendt videre, fordi den indeholder makroer – send en udgave "
            "uden makroer (fx PDF eller .docx)") in items
    assert any(i.startswith("Teknisk beskrivelse (vurderes af") and
               "Teknisk beskrivelse.pdf kan ikke læses (krypteret)" in i for i in items)
    assert any(i.startswith("Udkast til databehandleraftale (vurderes af") and
               "Databehandleraftale udkast.pdf er et program" in i for i in items)
    assert "Business case" in items  # nobody reviews it: no "vurderes af"
    assert _text(receipt).count("Teknisk beskrivelse.pdf") == 1
    assert _html(receipt).count("Teknisk beskrivelse.pdf") == 1


def test_a_held_file_that_names_no_required_document_keeps_its_own_line(
        quarantine_bot: Bot) -> None:
    _handle(quarantine_bot, _brief({"Bilag 3.pdf": encrypted_pdf("Bilag"),
                                    "Teknisk beskrivelse.pdf": pdf("Teknisk beskrivelse")}))
    [receipt] = _sent(quarantine_bot, "receipt")
    listed = _text(receipt).partition("Der mangler stadig:")[2]
    assert "- Bilag 3.pdf kan ikke læses (krypteret) – send den uden adgangskode" in listed
