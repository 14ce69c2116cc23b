"""Log in to the SMTP server once, for `mailbot check` and the start of `mailbot run`."""

from __future__ import annotations

import asyncio

import aiosmtplib

from mailbot.config import SmtpSettings
from mailbot.errors import ConfigError
from mailbot.outbox import smtp_client


def check_smtp(settings: SmtpSettings, source: str) -> None:
    asyncio.run(_check(settings, source))


async def _check(s: SmtpSettings, source: str) -> None:
    smtp = smtp_client(s, timeout=min(s.timeout_seconds, 15))
    try:
        await smtp.connect()
    except (aiosmtplib.SMTPException, OSError) as err:
        raise ConfigError(source, "smtp.host", f"cannot reach {s.host}:{s.port} ({err})",
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
