"""What target conditions may ask the engine, and the engine's answers at decision time.

:mod:`routing.conditions` parses and evaluates conditions over any schema; this module is the
schema the routing engine actually supplies, so the configuration loader can reject a condition
that names a statistic the engine does not keep, and the engine answers through one small
interface (:class:`LiveFigures`) instead of handing conditions its internals.

Variables: ``wait`` (seconds the contact has waited), ``queue_length`` (contacts waiting in its
queue, everywhere), ``priority``, ``caller_region``, ``customer``, and ``contact.NAME`` for each
contact attribute the configuration declares.  Functions: ``ready("skills")`` and
``staffed("skills")`` count agents matching a skill expression on the queue's channel, free now
or working (ready presence); ``waiting("queue")`` is another queue's length; ``ewt("site")`` is
the site's last trusted predicted wait for this queue; ``site_status("site")`` its status;
``open("site")`` whether its business hours have it open.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from routing.conditions import (
    Condition,
    ConditionSchema,
    FunctionSpec,
    Value,
    ValueType,
)
from routing.model import Contact, Queue

CONTACT_PREFIX = "contact."

_NUMBER, _STRING, _BOOL = ValueType.NUMBER, ValueType.STRING, ValueType.BOOL
ENGINE_VARIABLES: Mapping[str, ValueType] = {
    "wait": _NUMBER,
    "queue_length": _NUMBER,
    "priority": _NUMBER,
    "caller_region": _STRING,
    "customer": _STRING,
}
# Functions whose argument is a skill expression, a site or a queue: checked at load time.
SKILL_FUNCTIONS = frozenset({"ready", "staffed"})
SITE_FUNCTIONS = frozenset({"ewt", "site_status", "open"})
QUEUE_FUNCTIONS = frozenset({"waiting"})
ENGINE_FUNCTIONS: Mapping[str, FunctionSpec] = {
    "ready": FunctionSpec((_STRING,), _NUMBER),
    "staffed": FunctionSpec((_STRING,), _NUMBER),
    "waiting": FunctionSpec((_STRING,), _NUMBER),
    "ewt": FunctionSpec((_STRING,), _NUMBER),
    "site_status": FunctionSpec((_STRING,), _STRING),
    "open": FunctionSpec((_STRING,), _BOOL),
}


def condition_schema(
    attributes: Mapping[str, ValueType], lists: Mapping[str, ValueType]
) -> ConditionSchema:
    """The engine's schema with a configuration's contact attributes and named lists."""
    variables = dict(ENGINE_VARIABLES)
    variables.update({CONTACT_PREFIX + name: kind for name, kind in attributes.items()})
    return ConditionSchema(variables=variables, functions=ENGINE_FUNCTIONS, lists=lists)


def skill_calls(condition: Condition) -> frozenset[str]:
    """The skill expressions a condition counts agents of (the engine keeps a group for each)."""
    calls = condition.functions()
    return frozenset(str(c.args[0].value) for c in calls if c.function in SKILL_FUNCTIONS)


class LiveFigures(Protocol):
    """What the engine knows now; ``None`` where it does not know."""

    def queue_length(self, queue_id: str) -> int | None: ...
    def agents(self, queue: Queue, skills: str, *, free: bool) -> int | None: ...
    def predicted_wait(self, queue: Queue, site_id: str, now: float) -> float | None: ...
    def site_status(self, site_id: str, now: float) -> str | None: ...
    def site_open(self, site_id: str) -> bool | None: ...
    def in_list(self, list_name: str, value: Value) -> bool: ...


@dataclass(frozen=True, slots=True)
class RuleContext:
    """A contact's view of the live figures while one routing decision is made."""

    figures: LiveFigures
    contact: Contact
    queue: Queue
    now: float

    def variable(self, name: str) -> Value | None:
        contact = self.contact
        if name.startswith(CONTACT_PREFIX):
            return contact.attributes.get(name.removeprefix(CONTACT_PREFIX))
        if name == "wait":
            return self.now - contact.arrival
        if name == "queue_length":
            return self.figures.queue_length(self.queue.id)
        if name == "priority":
            return self.queue.priority if contact.priority is None else contact.priority
        if name == "caller_region":
            return contact.caller_region
        if name == "customer":
            return contact.customer_id
        return None

    def call(self, function: str, args: tuple[Value, ...]) -> Value | None:
        (argument,) = args
        text = str(argument)
        if function in SKILL_FUNCTIONS:
            return self.figures.agents(self.queue, text, free=function == "ready")
        if function == "waiting":
            return self.figures.queue_length(text)
        if function == "ewt":
            return self.figures.predicted_wait(self.queue, text, self.now)
        if function == "site_status":
            return self.figures.site_status(text, self.now)
        if function == "open":
            return self.figures.site_open(text)
        return None

    def in_list(self, list_name: str, value: Value) -> bool:
        return self.figures.in_list(list_name, value)
