"""``vcc up`` as an operator runs it: a real process with local Ray, the router's shards, one
server for the control API, the site links and /healthz, a database, and the scenario's sites
simulated on the network's clock; until SIGINT or SIGTERM, which stop all of it with exit
code 0.  Bad input is one line and exit code 2, before Ray starts.  And the router of `vcc up
--no-sites` and a `vcc site-agent` process given the same clock origin and speed read the same
time."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import ray
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.persistence import Database
from orchestrator.site_link import listening_socket
from site_agent.simulation.loading import load_scenario
from tests.orchestrator.prometheus_text import parse, total, value

CLI = [sys.executable, "-c", "from orchestrator.cli import app; app(prog_name='vcc')"]
SITES = {"amsterdam", "casablanca", "lisbon"}
runner = CliRunner()
T = TypeVar("T")


def environment(**settings: str) -> dict[str, str]:
    """This process's environment without Ray's address or VCC_* settings (a small local Ray
    of 2 CPUs, no dashboard), plus ``settings``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("VCC_") and k not in {"RAY_ADDRESS", "COLUMNS"}
    }
    return env | {"VCC_RAY_NUM_CPUS": "2"} | settings


class Process:
    """A ``vcc`` command as a process, its stdout (and stderr) read line by line."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        self.popen = subprocess.Popen(
            [*CLI, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.popen.stdout or ():
            self.lines.put(line.rstrip("\n"))
        self.lines.put("\0")  # end of output

    def until(self, pattern: str, timeout: float = 120.0) -> re.Match[str]:
        """The first next line matching ``pattern``; fails at the end of output or time-out."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {pattern!r} in {timeout} s: {self.output}") from None
            if line == "\0":
                raise AssertionError(f"output ended before {pattern!r}: {self.output}")
            self.seen.append(line)
            match = re.search(pattern, line)
            if match:
                return match

    @property
    def output(self) -> str:
        return "\n".join(self.seen)

    def stop(self, signum: int = signal.SIGINT, timeout: float = 60.0) -> tuple[int, float]:
        """Send ``signum``; the exit code and the seconds the process took to exit."""
        began = time.monotonic()
        self.popen.send_signal(signum)
        code = self.popen.wait(timeout=timeout)
        return code, time.monotonic() - began

    def ensure_dead(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()


@dataclass
class Api:
    url: str
    key: str

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        headers = {"Authorization": f"Bearer {self.key}"}
        response = httpx.request(
            method, f"{self.url}{path}", json=body, headers=headers, timeout=30
        )
        assert response.status_code < 300, response.text
        return response.json()


def poll(condition: Callable[[], T], timeout: float, what: str) -> T:
    """``condition()`` every 0.2 s until it is truthy; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout:g} s")


def ready_api(process: Process) -> Api:
    url = process.until(r"^API: (http://127\.0\.0\.1:\d+)  \(OpenAPI docs: \1/docs\)$")[1]
    key = process.until(r"^Admin API key \(this run only\): (vcc-\S{16,})$")[1]
    process.until(r"^Ready in [0-9.]+ s from process start .*running until interrupted")
    return Api(url, key)


# ------------------------------------------------------------------ running


@pytest.mark.slow
def test_vcc_up_serves_the_api_and_the_simulated_sites_until_interrupted(
    tmp_path: Path,
) -> None:
    database = tmp_path / "vcc.db"
    process = Process("up", "--port", "0", "--database", str(database), env=environment())
    try:
        process.until(r"^vcc up: three-site-demo: 3 sites, .* simulated here: amsterdam, ")
        api = ready_api(process)
        assert f"Database: sqlite:///{database}" in process.output
        assert f"Site links: ws://{api.url.removeprefix('http://')}/sites/{{site}}/stream" in (
            process.output
        )
        assert re.search(
            r"^Clock: the scenario's, 2026-11-23 08:00 UTC at \S+, 60x", process.output, re.M
        )

        health = httpx.get(f"{api.url}/healthz", timeout=30).json()
        assert health["shards"] == 1
        assert health["sites"] == {s: {"connected": True, "in_step": True} for s in SITES}
        assert {site["id"] for site in api.call("GET", "/v1/sites")["items"]} == SITES
        assert httpx.get(f"{api.url}/docs", timeout=30).status_code == 200

        body = {"queue": "tech", "site": "lisbon", "caller_region": "pt"}
        created = api.call("POST", "/v1/contacts", body)
        # Routed by the shards to a simulated agent, whose site takes it in and rings.
        assert created["status"] in {"reserved", "connected"}, created
        assert created["history"][1]["kind"] == "reserved"
        assert created["serving_site"] in SITES

        # Prometheus metrics beside the API: the links, the decisions, the contacts counted.
        assert f"Metrics: {api.url}/metrics (Prometheus)" in process.output
        samples = parse(httpx.get(f"{api.url}/metrics", timeout=30).raise_for_status().text)
        for site in SITES:
            assert value(samples, "vcc_site_connected", site=site) == 1
        offered = value(samples, "vcc_contacts_offered_total", queue="tech", site="lisbon")
        assert offered >= 1  # the API's contact
        assert value(samples, "vcc_router_decision_seconds_count", kind="injected") >= 1
        assert value(samples, "vcc_router_deliveries_total") >= 1
        assert total(samples, "vcc_site_agents") > 0

        code, seconds = process.stop(signal.SIGINT)
        process.until(r"^Stopped cleanly in [0-9.]+ s \(Ray included\)\.$", timeout=10)
        assert code == 0, process.output
        assert seconds < 30, seconds
        assert "Traceback" not in process.output
    finally:
        process.ensure_dead()
    # The history outlives the run: the database keeps the contact, and the next run on it
    # adds its own (every run numbers its simulated calls afresh, under the run's tag).
    db = Database(f"sqlite:///{database}")
    try:
        assert db.contacts.get(created["id"]).landing_site == "lisbon"
        first = {c.id for c in db.contacts.list(limit=500).items}
    finally:
        db.close()
    process = Process("up", "--port", "0", "--database", str(database), env=environment())
    try:
        api = ready_api(process)
        poll(
            lambda: len(api.call("GET", "/v1/contacts?limit=500")["items"]) > len(first),
            30,
            "a call of the second run",
        )
        code, _ = process.stop(signal.SIGINT)
        assert code == 0, process.output
    finally:
        process.ensure_dead()
    db = Database(f"sqlite:///{database}")
    try:
        stored = db.contacts.list(limit=500).items
        later = [c for c in stored if c.id not in first]
        tags = {c.id.split("-c")[0] for c in stored if c.id != created["id"]}
        assert len(tags) == 2, tags  # each run's calls under its own tag
        # The first run's calls still open when it stopped were taken up and closed by the
        # second (its sites' PBXs started afresh: none of them was there any more, not even
        # one in transit between two sites), but for the API's own contact, which the API
        # holds until a site has it: delivered again if it had not been answered.
        still_open = [
            c.id
            for c in stored
            if c.id in first and str(c.status) in {"queued", "reserved", "connected"}
        ]
        assert set(still_open) <= {created["id"]}, [db.contacts.get(c) for c in still_open]
        assert later
    finally:
        db.close()


@pytest.mark.slow
def test_a_router_and_a_site_agent_on_one_clock_origin_and_speed_agree_on_the_time(
    tmp_path: Path,
) -> None:
    """`vcc up --no-sites` and `vcc site-agent` started later, both given the clock origin
    and the speed: the site's calls arrive at its clock's time then (those before it started
    are not replayed), the router's clock reads the same (a call is reserved when it arrives,
    as the router sees it), and the router's own readings are the origin's time."""
    speed = 20.0
    origin = time.time()
    origin_text = datetime.fromtimestamp(origin, UTC).isoformat()
    scenario = load_scenario("three-site-demo").simulation
    start = scenario.epoch + scenario.start

    def clock_at(wall: float) -> float:  # the network's clock, as Unix time of the scenario
        return start + (wall - origin) * speed

    clock_args = ("--speed", f"{speed:g}", "--clock-origin", origin_text)
    database = tmp_path / "vcc.db"
    router = Process(
        "up",
        "--no-sites",
        "--port",
        "0",
        "--database",
        str(database),
        *clock_args,
        env=environment(),
    )
    site = None
    try:
        router.until(r"simulated here: no site")
        api = ready_api(router)
        assert f"at {origin_text}, 20x" in router.output
        token = re.search(
            r"^Site tokens \(this run only\): .*lisbon=([^,\s]+)", router.output, re.M
        )
        assert token, router.output
        links = re.search(r"--router (ws://\S+)", router.output)
        assert links, router.output

        # The router's clock: its real-time figures are stamped with its time.
        before = time.time()
        stats = api.call("GET", "/v1/stats/realtime")
        after = time.time()
        stamped = datetime.fromisoformat(stats["at"]).timestamp()
        assert clock_at(before) - 0.01 <= stamped <= clock_at(after) + 0.01

        site_started = time.time()
        site = Process(
            "site-agent",
            "--site",
            "lisbon",
            "--router",
            links[1],
            *clock_args,
            env=environment(VCC_SITE_AGENT__TOKEN=token[1]),
        )
        site.until(rf"clock origin {re.escape(origin_text)}\), router ")

        def reserved_at_lisbon() -> list[dict[str, Any]]:
            items = api.call("GET", "/v1/contacts?limit=200")["items"]
            return [c for c in items if c["landing_site"] == "lisbon" and c["reserved_at"]]

        def some_calls() -> list[dict[str, Any]]:
            assert site.popen.poll() is None, site.output
            calls = reserved_at_lisbon()
            return calls if len(calls) >= 3 else []

        calls = poll(some_calls, 120, "calls reserved at lisbon")
        now = time.time()
        arrivals = [datetime.fromisoformat(c["created_at"]).timestamp() for c in calls]
        reservations = [datetime.fromisoformat(c["reserved_at"]).timestamp() for c in calls]
        # The site's clock: its calls arrive after it started, on the origin's time, never later
        # than now; started at the scenario's start instead, they would be minutes earlier.
        assert min(arrivals) >= clock_at(site_started) - 1.0
        assert max(arrivals) <= clock_at(now) + 1.0
        # The router's clock agrees: the promptest reservation comes within a second of wall
        # time of its call's arrival, as the site stamped it (a disagreement shifts them all).
        waits = [r - a for a, r in zip(arrivals, reservations, strict=True)]
        assert -1.0 <= min(waits) <= 1.0 * speed, waits

        code, _ = site.stop(signal.SIGINT)
        assert code == 0, site.output
        code, seconds = router.stop(signal.SIGTERM)
        router.until(r"^Stopped cleanly in", timeout=10)
        assert code == 0, router.output
        assert seconds < 30, seconds
    finally:
        if site is not None:
            site.ensure_dead()
        router.ensure_dead()


def children(pid: int) -> dict[int, str]:
    """The processes whose parent is ``pid``, by pid, with their command name (Linux /proc)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # gone meanwhile
            continue
        name, rest = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :]
        if int(rest.split()[1]) == pid:
            found[int(stat.parent.name)] = name
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("command", ["up", "router"])
def test_sigterm_while_ray_starts_stops_it_cleanly_in_one_line(
    command: str, tmp_path: Path
) -> None:
    """Ray installs its own SIGTERM handler while it starts (it exits the process): vcc says
    so in one line and leaves no Ray process behind, or, if its own handler got the signal
    first, stops as it does at any other time.  The signal is sent once Ray's GCS server runs,
    which is while ``ray.init`` waits for the rest of Ray."""
    args = {
        "up": ["up", "--port", "0", "--database", str(tmp_path / "vcc.db")],
        "router": ["router", "--port", "0"],
    }[command]
    process = Process(*args, env=environment(VCC_SITE_TOKENS='{"lisbon": "t0ken"}'))
    try:
        ray_processes = poll(
            lambda: {p: n for p, n in children(process.popen.pid).items() if "gcs" in n},
            60,
            "Ray's GCS server",
        )
        code, _ = process.stop(signal.SIGTERM)
        process.until(r"stopped by SIGTERM|^Stopped cleanly|Finished server", timeout=30)
    finally:
        process.ensure_dead()
    assert "Traceback" not in process.output
    if code == 128 + signal.SIGTERM:
        assert process.seen[-1] == f"vcc {command}: stopped by SIGTERM while Ray was starting"
    else:  # the usual shutdown
        assert code == 0, process.output
    poll(lambda: not any(alive(p) for p in ray_processes), 30, f"{ray_processes} ended")


# ------------------------------------------------------------------ bad input


def fails(args: list[str], env: dict[str, str] | None = None) -> str:
    result = runner.invoke(app, ["up", "--port", "0", *args], env=env or {})
    assert result.exit_code == 2, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith("vcc: ")
    assert "Traceback" not in result.output
    return line


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--scenario", "nowhere"], {}, "no shipped scenario named 'nowhere'"),
        ([], {"VCC_CLOCK__SPEED": "0"}, "invalid VCC_* settings: clock.speed"),
        ([], {"VCC_ROUTER_SHARDS": "0"}, "invalid VCC_* settings: router_shards"),
        ([], {"VCC_SITE_TOKENS": "not json"}, "invalid VCC_* settings"),
        ([], {"VCC_SITE_TOKENS": '{"rome": "r"}'}, "sites the scenario does not have: rome"),
        (["--speed", "0"], {}, "--speed must be a positive number"),
        (["--clock-origin", "2026-01-05T09:00:00"], {}, "timezone info"),
        (["--clock-origin", "soon"], {}, "--clock-origin 'soon'"),
        (["--sites", "lisbon,rome"], {}, "--sites: the scenario has no site 'rome'"),
        (["--host", "no-such-host.invalid"], {}, "cannot listen on no-such-host.invalid:0"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2_before_ray_starts(
    args: list[str], env: dict[str, str], message: str
) -> None:
    assert message in fails(args, env)
    assert not ray.is_initialized()


def test_a_busy_port_is_one_line_and_exit_code_2_from_the_real_process() -> None:
    with listening_socket("127.0.0.1", 0) as busy:
        port = busy.getsockname()[1]
        result = subprocess.run(
            [*CLI, "up", "--port", str(port)],
            env=environment(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 2, result.stderr
    assert (
        result.stderr.strip() == f"vcc: cannot listen on 127.0.0.1:{port}: Address already in use"
    )
    assert "Traceback" not in result.stdout + result.stderr


def test_vcc_router_takes_a_speed_only_with_a_clock_origin() -> None:
    result = runner.invoke(
        app, ["router", "--speed", "20"], env={"VCC_SITE_TOKENS": json.dumps({"lisbon": "l"})}
    )
    assert result.exit_code == 2
    assert "--speed is the speed of the network's simulated clock: give --clock-origin" in (
        result.stderr
    )
    assert not ray.is_initialized()
