"""Verdicts from the reviewer's own words; quotes, signatures and negations handled."""

from __future__ import annotations

import pytest

from mailbot.reading.replies import asks_for_status, own_text, read_verdict
from mailbot.rules import Rules

QUOTE = ("\n\nFra: IT-Projektrådet <it@kommune.dk>\nSendt: 3. dec. 2026\nEmne: Anmodning\n\n"
         "Svar fx Godkendt, eller Kan ikke anbefales, afvist.")


@pytest.mark.parametrize(("text", "verdict"), [
    ("Godkendt", "approved"),
    ("Ingen bemærkninger.", "approved"),
    ("OK, men husk SSO", "approved"),
    ("Fint med mig.", "approved"),
    ("Looks good to me.", "approved"),
    ("Kontrakten mangler en exit-klausul – ret venligst", "changes_requested"),
    ("Bemærkninger: der skal tilføjes en exit-plan.", "changes_requested"),
    ("Ikke godkendt endnu.", "changes_requested"),
    ("Den kan ikke godkendes i den form.", "changes_requested"),
    ("Kan ikke anbefales.", "rejected"),
    ("Jeg afviser projektet.", "rejected"),
    ("Jeg kigger på det i næste uge.", "unclear"),
    ("", "unclear"),
])
def test_verdict_from_own_words_not_from_the_quote(rules: Rules, text: str, verdict: str) -> None:
    assert read_verdict(text + QUOTE, rules).verdict == verdict


@pytest.mark.parametrize("quote", [
    "\n\n-----Oprindelig meddelelse-----\nFra: x\nGodkendt",
    "\n\nDen tor. 3. dec. 2026 kl. 10.12 skrev IT-Projektrådet <it@kommune.dk>:\n> Godkendt",
    "\n\nOn Thu, Dec 3, 2026 at 10:12 AM IT <it@kommune.dk> wrote:\n> Godkendt",
    "\n\n> Godkendt\n> afvist",
    "\n\nSendt fra min iPhone\n\nGodkendt",
])
def test_quote_forms_are_cut(rules: Rules, quote: str) -> None:
    assert read_verdict("Jeg vender tilbage." + quote, rules).verdict == "unclear"


def test_signature_is_not_part_of_the_comment(rules: Rules) -> None:
    own = own_text("Godkendt, men husk SSO.\n\nMed venlig hilsen\nSøren\nIT-arkitekt", rules)
    assert own == "Godkendt, men husk SSO."


@pytest.mark.parametrize(("subject", "text", "expected"), [
    ("SV: [ITP-2026-0001] x", "status", True),
    ("status", "", True),
    ("SV: [ITP-2026-0001] x", "Status?\n\nMvh", True),
    ("SV: [ITP-2026-0001] x", "Her er business casen, status er at den er klar.", False),
])
def test_status_requests(rules: Rules, subject: str, text: str, expected: bool) -> None:
    assert asks_for_status(subject, text, rules) is expected
