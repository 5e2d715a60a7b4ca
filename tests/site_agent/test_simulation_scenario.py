"""Scenario files: the shipped demo, and one readable line naming the field for each mistake."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from site_agent.simulation.loading import load_scenario, shipped_scenarios
from site_agent.simulation.scenario import Scenario, ScenarioError, parse_scenario


@pytest.fixture(scope="module")
def demo() -> Scenario:
    return load_scenario("three-site-demo")


def _demo_data(demo: Scenario) -> dict[str, Any]:
    return demo.model_dump(mode="json")


def test_demo_is_three_sites_in_three_regions_with_40_to_60_agents_each(demo: Scenario) -> None:
    assert "three-site-demo" in shipped_scenarios()
    assert demo.name == "three-site-demo"
    assert len({site.region for site in demo.sites}) == 3
    network = demo.network()
    per_site = Counter(agent.site_id for agent in network.agents.values())
    assert set(per_site) == {site.id for site in demo.sites}
    assert all(40 <= count <= 60 for count in per_site.values())
    costs = sorted(site.agent_cost_per_hour for site in demo.sites)
    assert costs[-1] >= 2 * costs[0], "a spread worth least-cost routing"
    assert any(stream.required_skills for stream in demo.traffic), "a language requirement"


def test_staffing_groups_expand_to_agents_with_their_skills(demo: Scenario) -> None:
    network = demo.network()
    group = demo.staffing[0]
    agents = [network.agents[agent_id] for agent_id in group.agent_ids()]
    assert len(agents) == group.count
    assert all(dict(a.skills) == group.skills and a.site_id == group.site for a in agents)


def test_a_path_loads_like_a_name(demo: Scenario, tmp_path: Path) -> None:
    path = tmp_path / "copy.yaml"
    path.write_text(yaml.safe_dump(_demo_data(demo) | {"name": ""}), encoding="utf-8")
    loaded = load_scenario(str(path))
    assert loaded.network().agents.keys() == demo.network().agents.keys()
    assert loaded.traffic == demo.traffic


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda d: d["traffic"][0].update(site="mars"),
            "traffic[0] (mars/billing).site: unknown site 'mars'",
        ),
        (
            lambda d: d["traffic"][1].update(queue="sales"),
            "traffic[1] (amsterdam/sales).queue: unknown queue 'sales'",
        ),
        (
            lambda d: d["traffic"][0].update(profile=[1.0] * 5),
            "traffic[0].profile: has 5 entries; the length must divide 24",
        ),
        (
            lambda d: d["traffic"][0].update(colour="red"),
            "traffic[0].colour: Extra inputs are not permitted",
        ),
        (
            lambda d: d["traffic"][0]["handle_time"].update(cv=-1),
            "traffic[0].handle_time.lognormal.cv",
        ),
        (lambda d: d["staffing"][0].update(skills={"french": 5}), "unknown skill 'french'"),
        (lambda d: d["staffing"][0].update(shift={"start": 9, "end": 8}), "shift ends at 8.0 h"),
        (lambda d: d["simulation"].update(warmup_minutes=600), "simulation: warmup_minutes"),
        (
            lambda d: d["queues"][0]["targets"][0].update(skills="billing &"),
            "queues[0] (billing).targets[0]",
        ),
    ],
)
def test_a_bad_field_gives_one_line_naming_it(demo: Scenario, change: Any, expected: str) -> None:
    data = _demo_data(demo)
    change(data)
    with pytest.raises(ScenarioError) as raised:
        parse_scenario(data, "broken.yaml")
    message = str(raised.value)
    assert message.startswith("broken.yaml: ")
    assert expected in message
    assert "\n" not in message


def test_file_problems_are_one_line_errors(tmp_path: Path) -> None:
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("skills: [billing\nsites: {", encoding="utf-8")
    not_a_mapping = tmp_path / "list.yaml"
    not_a_mapping.write_text("- 1\n- 2\n", encoding="utf-8")
    cases = {
        str(tmp_path / "missing.yaml"): "cannot read scenario",
        str(bad_yaml): "invalid YAML",
        str(not_a_mapping): "a scenario is a mapping of sections, got list",
        "no-such-scenario": "no shipped scenario named 'no-such-scenario'",
    }
    for reference, expected in cases.items():
        with pytest.raises(ScenarioError, match=expected) as raised:
            load_scenario(reference)
        assert "\n" not in str(raised.value)


def test_with_hours_revalidates(demo: Scenario) -> None:
    assert demo.with_hours(2.5).simulation.hours == 2.5
    with pytest.raises(ScenarioError, match=r"simulation\.hours"):
        demo.with_hours(-1)
    with pytest.raises(ScenarioError, match="warmup_minutes"):
        demo.with_hours(0.1)
