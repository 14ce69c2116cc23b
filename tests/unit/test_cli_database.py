"""Read-only commands never migrate; `mailbot migrate` does, and says what it did."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from mailbot.db import head_revision, make_engine, migrate, schema, sqlite_path, where
from tests.unit.conftest import MailbotRunner, run_mailbot, write_config

READ_ONLY = [("cases",), ("case", "ITP-2026-0001"), ("messages",), ("outbox",), ("agenda",)]


@pytest.mark.parametrize("command", READ_ONLY, ids=lambda c: c[0])
def test_read_only_command_on_a_missing_database_creates_nothing(
        tmp_path: Path, mailbot: MailbotRunner, command: tuple[str, ...]) -> None:
    config = write_config(tmp_path)
    result = mailbot("--config", str(config), *command)
    assert result.code == 2
    database = tmp_path / "data" / "mailbot.sqlite3"
    assert result.err == (f"{database}: [bot.database_url] there is no database yet, this "
                          f"mailbot needs revision {head_revision()} (is bot.data_dir right?). "
                          "Fix: run `mailbot migrate` to create it\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mailbot.toml"]


def config_on(folder: Path, url: str) -> Path:
    """The starter config in `folder` on the database `url`: the default SQLite file of
    data_dir ./data as it is, else bot.database_url set to a PostgreSQL database."""
    if sqlite_path(url) == folder / "data" / "mailbot.sqlite3":
        return write_config(folder)
    return write_config(folder, (
        '# database_url = "postgresql+psycopg://mailbot@localhost/mailbot"',
        f'database_url = "{url}"'))


def test_database_behind_is_left_alone_until_mailbot_migrate(
        tmp_path: Path, mailbot: MailbotRunner, empty_database_url: str) -> None:
    config = config_on(tmp_path, empty_database_url)
    database = where(empty_database_url)
    engine = make_engine(empty_database_url)
    migrate(engine, "0003", quiet=True)
    head = head_revision()
    expected = (f"{database}: [bot.database_url] the database is at revision 0003, this "
                f"mailbot needs {head}. Fix: run `mailbot migrate`\n")

    # a fresh process, where alembic logs as it loads: not one line of that may show
    result = run_mailbot("--config", str(config), "cases", cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", expected)
    for command in READ_ONLY:
        result = mailbot("--config", str(config), *command)
        assert (result.code, result.out, result.err) == (2, "", expected), command
    assert schema(engine).current == "0003"

    result = run_mailbot("--config", str(config), "migrate", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert f"{database}: migrated from revision 0003 to {head}" in result.stdout
    assert "applied 0004 council agenda and decisions" in result.stdout
    assert schema(engine).current == head

    result = run_mailbot("--config", str(config), "cases", cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "no cases yet\n", "")
    for command in [("messages",), ("outbox",), ("agenda",)]:
        ran = mailbot("--config", str(config), *command)
        assert (ran.code, ran.err) == (0, ""), command
    again = run_mailbot("--config", str(config), "migrate", cwd=tmp_path)
    assert again.stdout == f"{database}: already at revision {head}, nothing to do\n"
    engine.dispose()


def test_migrate_creates_the_database_and_reads_no_config_from_the_cwd(
        tmp_path: Path, empty_database_url: str) -> None:
    # no config file: the environment configures, and data_dir is relative to the cwd; the
    # PostgreSQL database comes from MAILBOT_BOT__DATABASE_URL as README "PostgreSQL and two
    # hosts" tells an operator to give it
    env = {"MAILBOT_BOT__ADDRESS": "it.projekter@kommune.dk",
           "MAILBOT_IMAP__HOST": "imap.kommune.dk", "MAILBOT_IMAP__USERNAME": "it",
           "MAILBOT_IMAP__PASSWORD": "x", "MAILBOT_SMTP__HOST": "smtp.kommune.dk"}
    if sqlite_path(empty_database_url) is None:
        env["MAILBOT_BOT__DATABASE_URL"] = empty_database_url
    result = run_mailbot("migrate", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    database = where(empty_database_url)
    assert result.stdout.startswith(f"{database}: migrated from revision none to ")
    assert run_mailbot("cases", cwd=tmp_path, env=env).stdout == "no cases yet\n"


def test_a_database_newer_than_this_mailbot_is_refused(
        tmp_path: Path, mailbot: MailbotRunner, empty_database_url: str) -> None:
    config = config_on(tmp_path, empty_database_url)
    database = where(empty_database_url)
    engine = make_engine(empty_database_url)
    migrate(engine, quiet=True)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    engine.dispose()
    for command in ("cases", "migrate"):
        result = mailbot("--config", str(config), command)
        assert result.code == 2
        assert f"{database}: [bot.database_url] the database is at revision 9999" in result.err
        assert "newer mailbot" in result.err


@pytest.mark.skipif(importlib.util.find_spec("psycopg") is not None,
                    reason="psycopg is installed here")
@pytest.mark.parametrize("command", ["cases", "migrate", "check"])
def test_postgres_without_its_driver_names_the_extra(
        tmp_path: Path, mailbot: MailbotRunner, command: str) -> None:
    config = write_config(tmp_path, (
        '# database_url = "postgresql+psycopg://mailbot@localhost/mailbot"',
        'database_url = "postgresql+psycopg://x@y/z"'))
    result = mailbot("--config", str(config), command)
    assert result.code == 2
    assert result.err == (f"{config}: [bot.database_url] the postgresql driver 'psycopg' is not "
                          "installed. Fix: install the extra: pip install 'mailbot[postgres]'\n")


@pytest.mark.parametrize("url", ["notaurl", "nosuchdb://mailbot:topsecret@db/mailbot"])
def test_malformed_database_url_is_named_without_its_password(
        tmp_path: Path, mailbot: MailbotRunner, url: str) -> None:
    config = write_config(tmp_path, (
        '# database_url = "postgresql+psycopg://mailbot@localhost/mailbot"',
        f'database_url = "{url}"'))
    for command in ("cases", "migrate", "check"):
        result = mailbot("--config", str(config), command)
        assert result.code == 2
        assert result.err.startswith(f"{config}: [bot.database_url] '")
        assert "is not a database URL" in result.err and "Fix:" in result.err
        assert "topsecret" not in result.err and result.err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mailbot.toml"]


@pytest.mark.parametrize("command", ["cases", "migrate"])
def test_a_file_that_is_not_a_database(tmp_path: Path, mailbot: MailbotRunner,
                                       command: str) -> None:
    config = write_config(tmp_path)
    database = tmp_path / "data" / "mailbot.sqlite3"
    database.parent.mkdir()
    database.write_text("these are notes, not a database")
    result = mailbot("--config", str(config), command)
    assert result.code == 2
    assert result.err == (f"{database}: [bot.database_url] cannot read the database (file is "
                          "not a database). Fix: check that the file is mailbot's SQLite "
                          "database and that this user may read it\n")


def test_processes_starting_together_on_a_new_database_migrate_it_once(
        tmp_path: Path, empty_database_url: str) -> None:
    """Two hosts' daemons (or a daemon and `mailbot migrate`) started at the same moment on
    a new database: each upgrade is one transaction under SQLite's write lock or
    PostgreSQL's advisory lock, so one creates the schema and the others find it current,
    never "table case already exists"."""
    import subprocess
    import sys

    from tests.unit.conftest import clean_env

    config = config_on(tmp_path, empty_database_url)
    command = [sys.executable, "-m", "mailbot.cli", "--config", str(config), "migrate"]
    started = [subprocess.Popen(command, cwd=tmp_path, env=clean_env(None), text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
               for _ in range(4)]
    outcomes = [(p.wait(timeout=120), *p.communicate()) for p in started]
    assert [code for code, _, _ in outcomes] == [0, 0, 0, 0], outcomes
    assert not any(err for _, _, err in outcomes), outcomes
    engine = make_engine(empty_database_url)
    assert schema(engine).current == head_revision()
    engine.dispose()


def test_a_tls_url_with_a_password_reaches_libpq_as_written() -> None:
    """README "PostgreSQL and two hosts": the URL an operator writes in
    MAILBOT_BOT__DATABASE_URL, a percent-encoded password and libpq's TLS parameters
    (https://www.postgresql.org/docs/15/libpq-connect.html#LIBPQ-PARAMKEYWORDS) pass through
    SQLAlchemy to psycopg unchanged; logs and errors show the URL without the password."""
    url = ("postgresql+psycopg://mailbot:S3cret-pw%2F42@db.kommune.dk:5432/mailbot"
           "?sslmode=verify-full&sslrootcert=/etc/mailbot/db-ca.pem")
    engine = make_engine(url)
    _, params = engine.dialect.create_connect_args(engine.url)
    params.pop("context")  # SQLAlchemy's own type adapters
    assert params == {"host": "db.kommune.dk", "port": 5432, "dbname": "mailbot",
                      "user": "mailbot", "password": "S3cret-pw/42",
                      "sslmode": "verify-full", "sslrootcert": "/etc/mailbot/db-ca.pem"}
    assert where(url) == ("postgresql+psycopg://mailbot:***@db.kommune.dk:5432/mailbot"
                          "?sslmode=verify-full&sslrootcert=/etc/mailbot/db-ca.pem")
