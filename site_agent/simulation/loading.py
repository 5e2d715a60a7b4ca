"""Finding and reading scenario files: a shipped scenario by name, or any YAML file by path.

Every way a scenario can fail to load (no such file, unreadable, not YAML, not a scenario) ends
in one :class:`ScenarioError` whose message is a single line, because the command line shows it
as is and operators should not have to read a traceback to find the bad field.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import yaml

from site_agent.simulation.scenario import Scenario, ScenarioError, parse_scenario

SUFFIXES = (".yaml", ".yml")


def shipped_scenarios() -> list[str]:
    """Names of the scenarios that come with vcc (``site_agent/scenarios/*.yaml``)."""
    return sorted(
        Path(entry.name).stem
        for entry in _shipped_folder().iterdir()
        if entry.name.endswith(SUFFIXES)
    )


def load_scenario(reference: str | Path) -> Scenario:
    """Load ``reference``: a path to a YAML file, or the bare name of a shipped scenario."""
    if _is_path(reference):
        path = Path(reference)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise ScenarioError(f"{path}: cannot read scenario: {error.strerror}") from None
        return _parse(text, source=str(path), default_name=path.stem)
    name = str(reference)
    entry = _shipped_folder() / f"{name}.yaml"
    if not entry.is_file():
        known = ", ".join(shipped_scenarios()) or "none"
        raise ScenarioError(
            f"no shipped scenario named {name!r} (shipped: {known}); give a path to a YAML file"
        )
    return _parse(entry.read_text(encoding="utf-8"), source=name, default_name=name)


def _is_path(reference: str | Path) -> bool:
    path = Path(reference)
    return (
        isinstance(reference, Path)
        or path.suffix in SUFFIXES
        or len(path.parts) > 1
        or path.exists()
    )


def _shipped_folder() -> Traversable:
    return resources.files("site_agent") / "scenarios"


def _parse(text: str, *, source: str, default_name: str) -> Scenario:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ScenarioError(f"{source}: invalid YAML: {_yaml_problem(error)}") from None
    if not isinstance(data, dict):
        kind = "empty" if data is None else type(data).__name__
        raise ScenarioError(f"{source}: a scenario is a mapping of sections, got {kind}")
    data.setdefault("name", default_name)
    return parse_scenario(data, source)


def _yaml_problem(error: yaml.YAMLError) -> str:
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        return f"{error.problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(error).split())
