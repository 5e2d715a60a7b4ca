"""Tests for routing.calendar: opening hours in the site's zone (DST days, midnight crossings,
holidays, special hours, two zones), validation messages, and end-of-shift protection."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from routing.calendar import (
    BusinessHours,
    OpenInterval,
    ShiftGuard,
    ShiftGuardRule,
    Weekday,
    load_zone,
)

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")
EVERY_DAY = tuple(Weekday)
# 2024: Paris springs forward on Sunday 31 March (02:00 -> 03:00) and falls back on Sunday
# 27 October (03:00 -> 02:00); New York springs forward on 10 March.
SPRING = date(2024, 3, 31)
AUTUMN = date(2024, 10, 27)


def paris(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, *, fold: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=PARIS, fold=fold)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def weekdays(hours: tuple[str, ...]) -> dict[Weekday, tuple[str, ...]]:
    return dict.fromkeys(EVERY_DAY[:5], hours)


def test_zoneinfo_has_data() -> None:
    assert load_zone("Europe/Paris").key == "Europe/Paris"


# --------------------------------------------------------------------------------------------
# Intervals
# --------------------------------------------------------------------------------------------


def test_interval_parsing() -> None:
    assert OpenInterval.parse("08:00-20:00") == OpenInterval(8 * 3600, 20 * 3600)
    assert OpenInterval.parse(" 8:30 - 12:15 ") == OpenInterval(8 * 3600 + 1800, 12 * 3600 + 900)
    assert OpenInterval.parse("00:00-24:00") == OpenInterval(0, 86_400)
    # Crossing midnight: the end moves to the next day.
    assert OpenInterval.parse("22:00-06:00") == OpenInterval(22 * 3600, 30 * 3600)
    assert OpenInterval.parse("20:00-00:00") == OpenInterval(20 * 3600, 24 * 3600)
    assert str(OpenInterval.parse("22:00-06:00")) == "22:00-06:00"
    assert str(OpenInterval.parse("00:00-24:00")) == "00:00-24:00"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("25:00-26:00", "'25:00-26:00': 25:00 is not a time of day"),
        ("08:00-24:30", "24:30 is not a time of day"),
        ("08:61-09:00", "08:61 is not a time of day"),
        ("24:00-06:00", "cannot start at 24:00"),
        ("08:00-08:00", "empty"),
        ("8-20", "expected 'HH:MM-HH:MM'"),
        ("08:00", "expected 'HH:MM-HH:MM'"),
    ],
)
def test_bad_intervals(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        OpenInterval.parse(text)


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ValidationError) as info:
        BusinessHours(timezone="Mars/Olympus", weekly={Weekday.MON: ("25:00-26:00",)})
    text = str(info.value)
    assert "unknown time zone 'Mars/Olympus'" in text
    assert "mon: bad opening interval '25:00-26:00'" in text
    with pytest.raises(ValidationError, match="2024-12-24: bad opening interval"):
        BusinessHours(timezone="UTC", special_hours={date(2024, 12, 24): ("9-12",)})
    with pytest.raises(ValidationError, match="both closed and with special hours: 2024-05-01"):
        BusinessHours(
            timezone="UTC",
            closed=frozenset({date(2024, 5, 1)}),
            special_hours={date(2024, 5, 1): ("10:00-12:00",)},
        )
    with pytest.raises(ValidationError, match=r"weekly\.monday"):
        BusinessHours.model_validate({"timezone": "UTC", "weekly": {"monday": ["08:00-09:00"]}})
    for bad in ("../etc/passwd", "", "Europe"):
        with pytest.raises(ValueError, match="unknown time zone"):
            load_zone(bad)


def test_loads_from_plain_config() -> None:
    hours = BusinessHours.model_validate(
        {
            "timezone": "Europe/Paris",
            "weekly": {"mon": ["08:00-12:00", "14:00-18:00"]},
            "closed": ["2024-04-01"],
            "special_hours": {"2024-04-08": ["10:00-11:00"]},
        }
    )
    assert hours.is_open(paris(2024, 3, 25, 9))
    assert not hours.is_open(paris(2024, 3, 25, 13))
    assert not hours.is_open(paris(2024, 4, 1, 9))
    assert hours.is_open(paris(2024, 4, 8, 10, 30))
    assert not hours.is_open(paris(2024, 4, 8, 9))


def test_naive_datetime_is_refused() -> None:
    hours = BusinessHours(timezone="UTC", weekly={Weekday.MON: ("08:00-20:00",)})
    with pytest.raises(ValueError, match="naive datetime"):
        hours.is_open(datetime(2024, 3, 25, 9))
    with pytest.raises(ValueError, match="finite"):
        hours.is_open(float("nan"))


# --------------------------------------------------------------------------------------------
# Opening hours
# --------------------------------------------------------------------------------------------


def test_boundaries_are_half_open_and_epoch_seconds_work() -> None:
    hours = BusinessHours(timezone="Europe/Paris", weekly=weekdays(("08:00-20:00",)))
    opening = paris(2024, 6, 3, 8)  # a Monday, CEST
    assert not hours.is_open(opening - timedelta(microseconds=1))
    assert hours.is_open(opening)
    assert hours.is_open(opening.timestamp())
    assert not hours.is_open(paris(2024, 6, 3, 20))
    assert hours.next_change(paris(2024, 6, 3, 7)) == opening
    assert hours.next_change(opening) == paris(2024, 6, 3, 20)
    assert hours.next_change(opening.timestamp()) == paris(2024, 6, 3, 20).timestamp()
    # Friday evening: next opening is Monday.
    assert hours.next_change(paris(2024, 6, 7, 21)) == paris(2024, 6, 10, 8)


def test_spring_forward_day_in_paris() -> None:
    hours = BusinessHours(
        timezone="Europe/Paris",
        weekly={Weekday.SUN: ("01:00-02:30", "02:30-04:00", "08:00-20:00")},
    )
    # 01:00-04:00 local on the short day is two real hours: 00:00 to 02:00 UTC.
    assert hours.is_open(utc(2024, 3, 31, 0, 0))
    assert hours.is_open(utc(2024, 3, 31, 1, 59, 59))
    assert not hours.is_open(utc(2024, 3, 31, 2, 0))
    # The 02:30 boundary never shows on the clock; the touching intervals stay one.
    assert hours.next_change(utc(2024, 3, 31, 0, 30)) == paris(2024, 3, 31, 4)
    # Opening at 08:00 is 06:00 UTC after the change (07:00 UTC the Sunday before).
    assert hours.next_change(paris(2024, 3, 31, 4)) == utc(2024, 3, 31, 6)
    assert hours.next_change(paris(2024, 3, 24, 4)) == utc(2024, 3, 24, 7)
    after_opening = hours.next_change(paris(2024, 3, 31, 8))
    assert after_opening is not None
    assert after_opening.utcoffset() == timedelta(hours=2)


def test_opening_inside_the_spring_gap_happens_at_the_jump() -> None:
    hours = BusinessHours(timezone="Europe/Paris", weekly={Weekday.SUN: ("02:30-05:00",)})
    # 01:59:59 CET is followed by 03:00 CEST (01:00 UTC): that is when 02:30 has passed.
    assert not hours.is_open(utc(2024, 3, 31, 0, 59, 59))
    assert hours.is_open(utc(2024, 3, 31, 1, 0))
    assert hours.next_change(utc(2024, 3, 31, 0)) == paris(2024, 3, 31, 3)
    # An interval wholly inside the gap never opens.
    gap = BusinessHours(timezone="Europe/Paris", weekly={Weekday.SUN: ("02:10-02:50",)})
    assert not any(gap.is_open(utc(2024, 3, 31, 0, 30) + timedelta(minutes=m)) for m in range(90))
    assert gap.next_change(utc(2024, 3, 31, 0)) == paris(2024, 4, 7, 2, 10)


def test_fall_back_day_in_paris() -> None:
    hours = BusinessHours(
        timezone="Europe/Paris",
        weekly={Weekday.SUN: ("01:00-04:00", "08:00-20:00"), Weekday.SAT: ("08:00-20:00",)},
    )
    # 01:00-04:00 local on the long day is four real hours: 23:00 to 03:00 UTC.
    assert hours.is_open(utc(2024, 10, 26, 23, 0))
    assert hours.is_open(utc(2024, 10, 27, 2, 59))
    assert not hours.is_open(utc(2024, 10, 27, 3, 0))
    assert hours.next_change(utc(2024, 10, 26, 23, 30)) == utc(2024, 10, 27, 3)
    # 08:00 is 07:00 UTC now (06:00 UTC the day before).
    assert hours.next_change(paris(2024, 10, 26, 7)) == utc(2024, 10, 26, 6)
    assert hours.next_change(paris(2024, 10, 27, 5)) == utc(2024, 10, 27, 7)
    # A boundary in the repeated hour happens at its first occurrence, once.
    repeated = BusinessHours(timezone="Europe/Paris", weekly={Weekday.SUN: ("02:30-06:00",)})
    assert repeated.next_change(utc(2024, 10, 26, 23)) == paris(2024, 10, 27, 2, 30, fold=0)
    assert repeated.is_open(paris(2024, 10, 27, 2, 40, fold=0))
    assert repeated.is_open(paris(2024, 10, 27, 2, 10, fold=1))  # second 02:10: still open
    assert repeated.next_change(paris(2024, 10, 27, 2, 10, fold=1)) == paris(2024, 10, 27, 6)


def test_interval_across_midnight() -> None:
    hours = BusinessHours(
        timezone="Europe/Paris", weekly={Weekday.FRI: ("22:00-06:00",), Weekday.SAT: ()}
    )
    assert not hours.is_open(paris(2024, 6, 7, 21, 59))
    assert hours.is_open(paris(2024, 6, 7, 23))
    assert hours.is_open(paris(2024, 6, 8, 5, 59))  # Saturday morning, on Friday's interval
    assert not hours.is_open(paris(2024, 6, 8, 6))
    assert not hours.is_open(paris(2024, 6, 8, 23))  # Saturday has no interval of its own
    assert hours.next_change(paris(2024, 6, 7, 23)) == paris(2024, 6, 8, 6)
    assert hours.next_change(paris(2024, 6, 8, 6)) == paris(2024, 6, 14, 22)


def test_round_the_clock_touching_days_are_one_period() -> None:
    hours = BusinessHours(
        timezone="Europe/Paris",
        weekly={Weekday.MON: ("00:00-24:00",), Weekday.TUE: ("00:00-24:00",)},
    )
    assert hours.is_open(paris(2024, 6, 4, 0))
    assert hours.next_change(paris(2024, 6, 3, 12)) == paris(2024, 6, 5, 0)
    always = BusinessHours(
        timezone="Europe/Paris", weekly={day: ("00:00-24:00",) for day in EVERY_DAY}
    )
    assert always.is_open(paris(2024, 3, 31, 2, 30))
    assert always.next_change(paris(2024, 3, 31, 1)) is None
    never = BusinessHours(timezone="Europe/Paris")
    assert not never.is_open(paris(2024, 6, 3, 12))
    assert never.next_change(paris(2024, 6, 3, 12)) is None


def test_holidays_and_special_hours() -> None:
    hours = BusinessHours(
        timezone="Europe/Paris",
        weekly={day: ("08:00-20:00",) for day in EVERY_DAY} | {Weekday.TUE: ("20:00-02:00",)},
        closed=frozenset({date(2024, 12, 25), date(2024, 12, 26)}),
        special_hours={date(2024, 12, 24): ("09:00-12:00", "14:00-16:00")},
    )
    # Christmas Eve (a Tuesday) on special hours instead of its weekday's night interval.
    assert hours.intervals_on(date(2024, 12, 24)) == (
        OpenInterval.parse("09:00-12:00"),
        OpenInterval.parse("14:00-16:00"),
    )
    assert hours.is_open(paris(2024, 12, 24, 10))
    assert not hours.is_open(paris(2024, 12, 24, 13))
    assert not hours.is_open(paris(2024, 12, 24, 21))
    assert hours.next_change(paris(2024, 12, 24, 15)) == paris(2024, 12, 24, 16)
    # Closed two days, then the weekly hours again.
    assert not hours.is_open(paris(2024, 12, 25, 10))
    assert hours.next_change(paris(2024, 12, 24, 16)) == paris(2024, 12, 27, 8)
    # Far ahead of a holiday, the holiday is still found.
    assert hours.next_change(paris(2024, 12, 23, 21)) == paris(2024, 12, 24, 9)


def test_a_holiday_does_not_cut_the_previous_night_short() -> None:
    hours = BusinessHours(
        timezone="Europe/Paris",
        weekly={day: ("20:00-02:00",) for day in EVERY_DAY},
        closed=frozenset({date(2024, 5, 1)}),
    )
    assert hours.is_open(paris(2024, 5, 1, 1))  # 30 April's night shift
    assert not hours.is_open(paris(2024, 5, 1, 21))  # 1 May's own interval is closed
    assert hours.next_change(paris(2024, 5, 1, 1)) == paris(2024, 5, 1, 2)
    assert hours.next_change(paris(2024, 5, 1, 2)) == paris(2024, 5, 2, 20)


def test_two_time_zones_at_the_same_instant() -> None:
    week = weekdays(("09:00-17:00",))
    paris_site = BusinessHours(timezone="Europe/Paris", weekly=week)
    new_york_site = BusinessHours(timezone="America/New_York", weekly=week)
    noon_utc = utc(2024, 6, 3, 12)  # 14:00 Paris, 08:00 New York
    assert paris_site.is_open(noon_utc)
    assert not new_york_site.is_open(noon_utc)
    assert new_york_site.next_change(noon_utc) == utc(2024, 6, 3, 13)
    assert new_york_site.next_change(noon_utc).tzinfo == NEW_YORK  # type: ignore[union-attr]
    # 16:00 UTC: both open; 18:00 UTC: Paris closed (20:00), New York open (14:00).
    assert paris_site.is_open(utc(2024, 6, 3, 14)) and new_york_site.is_open(utc(2024, 6, 3, 14))
    assert not paris_site.is_open(utc(2024, 6, 3, 18))
    assert new_york_site.is_open(utc(2024, 6, 3, 18))
    # Between the US (10 March) and EU (31 March) changes the gap is 5 hours, not 6.
    assert new_york_site.next_change(utc(2024, 3, 18, 11)) == utc(2024, 3, 18, 13)
    assert paris_site.next_change(utc(2024, 3, 18, 7)) == utc(2024, 3, 18, 8)
    # Any aware datetime is accepted, whatever its zone.
    tokyo_evening = datetime(2024, 6, 3, 21, tzinfo=timezone(timedelta(hours=9)))
    assert paris_site.is_open(tokyo_evening)  # 14:00 Paris


# --------------------------------------------------------------------------------------------
# End-of-shift protection
# --------------------------------------------------------------------------------------------

SHIFT_END = 10_000.0


def test_window_rule_refuses_within_n_minutes_of_shift_end() -> None:
    guard = ShiftGuard(protection_minutes=10)
    assert guard.rule is ShiftGuardRule.WINDOW
    assert guard.may_take_new_contact(SHIFT_END, SHIFT_END - 601, 60.0)
    assert not guard.may_take_new_contact(SHIFT_END, SHIFT_END - 600, 60.0)
    # Handle time does not matter under this rule.
    assert guard.may_take_new_contact(SHIFT_END, SHIFT_END - 601, 3600.0)
    assert not guard.may_take_new_contact(SHIFT_END, SHIFT_END - 300, 1.0)


def test_overrun_rule_refuses_contacts_that_would_run_late() -> None:
    guard = ShiftGuard(protection_minutes=5, rule=ShiftGuardRule.OVERRUN)
    # 2 minutes before the end, a 7-minute call ends exactly 5 minutes late: allowed.
    assert guard.may_take_new_contact(SHIFT_END, SHIFT_END - 120, 420.0)
    assert not guard.may_take_new_contact(SHIFT_END, SHIFT_END - 120, 421.0)
    # An hour before the end, a long call is fine.
    assert guard.may_take_new_contact(SHIFT_END, SHIFT_END - 3600, 3000.0)


@pytest.mark.parametrize("rule", list(ShiftGuardRule))
def test_no_new_contact_after_shift_end_and_none_without_shift(rule: ShiftGuardRule) -> None:
    guard = ShiftGuard(protection_minutes=30, rule=rule)
    assert not guard.may_take_new_contact(SHIFT_END, SHIFT_END, 1.0)
    assert not guard.may_take_new_contact(SHIFT_END, SHIFT_END + 60, 1.0)
    assert guard.may_take_new_contact(None, SHIFT_END, 1e6)


def test_shift_guard_validation() -> None:
    with pytest.raises(ValueError, match="protection_minutes"):
        ShiftGuard(protection_minutes=-1)
    with pytest.raises(ValueError, match="expected_handle_time"):
        ShiftGuard(protection_minutes=1).may_take_new_contact(SHIFT_END, 0.0, float("inf"))
