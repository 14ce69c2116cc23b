"""What the bot reads in one mail, without a database or a network (`mailbot inspect`)."""

from __future__ import annotations

from datetime import date
from email import message_from_bytes
from email.message import Message
from typing import Any

from mailbot.intake.parse import parse
from mailbot.intake.screen import screen
from mailbot.intake.threads import find_thread, looks_like_reply, ref_in_subject
from mailbot.reading.brief import read_brief
from mailbot.reading.decisions import read_decisions
from mailbot.reading.replies import read_verdict
from mailbot.rules import Rules


def inspect_mail(raw: bytes, rules: Rules, bot_address: str,
                 today: date | None = None, secret: bytes = b"") -> dict[str, Any]:
    """The reading in exactly the shape of ../shared/samples/README.md."""
    return inspect_details(raw, rules, bot_address, today, secret)[0]


def inspect_details(raw: bytes, rules: Rules, bot_address: str, today: date | None = None,
                    secret: bytes = b"") -> tuple[dict[str, Any], dict[str, Any]]:
    """(the sample-shaped reading, what else the bot read: for people, not for machines)."""
    mail = parse(raw)
    screened = screen(mail, rules.screening, bot_address)
    domain = bot_address.rpartition("@")[2]
    thread = find_thread(mail, domain, secret)
    if screened.is_machine:
        ref = _returned_ref(raw) if screened.category == "bounce" else thread.case_ref
        return ({"kind": screened.message_kind, "case_ref": ref or thread.case_ref},
                {"reason": f"{screened.category}: {screened.reason}"})
    if thread.agenda or (thread.case_ref is None and looks_like_reply(mail)):
        found = read_decisions(mail.text or mail.html_text, rules)
        if found.decisions or found.unmapped or found.additions:
            return ({"kind": "reply", "case_ref": None, "verdict": None,
                     "decisions": found.decisions},
                    {"unmapped": found.unmapped, "additions": found.additions})
    if thread.case_ref is not None or looks_like_reply(mail):
        verdict = read_verdict(mail.text or mail.html_text, rules)
        return ({"kind": "reply", "case_ref": thread.case_ref, "verdict": verdict.verdict,
                 "decisions": None},
                {"own_text": verdict.comment, "verdict_phrase": verdict.phrase})
    reading = read_brief(mail, rules, today)
    shape = {
        "kind": "brief",
        "case_ref": None,
        "answers": reading.answers,
        "documents": [{"filename": d.filename, "kind": d.kind} for d in reading.documents],
        "not_applicable": sorted(reading.not_applicable),
        "missing": list(reading.missing),
        "strategic": reading.strategic,
        "verdict": None,
        "decisions": None,
    }
    details = {
        "answers_from": reading.answers_from,
        "document_notes": {d.filename: d.note for d in reading.documents},
        "declarations": reading.not_applicable,
        "strategic_reason": reading.strategic_reason,
        "sbsys_number": reading.sbsys_number,
        "system_owner": reading.system_owner,
        "when": reading.when.as_dict() if reading.when else None,
        "amounts": [a.as_dict() for a in reading.amounts],
        "payer": reading.payer,
    }
    return shape, details


def _returned_ref(raw: bytes) -> str | None:
    """A bounce names its case in the subject of the returned message."""
    for part in message_from_bytes(raw).walk():
        if part.get_content_type() in ("message/rfc822", "text/rfc822-headers"):
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                ref = ref_in_subject(str(inner[0].get("Subject", "")))
            else:
                text = part.get_payload(decode=True)
                headers = message_from_bytes(text if isinstance(text, bytes) else b"")
                ref = ref_in_subject(str(headers.get("Subject", "")))
            if ref:
                return ref
    return None
