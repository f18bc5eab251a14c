"""environment.yml and pyproject.toml list the same packages with the same pins."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def normalise(requirement: str) -> tuple[str, str]:
    name, spec = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", requirement).groups()
    return name.lower().replace("_", "-"), spec.replace(" ", "")


def test_environment_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = project["dependencies"] + extras["test"] + extras["book"] + extras["bench"] + extras["ray"]
    pip_section = re.search(r"- pip:\n((?:\s+- .+\n)+)", (ROOT / "environment.yml").read_text()).group(1)
    listed = [line.strip()[2:] for line in pip_section.splitlines() if line.strip()]
    listed = [entry for entry in listed if not entry.startswith("-e")]
    assert sorted(map(normalise, listed)) == sorted(map(normalise, wanted))


def test_torch_pins():
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "torch==2.14.1" in dependencies and "torchvision==0.29.1" in dependencies


def test_ci_calls_make_test():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make book" in readme and "make test" in readme
