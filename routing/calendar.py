"""Time-based routing rules: a site's business hours and holidays, and end-of-shift protection.

Opening hours are what operators publish: wall-clock times in the site's own time zone,
weekday by weekday, with holidays closed or on special hours.  A router serving sites in
several zones must apply each site's rules in that site's zone, through daylight-saving
changes, so every rule here is evaluated on the site's local wall clock and turned into
instants with the IANA database (``zoneinfo``), never with fixed offsets.

Conventions, chosen so that a published timetable means what its readers think it means:

* An interval ``"22:00-06:00"`` crosses midnight and belongs to the day it starts on: the
  Friday night shift runs into Saturday morning even if Saturday is a holiday, and a holiday
  closes (or re-times) only the intervals starting on it.
* A boundary happens at the first instant the local clock shows that time or later.  On the
  spring-forward day an opening at 02:30 (a time that never shows) happens at the jump, 03:00;
  on the fall-back day a boundary in the repeated hour happens at its first occurrence.
* Intervals are half-open: open from the start, closed again at the end.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any, overload
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

__all__ = [
    "BusinessHours",
    "OpenInterval",
    "ShiftGuard",
    "ShiftGuardRule",
    "Weekday",
    "load_zone",
]

_DAY = 86_400
_INTERVAL = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


class Weekday(StrEnum):
    """Keys of a weekly timetable, in ``date.weekday()`` order."""

    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"


_WEEKDAYS = tuple(Weekday)


def load_zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``, or a ``ValueError`` that says which name was wrong (zoneinfo's
    own errors are a ``KeyError`` or a message about TZPATH, neither helpful in a config)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"unknown time zone {name!r}: expected an IANA name such as 'Europe/Paris'"
        ) from None


def _clock(text: str, hours: str, minutes: str) -> int:
    h, m = int(hours), int(minutes)
    if h > 24 or m > 59 or (h == 24 and m != 0):
        raise ValueError(
            f"bad opening interval {text!r}: {hours}:{minutes} is not a time of day "
            "(00:00 to 24:00)"
        )
    return h * 3600 + m * 60


@dataclass(frozen=True, slots=True, order=True)
class OpenInterval:
    """Open from ``start`` to ``end``, in seconds after the local midnight starting the day
    it belongs to; ``end`` beyond 24 h means it runs into the next day."""

    start: int
    end: int

    @classmethod
    def parse(cls, text: str) -> OpenInterval:
        """``"HH:MM-HH:MM"``; an end at or before the start crosses midnight, ``24:00`` ends
        at midnight.  An empty interval is refused rather than read as "all day", which is
        spelled ``"00:00-24:00"``."""
        match = _INTERVAL.match(text)
        if match is None:
            raise ValueError(f"bad opening interval {text!r}: expected 'HH:MM-HH:MM'")
        start = _clock(text, match[1], match[2])
        end = _clock(text, match[3], match[4])
        if start == _DAY:
            raise ValueError(f"bad opening interval {text!r}: cannot start at 24:00")
        if start == end:
            raise ValueError(
                f"bad opening interval {text!r}: empty (for all day write '00:00-24:00')"
            )
        if end <= start:
            end += _DAY
        return cls(start, end)

    def __str__(self) -> str:
        return f"{_format_clock(self.start)}-{_format_clock(self.end)}"


def _format_clock(seconds: int) -> str:
    if seconds > _DAY:
        seconds -= _DAY
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}"


def _parse_intervals(texts: tuple[str, ...]) -> tuple[OpenInterval, ...]:
    return tuple(sorted(OpenInterval.parse(text) for text in texts))


class BusinessHours(BaseModel):
    """A site's opening hours: weekly timetable, closed dates and dates with special hours,
    all in the site's IANA time zone.  Weekdays missing from ``weekly`` are closed; a date in
    ``special_hours`` replaces that weekday's hours (an empty list closes it, like
    ``closed``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timezone: str = Field(description="IANA time zone of the site, e.g. 'Europe/Paris'.")
    weekly: Mapping[Weekday, tuple[str, ...]] = Field(
        default_factory=dict, description="Open intervals per weekday, e.g. ['08:00-20:00']."
    )
    closed: frozenset[date] = Field(default_factory=frozenset, description="Dates closed.")
    special_hours: Mapping[date, tuple[str, ...]] = Field(
        default_factory=dict, description="Dates open on other hours than their weekday's."
    )

    _zone: ZoneInfo = PrivateAttr()
    _week: tuple[tuple[OpenInterval, ...], ...] = PrivateAttr()
    _special: dict[date, tuple[OpenInterval, ...]] = PrivateAttr()
    _last_special: date | None = PrivateAttr()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        load_zone(value)
        return value

    @field_validator("weekly", "special_hours")
    @classmethod
    def _valid_intervals(
        cls, value: Mapping[Any, tuple[str, ...]]
    ) -> Mapping[Any, tuple[str, ...]]:
        for key, texts in value.items():
            try:
                _parse_intervals(texts)
            except ValueError as error:
                label = key.isoformat() if isinstance(key, date) else str(key)
                raise ValueError(f"{label}: {error}") from None
        return value

    @model_validator(mode="after")
    def _holidays_consistent(self) -> BusinessHours:
        both = sorted(self.closed & self.special_hours.keys())
        if both:
            days = ", ".join(day.isoformat() for day in both)
            raise ValueError(f"dates both closed and with special hours: {days}")
        return self

    def model_post_init(self, context: Any, /) -> None:
        self._zone = load_zone(self.timezone)
        self._week = tuple(_parse_intervals(self.weekly.get(day, ())) for day in _WEEKDAYS)
        special = {day: _parse_intervals(texts) for day, texts in self.special_hours.items()}
        special.update(dict.fromkeys(self.closed, ()))
        self._special = special
        self._last_special = max(special, default=None)

    @property
    def zone(self) -> ZoneInfo:
        return self._zone

    def intervals_on(self, day: date) -> tuple[OpenInterval, ...]:
        """The intervals starting on local date ``day``: its special hours, else its
        weekday's."""
        special = self._special.get(day)
        return self._week[day.weekday()] if special is None else special

    def is_open(self, at: datetime | float) -> bool:
        """Whether the site takes new contacts at ``at`` (an aware datetime, or seconds since
        the Unix epoch)."""
        instant = _to_utc(at)
        today = instant.astimezone(self._zone).date()
        for day in (today - timedelta(days=1), today):
            for start, end in self._periods(day):
                if start <= instant < end:
                    return True
        return False

    @overload
    def next_change(self, at: datetime) -> datetime | None: ...

    @overload
    def next_change(self, at: float) -> float | None: ...

    def next_change(self, at: datetime | float) -> datetime | float | None:
        """The first instant after ``at`` at which ``is_open`` changes, so a router can sleep
        until then instead of polling; ``None`` if it never changes (always open, or never
        open again).  Returned in the site's zone for a datetime, as epoch seconds for a
        number.  Touching intervals (Monday to 24:00, Tuesday from 00:00) are no change."""
        instant = _to_utc(at)
        change = self._next_change(instant)
        if change is None:
            return None
        if isinstance(at, datetime):
            return change.astimezone(self._zone)
        return change.timestamp()

    def _next_change(self, instant: datetime) -> datetime | None:
        today = instant.astimezone(self._zone).date()
        # Past the last special date the timetable repeats weekly, so a period still open
        # after eight regular days (or none opening in them) never changes again.
        horizon = max(today, self._last_special or today) + timedelta(days=8)
        day = today - timedelta(days=1)
        period: tuple[datetime, datetime] | None = None  # union of touching open intervals
        while day <= horizon:
            if period is not None and period[1] < self._instant(day, 0):
                # Nothing starting on this day or later can extend it: it is final.
                change = _change_in(period, instant)
                if change is not None:
                    return change
                period = None
            for start, end in self._periods(day):
                if period is None:
                    period = (start, end)
                elif start <= period[1]:
                    period = (period[0], max(period[1], end))
                else:
                    change = _change_in(period, instant)
                    if change is not None:
                        return change
                    period = (start, end)
            day += timedelta(days=1)
        if period is not None and instant < period[0]:
            return period[0]
        return None

    def _periods(self, day: date) -> list[tuple[datetime, datetime]]:
        periods = []
        for interval in self.intervals_on(day):
            start = self._instant(day, interval.start)
            end = self._instant(day, interval.end)
            if start < end:  # an interval wholly inside a DST gap never opens
                periods.append((start, end))
        return periods

    def _instant(self, day: date, seconds: int) -> datetime:
        """The first UTC instant at which the local clock shows ``day`` + ``seconds`` or
        later (see the module's conventions for gaps and repeated hours)."""
        wall = datetime.combine(day, time()) + timedelta(seconds=seconds)
        # fold=0 is the earlier of two instants showing a repeated wall time.
        first = wall.replace(tzinfo=self._zone).astimezone(UTC)
        if first.astimezone(self._zone).replace(tzinfo=None) == wall:
            return first
        # A wall time in a gap: the clock jumps over it at the transition, which lies
        # between the readings with the offsets after (earlier) and before (later) it.
        after = wall.replace(tzinfo=self._zone, fold=1).astimezone(UTC)
        low, high = sorted((after, first))
        offset_after = high.astimezone(self._zone).utcoffset()
        low_s, high_s = math.floor(low.timestamp()), math.ceil(high.timestamp())
        while high_s - low_s > 1:
            middle = (low_s + high_s) // 2
            moment = datetime.fromtimestamp(middle, tz=UTC)
            if moment.astimezone(self._zone).utcoffset() == offset_after:
                high_s = middle
            else:
                low_s = middle
        return datetime.fromtimestamp(high_s, tz=UTC)


def _change_in(period: tuple[datetime, datetime], instant: datetime) -> datetime | None:
    start, end = period
    if instant < start:
        return start
    if instant < end:
        return end
    return None


def _to_utc(at: datetime | float) -> datetime:
    if isinstance(at, datetime):
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError(
                f"naive datetime {at.isoformat()}: pass an aware datetime or epoch seconds, "
                "since opening hours are in the site's zone, not the caller's"
            )
        return at.astimezone(UTC)
    if not math.isfinite(at):
        raise ValueError(f"epoch seconds must be finite, got {at!r}")
    return datetime.fromtimestamp(at, tz=UTC)


class ShiftGuardRule(StrEnum):
    """Which end-of-shift protection applies.

    ``WINDOW``: no new contact within N minutes of shift end, whatever its length (the rule as
    operators usually state it; predictable for agents).  ``OVERRUN``: no new contact whose
    expected handling would run more than N minutes past shift end (lets short contacts such
    as chats through near the end, at the price of depending on the AHT estimate).
    """

    WINDOW = "window"
    OVERRUN = "overrun"


@dataclass(frozen=True, slots=True)
class ShiftGuard:
    """End-of-shift protection: an agent about to leave gets no new contact that would keep
    them late.  Under either rule an agent whose shift has already ended gets none."""

    protection_minutes: float
    rule: ShiftGuardRule = ShiftGuardRule.WINDOW

    def __post_init__(self) -> None:
        if not (math.isfinite(self.protection_minutes) and self.protection_minutes >= 0.0):
            raise ValueError(
                f"protection_minutes must be a finite number >= 0, got {self.protection_minutes!r}"
            )

    def may_take_new_contact(
        self, agent_shift_end: float | None, now: float, expected_handle_time: float
    ) -> bool:
        """Whether an agent may be offered a new contact at ``now``.  Times are seconds on the
        engine's clock; ``agent_shift_end`` is ``None`` for an agent without a planned end
        (not protected)."""
        if not (math.isfinite(expected_handle_time) and expected_handle_time >= 0.0):
            raise ValueError(
                f"expected_handle_time must be a finite number >= 0, got {expected_handle_time!r}"
            )
        if agent_shift_end is None:
            return True
        if now >= agent_shift_end:
            return False
        margin = self.protection_minutes * 60.0
        if self.rule is ShiftGuardRule.WINDOW:
            return now < agent_shift_end - margin
        return now + expected_handle_time <= agent_shift_end + margin
