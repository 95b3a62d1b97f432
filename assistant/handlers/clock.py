"""The time and the date, said the way people say them, in the configured time zone."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from ..types import Intent, Outcome

CLOCK_INTENTS = ("HassGetCurrentTime", "HassGetCurrentDate")


def spoken_time(now: datetime) -> str:
    """15:20 -> "It's 3:20 PM."; on the hour "It's 3 PM."; noon and midnight by name."""
    if now.minute == 0 and now.hour in (0, 12):
        return "It's midnight." if now.hour == 0 else "It's noon."
    hour = now.hour % 12 or 12
    minutes = f":{now.minute:02d}" if now.minute else ""
    return f"It's {hour}{minutes} {'AM' if now.hour < 12 else 'PM'}."


def spoken_date(now: datetime) -> str:
    """"It's Monday, November 30." (the year goes without saying)."""
    return f"It's {now:%A}, {now:%B} {now.day}."


class ClockHandler:
    def __init__(self, time_zone: str = "", now: Callable[[], datetime] | None = None):
        """`time_zone`: an IANA name, or "" for the system's."""
        zone = ZoneInfo(time_zone) if time_zone else None
        self.now = now or (lambda: datetime.now(zone).astimezone(zone))

    def handles(self, intent: Intent) -> bool:
        return intent.name in CLOCK_INTENTS

    def plan(self, intent: Intent) -> Outcome:
        now = self.now()
        return Outcome(spoken_time(now) if intent.name == "HassGetCurrentTime" else spoken_date(now), intent=intent)
