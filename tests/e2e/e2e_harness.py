"""The end-to-end tests' pieces: the router with the control API (`vcc up --no-sites`) and
`vcc site-agent` as real processes on loopback, all on one network clock, the router's and the
sites' views of a site, and the sites' journals judged contact by contact.

Nothing sleeps and hopes: every wait is on a condition with a deadline (:func:`wait_for`).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx
from prometheus_client.parser import text_string_to_metric_families

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]
SCENARIO = Path(__file__).with_name("e2e_scenario.yaml")
SITE_SCRIPT = Path(__file__).with_name("e2e_site.py")
SITES = ("north", "south", "east")
TOKENS = {site: f"{site}-secret-token" for site in SITES}
ADMIN_KEY = "e2e-admin-key-0123456789"
API_KEYS = {"e2e-admin": {"key": ADMIN_KEY, "role": "admin"}}


@dataclass(frozen=True)
class NetworkClock:
    """The clock every process is given (``--clock-origin``, ``--speed``): the scenario's
    start at ``origin`` (Unix time), ``speed`` simulated seconds per second."""

    origin: float
    speed: float

    def args(self) -> list[str]:
        return ["--clock-origin", f"{self.origin:.6f}", "--speed", f"{self.speed:g}"]


def wait_for(condition: Callable[[], T], timeout: float, what: str, every: float = 0.05) -> T:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


def environment(**extra: str) -> dict[str, str]:
    """This process's environment without VCC_* settings, importing vcc from this checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VCC_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env | extra


class _Lines:
    """A process's stdout, read line by line in a thread."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line.rstrip("\n"))

    def next(self, prefix: str, timeout: float, what: str) -> str:
        """The next line starting with ``prefix`` (earlier other lines are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {what} within {timeout:g} s")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line.startswith(prefix):
                return line


class _Process:
    def __init__(self, name: str, command: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        with log.open("ab") as err:
            self.popen = subprocess.Popen(
                command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=err, text=True
            )
        assert self.popen.stdout is not None
        self.stdout = _Lines(self.popen.stdout)

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind, as when a machine or a container dies."""
        self.popen.kill()
        self.popen.wait(timeout=10)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGINT, and the exit code once it has shut down cleanly."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            raise AssertionError(f"{self.name} did not stop within {timeout:g} s") from None

    def ensure_dead(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


class RouterProcess(_Process):
    """``vcc up --no-sites`` on 127.0.0.1: the router (its shards joining the Ray cluster at
    ``ray_address``), the control API and its SQLite database, the sites' links."""

    def __init__(
        self,
        ray_address: str,
        logs: Path,
        clock: NetworkClock,
        *,
        port: int = 0,
        shards: int = 2,
        name: str = "router",
    ) -> None:
        env = environment(
            RAY_ADDRESS=ray_address,
            VCC_SITE_TOKENS=json.dumps(TOKENS),
            VCC_API_KEYS=json.dumps(API_KEYS),
        )
        command = [sys.executable, "-c", "from orchestrator.cli import app; app(prog_name='vcc')"]
        args = ["up", "--no-sites", "--port", str(port), "--shards", str(shards)]
        args += ["--scenario", str(SCENARIO), "--database", f"sqlite:///{logs / 'vcc.db'}"]
        super().__init__(name, command + args + clock.args(), env, logs / f"{name}.log")
        api = self.stdout.next("API: ", 120, f"the API line of {name}")
        http_url = api.removeprefix("API: ").split()[0]
        self.url = http_url.replace("http://", "ws://")
        self.port = int(http_url.rsplit(":", 1)[1])
        self.http = httpx.Client(base_url=http_url, timeout=10)
        self.api = httpx.Client(
            base_url=f"{http_url}/v1", timeout=20, headers={"X-API-Key": ADMIN_KEY}
        )

    def health(self) -> dict[str, Any]:
        body: dict[str, Any] = self.http.get("/healthz").raise_for_status().json()
        return body

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the series ``name`` whose labels include ``labels``, as ``GET /metrics``
        (Prometheus's text format, read with its own parser) has them now."""
        text = self.http.get("/metrics").raise_for_status().text
        want = set(labels.items())
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name and want <= set(sample.labels.items())
        )

    def in_step(self, *sites: str) -> bool:
        try:
            links = self.health()["sites"]
        except httpx.HTTPError:
            return False
        return all(links[s]["connected"] and links[s]["in_step"] for s in sites)

    def view(self, site_id: str) -> dict[str, Any]:
        response = self.http.get(
            f"/sites/{site_id}/view", headers={"Authorization": f"Bearer {TOKENS[site_id]}"}
        )
        body: dict[str, Any] = response.raise_for_status().json()
        return body

    def stop(self, timeout: float = 30.0) -> int:
        self.http.close()
        self.api.close()
        return super().stop(timeout)


@dataclass
class Incarnation:
    """One process of a site: its journal, and whether it was killed."""

    site: str
    number: int
    journal: Path
    killed: bool = False
    started: float = field(default_factory=time.time)

    @property
    def label(self) -> str:
        return f"{self.site}#{self.number}"


class SiteProcess(_Process):
    """``vcc site-agent`` for one site of the scenario, journaled (tests/e2e/e2e_site.py)."""

    def __init__(
        self, site: str, router_url: str, logs: Path, clock: NetworkClock, *, number: int = 1
    ) -> None:
        self.incarnation = Incarnation(site, number, logs / f"{site}-{number}.jsonl")
        # Retry a lost router every second at most (default: backing off up to 10 s).
        env = environment(
            VCC_SITE_AGENT__TOKEN=TOKENS[site], VCC_SITE_AGENT__RECONNECT_MAX_SECONDS="1"
        )
        command = [sys.executable, str(SITE_SCRIPT), str(self.incarnation.journal), "site-agent"]
        args = ["--site", site, "--router", router_url, *clock.args()]
        args += ["--scenario", str(SCENARIO)]
        super().__init__(f"{site} site agent #{number}", command + args, env, logs / f"{site}.log")
        self.site = site
        self.stdout.next("E2E-READY", 60, f"the {self.name} to start")

    def dump(self) -> dict[str, Any]:
        """The PBX's state now (SIGUSR1; the process answers on stdout)."""
        self.popen.send_signal(signal.SIGUSR1)
        line = self.stdout.next("E2E-STATE ", 10, f"a state dump of the {self.name}")
        state: dict[str, Any] = json.loads(line.removeprefix("E2E-STATE "))
        return state

    def kill(self) -> None:
        super().kill()
        self.incarnation.killed = True


# ------------------------------------------------------------------ comparing views


def site_state(dump: dict[str, Any]) -> dict[str, Any]:
    """A site's dump in the terms both sides share."""
    agents = {}
    for agent_id, a in dump["agents"].items():
        logged_in = a["logged_in"]
        ready = logged_in and a["ready"]
        reason = a["reason"] if logged_in and not ready else None
        agents[agent_id] = (logged_in, ready, reason, logged_in and a["wrap_up"])
    calls = {cid: (c["state"], c["agent_id"]) for cid, c in dump["calls"].items()}
    return {"agents": agents, "calls": calls}


def router_state(view: dict[str, Any]) -> dict[str, Any]:
    """The router's view of a site in the same terms as :func:`site_state`."""
    agents = {}
    for agent_id, a in view["agents"].items():
        logged_in = a["state"] != "logged_out"
        ready = logged_in and a["ready"]
        reason = a["reason"] if logged_in and not ready else None
        agents[agent_id] = (logged_in, ready, reason, a["state"] == "after_contact_work")
    calls = {
        cid: (c["state"], None if c["state"] == "queued" else c["agent_id"])
        for cid, c in view["contacts"].items()
    }
    return {"agents": agents, "calls": calls}


def differences(router: dict[str, Any], site: dict[str, Any]) -> list[str]:
    lines = []
    for part in ("agents", "calls"):
        ours, theirs = router[part], site[part]
        for key in sorted(set(ours) | set(theirs)):
            if ours.get(key) != theirs.get(key):
                lines.append(f"{part[:-1]} {key}: router {ours.get(key)}, site {theirs.get(key)}")
    return lines


def views_agree(
    router: RouterProcess, site: SiteProcess, timeout: float, what: str = ""
) -> dict[str, Any]:
    """Wait for an instant at which the router's view of the site equals the site's own state:
    router view, site dump, router view again, the two router views equal (nothing moved in
    between) and equal to the dump.  Traffic keeps flowing, so a few tries may see a delivery
    or an event in flight; a lasting difference fails, listing it.  Returns the dump."""
    deadline = time.monotonic() + timeout
    tries = 0
    while True:
        tries += 1
        before = router.view(site.site)
        dump = site.dump()
        after = router.view(site.site)
        ours, theirs = router_state(after), site_state(dump)
        if after["in_step"] and router_state(before) == ours == theirs:
            return dump
        if time.monotonic() > deadline:
            lines = differences(ours, theirs) or ["(the router's view moved during each try)"]
            raise AssertionError(
                f"{what}: the router's view of {site.site} never matched the site's in "
                f"{tries} tries over {timeout:g} s (in step: {after['in_step']}); last "
                "differences:\n  " + "\n  ".join(lines[:20])
            )
        time.sleep(0.05)  # each try queries the router: no more load than needed


def quiet(dump: dict[str, Any]) -> bool:
    """The site's run is over: every agent logged out, no call ringing or talking."""
    return not any(a["logged_in"] for a in dump["agents"].values()) and all(
        c["state"] == "queued" for c in dump["calls"].values()
    )


# ------------------------------------------------------------------ judging the journals


@dataclass
class Life:
    """One contact's life across the sites' journals (counts per incarnation label)."""

    contact_id: str
    generation: int
    counts: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))

    def presence(self, label: str) -> int:
        c = self.counts[label]
        arrived = c["CallArrived"] + c["TransferredIn"]
        return arrived - c["CallTransferred"] - c["CallEnded"] - c["CallerHungUp"]

    def total(self, kind: str) -> int:
        return sum(c[kind] for c in self.counts.values())


@dataclass
class Verdict:
    lives: int = 0
    answered: int = 0
    abandoned: int = 0
    still_queued: int = 0
    in_transit: int = 0
    died_with_a_site: int = 0
    transfers: int = 0
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.lives} contacts: {self.answered} answered, {self.abandoned} abandoned, "
            f"{self.still_queued} still queued, {self.in_transit} still in transit (the "
            f"router's, listed by the site they left), {self.died_with_a_site} gone with a killed "
            f"site's PBX; {self.transfers} transfers; {len(self.problems)} problems"
        )


def read_journal(path: Path) -> list[dict[str, Any]]:
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.endswith("}"):  # a line cut by SIGKILL mid-write is not a record
            records.append(json.loads(line))
    return records


def at_dumps(
    records: list[tuple[Incarnation, dict[str, Any]]], final_dumps: dict[str, dict[str, Any]]
) -> set[tuple[str, str]]:
    """The calls each live site's journal places there when its last state was dumped: a
    caller still queued when the site fell quiet may hang up after the dump."""
    counts: dict[tuple[str, str], int] = defaultdict(int)
    change = {"CallArrived": 1, "TransferredIn": 1, "CallTransferred": -1, "CallEnded": -1}
    change["CallerHungUp"] = -1
    for inc, r in records:
        dump = final_dumps.get(inc.label)
        if dump and "contact_id" in r and r["t"] <= dump["t"]:
            counts[(inc.label, r["contact_id"])] += change.get(r["kind"], 0)
    return {key for key, present in counts.items() if present > 0}


def judge(
    incarnations: list[Incarnation],
    final_dumps: dict[str, dict[str, Any]],
    origin: dict[str, str],
) -> Verdict:
    """Every contact answered at most once, and at the end in exactly one place: ended
    (answered and finished), abandoned, or still at one live site, or else gone with the PBX
    of a killed site agent (or with its custody: sent away by it the instant before it was
    killed, its report lost with it, and taken in nowhere).  ``final_dumps``: each live
    incarnation's last state, by label; ``origin``: the site where each contact id lands
    (from the scenario's traffic).

    A restarted site off the network clock plays its traffic again, so its contact ids come
    back: an event about a contact belongs to the latest incarnation of its landing site whose
    arrival of that id came before the event (a contact created through the API lands at no
    site: generation 1)."""
    records = [(inc, r) for inc in incarnations for r in read_journal(inc.journal)]
    arrivals: dict[tuple[str, str], list[tuple[float, int]]] = defaultdict(list)
    for inc, r in records:
        if r["kind"] == "CallArrived":
            arrivals[(inc.site, r["contact_id"])].append((r["t"], inc.number))
    lives: dict[tuple[str, int], Life] = {}
    for inc, r in sorted(records, key=lambda item: item[1]["t"]):
        contact_id = r.get("contact_id")
        if contact_id is None:
            continue  # an agent's event
        if r["kind"] == "CallArrived":
            generation = inc.number
        else:
            # A contact created through the API lands nowhere: its generation is 1.
            landed = origin.get(contact_id, "")
            earlier = [n for t, n in arrivals[(landed, contact_id)] if t <= r["t"]]
            generation = max(earlier, default=1)
        key = (contact_id, generation)
        life = lives.setdefault(key, Life(contact_id, generation))
        life.counts[inc.label][r["kind"]] += 1
    verdict = Verdict(lives=len(lives))
    live_labels = {inc.label for inc in incarnations if not inc.killed}
    in_dumps = {
        (label, cid) for label, dump in final_dumps.items() for cid in dump["calls"] if dump
    }
    placed = at_dumps(records, final_dumps)
    in_transit = {c for dump in final_dumps.values() if dump for c in dump["sent_away"]}
    for (contact_id, generation), life in sorted(lives.items()):
        name = f"{contact_id} (generation {generation})"
        where = {label: life.presence(label) for label in life.counts}
        if any(p not in (0, 1) for p in where.values()):
            verdict.problems.append(f"{name}: inconsistent journal {dict(life.counts)}")
            continue
        answered = life.total("CallAnswered")
        if answered > 1:
            verdict.problems.append(f"{name}: answered {answered} times {dict(life.counts)}")
        present = [label for label, p in where.items() if p and label in live_labels]
        died = any(p for label, p in where.items() if label not in live_labels)
        # Sent away by a site agent killed before the call was taken in anywhere: the list of
        # calls it sent away (its custody of them) lived in its memory and died with it.
        died = died or (
            life.total("TransferredIn") < life.total("CallTransferred")
            and any(
                life.counts[label]["CallTransferred"] for label in where if label not in live_labels
            )
        )
        ends = life.total("CallEnded") + life.total("CallerHungUp") + len(present)
        verdict.transfers += life.total("CallTransferred")
        if ends > 1:
            verdict.problems.append(f"{name}: duplicated, ends {ends} times {dict(life.counts)}")
        elif ends == 0 and not died and contact_id in in_transit:
            verdict.in_transit += 1  # queued in the network: at no site's PBX, yet not lost
        elif ends == 0 and not died:
            verdict.problems.append(f"{name}: lost {dict(life.counts)}")
        elif ends == 0:
            verdict.died_with_a_site += 1
        elif life.total("CallEnded"):
            verdict.answered += 1
        elif life.total("CallerHungUp"):
            verdict.abandoned += 1
        else:
            verdict.still_queued += 1
    if placed != in_dumps:
        odd = sorted(placed ^ in_dumps)
        verdict.problems.append(
            f"journals and final states disagree: only in the journals {sorted(placed - in_dumps)}"
            f", only in the states {sorted(in_dumps - placed)}; their journal lines:\n  "
            + "\n  ".join(
                f"{inc.label} {r}"
                for inc, r in sorted(records, key=lambda item: item[1]["t"])
                if any(r.get("contact_id") == cid for _, cid in odd)
            )
        )
    return verdict


def stop_all(processes: Iterator[_Process] | list[_Process]) -> None:
    for process in processes:
        process.ensure_dead()
