"""Log in to the SMTP server once, for `mailbot check` and the start of `mailbot run`."""

from __future__ import annotations

import asyncio
import secrets
from email.message import EmailMessage

import aiosmtplib

from mailbot.config import Settings, SmtpSettings
from mailbot.delivery.outbox import smtp_client
from mailbot.errors import ConfigError
from mailbot.intake.mailbox import Mailbox, tls_problem, warn_plaintext


def check_smtp(settings: SmtpSettings, source: str) -> None:
    """Connect (with TLS as configured) and log in once, at start.

    Raises ConfigError naming the key: smtp.host when the server cannot be reached, the
    TLS key and its fix when TLS fails (tls_problem), smtp.password for a refused login."""
    warn_plaintext("smtp", settings)
    asyncio.run(_check(settings, source))


async def _check(s: SmtpSettings, source: str) -> None:
    smtp = smtp_client(s, timeout=min(s.timeout_seconds, 15))
    try:
        await smtp.connect()
    except (aiosmtplib.SMTPException, OSError) as err:
        raise tls_problem(err, "smtp", s, source) or ConfigError(
            source, "smtp.host", f"cannot reach {s.host}:{s.port} ({err})",
            "check smtp.host, smtp.port and smtp.security") from err
    try:
        if s.username:
            await smtp.login(s.username, s.password.get_secret_value())
    except aiosmtplib.SMTPAuthenticationError as err:
        raise ConfigError(source, "smtp.password", f"the SMTP server refused {s.username!r}",
                          "check smtp.username and smtp.password") from err
    except aiosmtplib.SMTPException as err:
        raise ConfigError(source, "smtp.username", f"SMTP login failed ({err})",
                          "check smtp.security and the credentials") from err
    finally:
        smtp.close()


def probe_plus_addressing(settings: Settings, timeout: float = 30.0) -> None:
    """Send the mailbox a mail at local+probe-<random>@domain and wait for it in the watched
    folder; ConfigError when it does not arrive (then reply_tokens must stay off)."""
    local, _, domain = settings.bot.address.partition("@")
    token = secrets.token_hex(6)
    address = f"{local}+probe-{token}@{domain}"
    message_id = f"<mb.probe.{token}@{domain}>"
    msg = EmailMessage()
    msg["From"] = settings.bot.address
    msg["To"] = address
    msg["Subject"] = f"mailbot plus-address probe {token}"
    msg["Message-ID"] = message_id
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content("This mail tests plus addressing for `mailbot check`; it deletes itself.")
    asyncio.run(_send(settings.smtp, msg, settings.bot.address, address))
    mailbox = Mailbox(settings.imap, settings.source)
    mailbox.open(at_start=True)
    try:
        if not mailbox.wait_for_message_id(message_id, timeout):
            raise ConfigError(settings.source, "reviews.reply_tokens",
                              f"a mail to {address} did not arrive in {settings.imap.folder} "
                              f"within {timeout:.0f} s", "set reply_tokens = false")
    finally:
        mailbox.close()


async def _send(s: SmtpSettings, msg: EmailMessage, sender: str, recipient: str) -> None:
    smtp = smtp_client(s)
    await smtp.connect()
    try:
        if s.username:
            await smtp.login(s.username, s.password.get_secret_value())
        await smtp.send_message(msg, sender=sender, recipients=[recipient])
    finally:
        smtp.close()
