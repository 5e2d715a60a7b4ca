"""``vcc simulate --plot``: the plotted series are the statistics' own per-interval figures (gaps
where nothing was offered), the PNG is a real picture, and a bad path is one line and exit 2."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from matplotlib.image import imread
from typer.testing import CliRunner

from orchestrator.cli import app
from site_agent.simulation.experiment import SimulationResult, simulate
from site_agent.simulation.plot import interval_series, save_plot
from site_agent.simulation.policies import POLICIES, PolicyKey
from site_agent.simulation.report import runs_json
from site_agent.simulation.scenario import SECONDS_PER_HOUR, Scenario

ScenarioBuilder = Callable[..., Scenario]
runner = CliRunner()
SITES = (("dear", 60.0), ("cheap", 30.0))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _quiet_second_hour(scenario: Scenario) -> Scenario:
    """No contacts from 01:00 to 02:00, so that measured intervals 3 to 6 offer nothing."""
    data = scenario.model_dump(mode="json")
    for stream in data["traffic"]:
        stream["profile"] = [1.0, 0.0, *[1.0] * 22]
    return Scenario.model_validate(data)


def _run(scenario: Scenario, *keys: PolicyKey, seed: int = 3) -> list[SimulationResult]:
    policies = [POLICIES[key] for key in keys] if keys else list(POLICIES.values())
    return simulate(scenario, policies, seed=seed)


@pytest.fixture
def small(one_queue: ScenarioBuilder) -> Scenario:
    """Two sites, 2.5 h with the second hour quiet: 9 measured intervals, 4 of them empty."""
    return _quiet_second_hour(
        one_queue(sites=SITES, agents=3, calls_per_hour=60.0, hours=2.5, warmup_minutes=15.0)
    )


def _nan_positions(values: tuple[float, ...]) -> list[int]:
    return [i for i, value in enumerate(values) if math.isnan(value)]


def test_series_are_the_statistics_per_interval_figures_of_every_policy(small: Scenario) -> None:
    results = _run(small)
    series = interval_series(results)
    assert series.scenario == "one-queue" and series.seed == 3
    assert series.starts == (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25)
    assert series.end == 2.5 and series.interval_minutes == 15.0
    assert series.sl_target == 0.8
    assert [p.title for p in series.policies] == [r.policy.title for r in results]
    for result, policy in zip(results, series.policies, strict=True):
        intervals = result.statistics.network.intervals
        assert [m.offered == 0 for m in intervals] == [False] * 3 + [True] * 4 + [False] * 2
        assert _nan_positions(policy.service_level) == [3, 4, 5, 6]
        for i, m in enumerate(intervals):
            if m.offered:
                assert policy.service_level[i] == m.service_level
                assert policy.cost_per_contact[i] == m.cost_per_contact
            else:
                assert math.isnan(policy.cost_per_contact[i])


def test_nobody_to_answer_is_a_zero_service_level_not_a_gap(one_queue: ScenarioBuilder) -> None:
    scenario = _quiet_second_hour(
        one_queue(sites=SITES, agents=0, calls_per_hour=60.0, hours=2.5, warmup_minutes=15.0)
    )
    [policy] = interval_series(_run(scenario, PolicyKey.SKILL)).policies
    assert policy.service_level[:3] == (0.0, 0.0, 0.0)
    assert policy.service_level[7:] == (0.0, 0.0)
    assert _nan_positions(policy.service_level) == [3, 4, 5, 6]
    # Cost per contact is cost / answered: undefined all day when nobody answers.
    assert all(math.isnan(c) for c in policy.cost_per_contact)


def test_idle_agents_give_full_service_and_labour_only_costs(one_queue: ScenarioBuilder) -> None:
    """Plenty of agents, free trunks, no wrap-up, isolated sites: every contact is answered at
    once by its landing site, so it costs that site's hourly rate x its talk time."""
    scenario = _quiet_second_hour(
        one_queue(sites=SITES, agents=30, calls_per_hour=60.0, hours=2.5, warmup_minutes=15.0)
    )
    [result] = _run(scenario, PolicyKey.ISOLATED)
    [policy] = interval_series([result]).policies
    rates = dict(SITES)
    costs: dict[int, list[float]] = {}
    measured_from = result.statistics.measured_from
    for scheduled in result.trace.contacts:
        if scheduled.contact.arrival >= measured_from:
            interval = int((scheduled.contact.arrival - measured_from) // (15 * 60))
            costs.setdefault(interval, []).append(
                rates[scheduled.site] * scheduled.handle_time / SECONDS_PER_HOUR
            )
    assert sorted(costs) == [0, 1, 2, 7, 8]
    for i, value in enumerate(policy.service_level):
        assert math.isnan(value) if i not in costs else value == 1.0
    for i, expected in costs.items():
        assert policy.cost_per_contact[i] == pytest.approx(sum(expected) / len(expected))


def test_sl_target_is_drawn_only_when_the_queues_share_one(small: Scenario) -> None:
    data = small.model_dump(mode="json")
    data["queues"].append({**data["queues"][0], "id": "vip", "sl_target": 0.9})
    mixed = Scenario.model_validate(data)
    assert interval_series(_run(mixed, PolicyKey.SKILL)).sl_target is None
    data["queues"][-1]["sl_target"] = 0.8
    shared = Scenario.model_validate(data)
    assert interval_series(_run(shared, PolicyKey.SKILL)).sl_target == 0.8


def test_series_agree_with_the_json_document_of_the_same_run(small: Scenario) -> None:
    results = _run(small)
    document = runs_json(results)
    series = interval_series(results)
    for run, policy in zip(document["runs"], series.policies, strict=True):
        intervals = run["network"]["intervals"]
        assert [i["start"] / SECONDS_PER_HOUR for i in intervals] == list(series.starts)
        for entry, sl, cost in zip(
            intervals, policy.service_level, policy.cost_per_contact, strict=True
        ):
            for reported, plotted in (
                (entry["service_level"], sl),
                (entry["cost"]["per_contact"], cost),
            ):
                if reported is None:
                    assert math.isnan(plotted)
                else:
                    assert plotted == pytest.approx(reported, abs=1e-6)
        # The intervals, weighted by what they offered and answered, give the run's totals.
        total = run["network"]["total"]
        offered = [i["offered"] for i in intervals]
        answered = [i["answered"] for i in intervals]
        assert sum(offered) == total["offered"] and sum(answered) == total["answered"]
        within = sum(n * s for n, s in zip(offered, policy.service_level, strict=True) if n)
        assert within / sum(offered) == pytest.approx(total["service_level"], abs=1e-6)
        # An interval that answered nothing has no cost per contact, yet its contacts cost;
        # in this run every busy interval answered some, so the cost adds up exactly.
        assert all(a for n, a in zip(offered, answered, strict=True) if n)
        cost = sum(n * c for n, c in zip(answered, policy.cost_per_contact, strict=True) if n)
        assert cost / sum(answered) == pytest.approx(total["cost"]["per_contact"], abs=1e-6)


def _assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC
    image = imread(path)
    assert image.shape == (700, 1000, 4)  # 10 x 7 inches at 100 dpi, RGBA
    rgb = image[..., :3]
    assert (rgb < 0.9).any(axis=-1).mean() > 0.01  # text, axes and lines, not a blank canvas
    coloured = np.ptp(rgb, axis=-1) > 0.3  # the policies' lines: not black, white or grey
    assert coloured.sum() > 500


def test_the_png_is_a_picture_whatever_the_file_is_called(small: Scenario, tmp_path: Path) -> None:
    results = _run(small)
    for name in ("plot.png", "plot.out"):
        save_plot(results, tmp_path / name)
        _assert_png(tmp_path / name)


@pytest.fixture
def scenario_file(one_queue: ScenarioBuilder, tmp_path: Path) -> Path:
    path = tmp_path / "small.yaml"
    scenario = one_queue(sites=SITES, agents=3, calls_per_hour=60.0, hours=1.0)
    path.write_text(yaml.safe_dump(scenario.model_dump(mode="json")), encoding="utf-8")
    return path


def test_cli_writes_the_plot_after_the_tables(scenario_file: Path, tmp_path: Path) -> None:
    target = tmp_path / "sl.png"
    arguments = ["simulate", "--scenario", str(scenario_file), "--compare", "--seed", "4"]
    result = runner.invoke(app, [*arguments, "--plot", str(target)])
    assert result.exit_code == 0, result.output
    assert "Cost/contact" in result.stdout
    # rich wraps long lines; the message is the last thing said, the path whole.
    assert "".join(result.stdout.split()).endswith(f"Plotwrittento{target}")
    _assert_png(target)


def test_cli_plot_beside_json_on_stdout_keeps_stdout_json(
    scenario_file: Path, tmp_path: Path
) -> None:
    target = tmp_path / "sl.png"
    arguments = ["simulate", "--scenario", str(scenario_file), "--json", "-"]
    result = runner.invoke(app, [*arguments, "--plot", str(target)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["runs"][0]["policy"]["key"] == "skill"
    _assert_png(target)


@pytest.mark.parametrize(
    ("where", "reason"),
    [
        ("missing/sl.png", "No such file or directory"),
        (".", "Is a directory"),
        ("small.yaml/sl.png", "Not a directory"),
    ],
)
def test_cli_bad_plot_path_is_one_line_and_exit_2_after_the_tables(
    scenario_file: Path, where: str, reason: str
) -> None:
    target = scenario_file.parent / where
    result = runner.invoke(
        app, ["simulate", "--scenario", str(scenario_file), "--plot", str(target)]
    )
    assert result.exit_code == 2
    assert "Offered" in result.stdout and "cheap" in result.stdout  # the run is not lost
    assert result.stderr.splitlines() == [f"vcc: {target}: cannot write plot: {reason}"]
    assert "Traceback" not in result.output
