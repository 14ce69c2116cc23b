"""Mail about a case: the case summary in the context, the `[ITP-…]` tag in the subject, the
signed id naming the case, and the thread of the applicant's brief. Goes through the one
sending path, mailbot.delivery.mail.queue_mail."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlmodel import Session

from mailbot.app import Bot
from mailbot.cases.summary import case_summary
from mailbot.clock import as_utc
from mailbot.delivery.mail import Attachment, Threading, queue_mail
from mailbot.intake.threads import reply_to_address
from mailbot.models import Case, Outbox
from mailbot.vocabulary import Delivery, Purpose


def mail_about_case(session: Session, bot: Bot, case: Case, *, template: str,
                    purpose: Purpose, to: Sequence[str], context: Mapping[str, Any],
                    now: datetime, review: int = 0, language: str = "da",
                    attachments: Sequence[Attachment] = (), thread: Threading | None = None,
                    delivery: Delivery = Delivery.AT_MOST_ONCE) -> Outbox:
    """Queue one mail about `case`; the template sees `case` (a CaseSummary), `mail_subject`
    (the brief's subject) and `context`. Mail to the applicant continues the brief's thread;
    a review request (review > 0) starts its own, with a signed plus address in Reply-To when
    `reviews.reply_tokens` is on. Returns the outbox row."""
    assert case.id is not None
    if thread is None:
        parent = case.thread_message_id if review == 0 else ""
        thread = Threading(parent, (parent,) if parent else ())
    reply_to = (reply_to_address(bot.address, case.ref, review, bot.secret,
                                 as_utc(now).date())
                if review and bot.settings.reviews.reply_tokens else "")
    full = {"case": case_summary(bot.rules, case),
            "mail_subject": case.subject or case.title, **context}
    return queue_mail(session, bot, template=template, purpose=purpose, to=to, context=full,
                      now=now, sign_ref=case.ref, case_id=case.id, review=review,
                      language=language, tag=case.ref, thread=thread, attachments=attachments,
                      reply_to=reply_to, delivery=delivery)
