"""What an operator sees when the database cannot be used (issue #15 trial: F1, F2, F3, F5,
F10, F14): the one line `migrate` and `status` give, from every command, never a driver's
traceback text. Real PostgreSQL (the `postgres` fixture) and real `mailbot` processes."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mailbot.config import load_settings
from mailbot.db import make_engine
from mailbot.leadership import lead
from tests.conftest import required
from tests.postgres import Postgres
from tests.unit.conftest import MailbotRunner, clean_env, run_mailbot, write_config

ROOT = Path(__file__).resolve().parents[2]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _assert_one_line(stderr: str, problem: str) -> None:
    line = stderr.strip()
    assert "\n" not in line, line
    assert "[bot.database_url]" in line and problem in line and "Fix:" in line, line
    assert "sqlalche.me" not in line and "migration failed" not in line, line
    assert "OperationalError" not in line, line


@pytest.mark.parametrize("command", [("check",), ("run", "--once"), ("run",)])
def test_check_and_run_name_the_key_of_an_unreachable_database(
        tmp_path: Path, postgres: Postgres | None, command: tuple[str, ...]) -> None:
    cluster = required(postgres)
    config = write_config(tmp_path)
    for url in (cluster.url("no_such_database"),
                f"postgresql+psycopg://mailbot:pw@127.0.0.1:{_closed_port()}/mailbot"):
        ran = run_mailbot(*command, "--config", str(config), cwd=tmp_path,
                          env={"MAILBOT_BOT__DATABASE_URL": url})
        assert ran.returncode == 2, ran.stderr
        _assert_one_line(ran.stderr, "cannot read the database (")
        assert ":pw@" not in ran.stderr  # the password stays hidden


@pytest.mark.parametrize("command", [("check",), ("run", "--once")])
def test_check_and_run_refuse_a_database_a_newer_mailbot_migrated(
        tmp_path: Path, postgres: Postgres | None, command: tuple[str, ...]) -> None:
    cluster = required(postgres)
    url = cluster.new_database()
    cluster.execute("UPDATE alembic_version SET version_num = '0099'", url.rpartition("/")[2])
    ran = run_mailbot(*command, "--config", str(write_config(tmp_path)), cwd=tmp_path,
                      env={"MAILBOT_BOT__DATABASE_URL": url})
    assert ran.returncode == 2, ran.stderr
    _assert_one_line(ran.stderr, "a newer mailbot migrated it")


def test_status_json_on_an_unreachable_database_is_json_with_the_error(
        tmp_path: Path) -> None:
    url = f"postgresql+psycopg://mailbot:pw@127.0.0.1:{_closed_port()}/mailbot"
    ran = run_mailbot("status", "--json", "--config", str(write_config(tmp_path)),
                      cwd=tmp_path, env={"MAILBOT_BOT__DATABASE_URL": url})
    assert ran.returncode == 2
    data = json.loads(ran.stdout)
    assert "cannot read the database" in data["error"] and ":pw@" not in data["error"]
    assert data["backend"] == "postgresql" and data["migration"]["state"] == "unreachable"


def test_a_password_with_an_at_sign_is_hidden_and_the_fix_says_to_encode_it(
        tmp_path: Path, mailbot: MailbotRunner) -> None:
    url = "postgresql+psycopg://mailbot:S3cret/pw@tail9@db.invalid:5432/mailbot"
    ran = mailbot("migrate", "--config", str(write_config(tmp_path)),
                  env={"MAILBOT_BOT__DATABASE_URL": url})
    assert ran.code == 2
    assert "percent-encode" in ran.err and "@ %40" in ran.err, ran.err
    assert "S3cret" not in ran.err and "tail9" not in ran.err, ran.err


def test_a_psycopg2_url_s_fix_names_the_psycopg_scheme(
        tmp_path: Path, mailbot: MailbotRunner) -> None:
    ran = mailbot("check", "--config", str(write_config(tmp_path)),
                  env={"MAILBOT_BOT__DATABASE_URL": "postgresql+psycopg2://mailbot@db/mailbot"})
    assert ran.code == 2
    assert "write postgresql+psycopg://" in ran.err, ran.err


def test_two_migrations_at_once_one_migrates_the_other_finds_nothing_to_do(
        tmp_path: Path, postgres: Postgres | None) -> None:
    url = required(postgres).new_database(migrated=False)
    config = write_config(tmp_path)
    both = [subprocess.Popen([sys.executable, "-m", "mailbot.cli", "migrate", "--config",
                              str(config)], cwd=tmp_path, text=True, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE,
                             env=clean_env({"MAILBOT_BOT__DATABASE_URL": url}))
            for _ in range(2)]
    outs = [process.communicate(timeout=120) for process in both]
    assert [process.returncode for process in both] == [0, 0], outs
    said = sorted("migrated from revision none" if "migrated from revision none" in out
                  else "nothing to do" if "nothing to do" in out else out for out, _ in outs)
    assert said == ["migrated from revision none", "nothing to do"], outs


def test_a_refused_run_once_prints_only_the_refusal(
        tmp_path: Path, database_url: str | None) -> None:
    env = {"MAILBOT_BOT__DATABASE_URL": database_url} if database_url else {}
    config = write_config(tmp_path)
    assert run_mailbot("migrate", "--config", str(config), cwd=tmp_path, env=env).returncode == 0
    settings = load_settings(config, environ=env)
    engine = make_engine(settings.database_url)
    try:
        with lead(settings, engine):  # a daemon leads (this test process)
            ran = run_mailbot("run", "--once", "--config", str(config), cwd=tmp_path, env=env)
    finally:
        engine.dispose()
    assert ran.returncode == 2
    assert ran.stderr.strip().count("\n") == 0 and "another mailbot is running" in ran.stderr, \
        ran.stderr
    assert "alembic" not in ran.stderr + ran.stdout
