"""Tunables of the routing engine, passed in by whoever builds a router (no environment reads)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from routing.calendar import ShiftGuard
from routing.site_stats import SiteStatusPolicy


class RouterSettings(BaseModel):
    """How far least-cost routing may bend wait times, and similar knobs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    least_cost_wait_share: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description=(
            "Share of a queue's service-level threshold a contact may spend waiting for a cheaper "
            "site's agent while a dearer site's agent is free; beyond it any site takes it."
        ),
    )
    site_status: SiteStatusPolicy = Field(
        default_factory=SiteStatusPolicy,
        description="When site statistics pulses are trusted, and the statuses they give.",
    )
    clock_epoch: float = Field(
        default=0.0,
        allow_inf_nan=False,
        description=(
            "Unix time of the engine clock's zero, for business hours: 0 when the clock is "
            "Unix time (a live router), a day's start for a simulation."
        ),
    )
    shift_guard: ShiftGuard | None = Field(
        default=None,
        description="End-of-shift protection: no new contact to an agent about to leave.",
    )
