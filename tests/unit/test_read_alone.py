"""R9: after three deaths a mail is read alone in a forked process (`read_alone`), whose
death the caller survives; the verdict is the child's exit: finished, or killed by a signal.
Real forks, real parsing; the mail that kills is the crash point's (mailbot/faults.py)."""

from __future__ import annotations

import signal
from datetime import date

import pytest

from mailbot.intake.inspection import read_alone, settings_without_config
from mailbot.rules import Rules
from tests.mails import brief

BOT = "it.projekter@kommune.test"
TODAY = date(2026, 3, 2)


def test_a_mail_read_alone_without_dying_gives_no_signal(rules: Rules) -> None:
    assert read_alone(brief(), rules, settings_without_config(BOT), TODAY) is None


def test_a_mail_that_cannot_be_parsed_is_no_death(rules: Rules) -> None:
    """An error in the reading is the caller's to meet and count, not a death."""
    assert read_alone(b"\x00\xff not a mail", rules, settings_without_config(BOT), TODAY) is None


def test_a_mail_that_kills_its_reader_kills_the_child_not_the_caller(
        rules: Rules, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILBOT_CRASH_AT", "while_handling")
    monkeypatch.setenv("MAILBOT_CRASH_IF", "POISON-MARKER")
    poison = brief(body="Hvem: POISON-MARKER\n")
    settings = settings_without_config(BOT)
    assert read_alone(poison, rules, settings, TODAY) == signal.SIGKILL
    assert read_alone(brief(), rules, settings, TODAY) is None  # the others are read


def test_a_reading_that_hangs_is_killed_and_reported_not_waited_for(
        rules: Rules, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hang is faked at our own interface (inspect_details, replaced before the fork, so
    the child runs the replacement); the fork, the wait and the kill are real."""
    import os
    import time

    from mailbot.intake import inspection

    def hang(*_args: object, **_kwargs: object) -> None:
        time.sleep(60)

    monkeypatch.setattr(inspection, "inspect_details", hang)
    begun = time.monotonic()
    with pytest.raises(TimeoutError, match="did not finish within 1 s"):
        read_alone(brief(), rules, settings_without_config(BOT), TODAY, timeout=1)
    assert time.monotonic() - begun < 10
    with pytest.raises(ChildProcessError):  # the child was killed and reaped: no zombie
        os.waitpid(-1, os.WNOHANG)
