"""``vcc router`` refuses bad input with one line and exit code 2, before starting Ray (the
running command is tested in test_site_link.py, against that module's Ray)."""

from __future__ import annotations

import json
import socket

import pytest
import ray
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.site_link import listening_socket

runner = CliRunner()
TOKENS = json.dumps({"amsterdam": "a", "lisbon": "l"})


def fails(args: list[str], env: dict[str, str]) -> str:
    result = runner.invoke(app, ["router", *args], env={"VCC_SITE_TOKENS": TOKENS, **env})
    assert result.exit_code == 2, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith("vcc: ")
    return line


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--scenario", "nowhere"], {}, "nowhere"),
        ([], {"VCC_SITE_TOKENS": "{}"}, "no site tokens: no site could connect"),
        ([], {"VCC_SITE_TOKENS": '{"rome": "r"}'}, "sites the scenario does not have: rome"),
        ([], {"VCC_SITE_TOKENS": "not json"}, "invalid VCC_* settings"),
        ([], {"VCC_ROUTER_SHARDS": "0"}, "invalid VCC_* settings"),
        (["--host", "no-such-host.invalid"], {}, "cannot listen on no-such-host.invalid:8700"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(
    args: list[str], env: dict[str, str], message: str
) -> None:
    assert message in fails(args, env)
    assert not ray.is_initialized()


def test_a_busy_port_fails_before_ray_starts() -> None:
    with listening_socket("127.0.0.1", 0) as busy:
        port = busy.getsockname()[1]
        line = fails(["--port", str(port)], {})
    assert line == f"vcc: cannot listen on 127.0.0.1:{port}: Address already in use"
    assert not ray.is_initialized()


def test_the_listening_socket_turns_nagle_off() -> None:
    with listening_socket("127.0.0.1", 0) as server:
        assert server.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert server.proto == socket.IPPROTO_TCP
