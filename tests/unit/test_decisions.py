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
