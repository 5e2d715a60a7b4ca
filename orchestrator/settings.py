"""The one settings object of a vcc process, read from ``VCC_*`` environment variables.

Nested sections use ``__``: ``VCC_ROUTER__LEAST_COST_WAIT_SHARE=0.3``.  Packages below the
orchestrator take their section as a plain typed object, so they never read the environment.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from routing.settings import RouterSettings


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VCC_", env_nested_delimiter="__")

    router: RouterSettings = Field(default_factory=RouterSettings)
    seed: int = Field(default=7, description="Seed of the simulator's random streams.")
    scenario: str = Field(
        default="three-site-demo",
        description="Scenario name (shipped with vcc) or path to a scenario YAML file.",
    )
