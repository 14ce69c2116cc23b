"""Digitaliseringsprojekt or it-projekt: the bot's proposal from a brief, with its reason,
as the municipality's page draws the line (rules/agenda.yaml)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mailbot.errors import ConfigError
from mailbot.intake.parse import parse
from mailbot.reading.brief import read_brief
from mailbot.reading.decisions import read_decisions
from mailbot.resources import shipped
from mailbot.rules import Rules, load_rules
from tests.mails import brief
from tests.unit.conftest import MailbotRunner, add_case, migrated_database, write_config
from tests.unit.test_rules import break_file

DIGITAL, IT = "digitaliseringsprojekt", "it-projekt"


def proposal(rules: Rules, body: str, subject: str = "Projektforslag") -> tuple[str | None, str]:
    reading = read_brief(parse(brief(subject=subject, body=body)), rules)
    return reading.project_type, reading.project_type_reason


def body(what: str, why: str, who: str = "Mette Holm, Borgerservice.",
         where: str = "Borgerservice.") -> str:
    return (f"Hvem: {who}\nHvad: {what}\nHvor: {where}\nHvornår: 1. marts 2027.\n"
            f"Hvorfor: {why}\nHvor meget: 50.000 kr., betales af Borgerservice.\n\nMvh Mette\n")


@pytest.mark.parametrize(("text", "kind", "reason"), [
    # new technology that changes how we work or what we deliver
    (body("En selvbetjeningsløsning, hvor borgerne selv kan booke tid.",
          "Det ændrer arbejdsgange i Borgerservice, så vi sparer telefontid."),
     DIGITAL, "ændrer arbejdsgange: „Det ændrer arbejdsgange i Borgerservice, så vi sparer "
              "telefontid“"),
    (body("En softwarerobot (RPA), der bogfører leverandørfakturaer.",
          "Fakturaerne tastes i dag manuelt."), DIGITAL, "robot/RPA"),
    (body("En app til digitale parkeringstilladelser.",
          "Papirtilladelser bliver væk og skal fornyes manuelt.",
          who="Bo Ærenlund. Brugerne er borgerne."), DIGITAL, "afløser manuelt arbejde"),
    # versions, updates, hardware, systems
    (body("Opgradering af ESDH-systemet til version 5.2.",
          "Den nuværende version er ikke længere understøttet af leverandøren."),
     IT, "opgradering: „Opgradering af ESDH-systemet til version 5.2“"),
    (body("Udskiftning af 120 bærbare pc'er i hjemmeplejen.", "De gamle er fem år."),
     IT, "udskiftning af hardware"),
    (body("Forlængelse af licensen til vores GIS-værktøj.", "Aftalen udløber i marts."),
     IT, "licensforlængelse"),
    (body("Genudbud af økonomisystemet.", "Kontrakten udløber; vi forventer samme system."),
     IT, "genudbud af samme system"),
    # English
    (body("A self-service portal where citizens book appointments.",
          "It changes how we work at the front desk."), DIGITAL, "ændrer arbejdsgange"),
    (body("Upgrade of the payroll system to the latest version.",
          "The current version is no longer supported; no changes to how we work."),
     IT, "opgradering: „Upgrade of the payroll system to the latest version“"),
])
def test_the_brief_decides_with_its_reason(rules: Rules, text: str, kind: str,
                                           reason: str) -> None:
    found, why = proposal(rules, text)
    assert found == kind
    assert why.startswith(reason)


def test_a_significant_change_outweighs_a_new_version(rules: Rules) -> None:
    """The page: versions and updates are it-projekter "unless they mean significant changes
    in work processes"."""
    found, why = proposal(rules, body("Ny version af RuteNet, som ændrer arbejdsgange i Vej "
                                      "og Park.", "Ruterne planlægges i dag på papir."))
    assert found == DIGITAL
    assert why == "ændrer arbejdsgange: „Ny version af RuteNet, som ændrer arbejdsgange i Vej " \
                  "og Park“"


def test_both_kinds_equally_is_for_the_secretary(rules: Rules) -> None:
    found, why = proposal(rules, body("Opgradering af lønsystemet.",
                                      "Selvbetjening for medarbejderne."))
    assert found is None
    assert why == ("tegn på begge dele – selvbetjening: „Selvbetjening for medarbejderne“ og "
                   "opgradering: „Opgradering af lønsystemet“")


def test_no_cue_proposes_nothing(rules: Rules) -> None:
    assert proposal(rules, body("Et værktøj til tegninger.", "Arkitekterne ønsker det.")) == \
        (None, "")


def test_a_negated_cue_does_not_count(rules: Rules) -> None:
    found, why = proposal(rules, body("Ny version af skemaplanlægningen.",
                                      "Løsningen er ikke borgerrettet og uden selvbetjening."))
    assert found == IT and why.startswith("ny version af et eksisterende system")


def test_the_subject_counts_too(rules: Rules) -> None:
    found, why = proposal(rules, body("Se vedhæftede.", "Se vedhæftede."),
                          subject="Projektforslag: Chatbot på hjemmesiden")
    assert (found, why) == (DIGITAL, "chatbot til borgerne: „Chatbot på hjemmesiden“")


def test_a_broken_cue_names_the_file_and_entry(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    folder.mkdir()
    for source in shipped("rules").glob("*.yaml"):
        (folder / source.name).write_text(source.read_text("utf-8"), "utf-8")
    break_file(folder, "agenda.yaml", '    - [3, "\\\\bopgrader\\\\w*", "opgradering"]',
               '    - [3, "\\\\bopgrader(\\\\w*", "opgradering"]')
    with pytest.raises(ConfigError) as caught:
        load_rules(folder)
    assert "agenda.yaml" in str(caught.value)
    assert "[project_types.it-projekt[0]]" in str(caught.value)


# -- the secretary's correction in her reply to the agenda ---------------------------------
def test_a_type_line_alone_is_read_not_listed_back(rules: Rules) -> None:
    found = read_decisions("ITP-2026-0042: it-projekt\n"
                           "ITP-2026-0043 er et digitaliseringsprojekt\n\nVh Birgitte", rules)
    assert found.project_types == {"ITP-2026-0042": IT, "ITP-2026-0043": DIGITAL}
    assert found.project_type_texts["ITP-2026-0042"] == "ITP-2026-0042: it-projekt"
    assert found.decisions == {} and found.unmapped == []


def test_a_type_on_the_line_of_a_decision(rules: Rules) -> None:
    found = read_decisions("ITP-2026-0042: Godkendt som digitaliseringsprojekt.\n"
                           "ITP-2026-0043: Udsat. It-projekt.\n"
                           "ITP-2026-0044: Godkendt - sendes videre til SIT", rules)
    assert found.decisions == {"ITP-2026-0042": "approved", "ITP-2026-0043": "postponed",
                               "ITP-2026-0044": "forwarded"}
    assert found.project_types == {"ITP-2026-0042": DIGITAL, "ITP-2026-0043": IT}


def test_several_refs_a_heading_and_english(rules: Rules) -> None:
    found = read_decisions("ITP-2026-0042 og ITP-2026-0043 er it-projekter.\n\n"
                           "Digitaliseringsprojekter:\nITP-2026-0044\nITP-2026-0045\n\n"
                           "ITP-2026-0046 is an IT project.", rules)
    assert found.project_types == {"ITP-2026-0042": IT, "ITP-2026-0043": IT,
                                   "ITP-2026-0044": DIGITAL, "ITP-2026-0045": DIGITAL,
                                   "ITP-2026-0046": IT}
    assert found.project_type_texts["ITP-2026-0044"] == "Digitaliseringsprojekter: ITP-2026-0044"
    assert found.unmapped == []


def test_the_council_name_and_a_negation_are_not_a_type(rules: Rules) -> None:
    found = read_decisions("IT-Projektrådet godkendte ITP-2026-0042.\n"
                           "ITP-2026-0043: ikke et it-projekt, men et digitaliseringsprojekt",
                           rules)
    assert found.project_types == {"ITP-2026-0043": DIGITAL}
    assert found.decisions == {"ITP-2026-0042": "approved"}


def test_two_different_types_for_one_case_go_back(rules: Rules) -> None:
    found = read_decisions("ITP-2026-0042: it-projekt\nITP-2026-0042: digitaliseringsprojekt",
                           rules)
    assert found.project_types == {}
    assert found.unmapped == ["ITP-2026-0042: it-projekt",
                              "ITP-2026-0042: digitaliseringsprojekt"]


# -- `mailbot case` ------------------------------------------------------------------------
def test_case_shows_the_proposal_and_the_secretarys_choice(tmp_path: Path,
                                                          mailbot: MailbotRunner) -> None:
    config = write_config(tmp_path)
    url = migrated_database(tmp_path / "data")
    add_case(url, "ITP-2026-0001", project_type=DIGITAL, project_type_source="proposed",
             project_type_reason="selvbetjening: „En selvbetjeningsløsning til borgerne“")
    add_case(url, "ITP-2026-0002", project_type=IT, project_type_source="secretary",
             project_type_reason="ITP-2026-0002: it-projekt")
    add_case(url, "ITP-2026-0003", project_type_source="proposed")
    out = mailbot("--config", str(config), "case", "ITP-2026-0001").out
    assert "type:      digitaliseringsprojekt (proposed: selvbetjening: „En " \
           "selvbetjeningsløsning til borgerne“)" in out
    out = mailbot("--config", str(config), "case", "ITP-2026-0002").out
    assert "type:      it-projekt (secretary: ITP-2026-0002: it-projekt)" in out
    out = mailbot("--config", str(config), "case", "ITP-2026-0003").out
    assert "type:      - (proposed: not settled)" in out
    data = json.loads(mailbot("--config", str(config), "case", "ITP-2026-0002", "--json").out)
    assert (data["project_type"], data["project_type_source"], data["project_type_reason"]) \
        == (IT, "secretary", "ITP-2026-0002: it-projekt")
