"""The council's calendar, the only one: meetings and their agenda deadlines from `[council]`,
working days (weekends and Danish public holidays skipped), and how dates are written.

Rules: meetings on the configured weekday, items ready by `deadline_time` on the day
`deadline_days_before` before (IT-Projektrådet: 12:00 on the Monday the week before); public
holidays from the `holidays` package."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import TypedDict
from zoneinfo import ZoneInfo

import holidays

from mailbot.clock import COPENHAGEN
from mailbot.config import CouncilSettings


@lru_cache(maxsize=32)
def danish_holidays(year: int) -> frozenset[date]:
    """Public holidays from the `holidays` package (Store Bededag is gone from 2024)."""
    return frozenset(holidays.country_holidays("DK", years=year))


def is_working_day(day: date) -> bool:
    """Monday to Friday and not a Danish public holiday."""
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


# -- the council's calendar -------------------------------------------------------------------
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True)
class Meeting:
    day: date
    starts: datetime
    deadline: datetime
    note: str = ""  # why it is not on its usual day, if so


class CouncilCalendar:
    """Meetings and their agenda deadlines from `[council]`. Pure: no clock, no database."""

    def __init__(self, settings: CouncilSettings) -> None:
        self.settings = settings
        self.zone = ZoneInfo(settings.timezone)
        self.weekday = WEEKDAYS.index(settings.meeting_weekday)
        self.breaks = [_period(text) for text in settings.no_meeting_periods]
        self.extra = {date.fromisoformat(text) for text in settings.extra_meetings}

    def _at(self, day: date, hhmm: str) -> datetime:
        hour, minute = (int(part) for part in hhmm.split(":"))
        return datetime(day.year, day.month, day.day, hour, minute, tzinfo=self.zone)

    def _in_break(self, day: date) -> bool:
        return any(start <= day <= end for start, end in self.breaks)

    def _meeting(self, usual: date, extra: bool = False) -> Meeting | None:
        day, note = usual, ""
        if not is_working_day(day) and not extra:
            if self.settings.holiday_policy == "skip":
                return None
            while not is_working_day(day):
                day += timedelta(days=1)
            note = f"flyttet fra {usual.isoformat()} (helligdag)"
        if self._in_break(day) and not extra:
            return None
        deadline_day = usual - timedelta(days=self.settings.deadline_days_before)
        while not is_working_day(deadline_day):
            deadline_day -= timedelta(days=1)  # never later than the rule says
        return Meeting(day, self._at(day, self.settings.meeting_time),
                       self._at(deadline_day, self.settings.deadline_time), note)

    def meetings(self, start: date, end: date) -> list[Meeting]:
        """Every meeting whose day lies in [start, end], in order."""
        found: dict[date, Meeting] = {}
        day = start - timedelta(days=7)  # a holiday may move a meeting into the range
        while day <= end:
            if day.weekday() == self.weekday:
                meeting = self._meeting(day)
                if meeting is not None and start <= meeting.day <= end:
                    found[meeting.day] = meeting
            day += timedelta(days=1)
        for extra in self.extra:
            meeting = self._meeting(extra, extra=True) if start <= extra <= end else None
            if meeting is not None:
                found[extra] = meeting
        return [found[d] for d in sorted(found)]

    def next_meeting(self, ready_at: datetime) -> Meeting:
        """The first meeting whose deadline is at or after `ready_at`."""
        day = ready_at.astimezone(self.zone).date()
        for meeting in self.meetings(day, day + timedelta(days=400)):
            if meeting.deadline >= ready_at:
                return meeting
        raise ValueError("no council meeting within 400 days: check [council] no_meeting_periods")

    def upcoming(self, now: datetime) -> Meeting:
        """The first meeting that has not started at `now`, whatever its deadline."""
        day = now.astimezone(self.zone).date()
        for meeting in self.meetings(day, day + timedelta(days=400)):
            if meeting.starts > now:
                return meeting
        raise ValueError("no council meeting within 400 days: check [council] no_meeting_periods")

    def meeting_on(self, day: date) -> Meeting | None:
        return next(iter(self.meetings(day, day)), None)


def _period(text: str) -> tuple[date, date]:
    first, _, last = text.partition("..")
    return date.fromisoformat(first.strip()), date.fromisoformat((last or first).strip())


DANISH_MONTHS = ("januar", "februar", "marts", "april", "maj", "juni", "juli", "august",
                 "september", "oktober", "november", "december")
DANISH_WEEKDAYS = ("mandag", "tirsdag", "onsdag", "torsdag", "fredag", "lørdag", "søndag")


def danish_date(day: date) -> str:
    """`2. marts 2026`."""
    return f"{day.day}. {DANISH_MONTHS[day.month - 1]} {day.year}"


class MeetingTexts(TypedDict):
    """A meeting as the mails write it: `meeting` "8. marts 2027", `meeting_en` "2027-03-08",
    `deadline` "mandag 1. marts 2027 kl. 12.00", `deadline_en` "Monday 2027-03-01 at 12:00",
    `starts` "09.00"."""

    meeting: str
    meeting_en: str
    deadline: str
    deadline_en: str
    starts: str


def meeting_texts(meeting: Meeting) -> MeetingTexts:
    """The meeting and its deadline in the applicant's mail, in Danish and English."""
    deadline = meeting.deadline
    return MeetingTexts(
        meeting=danish_date(meeting.day),
        meeting_en=meeting.day.isoformat(),
        deadline=f"{DANISH_WEEKDAYS[deadline.weekday()]} {danish_date(deadline.date())} "
                 f"kl. {deadline:%H.%M}",
        deadline_en=f"{WEEKDAYS[deadline.weekday()].capitalize()} "
                    f"{deadline.date().isoformat()} at {deadline:%H:%M}",
        starts=f"{meeting.starts:%H.%M}",
    )
