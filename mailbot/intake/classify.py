"""What an inbound mail is, and so what the daemon does with it: ONE pure decision used by
both the pipeline and `mailbot inspect`, so that `inspect` shows exactly what the daemon
would do. No database, no network: the pipeline passes what it knows of the named case.

Order (DESIGN.md, SCENARIOS L1-L6, A7): machine mail first (never answered), then mail our
own server found failing DMARC (its From: is not believed, A5: on a case's thread or the
agenda's it is unauthenticated, anything else is quarantined), then a reply
to our signed agenda mail, then the secretary naming cases outside such a reply, then mail
on a case's thread (a review reply only with our signed id), then other replies, and only
what is left is a new brief.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

from mailbot.config import Settings
from mailbot.intake.authresults import dmarc_failure
from mailbot.intake.parse import Inbound
from mailbot.intake.screen import ScreenResult
from mailbot.intake.threads import CASE_REF, ThreadMatch, looks_like_reply
from mailbot.reading.decisions import applicant_command, declares_ready
from mailbot.reading.replies import asks_for_status
from mailbot.rules import Rules
from mailbot.vocabulary import Purpose

SenderRole = Literal["applicant", "reviewer", "colleague", "outsider", "unverified"]
FollowupAction = Literal["status", "postpone", "withdraw", "klarmelding", "update"]


@dataclass(frozen=True)
class CaseFacts:
    """What classify needs to know of the case a mail names."""

    ref: str
    applicant: str  # "" when not known (inspect has no database): the sender is "unverified"


@dataclass(frozen=True)
class MachineMail:
    """Out-of-office, bounce, bulk, loop, our own mail: recorded, never answered."""

    screening: ScreenResult
    case_ref: str | None
    reason: str


@dataclass(frozen=True)
class AgendaReply:
    """A reply to our signed agenda mail; decisions count only from the secretary."""

    agenda: str  # AGD-2027-0308
    from_secretary: bool
    reason: str


@dataclass(frozen=True)
class ReviewReply:
    """A reply to our signed review request (the sender is checked against the review)."""

    case_ref: str
    review: int
    reason: str
    issued: date | None = None  # the day our id was issued (None: the legacy form, no day)


@dataclass(frozen=True)
class CaseMail:
    """Other mail on a case's thread: the applicant's follow-up, or someone else's words."""

    case_ref: str
    sender: SenderRole
    action: FollowupAction  # what the applicant asks for (used when sender is the applicant)
    tampered: bool  # an id of ours with a wrong signature: nothing is applied
    reason: str


@dataclass(frozen=True)
class StrayReply:
    """A reply that opens nothing: it names no case, a case that does not exist here, or it
    is the secretary naming cases without replying to an agenda mail."""

    case_ref: str | None
    event: str  # the audit event it leaves ("" for none)
    reason: str


@dataclass(frozen=True)
class EncryptedMail:
    """Encrypted S/MIME (RFC 8551 section 3.3): nothing of it can be read. The sender is told
    to send it unencrypted; no case is opened, nothing on a case changes."""

    case_ref: str | None
    reason: str


@dataclass(frozen=True)
class NewBrief:
    reason: str


@dataclass(frozen=True)
class Unauthenticated:
    """Mail on a case's thread or a reply to our agenda mail whose From: our own receiving
    server found failing DMARC (`security.authserv_id`): no verdict, decision or follow-up in
    it is applied; it is recorded and the secretary is told once per case and sender."""

    case_ref: str | None  # the case whose thread it is on (None: a reply to the agenda)
    agenda: str  # AGD-2027-0308 for a reply to the agenda mail, else ""
    failed_domain: str  # the From: domain that failed DMARC
    reason: str


@dataclass(frozen=True)
class Quarantine:
    """A mail that cannot be handled: it is quarantined with the reason, never answered."""

    reason: str


Disposition = (MachineMail | AgendaReply | ReviewReply | CaseMail | StrayReply | NewBrief
               | Quarantine | EncryptedMail | Unauthenticated)

ENCRYPTED_REF = "ENCRYPTED"  # the "case" the answer to an encrypted mail names: none


def classify(mail: Inbound, screening: ScreenResult, thread: ThreadMatch, settings: Settings,
             rules: Rules, case: CaseFacts | None) -> Disposition:
    """The disposition of one mail. `case` is the case `thread.case_ref` names (None when it
    names none, or none that exists)."""
    if screening.is_machine:
        return MachineMail(screening, thread.case_ref,
                           f"{screening.category}: {screening.reason}")
    failed_domain = dmarc_failure(mail.headers, mail.from_address, settings.security.authserv_id)
    if failed_domain:
        return _unauthenticated(thread, case, failed_domain)
    if thread.via == "alert":  # the operator's answer (or her autoresponder's) to an alert
        return StrayReply(None, "", "a reply to an alert mail to the operator: recorded, "
                          "never answered")
    if mail.smime == "encrypted":
        return EncryptedMail(thread.case_ref, "encrypted S/MIME that only the recipient's "
                             "private key opens: the sender is asked to send it unencrypted")
    secretary = mail.from_address in {a.lower() for a in settings.council.secretary}
    if thread.agenda:
        return AgendaReply(thread.agenda, secretary,
                           "reply to the agenda mail" if secretary else
                           f"reply to the agenda from {mail.from_address or 'unknown'}, who is "
                           "not in council.secretary; no decision applied")
    if secretary and thread.case_ref is None and CASE_REF.search(mail.text):
        return StrayReply(None, "decisions_not_applied",
                          "the secretary named cases without replying to an agenda mail; "
                          "no decision applied")
    if thread.case_ref is not None:
        return _on_thread(mail, thread, settings, rules, case)
    if looks_like_reply(mail) and not answers_encrypted_notice(mail, settings.bot.domain):
        return StrayReply(None, "", "a reply on a thread that names no case")
    if mail.from_address in {a.lower() for a in settings.operator.addresses}:
        # a ticket system or helpdesk behind the operator's address answers alerts with
        # subjects and threads of its own: never a brief, never answered (no loop)
        return StrayReply(None, "", "mail from the operator's address (operator.addresses) "
                          "that names no case: recorded, never answered")
    if not mail.from_address:
        return Quarantine("no single, well-formed From address: cannot tell who applies")
    return NewBrief("a new brief: a case is opened and the applicant gets one receipt")


def _unauthenticated(thread: ThreadMatch, case: CaseFacts | None,
                     failed_domain: str) -> Unauthenticated | Quarantine:
    """Mail whose From: failed DMARC (RFC 7489 section 3.1; RFC 8601 section 5: only our own
    server's header is read). On a case's or the agenda's thread it is no verdict, decision
    or follow-up, but recorded for the secretary; anything else (a new brief) is quarantined:
    no case, and no receipt to an address that did not write (backscatter)."""
    reason = f"dmarc=fail for {failed_domain}"
    if thread.agenda:
        return Unauthenticated(None, thread.agenda, failed_domain,
                               f"{reason}: a reply to the agenda of {thread.agenda} decides "
                               "nothing; the secretary is told")
    if case is not None:
        return Unauthenticated(case.ref, "", failed_domain,
                               f"{reason}: mail on {case.ref}; nothing in it is applied, the "
                               "secretary is told")
    return Quarantine(reason)


def answers_encrypted_notice(mail: Inbound, domain: str) -> bool:
    """A reply to our "we cannot read encrypted mail" answer: the brief sent again, plainly."""
    prefix, suffix = f"<mb.{Purpose.ENCRYPTED.value}.", f"@{domain.lower()}>"
    return any(m.lower().startswith(prefix) and m.lower().endswith(suffix)
               for m in mail.in_reply_to)


def _on_thread(mail: Inbound, thread: ThreadMatch, settings: Settings, rules: Rules,
               case: CaseFacts | None) -> Disposition:
    ref = thread.case_ref
    assert ref is not None
    if case is None:
        return StrayReply(ref, "", f"refers to {ref}, which is not a case here")
    if thread.review:
        return ReviewReply(ref, thread.review, f"reply to review request {thread.review}",
                           thread.issued)
    role = sender_role(mail.from_address, case, settings)
    action = followup_action(mail, rules) if role in ("applicant", "unverified") else "update"
    return CaseMail(ref, role, action, thread.tampered, _case_mail_reason(ref, role, action,
                                                                        thread.tampered))


def _case_mail_reason(ref: str, role: SenderRole, action: FollowupAction,
                      tampered: bool) -> str:
    if tampered:
        return f"mail on the thread of {ref} with a damaged or forged id of ours: nothing " \
               "is applied, the secretary is told"
    what = {"applicant": f"the applicant's {action} on {ref}",
            "reviewer": f"a reviewer wrote on {ref} without answering our request: the "
                        "secretary is told",
            "colleague": f"a colleague wrote on {ref}: recorded",
            "outsider": f"someone outside the municipality wrote on {ref}: the secretary is "
                        "told",
            "unverified": f"mail on {ref}; without the database the sender cannot be checked "
                          f"(if it is the applicant: {action})"}
    return what[role]


def sender_role(sender: str, case: CaseFacts, settings: Settings) -> SenderRole:
    """Who wrote on a case's thread: the applicant, a reviewer, a colleague (the bot's own
    domain), an outsider; `unverified` when the applicant is not known here."""
    if case.applicant and sender == case.applicant.lower():
        return "applicant"
    reviewers = settings.reviewers
    if any(sender in (a.lower() for a in getattr(reviewers, role))
           for role in type(reviewers).model_fields):
        return "reviewer"
    if not case.applicant:
        return "unverified"
    if sender.endswith("@" + settings.bot.domain):
        return "colleague"
    return "outsider"


def followup_action(mail: Inbound, rules: Rules) -> FollowupAction:
    """"status" alone asks for the checklist; "udsæt" / "træk tilbage" move the case;
    "klarmelding" declares it ready for final approval (an update too: its documents and
    answers are taken in first); anything else is an update (new answers, documents,
    declarations)."""
    text = mail.text or mail.html_text
    if asks_for_status(mail.subject, text, rules) and not mail.documents:
        return "status"
    command = applicant_command(text, rules)
    if command == "postpone":
        return "postpone"
    if command == "withdraw":
        return "withdraw"
    if declares_ready(mail.subject, text, rules):
        return "klarmelding"
    return "update"
