"""The names of systems a brief gives to look up in KITOS, and "nyt system" (pure reading,
rules/signals.yaml `systems`)."""

from __future__ import annotations

import pytest

from mailbot.reading.systems import normalise_name, says_new_system, system_names
from mailbot.rules import Rules


@pytest.mark.parametrize(("title", "what", "names"), [
    ("Udvidelse af RuteNet", "Tilkøb af et modul til RuteNet, så chaufførerne ser ruterne.",
     ["RuteNet"]),
    ("Bilagsscanning", "Vi vil udvide økonomisystemet med bilagsscanning.",
     ["økonomisystemet", "Bilagsscanning"]),
    ("Opgradering af Økonomisystemet", "Økonomisystemet skal opgraderes til version 5.",
     ["Økonomisystemet"]),
    ("Lokalebooking", 'Mødelokaler i Outlook via "Room Booker" og Microsoft Teams.',
     ["Room Booker", "Outlook", "Microsoft Teams", "Lokalebooking", "Mødelokaler"]),
    ("SBSYS-integration", "Journalisering fra Aula direkte i SBSYS.",
     ["SBSYS", "Aula", "Journalisering"]),
    ("Projektforslag", "Vi har brug for et bedre overblik. Det skal være let.", []),
])
def test_names_in_the_title_and_hvad(rules: Rules, title: str, what: str,
                                     names: list[str]) -> None:
    found = system_names(title, what, rules.signals.systems)
    assert [n.written for n in found] == names


@pytest.mark.parametrize(("written", "key"), [
    ("økonomisystemet", "økonomisystem"), ("Økonomisystem", "økonomisystem"),
    ("systemerne", "system"), ("bookingsystemets", "bookingsystem"),
    ("RuteNet", "rutenet"), ("SBSYS", "sbsys"), ("Microsoft  Teams", "microsoft teams"),
    ("Ruten", "ruten"),  # "rut" would be shorter than min_stem
])
def test_normalised_for_case_and_danish_endings(rules: Rules, written: str, key: str) -> None:
    assert normalise_name(written, rules.signals.systems) == key


def test_one_lookup_per_normalised_name_and_at_most_max_names(rules: Rules) -> None:
    found = system_names("Økonomisystemet", "Økonomisystem og økonomisystemerne.",
                         rules.signals.systems)
    assert [n.key for n in found] == ["økonomisystem"]
    many = " ".join(f"Vi bruger System{chr(65 + i)}x." for i in range(10))
    assert len(system_names("", many, rules.signals.systems)) == rules.signals.systems.max_names


@pytest.mark.parametrize(("text", "new"), [
    ("Et nyt bookingsystem til mødelokalerne.", True),
    ("Vi skal have et nyt system til kørsel.", True),
    ("Vi ønsker et nyt it-system.", True),
    ("We need a new booking system.", True),
    ("Det er ikke et nyt system, men et tilkøb til RuteNet.", False),
    ("Et nyt modul til RuteNet.", False),
    ("Opgradering af økonomisystemet.", False),
])
def test_a_brief_that_says_the_system_is_new(rules: Rules, text: str, new: bool) -> None:
    assert says_new_system(text, rules.signals.systems) is new
