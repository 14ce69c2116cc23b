"""Shared fixtures: paths to ../shared, the rules, and a mail world on real servers."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
import trustme
from sqlalchemy.engine import Engine

from mailbot.app import Bot, build_bot
from mailbot.clock import Clock
from mailbot.config import Settings, load_settings
from mailbot.db import make_engine, migrate
from mailbot.mailworld import Pymap, SmtpSink, read_mailbox, settings_dict, to_toml
from mailbot.resources import shipped
from mailbot.rules import Rules, load_rules
from mailbot.service import Service
from tests.dovecot import Dovecot, TlsFiles, dovecot_available
from tests.mails import brief
from tests.oauth2_server import Endpoint, TokenBook, https_endpoint
from tests.postgres import Postgres, postgres_available

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
FIXTURES = ROOT / "fixtures"


def shared_path(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared is not beside this checkout)")
    return path


@pytest.fixture(scope="session")
def rules() -> Rules:
    return load_rules(shipped("rules"))


# -- the mail world -------------------------------------------------------------------------
@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot | None]:
    if not dovecot_available():
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true: Dovecot is mandatory (apt-get install dovecot-imapd "
                        "dovecot-lmtpd, run as root)")
        yield None
        return
    server = Dovecot()
    server.start()
    yield server
    server.cleanup()


# -- the database backends (issue #15) -------------------------------------------------------
BACKENDS = ("sqlite", "postgresql")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test on a mail world runs once per database backend; a test marked `soak` or
    `one_backend` runs on SQLite only (a long soak twice would double CI's time for no new
    fault), and a test marked `postgresql_only` on PostgreSQL only."""
    if "backend" not in metafunc.fixturenames:
        return
    if metafunc.definition.get_closest_marker("postgresql_only"):
        backends: tuple[str, ...] = ("postgresql",)
    elif metafunc.definition.get_closest_marker("soak") or \
            metafunc.definition.get_closest_marker("one_backend"):
        backends = ("sqlite",)
    else:
        backends = BACKENDS
    metafunc.parametrize("backend", backends, scope="function")


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres | None]:
    """A private PostgreSQL cluster for the whole run (tests/postgres.py); None when
    PostgreSQL is not installed here (its tests are skipped; under CI=true they fail)."""
    if not postgres_available():
        yield None
        return
    server = Postgres()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def database_url(backend: str, postgres: Postgres | None) -> str | None:
    """The `bot.database_url` of this test's backend: None for SQLite (the default file in
    data_dir), else a fresh PostgreSQL database migrated to head."""
    if backend == "sqlite":
        return None
    return required(postgres).new_database()


@pytest.fixture
def engine(database_url: str | None, tmp_path: Path) -> Iterator[Engine]:
    """A migrated database on this test's backend (a SQLite file, or a PostgreSQL copy of
    the migrated template)."""
    made = make_engine(database_url or f"sqlite:///{tmp_path / 'mailbot.sqlite3'}")
    if database_url is None:
        migrate(made, quiet=True)
    yield made
    made.dispose()


def required(postgres: Postgres | None) -> Postgres:
    """The cluster, for a test that cannot run without it: skips the test when PostgreSQL
    is not installed here, fails it under CI=true (where a skip would hide the backend)."""
    if postgres is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true: PostgreSQL is mandatory (apt-get install postgresql "
                        "and pip install -e '.[test]', which brings psycopg)")
        pytest.skip("PostgreSQL is not installed here (apt-get install postgresql)")
    return postgres


@pytest.fixture
def empty_database_url(backend: str, postgres: Postgres | None, tmp_path: Path) -> str:
    """A database that was never migrated, for the tests of migrating itself: the default
    SQLite file of data_dir ./data (not created yet) or an empty PostgreSQL database."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'mailbot.sqlite3'}"
    return required(postgres).new_database(migrated=False)


_COUNTER = itertools.count(1)


@dataclass
class World:
    """A bot mailbox on a real IMAP server, an aiosmtpd server delivering into it, a data dir."""

    imap: Dovecot | Pymap
    smtp: SmtpSink
    bot_address: str
    tmp: Path
    applicant: str
    extra: dict[str, dict[str, object]] = field(default_factory=dict)
    database_url: str | None = None  # None: SQLite in data_dir; else PostgreSQL (issue #15)
    postgres: Postgres | None = None  # the cluster of database_url, for a second database

    @property
    def backend(self) -> str:
        return "sqlite" if self.database_url is None else "postgresql"

    def own_database(self, data_dir: Path) -> dict[str, object]:
        """The [bot] settings of another mailbot with a database of its own on this
        backend: `data_dir` (SQLite's file lives in it) and, on PostgreSQL, a new database
        migrated to head."""
        if self.database_url is None:
            return {"data_dir": str(data_dir)}
        return {"data_dir": str(data_dir),
                "database_url": required(self.postgres).new_database()}

    @property
    def on_dovecot(self) -> bool:
        return isinstance(self.imap, Dovecot)

    @property
    def config_path(self) -> Path:
        return self.tmp / "mailbot.toml"

    def reviewer(self, role: str) -> str:
        """This world's own address for a reviewer role (mailboxes are not shared)."""
        return f"{role.replace('_', '')}-{self.applicant}"

    @property
    def secretary(self) -> str:
        return f"sekretaer-{self.applicant}"

    def write_config(self, **extra: dict[str, object]) -> Path:
        self.extra.setdefault("reviewers", {
            role: [self.reviewer(role)] for role in
            ("it_operations", "it_architect", "contract_manager", "security_coordinator")})
        # an empty agenda would reach the secretary in every test run after a deadline;
        # the tests written before issue #12 play the one-phase flow, and say so here (the
        # two-phase tests set `phases = 2`)
        self.extra.setdefault("council", {"secretary": [self.secretary],
                                          "strategic_board": [f"sit-{self.applicant}"],
                                          "empty_agenda": "skip", "phases": 1})
        if self.database_url is not None:
            self.extra.setdefault("bot", {}).setdefault("database_url", self.database_url)
        for section, values in extra.items():
            self.extra.setdefault(section, {}).update(values)
        config = settings_dict(self.imap.port, self.smtp.port, self.tmp / "data",
                               self.bot_address, self.imap.user(self.bot_address), **self.extra)
        self.config_path.write_text(to_toml(config), encoding="utf-8")
        return self.config_path

    def settings(self) -> Settings:
        if not self.config_path.exists():
            self.write_config()
        return load_settings(self.config_path, environ={})

    def bot(self, now: datetime | None = None) -> Bot:
        bot = build_bot(self.settings(), Clock(now))
        migrate(bot.engine)
        return bot

    def run_once(self, now: datetime | None = None) -> Bot:
        """`mailbot run --once`, in process, as if the clock showed `now`."""
        bot = self.bot(now)
        Service(bot).run_once()
        return bot

    def brief(self, **kwargs: object) -> bytes:
        """A generated brief from this world's applicant to this world's bot."""
        kwargs.setdefault("sender", f"Mette Holm <{self.applicant}>")
        kwargs.setdefault("to", self.bot_address)
        return brief(**kwargs)  # type: ignore[arg-type]

    def deliver(self, raw: bytes) -> None:
        self.imap.deliver(self.bot_address, raw)

    def folder(self, name: str) -> list[bytes]:
        return read_mailbox(self.imap.port, self.imap.user(self.bot_address), name)

    def received_by(self, address: str) -> list[EmailMessage]:
        """What the SMTP server accepted for `address` (and, on Dovecot, what landed there)."""
        accepted = [_email(d.raw) for d in self.smtp.to(address)]
        if self.on_dovecot:
            stored = [_email(raw) for raw in read_mailbox(self.imap.port,
                                                          self.imap.user(address))]
            assert len(stored) == len(accepted), "SMTP accepted and mailbox differ"
        return accepted

    def cli(self, *args: str, env: dict[str, str] | None = None, timeout: float = 120,
            write_config: bool = True) -> subprocess.CompletedProcess[str]:
        if write_config and not self.config_path.exists():
            self.write_config()
        return subprocess.run(
            [sys.executable, "-m", "mailbot.cli", "--config", str(self.config_path), *args],
            capture_output=True, text=True, timeout=timeout, env=_env(env), cwd=self.tmp,
        )

    def spawn(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        if not self.config_path.exists():
            self.write_config()
        return subprocess.Popen(
            [sys.executable, "-m", "mailbot.cli", "--config", str(self.config_path), *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(env),
            cwd=self.tmp,
        )


def _env(extra: dict[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILBOT_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra or {})
    return env


def _email(raw: bytes) -> EmailMessage:
    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


@pytest.fixture
def world(dovecot: Dovecot | None, tmp_path: Path, database_url: str | None,
          postgres: Postgres | None) -> Iterator[World]:
    n = next(_COUNTER)
    address = f"bot{n}-{os.getpid()}@kommune.test"
    imap: Dovecot | Pymap
    if dovecot is not None:
        imap = dovecot
    else:
        imap = Pymap(username=address.partition("@")[0])
        imap.start()
    sink = SmtpSink(deliver=imap.deliver if dovecot is not None else None)
    sink.start()
    try:
        yield World(imap=imap, smtp=sink, bot_address=address, tmp=tmp_path,
                    applicant=f"mette{n}-{os.getpid()}@kommune.test",
                    database_url=database_url, postgres=postgres)
    finally:
        sink.stop()
        if dovecot is None:
            imap.stop()


# -- certificates and an OAuth2 authority (tests/e2e/test_tls.py, test_oauth2.py and
# test_oauth2_tls.py) -----------------------------------------------------------------------
@dataclass
class Pki:
    ca_file: Path  # the CA the bot is given as ca_file (a "municipal" CA)
    certs: dict[str, trustme.LeafCert]
    files: dict[str, TlsFiles]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """Server certificates from trustme: "good" for localhost and 127.0.0.1, and the ones
    the bot must refuse."""
    folder = tmp_path_factory.mktemp("pki")
    ca, stranger = trustme.CA(), trustme.CA()  # the bot trusts `ca`, never `stranger`
    now = datetime.now(UTC)
    certs = {
        "good": ca.issue_cert("localhost", "127.0.0.1"),
        "wrong_host": ca.issue_cert("imap.elsewhere.test"),
        "expired": ca.issue_cert("localhost", "127.0.0.1", not_before=now - timedelta(days=90),
                                 not_after=now - timedelta(days=1)),
        "unknown_ca": stranger.issue_cert("localhost", "127.0.0.1"),
    }
    files = {}
    for name, cert in certs.items():
        chain, key = folder / f"{name}.crt", folder / f"{name}.key"
        chain.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
        cert.private_key_pem.write_to_path(str(key))
        files[name] = TlsFiles(chain, key)
    ca_file = folder / "kommune-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return Pki(ca_file, certs, files)


@dataclass
class Authority:
    book: TokenBook
    plain: Endpoint  # generic token endpoint and Dovecot's introspection
    tls: Endpoint  # msal's authority (HTTPS, trustme CA)
    ca_file: Path


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Authority]:
    """tests/oauth2_server.py's token and introspection endpoints, on HTTP and HTTPS."""
    book = TokenBook()
    ca_file = tmp_path_factory.mktemp("ca") / "test-ca.pem"
    plain, tls = Endpoint(book).start(), https_endpoint(book, ca_file).start()
    yield Authority(book, plain, tls, ca_file)
    plain.stop()
    tls.stop()


def wait_until(predicate: Callable[[], object], timeout: float = 30.0,
               interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")
