"""Is this mail from a machine? Each match records a human-readable reason.

What counts as a machine, and why (the rules themselves are in rules/screening.yaml):

- RFC 3834 section 5: `Auto-Submitted` other than "no" marks automatic mail; RFC 3834
  section 3.1.8 names `Precedence: bulk | list | junk` (bulk) and autoresponders write
  `Precedence: auto_reply`.
- RFC 3464 / RFC 6522: a `multipart/report` is a delivery status notification (a bounce), and
  RFC 5321 section 4.5.5 sends bounces with an empty return path (`Return-Path: <>`).
- RFC 2369 / RFC 2919: `List-Id`, `List-Unsubscribe`, `List-Post` mark list mail.
- Loop markers that mail systems set instead of Auto-Submitted (`X-Loop`, Exchange's
  `X-MS-Exchange-Inbox-Rules-Loop` and `X-MS-Exchange-Generated-Message-Source`, OTRS and RT
  loop headers): the mail was made or passed on by a machine, such as an inbox rule that
  forwards or answers.
- With no header at all: a no-reply sender; a subject in the form autoresponders write it (a
  marker such as "Automatisk svar" or "Out of Office" followed by a colon and the original
  subject, or as the whole subject); or a sentence of the mail's own text, near the top of a
  short mail, that says a machine wrote it ("Dette er en automatisk genereret mail", "Svar
  venligst ikke på denne mail", "This is an automated message", an out-of-office text, another
  system's receipt with a case number). Phrases inside quotation marks are quotes, not the
  mail's statement about itself. One of them alone never overrules the mail itself: a mail
  that reads as a brief (the brief reader finds at least `brief_min_answers` answers,
  labelled or in prose) is a person's mail whatever phrase it contains. Two together do: an
  autoresponder's subject AND an automatic body ("Automatic reply: …" over "I am on parental
  leave … will not be reading my email"), or an autoresponder's marker in front of one of our
  case references ("Automatic reply: [ITP-2026-0140] …": it answers our own mail), is a
  machine however many answers its out-of-office text seems to give.
- `X-Auto-Response-Suppress` alone is NOT a machine marker: it asks others not to answer, and
  Outlook sets it on mail that people write (RFC 3834 section 5 does not list it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailbot.intake.parse import Inbound
from mailbot.intake.threads import ref_in_subject
from mailbot.reading.brief import read_brief
from mailbot.rules import Rules, Screening

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


def screen(mail: Inbound, rules: Rules, bot_address: str) -> ScreenResult:
    """First match wins, in the order own mail, bounce, auto-reply, bulk, loop (headers
    first), then automatic content (sender, subject, body): subject and body together, or
    the autoresponder's marker in front of a case reference, decide; one of them alone only
    when the mail does not read as a brief."""
    screening = rules.screening
    for check in (_own, _bounce, _auto_reply, _bulk, _loop, _machine_sender):
        result = check(mail, screening, bot_address.lower())
        if result is not None:
            return result
    by_subject = _automatic_subject(mail, screening)
    by_body = _automatic_body(mail, screening)
    if by_subject is not None and by_body is not None:
        return ScreenResult("auto_reply", f"{by_subject.reason}, and {by_body.reason}")
    if by_subject is not None and _wraps_a_case_subject(mail.subject, screening):
        return ScreenResult("auto_reply", f"{by_subject.reason}, in front of a case's subject "
                                          f"({ref_in_subject(mail.subject)})")
    content = by_subject or by_body
    if content is not None:
        answers = _brief_answers(mail, rules)
        if answers >= screening.brief_min_answers:
            return ScreenResult("human", f"reads as a brief ({answers} answers), although "
                                         f"{content.reason}")
        return content
    return ScreenResult("human", "no automation marker")


def _brief_answers(mail: Inbound, rules: Rules) -> int:
    """How many of the six questions the brief reader answers from the mail (labelled or in
    prose, in the body, its HTML, a forwarded brief or an attached filled-in brief). A brief
    that only exists as a '>' quote does not count: an automatic reply may quote a brief."""
    reading = read_brief(mail, rules)
    if reading.answers_from == "quoted body":
        return 0
    return sum(answer is not None for answer in reading.answers.values())


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
    """RFC 3834 section 5 (Auto-Submitted), the autoresponders' own headers and their
    Precedence value."""
    auto_submitted = mail.header("auto-submitted").split(";")[0].strip().lower()
    if auto_submitted and auto_submitted != "no":
        return ScreenResult("auto_reply", f"Auto-Submitted: {auto_submitted}")
    for name in rules.auto_reply_headers:
        if name in mail.headers:
            return ScreenResult("auto_reply", f"header {name} present")
    precedence = mail.header("precedence").strip().lower()
    if precedence in rules.auto_reply_precedence:
        return ScreenResult("auto_reply", f"Precedence: {precedence}")
    return None


def _machine_sender(mail: Inbound, rules: Screening, _bot: str) -> ScreenResult | None:
    """A reply-to-nobody sender is a machine whatever it writes."""
    local = mail.from_address.partition("@")[0]
    if local in rules.machine_senders:
        return ScreenResult("auto_reply", f"sender {mail.from_address} is a no-reply address")
    return None


# "Re:", "SV:", "VS:", "Fwd:" and "[tag]" before the autoresponder's marker
_SUBJECT_LEAD = re.compile(r"^\s*(?:(?:re|sv|aw|vs|fw|fwd|wg)\s*:\s*|\[[^\]]*\]\s*)*", re.I)


def _automatic_subject(mail: Inbound, rules: Screening) -> ScreenResult | None:
    """A subject as autoresponders write it: the marker followed by a colon and the original
    subject ("Automatisk svar: Projektforslag"), or the marker as the whole subject. A marker
    that a longer subject merely starts with ("Automatisk svar – AI til borgernes mails", "Out
    of office planner for …") is a person's subject."""
    subject = mail.subject
    rest = _SUBJECT_LEAD.sub("", subject, count=1)
    lowered = rest.lower()
    for marker in (m.rstrip(" :") for m in rules.auto_reply_subject_prefixes):
        if lowered.startswith(marker) and _marker_ends(rest, len(marker)):
            return ScreenResult("auto_reply", f"subject starts with {rest[:len(marker)]!r}")
    for pattern in rules.auto_reply_subject_patterns:
        found = pattern.search(subject)
        if found:
            return ScreenResult("auto_reply", f"subject says it is automatic: {found.group(0)!r}")
    return None


def _wraps_a_case_subject(subject: str, rules: Screening) -> bool:
    """The autoresponder's marker stands in front of a case reference ("Automatic reply:
    [ITP-2026-0140] Vi har modtaget …"): the original subject was one of our mails, so this
    answers our mail automatically. (An applicant's reply to our receipt puts the reference
    first: "SV: [ITP-2026-0140] Automatisk svar: robot til journalisering".)"""
    rest = _SUBJECT_LEAD.sub("", subject, count=1)
    lowered = rest.lower()
    for marker in (m.rstrip(" :") for m in rules.auto_reply_subject_prefixes):
        if lowered.startswith(marker) and _marker_ends(rest, len(marker)):
            return ref_in_subject(rest[len(marker):]) is not None
    return False


def _marker_ends(subject: str, end: int) -> bool:
    """After the marker: a colon, or nothing (the marker is the whole subject)."""
    after = subject[end:].strip()
    return after == "" or after.startswith(":")


def own_top(text: str, rules: Screening) -> str:
    """The writer's own text: up to the first line where a quote starts."""
    lines: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if any(p.search(stripped) for p in rules.quote_starts):
            break
        lines.append(stripped)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# Text in quotation marks is a quote ('med teksten "Svar venligst ikke på denne mail"'), not the
# mail's statement about itself.
_QUOTED = re.compile(r'"[^"\n]{1,300}"|“[^“”\n]{1,300}[”“]|„[^“”\n]{1,300}[“”]|«[^«»\n]{1,300}»'
                     r'|»[^«»\n]{1,300}«')


def _automatic_body(mail: Inbound, rules: Screening) -> ScreenResult | None:
    """A body that says a machine wrote it, near the top of a short mail without documents
    (an autoresponder or a ticket system that sets no header at all)."""
    if mail.documents:
        return None
    own = own_top(mail.text or mail.html_text, rules)
    if not own or len(own) > rules.auto_reply_body_max_chars:
        return None
    top = _QUOTED.sub(" ", own[: rules.auto_reply_body_window])
    for group in rules.auto_reply_body:
        found = [p.search(top) for p in group]
        if all(found):
            phrase = " … ".join(" ".join(m.group(0).split()) for m in found if m)
            return ScreenResult("auto_reply", f"the text says it is automatic: {phrase!r}")
    return None


def _bulk(mail: Inbound, rules: Screening, _bot: str) -> ScreenResult | None:
    """RFC 3834 section 3.1.8 (Precedence), RFC 2369 / RFC 2919 list headers."""
    precedence = mail.header("precedence").strip().lower()
    if precedence in rules.bulk_precedence:
        return ScreenResult("bulk", f"Precedence: {precedence}")
    for name in rules.list_headers:
        if name in mail.headers:
            return ScreenResult("bulk", f"list or newsletter header {name} present")
    return None


def _loop(mail: Inbound, rules: Screening, _bot: str) -> ScreenResult | None:
    """RFC 5321 section 6.3 (too many Received headers), and the loop markers that mail
    systems set instead of Auto-Submitted."""
    hops = len(mail.headers.get("received", ()))
    if hops > rules.max_received_headers:
        return ScreenResult("loop", f"{hops} Received headers (limit {rules.max_received_headers})")
    for name in rules.loop_headers:
        if name in mail.headers:
            return ScreenResult("loop", f"loop marker {name} present: made or passed on by "
                                        "a machine (a mail system's rule, ticket system or list)")
    return None
