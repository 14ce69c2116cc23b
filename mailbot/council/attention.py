"""The secretary's attention: the one way to tell her that something needs a person."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlmodel import Session

from mailbot.app import Bot
from mailbot.audit import record
from mailbot.cases.mail import mail_about_case
from mailbot.council.meetings import danish_date
from mailbot.delivery.mail import queue_mail
from mailbot.intake.parse import Inbound
from mailbot.intake.threads import meeting_of
from mailbot.models import Case
from mailbot.redact import redact_cpr
from mailbot.vocabulary import Purpose

log = logging.getLogger(__name__)
EXCERPT_CHARS = 1500


def tell_secretary(session: Session, bot: Bot, case: Case, reason: str, now: datetime,
                   said: str, mail: Inbound | None = None) -> None:
    """Record `reason` (English, for the timeline) on the case and mail `said` (the same in
    Danish, from rules/labels.yaml `attention`) to `council.secretary` with the mail that
    caused it, if any (sender, subject, the first 1,500 characters). The sender of that mail
    is never told. With no secretary configured, only the event and a warning remain."""
    record(session, case.id, None, now, "secretary_attention", reason)
    secretaries = bot.settings.council.secretary
    if not secretaries:
        log.warning("[%s] needs the secretary's attention but council.secretary is empty: %s",
                    case.ref, reason)
        return
    context = {"reason": said, "sender": "", "mail_subject": "", "excerpt": ""}
    if mail is not None:
        context.update(sender=mail.from_address or "(ukendt afsender)",
                       # redacted before the cut, which could leave half a CPR number
                       mail_subject=mail.subject, excerpt=redact_cpr(mail.text)[:EXCERPT_CHARS])
    mail_about_case(session, bot, case, template="secretary_attention",
                    purpose=Purpose.ATTENTION, to=secretaries, now=now, context=context)


def unauthenticated_agenda_reply(session: Session, bot: Bot, agenda: str, mail: Inbound,
                                 domain: str, now: datetime) -> None:
    """Tell `council.secretary` that a reply to the agenda `agenda` (AGD-2027-0308) from
    `mail`'s From failed DMARC for `domain` at our own server, so no decision in it was
    applied (SCENARIOS A5). The caller sees to it that this happens once per meeting and
    sender. Signed with the agenda's reference: her answer counts as a reply to the agenda."""
    secretaries = bot.settings.council.secretary
    if not secretaries:
        log.warning("%s: an unauthenticated reply to the agenda, and council.secretary is "
                    "empty", agenda)
        return
    queue_mail(session, bot, template="secretary_unauthenticated", purpose=Purpose.ATTENTION,
               to=secretaries, now=now, sign_ref=agenda,
               context={"meeting": danish_date(meeting_of(agenda)),
                        "sender": mail.from_address or "(ukendt afsender)", "domain": domain,
                        "mail_subject": mail.subject, "excerpt": mail.text[:EXCERPT_CHARS]})
