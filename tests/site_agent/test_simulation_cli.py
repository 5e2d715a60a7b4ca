"""``vcc simulate``: tables, JSON, and one line plus exit code 2 for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from site_agent.simulation.policies import COMPARED
from site_agent.simulation.report import SCHEMA

runner = CliRunner()


def test_compare_prints_the_compared_policies_side_by_side() -> None:
    result = runner.invoke(
        app, ["simulate", "--compare", "--hours", "1.5", "--seed", "2"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    flat = " ".join(result.stdout.split())
    for policy in COMPARED:
        assert policy.key in flat and policy.summary in flat
    for site in ("amsterdam", "lisbon", "casablanca", "network"):
        assert site in result.stdout
    assert "Cost/contact" in result.stdout
    # How the network routed: flapping, transfers and the estimators' errors, per policy.
    for measure in ("Site switches", "Transfer cost", "EWT erlang_a MAE s"):
        assert measure in result.stdout


def test_single_policy_json_to_stdout_is_the_documented_document() -> None:
    result = runner.invoke(
        app, ["simulate", "--policy", "least-cost", "--hours", "1", "--json", "-"]
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["schema"] == SCHEMA
    assert document["seed"] == 7  # the settings' default seed
    [run] = document["runs"]
    assert run["policy"]["key"] == "least-cost"
    total = run["network"]["total"]
    assert total["offered"] == sum(s["total"]["offered"] for s in run["sites"].values())
    assert set(total["cost"]) == {"trunk", "transfer", "labour", "total", "per_contact", "staffed"}
    assert len(run["sites"]["lisbon"]["intervals"]) == 3  # 45 measured minutes / 15


def test_seed_comes_from_the_environment_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VCC_SEED", "11")
    result = runner.invoke(app, ["simulate", "--hours", "0.5", "--json", "-"])
    assert json.loads(result.stdout)["seed"] == 11


def test_json_file_is_written_beside_the_table(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    result = runner.invoke(app, ["simulate", "--hours", "0.5", "--json", str(target)])
    assert result.exit_code == 0, result.output
    assert "Skill, no margin" in result.stdout
    assert json.loads(target.read_text(encoding="utf-8"))["runs"][0]["policy"]["key"] == "skill"


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["--scenario", "missing/nowhere.yaml"], "cannot read scenario"),
        (["--scenario", "no-such-scenario"], "no shipped scenario"),
        (["--hours", "-2"], "simulation.hours"),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_exit_code_2(
    arguments: list[str], expected: str
) -> None:
    result = runner.invoke(app, ["simulate", *arguments])
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and expected in lines[0]
    assert "Traceback" not in result.output


def test_an_invalid_scenario_file_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("skills: [a]\nsites: []\n", encoding="utf-8")
    result = runner.invoke(app, ["simulate", "--scenario", str(path)])
    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(f"vcc: {path}: ") and "sites" in line


def test_bad_settings_in_the_environment_are_one_line_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VCC_SEED", "many")
    result = runner.invoke(app, ["simulate"])
    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert "VCC_" in line and "seed" in line
