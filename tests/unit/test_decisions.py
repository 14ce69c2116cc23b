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
