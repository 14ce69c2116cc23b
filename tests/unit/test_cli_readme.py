"""The README's Configure and Run sections name every key and every command there is."""

from __future__ import annotations

from pydantic import BaseModel

from mailbot.cli import app
from mailbot.config import Settings
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
