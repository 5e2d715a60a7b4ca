"""Tests for routing.site_stats: pulse ordering, freshness, watchdog, and status thresholds."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from routing.site_stats import (
    PulseCounts,
    PulseVerdict,
    QueueStats,
    SiteBoard,
    SitePulse,
    SiteStatus,
    SiteStatusPolicy,
)

# Pulses every 2 s; stale after 3 pulses (6 s); down after 10 s of silence.
POLICY = SiteStatusPolicy(
    pulse_interval=2.0,
    stale_after_pulses=3,
    watchdog_timeout=10.0,
    default_sl_threshold=20.0,
    congested_ewt_factor=1.0,
    critical_ewt_factor=3.0,
    congested_sl_below=0.7,
)


def stats(
    *,
    waiting: int = 0,
    ready: int = 2,
    staffed: int = 10,
    busy: int = 8,
    sl: float | None = 0.9,
    occupancy: float = 0.8,
    ewt: float = 5.0,
    handled: int = 40,
) -> QueueStats:
    return QueueStats(
        waiting=waiting,
        ready=ready,
        staffed=staffed,
        busy=busy,
        sl_in_interval=sl,
        occupancy=occupancy,
        ewt=ewt,
        handled=handled,
    )


def pulse(site: str, seq: int, **queues: QueueStats) -> SitePulse:
    return SitePulse(site_id=site, sequence=seq, sent_at=float(seq) * 2.0, queues=queues)


def board(**thresholds: float) -> SiteBoard:
    return SiteBoard(["paris", "lyon"], POLICY, sl_thresholds=thresholds)


def test_initialising_until_first_pulse() -> None:
    b = board()
    assert b.status("paris", 0.0) is SiteStatus.INITIALISING
    # A site never heard from is not "down": it never joined the pool.
    assert b.status("paris", 1e6) is SiteStatus.INITIALISING
    assert b.queue_status("paris", "sales", 5.0) is SiteStatus.INITIALISING
    assert not b.is_fresh("paris", 0.0)
    assert b.trusted_stats("paris", "sales", 0.0) is None
    assert b.down_sites(1e6) == ()
    assert b.age("paris", 0.0) == math.inf
    assert b.receive(pulse("paris", 1, sales=stats()), 100.0) is PulseVerdict.ACCEPTED
    assert b.status("paris", 100.0) is SiteStatus.OPERATIONAL
    assert b.status("lyon", 100.0) is SiteStatus.INITIALISING


def test_freshness_stale_after_n_pulses_and_down_after_watchdog() -> None:
    b = board()
    sales = stats()
    b.receive(pulse("paris", 1, sales=sales), 100.0)
    assert b.is_fresh("paris", 100.0)
    assert b.trusted_stats("paris", "sales", 106.0) == sales  # exactly 3 pulses old
    assert b.age("paris", 106.0) == 6.0
    assert not b.is_fresh("paris", 106.01)
    assert b.trusted_stats("paris", "sales", 106.01) is None
    # Stale but not yet down: the status still reflects the last pulse.
    assert b.status("paris", 108.0) is SiteStatus.OPERATIONAL
    assert b.down_sites(110.0) == ()
    assert b.status("paris", 110.0) is SiteStatus.OPERATIONAL
    assert b.status("paris", 110.01) is SiteStatus.DOWN
    assert b.queue_status("paris", "sales", 110.01) is SiteStatus.DOWN
    assert b.down_sites(110.01) == ("paris",)
    # A new pulse brings it back.
    b.receive(pulse("paris", 2, sales=sales), 111.0)
    assert b.status("paris", 111.0) is SiteStatus.OPERATIONAL
    assert b.is_fresh("paris", 111.0)


def test_watchdog_shorter_than_staleness_makes_down_sites_untrusted() -> None:
    policy = SiteStatusPolicy(pulse_interval=1.0, stale_after_pulses=10, watchdog_timeout=3.0)
    b = SiteBoard(["paris"], policy)
    b.receive(pulse("paris", 1, sales=stats()), 0.0)
    assert b.status("paris", 3.5) is SiteStatus.DOWN
    assert not b.is_fresh("paris", 3.5)
    assert b.trusted_stats("paris", "sales", 3.5) is None


def test_duplicate_and_out_of_order_pulses_are_ignored_and_counted() -> None:
    b = board()
    first = pulse("paris", 5, sales=stats(ewt=5.0))
    assert b.receive(first, 100.0) is PulseVerdict.ACCEPTED
    assert b.receive(pulse("paris", 5, sales=stats(ewt=99.0)), 101.0) is PulseVerdict.DUPLICATE
    assert b.receive(pulse("paris", 3, sales=stats(ewt=99.0)), 101.0) is PulseVerdict.OUT_OF_ORDER
    assert b.last_pulse("paris") is first
    # A rejected pulse does not refresh the site either.
    assert not b.is_fresh("paris", 106.5)
    assert b.receive(pulse("paris", 8, sales=stats()), 107.0) is PulseVerdict.ACCEPTED
    assert b.receive(pulse("paris", 7, sales=stats()), 107.5) is PulseVerdict.OUT_OF_ORDER
    assert b.counts("paris") == PulseCounts(accepted=2, duplicate=1, out_of_order=2, missed=2)
    assert b.counts("lyon") == PulseCounts()


def test_unknown_site_pulse_is_rejected() -> None:
    b = board()
    assert b.receive(pulse("mars", 1), 0.0) is PulseVerdict.UNKNOWN_SITE
    assert b.unknown_site_pulses == 1
    with pytest.raises(KeyError, match="unknown site 'mars'"):
        b.status("mars", 0.0)


def test_restarted_site_is_accepted_with_new_numbering_once_down() -> None:
    b = board()
    b.receive(pulse("paris", 500), 0.0)
    # Restarted quickly: its low numbers look old until the watchdog expires.
    assert b.receive(pulse("paris", 1, sales=stats()), 5.0) is PulseVerdict.OUT_OF_ORDER
    assert b.receive(pulse("paris", 2, sales=stats()), 10.5) is PulseVerdict.ACCEPTED
    assert b.status("paris", 10.5) is SiteStatus.OPERATIONAL
    assert b.receive(pulse("paris", 3, sales=stats()), 12.5) is PulseVerdict.ACCEPTED


@pytest.mark.parametrize(
    ("queue", "expected"),
    [
        (stats(ewt=20.0), SiteStatus.OPERATIONAL),  # EWT at the threshold: not above it
        (stats(ewt=20.5), SiteStatus.CONGESTED),  # EWT above SL threshold x 1
        (stats(sl=0.69), SiteStatus.CONGESTED),  # SL so far below 70%
        (stats(sl=0.7), SiteStatus.OPERATIONAL),
        (stats(sl=None), SiteStatus.OPERATIONAL),  # nothing offered yet: no evidence
        (stats(ewt=60.0), SiteStatus.CONGESTED),
        (stats(ewt=60.5), SiteStatus.CRITICAL),  # EWT above SL threshold x 3
        (stats(ewt=math.inf, staffed=0, busy=0, ready=0, waiting=3), SiteStatus.CRITICAL),
    ],
)
def test_status_thresholds(queue: QueueStats, expected: SiteStatus) -> None:
    b = board()
    b.receive(pulse("paris", 1, sales=queue), 0.0)
    assert b.status("paris", 1.0) is expected
    assert b.queue_status("paris", "sales", 1.0) is expected


def test_thresholds_follow_each_queues_service_level() -> None:
    # Chat answers within 60 s: an EWT of 45 s is fine there, not for voice at 20 s.
    b = board(chat=60.0)
    b.receive(pulse("paris", 1, chat=stats(ewt=45.0), voice=stats(ewt=5.0)), 0.0)
    assert b.queue_status("paris", "chat", 0.0) is SiteStatus.OPERATIONAL
    assert b.status("paris", 0.0) is SiteStatus.OPERATIONAL
    b.receive(pulse("paris", 2, chat=stats(ewt=5.0), voice=stats(ewt=45.0)), 2.0)
    assert b.queue_status("paris", "voice", 2.0) is SiteStatus.CONGESTED
    assert b.queue_status("paris", "chat", 2.0) is SiteStatus.OPERATIONAL
    assert b.queue_status("paris", "email", 2.0) is None


def test_site_status_is_its_worst_working_queue() -> None:
    b = board()
    b.receive(
        pulse(
            "paris",
            1,
            sales=stats(),
            support=stats(ewt=30.0),
            # A queue nobody works on and nobody waits in is just not served here.
            night=stats(staffed=0, busy=0, ready=0, ewt=math.inf, sl=None),
        ),
        0.0,
    )
    assert b.status("paris", 0.0) is SiteStatus.CONGESTED
    assert b.queue_status("paris", "night", 0.0) is SiteStatus.CRITICAL
    # Nobody staffed anywhere: critical, whatever the queues say.
    b.receive(pulse("paris", 2, night=stats(staffed=0, busy=0, ready=0, ewt=math.inf)), 2.0)
    assert b.status("paris", 2.0) is SiteStatus.CRITICAL
    b.receive(pulse("paris", 3), 4.0)
    assert b.status("paris", 4.0) is SiteStatus.CRITICAL


def test_statuses_are_strings_for_wallboards() -> None:
    assert [s.value for s in SiteStatus] == [
        "initialising",
        "operational",
        "congested",
        "critical",
        "down",
    ]
    assert SiteStatus("down") is SiteStatus.DOWN


def test_pulse_is_immutable_copy() -> None:
    queues = {"sales": stats()}
    p = SitePulse(site_id="paris", sequence=1, sent_at=0.0, queues=queues)
    queues["support"] = stats()
    assert set(p.queues) == {"sales"}
    with pytest.raises(TypeError):
        p.queues["x"] = stats()  # type: ignore[index]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("waiting", -1),
        ("staffed", 2.5),
        ("sl", 1.5),
        ("occupancy", -0.1),
        ("ewt", -1.0),
        ("ewt", math.nan),
    ],
)
def test_queue_stats_validation(field: str, value: object) -> None:
    with pytest.raises(ValueError, match="sl_in_interval" if field == "sl" else field):
        stats(**{field: value})  # type: ignore[arg-type]


def test_policy_validation() -> None:
    with pytest.raises(ValidationError, match="shorter than pulse_interval"):
        SiteStatusPolicy(pulse_interval=5.0, watchdog_timeout=4.0)
    with pytest.raises(ValidationError, match="critical before it is congested"):
        SiteStatusPolicy(congested_ewt_factor=2.0, critical_ewt_factor=1.5)
    with pytest.raises(ValidationError):
        SiteStatusPolicy(stale_after_pulses=0)
    with pytest.raises(ValidationError):
        SiteStatusPolicy(unknown_knob=1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        POLICY.pulse_interval = 1.0
    assert POLICY.stale_after == 6.0


def test_deterministic_replay() -> None:
    events = [
        (0.0, pulse("paris", 1, sales=stats())),
        (2.0, pulse("lyon", 1, sales=stats(ewt=70.0))),
        (2.5, pulse("paris", 1, sales=stats(ewt=70.0))),
        (4.0, pulse("paris", 2, sales=stats(ewt=30.0))),
    ]

    def run() -> list[tuple[SiteStatus, SiteStatus, bool]]:
        b = board()
        out = []
        for now, p in events:
            b.receive(p, now)
            out.append(
                (b.status("paris", now + 1), b.status("lyon", now + 1), b.is_fresh("lyon", now + 3))
            )
        return out

    assert run() == run()
    assert run() == [
        (SiteStatus.OPERATIONAL, SiteStatus.INITIALISING, False),
        (SiteStatus.OPERATIONAL, SiteStatus.CRITICAL, True),
        (SiteStatus.OPERATIONAL, SiteStatus.CRITICAL, True),  # duplicate seq 1 ignored
        (SiteStatus.CONGESTED, SiteStatus.CRITICAL, True),
    ]
