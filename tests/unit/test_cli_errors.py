"""Every error the CLI reports is one line `source: [key] problem. Fix: ...` on stderr with
exit code 2, never a traceback."""

from __future__ import annotations

import random
import stat
from pathlib import Path

import pytest

from tests.unit.conftest import MailbotRunner, Ran, write_config


def one_error_line(result: Ran) -> str:
    """The single line on stderr; asserts exit code 2 and that there is nothing else."""
    assert result.code == 2, result.out + result.err
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    assert "Traceback" not in result.err and ". Fix: " in lines[0]
    return lines[0]


# -- templates under `check` ----------------------------------------------------------------
@pytest.mark.parametrize(("template", "problem"), [
    ("Kære {{ applicant_name }\n", "line 1: unexpected '}'"),
    ("Kære ansøger\n\n{{ no_such_name }}\n", "line 3: 'no_such_name' is undefined"),
])
def test_broken_template_is_named_by_check(tmp_path: Path, mailbot: MailbotRunner,
                                           template: str, problem: str) -> None:
    templates = tmp_path / "templates" / "da"
    templates.mkdir(parents=True)
    (templates / "applicant_receipt.txt.j2").write_text(template, encoding="utf-8")
    config = write_config(tmp_path, ('# templates_dir = "/etc/mailbot/templates"',
                                     'templates_dir = "templates"'))
    result = mailbot("--config", str(config), "check")
    line = one_error_line(result)
    assert line == (f"{config}: [bot.templates_dir] da/applicant_receipt.txt.j2 {problem}. "
                    "Fix: correct the template, or delete it to use the shipped one")
    assert "ok    database" in result.out and "ok    templates" not in result.out


def test_unknown_filter_in_any_local_template_is_named(tmp_path: Path,
                                                       mailbot: MailbotRunner) -> None:
    # not a template the sample receipt uses: check still compiles every local one
    (tmp_path / "templates" / "en").mkdir(parents=True)
    (tmp_path / "templates" / "en" / "applicant_status.html.j2").write_text("{{ x | shout }}")
    config = write_config(tmp_path, ('# templates_dir = "/etc/mailbot/templates"',
                                     'templates_dir = "templates"'))
    line = one_error_line(mailbot("--config", str(config), "check"))
    assert "[bot.templates_dir] en/applicant_status.html.j2 line 1: no filter named " in line


# -- init -----------------------------------------------------------------------------------
def test_init_creates_the_folder_and_a_private_file(tmp_path: Path,
                                                    mailbot: MailbotRunner) -> None:
    config = tmp_path / "etc" / "mailbot" / "mailbot.toml"
    result = mailbot("--config", str(config), "init")
    assert result.code == 0, result.err
    assert stat.S_IMODE(config.stat().st_mode) == 0o600  # it will hold passwords
    assert "[imap]" in config.read_text(encoding="utf-8")
    line = one_error_line(mailbot("--config", str(config), "init"))
    assert line.startswith(f"{config}: [--config] the file exists already. Fix: pass --force")
    config.chmod(0o644)
    assert mailbot("--config", str(config), "init", "--force").code == 0
    assert stat.S_IMODE(config.stat().st_mode) == 0o600


# -- the command line -----------------------------------------------------------------------
@pytest.mark.parametrize("year", ["0", "1", "9999", "-5"])
def test_calendar_year_out_of_range(tmp_path: Path, mailbot: MailbotRunner, year: str) -> None:
    config = write_config(tmp_path)
    line = one_error_line(mailbot("--config", str(config), "calendar", "--year", year))
    assert line == (f"command line: [--year] {year} is outside 2000..2100. "
                    "Fix: give a year such as 2027")


def test_calendar_years_at_the_edges_work(tmp_path: Path, mailbot: MailbotRunner) -> None:
    config = write_config(tmp_path)
    for year in ("2000", "2100"):
        result = mailbot("--config", str(config), "calendar", "--year", year)
        assert result.code == 0, result.err
        assert f"{year}-12-" in result.out


@pytest.mark.parametrize(("value", "problem"), [
    ("9999-12-31T23:59", "'9999-12-31T23:59' is outside the years 2000..2100"),
    ("1-1-1", "'1-1-1' is not an ISO date-time"),
    ("garbage", "'garbage' is not an ISO date-time"),
])
def test_now_that_is_garbage_or_out_of_range(tmp_path: Path, mailbot: MailbotRunner,
                                             value: str, problem: str) -> None:
    config = write_config(tmp_path)
    line = one_error_line(mailbot("--config", str(config), "--now", value, "calendar"))
    assert line.startswith(f"command line: [--now] {problem}. Fix: ")
    line = one_error_line(mailbot("--config", str(config), "calendar",
                                  env={"MAILBOT_NOW": value}))
    assert line.startswith(f"environment: [MAILBOT_NOW] {problem}. Fix: ")


def test_messages_state_lists_the_states(tmp_path: Path, mailbot: MailbotRunner) -> None:
    config = write_config(tmp_path)
    line = one_error_line(mailbot("--config", str(config), "messages", "--state", "bogus"))
    assert line == ("command line: [--state] 'bogus' is not a state. Fix: use one of received, "
                    "processed, ignored, duplicate, quarantined, released")


@pytest.mark.parametrize(("args", "start"), [
    (["cases", "--bogus"], "command line: [--bogus] no such option: --bogus. Fix: see "),
    (["calendar", "--year", "soon"], "command line: [--year] input should be a valid integer"),
    (["case"], "command line: [REF] missing argument"),
    (["cases-all"], "command line: [COMMAND] no such command 'cases-all' (did you mean "),
])
def test_usage_errors_are_one_line(tmp_path: Path, mailbot: MailbotRunner, args: list[str],
                                   start: str) -> None:
    assert one_error_line(mailbot(*args)).startswith(start)


# -- inspect --------------------------------------------------------------------------------
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x02" + bytes(40)


@pytest.mark.parametrize(("content", "problem"), [
    (b"", "the file is empty"),
    (b"\n \n", "the file is empty"),
    (PNG, "is a PNG image, not a mail"),
    (random.Random(7).randbytes(4096), "is binary data, not a mail"),
], ids=["empty", "blank", "png", "random"])
@pytest.mark.parametrize("json_flag", [[], ["--json"]], ids=["text", "json"])
def test_inspect_refuses_what_is_not_a_mail(tmp_path: Path, mailbot: MailbotRunner,
                                            content: bytes, problem: str,
                                            json_flag: list[str]) -> None:
    path = tmp_path / "mail.eml"
    path.write_bytes(content)
    result = mailbot("--config", str(tmp_path / "absent.toml"), "inspect", *json_flag, str(path))
    assert one_error_line(result).startswith(f"{path}: [FILE] {problem}. Fix: give a mail")
    assert result.out == ""


def test_inspect_of_a_missing_file(tmp_path: Path, mailbot: MailbotRunner) -> None:
    path = tmp_path / "nowhere.eml"
    line = one_error_line(mailbot("inspect", str(path)))
    assert line.startswith(f"{path}: [FILE] cannot be read (No such file or directory). Fix:")


def test_inspect_still_reads_a_latin1_mail(tmp_path: Path, mailbot: MailbotRunner) -> None:
    # 8-bit mail that is not UTF-8 is text, not binary
    path = tmp_path / "latin1.eml"
    path.write_bytes("From: Søren <s@kommune.dk>\nTo: it@kommune.dk\nSubject: Ærø\n"
                     "Content-Type: text/plain; charset=iso-8859-1\n"
                     "Content-Transfer-Encoding: 8bit\n\nHvem: Søren på Ærø\n"
                     .encode("latin-1"))
    result = mailbot("--config", str(tmp_path / "absent.toml"), "inspect", str(path))
    assert result.code == 0, result.err
    assert "kind:      brief" in result.out
