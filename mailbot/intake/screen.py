"""Is this mail from a machine? Each match records a human-readable reason (RFC 3834)."""

from __future__ import annotations

from dataclasses import dataclass

from mailbot.intake.parse import Inbound
from mailbot.rules import Screening

# Header the bot puts on everything it sends; seeing it inbound means a loop.
LOOP_HEADER = "X-Mailbot-Loop"


@dataclass(frozen=True)
class ScreenResult:
    category: str  # own | bounce | auto_reply | bulk | loop | human
    reason: str

    @property
    def is_machine(self) -> bool:
        return self.category != "human"

    @property
    def message_kind(self) -> str:
        """The message kind of DESIGN.md section 5 (bulk, own and loop mail count as auto_reply)."""
        return {"bounce": "bounce", "human": "human"}.get(self.category, "auto_reply")


def screen(mail: Inbound, rules: Screening, bot_address: str) -> ScreenResult:
    """First match wins, in the order own mail, bounce, auto-reply, bulk, loop."""
    for check in (_own, _bounce, _auto_reply, _bulk, _loop):
        result = check(mail, rules, bot_address.lower())
        if result is not None:
            return result
    return ScreenResult("human", "no automation marker")


def _own(mail: Inbound, _rules: Screening, bot: str) -> ScreenResult | None:
    if mail.from_address == bot:
        return ScreenResult("own", f"sent from the bot's own address {bot}")
    if mail.header(LOOP_HEADER.lower()):
        return ScreenResult("own", f"carries the bot's loop header {LOOP_HEADER}")
    return None


def _bounce(mail: Inbound, rules: Screening, _bot: str) -> ScreenResult | None:
    if mail.content_type == "multipart/report":
        return ScreenResult("bounce", "multipart/report delivery status notification")
    local = mail.from_address.partition("@")[0]
    if local in rules.bounce_senders:
        return ScreenResult("bounce", f"sender {mail.from_address} only sends delivery reports")
    return_path = mail.header("return-path")
    if return_path.replace(" ", "") == "<>":
        return ScreenResult("bounce", "empty return path (Return-Path: <>)")
    return None


def _auto_reply(mail: Inbound, rules: Screening, _bot: str) -> ScreenResult | None:
    auto_submitted = mail.header("auto-submitted").split(";")[0].strip().lower()
    if auto_submitted and auto_submitted != "no":
        return ScreenResult("auto_reply", f"Auto-Submitted: {auto_submitted}")
    for name in rules.auto_reply_headers:
        if name in mail.headers:
            return ScreenResult("auto_reply", f"header {name} present")
    subject = mail.subject.lower()
    for prefix in rules.auto_reply_subject_prefixes:
        if subject.startswith(prefix):
            return ScreenResult("auto_reply", f"subject starts with {prefix!r}")
    return None


def _bulk(mail: Inbound, rules: Screening, _bot: str) -> ScreenResult | None:
    precedence = mail.header("precedence").strip().lower()
    if precedence in rules.bulk_precedence:
        return ScreenResult("bulk", f"Precedence: {precedence}")
    for name in rules.list_headers:
        if name in mail.headers:
            return ScreenResult("bulk", f"list or newsletter header {name} present")
    return None


def _loop(mail: Inbound, rules: Screening, _bot: str) -> ScreenResult | None:
    hops = len(mail.headers.get("received", ()))
    if hops > rules.max_received_headers:
        return ScreenResult("loop", f"{hops} Received headers (limit {rules.max_received_headers})")
    return None
