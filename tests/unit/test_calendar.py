from __future__ import annotations

from datetime import date, datetime

import pytest

from mailbot.clock import COPENHAGEN
from mailbot.config import CouncilSettings
from mailbot.council.meetings import CouncilCalendar, add_working_days, is_working_day


@pytest.mark.parametrize(("day", "working"), [
    (date(2027, 5, 17), False),  # Whit Monday
    (date(2027, 3, 29), False),  # Easter Monday
    (date(2026, 12, 25), False),  # Christmas Day
    (date(2026, 12, 26), False),  # Saturday and 2nd Christmas Day
    (date(2024, 4, 26), True),  # Store Bededag is abolished from 2024
    (date(2023, 5, 5), False),  # ... but was a holiday in 2023
    (date(2027, 5, 18), True),
])
def test_danish_working_days(day: date, working: bool) -> None:
    assert is_working_day(day) is working


def test_three_working_days_after_a_friday_before_whit_monday() -> None:
    friday = datetime(2027, 5, 14, 10, 0, tzinfo=COPENHAGEN)
    assert add_working_days(friday, 3) == datetime(2027, 5, 20, 10, 0, tzinfo=COPENHAGEN)


@pytest.mark.parametrize(("now", "deadline", "meeting"), [
    # Whit Monday 17 May 2027: the deadline for the meeting of 24 May moves back to Friday
    (datetime(2027, 5, 14, 11, 0), datetime(2027, 5, 14, 12, 0), date(2027, 5, 24)),
    (datetime(2027, 5, 14, 12, 1), datetime(2027, 5, 24, 12, 0), date(2027, 5, 31)),
    (datetime(2027, 5, 24, 11, 59), datetime(2027, 5, 24, 12, 0), date(2027, 5, 31)),
    (datetime(2027, 5, 24, 12, 1), datetime(2027, 5, 31, 12, 0), date(2027, 6, 7)),
])
def test_next_deadline_is_noon_a_week_before_the_meeting_on_a_working_day(
        now: datetime, deadline: datetime, meeting: date) -> None:
    found = CouncilCalendar(CouncilSettings()).next_meeting(now.replace(tzinfo=COPENHAGEN))
    assert found.deadline == deadline.replace(tzinfo=COPENHAGEN) and found.day == meeting
