"""Tunables of a site agent, passed in by whoever builds one (no environment reads here: the
orchestrator's settings carry this section, ``VCC_SITE_AGENT__*``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr


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
