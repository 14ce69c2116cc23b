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


MEETING_WEEKDAY = 0  # Monday
DEADLINE_DAYS_BEFORE = 7
DEADLINE_HOUR = 12


def next_deadline(now: datetime) -> tuple[datetime, date]:
    """The next agenda deadline at or after `now` and the meeting it is for: meetings on
    Mondays, items ready by 12:00 on the Monday the week before (the council's own rule)."""
    local = now.astimezone(COPENHAGEN)
    day = local.date()
    while True:
        if day.weekday() == MEETING_WEEKDAY:
            deadline = datetime(day.year, day.month, day.day, DEADLINE_HOUR, tzinfo=COPENHAGEN)
            if deadline >= local:
                return deadline, day + timedelta(days=DEADLINE_DAYS_BEFORE)
        day += timedelta(days=1)
