"""Log in to the SMTP server once, for `mailbot check` and the start of `mailbot run`."""

from __future__ import annotations

import asyncio
import secrets
from email.message import EmailMessage
from typing import TYPE_CHECKING

import aiosmtplib

from mailbot.config import Settings, SmtpSettings
from mailbot.delivery.outbox import smtp_client, smtp_login
from mailbot.errors import ConfigError
from mailbot.intake.mailbox import Mailbox, tls_problem, unreachable, warn_plaintext

if TYPE_CHECKING:
    from mailbot.auth import TokenSource


def check_smtp(settings: SmtpSettings, source: str, tokens: TokenSource | None = None) -> None:
    """Connect (with TLS as configured) and log in as smtp.auth says, once, at start.

    Raises ConfigError naming the key to fix: smtp.host when the server cannot be reached,
    the TLS key and its fix when TLS fails (tls_problem), smtp.password for a refused
    password; with OAuth2 the refusals Exchange Online gives are told apart
    (auth.smtp_refused)."""
    warn_plaintext("smtp", settings)
    asyncio.run(_check(settings, source, tokens))


async def _check(s: SmtpSettings, source: str, tokens: TokenSource | None) -> None:
    from mailbot.auth import TokenEndpointDown, smtp_refused

    smtp = smtp_client(s, timeout=min(s.timeout_seconds, 15))
    try:
        await smtp.connect()
    except (aiosmtplib.SMTPException, OSError) as err:
        raise tls_problem(err, "smtp", s, source) or unreachable(err, "smtp", s, source) from err
    try:
        await smtp_login(smtp, s, tokens, source)
    except TokenEndpointDown as err:
        raise err.config_error from err
    except aiosmtplib.SMTPAuthenticationError as err:
        if s.auth == "oauth2" and tokens is not None:
            raise smtp_refused(tokens, s.username, err.code, err.message) from err
        if "5.7.139" in err.message:  # Exchange Online: basic authentication is disabled
            raise ConfigError(source, "smtp.auth", f"the SMTP server refused password login "
                              f"of {s.username!r} ({err.code} {err.message})",
                              'Exchange Online takes no passwords: set smtp.auth = "oauth2" '
                              "(see the README, Microsoft 365)") from err
        raise ConfigError(source, "smtp.password", f"the SMTP server refused {s.username!r}",
                          "check smtp.username and smtp.password") from err
    except aiosmtplib.SMTPException as err:
        raise ConfigError(source, "smtp.username", f"SMTP login failed ({err})",
                          "check smtp.security and the credentials") from err
    finally:
        smtp.close()


def probe_plus_addressing(settings: Settings, timeout: float = 30.0,
                          tokens: TokenSource | None = None) -> None:
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
    asyncio.run(_send(settings.smtp, msg, settings.bot.address, address, tokens))
    mailbox = Mailbox(settings.imap, settings.source, tokens)
    mailbox.open(at_start=True)
    try:
        if not mailbox.wait_for_message_id(message_id, timeout):
            raise ConfigError(settings.source, "reviews.reply_tokens",
                              f"a mail to {address} did not arrive in {settings.imap.folder} "
                              f"within {timeout:.0f} s", "set reply_tokens = false")
    finally:
        mailbox.close()


async def _send(s: SmtpSettings, msg: EmailMessage, sender: str, recipient: str,
                tokens: TokenSource | None) -> None:
    smtp = smtp_client(s)
    await smtp.connect()
    try:
        await smtp_login(smtp, s, tokens)
        await smtp.send_message(msg, sender=sender, recipients=[recipient])
    finally:
        smtp.close()
