"""The one way mailbot sends a mail: render a named template trio, build the message, sign
its Message-ID, and add it to the outbox in the caller's transaction.

Nothing here talks to a server; the outbox's Sender delivers after the commit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from mailbot.app import Bot
from mailbot.clock import as_utc
from mailbot.delivery.compose import Outgoing, build_message, tagged_subject
from mailbot.delivery.outbox import enqueue
from mailbot.intake.threads import signed_message_id
from mailbot.models import Outbox
from mailbot.redact import redact_cpr
from mailbot.vocabulary import AutoSubmitted, Delivery, Purpose

Attachment = tuple[str, bytes, str]  # (filename, payload, content type)


@dataclass(frozen=True)
class Threading:
    """Where the mail sits in a conversation: the parent's Message-ID and the References."""

    in_reply_to: str = ""
    references: tuple[str, ...] = ()


NEW_THREAD = Threading()


def answers_sent(session: Session, address: str, case_id: int | None, kinds: Sequence[Purpose],
                 since: datetime) -> int:
    """Direct answers (`kinds`) queued to `address` about `case_id` (None: about no case)
    since `since`."""
    # only the recipients column: the rows' raw messages (with attachments) stay unread
    query = select(Outbox.recipients).where(col(Outbox.kind).in_([k.value for k in kinds]),
                                            col(Outbox.created_at) >= since)
    query = query.where(col(Outbox.case_id).is_(None) if case_id is None
                        else Outbox.case_id == case_id)
    return sum(address.lower() in (r.lower() for r in recipients)
               for recipients in session.exec(query))


def may_answer(session: Session, bot: Bot, address: str, case_id: int | None,
               now: datetime) -> bool:
    """False when `address` has had `limits.answers_per_case_per_day` direct answers about
    this case in the last 24 hours: the brake on a ping-pong with an autoresponder that sets
    no automation header (SCENARIOS L6; RFC 3834 section 2 asks responders to limit the
    rate). The withheld answer is the caller's to record."""
    limit = bot.settings.limits.answers_per_case_per_day
    return answers_sent(session, address, case_id, DIRECT_ANSWERS,
                        now - timedelta(hours=24)) < limit


DIRECT_ANSWERS = tuple(p for p in Purpose if p.auto_submitted == AutoSubmitted.REPLIED
                       and p != Purpose.RECEIPT)  # receipts have their own flood guard


def queue_mail(session: Session, bot: Bot, *, template: str, purpose: Purpose,
               to: Sequence[str], context: Mapping[str, Any], now: datetime, sign_ref: str,
               case_id: int | None = None, review: int = 0, language: str = "da",
               tag: str = "", thread: Threading = NEW_THREAD,
               attachments: Sequence[Attachment] = (), reply_to: str = "",
               delivery: Delivery = Delivery.AT_MOST_ONCE) -> Outbox:
    """Render `<language>/<template>.{subject,txt,html}.j2` with `context` (plus `bot_name`),
    and queue it as one outbox row; returns the row (its `message_id` is the signed id).

    `sign_ref` is the case reference (or agenda reference) the signed Message-ID names, so a
    reply can be traced back (mailbot.intake.threads); `tag` puts `[ITP-2026-0001]` in front
    of the subject. `Auto-Submitted` follows from `purpose` (RFC 3834). Raises ConfigError
    when a template is missing."""
    outgoing = compose_mail(bot, template=template, purpose=purpose, to=to, context=context,
                            now=now, sign_ref=sign_ref, review=review, language=language,
                            tag=tag, thread=thread, attachments=attachments,
                            reply_to=reply_to)
    return enqueue(session, outgoing, kind=purpose.value, case_id=case_id, now=now,
                   delivery=delivery.value)


def compose_mail(bot: Bot, *, template: str, purpose: Purpose, to: Sequence[str],
                 context: Mapping[str, Any], now: datetime, sign_ref: str, review: int = 0,
                 language: str = "da", tag: str = "", thread: Threading = NEW_THREAD,
                 attachments: Sequence[Attachment] = (), reply_to: str = "") -> Outgoing:
    """The message `queue_mail` queues, not yet queued (see queue_mail for the arguments).
    Only an alert about a database that cannot store it is sent without the outbox
    (mailbot.alerts).

    The last guard of every mail the bot sends: its subject, text, HTML and the names of its
    attachments are CPR-redacted (SCENARIOS G1), whatever the context held. The attachments'
    bytes are sent as given: the bot's own files (agenda DOCX) are built from redacted data,
    and the applicant's documents are the record and go to their reviewers unchanged."""
    full = {"bot_name": bot.settings.bot.name, **context}
    subject, text, html = (redact_cpr(part)
                           for part in bot.renderer.render_mail(language, template, full))
    if tag:
        subject = tagged_subject(tag, subject)
    message_id = signed_message_id(purpose.value, sign_ref, bot.domain, bot.secret, review,
                                   issued=as_utc(now).date())
    raw = build_message(
        sender_name=bot.settings.bot.name, sender_address=bot.settings.bot.address,
        to=tuple(to), subject=subject, text=text, html=html, message_id=message_id, now=now,
        in_reply_to=thread.in_reply_to, references=thread.references,
        auto_submitted=purpose.auto_submitted, language=language,
        attachments=tuple((redact_cpr(name), payload, content_type)
                          for name, payload, content_type in attachments),
        reply_to=reply_to,
    )
    return Outgoing(message_id, tuple(to), subject, raw)
