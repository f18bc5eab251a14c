"""environment.yml and pyproject.toml list the same packages with the same pins; the package needs
no
compiled code and no removed dependency."""

import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def normalise(requirement: str) -> tuple[str, str]:
    name, spec = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", requirement).groups()
    return name.lower().replace("_", "-"), spec.replace(" ", "")


def test_environment_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = project["dependencies"] + [
        requirement for extra in extras.values() for requirement in extra
    ]
    pip_section = re.search(
        r"- pip:\n((?:\s+- .+\n)+)", (ROOT / "environment.yml").read_text()
    ).group(1)
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


def test_removed_modules_and_dependencies_stay_removed():
    import importlib.util

    for module in ("capture", "probing", "depth", "consistency", "_scan", "book"):
        assert importlib.util.find_spec(f"pdlib.{module}") is None, module
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    everything = project["dependencies"] + [
        r for extra in project["optional-dependencies"].values() for r in extra
    ]
    assert not any(normalise(r)[0] == "threadpoolctl" for r in everything)
    sources = "".join(path.read_text() for path in (ROOT / "pdlib").glob("*.py"))
    assert "threadpoolctl" not in sources


def test_no_compiled_code_and_no_thread_pool_of_our_own():
    """Speed comes from torch: pdlib ships only Python and imports nothing that compiles, loads or
    threads."""
    import ast

    shipped = [
        path
        for path in (ROOT / "pdlib").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    ]
    assert shipped and all(path.suffix == ".py" for path in shipped), [
        p.name for p in shipped if p.suffix != ".py"
    ]
    # Loading compiled code needs one of the first three, a pool of our own one of the others.
    # (subprocess is allowed: the cache asks git for its SHA.)
    forbidden = (
        "ctypes",
        "cffi",
        "torch.utils.cpp_extension",
        "concurrent.futures",
        "threading",
        "multiprocessing",
    )
    for path in shipped:
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            bad = [
                name
                for name in names
                if any(name == f or name.startswith(f + ".") for f in forbidden)
            ]
            assert not bad, f"{path.name} imports {bad}"


def test_public_api_is_importable():
    import pdlib

    for name in pdlib.__all__:
        assert hasattr(pdlib, name), name
