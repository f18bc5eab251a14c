"""The smoke and paper-dryrun books build without a warning, renders offline in a headless browser,
and
shows the reader only rendered content.

Two books are built once per session, with ``python book/build.py --profile smoke`` and
``--profile paper-dryrun`` (``PDLIB_TEST_BOOKS`` chooses), each into a
temporary copy of the book's sources (so a ``laptop`` build in ``book/chapters`` and
``_build`` is left alone). Set ``PDLIB_BOOK_ROOT`` to a book root whose ``_build/html`` is
already built to check that instead (``PDLIB_BOOK_ROOT=. pytest tests/test_book.py`` checks
the laptop book); each page is then held to the profile its executed notebook records in
``metadata["pdlib"]["profile"]``.

Every page listed in ``_toc.yml`` is opened in headless Chromium, served from ``http.server``
on 127.0.0.1, and driven over the Chrome DevTools Protocol (``tests/_browser.py``): it must
render (a title, no error output), every ``<img>`` must load, MathJax must typeset every
formula, no request may leave 127.0.0.1, and no code block may be wider than its column at
a 1280 px window. The rendered page must not show the reader (issue 15):

1. ``NBVAL_CHECK_OUTPUT`` anywhere;
2. an ``assert`` in a visible code cell;
3. MyST that was not rendered: a role (``{doc}`...```, ``{glue:text}``), ``{cite:``, a
   `````` fence or a ``:::`` fence in the page's text (code listings excepted);
4. a parameters cell or a "Parameters of this run" box that names another profile than
   the one the page ran with;
5. a visible code line over 88 characters (checked in the executed notebooks, and by
   measuring every code block in the browser);
6. a table cell printing an integer as a float (``40.000``);
7. output a cell wrote to stderr (a library's warning, a progress bar).

Each check is a function of the page's HTML (or of a notebook), unit-tested below on small
hand-written pages, so that it is known to fail on a bad page and pass on a good one.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import _browser
import pytest

REPO = Path(__file__).resolve().parents[1]
BUILD_TIMEOUT_S = (
    2400  # measured on 2 idle cores: paper-dryrun ~3.5 min, smoke ~5.5 min from an empty cache
)
MAX_CODE_LINE = 88  # characters of a visible code line (black's default; it fits the column)


def _load_runner():
    """``book/build.py``, the book's runner (a script, not part of the pdlib package)."""
    spec = importlib.util.spec_from_file_location("pdlib_book_build", REPO / "book" / "build.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


build = _load_runner()
CHAPTER_DIR = build.CHAPTER_DIR


# --------------------------------------------------------------------------- page checks


def _soup(html: str):
    from bs4 import BeautifulSoup

    return BeautifulSoup(html, "html.parser")


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("\xa0", " ")).strip()


def _classes(tag) -> list[str]:
    return tag.get("class") or []


_NOT_SHOWN = {"script", "style", "template", "noscript"}


def _reader_text(soup, *, code: bool) -> str:
    """The text of the page's body as a reader sees it: no scripts, styles or formulas (their
    TeX braces are not MyST). With ``code=False``, code listings and inline code are left out
    too (they may show MyST syntax on purpose), but cell outputs always count."""
    from bs4.element import PreformattedString

    body = soup.body or soup
    parts = []
    for string in body.find_all(string=True):
        if isinstance(string, PreformattedString):  # comments, CDATA, doctype
            continue
        in_code = in_output = hidden = False
        for parent in string.parents:
            if parent is None or parent is body:
                break
            name, classes = parent.name or "", _classes(parent)
            if name in _NOT_SHOWN or name == "math" or name.startswith("mjx-") or "math" in classes:
                hidden = True
                break
            in_code |= name in ("pre", "code")
            in_output |= "cell_output" in classes
        if not hidden and (code or in_output or not in_code):
            parts.append(str(string))
    return "".join(parts)


def _excerpt(text: str, start: int, end: int, width: int = 40) -> str:
    return _squash(text[max(0, start - width) : end + width])


def check_nbval_markers(html: str) -> list[str]:
    """``NBVAL_CHECK_OUTPUT`` (an nbval marker: a test, not prose) anywhere in the page."""
    text = _reader_text(_soup(html), code=True)
    return [
        f"nbval marker shown: ...{_excerpt(text, m.start(), m.end())}..."
        for m in re.finditer(r"NBVAL_\w+", text)
    ]


def check_asserts(html: str) -> list[str]:
    """``assert`` statements in the inputs of visible code cells (they belong in removed cells)."""
    problems = []
    for cell_input in _soup(html).find_all("div", class_="cell_input"):
        for line in cell_input.get_text().splitlines():
            if re.match(r"\s*assert\b", line):
                problems.append(f"assert in a visible code cell: {line.strip()[:120]!r}")
    return problems


_RAW_MYST = re.compile(
    r"""
    \{[a-z][\w-]*(?::[\w-]*)+\}   # a domain role or unformatted template: {glue:text}, {cite:p}
  | \{[a-z][\w-]*\}`             # a role with its target: {doc}`methods`
  | \{(?:doc|ref|numref|eq|glue|math|term|download|abbr|cite|index|code-cell|figure|image
        |admonition|note|warning|tip|important|seealso|dropdown|margin|toctree|bibliography
        |list-table|table|tableofcontents)\}
  | \{cite:                      # a citation cut short
  | ```                          # a backtick fence
  | :::                          # a colon fence
  | `[^`\s][^`]*`               # inline code left as text (e.g. glued into a sentence)
""",
    re.VERBOSE,
)


def check_raw_myst(html: str) -> list[str]:
    """MyST roles, directives and fences that reached the reader as text (code listings and
    inline code excepted; cell outputs included)."""
    soup = _soup(html)
    text = _reader_text(soup, code=False)
    found = {
        f"unrendered MyST {m.group()!r}: ...{_excerpt(text, m.start(), m.end())}...": None
        for m in _RAW_MYST.finditer(text)
    }
    # A glue role never belongs on a page, not even inside a code literal.
    everything = soup.get_text()
    found |= {
        f"unrendered glue role: ...{_excerpt(everything, m.start(), m.end())}...": None
        for m in re.finditer(r"\{glue", everything)
    }
    return list(found)


def check_parameters(html: str, profile: str, stem: str | None = None) -> list[str]:
    """The parameters cell reads ``profile = "<profile>"``, papermill's injected cell is hidden,
    and the "Parameters of this run" box names ``profile``. A chapter (``stem`` given) must
    have both, and its box the command that re-runs it."""
    soup = _soup(html)
    problems, parameter_cells = [], []
    for cell in soup.find_all("div", class_="cell"):
        cell_input = cell.find("div", class_="cell_input")
        if cell_input is None:
            continue
        source = cell_input.get_text()
        if "tag_injected-parameters" in _classes(cell):
            problems.append(
                f"papermill's injected parameters cell is shown: {_squash(source)[:120]!r}"
            )
        elif "tag_parameters" in _classes(cell) or re.match(r"\s*profile\s*=", source):
            parameter_cells.append(source)
    if stem is not None and not parameter_cells:
        problems.append(
            "no parameters cell (a code cell tagged `parameters` that starts with `profile =`)"
        )
    for source in parameter_cells:
        line = re.search(r"^\s*profile\s*=\s*(.*?)\s*(?:#.*)?$", source, re.MULTILINE)
        if line is None:
            problems.append(
                f"the parameters cell does not set `profile`: {_squash(source)[:120]!r}"
            )
        elif line.group(1) not in (f'"{profile}"', f"'{profile}'"):
            problems.append(
                f"the parameters cell reads {line.group(0).strip()!r}; "
                f"the page ran with profile {profile!r}"
            )
    titles = [
        t
        for t in soup.find_all(class_="admonition-title")
        if "Parameters of this run" in t.get_text()
    ]
    if stem is not None and not titles:
        problems.append("no 'Parameters of this run' box")
    if len(titles) > 1:
        problems.append(f"{len(titles)} 'Parameters of this run' boxes")
    expected = f"Parameters of this run: profile {profile}"
    for title in titles:
        if _squash(title.get_text()) != expected:
            problems.append(f"the box is titled {_squash(title.get_text())!r}, not {expected!r}")
        rerun = f"papermill notebooks/{stem}.ipynb out.ipynb -p profile {profile}"
        # The box may break the command over lines with a shell continuation.
        if stem is not None and rerun not in _squash(title.parent.get_text()).replace(" \\ ", " "):
            problems.append(f"the box lacks the re-run command {rerun!r}")
    return problems


# A whole cell that is an integer written as a float: 40.000, 4,000.0, -12.00. Not 0, 1 or 100,
# which float columns reach legitimately (a probability, a correlation, a percentage).
_INTEGER_AS_FLOAT = re.compile(r"[-+\u2212]?(?:\d{1,3}(?:,\d{3})+|\d+)\.0+")
# A column of averages may land on a whole number (every toy network of paper-dryrun gives each
# point the same PD, so "mean PD" reads 13.00); a count never needs decimals.
_AVERAGE_HEADER = re.compile(r"\b(mean|median|average)\b", re.IGNORECASE)


def _column_header(cell) -> str:
    """The text of ``cell``'s column header, matched from the right (index cells span rows)."""
    row, table = cell.find_parent("tr"), cell.find_parent("table")
    header = table.find("thead").find("tr") if table is not None and table.find("thead") else None
    if row is None or header is None:
        return ""
    from_right = row.find_all(["th", "td"], recursive=False)[::-1].index(cell)
    headers = header.find_all(["th", "td"], recursive=False)[::-1]
    return _squash(headers[from_right].get_text()) if from_right < len(headers) else ""


def check_integer_floats(html: str) -> list[str]:
    """Table cells (``<td>``) whose whole text is an integer printed as a float, e.g. ``40.000``,
    outside columns of averages."""
    problems = []
    for cell in _soup(html).find_all("td"):
        text = _squash(cell.get_text())
        if not _INTEGER_AS_FLOAT.fullmatch(text):
            continue
        if abs(float(text.replace(",", "").replace("\u2212", "-"))) in (0, 1, 100):
            continue
        if _AVERAGE_HEADER.search(_column_header(cell)):
            continue
        row = cell.find_parent("tr")
        first = row.find(["th", "td"]) if row is not None else None
        label = _squash(first.get_text())[:60] if first is not None and first is not cell else ""
        problems.append(
            f"table cell {text!r} prints an integer as a float"
            + (f" (row {label!r})" if label else "")
        )
    return problems


def page_problems(html: str, profile: str | None, stem: str | None = None) -> list[str]:
    """Every check of the rendered page (the code-width checks are separate)."""
    problems = check_nbval_markers(html) + check_asserts(html) + check_raw_myst(html)
    if profile is not None:
        problems += check_parameters(html, profile, stem)
    return problems + check_integer_floats(html) + check_stderr(html)


def check_stderr(html: str) -> list[str]:
    """Output a cell wrote to stderr (a library's warning, a progress bar): noise for the reader."""
    return [
        f"stderr output shown: {_squash(block.get_text())[:160]!r}"
        for block in _soup(html).select(".output.stderr")
    ]


_HIDDEN_TAGS = {"remove-cell", "remove_cell", "remove-input", "remove_input"}


def check_code_lines(nb, limit: int = MAX_CODE_LINE) -> list[str]:
    """Lines longer than ``limit`` in the code cells a page shows (not tagged remove-cell or
    remove-input)."""
    problems = []
    for index, cell in enumerate(nb.cells):
        tags = set(cell.get("metadata", {}).get("tags", []))
        hidden = cell.get("metadata", {}).get("mystnb", {}).get("remove_code_source", False)
        if cell.get("cell_type") != "code" or tags & _HIDDEN_TAGS or hidden:
            continue
        for number, line in enumerate(cell.source.splitlines(), 1):
            if len(line) > limit:
                problems.append(
                    f"cell {index} line {number} ({len(line)} > {limit} characters): {line}"
                )
    return problems


# --------------------------------------------------------------------------- the checks, on small
# pages


def _page(body: str) -> str:
    return (
        "<!DOCTYPE "
        f"html><html><head><title>t</title></head><body><main><h1>Title</h1>{body}</main>"
        f"<script>var s = '```{{doc}}`x` NBVAL_CHECK_OUTPUT';</script></body></html>"
    )


def _code_cell(source: str, tags: str = "") -> str:
    escaped = source.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return (
        f'<div class="cell {tags} docutils container"><div class="cell_input docutils '
        'container">'
        '<div class="highlight-ipython3 notranslate"><div '
        f'class="highlight"><pre><span></span>{escaped}\n'
        f"</pre></div></div></div></div>"
    )


def _box(profile: str, stem: str = "section3_consistency") -> str:
    return (
        '<div class="admonition note dropdown"><p class="admonition-title">Parameters of '
        "this run: "
        f"profile {profile}</p><p>Executed with profile <strong>{profile}</strong>.</p>"
        f'<div class="highlight-bash notranslate"><div class="highlight"><pre><span></span>'
        f'<span class="w">papermill</span> notebooks/{stem}.ipynb out.ipynb -p profile '
        f"{profile}\n"
        f"</pre></div></div></div>"
    )


GOOD_CHAPTER = _page(
    _box("smoke")
    + _code_cell('profile = "smoke"  # smoke | laptop | paper | paper-dryrun', "tag_parameters")
    + _code_cell("stats = run(config)\nprint(stats)")
    + '<div class="cell docutils container"><div class="cell_output docutils container">'
    "<table><thead><tr><th></th><th>accuracy</th><th>networks</th></tr></thead><tbody>"
    "<tr><th>easy</th><td>0.500</td><td>40</td></tr><tr><th>hard</th><td>1.000</td><td>4,000</td></tr>"
    "<tr><th>exact</th><td>100.00</td><td>0.000</td></tr><tr><th>ci</th><td>0.200 [0.000, "
    "0.250]</td>"
    "<td>47.0 % (39/83)</td></tr></tbody></table>"
    "<table><thead><tr><th></th><th></th><th>mean PD "
    "(train)</th><th>networks</th></tr></thead><tbody>"
    '<tr><th rowspan="2">mlp</th><th>0</th><td>8.000</td><td>3</td></tr>'
    "<tr><th>1</th><td>7.500</td><td>3</td></tr></tbody></table></div></div>"
    + '<p>Write <code class="docutils literal">{doc}`methods`</code> and <code>:::</code> for a '
    "fence; "
    'see <a href="methods.html">Methods</a>, <span class="math notranslate">\\(x_{i} = '
    "{a}\\)</span>.</p>" + '<div class="highlight-md"><div class="highlight"><pre>```{figure} '
    "a.png\n```\n:::{note}\n:::</pre></div></div>"
)


def test_checks_pass_a_good_page():
    assert page_problems(GOOD_CHAPTER, "smoke", "section3_consistency") == []
    assert page_problems(_page("<p>Methods: nothing to run.</p>"), "smoke") == []


@pytest.mark.parametrize(
    "body, expected",
    [
        (_code_cell("# NBVAL_CHECK_OUTPUT\nprint(1)"), "NBVAL_CHECK_OUTPUT"),
        ("<p>checked: NBVAL_CHECK_OUTPUT</p>", "NBVAL_CHECK_OUTPUT"),
        (_code_cell("x = 1\nassert x == 1, 'one'"), "assert x == 1, 'one'"),
        (_code_cell("for t in ts:\n    assert t > 0"), "assert t > 0"),
        ("<p>The ensemble reaches {glue:text}`acc:.2f` on average.</p>", "{glue:text}"),
        ("<p>The ensemble reaches {glue:}`acc` on average.</p>", "{glue:}"),
        ('<p>See {doc} <code class="docutils literal">methods</code>.</p>', "{doc}"),
        ("<p>As in {doc}`methods`.</p>", "{doc}`"),
        ("<p>PD {cite:p}`baldock2021` orders images.</p>", "{cite:p}"),
        ("<p>PD {cite:t orders images.</p>", "{cite:"),
        ("<p>```{figure} fig.png</p>", "```"),
        ("<p>:::{note}</p><p>A note.</p><p>:::</p>", ":::"),
        ("<p>not on disk (`python -m pdlib download`)</p>", "`python -m pdlib download`"),
        (
            '<div class="cell"><div class="cell_output"><pre>{glue:text}`x`</pre></div></div>',
            "{glue:text}",
        ),
        (
            '<p>the middle probe, <code class="docutils literal"><span class="pre">'
            "{glue:text}`middle_probe`</span></code>, is right</p>",
            "unrendered glue role",
        ),
        ("<table><tr><th>networks</th><td>40.000</td></tr></table>", "'40.000'"),
        ("<table><tr><th>pool</th><td> 4000.000 </td></tr></table>", "'4000.000'"),
        ("<table><tr><th>pool</th><td>4,000.0</td></tr></table>", "'4,000.0'"),
        ("<table><tr><td>12.00</td></tr></table>", "'12.00'"),
        (
            '<div class="cell_output"><div class="output stderr '
            'highlight-myst-ansi"><pre>TqdmWarning: '
            "IProgress not "
            "found</pre></div></div>",
            "stderr output shown: 'TqdmWarning",
        ),
        (
            "<table><thead><tr><th></th><th></th><th>mean "
            "PD</th><th>networks</th></tr></thead><tbody><tr>"
            '<th rowspan="2">mlp</th><th>0</th><td>8.000</td><td>3</td></tr>'
            "<tr><th>1</th><td>7.000</td>"
            "<td>40.000</td></tr></tbody></table>",
            "'40.000' prints an integer as a float (row '1')",
        ),
    ],
)
def test_checks_fail_a_bad_page(body, expected):
    problems = page_problems(_page(body), None)
    assert problems, f"no problem found in {body!r}"
    assert any(expected in problem for problem in problems), problems


@pytest.mark.parametrize(
    "page, expected",
    [
        (
            GOOD_CHAPTER.replace('profile = "smoke"', 'profile = "laptop"'),
            'reads \'profile = "laptop"',
        ),
        (
            GOOD_CHAPTER.replace("this run: profile smoke", "this run: profile laptop"),
            "profile laptop'",
        ),
        (GOOD_CHAPTER.replace("-p profile smoke", "-p profile laptop"), "lacks the re-run command"),
        (
            GOOD_CHAPTER.replace("tag_parameters", "").replace(
                'profile = "smoke"', 'n = 3\nprofile = "smoke"'
            ),
            "no parameters cell",
        ),
        (
            GOOD_CHAPTER.replace("Parameters of this run", "Settings"),
            "no 'Parameters of this run' box",
        ),
        (
            GOOD_CHAPTER
            + _code_cell('# Parameters\nprofile = "smoke"', "tag_injected-parameters remove-cell"),
            "injected parameters cell is shown",
        ),
    ],
)
def test_parameters_check_fails_on_the_wrong_profile(page, expected):
    problems = check_parameters(page, "smoke", "section3_consistency")
    assert any(expected in problem for problem in problems), problems
    assert check_parameters(GOOD_CHAPTER, "smoke", "section3_consistency") == []
    assert check_parameters(GOOD_CHAPTER, "paper", "section3_consistency"), (
        "a smoke page passed as paper"
    )


def test_code_line_check_reports_the_long_line():
    import nbformat

    long = "x = " + "1 + " * 30 + "1"
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("# Title\n\n" + "word " * 40),
            nbformat.v4.new_code_cell("short = 1\n" + long),
            nbformat.v4.new_code_cell(long, metadata={"tags": ["remove-cell"]}),
            nbformat.v4.new_code_cell(long, metadata={"tags": ["remove-input"]}),
            nbformat.v4.new_code_cell("y = " + "2" * (MAX_CODE_LINE - 4)),  # exactly the limit
        ]
    )
    assert check_code_lines(nb) == [
        f"cell 1 line 2 ({len(long)} > {MAX_CODE_LINE} characters): {long}"
    ]


def test_discussion_renders_contrary_verdicts_and_stops_on_a_passing_control(tmp_path, monkeypatch):
    """The verdict path on contrary data: every claim recorded "not reproduced" renders as such and
    the page builds; a control that reads "partly reproduced" stops it (the design gate)."""
    from pdlib import claims
    from pdlib.verdicts import Judgement

    monkeypatch.setenv("PDLIB_CACHE", str(tmp_path / "cache"))
    contrary = Judgement("not reproduced", "measured against the paper (fail)", "contrary data")
    for claim in claims.CLAIMS:
        claims.record(claim.key, contrary, profile="smoke", setting="synthetic")
        if claim.key in claims.CONTROLS:
            claims.record_control(claim.key, contrary, profile="smoke")
    source = REPO / "notebooks" / "discussion.md"
    build.execute_chapter(source, tmp_path / "discussion.ipynb", "smoke", REPO, kind="refs")
    text = (tmp_path / "discussion.ipynb").read_text()
    assert text.count("not reproduced") >= 2 * len(claims.CLAIMS)
    assert "none reads reproduced or partly reproduced: True" in text
    claims.record_control("knn_fix", Judgement("partly reproduced", "", ""), profile="smoke")
    with pytest.raises(Exception, match="a control passed"):
        build.execute_chapter(source, tmp_path / "gate.ipynb", "smoke", REPO, kind="refs")


def test_toc_chapters_have_sources():
    missing = [
        stem for stem in build.toc_chapters(REPO) if stem not in build.notebook_sources(REPO)
    ]
    assert not missing, f"_toc.yml lists chapters without notebooks/<name>.md: {missing}"


# --------------------------------------------------------------------------- building


def _copy_book_sources(root: Path) -> None:
    """The book's sources without its executed chapters or build output."""
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(REPO / name, root / name)
    shutil.copytree(
        REPO / "book",
        root / "book",
        ignore=lambda d, names: [
            n for n in names if n in ("chapters", "_build") or n.endswith(".ipynb")
        ],
    )
    shutil.copytree(
        REPO / "notebooks",
        root / "notebooks",
        ignore=lambda d, names: [
            n for n in names if n.endswith(".ipynb") or n == ".ipynb_checkpoints"
        ],
    )
    if (REPO / "data").is_dir():  # notebooks run with the book root as working directory
        (root / "data").symlink_to(REPO / "data", target_is_directory=True)


def _build_report(log: str) -> str:
    """What a failed build said: each failed chapter's error, Sphinx's warnings, the summary."""
    failed = [
        block[:3000]
        for block in re.findall(
            r"^\[book\] \S+ "
            r"FAILED.*?(?=^\[book\]|\Z)",
            log,
            re.S | re.M,
        )
    ]
    warnings = [
        line
        for line in log.splitlines()
        if re.search(r"\b(WARNING|ERROR)\b", line) and "IPKernelApp" not in line
    ]
    summary = log[log.find("[book] wall times") :] if "[book] wall times" in log else log[-4000:]
    return "\n".join(failed + warnings[:60] + [summary[-4000:]])


#: The books make test builds: smoke (the chapters nbval has just executed, built from the same
#: run cache, so mostly re-reading cached runs) and paper-dryrun (the paper profile's plan at toy
#: scale on stand-in files: every dataset, architecture, chapter and code path a GPU run takes).
#: ``PDLIB_TEST_BOOKS=paper-dryrun`` builds one.
BOOK_PROFILES = tuple(os.environ.get("PDLIB_TEST_BOOKS", "smoke,paper-dryrun").split(","))


@pytest.fixture(scope="module", params=BOOK_PROFILES)
def book_root(request, tmp_path_factory) -> Path:
    prebuilt = os.environ.get("PDLIB_BOOK_ROOT")
    if prebuilt:
        if request.param != BOOK_PROFILES[0]:
            pytest.skip("PDLIB_BOOK_ROOT checks one prebuilt book")
        root = Path(prebuilt).resolve()
        assert (root / "_build" / "html").is_dir(), f"PDLIB_BOOK_ROOT={root} has no _build/html"
        return root
    root = tmp_path_factory.mktemp(f"book-{request.param}")
    _copy_book_sources(root)
    env = {**os.environ, "PDLIB_QUIET": "1"}
    command = [
        sys.executable,
        str(REPO / "book" / "build.py"),
        "--profile",
        request.param,
        "--root",
        str(root),
    ]
    try:
        done = subprocess.run(
            command, cwd=REPO, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S
        )
    except subprocess.TimeoutExpired as error:
        out = (
            error.stdout.decode(errors="replace")
            if isinstance(error.stdout, bytes)
            else (error.stdout or "")
        )
        pytest.fail(
            f"the {request.param} book did not build within {BUILD_TIMEOUT_S} s:\n{out[-4000:]}"
        )
    assert done.returncode == 0, (
        f"python book/build.py --profile {request.param} failed (exit status "
        f"{done.returncode}):\n{_build_report(done.stdout + done.stderr)}"
    )
    return root


@pytest.fixture(scope="module")
def toc_pages(book_root) -> list[str]:
    pages = build.toc_files(book_root)
    assert pages, "_toc.yml lists no pages"
    return pages


@pytest.fixture(scope="module")
def page_profiles(book_root, toc_pages) -> dict[str, str | None]:
    """``{page: profile}``: each chapter's from its executed notebook; the book's for the other
    pages."""
    import nbformat

    chapters, problems = {}, []
    for page in toc_pages:
        if page.startswith(CHAPTER_DIR + "/"):
            path = book_root / f"{page}.ipynb"
            profile = (
                nbformat.read(path, as_version=4).metadata.get("pdlib", {}).get("profile")
                if path.is_file()
                else None
            )
            if profile is None:
                problems.append(
                    f"{path}: no executed notebook recording metadata['pdlib']['profile']"
                )
            chapters[page] = profile
    assert not problems, "\n".join(problems)
    if not os.environ.get("PDLIB_BOOK_ROOT"):
        assert len(set(chapters.values())) == 1, f"one build recorded several profiles: {chapters}"
    used = set(chapters.values())
    book_profile = (
        used.pop() if len(used) == 1 else None
    )  # a mixed book: pages without a profile skip the check
    return {page: chapters.get(page, book_profile) for page in toc_pages}


def _stem(page: str) -> str | None:
    return page[len(CHAPTER_DIR) + 1 :] if page.startswith(CHAPTER_DIR + "/") else None


def _report(problems: dict[str, list[str]], what: str) -> str:
    return f"{what}:\n" + "\n".join(
        f"{page}:\n  " + "\n  ".join(items) for page, items in problems.items()
    )


@pytest.mark.book
@pytest.mark.slow
def test_every_toc_page_is_built(book_root, toc_pages, page_profiles):
    html_dir = book_root / "_build" / "html"
    missing = [page for page in toc_pages if not (html_dir / f"{page}.html").is_file()]
    assert not missing, f"pages in _toc.yml without HTML: {missing}"
    timings = json.loads((book_root / "_build" / "timings.json").read_text())
    timed = {(r["chapter"], r.get("profile")) for r in timings if r.get("stage") == "execute"}
    untimed = [
        page
        for page in toc_pages
        if _stem(page) and (_stem(page), page_profiles[page]) not in timed
    ]
    assert not untimed, (
        f"chapters without an execute timing for their profile in _build/timings.json: {untimed}"
    )


@pytest.mark.book
@pytest.mark.slow
def test_dryrun_chapters_show_the_papers_datasets(book_root, page_profiles):
    """The paper profile's plan at toy scale: CIFAR10, CIFAR100 and SVHN appear where the paper
    shows them."""
    if set(page_profiles.values()) - {None} != {"paper-dryrun"}:
        pytest.skip("checks the paper-dryrun book")
    html = book_root / "_build" / "html" / CHAPTER_DIR
    expected = {
        "section2_prediction_depth": ("cifar10", "cifar100", "svhn", "fashion_mnist"),
        "section3_consistency": ("cifar10", "cifar100"),
        "section3_learning_margins": ("cifar10", "svhn"),
        "section4_difficulty_types": ("cifar10",),
    }
    missing = {
        stem: [name for name in names if name not in (html / f"{stem}.html").read_text()]
        for stem, names in expected.items()
    }
    assert not any(missing.values()), f"paper-dryrun chapters lack the paper's datasets: {missing}"


@pytest.mark.book
@pytest.mark.slow
def test_reproduce_page_shows_every_profile_and_figure(book_root):
    from pdlib.profiles import FIGURES, PROFILES

    page = book_root / "_build" / "html" / "book" / "reproduce.html"
    text = _squash(_soup(page.read_text()).get_text())
    missing = [
        f"profile {name!r}"
        for name in PROFILES
        if not re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text)
    ]
    missing += [
        f"figure {description!r}" for description in FIGURES.values() if description not in text
    ]
    assert not missing, (
        "book/reproduce (the plan table of pdlib.profiles.plan_table()) lacks:\n"
        + "\n".join(missing)
    )


@pytest.mark.book
@pytest.mark.slow
def test_pages_show_only_rendered_content(book_root, toc_pages, page_profiles):
    """The built HTML files; the browser test repeats these checks on the live page."""
    problems = {}
    for page in toc_pages:
        html = (book_root / "_build" / "html" / f"{page}.html").read_text(errors="replace")
        found = page_problems(html, page_profiles[page], _stem(page))
        if found:
            problems[page] = found
    assert not problems, _report(
        problems, "pages that show the reader source, tests or wrong values"
    )


@pytest.mark.book
@pytest.mark.slow
def test_visible_code_lines_fit_the_column(book_root, toc_pages):
    import nbformat

    problems = {}
    for page in toc_pages:
        if _stem(page):
            found = check_code_lines(nbformat.read(book_root / f"{page}.ipynb", as_version=4))
            if found:
                problems[f"{page}.ipynb"] = found
    assert not problems, _report(
        problems,
        f"visible code lines over {MAX_CODE_LINE} characters "
        f"(wrap them, or tag the cell remove-input)",
    )


@pytest.mark.book
@pytest.mark.slow
def test_html_loads_only_local_resources(book_root):
    html_dir = book_root / "_build" / "html"
    remote = []
    for page in sorted(html_dir.rglob("*.html")):
        parser = _browser.ResourceLinks()
        parser.feed(page.read_text(errors="replace"))
        remote += [
            f"{page.relative_to(html_dir)}: {url}"
            for url in parser.urls
            if not _browser.is_local(url)
        ]
    for css in sorted((html_dir / "_static").rglob("*.css")):
        for url in re.findall(r"url\(\s*['\"]?([^'\")]+)", css.read_text(errors="replace")):
            if not _browser.is_local(url):
                remote.append(f"{css.relative_to(html_dir)}: {url}")
    assert not remote, "the built HTML loads remote resources:\n" + "\n".join(remote[:40])
    mathjax = html_dir / "_static" / "mathjax" / "tex-chtml.js"
    assert mathjax.is_file(), "MathJax is not served from _static/mathjax (sphinx-mathjax-offline)"


# --------------------------------------------------------------------------- browser


@pytest.fixture(scope="module")
def server(book_root):
    with _browser.serve(book_root / "_build" / "html") as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    chromium = _browser.find_chromium()
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail(
                "Chromium is not installed, and CI is set: the offline browser test must run in CI "
                "(make browser installs Debian's chromium)"
            )
        pytest.skip(
            "Chromium is not installed (make browser installs it); the offline browser "
            "test is skipped"
        )
    try:
        with _browser.chromium_session(chromium) as client:
            yield client
    except _browser.BrowserError as error:
        pytest.fail(str(error))


@pytest.mark.slow
def test_code_width_probe_finds_a_wide_line(browser):
    """The browser's width check, on a hand-written page: a line too wide for its column is
    found."""
    long = "x = " + "1 + " * 60 + "1"
    page = (
        "<html><body><main style='width: 600px'><div class='cell'><div class='cell_input'><div "
        "class='highlight'><pre style='overflow: auto'>short = 1</pre></div></div><div "
        "class='cell_output'><div class='highlight'><pre style='overflow: "
        f"auto'>{long}</pre></div></div></div><details><summary>more</summary><div "
        "class='highlight'><pre style='overflow: auto'>y = "
        f"2\n{long}</pre></div></details></main></body></html>"
    )
    _browser.visit(browser, "data:text/html;base64," + base64.b64encode(page.encode()).decode())
    report = _browser.wide_code(browser)
    assert report["viewport"] == _browser.WINDOW[0]
    assert [w["line"] for w in report["wide"]] == [long], report  # the hidden one, not the output
    assert report["tables"] == [], report


@pytest.mark.slow
def test_table_width_probe_finds_a_wide_table(browser):
    """A table wider than its output column is found; a narrow one is not."""
    row = "".join(f"<th>column {i}</th>" for i in range(40))
    page = (
        "<html><body><main style='width: 600px'><div class='cell'><div class='cell_output' "
        f"style='overflow: auto'><table><tr>{row}</tr></table></div><div "
        "class='cell_output'><table><tr><th>narrow</th></tr></table></div></div></main></body></html>"
    )
    _browser.visit(browser, "data:text/html;base64," + base64.b64encode(page.encode()).decode())
    tables = _browser.wide_code(browser)["tables"]
    assert len(tables) == 1 and tables[0]["header"].startswith("column 0"), tables


@pytest.mark.book
@pytest.mark.slow
def test_pages_render_offline_in_chromium(browser, server, toc_pages, page_profiles):
    problems: dict[str, list[str]] = {}
    pages_with_math = images_on_chapters = 0
    for page in toc_pages:
        report, events = _browser.visit(browser, f"{server}/{page}.html")
        remote, failed = _browser.network_problems(events)
        found = []
        if not report["title"] or not report["h1"]:
            found.append(f"no title (document.title={report['title']!r}, h1={report['h1']!r})")
        if report["errorOutputs"]:
            found.append(f"{report['errorOutputs']} error output(s) from the notebook")
        if report["systemMessages"]:
            found.append(f"build problems rendered in the page: {report['systemMessages'][:5]}")
        for image in report["images"]:
            if not image["complete"] or image["width"] <= 0:
                found.append(f"image did not load: {image['src']}")
        if report["mathNodes"]:
            pages_with_math += 1
            if report["mathjax"] != "ready":
                found.append(f"MathJax {report['mathjax']}")
            if report["untypeset"] or not report["mjxContainers"]:
                found.append(f"formulas not typeset by MathJax: {report['untypeset'][:5]}")
            if report["mathErrors"]:
                found.append(f"{report['mathErrors']} MathJax error(s)")
        if _stem(page):
            images_on_chapters += len(report["images"])
        found += page_problems(report["html"], page_profiles[page], _stem(page))
        width = _browser.wide_code(browser)
        found += [
            f"code wider than its column at {width['viewport']} px ({w['scrollWidth']} > "
            f"{w['clientWidth']} px): {w['line'].strip()[:160]!r}"
            for w in width["wide"]
        ]
        found += [
            f"table wider than its column at {width['viewport']} px ({t['width']} > "
            f"{t['clientWidth']} px): {t['header']!r}"
            for t in width["tables"]
        ]
        found += [f"request left 127.0.0.1: {url}" for url in remote]
        found += [f"local request failed: {failure}" for failure in failed]
        found += [f"JavaScript error: {error}" for error in _browser.console_errors(events)]
        if found:
            problems[page] = found
    assert not problems, _report(problems, "pages with problems")
    assert pages_with_math, "no page has math: the MathJax check did not run"
    assert images_on_chapters, "no chapter has a figure: the image check did not run"
