"""IntervalStore: 15-minute counters that add up, whoever adds them and in whatever order."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest

from orchestrator.persistence import Counters, Database, IntervalRecord
from orchestrator.persistence.intervals import interval_start

T0 = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def test_adds_to_one_interval_sum_every_counter(db: Database) -> None:
    first = Counters(
        offered=10,
        answered=8,
        abandoned=2,
        answered_within_sl=6,
        wait_seconds=95.5,
        handle_seconds=2400.0,
        staffed_seconds=5400.0,
        cost=42.25,
    )
    second = Counters(offered=3, answered=3, answered_within_sl=3, wait_seconds=4.5, cost=0.75)

    db.intervals.add(minutes(1), "madrid", "billing", first)
    db.intervals.add(minutes(14.9), "madrid", "billing", second)

    assert db.intervals.query(minutes(0), minutes(15)) == [
        IntervalRecord(T0, "madrid", "billing", first + second)
    ]


def test_each_site_queue_and_interval_keeps_its_own_counters(db: Database) -> None:
    one = Counters(offered=1)
    db.intervals.add(minutes(0), "madrid", "billing", one)
    db.intervals.add(minutes(15), "madrid", "billing", one)
    db.intervals.add(minutes(15), "paris", "billing", one)
    db.intervals.add(minutes(16), "paris", "tech", one)
    db.intervals.add(minutes(45), "paris", "tech", one)

    def keys(records: list[IntervalRecord]) -> list[tuple[datetime, str, str]]:
        return [(r.start, r.site, r.queue) for r in records]

    assert keys(list(db.intervals.query(minutes(15), minutes(45)))) == [
        (minutes(15), "madrid", "billing"),
        (minutes(15), "paris", "billing"),
        (minutes(15), "paris", "tech"),
    ]
    assert keys(list(db.intervals.query(minutes(0), minutes(60), site="paris", queue="tech"))) == [
        (minutes(15), "paris", "tech"),
        (minutes(45), "paris", "tech"),
    ]


def test_concurrent_adds_are_all_counted(db: Database) -> None:
    writers = 8
    start = threading.Barrier(writers)

    def add() -> None:
        start.wait()
        for _ in range(5):
            db.intervals.add(minutes(3), "madrid", "billing", Counters(offered=1, cost=0.5))

    threads = [threading.Thread(target=add) for _ in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    (record,) = db.intervals.query(minutes(0), minutes(15))
    assert (record.counters.offered, record.counters.cost) == (40, 20.0)


def test_intervals_are_quarter_hours_of_utc_whatever_the_callers_zone() -> None:
    kathmandu = timezone(timedelta(hours=5, minutes=45))
    local = datetime(2025, 3, 14, 14, 52, 10, tzinfo=kathmandu)  # 09:07:10 UTC

    assert interval_start(local) == T0
    with pytest.raises(ValueError, match="naive datetime"):
        interval_start(datetime(2025, 3, 14, 9, 7))


def test_counters_never_go_negative() -> None:
    with pytest.raises(ValueError, match="abandoned"):
        Counters(abandoned=-1)
