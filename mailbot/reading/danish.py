"""Danish (and English) dates and amounts, normalised for the agenda; the text is kept.

Month names and number formats are facts of the languages, so they live here; phrases a
municipality may word differently (periods such as "inden sommerferien", who pays) are rules.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, replace
from datetime import date, timedelta

from mailbot.rules import Signals
from mailbot.vocabulary import AmountDict, WhenDict

MONTHS = {
    "januar": 1, "jan": 1, "january": 1, "februar": 2, "feb": 2, "february": 2,
    "marts": 3, "mar": 3, "march": 3, "april": 4, "apr": 4, "maj": 5, "may": 5,
    "juni": 6, "jun": 6, "june": 6, "juli": 7, "jul": 7, "july": 7, "august": 8, "aug": 8,
    "september": 9, "sep": 9, "sept": 9, "oktober": 10, "okt": 10, "october": 10, "oct": 10,
    "november": 11, "nov": 11, "december": 12, "dec": 12,
}
_MONTH = "|".join(sorted(MONTHS, key=len, reverse=True))
_YEAR = r"(?P<year>20\d{2})"


@dataclass(frozen=True)
class When:
    start: date
    end: date
    precision: str  # day | week | month | quarter | third | season | year
    text: str

    def as_dict(self) -> WhenDict:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(),
                "precision": self.precision, "text": self.text}


def _month_range(year: int, first: int, last: int) -> tuple[date, date]:
    return date(year, first, 1), date(year, last, calendar.monthrange(year, last)[1])


def _default_year(text: str, today: date) -> tuple[int, bool]:
    """The year of the expressions that name none ("uge 12", "i foråret"), and whether the
    text gives it: a year it names, or "næste år" / "next year" (today's year + 1), or "i år" /
    "this year"."""
    year = _first_year(text)
    if year:
        return year, True
    if _NEXT_YEAR.search(text):
        return today.year + 1, True
    if _THIS_YEAR.search(text):
        return today.year, True
    return today.year, False


_NEXT_YEAR = re.compile(r"\b(næste år|til næste år|det kommende år|next year|the coming year)\b",
                        re.I)
_THIS_YEAR = re.compile(r"\b(i år|this year|later this year|senere i år)\b", re.I)


def _a_year_later(when: When) -> When:
    """The same week, day, month or period one year later."""
    if when.precision == "week":
        week = when.start.isocalendar().week
        try:
            monday = date.fromisocalendar(when.start.year + 1, week, 1)
        except ValueError:
            return when
        return replace(when, start=monday, end=monday + timedelta(days=6))
    return replace(when, start=_next_year(when.start), end=_next_year(when.end))


def _next_year(day: date) -> date:
    last = calendar.monthrange(day.year + 1, day.month)[1]
    return date(day.year + 1, day.month, min(day.day, last))


def _candidates(text: str, today: date, signals: Signals) -> list[tuple[int, When]]:
    """(position, When) for every date expression in the text. An expression without a year,
    in a text that gives none, is the next one from `today` ("i foråret" written in November
    is next spring)."""
    found: list[tuple[int, When]] = []
    default_year, year_given = _default_year(text, today)

    def add(match: re.Match[str], start: date, end: date, precision: str) -> None:
        when = When(start, end, precision, match.group(0).strip())
        if not year_given and not re.search(r"\b20\d{2}\b", match.group(0)) \
                and when.end < today:
            when = _a_year_later(when)
        found.append((match.start(), when))

    for m in re.finditer(rf"\b(?P<day>[0-3]?\d)\.?\s*(?P<month>{_MONTH})\.?(?:\s+{_YEAR})?",
                         text, re.I):
        with_year = int(m.group("year") or default_year)
        try:
            day = date(with_year, MONTHS[m.group("month").lower()], int(m.group("day")))
        except ValueError:
            continue
        add(m, day, day, "day")
    for m in re.finditer(r"\b(?P<day>[0-3]?\d)[./-](?P<month>[01]?\d)[./-](?P<year>20\d{2})\b",
                         text):
        try:
            day = date(int(m.group("year")), int(m.group("month")), int(m.group("day")))
        except ValueError:
            continue
        add(m, day, day, "day")
    for m in re.finditer(rf"\b(?:uge|week)\s+(?P<week>[1-5]?\d)(?:\s*(?:,|i)?\s*{_YEAR})?",
                         text, re.I):
        year, week = int(m.group("year") or default_year), int(m.group("week"))
        try:
            monday = date.fromisocalendar(year, week, 1)
        except ValueError:
            continue
        add(m, monday, monday + timedelta(days=6), "week")
    for m in re.finditer(rf"\b(?:Q(?P<q1>[1-4])|(?P<q2>[1-4])\.\s*kvartal)(?:\s+{_YEAR})?",
                         text, re.I):
        quarter = int(m.group("q1") or m.group("q2"))
        start, end = _month_range(int(m.group("year") or default_year),
                                  3 * quarter - 2, 3 * quarter)
        add(m, start, end, "quarter")
    thirds = {"primo": (1, 4), "medio": (5, 8), "ultimo": (9, 12)}
    for m in re.finditer(rf"\b(?P<part>primo|medio|ultimo)\s+(?:(?P<month>{_MONTH})\s+)?{_YEAR}",
                         text, re.I):
        year = int(m.group("year"))
        if m.group("month"):
            month = MONTHS[m.group("month").lower()]
            last = calendar.monthrange(year, month)[1]
            parts = {"primo": (1, 10), "medio": (11, 20), "ultimo": (21, last)}
            part = parts[m.group("part").lower()]
            add(m, date(year, month, part[0]), date(year, month, part[1]), "day")
            continue
        first, last_month = thirds[m.group("part").lower()]
        start, end = _month_range(year, first, last_month)
        add(m, start, end, "third")
    # (not the month of a whole date: "1. marts 2027", "1 March 2027")
    for m in re.finditer(rf"(?<!\d\.\s)(?<!\d\.)(?<!\d\s)\b(?P<month>{_MONTH})\s+{_YEAR}", text,
                         re.I):
        month = MONTHS[m.group("month").lower()]
        start, end = _month_range(int(m.group("year")), month, month)
        add(m, start, end, "month")
    for period in signals.when_periods:
        for m in period.pattern.finditer(text):
            year = _year_after(text, m.end()) or default_year
            start = date.fromisoformat(f"{year}-{period.start}")
            end = date.fromisoformat(f"{year}-{period.end}")
            add(m, start, end, period.precision)
    covered = [(pos, pos + len(w.text)) for pos, w in found]
    precise = [w for _, w in found]
    for m in re.finditer(rf"\b{_YEAR}\b", text):
        year = int(m.group("year"))
        # a bare year is a candidate only where nothing more precise names that year
        if any(a <= m.start() < b for a, b in covered) or any(w.start.year == year
                                                             for w in precise):
            continue
        start, end = _month_range(year, 1, 12)
        add(m, start, end, "year")
    return found


def date_precisions(text: str, signals: Signals) -> set[str]:
    """How precise the dates in `text` are ("day", "week", … "year"): the prose reader's
    evidence that a sentence says when. The reference day does not matter for that."""
    return {when.precision for _, when in _candidates(text, date(2000, 1, 1), signals)}


# Keyboards and old systems write æ, ø and å in ASCII in two ways ("Hvornaar", "Hvornar").
_ASCII_PAIRS = ({"æ": "ae", "ø": "oe", "å": "aa"}, {"æ": "a", "ø": "o", "å": "a"})


def ascii_spellings(word: str) -> set[str]:
    """`word` and its ASCII spellings: "Hvornår" -> {"Hvornår", "Hvornaar", "Hvornar"}."""
    spellings = {word}
    for pairs in _ASCII_PAIRS:
        folded = word
        for letter, ascii in pairs.items():
            folded = folded.replace(letter, ascii).replace(letter.upper(), ascii.capitalize())
        spellings.add(folded)
    return spellings


def _first_year(text: str) -> int | None:
    match = re.search(r"\b(20\d{2})\b", text)
    return int(match.group(1)) if match else None


def _year_after(text: str, position: int) -> int | None:
    match = re.match(r"\s*(?:i\s+)?(20\d{2})\b", text[position:position + 12])
    return int(match.group(1)) if match else None


_DEADLINE = re.compile(r"\b(senest|deadline|i drift|klar til|ibrugtag\w*|go-live|live|"
                       r"by|no later than|drift fra|idriftsat\w*)\b", re.I)
_PRECISION_ORDER = ["day", "week", "month", "quarter", "third", "season", "year"]


def normalise_when(text: str | None, today: date, signals: Signals) -> When | None:
    """The project's target date or range: the one named as a deadline or go-live, else the
    latest; among expressions at the same place, the most precise."""
    if not text:
        return None
    found = _candidates(text, today, signals)
    if not found:
        return None
    marked = [(pos, w) for pos, w in found if _DEADLINE.search(text[max(0, pos - 40):pos])]
    pool = marked or found
    return max(pool, key=lambda item: (item[1].end, -_PRECISION_ORDER.index(item[1].precision)))[1]


# -- amounts --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Amount:
    dkk: int
    recurrence: str  # one_off | yearly | monthly | total_over_period
    vat: str  # excl | incl | unknown
    text: str
    years: int | None = None

    def as_dict(self) -> AmountDict:
        return {"dkk": self.dkk, "recurrence": self.recurrence, "vat": self.vat,
                "years": self.years, "text": self.text}


_NUMBER = r"\d{1,3}(?:[.\s ]\d{3})+(?:,\d+)?|\d{1,3}(?:,\d{3})+|\d+(?:,\d+)?"
_UNIT = r"mio\.?|millioner|million|mia\.?|t\.\s?kr\.?|tkr\.?|tusind|k\b"
_AMOUNT = re.compile(
    rf"(?P<pre>\bkr\.?|\bdkk)?\s*(?P<num>{_NUMBER})\s*(?P<unit>{_UNIT})?\s*(?P<post>kr\.?|dkk|kroner)?",
    re.I,
)


def _to_number(raw: str) -> float:
    raw = raw.replace(" ", "").replace("\u00a0", "")
    if re.fullmatch(r"\d{1,3}(,\d{3})+", raw):  # English thousands: 150,000
        return float(raw.replace(",", ""))
    return float(raw.replace(".", "").replace(",", "."))


def _multiplier(unit: str) -> int:
    unit = unit.lower().replace(" ", "")
    if unit.startswith(("mio", "million")):
        return 1_000_000
    if unit.startswith("mia"):
        return 1_000_000_000
    if unit.startswith(("t.kr", "tkr", "tusind")) or unit == "k":
        return 1000
    return 1


def parse_amounts(text: str | None) -> list[Amount]:
    if not text:
        return []
    out: list[Amount] = []
    for m in _AMOUNT.finditer(text):
        unit = m.group("unit") or ""
        is_money = bool(m.group("pre") or m.group("post") or unit.lower().startswith(("t.", "tkr")))
        if not is_money:
            continue
        value = round(_to_number(m.group("num")) * _multiplier(unit))
        after = text[m.end():m.end() + 60].lower()
        recurrence, years = "one_off", None
        over = re.match(r"[^.;]*?\b(?:over|for|til|i)\s+(\d+)\s+år", after)
        if re.match(r"\s*(?:i\s+\w+\s+)?(årligt|om året|(pr\.?|per|i) år(et)?\b|årlig|"
                    r"/\s*år\b|a year|per year|per annum|annually|yearly)", after):
            recurrence = "yearly"
        elif re.match(r"\s*(månedligt|om måneden|(pr\.?|per|i) (måned(en)?|md\.?)(?!\w)|"
                      r"/\s*(md|mdr|måned)\b|a month|per month|monthly)", after):
            recurrence = "monthly"
        elif re.match(r"\s*((pr\.?|per|i) kvartal(et)?|kvartalsvis|a quarter|per quarter|"
                      r"quarterly)", after):
            # a quarter's price is a year's price divided by four: counted as four months'
            # worth would be wrong, so it is given as yearly (four times the amount)
            value, recurrence = value * 4, "yearly"
        elif over:
            recurrence, years = "total_over_period", int(over.group(1))
        vat = "unknown"
        window = text[m.end():m.end() + 40].lower()
        if re.search(r"ekskl\.?|eksklusiv|ex\.? moms|excl\.?|excluding", window):
            vat = "excl"
        elif re.search(r"inkl\.?\s*moms|inklusiv moms|incl\.? vat|including vat", window):
            vat = "incl"
        out.append(Amount(value, recurrence, vat, m.group(0).strip(), years))
    return out


def total_cost(amounts: list[Amount]) -> int:
    """One-off plus one year of running costs: what the threshold is compared with."""
    total = 0
    for amount in amounts:
        total += amount.dkk * (12 if amount.recurrence == "monthly" else 1)
    return total


def payer(text: str | None, signals: Signals) -> str | None:
    if not text:
        return None
    for phrase in signals.payer_phrases:
        match = re.search(rf"{re.escape(phrase)}\s+(?P<who>[^.\n;]+)", text, re.I)
        if match:
            # "..., da modulet bruges i hele kommunen" gives the reason, not the payer
            who = re.split(r",\s*(?:da|fordi|som|så|idet|since|because)\b", match.group("who"))[0]
            return who.strip().rstrip(",")
    return None
