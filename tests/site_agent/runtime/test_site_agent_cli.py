"""``vcc site-agent``: one readable line and exit code 2 for bad input; a real process that
streams to the router until interrupted, then stops cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import pytest
from fake_router import FakeRouter, run
from typer.testing import CliRunner

from orchestrator.cli import app
from site_agent.protocol import AgentLoggedIn, Snapshot

runner = CliRunner()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--site", "paris"], "unknown site 'paris' in scenario three-site-demo"),
        (["--site", "lisbon", "--router", "lisbon:8700"], "router URL 'lisbon:8700' is not"),
        (["--site", "lisbon", "--router", "ws://host:99999"], "valid port"),
        (["--site", "lisbon", "--speed", "0"], "--speed must be a positive number"),
        (["--site", "lisbon", "--scenario", "nowhere"], "no shipped scenario named 'nowhere'"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(arguments: list[str], message: str) -> None:
    result = runner.invoke(app, ["site-agent", "--token", "t", *arguments])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_a_site_without_a_token_is_told_how_to_give_one() -> None:
    result = runner.invoke(app, ["site-agent", "--site", "lisbon"], env={"VCC_SITE_TOKENS": "{}"})
    assert result.exit_code == 2
    assert "no token for site 'lisbon'" in result.stderr


def test_the_process_streams_to_the_router_until_interrupted() -> None:
    async def body() -> tuple[int, bytes]:
        router = FakeRouter(site_id="lisbon", token="lisbon-token")
        await router.start()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "from orchestrator.cli import app; app(prog_name='vcc')",
            "site-agent",
            "--site",
            "lisbon",
            "--router",
            router.url.replace("ws://", "http://"),  # an HTTP address works as well
            "--speed",
            "120",
            "--seed",
            "3",
            env=_environment(VCC_SITE_AGENT__TOKEN="lisbon-token"),
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            await router.wait_for(
                lambda: router.messages and isinstance(router.messages[0], Snapshot),
                "the snapshot",
                timeout=15.0,
            )
            await router.wait_for(
                lambda: router.events(AgentLoggedIn) or router.messages[0].agents[0].logged_in,
                "agents logging in",
            )
            process.send_signal(signal.SIGINT)
            _, stderr = await asyncio.wait_for(process.communicate(), 10.0)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
            await router.stop()
        assert process.returncode is not None
        return process.returncode, stderr

    returncode, stderr = run(body(), timeout=30.0)
    text = stderr.decode()
    assert returncode == 0, text
    assert "Traceback" not in text
    assert "site lisbon stopped" in text


def _environment(**settings: str) -> dict[str, str]:
    """This process's environment without its VCC_* settings, plus ``settings``."""
    return {k: v for k, v in os.environ.items() if not k.startswith("VCC_")} | settings
