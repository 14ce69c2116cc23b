"""Working days and the council's calendar (Copenhagen time, Danish public holidays)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache

import holidays

from mailbot.clock import COPENHAGEN


@lru_cache(maxsize=32)
def danish_holidays(year: int) -> frozenset[date]:
    """Public holidays from the `holidays` package (Store Bededag is gone from 2024)."""
    return frozenset(holidays.country_holidays("DK", years=year))


def is_working_day(day: date) -> bool:
    return day.weekday() < 5 and day not in danish_holidays(day.year)


def add_working_days(start: datetime, days: int) -> datetime:
    """The same local clock time `days` working days later (weekends and holidays skipped)."""
    local = start.astimezone(COPENHAGEN)
    day = local.date()
    remaining = days
    while remaining > 0:
        day += timedelta(days=1)
        if is_working_day(day):
            remaining -= 1
    return datetime.combine(day, local.timetz().replace(tzinfo=None), COPENHAGEN)
