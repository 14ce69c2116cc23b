"""rules/*.yaml are validated at start; an error names the file, the entry and the problem."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mailbot.errors import ConfigError
from mailbot.resources import shipped
from mailbot.rules import load_rules


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(shipped("rules"), target)
    return target


def break_file(folder: Path, name: str, old: str, new: str) -> None:
    path = folder / name
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.mark.parametrize(("name", "old", "new", "entry"), [
    ("documents.yaml", '      - "teknisk"', '      - "teknisk("',
     "kinds.technical_description.filename_patterns[0]"),
    ("documents.yaml", "reviewers: [contract_manager]", "reviewers: [jurist]",
     "kinds.contract_draft.reviewers"),
    ("documents.yaml", "required: [technical_description,", "required: [budget,", "required"),
    ("brief.yaml", '  why:\n', '  hvorfor:\n', "questions"),
    ("signals.yaml", "cost_threshold_dkk: 1000000", "cost_threshold_dkk: mange",
     "strategic.cost_threshold_dkk"),
    ("screening.yaml", "max_received_headers: 50", "max_received_headers: 2",
     "max_received_headers"),
])
def test_broken_rule_names_file_and_entry(folder: Path, name: str, old: str, new: str,
                                          entry: str) -> None:
    break_file(folder, name, old, new)
    with pytest.raises(ConfigError) as caught:
        load_rules(folder)
    assert str(folder / name) in str(caught.value) and f"[{entry}]" in str(caught.value)


def test_a_municipality_can_add_a_file_name_pattern(folder: Path) -> None:
    from mailbot.reading.documents import kind_from_filename

    assert kind_from_filename("Løsningsbeskrivelse.pdf", load_rules(folder)) == "other"
    break_file(folder, "documents.yaml", '      - "arkitektur"\n',
               '      - "arkitektur"\n      - "løsningsbeskrivelse"\n')
    assert kind_from_filename("Løsningsbeskrivelse.pdf", load_rules(folder)) == \
        "technical_description"


def test_invalid_yaml_is_reported(folder: Path) -> None:
    (folder / "brief.yaml").write_text("questions: [unclosed", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_rules(folder)
