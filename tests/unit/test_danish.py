from __future__ import annotations

from datetime import date

import pytest

from mailbot.reading.danish import normalise_when, parse_amounts, payer
from mailbot.rules import Rules

TODAY = date(2026, 11, 27)


@pytest.mark.parametrize(("text", "start", "end", "precision"), [
    ("1. marts 2027", "2027-03-01", "2027-03-01", "day"),
    ("15/3-2027", "2027-03-15", "2027-03-15", "day"),
    ("15.03.2027", "2027-03-15", "2027-03-15", "day"),
    ("uge 12 2027", "2027-03-22", "2027-03-28", "week"),
    ("uge 53 2026", "2026-12-28", "2027-01-03", "week"),
    ("Q3 2027", "2027-07-01", "2027-09-30", "quarter"),
    ("3. kvartal 2027", "2027-07-01", "2027-09-30", "quarter"),
    ("primo 2027", "2027-01-01", "2027-04-30", "third"),
    ("medio 2027", "2027-05-01", "2027-08-31", "third"),
    ("ultimo 2027", "2027-09-01", "2027-12-31", "third"),
    ("inden sommerferien 2027", "2027-01-01", "2027-06-30", "season"),
    ("maj 2027", "2027-05-01", "2027-05-31", "month"),
    ("i løbet af 2027", "2027-01-01", "2027-12-31", "year"),
    ("Kontrakt i maj 2026, test i efteråret og i drift senest 15. januar 2027",
     "2027-01-15", "2027-01-15", "day"),
    ("Indkøb i 2. kvartal 2026 og ibrugtagning senest 1. oktober 2026",
     "2026-10-01", "2026-10-01", "day"),
])
def test_when_is_normalised(rules: Rules, text: str, start: str, end: str,
                            precision: str) -> None:
    when = normalise_when(text, TODAY, rules.signals)
    assert when is not None
    assert (when.start.isoformat(), when.end.isoformat(), when.precision) == (start, end,
                                                                               precision)


@pytest.mark.parametrize(("text", "start", "end", "precision"), [
    # a relative year: "næste år" written in 2026 is 2027, not this year's week 12
    ("Vi vil gerne starte op i uge 12 næste år, når vintertjenesten er slut.",
     "2027-03-22", "2027-03-28", "week"),
    ("We plan to go live in week 10 next year.", "2027-03-08", "2027-03-14", "week"),
    ("I drift i år, senest 15. december.", "2026-12-15", "2026-12-15", "day"),
    # after the summer holidays is August-September of the year named, not the whole year
    ("Efter sommerferien 2026, inden vintersæsonen.", "2026-08-01", "2026-09-30", "season"),
    ("Fra skolestart efter sommerferien 2027.", "2027-08-01", "2027-09-30", "season"),
    ("Go live after the summer holidays 2027.", "2027-08-01", "2027-09-30", "season"),
    # without any year, a season or a date already past is the next one (written 27 Nov 2026)
    ("I drift i foråret.", "2027-03-01", "2027-05-31", "season"),
    ("In use in the spring.", "2027-03-01", "2027-05-31", "season"),
    ("I drift efter sommerferien.", "2027-08-01", "2027-09-30", "season"),
    ("Klar senest 1. maj.", "2027-05-01", "2027-05-01", "day"),
    ("Senest uge 3.", "2027-01-18", "2027-01-24", "week"),
    ("I drift 15. december.", "2026-12-15", "2026-12-15", "day"),
])
def test_when_takes_the_year_the_writer_means(rules: Rules, text: str, start: str, end: str,
                                              precision: str) -> None:
    when = normalise_when(text, TODAY, rules.signals)
    assert when is not None
    assert (when.start.isoformat(), when.end.isoformat(), when.precision) == (start, end,
                                                                               precision)


def test_when_without_a_date_is_none(rules: Rules) -> None:
    assert normalise_when("så hurtigt som muligt", TODAY, rules.signals) is None


@pytest.mark.parametrize(("text", "expected"), [
    ("250.000 kr.", [(250_000, "one_off", "unknown")]),
    ("kr. 1,2 mio.", [(1_200_000, "one_off", "unknown")]),
    ("DKK 450.000 ekskl. moms", [(450_000, "one_off", "excl")]),
    ("35 t.kr. årligt", [(35_000, "yearly", "unknown")]),
    ("125.000 kr. inkl. moms og drift 35 t.kr. årligt",
     [(125_000, "one_off", "incl"), (35_000, "yearly", "unknown")]),
    ("kr. 2,4 mio. over 4 år", [(2_400_000, "total_over_period", "unknown")]),
    ("DKK 150,000 one-off", [(150_000, "one_off", "unknown")]),
    ("ca. 1.200 timer om året og 5 %", []),
    # every way a monthly or yearly price is written is recurring, never one-off
    ("150.000 kr. i etablering og 4.000 kr. pr. måned",
     [(150_000, "one_off", "unknown"), (4_000, "monthly", "unknown")]),
    ("4.000 kr. per måned", [(4_000, "monthly", "unknown")]),
    ("500 kr./md.", [(500, "monthly", "unknown")]),
    ("DKK 3,000 a month", [(3_000, "monthly", "unknown")]),
    ("45.000 kr. pr. år", [(45_000, "yearly", "unknown")]),
    ("12.000 kr./år", [(12_000, "yearly", "unknown")]),
    ("10.000 kr. pr. kvartal", [(40_000, "yearly", "unknown")]),
])
def test_amounts_in_dkk(text: str, expected: list[tuple[int, str, str]]) -> None:
    assert [(a.dkk, a.recurrence, a.vat) for a in parse_amounts(text)] == expected


@pytest.mark.parametrize(("text", "who"), [
    ("50.000 kr., betales af Borgerservice.", "Borgerservice"),
    ("Finansieres af den centrale IT-pulje, da modulet bruges i hele kommunen.",
     "den centrale IT-pulje"),
    ("Udgiften afholdes af Servicecentrets eget budget.", "Servicecentrets eget budget"),
    ("DKK 90,000, paid by HR.", "HR"),
    ("90.000 kr.", None),
])
def test_who_pays(rules: Rules, text: str, who: str | None) -> None:
    assert payer(text, rules.signals) == who
