"""The README names every key and every command there is, every list key where it says which
keys are split at commas, exactly the crash points in the code, and every alert kind in
Alerts and in Troubleshoot (with its log line and the subject of its mail)."""

from __future__ import annotations

import re
from typing import get_origin

from pydantic import BaseModel

from mailbot.alerts import EXPLAINED
from mailbot.cli import app
from mailbot.config import BotSettings, Settings
from mailbot.faults import CRASH_POINTS
from mailbot.vocabulary import Incident
from tests.unit.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_config_key_is_documented() -> None:
    keys = []
    for section, field in Settings.model_fields.items():
        model = field.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            keys += [f"{section}.{key}" for key in model.model_fields]
    assert keys and [key for key in keys if f"`{key}`" not in README] == []


def test_every_command_is_in_the_run_table() -> None:
    names = [command.name or (command.callback.__name__ if command.callback else "")
             for command in app.registered_commands]
    assert "migrate" in names
    run_table = README.partition("## Run")[2].partition("### Under systemd")[0]
    assert [name for name in names if f"| `mailbot {name}" not in run_table] == []


def _list_keys() -> list[str]:
    """Every config key whose field is a list (what config._is_list_field splits)."""
    keys = []
    for section, field in Settings.model_fields.items():
        model = field.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            keys += [f"{section}.{key}" for key, sub in model.model_fields.items()
                     if get_origin(sub.annotation) is list]
    return keys


def test_every_list_key_is_named_where_the_readme_says_what_is_split_at_commas() -> None:
    named = README.partition("a list key (")[2].partition(") is split on commas")[0]
    assert named, "the sentence on list keys in Configure is gone"
    keys = _list_keys()
    assert "operator.addresses" in keys
    missing = [key for key in keys
               if f"`{key}`" not in named and f"`{key.split('.')[0]}.*`" not in named]
    assert missing == []


def test_the_readme_names_exactly_the_crash_points_there_are() -> None:
    called = set()
    for path in (ROOT / "mailbot").rglob("*.py"):
        called |= set(re.findall(r'crash_point\("([a-z_]+)"', path.read_text(encoding="utf-8")))
    assert called == set(CRASH_POINTS)
    paragraph = README.partition("named crash points")[2].partition("## Benchmarks")[0]
    points = paragraph.partition("The points:")[2].partition("With\n`MAILBOT_CRASH_IF")[0]
    assert set(re.findall(r"`([a-z_]+)` \(", points)) == set(CRASH_POINTS)
    assert "MAILBOT_CRASH_AT=" in paragraph and "MAILBOT_CRASH_IF=" in paragraph


def test_every_alert_kind_has_a_troubleshoot_row_with_its_line_and_mail_subject() -> None:
    """The operator finds the row by the log line or by the alert mail's subject, which is
    `<bot.name>: ` and the alert's first text (mailbot.alerts.EXPLAINED)."""
    alerts = README.partition("**Alerts.**")[2].partition("\n\n")[0]
    troubleshoot = README.partition("## Troubleshoot")[2].partition("### TLS")[0]
    name = BotSettings.model_fields["name"].default
    for incident in Incident:
        assert f"`{incident.value}`" in alerts, incident
        [row] = [line for line in troubleshoot.splitlines()
                 if line.startswith("| ") and f"event={incident.value} " in line]
        quoted = re.search(r'mail "([^"]+)"', row)
        assert quoted is not None, incident
        subject = f"{name}: {EXPLAINED[incident][0]}"
        shown = quoted.group(1).removesuffix("…").rstrip()
        assert len(shown) >= 40 and subject.startswith(shown), incident
        fix = row.partition(" | ")[2]
        assert re.search(r"`(mailbot|systemctl|journalctl) ", fix), incident  # the commands
