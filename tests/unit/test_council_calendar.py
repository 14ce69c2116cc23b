"""The council's calendar 2026-2028 against the real Danish holidays."""

from __future__ import annotations

from datetime import date, datetime

from mailbot.clock import COPENHAGEN
from mailbot.config import CouncilSettings
from mailbot.council.meetings import CouncilCalendar


def meetings(year: int, **settings: object) -> dict[date, object]:
    calendar = CouncilCalendar(CouncilSettings(**settings))  # type: ignore[arg-type]
    return {m.day: m for m in calendar.meetings(date(year, 1, 1), date(year, 12, 31))}


def test_easter_and_whit_monday_meetings_move_to_tuesday() -> None:
    for year, easter_monday, whit_monday in ((2026, date(2026, 4, 6), date(2026, 5, 25)),
                                             (2027, date(2027, 3, 29), date(2027, 5, 17)),
                                             (2028, date(2028, 4, 17), date(2028, 6, 5))):
        found = meetings(year)
        assert easter_monday not in found and whit_monday not in found
        for holiday in (easter_monday, whit_monday):
            moved = found[date.fromordinal(holiday.toordinal() + 1)]
            assert "helligdag" in moved.note  # type: ignore[attr-defined]


def test_skip_policy_drops_holiday_meetings() -> None:
    found = meetings(2027, holiday_policy="skip")
    assert date(2027, 3, 29) not in found and date(2027, 3, 30) not in found


def test_second_christmas_day_on_monday_and_no_meeting_periods() -> None:
    found = meetings(2027, no_meeting_periods=["2027-12-20..2028-01-02"])
    assert date(2027, 12, 27) not in found and date(2027, 12, 28) not in found
    assert date(2027, 12, 13) in found
    found_2026 = meetings(2026)
    # 2026: Christmas Day is a Friday; the Monday meeting of 28 December is kept
    assert date(2026, 12, 28) in found_2026


def test_deadline_on_a_holiday_moves_back_to_the_working_day_before() -> None:
    found = meetings(2027)
    # meeting 5 April 2027: the rule's deadline, Easter Monday 29 March, is a holiday, and so
    # are the days back to Maundy Thursday: the deadline is Wednesday 24 March at 12:00
    assert found[date(2027, 4, 5)].deadline == datetime(  # type: ignore[attr-defined]
        2027, 3, 24, 12, 0, tzinfo=COPENHAGEN)


def test_daylight_saving_weeks_keep_local_noon() -> None:
    found = meetings(2027)
    spring = found[date(2027, 4, 5)].deadline  # type: ignore[attr-defined]
    march = found[date(2027, 3, 22)].deadline  # type: ignore[attr-defined]
    assert (march.hour, march.utcoffset().total_seconds()) == (12, 3600)
    assert (spring.hour, spring.utcoffset().total_seconds()) == (12, 3600)  # 24 March: CET
    after = found[date(2027, 4, 12)].deadline  # type: ignore[attr-defined]
    assert (after.hour, after.utcoffset().total_seconds()) == (12, 7200)  # 5 April: CEST
    autumn = found[date(2027, 11, 8)].deadline  # type: ignore[attr-defined]
    assert autumn.utcoffset().total_seconds() == 3600


def test_iso_week_53() -> None:
    found = meetings(2026)
    last = found[date(2026, 12, 28)]
    assert last.day.isocalendar() == (2026, 53, 1)  # type: ignore[attr-defined]
    assert len([d for d in meetings(2027) if d.isocalendar().week == 53]) == 0


def test_extra_meeting_and_next_meeting_boundary() -> None:
    calendar = CouncilCalendar(CouncilSettings(extra_meetings=["2027-03-03"]))
    days = [m.day for m in calendar.meetings(date(2027, 3, 1), date(2027, 3, 8))]
    assert days == [date(2027, 3, 1), date(2027, 3, 3), date(2027, 3, 8)]
    plain = CouncilCalendar(CouncilSettings())
    at = datetime(2027, 3, 1, 11, 59, tzinfo=COPENHAGEN)
    assert plain.next_meeting(at).day == date(2027, 3, 8)
    assert plain.next_meeting(at.replace(minute=59, hour=12)).day == date(2027, 3, 15)
