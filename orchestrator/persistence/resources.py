"""The configuration resources operators edit one at a time, and the table each is kept in.

Sites, agents, queues and tariffs are the loader's own documents (``routing.config``).  A
network configuration also lists skills, the contact attributes conditions may test and named
lists; those are plain values there, so they get small documents here to be resources too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.persistence.models import (
    AgentRow,
    ConfigRow,
    ContactAttributeRow,
    NamedListRow,
    QueueRow,
    SiteRow,
    SkillRow,
    TariffRow,
)
from routing.conditions import ValueType
from routing.config import AgentConfig, QueueConfig, SiteConfig, TariffConfig


class _Document(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SkillConfig(_Document):
    id: str = Field(min_length=1)


class ContactAttributeConfig(_Document):
    """``contact.<id>`` in target conditions, of this type."""

    id: str = Field(min_length=1)
    type: ValueType


class NamedListConfig(_Document):
    """``<value> in <id>`` in target conditions: VIP callers, blocked numbers."""

    id: str = Field(min_length=1)
    values: list[str] | list[float]


# The tariffs are one document for the whole network; this is the id of its row.
TARIFFS_ID = "network"

Resource = (
    SkillConfig
    | SiteConfig
    | AgentConfig
    | QueueConfig
    | TariffConfig
    | ContactAttributeConfig
    | NamedListConfig
)
R = TypeVar(
    "R",
    SkillConfig,
    SiteConfig,
    AgentConfig,
    QueueConfig,
    TariffConfig,
    ContactAttributeConfig,
    NamedListConfig,
)


@dataclass(frozen=True, slots=True)
class ResourceKind:
    name: str
    model: type[Resource]
    row: type[ConfigRow]

    def key(self, resource: Resource) -> str:
        return TARIFFS_ID if isinstance(resource, TariffConfig) else resource.id


# In the order rows may be inserted: an agent refers to its site and its skills.
KINDS = (
    ResourceKind("skill", SkillConfig, SkillRow),
    ResourceKind("site", SiteConfig, SiteRow),
    ResourceKind("contact_attribute", ContactAttributeConfig, ContactAttributeRow),
    ResourceKind("list", NamedListConfig, NamedListRow),
    ResourceKind("tariffs", TariffConfig, TariffRow),
    ResourceKind("agent", AgentConfig, AgentRow),
    ResourceKind("queue", QueueConfig, QueueRow),
)
_BY_MODEL = {kind.model: kind for kind in KINDS}


def kind_of(model: type[Resource]) -> ResourceKind:
    try:
        return _BY_MODEL[model]
    except KeyError:
        raise TypeError(f"{model.__name__} is not a configuration resource") from None
