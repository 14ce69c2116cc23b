"""`check` and `run` refuse a broken config with a message that names the key and the fix."""

from __future__ import annotations

import pytest

from mailbot.db import head_revision, where
from mailbot.mailworld import free_port
from tests.conftest import World

pytestmark = pytest.mark.e2e


def test_check_passes_on_a_good_config(world: World) -> None:
    result = world.cli("check")
    assert result.returncode == 0, result.stderr
    for step in ("config", "rules", "database", "templates", "imap", "smtp"):
        assert f"ok    {step}" in result.stdout


def test_migrate_then_check_then_run_on_an_empty_database(
        world: World, empty_database_url: str) -> None:
    """The operator's first start on each backend (README "PostgreSQL and two hosts"): a
    database that exists but holds nothing, `mailbot migrate`, `mailbot check`, a brief."""
    world.write_config(bot={"database_url": empty_database_url})
    database = where(empty_database_url)
    migrated = world.cli("migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert migrated.stdout.startswith(
        f"{database}: migrated from revision none to {head_revision()}"), migrated.stdout
    checked = world.cli("check")
    assert checked.returncode == 0, checked.stderr
    assert f"ok    database: {database} reachable and migrated (up to date)" in checked.stdout
    world.deliver(world.brief(subject="Første sag"))
    ran = world.cli("run", "--once")
    assert ran.returncode == 0, ran.stderr
    assert len(world.received_by(world.applicant)) == 1
    assert "no cases yet" not in world.cli("cases").stdout


@pytest.mark.parametrize("command", [("check",), ("run", "--once")])
def test_missing_key(world: World, command: tuple[str, ...]) -> None:
    world.write_config()
    text = world.config_path.read_text().replace('username = "', 'user_name = "', 1)
    world.config_path.write_text(text)
    result = world.cli(*command)
    assert result.returncode == 2
    assert "[imap.username] field required" in result.stderr
    assert str(world.config_path) in result.stderr and "Fix:" in result.stderr


@pytest.mark.parametrize("command", [("check",), ("run", "--once")])
def test_wrong_folder(world: World, command: tuple[str, ...]) -> None:
    world.write_config(imap={"folder": "Indbakken"})
    result = world.cli(*command)
    assert result.returncode == 2
    assert "[imap.folder]" in result.stderr and "Indbakken" in result.stderr


@pytest.mark.parametrize("command", [("check",), ("run", "--once")])
def test_wrong_password(world: World, command: tuple[str, ...]) -> None:
    if not world.on_dovecot:
        pytest.skip("pymap's demo backend accepts only its one user; Dovecot checks passwords")
    world.write_config(imap={"password": "forkert"})
    result = world.cli(*command)
    assert result.returncode == 2
    assert "[imap.password]" in result.stderr
    assert "forkert" not in result.stderr + result.stdout  # secrets never printed


@pytest.mark.parametrize("command", [("check",), ("run", "--once")])
def test_unreachable_imap_host(world: World, command: tuple[str, ...]) -> None:
    world.write_config(imap={"port": free_port(), "timeout_seconds": 3})
    result = world.cli(*command)
    assert result.returncode == 2
    assert "[imap.host]" in result.stderr and "imap.port" in result.stderr


def test_unreachable_smtp_host_fails_check(world: World) -> None:
    world.write_config(smtp={"port": free_port()})
    result = world.cli("check")
    assert result.returncode == 2
    assert "[smtp.host]" in result.stderr


def test_no_config_file_says_how_to_make_one(world: World) -> None:
    world.write_config()
    world.config_path.unlink()
    result = world.cli("check", write_config=False)
    assert result.returncode == 2
    assert "mailbot init" in result.stderr


def test_init_writes_a_config_that_loads(world: World) -> None:
    result = world.cli("init", write_config=False)
    assert result.returncode == 0, result.stderr
    text = world.config_path.read_text()
    for section in ("[bot]", "[imap]", "[smtp]", "[council]", "[reviewers]"):
        assert section in text
    assert world.cli("init", write_config=False).returncode == 2  # never overwrites silently


@pytest.mark.parametrize("command", [("run", "--once"), ("check",)])
def test_a_broken_local_template_stops_run_at_start(world: World,
                                                     command: tuple[str, ...]) -> None:
    """Templates are compiled once per process (issue #16): a syntax error in one of
    bot.templates_dir stops `run` at start with the file and line, as `check` does, instead
    of every brief that needs it failing three times into quarantine (the trial's find)."""
    local = world.tmp / "templates" / "da"
    local.mkdir(parents=True)
    (local / "applicant_receipt.txt.j2").write_text("Hej {% if %}\n", "utf-8")
    world.write_config(bot={"templates_dir": str(world.tmp / "templates")})
    world.deliver(world.brief())
    result = world.cli(*command)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "[bot.templates_dir] da/applicant_receipt.txt.j2 line 1" in result.stderr
    assert "Traceback" not in result.stderr
    assert world.received_by(world.applicant) == []
