"""`mailbot check` renders every mail the bot can send (the rehearsal), so a broken template
or label fails at `check`, not days later at a reminder or at the agenda deadline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import pytest

from mailbot.app import build_bot, template_folders
from mailbot.clock import Clock
from mailbot.config import Settings
from mailbot.errors import ConfigError
from mailbot.intake.inspection import settings_without_config
from mailbot.rehearsal import rehearse
from mailbot.resources import shipped
from mailbot.rules import load_rules


class RecordingLoader(jinja2.FileSystemLoader):
    """The real loader, noting each template it is asked for."""

    def __init__(self, folders: list[Path]) -> None:
        super().__init__([str(f) for f in folders])
        self.loaded: set[str] = set()

    def get_source(self, environment: jinja2.Environment, template: str) -> Any:
        self.loaded.add(template)
        return super().get_source(environment, template)


def settings(tmp_path: Path, **bot: object) -> Settings:
    base = settings_without_config("it.projekter@kommune.test")
    return base.model_copy(update={"bot": base.bot.model_copy(
        update={"data_dir": tmp_path / "data", **bot})})


def test_every_shipped_template_is_rendered(tmp_path: Path) -> None:
    bot = build_bot(settings(tmp_path), Clock())
    loader = RecordingLoader(template_folders(bot.settings))
    bot.renderer.env.loader = loader
    before = sorted((tmp_path / "data").rglob("*"))
    assert rehearse(bot) >= 30
    # templates/web/ holds the overview's pages, not mail: their own tests render them
    # (tests/unit/test_web_overview.py, tests/unit/test_web_oidc.py)
    shipped_templates = {p.relative_to(shipped("templates")).as_posix()
                         for p in shipped("templates").rglob("*.j2")
                         if p.relative_to(shipped("templates")).parts[0] != "web"}
    assert shipped_templates - loader.loaded == set()
    assert sorted((tmp_path / "data").rglob("*")) == before  # the real data_dir is untouched


def test_an_undefined_name_in_an_english_template_fails_the_rehearsal(tmp_path: Path) -> None:
    local = tmp_path / "templates" / "en"
    local.mkdir(parents=True)
    text = (shipped("templates") / "en" / "applicant_status.txt.j2").read_text("utf-8")
    (local / "applicant_status.txt.j2").write_text(text + "{{ no_such_name }}\n", "utf-8")
    bot = build_bot(settings(tmp_path, templates_dir=tmp_path / "templates"), Clock())
    with pytest.raises(jinja2.UndefinedError, match="no_such_name"):
        rehearse(bot)


@pytest.mark.parametrize(("old", "new", "problem"), [
    ('missing: "mangler {items}"', 'missing: "mangler {itmes}"', "unknown placeholder {itmes}"),
    ('payer: "betales af {payer}"', 'payer: "betales af {payer"', "broken {placeholder}"),
    ('review: "{role}: {state}"', 'review: "{role}: {state} {x}"', "unknown placeholder {x}"),
])
def test_a_label_with_a_wrong_placeholder_is_refused_at_load(
        tmp_path: Path, old: str, new: str, problem: str) -> None:
    for source in shipped("rules").glob("*.yaml"):
        (tmp_path / source.name).write_text(source.read_text("utf-8"), "utf-8")
    labels = tmp_path / "labels.yaml"
    text = labels.read_text("utf-8")
    assert old in text
    labels.write_text(text.replace(old, new), "utf-8")
    with pytest.raises(ConfigError) as err:
        load_rules(tmp_path)
    assert "labels.yaml" in str(err.value) and problem in str(err.value)


def test_a_rules_file_that_is_not_utf8_is_one_clear_error(tmp_path: Path) -> None:
    for source in shipped("rules").glob("*.yaml"):
        (tmp_path / source.name).write_text(source.read_text("utf-8"), "utf-8")
    (tmp_path / "signals.yaml").write_bytes('x: "\xe6"\n'.encode("latin-1"))
    with pytest.raises(ConfigError) as err:
        load_rules(tmp_path)
    assert "signals.yaml" in str(err.value) and "UTF-8" in str(err.value)
