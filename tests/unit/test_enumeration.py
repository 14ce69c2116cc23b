"""Lists in the mails read as a Danish sentence writes them ("a, b og c"), not "a og b og c"."""

from __future__ import annotations

import pytest

from mailbot.delivery.compose import enumeration


@pytest.mark.parametrize(("items", "last", "text"), [
    ([], "og", ""),
    (["IT-drift"], "og", "IT-drift"),
    (["IT-drift", "IT-arkitekten"], "og", "IT-drift og IT-arkitekten"),
    (["IT-drift", "IT-arkitekten", "den kontraktansvarlige",
      "informationssikkerhedskoordinatoren"], "og",
     "IT-drift, IT-arkitekten, den kontraktansvarlige og informationssikkerhedskoordinatoren"),
    (["IT operations", "the IT architect", "the contract manager"], "and",
     "IT operations, the IT architect and the contract manager"),
])
def test_a_list_reads_as_a_sentence(items: list[str], last: str, text: str) -> None:
    assert enumeration(items, last) == text
