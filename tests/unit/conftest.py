"""Running the real CLI from unit tests: in process through `mailbot.cli.main`, or as a
subprocess where a fresh interpreter, the current directory or the output encoding matters."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailbot.cli import main
from mailbot.config import STARTER_CONFIG

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Ran:
    code: int
    out: str
    err: str


MailbotRunner = Callable[..., Ran]


def write_config(folder: Path, *replacements: tuple[str, str], name: str = "mailbot.toml"
                 ) -> Path:
    """The starter config (data_dir = "./data") with `(old, new)` text replacements."""
    text = STARTER_CONFIG
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILBOT_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra or {})
    return env


def run_mailbot(*args: str, cwd: Path, env: dict[str, str] | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`python -m mailbot.cli ARGS` in a fresh process, without the caller's MAILBOT_*."""
    return subprocess.run([sys.executable, "-m", "mailbot.cli", *args], cwd=cwd,
                          env=clean_env(env), capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def mailbot(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
            ) -> Iterator[MailbotRunner]:
    """`mailbot(*args, env={...})` runs `main(args)` in this process and returns what it
    printed and its exit code."""
    for name in list(os.environ):
        if name.startswith("MAILBOT_"):
            monkeypatch.delenv(name)

    def run(*args: str, env: dict[str, str] | None = None) -> Ran:
        with monkeypatch.context() as patch:
            for name, value in (env or {}).items():
                patch.setenv(name, value)
            capsys.readouterr()
            code = main(list(args))
            out, err = capsys.readouterr()
        return Ran(code, out, err)

    # configure_logging points the root logger at this test's captured stderr: put it back
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield run
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """The starter config in the test's folder (data_dir = "./data")."""
    return write_config(tmp_path)


@pytest.fixture
def url(tmp_path: Path, config: Path) -> str:
    """A migrated SQLite database in the data_dir of `config`."""
    return migrated_database(tmp_path / "data")


def migrated_database(data_dir: Path) -> str:
    """Create data_dir/mailbot.sqlite3 at the newest revision; returns its URL."""
    from mailbot.db import make_engine, migrate

    url = f"sqlite:///{data_dir / 'mailbot.sqlite3'}"
    migrate(make_engine(url))
    return url


def add_case(url: str, ref: str = "ITP-2026-0001", **fields: object) -> None:
    """One case row in the real database at `url` (created_at 2026-03-02 10:59 UTC)."""
    from datetime import UTC, datetime

    from sqlmodel import Session

    from mailbot.db import make_engine
    from mailbot.models import Case

    at = datetime(2026, 3, 2, 10, 59, tzinfo=UTC)
    values: dict[str, object] = {"ref": ref, "applicant_address": "mette@kommune.dk",
                                 "applicant_name": "Mette Holm", "title": "Lokalebooking",
                                 "created_at": at, "updated_at": at, **fields}
    with Session(make_engine(url)) as session:
        session.add(Case.model_validate(values))
        session.commit()


def stored_text(url_or_engine: object) -> str:
    """Every value of every row of every table in the database, as one lower-case text
    (tables found by SQLAlchemy reflection, not listed by hand): text and JSON as stored,
    bytes as Latin-1 and, when they parse as a mail, each part decoded (base64,
    quoted-printable). For "the address is nowhere in the database" checks."""
    from email import message_from_bytes, policy

    from sqlalchemy import MetaData, create_engine
    from sqlalchemy import select as sa_select
    from sqlalchemy.engine import Engine

    engine = url_or_engine if isinstance(url_or_engine, Engine) else \
        create_engine(str(url_or_engine))
    meta = MetaData()
    meta.reflect(engine)
    out: list[str] = []
    with engine.connect() as connection:
        for table in meta.sorted_tables:
            for row in connection.execute(sa_select(table)):
                for value in row:
                    if isinstance(value, bytes):
                        out.append(value.decode("latin-1"))
                        for part in message_from_bytes(value, policy=policy.default).walk():
                            payload = part.get_payload(decode=True)
                            if isinstance(payload, bytes):
                                out.append(payload.decode("utf-8", "replace"))
                    elif value is not None:
                        out.append(str(value))
    return "\n".join(out).lower()
