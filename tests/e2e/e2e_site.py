"""``vcc site-agent`` as the end-to-end tests run it: the real command, watched from inside.

Usage: ``python tests/e2e/e2e_site.py JOURNAL site-agent --site ... [vcc site-agent options]``

The command runs unchanged (settings, token, scenario, the simulated PBX, the link and its
fall-back routing); this wrapper only adds two observers, so that the test can judge the site
from the outside without any test hook in the product:

* a **journal**: every PBX event, ring and transfer in, as one JSON line each, written (and
  flushed to the kernel) the moment it happens, before the site agent tells the router.  A
  process killed with SIGKILL leaves its journal complete up to the kill.
* a **state dump** on SIGUSR1: the PBX's whole state (agents and calls) and the calls the site
  sent away that are not settled (still in transit) as one line
  ``E2E-STATE {json}`` on stdout.  ``E2E-READY`` on stdout says the handler is installed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import site_agent.service as service
from orchestrator.cli import app
from routing.model import Contact
from site_agent.agent import SiteAgent
from site_agent.pbx import PbxEvent


class Journal:
    def __init__(self, path: Path) -> None:
        self.file = path.open("a", encoding="utf-8", buffering=1)  # a write per line

    def write(self, kind: str, **fields: Any) -> None:
        self.file.write(json.dumps({"t": time.time(), "kind": kind, **fields}) + "\n")

    def event(self, event: PbxEvent) -> None:
        fields: dict[str, Any] = {}
        for field in dataclasses.fields(event):
            value = getattr(event, field.name)
            if isinstance(value, Contact):
                fields["contact_id"] = value.id
            else:
                fields[field.name] = value
        self.write(type(event).__name__, **fields)


def watch(agent: SiteAgent, journal: Journal) -> None:
    """Journal the PBX's events (subscribed before the site agent, so first) and the two
    commands that emit none: a ring and a transfer in."""
    pbx = agent.pbx
    pbx.subscribe(journal.event)
    ring, transfer_in = pbx.ring, pbx.transfer_in

    def journaled_ring(contact_id: str, agent_id: str) -> None:
        ring(contact_id, agent_id)
        journal.write("Ring", contact_id=contact_id, agent_id=agent_id)

    def journaled_transfer_in(contact: Contact, from_site: str) -> None:
        transfer_in(contact, from_site)
        journal.write("TransferredIn", contact_id=contact.id, from_site=from_site)

    pbx.ring = journaled_ring  # type: ignore[method-assign]
    pbx.transfer_in = journaled_transfer_in  # type: ignore[method-assign]


def dump(agent: SiteAgent) -> None:
    state = agent.pbx.state()
    document = {
        "t": time.time(),
        "at": state.at,
        "mode": str(agent.mode),
        "connections": agent.connections,
        "sent_away": agent.sent_away,
        "agents": {
            a.agent_id: {
                "logged_in": a.logged_in,
                "ready": a.ready,
                "reason": a.reason,
                "wrap_up": a.wrap_up,
            }
            for a in state.agents
        },
        "calls": {
            c.contact.id: {"state": str(c.state), "agent_id": c.agent_id} for c in state.calls
        },
    }
    sys.stdout.write("E2E-STATE " + json.dumps(document) + "\n")
    sys.stdout.flush()


def main() -> None:
    journal = Journal(Path(sys.argv[1]))
    build, run = service.simulated_site_agent, service.run_until_stopped

    def watched_build(*args: Any, **kwargs: Any) -> SiteAgent:
        agent = build(*args, **kwargs)
        watch(agent, journal)
        return agent

    async def watched_run(agent: SiteAgent) -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, dump, agent)
        sys.stdout.write("E2E-READY\n")
        sys.stdout.flush()
        await run(agent)

    service.simulated_site_agent = watched_build  # type: ignore[assignment]
    service.run_until_stopped = watched_run  # type: ignore[assignment]
    app(args=sys.argv[2:], prog_name="vcc")


if __name__ == "__main__":
    main()
