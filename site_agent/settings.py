"""Tunables of a site agent, passed in by whoever builds one (no environment reads here: the
orchestrator's settings carry this section, ``VCC_SITE_AGENT__*``)."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SecretStr


class SiteAgentSettings(BaseModel):
    """How a site agent reaches the router, batches what it reports and rides out outages."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    router_url: str | None = Field(
        default=None,
        description="Base URL of the router (ws://, wss://, http:// or https://); the agent "
        "connects to {router_url}/sites/{site}/stream.  Unset: the router's own host and port.",
    )
    token: SecretStr | None = Field(
        default=None,
        description="This site's bearer token (kept off the command line, where ps shows it). "
        "Unset: the site's entry in the router's site tokens.",
    )
    speed: float = Field(
        default=60.0, gt=0, description="Simulated PBX: simulated seconds per wall-clock second."
    )
    batch_seconds: float = Field(
        default=0.005,
        ge=0,
        description="Events within this many seconds go to the router in one delta.",
    )
    reconnect_initial_seconds: float = Field(
        default=0.25, gt=0, description="First wait before reconnecting; doubles per failure."
    )
    reconnect_max_seconds: float = Field(
        default=10.0, gt=0, description="Longest wait between reconnection attempts."
    )
    open_timeout_seconds: float = Field(
        default=5.0, gt=0, description="A connection not open within this is a failed attempt."
    )
    ping_seconds: float = Field(
        default=5.0,
        gt=0,
        description="WebSocket pings; a router silent for as long again is taken as gone.",
    )
    handover_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Longest wait, on reconnecting, for calls the site rang on its own to be "
        "answered or not before the snapshot; still ringing then, they are taken back.",
    )


class ClockSettings(BaseModel):
    """The network's clock when its sites are simulated: the scenario's clock, running
    ``speed`` simulated seconds per wall-clock second, that reads the scenario's simulation
    start at the wall-clock instant ``origin``.  A router and site agents given the same two
    values read the same time (to the accuracy of their machines' clocks), whichever started
    first; before ``origin`` the clock reads earlier than the start."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    speed: float = Field(
        default=60.0,
        gt=0,
        allow_inf_nan=False,
        description="Simulated seconds per wall-clock second.",
    )
    origin: AwareDatetime | None = Field(
        default=None,
        description="Wall-clock instant at which the clock reads the scenario's start (ISO 8601 "
        "with a time zone, e.g. 2026-01-05T09:00:00Z, or Unix seconds).  Unset: a site agent's "
        "clock starts at the scenario's start when its PBX starts, and `vcc up` picks the "
        "instant its sites start; `vcc router` runs on Unix time.",
    )

    @property
    def origin_timestamp(self) -> float | None:
        """``origin`` as Unix time."""
        return None if self.origin is None else self.origin.timestamp()
