"""--config and --now work before and after the command name, as the README writes them."""

from __future__ import annotations

import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.unit.conftest import ROOT, MailbotRunner, write_config


def test_readme_init_command_works_as_written(tmp_path: Path, mailbot: MailbotRunner) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    written = re.search(r"mailbot (init --config /etc/mailbot/mailbot\.toml)", readme)
    assert written, "the README shows `mailbot init --config /etc/mailbot/mailbot.toml`"
    # the same words, into a folder of this test instead of /etc (which does not exist yet)
    args = written[1].replace("/etc", str(tmp_path / "etc")).split()
    result = mailbot(*args)
    assert result.code == 0, result.err
    config = tmp_path / "etc" / "mailbot" / "mailbot.toml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert mailbot("calendar", "--config", str(config), "--year", "2027").code == 0


def test_config_after_the_command_is_the_same_as_before(tmp_path: Path,
                                                        mailbot: MailbotRunner) -> None:
    config = write_config(tmp_path / "etc")
    before = mailbot("--config", str(config), "calendar", "--year", "2027")
    after = mailbot("calendar", "--year", "2027", "--config", str(config))
    assert (before.code, after.code) == (0, 0), before.err + after.err
    assert before.out == after.out and "2027-03-29" in after.out


def test_the_option_after_the_command_wins(tmp_path: Path, mailbot: MailbotRunner) -> None:
    good = write_config(tmp_path / "good", ('meeting_time = "09:00"', 'meeting_time = "13:00"'))
    result = mailbot("--config", str(tmp_path / "absent.toml"), "calendar", "--year", "2027",
                     "--config", str(good))
    assert result.code == 0, result.err
    assert "Mon 13:00" in result.out


def test_now_after_the_command(tmp_path: Path, mailbot: MailbotRunner) -> None:
    config = write_config(tmp_path)
    result = mailbot("calendar", "--config", str(config), "--now", "2028-01-04T10:00")
    assert result.code == 0, result.err
    assert "2028-01-10" in result.out  # the default year is the year of --now
    bad = mailbot("calendar", "--config", str(config), "--now", "soon")
    assert bad.code == 2 and bad.err.startswith("command line: [--now] 'soon' is not an ISO")


def test_every_bracket_of_a_help_text_reaches_the_screen(mailbot: MailbotRunner) -> None:
    """Every `[...]` of every command's help (and its options') is printed by `--help` as
    written (issue #14 trial: add-user showed `[]` when help went through Rich markup, where
    `[web.users]` is a style tag; help is plain text since issue #16, and must stay readable
    if markup comes back)."""
    import typer

    from mailbot.cli import app

    def commands(command: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            yield from commands(sub, (*path, name))

    checked = 0
    for path, command in commands(typer.main.get_command(app), ()):
        texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
        wanted = re.findall(r"\[+[^\]]*\]+", " ".join(" ".join(texts).replace("\\[", "[").split()))
        if not wanted:
            continue
        shown = " ".join(mailbot(*path, "--help").out.replace("│", " ").split())
        for token in wanted:
            assert token in shown, f"`mailbot {' '.join(path)} --help` lost {token}"
            checked += 1
    assert checked >= 3  # [retention], [anden person], [[web.users]] at least
