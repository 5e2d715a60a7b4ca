"""The one settings object of a vcc process, read from ``VCC_*`` environment variables.

Nested sections use ``__``: ``VCC_ROUTER__LEAST_COST_WAIT_SHARE=0.3``.  Packages below the
orchestrator take their section as a plain typed object, so they never read the environment.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from routing.settings import RouterSettings
from site_agent.settings import ClockSettings, SiteAgentSettings


class ApiRole(StrEnum):
    """What a control API key may do: ``admin`` edits the configuration (and may do anything
    else), ``supervisor`` reads everything and changes any agent's state, ``agent`` changes
    only its own agent's state, ``site`` asks routes for contacts landing at its site."""

    ADMIN = "admin"
    SUPERVISOR = "supervisor"
    AGENT = "agent"
    SITE = "site"


class ApiKey(BaseModel):
    """One control API key; its name (the key of ``api_keys``) is the actor in the audit log."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: SecretStr = Field(min_length=16, description="The secret the client sends.")
    role: ApiRole
    agent_id: str | None = Field(default=None, description="The agent an ``agent`` key acts as.")
    site_id: str | None = Field(default=None, description="The site of a ``site`` key.")

    @model_validator(mode="after")
    def _scoped(self) -> ApiKey:
        if (self.role is ApiRole.AGENT) is (self.agent_id is None):
            raise ValueError("agent_id is given for, and only for, an agent key")
        if (self.role is ApiRole.SITE) is (self.site_id is None):
            raise ValueError("site_id is given for, and only for, a site key")
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VCC_", env_nested_delimiter="__")

    router: RouterSettings = Field(default_factory=RouterSettings)
    seed: int = Field(default=7, description="Seed of the simulator's random streams.")
    scenario: str = Field(
        default="three-site-demo",
        description="Scenario name (shipped with vcc) or path to a scenario YAML file.",
    )
    database_url: str = Field(
        default="sqlite:///vcc.db",
        description=(
            "SQLAlchemy URL of the database: a SQLite file (embedded default) or PostgreSQL "
            "(postgresql://user@host/db; psycopg 3 is used)."
        ),
    )
    router_shards: int = Field(
        default=1,
        ge=1,
        description=(
            "Most router shards (one Ray actor each); fewer when the network has fewer "
            "independent skill groups (see orchestrator/sharding.py)."
        ),
    )
    router_host: str = Field(
        default="127.0.0.1", description="Address the router's site links listen on."
    )
    router_port: int = Field(
        default=8700, ge=0, le=65535, description="Port of the router's site links (0: any)."
    )
    site_tokens: dict[str, SecretStr] = Field(
        default_factory=dict,
        description=(
            "Per-site bearer tokens of the site links, as JSON: "
            'VCC_SITE_TOKENS=\'{"paris": "..."}\'. A site without a token cannot connect.'
        ),
    )
    ray_address: str | None = Field(
        default=None,
        validation_alias=AliasChoices("vcc_ray_address", "ray_address"),
        description=(
            "Ray cluster to run the router on (VCC_RAY_ADDRESS, else Ray's own RAY_ADDRESS); "
            "unset: a small local Ray is started and stopped with the router."
        ),
    )
    ray_num_cpus: int | None = Field(
        default=None,
        ge=1,
        description="CPUs of the embedded local Ray [default: one per shard, at least 2].",
    )
    router_transit_timeout_seconds: float = Field(
        default=300.0,
        gt=0,
        description=(
            "A restarted router waits this long for every site's snapshot before it routes "
            "again the calls a site lists as sent away that no site has (one that comes back "
            "later may get such a call a second time)."
        ),
    )
    agent_command_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        description=(
            "How long the control API waits for an agent's site to carry out an agent state "
            "change on its PBX (and the router to apply it) before answering 504."
        ),
    )
    metrics_scrape_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        description=(
            "How long GET /metrics waits for the router's shards' figures; a shard that does "
            "not answer in time is left out of that scrape (vcc_router_shards_answering)."
        ),
    )
    site_agent: SiteAgentSettings = Field(
        default_factory=SiteAgentSettings,
        description="How `vcc site-agent` reaches the router (VCC_SITE_AGENT__ROUTER_URL ...).",
    )
    clock: ClockSettings = Field(
        default_factory=ClockSettings,
        description=(
            "The network's simulated clock, shared by `vcc up`, `vcc router` and `vcc site-agent` "
            "(VCC_CLOCK__SPEED, VCC_CLOCK__ORIGIN): the scenario's start at ORIGIN, SPEED "
            "simulated seconds per wall-clock second.  VCC_SITE_AGENT__SPEED, its older name for "
            "the speed, counts when VCC_CLOCK__SPEED is not set."
        ),
    )
    api_keys: dict[str, ApiKey] = Field(
        default_factory=dict,
        description=(
            "Control API keys by name, as JSON: "
            'VCC_API_KEYS=\'{"ops": {"key": "...", "role": "admin"}}\'; an agent key names its '
            "agent_id, a site key its site_id.  No key: every request is refused (401)."
        ),
    )

    @model_validator(mode="after")
    def _one_speed(self) -> Settings:
        """One speed for the network's clock and the simulated PBX: ``clock.speed``, which
        takes VCC_SITE_AGENT__SPEED (the older setting) when VCC_CLOCK__SPEED is not set."""
        agent_speed = "speed" in self.site_agent.model_fields_set
        if agent_speed and "speed" not in self.clock.model_fields_set:
            self.clock = self.clock.model_copy(update={"speed": self.site_agent.speed})
        elif agent_speed and self.site_agent.speed != self.clock.speed:
            raise ValueError(
                f"site_agent.speed ({self.site_agent.speed:g}) and clock.speed "
                f"({self.clock.speed:g}) differ: set only VCC_CLOCK__SPEED"
            )
        self.site_agent = self.site_agent.model_copy(update={"speed": self.clock.speed})
        return self
