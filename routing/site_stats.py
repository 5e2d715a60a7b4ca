"""The router's view of every site: the statistics each one pulses, how fresh they are, and the
status derived from them.

Network routing decides on other sites' word, so it must know when that word has gone stale:
statistics older than a few pulses are not used (the router then treats the site's queues as
unknown rather than as they were), and a site silent past its watchdog is down (its agents
leave the virtual pool).  Only the last accepted pulse per site is stored; status and
freshness are recomputed from it and the caller's ``now`` on every query, so the answer never
depends on when someone last asked, and replaying the same pulses gives the same statuses.

Times are seconds on the router's clock, passed in.  A pulse's age counts from its receipt,
not from its ``sent_at``: sites' clocks are not the router's, and a skewed site clock must not
make a live site look dead (or a dead one alive).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "PulseCounts",
    "PulseVerdict",
    "QueueStats",
    "SiteBoard",
    "SitePulse",
    "SiteStatus",
    "SiteStatusPolicy",
]


class SiteStatus(StrEnum):
    """A site's condition as network routing and wallboards see it."""

    INITIALISING = "initialising"
    OPERATIONAL = "operational"
    CONGESTED = "congested"
    CRITICAL = "critical"
    DOWN = "down"


# Worse statuses of a reporting site, for "the site is as bad as its worst queue".
_SEVERITY = {SiteStatus.OPERATIONAL: 0, SiteStatus.CONGESTED: 1, SiteStatus.CRITICAL: 2}


class PulseVerdict(StrEnum):
    """What ``SiteBoard.receive`` did with a pulse; anything but ACCEPTED left the board as
    it was."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    OUT_OF_ORDER = "out_of_order"
    UNKNOWN_SITE = "unknown_site"


def _require_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")


def _require_fraction(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, got {value!r}")


@dataclass(frozen=True, slots=True)
class QueueStats:
    """One queue's figures in a site pulse.

    ``sl_in_interval`` is answered within the threshold over offered so far in the current
    reporting interval (``None`` before anything was offered, so an empty interval reads as
    "no evidence" rather than 0% or 100%); ``ewt`` is the site's expected wait for a new
    contact in seconds (``math.inf`` when nobody could answer); ``handled`` counts contacts
    handled so far in the interval.
    """

    waiting: int
    ready: int
    staffed: int
    busy: int
    sl_in_interval: float | None
    occupancy: float
    ewt: float
    handled: int = 0

    def __post_init__(self) -> None:
        _require_count("waiting", self.waiting)
        _require_count("ready", self.ready)
        _require_count("staffed", self.staffed)
        _require_count("busy", self.busy)
        _require_count("handled", self.handled)
        if self.sl_in_interval is not None:
            _require_fraction("sl_in_interval", self.sl_in_interval)
        _require_fraction("occupancy", self.occupancy)
        if math.isnan(self.ewt) or self.ewt < 0.0:
            raise ValueError(f"ewt must be >= 0 seconds (inf allowed), got {self.ewt!r}")


@dataclass(frozen=True, slots=True)
class SitePulse:
    """One statistics message from a site.  ``sequence`` increases by one per pulse so the
    router can drop duplicates and reordered deliveries and count lost ones; ``sent_at`` is on
    the site's clock and is kept for diagnosis only."""

    site_id: str
    sequence: int
    sent_at: float
    queues: Mapping[str, QueueStats] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _require_count("sequence", self.sequence)
        # Freeze a copy: the board keeps the pulse, and the sender must not edit it after.
        object.__setattr__(self, "queues", MappingProxyType(dict(self.queues)))


class SiteStatusPolicy(BaseModel):
    """When a site's statistics are trusted and which status they put it in."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pulse_interval: float = Field(
        default=2.0, gt=0, allow_inf_nan=False, description="Seconds between a site's pulses."
    )
    stale_after_pulses: int = Field(
        default=3,
        ge=1,
        description="Statistics older than this many pulse intervals are not used for routing.",
    )
    watchdog_timeout: float = Field(
        default=10.0,
        gt=0,
        allow_inf_nan=False,
        description="A site silent for longer than this (seconds) is down.",
    )
    default_sl_threshold: float = Field(
        default=20.0,
        gt=0,
        allow_inf_nan=False,
        description="Service-level threshold (s) for queues the board was given none for.",
    )
    congested_ewt_factor: float = Field(
        default=1.0,
        gt=0,
        allow_inf_nan=False,
        description="A queue is congested when its EWT exceeds its SL threshold times this.",
    )
    critical_ewt_factor: float = Field(
        default=3.0,
        gt=0,
        allow_inf_nan=False,
        description="A queue is critical when its EWT exceeds its SL threshold times this.",
    )
    congested_sl_below: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description=(
            "A queue is congested when its service level so far in the interval is below "
            "this; None: service level does not count."
        ),
    )

    @model_validator(mode="after")
    def _consistent(self) -> SiteStatusPolicy:
        if self.watchdog_timeout < self.pulse_interval:
            raise ValueError(
                f"watchdog_timeout ({self.watchdog_timeout}) is shorter than pulse_interval "
                f"({self.pulse_interval}): every healthy site would be down between pulses"
            )
        if self.critical_ewt_factor < self.congested_ewt_factor:
            raise ValueError(
                f"critical_ewt_factor ({self.critical_ewt_factor}) is below "
                f"congested_ewt_factor ({self.congested_ewt_factor}): a queue would turn "
                "critical before it is congested"
            )
        return self

    @property
    def stale_after(self) -> float:
        """Age (s) beyond which statistics are stale."""
        return self.stale_after_pulses * self.pulse_interval


@dataclass(frozen=True, slots=True)
class PulseCounts:
    """Per-site delivery counters, for monitoring the statistics link itself.  ``missed`` is
    the sequence numbers skipped between accepted pulses (lost, or still to arrive late)."""

    accepted: int = 0
    duplicate: int = 0
    out_of_order: int = 0
    missed: int = 0


@dataclass(slots=True)
class _SiteRecord:
    pulse: SitePulse | None = None
    received_at: float = -math.inf
    counts: PulseCounts = field(default_factory=PulseCounts)


class SiteBoard:
    """Every configured site's last accepted pulse, and what follows from it at a given time.

    ``sl_thresholds`` maps queue ids to their service-level thresholds (seconds), against
    which EWT is judged; queues not in it use ``policy.default_sl_threshold``.
    """

    def __init__(
        self,
        sites: Iterable[str],
        policy: SiteStatusPolicy,
        sl_thresholds: Mapping[str, float] | None = None,
    ) -> None:
        self._policy = policy
        self._sl_thresholds: Mapping[str, float] = MappingProxyType(dict(sl_thresholds or {}))
        self._sites: dict[str, _SiteRecord] = {site: _SiteRecord() for site in sites}
        self._unknown_site_pulses = 0

    @property
    def policy(self) -> SiteStatusPolicy:
        return self._policy

    @property
    def sites(self) -> tuple[str, ...]:
        return tuple(sorted(self._sites))

    @property
    def unknown_site_pulses(self) -> int:
        """Pulses from sites not configured: a misconfigured or impostor site."""
        return self._unknown_site_pulses

    def counts(self, site: str) -> PulseCounts:
        return self._record(site).counts

    def last_pulse(self, site: str) -> SitePulse | None:
        return self._record(site).pulse

    def age(self, site: str, now: float) -> float:
        """Seconds since the site's last accepted pulse arrived (``math.inf`` if none yet)."""
        return now - self._record(site).received_at

    def receive(self, pulse: SitePulse, now: float) -> PulseVerdict:
        """Take a pulse if it is newer than the last one accepted from its site.

        A site that comes back after being down is taken at whatever sequence it sends: a
        restarted site starts counting again, and insisting on the old numbering would keep it
        out of the pool forever.  (A restart quicker than the watchdog is held off until the
        watchdog expires, which is the same outcome as a site that stopped.)
        """
        record = self._sites.get(pulse.site_id)
        if record is None:
            self._unknown_site_pulses += 1
            return PulseVerdict.UNKNOWN_SITE
        last = record.pulse
        counts = record.counts
        restarted = last is not None and self._silent_too_long(record, now)
        if last is not None and not restarted:
            if pulse.sequence == last.sequence:
                record.counts = _bump(counts, duplicate=1)
                return PulseVerdict.DUPLICATE
            if pulse.sequence < last.sequence:
                record.counts = _bump(counts, out_of_order=1)
                return PulseVerdict.OUT_OF_ORDER
            counts = _bump(counts, missed=pulse.sequence - last.sequence - 1)
        record.pulse = pulse
        record.received_at = now
        record.counts = _bump(counts, accepted=1)
        return PulseVerdict.ACCEPTED

    def is_fresh(self, site: str, now: float) -> bool:
        """Whether the site's statistics may be used for routing: a pulse has arrived within
        the last ``stale_after_pulses`` intervals and the site is not down."""
        record = self._record(site)
        if record.pulse is None or self._silent_too_long(record, now):
            return False
        return now - record.received_at <= self._policy.stale_after

    def trusted_stats(self, site: str, queue: str, now: float) -> QueueStats | None:
        """The site's figures for ``queue`` if fresh; ``None`` when stale, down, never heard
        from, or the site does not report that queue, so a caller cannot route on old news by
        forgetting to check."""
        if not self.is_fresh(site, now):
            return None
        pulse = self._record(site).pulse
        assert pulse is not None  # is_fresh implies a pulse
        return pulse.queues.get(queue)

    def status(self, site: str, now: float) -> SiteStatus:
        """DOWN when silent past the watchdog, INITIALISING until the first pulse; otherwise
        the worst status of the queues the site is working on (staffed or with contacts
        waiting), and CRITICAL when nobody at all is staffed.

        Between staleness and the watchdog the status still reflects the last pulse: the site
        is presumed alive but its figures are not routed on (see ``is_fresh``).  Queues nobody
        is staffed for and nobody waits in are simply not served there and do not count.
        """
        record = self._record(site)
        if record.pulse is None:
            return SiteStatus.INITIALISING
        if self._silent_too_long(record, now):
            return SiteStatus.DOWN
        queues = record.pulse.queues
        if not any(stats.staffed > 0 for stats in queues.values()):
            return SiteStatus.CRITICAL
        worst = SiteStatus.OPERATIONAL
        for queue_id, stats in queues.items():
            if stats.staffed == 0 and stats.waiting == 0:
                continue
            status = self._queue_status(queue_id, stats)
            if _SEVERITY[status] > _SEVERITY[worst]:
                worst = status
        return worst

    def queue_status(self, site: str, queue: str, now: float) -> SiteStatus | None:
        """One queue's status at the site, by the same thresholds as ``status``; DOWN and
        INITIALISING come from the site, and ``None`` means the site does not report the
        queue."""
        record = self._record(site)
        if record.pulse is None:
            return SiteStatus.INITIALISING
        if self._silent_too_long(record, now):
            return SiteStatus.DOWN
        stats = record.pulse.queues.get(queue)
        return None if stats is None else self._queue_status(queue, stats)

    def down_sites(self, now: float) -> tuple[str, ...]:
        """Sites whose agents should leave the pool and whose waiting contacts should be
        redirected, in id order so callers act on them deterministically."""
        return tuple(
            site
            for site in sorted(self._sites)
            if self._sites[site].pulse is not None and self._silent_too_long(self._sites[site], now)
        )

    def _record(self, site: str) -> _SiteRecord:
        try:
            return self._sites[site]
        except KeyError:
            raise KeyError(f"unknown site {site!r}; the board knows {self.sites}") from None

    def _silent_too_long(self, record: _SiteRecord, now: float) -> bool:
        return now - record.received_at > self._policy.watchdog_timeout

    def _queue_status(self, queue_id: str, stats: QueueStats) -> SiteStatus:
        policy = self._policy
        threshold = self._sl_thresholds.get(queue_id, policy.default_sl_threshold)
        if stats.staffed == 0 or stats.ewt > threshold * policy.critical_ewt_factor:
            return SiteStatus.CRITICAL
        if stats.ewt > threshold * policy.congested_ewt_factor:
            return SiteStatus.CONGESTED
        sl_floor = policy.congested_sl_below
        sl = stats.sl_in_interval
        if sl_floor is not None and sl is not None and sl < sl_floor:
            return SiteStatus.CONGESTED
        return SiteStatus.OPERATIONAL


def _bump(
    counts: PulseCounts,
    *,
    accepted: int = 0,
    duplicate: int = 0,
    out_of_order: int = 0,
    missed: int = 0,
) -> PulseCounts:
    return PulseCounts(
        accepted=counts.accepted + accepted,
        duplicate=counts.duplicate + duplicate,
        out_of_order=counts.out_of_order + out_of_order,
        missed=counts.missed + missed,
    )
