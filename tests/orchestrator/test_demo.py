"""``vcc demo`` as a user runs it: a real process that starts local Ray, the router, the API and
three simulated sites on loopback, runs a simulated minute and prints where things are and the
KPIs; with ``--keep-running`` it keeps serving until interrupted."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from orchestrator.demo import METRICS_NOTE, STARTUP_LIMIT_SECONDS

COMMAND = [sys.executable, "-c", "from orchestrator.cli import app; app()", "demo"]
SITES = {"amsterdam", "casablanca", "lisbon"}
# The demo starts its own local Ray: no cluster address from the environment.
ENV = {k: v for k, v in os.environ.items() if k not in {"RAY_ADDRESS", "VCC_RAY_ADDRESS"}}


def start(*args: str) -> tuple[subprocess.Popen[str], queue.Queue[str]]:
    process = subprocess.Popen(
        [*COMMAND, *args],
        env={**ENV, "COLUMNS": "160"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in process.stdout or ():
            lines.put(line)
        lines.put("")  # end of output

    threading.Thread(target=pump, daemon=True).start()
    return process, lines


def read_until(lines: queue.Queue[str], pattern: str, timeout: float = 90.0) -> list[str]:
    """Lines up to the first matching ``pattern``; fails at the end of output or time-out."""
    seen: list[str] = []
    while True:
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no line matching {pattern!r} in {timeout} s: {seen}") from None
        if line == "":
            raise AssertionError(f"output ended before {pattern!r}: {''.join(seen)}")
        seen.append(line)
        if re.search(pattern, line):
            return seen


def startup_seconds(output: str) -> float:
    match = re.search(r"Start-up: ([0-9.]+) s from process start to all 3 sites connected", output)
    assert match, output
    return float(match.group(1))


def check_accounting(kpis: dict[str, Any]) -> None:
    assert kpis["offered"] == kpis["answered"] + kpis["abandoned"] + kpis["waiting"], kpis
    assert kpis["accounted"]


def test_vcc_demo_runs_a_simulated_minute_and_prints_where_things_are_and_the_kpis(
    tmp_path: Path,
) -> None:
    report_path = tmp_path / "demo.json"
    process, lines = start("--minutes", "1", "--json", str(report_path))
    try:
        output = "".join(read_until(lines, r"^Stopped cleanly", timeout=120))
        assert process.wait(timeout=60) == 0, output
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert startup_seconds(output) < STARTUP_LIMIT_SECONDS
    url = re.search(r"API: (http://127\.0\.0\.1:\d+)  \(OpenAPI docs: \1/docs\)", output)
    assert url, output
    assert re.search(r"Admin API key \(this run only\): vcc-demo-\S{16,}", output)
    assert METRICS_NOTE.format(url=url.group(1)) in " ".join(output.split())  # rich wraps it
    for header in ("offered", "answered", "abandoned", "still waiting", "service level", "ASA"):
        assert header in output
    for site in (*SITES, "network"):
        assert re.search(rf"│ {site} +│", output), site
    assert "Accounted: every offered contact is answered, abandoned or still waiting: yes" in output

    report = json.loads(report_path.read_text())
    assert report["startup_seconds"] < STARTUP_LIMIT_SECONDS
    assert {kpis["site"] for kpis in report["sites"]} == SITES
    for kpis in [*report["sites"], report["network"]]:
        check_accounting(kpis)
    network = report["network"]
    assert network["offered"] >= 10  # about 24 calls a minute at 10:00, and 2 from the API
    assert network["answered"] >= network["offered"] // 2
    assert network["agents_logged_in"] == 156
    assert set(report["api_contacts"]) == {"api-1", "api-2"}
    assert set(report["api_contacts"].values()) <= {"queued", "reserved", "connected", "finished"}
    assert report["history_write_errors"] == 0
    assert not Path(report["database"]).exists()  # the temporary database went with the run


def test_vcc_demo_keeps_serving_the_api_through_the_router_until_interrupted() -> None:
    process, lines = start("--minutes", "0.5", "--keep-running", "--api-contacts", "0")
    try:
        output = "".join(read_until(lines, r"^Running until interrupted", timeout=120))
        url = re.search(r"API: (http://127\.0\.0\.1:\d+)", output)
        key = re.search(r"Admin API key \(this run only\): (\S+)", output)
        assert url and key, output
        headers = {"Authorization": f"Bearer {key.group(1)}", "Content-Type": "application/json"}

        def call(path: str, body: dict[str, Any] | None = None) -> Any:
            data = None if body is None else json.dumps(body).encode()
            request = urllib.request.Request(f"{url.group(1)}{path}", data, headers)
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read())

        created = call("/v1/contacts", {"queue": "tech", "site": "lisbon", "caller_region": "pt"})
        # Routed by the shards the sites use, to a simulated agent who takes it in and rings.
        assert created["status"] in {"reserved", "connected"}, created
        assert created["history"][1]["kind"] == "reserved"
        assert created["history"][1]["detail"]["from_site"] == "vcc-api"
        stats = call("/v1/stats/realtime")
        assert sum(site["agents"]["staffed"] for site in stats["sites"]) == 156
        process.send_signal(signal.SIGINT)
        rest = "".join(read_until(lines, r"^Stopped cleanly", timeout=60))
        assert process.wait(timeout=60) == 0, output + rest
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--minutes", "0"], "--minutes"),
        (["--speed", "0.5"], "--speed"),
    ],
)
def test_vcc_demo_refuses_bad_options(args: list[str], message: str) -> None:
    result = subprocess.run(
        [*COMMAND, *args], env=ENV, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert message in result.stderr
