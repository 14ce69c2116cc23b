"""The bot's clock: the real one, or one shifted to a chosen start (`--now`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

COPENHAGEN = ZoneInfo("Europe/Copenhagen")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Clock:
    """`Clock(start)` runs from `start` at real speed, so a daemon started with --now ticks on."""

    def __init__(self, start: datetime | None = None) -> None:
        if start is not None and start.tzinfo is None:
            start = start.replace(tzinfo=COPENHAGEN)
        self._offset = (start - utcnow()) if start is not None else timedelta(0)

    def now(self) -> datetime:
        return utcnow() + self._offset


def as_utc(value: datetime) -> datetime:
    """Datetimes read back from SQLite may be naive; they are always stored as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
