"""Expected cost of serving a contact at a site: what least-cost routing minimises.

Labour usually dominates telephony (about 2.6 against 0.5 per minute in one published case), so
the agent's cost per hour for the expected handle time counts beside trunk and transfer prices.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from routing.model import Queue, Site, Tariffs


@dataclass(frozen=True, slots=True)
class CostBreakdown:
    trunk: float
    transfer: float
    labour: float

    @property
    def total(self) -> float:
        return self.trunk + self.transfer + self.labour


def expected_cost(
    queue: Queue,
    site: Site,
    tariffs: Tariffs,
    caller_region: str,
    origin_site: str | None,
) -> CostBreakdown:
    """Cost of the queue's expected contact served at ``site``.

    Trunk minutes are paid where the call landed (``origin_site``, or ``site`` when pre-routed)
    for the talk time; a contact moved off its landing site also pays the transfer; labour covers
    talk plus wrap-up at the serving site's rate.
    """
    talk_minutes = queue.expected_handle_time / 60.0
    landing = origin_site if origin_site is not None else site.id
    transfer = 0.0
    if landing != site.id:
        transfer = tariffs.transfer_fee + tariffs.transfer_per_minute * talk_minutes
    labour_hours = (queue.expected_handle_time + queue.wrap_up) / 3600.0
    return CostBreakdown(
        trunk=tariffs.trunk(caller_region, landing) * talk_minutes,
        transfer=transfer,
        labour=site.agent_cost_per_hour * labour_hours,
    )


def sites_by_cost(
    queue: Queue,
    sites: Iterable[Site],
    tariffs: Tariffs,
    caller_region: str,
    origin_site: str | None,
) -> tuple[str, ...]:
    """Site ids cheapest first for the queue's expected contact (ties by site id).

    For a contact that already landed, the trunk minutes are paid at the landing site whichever
    site serves, so the order does not depend on the caller's region: routers key such orders by
    (queue, landing site) only and can compute them all when the configuration loads.
    """
    return tuple(
        site_id
        for _, site_id in sorted(
            (expected_cost(queue, site, tariffs, caller_region, origin_site).total, site.id)
            for site in sites
        )
    )
