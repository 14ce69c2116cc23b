"""Alerts to the operator: what SCENARIOS.md calls "one admin alert" (issue #10, item 7).

Every incident is an ERROR log line `event=<incident> <detail>` (a stable name to search and
to alert on from the journal). With `[operator] addresses` set, the first incident of a kind
is also a mail to the operator, and the next mail about that kind comes at the earliest
`operator.alert_hours` later, telling how many more happened meanwhile: one incident, one
mail, never a flood, whatever loops.

The mail goes through the outbox like every other mail (mailbot.delivery.mail.queue_mail),
`Auto-Submitted: auto-generated` (RFC 3834), so an operator's autoresponder does not answer
it, and a reply to it names no case and is never answered. Only when the database itself
cannot store the alert (it is down, locked or on a full disk) is it sent at once over SMTP
(mailbot.delivery.outbox.send_direct), rate-limited in memory by the same interval.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import aiosmtplib
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from mailbot.clock import as_utc
from mailbot.db import transaction
from mailbot.errors import MailbotError
from mailbot.intake.threads import ALERT_REF
from mailbot.models import Alert
from mailbot.redact import redact_cpr
from mailbot.vocabulary import Delivery, Incident, Purpose

if TYPE_CHECKING:
    from mailbot.app import Bot

log = logging.getLogger(__name__)


# (what happened, what to do), in Danish like every mail the bot writes
EXPLAINED: dict[Incident, tuple[str, str]] = {
    Incident.POISON_MAIL: (
        "En mail er sat i karantæne, fordi mailbot fejlede eller døde, hver gang den blev "
        "læst.",
        "Find mailen i karantænemappen (eller med `mailbot messages --state quarantined`), "
        "og behandl den i hånden: afsenderen har ikke fået svar. Meld fejlen til udviklerne "
        "med uddata fra `mailbot inspect` af mailen."),
    Incident.IMAP_LOGIN_FAILING: (
        "mailbot kan ikke logge ind på postkassen og modtager ingen mail.",
        "Se detaljerne ovenfor. Er fejlen rettet på serveren (en tilladelse, en låst konto), "
        "prøver mailbot igen af sig selv, mindst hvert 15. minut. Skal adgangskoden eller "
        "OAuth2-opsætningen i konfigurationen ændres: ret den, kør `mailbot check`, og "
        "genstart mailbot (`systemctl restart mailbot`); konfigurationen læses kun ved start."),
    Incident.OUTBOX_FAILURES: (
        "En mail fra mailbot kunne ikke afleveres, eller det er uvist, om den nåede frem.",
        "Se `mailbot outbox --state failed` og `--state uncertain`. En mail med tilstanden "
        "uncertain sendes ikke igen af sig selv: kontrollér hos modtageren, og send den i "
        "hånden, hvis den mangler (`mailbot outbox show ID` viser den)."),
    Incident.CIRCUIT_BREAKER_OPEN: (
        "Al mail til ansøgere er sat på pause: mailbot har skrevet usædvanligt meget til "
        "ansøgere på kort tid.",
        "Find årsagen (ofte en autosvar-løkke) med `mailbot outbox` og `mailbot messages`, "
        "og genoptag med `mailbot outbox resume`."),
    Incident.UIDVALIDITY_CHANGED: (
        "Postkassens UIDVALIDITY er ændret (flyttet eller genoprettet postkasse).",
        "Intet skal gøres, hvis postkassen er flyttet med vilje: kendt mail genkendes på "
        "Message-ID og indhold og behandles ikke igen. Se `mailbot messages`."),
    Incident.STORAGE_TROUBLE: (
        "Databasen eller disken kan ikke gemme mail. Ingen mail flyttes eller mistes; "
        "mailbot venter og prøver igen af sig selv.",
        "Se detaljerne ovenfor: frigør plads på disken med mailbots datamappe (bot.data_dir, "
        "`df -h`), afslut det program, der låser databasen, eller bring databasen op igen. "
        "mailbot fortsætter af sig selv bagefter."),
    Incident.FETCH_FAILING: (
        "En mail i postkassen kunne ikke hentes tre gange; den er lagt i karantænemappen "
        "uden at være læst, de andre mails behandles.",
        "Åbn mailen i karantænemappen med et almindeligt mailprogram (UID i detaljerne "
        "ovenfor), behandl den i hånden, og meld fejlen, hvis serveren er i orden."),
    Incident.MAILBOX_ANOMALY: (
        "Postkassen opfører sig uventet (en genbrugt UID eller mail flyttet af en anden).",
        "Kontrollér, at kun én mailbot og ingen regel eller person flytter mail i "
        "postkassen. Se `mailbot messages`."),
    Incident.SMTP_FAILING: (
        "mailbot kan ikke sende mail: SMTP-serveren svarer ikke eller afviser login eller TLS. "
        "Al udgående mail venter i udbakken og sendes, når serveren virker igen.",
        "Se detaljerne ovenfor og kør `mailbot check`. Er fejlen i konfigurationen (adgangs"
        "kode, OAuth2, smtp.host), så ret den og genstart mailbot. Denne mail kan først nå "
        "frem, når SMTP virker igen; loggen har linjen med det samme."),
    Incident.ANOTHER_INSTANCE: (
        "En anden mailbot med sin egen database behandler den samme postkasse. Al mail til "
        "ansøgere er sat på pause, så ingen får svar to gange.",
        "Stop den anden mailbot (to mailbotter på én postkasse understøttes ikke), kontrollér "
        "med `mailbot outbox` og `mailbot messages`, hvad der er sendt, og genoptag med "
        "`mailbot outbox resume`."),
}


class Alerts:
    """The operator's alerts for one Bot (`bot.alerts`)."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        self.interval = timedelta(hours=bot.settings.operator.alert_hours)
        self._sent_directly: dict[Incident, datetime] = {}

    @property
    def addresses(self) -> list[str]:
        return self.bot.settings.operator.addresses

    def raise_alert(self, incident: Incident, detail: str) -> None:
        """Log the incident at ERROR and mail the operator if due, in a transaction of its
        own. When the database cannot take it, the mail is sent directly (see module doc);
        never raises for a database or mail server that is away."""
        now = self.bot.clock.now()
        try:
            with transaction(self.bot.engine) as session:
                self.raise_in(session, incident, detail, now)
        except (SQLAlchemyError, OSError) as err:
            log.warning("alert %s not stored (%s); mailing the operator directly",
                        incident.value, type(err).__name__)
            self._send_directly(incident, redact_cpr(detail), now)

    def raise_in(self, session: Session, incident: Incident, detail: str, now: datetime
                 ) -> None:
        """raise_alert inside the caller's transaction (the mail commits with the incident)."""
        detail = redact_cpr(detail)
        log.error("event=%s %s", incident.value, detail)
        if not self.addresses:
            return
        row = session.get(Alert, incident.value) or Alert(kind=incident.value, last_at=now)
        row.last_at, row.detail = now, detail[:2000]
        if row.mailed_at is not None and now - as_utc(row.mailed_at) < self.interval:
            row.since_mail += 1
            session.add(row)
            return
        from mailbot.delivery.mail import queue_mail

        queue_mail(session, self.bot, template="operator_alert", purpose=Purpose.ALERT,
                   to=self.addresses, context=self.context(incident, detail, row.since_mail),
                   now=now, sign_ref=ALERT_REF, delivery=Delivery.AT_LEAST_ONCE)
        row.mailed_at, row.since_mail = now, 0
        session.add(row)

    def context(self, incident: Incident, detail: str, since_mail: int) -> dict[str, object]:
        """What the `operator_alert` templates are given: the incident's stable name, what
        happened and what to do (EXPLAINED), the detail, and how many more since the last
        mail."""
        what, fix = EXPLAINED[incident]
        hours = f"{self.bot.settings.operator.alert_hours:g}".replace(".", ",")  # Danish comma
        return {"incident": incident.value, "what": what, "fix": fix, "detail": detail,
                "more": since_mail, "hours": hours}

    def _send_directly(self, incident: Incident, detail: str, now: datetime) -> None:
        last = self._sent_directly.get(incident)
        if not self.addresses or (last is not None and now - last < self.interval):
            return
        from mailbot.delivery.mail import compose_mail
        from mailbot.delivery.outbox import send_direct

        outgoing = compose_mail(self.bot, template="operator_alert", purpose=Purpose.ALERT,
                                to=self.addresses, context=self.context(incident, detail, 0),
                                now=now, sign_ref=ALERT_REF)
        try:
            asyncio.run(send_direct(self.bot.settings.smtp, self.bot.tokens,
                                    self.bot.settings.bot.address, outgoing))
        except (aiosmtplib.SMTPException, OSError, MailbotError) as err:
            log.warning("alert %s could not be mailed either: %s", incident.value, err)
            return
        self._sent_directly[incident] = now
