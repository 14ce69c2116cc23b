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


REQUEST = ("> Kære IT-arkitekt\n>\n> Vurdér vedlagte tekniske beskrivelse og svar fx\n"
           "> \"Godkendt\" eller \"Kan ikke anbefales\".\n>\n> IT-Projektrådet\n")


@pytest.mark.parametrize(("text", "verdict", "comment"), [
    # Thunderbird / Apple Mail bottom-posting, Danish and English quote headers
    ("Den 27-11-2026 kl. 10:00 skrev IT-Projektrådet:\n" + REQUEST
     + "\nKan ikke anbefales: løsningen kræver lokal installation.\n\nMvh\nPer",
     "rejected", "Kan ikke anbefales: løsningen kræver lokal installation."),
    ("On 27/11/2026 10:00, IT-Projektrådet wrote:\n" + REQUEST
     + "\nApproved, but mind the SSO setup.\n\nBest regards\nPer",
     "approved", "Approved, but mind the SSO setup."),
    # a header over two lines (Gmail breaks long ones) before the quote
    ("Den fre. 27. nov. 2026 kl. 10.00 skrev IT-Projektrådet <\nit@kommune.dk>:\n"
     + REQUEST + "\nFint med mig.\n", "approved", "Fint med mig."),
    # interleaved: answers between the quoted lines
    ("> Er løsningen cloud-baseret?\nJa, Azure i EU.\n> Kræver den SSO?\n"
     "Ja, og det mangler i beskrivelsen – ret venligst.\n> Svar fx Godkendt\n",
     "changes_requested", "Ja, Azure i EU.\nJa, og det mangler i beskrivelsen – ret venligst."),
    # top-posting still reads only the top
    ("Godkendt.\n\nDen 27-11-2026 kl. 10:00 skrev IT-Projektrådet:\n" + REQUEST,
     "approved", "Godkendt."),
])
def test_a_reply_below_or_between_the_quote_is_read_like_one_above_it(
        rules: Rules, text: str, verdict: str, comment: str) -> None:
    reading = read_verdict(text, rules)
    assert (reading.verdict, reading.comment) == (verdict, comment)


def test_an_outlook_quote_without_markers_still_ends_the_own_text(rules: Rules) -> None:
    """Outlook quotes the original without ">": everything below its "Fra:" block is the
    original, whose "Godkendt" must not be read as the reviewer's."""
    text = ("Jeg kigger på det i næste uge.\n\nFra: IT-Projektrådet <it@kommune.dk>\n"
            "Sendt: 27. november 2026 10:00\nEmne: Anmodning\n\nSvar fx Godkendt\n")
    assert read_verdict(text, rules).verdict == "unclear"


def test_an_html_reply_below_a_blockquote_is_read(rules: Rules) -> None:
    from mailbot.intake.parse import html_to_text

    html = ("<div>Den 27-11-2026 kl. 10:00 skrev IT-Projektrådet:</div>"
            "<blockquote type=\"cite\"><p>Svar fx \"Godkendt\" eller \"Kan ikke anbefales\"."
            "</p><blockquote><p>Ældre citat: afvist</p></blockquote></blockquote>"
            "<p>Kontrakten mangler en exit-klausul.</p><p>Mvh Per</p>")
    text = html_to_text(html)
    assert "> > Ældre citat: afvist" in text
    reading = read_verdict(text, rules)
    assert (reading.verdict, reading.comment) == (
        "changes_requested", "Kontrakten mangler en exit-klausul.")


@pytest.mark.parametrize(("text", "verdict"), [
    ("Jeg har ingen indvendinger. Løsningen kører som SaaS i EU.", "approved"),
    ("No objections from security.", "approved"),
    ("I cannot support this: the supplier has no ISAE 3000 report.", "rejected"),
    ("Vi kan ikke støtte projektet, før logningen ligger i EU.", "rejected"),
    ("Arkitekturen kan jeg ikke bakke op om.", "unclear"),  # word order we do not guess at
])
def test_more_ways_to_say_yes_and_no(rules: Rules, text: str, verdict: str) -> None:
    assert read_verdict(text + QUOTE, rules).verdict == verdict


@pytest.mark.parametrize(("text", "verdict"), [
    # the infinitive after a modal verb, and other ways to turn a project down
    ("Jeg må desværre afvise den. Data opbevares uden for EU.", "rejected"),
    ("Jeg er nødt til at afvise projektet, da leverandøren ikke vil underskrive.", "rejected"),
    ("Jeg indstiller til afslag.", "rejected"),
    ("Vi må desværre sige nej til den her løsning.", "rejected"),
    ("I have to reject this one: the hosting is in the US.", "rejected"),
    ("I must decline; the supplier refuses our DPA.", "rejected"),
    # what must change before the reviewer signs off
    ("Two points must be fixed before I can sign off:\n1. Notice period.\n2. Exit clause.",
     "changes_requested"),
    ("The DPA needs to be updated with the current sub-processors.", "changes_requested"),
    ("Please ask the applicant to send a revised draft.", "changes_requested"),
    ("I cannot approve it in this form.", "changes_requested"),
    ("Afsnit 4 om logning skal præciseres, før jeg kan anbefale det.", "changes_requested"),
    ("Send gerne et opdateret udkast med exit-klausulen.", "changes_requested"),
])
def test_refusals_and_requested_changes_in_other_words(rules: Rules, text: str,
                                                      verdict: str) -> None:
    assert read_verdict(text + QUOTE, rules).verdict == verdict


def test_an_english_reviewer_answering_between_the_quoted_lines_asks_for_changes(
        rules: Rules) -> None:
    text = ("On Mon, 16 Mar 2026 at 11:20, IT-Projektrådet <it@kommune.dk> wrote:\n"
            "> Please review the contract draft.\n>\n"
            "I have read it. Two points must be fixed before I can sign off.\n\n"
            "> How to answer: \"Approved\", \"No comments\" or \"Cannot recommend\".\n\n"
            "Please ask the applicant to send a revised draft.\n\n> Kind regards\n\n"
            "Anna\nContract manager\n")
    assert read_verdict(text, rules).verdict == "changes_requested"
