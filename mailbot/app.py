"""Everything one running bot needs, built once from the settings.

Importing this module is cheap (the CLI's `inspect` uses rules_folder); build_bot loads the
database, the templates and the SMTP client when a bot is really built.
"""

from __future__ import annotations

import logging
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
    from mailbot.blobs import BlobStorage
    from mailbot.clock import Clock
    from mailbot.config import Settings
    from mailbot.delivery.compose import Renderer
    from mailbot.delivery.outbox import Sender
    from mailbot.kitos import KitosClient
    from mailbot.rules import Rules

log = logging.getLogger(__name__)

@dataclass
class Bot:
    settings: Settings
    engine: Engine
    rules: Rules
    renderer: Renderer
    blobs: BlobStorage
    clock: Clock
    sender: Sender
    tokens: TokenSource | None = None  # the OAuth2 token IMAP and SMTP share, if they use it
    # a secret given as it is (the rehearsal's throwaway one); None: `secret` loads it
    fixed_secret: bytes | None = None
    read_only: bool = False  # a read-only command: `secret` creates nothing

    @cached_property
    def secret(self) -> bytes:
        """The signing secret (load_secret), read on first use: the database may not be
        migrated yet when the bot is built."""
        if self.fixed_secret is not None:
            return self.fixed_secret
        return load_secret(self.settings, self.engine, create=not self.read_only)

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


SECRET_NAME = "signing"  # the bot_secret row of the Message-ID and reply-token secret


def load_secret(settings: Settings, engine: Engine, create: bool = True) -> bytes:
    """`bot.secret` when configured; else the one secret in the database (table bot_secret),
    shared by every host on it, so a reply to mail one host sent verifies on the other.

    Migration 0020 stores it: the value of data_dir/secret of the host that migrates, when
    that file exists (the secret kept before issue #15: replies to older mail still verify),
    else 64 random hex digits (mailbot.db.migrate, `secret_file`). Creating it there, once,
    means no signature ever waits for its creation inside a write transaction (SQLite). A
    row that is missing anyway is stored here with INSERT ... ON CONFLICT DO NOTHING and read
    back, so two hosts agree on whichever came first; create=False (read-only commands)
    stores nothing and returns the file's value or b"".
    A data_dir/secret that differs from the database's is one WARNING line: mail signed with
    it before the upgrade no longer verifies. Database errors propagate (mailbot.storage).
    """
    configured = settings.bot.secret.get_secret_value()
    if configured:
        return configured.encode()
    legacy = settings.bot.data_dir / "secret"
    old = legacy.read_text().strip() if legacy.exists() else ""
    stored = _stored_secret(engine)
    if not stored and create:
        from mailbot.clock import utcnow
        from mailbot.db import insert_if_missing
        from mailbot.models import BotSecret

        with engine.begin() as conn:
            insert_if_missing(conn, BotSecret.__table__,  # type: ignore[attr-defined]
                              {"name": SECRET_NAME, "value": old or secrets.token_hex(32),
                               "created_at": utcnow()}, ["name"])
        stored = _stored_secret(engine)
    if not stored:
        return old.encode()
    if old and old.encode() != stored:
        log.warning("%s is not the secret in the database, which signs the bot's mail: "
                    "replies to mail signed with the file before the upgrade do not verify. "
                    "Fix: set bot.secret to the file's value on every host (or accept it)",
                    legacy)
    return stored


def _stored_secret(engine: Engine) -> bytes:
    from sqlalchemy import select

    from mailbot.models import BotSecret

    table = BotSecret.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        value = conn.execute(select(table.c.value).where(table.c.name == SECRET_NAME)
                             ).scalar_one_or_none()
    return str(value).encode() if value else b""


def blob_store(settings: Settings, engine: Engine) -> BlobStorage:
    """The blob store: new blobs go where `bot.blob_store` says (Settings.blob_store resolves
    the default), the database table or data_dir/blobs; reads and retention cover both, so a
    switch either way keeps what the other store holds (LayeredBlobStore). On SQLite the
    files alone: "database" is refused there (config.py), so the table is always empty."""
    from mailbot.blobs import BlobStore, DatabaseBlobStore, LayeredBlobStore

    files = BlobStore(settings.bot.data_dir / "blobs")
    if not settings.on_postgresql:
        return files
    table = DatabaseBlobStore(engine)
    if settings.blob_store == "database":
        return LayeredBlobStore(table, files)
    return LayeredBlobStore(files, table)


def rules_folder(settings: Settings) -> Path:
    return settings.bot.rules_dir or shipped("rules")


def template_folders(settings: Settings) -> list[Path]:
    # a local folder first, so a municipality can override single templates
    local = [settings.bot.templates_dir] if settings.bot.templates_dir else []
    return [*local, shipped("templates")]


def build_bot(settings: Settings, clock: Clock, engine: Engine | None = None,
              read_only: bool = False) -> Bot:
    """Engine (from settings.database_url unless given), rules, templates, blob store, sender.

    read_only: create no secret (see load_secret). The secret is read from the database on
    first use (Bot.secret): the caller may migrate after building. Raises ConfigError for a
    bad database URL, rules or templates folder.
    """
    from mailbot.auth import token_source
    from mailbot.db import make_engine
    from mailbot.delivery.compose import Renderer
    from mailbot.delivery.outbox import Sender
    from mailbot.rules import load_rules

    engine = engine or make_engine(settings.database_url, *settings.origin("bot.database_url"),
                                   takeover_seconds=settings.bot.takeover_seconds)
    tokens = token_source(settings)
    bot = Bot(
        settings=settings,
        engine=engine,
        rules=load_rules(rules_folder(settings)),
        renderer=Renderer(template_folders(settings)),
        blobs=blob_store(settings, engine),
        clock=clock,
        sender=Sender(engine, settings.smtp, settings.bot.address, tokens, settings.limits),
        tokens=tokens,
        read_only=read_only,
    )
    bot.sender.report_to(bot.alerts.raise_in)
    bot.sender.on_outage = bot.alerts.raise_alert
    return bot
