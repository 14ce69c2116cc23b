"""The secretary's decisions in free Danish, a list or a small HTML table."""

from __future__ import annotations

from mailbot.intake.parse import html_to_text
from mailbot.reading.decisions import applicant_command, read_decisions
from mailbot.rules import Rules


def test_free_wording_and_one_line_each(rules: Rules) -> None:
    found = read_decisions(
        "ITP-2026-0042: Godkendt\nITP-2026-0043 udsat til næste møde\n"
        "ITP-2026-0044 godkendt – sendes videre til SIT\nITP-2026-0045: Ikke godkendt\n"
        "ITP-2026-0046: Afvist\n\nVenlig hilsen\nBirgitte\n\n"
        "> ITP-2026-0047: Godkendt (quoted agenda, ignored)", rules)
    assert found.decisions == {"ITP-2026-0042": "approved", "ITP-2026-0043": "postponed",
                               "ITP-2026-0044": "forwarded", "ITP-2026-0045": "rejected",
                               "ITP-2026-0046": "rejected"}
    assert found.unmapped == []


def test_html_table_of_decisions(rules: Rules) -> None:
    table = html_to_text("<table><tr><td>ITP-2026-0042</td><td>Godkendt</td></tr>"
                         "<tr><td>ITP-2026-0043</td><td>Udsat</td></tr></table>")
    assert read_decisions(table, rules).decisions == {"ITP-2026-0042": "approved",
                                                      "ITP-2026-0043": "postponed"}


def test_unknown_lines_are_listed_not_guessed(rules: Rules) -> None:
    found = read_decisions("ITP-2026-0042: vi vender tilbage\ntilføj ITP-2026-0050", rules)
    assert found.decisions == {} and found.unmapped == ["ITP-2026-0042: vi vender tilbage"]
    assert found.additions == ["ITP-2026-0050"]


def test_applicant_commands(rules: Rules) -> None:
    assert applicant_command("Udsæt\n\nMvh Mette", rules) == "postpone"
    assert applicant_command("træk tilbage", rules) == "withdraw"
    assert applicant_command("Her er business casen", rules) is None


# Several cases decided in one sentence or line (issue 11, item 4): each variant is the text
# of a secretary's reply and the decisions a careful reader takes from it.
SHARED_DECISIONS = [
    ("ITP-2026-0045 og ITP-2026-0046 blev begge udsat.",
     {"ITP-2026-0045": "postponed", "ITP-2026-0046": "postponed"}),
    ("ITP-2026-0041, ITP-2026-0042 og ITP-2026-0043 godkendt",
     {"ITP-2026-0041": "approved", "ITP-2026-0042": "approved", "ITP-2026-0043": "approved"}),
    ("Godkendt: ITP-2026-0041 og ITP-2026-0042. Afvist: ITP-2026-0043.",
     {"ITP-2026-0041": "approved", "ITP-2026-0042": "approved", "ITP-2026-0043": "rejected"}),
    ("Rådet besluttede at ITP-2026-0041 Ruteplanlægning og ITP-2026-0042 Booking af "
     "mødelokaler ikke godkendes i denne form; ITP-2026-0043 blev godkendt.",
     {"ITP-2026-0041": "rejected", "ITP-2026-0042": "rejected",
      "ITP-2026-0043": "approved"}),
    ("ITP-2026-0041 & ITP-2026-0042 were both approved, ITP-2026-0043 postponed.",
     {"ITP-2026-0041": "approved", "ITP-2026-0042": "approved",
      "ITP-2026-0043": "postponed"}),
    ("ITP-2026-0041 og ITP-2026-0042 sendes videre til SIT.",
     {"ITP-2026-0041": "forwarded", "ITP-2026-0042": "forwarded"}),
    ("Godkendt:\n- ITP-2026-0041\n- ITP-2026-0042\n\nUdsat:\n- ITP-2026-0043\n",
     {"ITP-2026-0041": "approved", "ITP-2026-0042": "approved", "ITP-2026-0043": "postponed"}),
    ("ITP-2026-0041 godkendt. ITP-2026-0042 afvist. ITP-2026-0043 udsat.",
     {"ITP-2026-0041": "approved", "ITP-2026-0042": "rejected", "ITP-2026-0043": "postponed"}),
    ("Sagerne ITP-2026-0041, ITP-2026-0042, ITP-2026-0043 blev alle afvist.",
     {"ITP-2026-0041": "rejected", "ITP-2026-0042": "rejected", "ITP-2026-0043": "rejected"}),
]


def test_one_sentence_decides_several_cases(rules: Rules) -> None:
    for text, expected in SHARED_DECISIONS:
        found = read_decisions(text, rules)
        assert found.decisions == expected, text


def test_negation_in_a_shared_sentence(rules: Rules) -> None:
    found = read_decisions("ITP-2026-0041 og ITP-2026-0042 blev ikke godkendt.", rules)
    assert found.decisions == {"ITP-2026-0041": "rejected", "ITP-2026-0042": "rejected"}


def test_shared_text_is_kept_for_each_case(rules: Rules) -> None:
    found = read_decisions("ITP-2026-0045 og ITP-2026-0046 blev begge udsat.", rules)
    assert found.texts["ITP-2026-0045"] == found.texts["ITP-2026-0046"] == \
        "ITP-2026-0045 og ITP-2026-0046 blev begge udsat."


def test_a_case_only_for_information_is_not_decided(rules: Rules) -> None:
    variants = [
        "ITP-2026-0041: Godkendt.\nITP-2026-0047 til orientering.",
        "ITP-2026-0041 godkendt. Til orientering: ITP-2026-0047 blev godkendt af SIT i januar.",
        "ITP-2026-0041: Godkendt\n\nTil orientering:\n- ITP-2026-0047\n- ITP-2026-0048\n",
        "ITP-2026-0041 approved. ITP-2026-0047 for information only (approved by the board).",
        "ITP-2026-0041: Godkendt.\nRådet blev orienteret om ITP-2026-0047.",
    ]
    for text in variants:
        found = read_decisions(text, rules)
        assert found.decisions == {"ITP-2026-0041": "approved"}, text
        assert "ITP-2026-0047" in found.informed and found.unmapped == [], text


def test_information_later_in_the_mail_does_not_undo_a_decision(rules: Rules) -> None:
    found = read_decisions("ITP-2026-0041: Godkendt.\n\nDe øvrige punkter var til "
                           "orientering.", rules)
    assert found.decisions == {"ITP-2026-0041": "approved"}


def test_several_additions_in_one_line(rules: Rules) -> None:
    found = read_decisions("tilføj ITP-2026-0050 og ITP-2026-0051", rules)
    assert found.additions == ["ITP-2026-0050", "ITP-2026-0051"] and found.decisions == {}


def test_e2e_wording_still_reads(rules: Rules) -> None:
    text = ("Hej alle\n\nRådet traf følgende beslutninger:\n\n"
            "ITP-2027-0001 A: Godkendt.\n\n"
            "ITP-2027-0002 B: Udsat. Borgerservice undersøger leverandøren, og sagen kommer\n"
            "på igen på næste møde.\n\n"
            "ITP-2027-0003 C: Godkendt. Da projektet er strategisk, sendes det videre til SIT.\n\n"
            "ITP-2027-0004 D: Vi snakkede om det.\n")
    found = read_decisions(text, rules)
    assert found.decisions == {"ITP-2027-0001": "approved", "ITP-2027-0002": "postponed",
                               "ITP-2027-0003": "forwarded"}
    assert found.unmapped == ["ITP-2027-0004 D: Vi snakkede om det."]


# Every verb form and clause (issue 11, item 4, second round): present, past, participle,
# infinitive after "besluttede at" / "vedtog at" / "decided to", passive; clauses cut at
# ", mens" / ", men" / ", hvorimod" / "; " / ", whereas" / ", but"; our own wording, Danish and
# English.
VERB_FORMS_AND_CLAUSES = [
    ("Rådet godkendte ITP-2026-0061 og ITP-2026-0062, mens ITP-2026-0063 blev afvist.",
     {"ITP-2026-0061": "approved", "ITP-2026-0062": "approved",
      "ITP-2026-0063": "rejected"}),
    ("Rådet afviste ITP-2026-0061, men godkendte ITP-2026-0062.",
     {"ITP-2026-0061": "rejected", "ITP-2026-0062": "approved"}),
    ("Rådet besluttede at godkende ITP-2026-0061 og at afvise ITP-2026-0062.",
     {"ITP-2026-0061": "approved", "ITP-2026-0062": "rejected"}),
    ("Man vedtog at udsætte ITP-2026-0061 og ITP-2026-0062 til næste møde og at sende "
     "ITP-2026-0063 videre til SIT.",
     {"ITP-2026-0061": "postponed", "ITP-2026-0062": "postponed",
      "ITP-2026-0063": "forwarded"}),
    ("ITP-2026-0061 godkendes; ITP-2026-0062 afvises; ITP-2026-0063 udsættes.",
     {"ITP-2026-0061": "approved", "ITP-2026-0062": "rejected",
      "ITP-2026-0063": "postponed"}),
    ("Rådet udsatte ITP-2026-0061, hvorimod ITP-2026-0062 og ITP-2026-0063 blev godkendt.",
     {"ITP-2026-0061": "postponed", "ITP-2026-0062": "approved",
      "ITP-2026-0063": "approved"}),
    ("Rådet godkender ITP-2026-0061. Rådet godkendte ikke ITP-2026-0062.",
     {"ITP-2026-0061": "approved", "ITP-2026-0062": "rejected"}),
    ("Indstillingen om ITP-2026-0061 blev tiltrådt, og ITP-2026-0062 blev forkastet.",
     {"ITP-2026-0061": "approved", "ITP-2026-0062": "rejected"}),
    ("The council approved ITP-2026-0061 and ITP-2026-0062, whereas ITP-2026-0063 was "
     "rejected.",
     {"ITP-2026-0061": "approved", "ITP-2026-0062": "approved",
      "ITP-2026-0063": "rejected"}),
    ("The council decided to approve ITP-2026-0061 and to reject ITP-2026-0062.",
     {"ITP-2026-0061": "approved", "ITP-2026-0062": "rejected"}),
    ("We approve ITP-2026-0061, but ITP-2026-0062 is deferred to the next meeting.",
     {"ITP-2026-0061": "approved", "ITP-2026-0062": "postponed"}),
    ("The board rejects ITP-2026-0061; ITP-2026-0062 was forwarded to the strategic board.",
     {"ITP-2026-0061": "rejected", "ITP-2026-0062": "forwarded"}),
    ("It was decided to forward ITP-2026-0061 to SIT and to postpone ITP-2026-0062.",
     {"ITP-2026-0061": "forwarded", "ITP-2026-0062": "postponed"}),
    ("The council did not approve ITP-2026-0061, but approved ITP-2026-0062.",
     {"ITP-2026-0061": "rejected", "ITP-2026-0062": "approved"}),
    ("ITP-2026-0061 blev ikke godkendt, mens ITP-2026-0062 blev sendt videre til den "
     "strategiske styregruppe.",
     {"ITP-2026-0061": "rejected", "ITP-2026-0062": "forwarded"}),
]


def test_every_verb_form_and_clause(rules: Rules) -> None:
    for text, expected in VERB_FORMS_AND_CLAUSES:
        found = read_decisions(text, rules)
        assert found.decisions == expected, text
        assert found.unmapped == [] and found.informed == [], text


# An aside in parentheses or between dashes is not the sentence: "til orientering" inside it
# does not make the case informational, and its words do not hide the decision around it.
ASIDES = [
    ("ITP-2026-0064 (til orientering: leverandøren er skiftet) blev godkendt.",
     {"ITP-2026-0064": "approved"}),
    ("ITP-2026-0064 – til orientering er leverandøren ny – blev udsat.",
     {"ITP-2026-0064": "postponed"}),
    ("ITP-2026-0064 (for information: the supplier has changed) was approved.",
     {"ITP-2026-0064": "approved"}),
    ("Rådet godkendte ITP-2026-0064 (som også var til orientering på sidste møde) og afviste "
     "ITP-2026-0065.",
     {"ITP-2026-0064": "approved", "ITP-2026-0065": "rejected"}),
    ("ITP-2026-0064 blev godkendt og taget til orientering.", {"ITP-2026-0064": "approved"}),
    ("ITP-2026-0064 Booking (godkendt)", {"ITP-2026-0064": "approved"}),
]


def test_an_aside_does_not_swallow_the_decision(rules: Rules) -> None:
    for text, expected in ASIDES:
        found = read_decisions(text, rules)
        assert found.decisions == expected, text
        assert found.unmapped == [] and found.informed == [], text


def test_an_aside_alone_that_informs_is_information(rules: Rules) -> None:
    for text in ("ITP-2026-0064 (til orientering).",
                 "ITP-2026-0064 (til orientering: SIT har godkendt den i januar).",
                 "ITP-2026-0064 til orientering – SIT har godkendt den –."):
        found = read_decisions(text, rules)
        assert found.decisions == {} and found.unmapped == [], text
        assert found.informed == ["ITP-2026-0064"], text


def test_nouns_are_not_decisions(rules: Rules) -> None:
    found = read_decisions("ITP-2026-0066 sendes til godkendelse senere.\n"
                           "ITP-2026-0067 is up for approval.", rules)
    assert found.decisions == {}
    assert found.unmapped == ["ITP-2026-0066 sendes til godkendelse senere.",
                              "ITP-2026-0067 is up for approval."]


def test_a_case_named_in_a_decision_line_is_never_dropped(rules: Rules) -> None:
    """A reference whose decision cannot be read is listed back, the others still count."""
    cases = [
        ("Rådet drøftede ITP-2026-0068 og godkendte ITP-2026-0069.",
         {"ITP-2026-0069": "approved"}),
        ("ITP-2026-0068 og ITP-2026-0070 blev drøftet; ITP-2026-0069 blev godkendt.",
         {"ITP-2026-0069": "approved"}),
        ("ITP-2026-0068 (se bilag) blev drøftet, mens ITP-2026-0069 blev udsat.",
         {"ITP-2026-0069": "postponed"}),
        # a comma splice with a decision on each side: whose is which is not guessed
        ("Rådet godkendte ITP-2026-0068, ITP-2026-0070 blev afvist. ITP-2026-0069 udsat.",
         {"ITP-2026-0069": "postponed"}),
        ("The council discussed ITP-2026-0068 and approved ITP-2026-0069.",
         {"ITP-2026-0069": "approved"}),
    ]
    for text, expected in cases:
        found = read_decisions(text, rules)
        assert found.decisions == expected, text
        assert len(found.unmapped) == 1 and "ITP-2026-0068" in found.unmapped[0], text


def test_two_different_decisions_for_one_case_go_back(rules: Rules) -> None:
    found = read_decisions("ITP-2026-0071 blev godkendt.\nITP-2026-0071 blev afvist.", rules)
    assert found.decisions == {}
    assert found.unmapped == ["ITP-2026-0071 blev godkendt.", "ITP-2026-0071 blev afvist."]
    found = read_decisions("ITP-2026-0071 blev godkendt.\nITP-2026-0071 sendes videre til SIT.",
                           rules)
    assert found.decisions == {"ITP-2026-0071": "forwarded"} and found.unmapped == []


def test_information_first_then_decided_is_decided(rules: Rules) -> None:
    found = read_decisions("ITP-2026-0072 til orientering.\nITP-2026-0072 blev dog godkendt.",
                           rules)
    assert found.decisions == {"ITP-2026-0072": "approved"} and found.informed == []


def test_verb_first_prose_in_html(rules: Rules) -> None:
    text = html_to_text("<p>Hej</p><p>Rådet besluttede at <b>godkende</b> ITP-2026-0073 og at "
                        "<b>afvise</b> ITP-2026-0074, mens ITP-2026-0075 "
                        "(til orientering: ny leverandør) blev udsat.</p>")
    found = read_decisions(text, rules)
    assert found.decisions == {"ITP-2026-0073": "approved", "ITP-2026-0074": "rejected",
                               "ITP-2026-0075": "postponed"}


# Idioms the council's secretary writes instead of the verbs (second trial, unseen mail)
IDIOMS = [
    ("ITP-2026-0162 fik afslag, fordi driftsaftalen mangler.", {"ITP-2026-0162": "rejected"}),
    ("- ITP-2026-0192: Fik grønt lys.", {"ITP-2026-0192": "approved"}),
    ("ITP-2026-0193 har fået grønt lys af rådet.", {"ITP-2026-0193": "approved"}),
    ("ITP-2026-0171 and ITP-2026-0172 were put off until the business cases are ready.",
     {"ITP-2026-0171": "postponed", "ITP-2026-0172": "postponed"}),
    ("The council gave ITP-2026-0173 the green light.", {"ITP-2026-0173": "approved"}),
    ("Rådet gav ITP-2026-0174 afslag.", {"ITP-2026-0174": "rejected"}),
]


def test_idioms_decide(rules: Rules) -> None:
    for text, expected in IDIOMS:
        found = read_decisions(text, rules)
        assert found.decisions == expected, text
        assert found.unmapped == [], text
