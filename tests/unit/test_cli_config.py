"""Where the CLI looks for its files, and how the environment overrides the config file."""

from __future__ import annotations

from pathlib import Path

from tests.unit.conftest import (
    MailbotRunner,
    add_case,
    migrated_database,
    run_mailbot,
    write_config,
)


# -- relative paths -------------------------------------------------------------------------
def test_cases_from_another_folder_uses_the_database_beside_the_config(tmp_path: Path) -> None:
    config = write_config(tmp_path / "etc")  # data_dir = "./data"
    add_case(migrated_database(tmp_path / "etc" / "data"), "ITP-2026-0042")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    result = run_mailbot("--config", "../etc/mailbot.toml", "cases", cwd=elsewhere)

    assert result.returncode == 0, result.stderr
    assert "ITP-2026-0042" in result.stdout
    assert list(elsewhere.iterdir()) == []  # no second database, no new secret here
    assert config.exists()


def test_relative_rules_dir_is_looked_for_beside_the_config(
        tmp_path: Path, mailbot: MailbotRunner) -> None:
    config = write_config(tmp_path / "etc",
                          ('# rules_dir = "/etc/mailbot/rules"', 'rules_dir = "my-rules"'))
    result = mailbot("--config", str(config), "calendar", "--year", "2027")
    assert result.code == 2
    assert f"[bot.rules_dir] {tmp_path / 'etc' / 'my-rules'} does not exist" in result.err


def test_data_dir_that_is_a_file_is_named(tmp_path: Path, mailbot: MailbotRunner) -> None:
    config = write_config(tmp_path)
    (tmp_path / "data").write_text("not a folder")
    result = mailbot("--config", str(config), "cases")
    assert result.code == 2
    assert f"{config}: [bot.data_dir] {tmp_path / 'data'} is a file, not a folder" in result.err
    assert "Fix:" in result.err


# -- the environment ------------------------------------------------------------------------
def test_environment_sets_text_fields_of_sections_that_hold_lists(
        tmp_path: Path, mailbot: MailbotRunner) -> None:
    # council holds lists (secretary, ...) and text (meeting_time, holiday_policy): only the
    # lists are split on commas
    config = write_config(tmp_path)
    result = mailbot("--config", str(config), "calendar", "--year", "2026", env={
        "MAILBOT_COUNCIL__MEETING_TIME": "10:00",
        "MAILBOT_COUNCIL__HOLIDAY_POLICY": "skip",
        "MAILBOT_COUNCIL__SECRETARY": "a@kommune.dk, b@kommune.dk",
    })
    assert result.code == 0, result.err
    assert "2026-03-30  Mon 10:00" in result.out
    assert "2026-04-07" not in result.out  # Easter Monday skipped, not moved to Tuesday


def test_environment_text_with_commas_or_true_stays_text(
        tmp_path: Path, mailbot: MailbotRunner) -> None:
    config = write_config(tmp_path)
    migrated_database(tmp_path / "data")
    result = mailbot("--config", str(config), "agenda",
                     env={"MAILBOT_BOT__NAME": "Rådet, Albertslund Kommune"})
    assert result.code == 0, result.err
    assert "Rådet, Albertslund Kommune" in result.out
    result = mailbot("--config", str(config), "agenda", env={"MAILBOT_BOT__NAME": "true"})
    assert result.code == 0, result.err
    assert result.out.rstrip().endswith("true")


def test_invalid_environment_value_names_the_variable(
        tmp_path: Path, mailbot: MailbotRunner) -> None:
    config = write_config(tmp_path)
    for name, value in [("MAILBOT_IMAP__PORT", "imap"), ("MAILBOT_IMAP__IDLE", "maybe"),
                        ("MAILBOT_COUNCIL__SECRETARY", "sekretariatet"),
                        ("MAILBOT_IMAP__PROT", "993")]:
        result = mailbot("--config", str(config), "calendar", env={name: value})
        assert result.code == 2
        assert f"environment: [{name}]" in result.err, result.err
        assert str(config) not in result.err and "Fix:" in result.err


def test_log_level_is_one_of_four_names_in_any_case(
        tmp_path: Path, mailbot: MailbotRunner) -> None:
    config = write_config(tmp_path, ('# log_level = "INFO"', 'log_level = "verbose"'))
    result = mailbot("--config", str(config), "calendar")
    assert result.code == 2
    assert f"{config}: [bot.log_level]" in result.err and "'verbose'" in result.err
    assert "'DEBUG', 'INFO', 'WARNING' or 'ERROR'" in result.err
    write_config(tmp_path, ('# log_level = "INFO"', 'log_level = "debug"'))
    assert mailbot("--config", str(config), "calendar").code == 0
