"""Briefs in prose, glossed labels and answer boundaries: the pieces, the rules' validation
and the receipt that shows the applicant how her prose was understood. The readings of whole
mails are in fixtures/reading (prose_*, gloss_*, boundary_*), checked by test_reading.py."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailbot.app import build_bot
from mailbot.cases.opening import receipt_context
from mailbot.cases.summary import case_summary
from mailbot.clock import Clock
from mailbot.errors import ConfigError
from mailbot.intake.inspection import settings_without_config
from mailbot.intake.parse import parse
from mailbot.models import Case
from mailbot.reading.brief import declarations, read_answers, read_brief, statement_about_documents
from mailbot.reading.danish import ascii_spellings
from mailbot.reading.prose import clauses, read_prose, sentences
from mailbot.resources import shipped
from mailbot.rules import QUESTION_IDS, Rules, load_rules

PROSE_DA = """Hej

Kontaktperson er Mette Holm, og systemet skal bruges af de 25 medarbejdere i Vej og Park.
Vi vil gerne anskaffe et nyt system til registrering af vejskilte.

Vi forventer at gå i drift 1. maj 2027. Baggrunden er, at registreringen i dag foregår på
papir.

Prisen er 160.000 kr., som betales af Teknik og Miljø.

Med venlig hilsen
Mette
"""
PROSE_EN = """Hello

The contact person is John Miller, and the users are the 40 managers in the HR department.
We would like to buy a new module for the HR system.

We expect it to be in use by 1 March 2027, because sick leave is registered by hand today.

The licence costs DKK 75,000 a year, paid by HR.

Kind regards
John
"""


def _mail(body: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Mette Holm <mette@kommune.test>"
    msg["To"] = "it.projekter@kommune.test"
    msg["Subject"] = "Projektforslag: vejskilte"
    msg["Message-ID"] = "<prose@kommune.test>"
    msg.set_content(body)
    return msg.as_bytes()


def test_sentences_do_not_break_at_abbreviations_or_dates() -> None:
    text = ("Ca. 400 borgere, f.eks. Borgerservice, bruger det fra 1. maj 2027. "
            "Det koster 5 kr. Betales af HR.")
    assert sentences(text) == ["Ca. 400 borgere, f.eks. Borgerservice, bruger det fra 1. maj 2027.",
                               "Det koster 5 kr.", "Betales af HR."]


def test_clauses_split_where_two_statements_are_joined_but_keep_short_pieces() -> None:
    assert clauses("Kontaktperson er Mette Holm, og løsningen bruges i Vej og Park.") == [
        "Kontaktperson er Mette Holm,", "og løsningen bruges i Vej og Park."]
    assert clauses("Prisen er 5 kr., og mere.") == ["Prisen er 5 kr., og mere."]


def test_ascii_spellings() -> None:
    assert ascii_spellings("Hvornår") == {"Hvornår", "Hvornaar", "Hvornar"}
    assert ascii_spellings("Økonomi") == {"Økonomi", "Oekonomi", "Okonomi"}


@pytest.mark.parametrize(("line", "qid", "answer"), [
    ("Hvem (kontaktperson og brugere): Anna", "who", "Anna"),
    ("Hvor meget (pris og finansiering) - 5.000 kr.", "cost", "5.000 kr."),
    ("Who (contact person and users) | Anna", "who", "Anna"),
    ("Hvornaar (tidsplan): maj 2027", "when", "maj 2027"),
    ("Formaal: Færre fejl", "why", "Færre fejl"),
    ("Hvem - (kontaktperson og brugere): Anna", "who", "Anna"),
    ("**Hvad (tilkøb, nyt system)** Et nyt system", "what", "Et nyt system"),
    ("\x96 Hvem: Anna", "who", "Anna"),  # an en-dash bullet read with the wrong charset
])
def test_glossed_labels(rules: Rules, line: str, qid: str, answer: str) -> None:
    assert read_answers(line, rules)[qid] == answer


def test_a_question_word_in_a_sentence_is_not_a_label(rules: Rules) -> None:
    answers = read_answers(
        "Hvem der betaler, må I spørge Anna om.\nHvad angår prisen, ved jeg ikke.", rules)
    assert set(answers.values()) == {None}


@pytest.mark.parametrize(("sentence", "kinds", "state"), [
    ("Kontrakten har jeg ikke fået endnu.", ("contract_draft",), "missing"),
    ("The DPA will follow.", ("dpa_draft",), "announced"),
    ("The contract is still being negotiated.", ("contract_draft",), "negotiating"),
    ("Teknisk beskrivelse og business case er vedhæftet.",
     ("technical_description", "business_case"), "attached"),
    ("Bilagene eftersendes.", (), "announced"),
])
def test_statements_about_documents(rules: Rules, sentence: str, kinds: tuple[str, ...],
                                    state: str) -> None:
    statement = statement_about_documents(sentence, rules)
    assert statement is not None
    assert (statement.kinds, statement.state) == (kinds, state)


@pytest.mark.parametrize("sentence", [
    "Kontrakt i maj 2026, pilot fra uge 36.", "I dag venter borgerne på svar i tre uger.",
    "Systemet skal kunne håndtere vedhæftede filer.",
])
def test_sentences_that_are_not_about_documents(rules: Rules, sentence: str) -> None:
    assert statement_about_documents(sentence, rules) is None


def test_a_document_on_its_way_is_not_declared_not_applicable(rules: Rules) -> None:
    assert declarations("Vi har ingen kontrakt endnu, den forhandles stadig.", set(),
                        rules) == {}
    assert "contract_draft" in declarations("Det er gratis, så der er ingen kontrakt.", set(),
                                            rules)


def test_prose_answers_are_marked_and_words_are_the_applicants(rules: Rules) -> None:
    reading = read_brief(parse(_mail(PROSE_DA)), rules, date(2026, 11, 27))
    assert reading.from_prose == ("who", "what", "where", "when", "why", "cost")
    for answer in reading.answers.values():
        assert answer is not None and answer in " ".join(PROSE_DA.split())
    assert reading.when is not None and reading.when.start == date(2027, 5, 1)
    assert [a.dkk for a in reading.amounts] == [160000]


def test_english_prose_brief_gets_english_mail(rules: Rules) -> None:
    reading = read_brief(parse(_mail(PROSE_EN)), rules, date(2026, 11, 27))
    assert reading.english
    assert len(reading.from_prose) == 6


@pytest.mark.parametrize(("body", "language", "heading", "missing_heading"), [
    (PROSE_DA, "da", "Sådan har vi forstået dig", "Der mangler stadig"),
    (PROSE_EN, "en", "This is how we understood you", "Still missing"),
])
def test_receipt_shows_what_was_understood(tmp_path: Path, body: str, language: str,
                                           heading: str, missing_heading: str) -> None:
    base = settings_without_config("it.projekter@kommune.test")
    settings = base.model_copy(update={"bot": base.bot.model_copy(
        update={"data_dir": tmp_path / "data"})})
    bot = build_bot(settings, Clock())
    reading = read_brief(parse(_mail(body)), bot.rules, date(2026, 11, 27))
    now = datetime(2026, 11, 27, 10, tzinfo=UTC)
    case = Case(ref="ITP-2026-0001", applicant_address="mette@kommune.test", title="Vejskilte",
                language=language, created_at=now, updated_at=now, applicant_name="Mette Holm",
                answers=dict(reading.answers), missing=list(reading.missing))
    context = {"bot_name": settings.bot.name, "case": case_summary(bot.rules, case),
               "mail_subject": "Projektforslag",
               **receipt_context(bot, case, reading, reviewed=True)}
    _, text, html = bot.renderer.render_mail(language, "applicant_receipt", context)
    assert heading in text
    unlabelled = " ".join(text.split())
    for qid in reading.from_prose:
        assert f'"{" ".join((reading.answers[qid] or "").split())}"' in unlabelled
    # nothing the prose gave is listed as missing: only the documents are
    assert text.count("Example:" if language == "en" else "Eksempel:") == 0
    assert missing_heading in text
    assert "Mette Holm" in html or "John Miller" in html


def test_a_broken_prose_cue_names_its_entry(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    shutil.copytree(shipped("rules"), folder)
    path = folder / "brief.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("  min_score: 2", "  min_score: many", 1), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"prose\.min_score"):
        load_rules(folder)
    path.write_text(text.replace('      - [4, "', '      - [0, "', 1), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"prose\.cues\.who\[0\]"):
        load_rules(folder)


def test_a_labelled_answer_in_a_reply_corrects_what_was_understood_from_prose(
        rules: Rules) -> None:
    """The receipt asks the applicant to correct prose answers by replying: a labelled answer
    in the reply replaces a prose one, never one she gave under a label."""
    from mailbot.cases.followup import fill_answers

    now = datetime(2026, 11, 27, 10, tzinfo=UTC)
    reading = read_brief(parse(_mail(PROSE_DA)), rules, date(2026, 11, 27))
    case = Case(ref="ITP-2026-0001", applicant_address="mette@kommune.test", title="Vejskilte",
                created_at=now, updated_at=now, answers=dict(reading.answers),
                from_prose=list(reading.from_prose))
    reply = read_answers("Hvor: Vej og Park, Teknik og Miljø\n\nHvorfor: Papiret forsvinder.\n",
                         rules)
    assert sorted(fill_answers(case, reply)) == ["where", "why"]
    assert case.answers["where"] == "Vej og Park, Teknik og Miljø"
    assert "where" not in case.from_prose and "who" in case.from_prose
    labelled = read_answers("Hvor: Borgerservice\n", rules)
    assert fill_answers(case, labelled) == []  # her own correction stays
    assert case.answers["where"] == "Vej og Park, Teknik og Miljø"


# -- issue 11 trial: unknown answers, the old price, closing lines, glosses below labels -------
@pytest.mark.parametrize("answer", [
    "Det ved vi ikke endnu.", "Prisen kender vi ikke endnu.", "TBD", "følger", "-",
    "Tidsplanen er ikke fastlagt endnu.", "Det skal afklares med leverandøren.",
    "Afklares senere.", "Prisen er endnu ikke kendt.", "Not decided yet.",
    "We don't know the price yet.", "The timeline has not been decided.",
    "Prisen kender vi ikke endnu, og vi har heller ikke lagt en tidsplan.",
])
def test_an_answer_that_says_it_is_not_known_is_missing(answer: str, rules: Rules) -> None:
    text = f"Hvem: Karen Smed\nHvad: Et nyt system.\nHvornår: {answer}\n\nMvh Karen\n"
    assert read_answers(text, rules)["when"] is None


@pytest.mark.parametrize("answer", [
    "Det ved vi ikke præcist, men senest 1. juni 2027.", "Uge 10 2027.",
    "Vi følger kommunens tidsplan for udrulning: 1. maj 2027.",
    "I dag ved vi ikke, hvem der har gennemført kurset.",
])
def test_an_answer_that_also_gives_something_is_kept(answer: str, rules: Rules) -> None:
    text = f"Hvem: Karen Smed\nHvad: Et nyt system.\nHvornår: {answer}\n\nMvh Karen\n"
    assert read_answers(text, rules)["when"] == answer


@pytest.mark.parametrize("closing", [
    "Ring endelig, hvis der er spørgsmål – 22 33 44 55.", "Tlf. 22 33 44 55", "22 33 44 55",
    "/Birgit", "Tak på forhånd", "Feel free to call me on +45 22 33 44 55.",
    "Du er velkommen til at ringe.",
])
def test_a_closing_line_ends_the_answer(closing: str, rules: Rules) -> None:
    text = f"Hvem: Karen Smed\nHvor meget: 120.000 kr., som betales af Miljø.\n{closing}\n"
    assert read_answers(text, rules)["cost"] == "120.000 kr., som betales af Miljø."
    same_line = f"Hvem: Karen Smed\nHvor meget: 120.000 kr. {closing}\n"
    if closing[0].isalpha():
        assert read_answers(same_line, rules)["cost"] == "120.000 kr."


def test_a_gloss_line_below_a_label_belongs_to_the_label(rules: Rules) -> None:
    for gap in ("\n", "\n\n"):
        text = gap.join(["Hvem", "(kontaktperson og brugere)", "Karen Smed.", "",
                         "Hvornår", "(tidsplan)", "1. maj 2027.", ""])
        answers = read_answers(text, rules)
        assert answers["who"] == "Karen Smed." and answers["when"] == "1. maj 2027."
    # a parenthesis after the answer has begun is the applicant's own
    text = "Hvem\nKaren Smed.\n(teamleder)\n"
    assert "(teamleder)" in (read_answers(text, rules)["who"] or "")


def test_an_acronym_ends_a_sentence_but_hr_dot_name_does_not() -> None:
    assert sentences("I'm writing on behalf of HR. The contact person is Sarah.") == [
        "I'm writing on behalf of HR.", "The contact person is Sarah."]
    assert len(sentences("Kontakt hr. Jensen om det.")) == 1


def test_og_vaere_and_a_users_clause_are_clauses_of_their_own() -> None:
    assert clauses("Systemet skal bruges i Center for Sundhed og Omsorg og være i drift senest "
                   "1. januar 2027.") == ["Systemet skal bruges i Center for Sundhed og Omsorg",
                                          "og være i drift senest 1. januar 2027."]
    assert len(clauses("Vi overvejer et nyt system til byggesager, som skal bruges af vores 9 "
                       "sagsbehandlere i Byggeri og Miljø.")) == 2


@pytest.mark.parametrize("text,cost", [
    ("Det gamle system kostede 50.000 kr. om året.", False),
    ("Det nuværende system koster os 40.000 kr. om året.", False),
    ("Today we pay DKK 40,000 a year for the old system.", False),
    ("Det nye system koster 80.000 kr. om året.", True),
])
def test_the_old_systems_price_is_not_the_cost(text: str, cost: bool, rules: Rules) -> None:
    prose = (f"Jeg er kontaktperson, og brugerne er 8 medarbejdere i Ældreplejen. Vi skal have et "
             f"nyt system til nødkald. {text}\n\nSystemet skal være i drift senest 1. januar 2027.")
    found = read_prose([p for p in prose.split("\n\n")], set(QUESTION_IDS), rules)
    assert ("cost" in found) is cost
    assert not any(text in answer for qid, answer in found.items() if qid != "cost")


@pytest.mark.parametrize(("body", "missing"), [
    ("Hvem: Jonas Vestergaard, Borgerservice\nHvad: Nyt kø-system\nHvor: Borgerservice\n"
     "Hvornår: Det afhænger af udbuddet, så det kan vi ikke sige endnu.\n"
     "Hvorfor: Lange køer\nHvor meget: 80.000 kr.\n", {"when"}),
    ("Who: Priya Nair, Library\nWhat: A new booking module\nWhere: The libraries\n"
     "When: TBD\nWhy: Manual bookings\nHow much: To be confirmed after the tender.\n",
     {"when", "cost"}),
    ("Hvem: Jonas, Vej og Park\nHvad: App til vejskilte\nHvor: Vej og Park\n"
     "Hvornår: 1. maj 2027\nHvorfor: Papir\nHvor meget: Det afhænger af tilbuddene.\n",
     {"cost"}),
])
def test_answers_that_cannot_say_yet_are_missing(rules: Rules, body: str,
                                                  missing: set[str]) -> None:
    reading = read_brief(parse(_mail(body)), rules, date(2026, 11, 27))
    assert missing <= set(reading.missing)
    assert not ({"who", "what", "where", "when", "why", "cost"} - missing) & set(reading.missing)


@pytest.mark.parametrize("sentence", [
    "We have no contract or DPA yet.",
    "Vi har ingen kontrakt eller databehandleraftale endnu.",
    "There is no contract so far.",
])
def test_a_document_there_is_none_of_yet_stays_missing(rules: Rules, sentence: str) -> None:
    body = ("Hvem: Jonas, Vej og Park\nHvad: App\nHvor: Vej og Park\nHvornår: 1. maj 2027\n"
            f"Hvorfor: Papir\nHvor meget: 80.000 kr.\n\n{sentence}\n")
    reading = read_brief(parse(_mail(body)), rules, date(2026, 11, 27))
    assert "contract_draft" in reading.missing
    assert "contract_draft" not in reading.not_applicable


@pytest.mark.parametrize("questions", [
    ("1. Hvem er kontaktperson, og hvem skal bruge løsningen?", "2. Hvad ønsker I at anskaffe?",
     "3. Hvor i organisationen skal den bruges?", "4. Hvornår skal den være i drift?",
     "5. Hvorfor er der behov for den?", "6. Hvor meget koster den, og hvem betaler?"),
    ("Who is the contact person?", "What do you want to buy?", "Where will it be used?",
     "When must it be in operation?", "Why is it needed?", "How much does it cost?"),
])
def test_a_form_that_asks_whole_questions_on_their_own_lines(
        rules: Rules, questions: tuple[str, ...]) -> None:
    answers = ("Jonas Vestergaard, pædagogisk leder", "En forældre-app",
               "Dagtilbud, Børn og Skole", "1. januar 2027", "Den gamle app udfases",
               "120.000 kr. årligt")
    body = "Kære råd\n\n" + "".join(f"{q}\n\n{a}.\n\n" for q, a in zip(questions, answers,
                                                                       strict=True))
    reading = read_brief(parse(_mail(body + "Venlig hilsen\nJonas\n")), rules,
                         date(2026, 11, 27))
    assert not reading.from_prose
    for qid, answer in zip(("who", "what", "where", "when", "why", "cost"), answers,
                           strict=True):
        assert (reading.answers[qid] or "").rstrip(".") == answer, qid


def test_an_english_writer_who_introduces_herself_is_the_contact(rules: Rules) -> None:
    body = ("Hi,\n\nI'm Sara Lindqvist, team lead in HR, and I'm the contact for this request. "
            "The users will be the 9 HR partners.\n\nWe would like to buy a new onboarding "
            "module for the HR system, because new staff today get their papers by hand.\n\n"
            "It should be up and running by 1 March 2027. The licence costs DKK 40,000 a "
            "year, paid by HR.\n\nBest regards\nSara\n")
    reading = read_brief(parse(_mail(body)), rules, date(2026, 11, 27))
    assert "Sara Lindqvist" in (reading.answers["who"] or "")
