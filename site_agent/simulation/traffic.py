"""Every contact of a run, drawn up front from the seed.

Policies are compared on common random numbers: each one must see the very same callers
arriving at the same instants with the same talk times and the same patience, or a difference
between policies could be noise.  So contacts are generated before any routing happens, each
stream from its own random streams (one per purpose), seeded by the run's seed and the stream's
name: adding a stream, or giving one a patience, changes nothing in the others.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from routing.model import Contact
from site_agent.simulation.scenario import Scenario, TrafficStream


@dataclass(frozen=True, slots=True)
class ScheduledContact:
    """A contact the simulation will offer, with what only the simulation knows in advance."""

    contact: Contact
    site: str
    stream: str
    handle_time: float
    # Seconds of waiting after which the caller takes a callback if still queued (``None``:
    # not offered one, or declines it), and how long after that it wants the call (``None``:
    # when it reaches the head of the queue).
    callback_after: float | None = None
    callback_delay: float | None = None


def random_stream(seed: int, purpose: str, name: str) -> random.Random:
    """A generator that depends only on the seed, its purpose and its owner's name (string
    seeds are hashed with SHA-512 by :mod:`random`, identically in every process)."""
    return random.Random(f"{seed}:{purpose}:{name}")


def generate_traffic(scenario: Scenario, seed: int) -> tuple[ScheduledContact, ...]:
    """All contacts arriving during the run, in arrival order, with ids ``c1``, ``c2``..."""
    start, end = scenario.simulation.start, scenario.simulation.end
    channels = {q.id: q.channel for q in scenario.queues}
    drawn: list[tuple[float, int, TrafficStream, float, float, _Extras]] = []
    for order, stream in enumerate(scenario.traffic):
        arrivals = arrival_times(stream, start, end, random_stream(seed, "arrivals", stream.key))
        handle_rng = random_stream(seed, "handle", stream.key)
        patience_rng = random_stream(seed, "patience", stream.key)
        customer_rng = random_stream(seed, "customers", stream.key)
        callback_rng = random_stream(seed, "callbacks", stream.key)
        for arrival in arrivals:
            handle = stream.handle_time.sample(handle_rng)
            patience = (
                math.inf
                if stream.mean_patience is None
                else patience_rng.expovariate(1.0 / stream.mean_patience)
            )
            extras = _Extras(
                customer=None
                if stream.customers is None
                else f"{stream.key}#{customer_rng.randrange(stream.customers)}",
                callback_after=stream.callback_after
                if stream.callback_after is not None
                and callback_rng.random() < stream.callback_acceptance
                else None,
            )
            drawn.append((arrival, order, stream, handle, patience, extras))
    drawn.sort(key=lambda item: (item[0], item[1]))
    return tuple(
        ScheduledContact(
            contact=Contact(
                id=f"c{number}",
                queue_id=stream.queue,
                arrival=arrival,
                channel=channels[stream.queue],
                caller_region=scenario.caller_region(stream),
                origin_site=stream.site,
                required_skills=dict(stream.required_skills),
                patience=patience,
                customer_id=extras.customer,
            ),
            site=stream.site,
            stream=stream.key,
            handle_time=handle,
            callback_after=extras.callback_after,
            callback_delay=stream.callback_delay,
        )
        for number, (arrival, _, stream, handle, patience, extras) in enumerate(drawn, start=1)
    )


@dataclass(frozen=True, slots=True)
class _Extras:
    """Draws that only some streams make (each from its own random stream, so a stream that
    makes none draws the very same arrivals, talk times and patience as before)."""

    customer: str | None
    callback_after: float | None


def arrival_times(
    stream: TrafficStream, start: float, end: float, rng: random.Random
) -> list[float]:
    """Non-homogeneous Poisson arrivals by thinning (Lewis and Shedler): candidates at the peak
    rate, each kept with probability rate(t) / peak, which is exact for any rate profile."""
    peak = stream.peak_rate()
    times: list[float] = []
    if peak <= 0:
        return times
    clock = start
    while True:
        clock += rng.expovariate(peak)
        if clock >= end:
            return times
        if rng.random() * peak < stream.rate_at(clock):
            times.append(clock)
