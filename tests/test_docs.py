"""The prose keeps up with the code: the Reproduce page's plan table, the README's module list, and
chapters whose hidden cells stay small."""

import re
from pathlib import Path

import pytest

from pdlib.profiles import FIGURES, PROFILES, plan_table

REPO = Path(__file__).resolve().parents[1]


def test_reproduce_page_shows_the_current_plan():
    page = (REPO / "book" / "reproduce.md").read_text()
    table = plan_table(("paper", "laptop", "smoke", "paper-dryrun"))
    rows = {re.sub(r"\s+", " ", line).strip() for line in page.splitlines() if line.startswith("|")}
    for figure, row in table.iterrows():
        expected = "| " + " | ".join([figure, *row]) + " |"
        assert re.sub(r"\s+", " ", expected) in rows, (
            f"book/reproduce.md: the plan row for {figure!r} is out of date; regenerate it from "
            f"pdlib.profiles.plan_table(): {expected}"
        )
    for name in PROFILES:
        assert f"`{name}`" in page, f"book/reproduce.md does not describe the {name} profile"
    assert set(table.index) == set(FIGURES.values())


def test_readme_layout_lists_every_module():
    readme = (REPO / "README.md").read_text()
    layout = readme[readme.index("## Layout") :]
    for module in sorted((REPO / "pdlib").glob("*.py")):
        assert module.name in layout, f"README.md's layout does not list pdlib/{module.name}"


def test_no_module_is_too_long():
    """No module of the library over 500 lines, counted as ``ruff format`` (line length 100) lays
    it out; ``make test`` checks the formatting, so long lines cannot hide size."""
    for module in (REPO / "pdlib").rglob("*.py"):
        lines = len(module.read_text().splitlines())
        name = module.relative_to(REPO)
        assert lines <= 500, f"{name} has {lines} lines (limit 500)"


def code_lines(chapter: Path) -> tuple[int, int]:
    """(hidden, visible) code lines of a chapter: non-blank, non-comment lines of its code cells,
    the papermill parameters cell left out; a cell is hidden when tagged ``remove-*``."""
    hidden = visible = 0
    for body in re.findall(r"```\{code-cell\}[^\n]*\n(.*?)```", chapter.read_text(), re.S):
        lines = body.split("\n")
        tags = next((line for line in lines if line.startswith(":tags:")), "")
        if "parameters" in tags:
            continue
        code = [
            line
            for line in lines
            if line.strip() and not line.startswith(":") and not line.strip().startswith("#")
        ]
        if "remove-" in tags:
            hidden += len(code)
        else:
            visible += len(code)
    return hidden, visible


@pytest.mark.parametrize(
    "chapter", sorted((REPO / "notebooks").glob("*.md")), ids=lambda path: path.stem
)
def test_chapters_narrate_hidden_code_is_no_more_than_the_visible(chapter):
    """Hidden cells only glue, record and check sanity (issue #23): per chapter, no more hidden
    code lines than visible ones, or at most 10."""
    if chapter.name == "README.md":
        return
    hidden, visible = code_lines(chapter)
    assert hidden <= max(visible, 10), (
        f"{chapter.name}: {hidden} hidden code lines against {visible} visible; move the "
        "computation into pdlib or show it"
    )


#: The audit feature (`python -m pdlib audit`) as opposed to the paper's core.
AUDIT_MODULES = (
    "audit/__init__.py",
    "audit/images.py",
    "report.py",
    "labelnoise.py",
    "labelrank.py",
    "userdata.py",
)


def library_sizes() -> dict:
    """Lines of pdlib (as formatted), rounded to the hundred: total, core and audit feature."""
    lines = {
        str(path.relative_to(REPO / "pdlib")): len(path.read_text().splitlines())
        for path in (REPO / "pdlib").rglob("*.py")
    }
    audit = round(sum(lines[name] for name in AUDIT_MODULES), -2)
    core = round(sum(lines.values()), -2) - audit
    # the total and the audit to the hundred, the core their difference: the sentence adds up
    return {"total": core + audit, "core": core, "audit": audit}


def test_readme_reports_the_library_size():
    sizes = library_sizes()
    expected = (
        f"about {sizes['total']:,d} lines: {sizes['core']:,d} for the paper's core and "
        f"{sizes['audit']:,d} for the audit feature"
    )
    readme = re.sub(r"\s+", " ", (REPO / "README.md").read_text())
    assert expected in readme, f"README.md should say: {expected}"
