"""The receipt greets the applicant by her name as a letter writes it: Outlook address books in
Danish municipalities give "Efternavn, Fornavn", which must not become "Kære Friis, Hanne"."""

from __future__ import annotations

import pytest

from mailbot.cases.opening import natural_name


@pytest.mark.parametrize(("display", "greeted"), [
    ("Friis, Hanne", "Hanne Friis"),
    ("Holm, Lisbeth Marie", "Lisbeth Marie Holm"),
    ("Ørsted-Hansen, Åse", "Åse Ørsted-Hansen"),
    ("Hanne Friis", "Hanne Friis"),
    # not a surname and given names: left as written
    ("IT, Borgerservice 2", "IT, Borgerservice 2"),
    ("Friis, Hanne (BSF)", "Friis, Hanne (BSF)"),
    ("", ""),
])
def test_a_surname_first_display_name_is_turned_round(display: str, greeted: str) -> None:
    assert natural_name(display) == greeted
