"""Everything one running bot needs, built once from the settings.

Importing this module is cheap (the CLI's `inspect` uses rules_folder); build_bot loads the
database, the templates and the SMTP client when a bot is really built.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from mailbot.resources import shipped

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from mailbot.alerts import Alerts
    from mailbot.auth import TokenSource
    from mailbot.blobs import BlobStore
    from mailbot.clock import Clock
    from mailbot.config import Settings
    from mailbot.delivery.compose import Renderer
    from mailbot.delivery.outbox import Sender
    from mailbot.kitos import KitosClient
    from mailbot.rules import Rules


@dataclass
class Bot:
    settings: Settings
    engine: Engine
    rules: Rules
    renderer: Renderer
    blobs: BlobStore
    clock: Clock
    sender: Sender
    secret: bytes
    tokens: TokenSource | None = None  # the OAuth2 token IMAP and SMTP share, if they use it

    @cached_property
    def alerts(self) -> Alerts:
        """The operator's alerts (mailbot.alerts), built on first use."""
        from mailbot.alerts import Alerts

        return Alerts(self)

    @cached_property
    def kitos(self) -> KitosClient:
        """The KITOS client (`[kitos]`), built on first use: its token lives as long as the
        process, until KITOS's `expires`."""
        from mailbot.kitos import KitosClient

        return KitosClient(self.settings.kitos)

    @property
    def address(self) -> str:
        return self.settings.bot.address.lower()

    @property
    def domain(self) -> str:
        return self.settings.bot.domain


def load_secret(settings: Settings, create: bool = True) -> bytes:
    """bot.secret, else a random secret kept in data_dir/secret (created once, mode 0600).

    create=False (read-only commands): b"" when there is none yet, so a command run by another
    user never leaves a secret the daemon cannot read.
    """
    configured = settings.bot.secret.get_secret_value()
    if configured:
        return configured.encode()
    path = settings.bot.data_dir / "secret"
    if not path.exists():
        if not create:
            return b""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def rules_folder(settings: Settings) -> Path:
    return settings.bot.rules_dir or shipped("rules")


def template_folders(settings: Settings) -> list[Path]:
    # a local folder first, so a municipality can override single templates
    local = [settings.bot.templates_dir] if settings.bot.templates_dir else []
    return [*local, shipped("templates")]


def build_bot(settings: Settings, clock: Clock, engine: Engine | None = None,
              read_only: bool = False) -> Bot:
    """Engine (from settings.database_url unless given), rules, templates, blob store, sender.

    read_only: create no secret (see load_secret). Raises ConfigError for a bad database URL,
    rules or templates folder.
    """
    from mailbot.auth import token_source
    from mailbot.blobs import BlobStore
    from mailbot.db import make_engine
    from mailbot.delivery.compose import Renderer
    from mailbot.delivery.outbox import Sender
    from mailbot.rules import load_rules

    engine = engine or make_engine(settings.database_url, *settings.origin("bot.database_url"))
    tokens = token_source(settings)
    bot = Bot(
        settings=settings,
        engine=engine,
        rules=load_rules(rules_folder(settings)),
        renderer=Renderer(template_folders(settings)),
        blobs=BlobStore(settings.bot.data_dir / "blobs"),
        clock=clock,
        sender=Sender(engine, settings.smtp, settings.bot.address, tokens, settings.limits),
        secret=load_secret(settings, create=not read_only),
        tokens=tokens,
    )
    bot.sender.report_to(bot.alerts.raise_in)
    bot.sender.on_outage = bot.alerts.raise_alert
    return bot
