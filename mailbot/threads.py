"""Which case an inbound mail belongs to: our Message-IDs first, the subject tag last."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailbot.parse import Inbound

CASE_REF = re.compile(r"\bITP-(\d{4})-(\d{4,})\b", re.IGNORECASE)


def format_ref(year: int, number: int) -> str:
    return f"ITP-{year}-{number:04d}"


def ref_in_subject(subject: str) -> str | None:
    match = CASE_REF.search(subject)
    return f"ITP-{match.group(1)}-{match.group(2)}" if match else None


def is_own_message_id(message_id: str, domain: str) -> bool:
    return message_id.lower().endswith(f"@{domain.lower()}>") and message_id.startswith("<mb.")


def ref_in_message_id(message_id: str) -> str | None:
    """Our ids look like <mb.receipt.ITP-2026-0001.ab12cd@domain>."""
    match = CASE_REF.search(message_id)
    return f"ITP-{match.group(1)}-{match.group(2)}" if match else None


@dataclass(frozen=True)
class ThreadMatch:
    case_ref: str | None
    via: str  # message-id | subject | none


def find_thread(mail: Inbound, domain: str) -> ThreadMatch:
    for message_id in mail.in_reply_to:
        if is_own_message_id(message_id, domain):
            ref = ref_in_message_id(message_id)
            if ref:
                return ThreadMatch(ref, "message-id")
    ref = ref_in_subject(mail.subject)
    if ref:
        return ThreadMatch(ref, "subject")
    return ThreadMatch(None, "none")


REPLY_PREFIXES = ("re:", "sv:", "aw:", "antw:")


def looks_like_reply(mail: Inbound) -> bool:
    """A reply to some earlier mail (not one of ours): not a new brief."""
    return bool(mail.in_reply_to) and mail.subject.lower().startswith(REPLY_PREFIXES)
