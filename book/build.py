"""Execute the chapter notebooks with papermill, then build the Jupyter Book (``make book``).

Run as ``python book/build.py --profile laptop``. For each chapter listed in ``_toc.yml`` as
``book/chapters/<stem>``:

1. ``notebooks/<stem>.md`` (jupytext MyST) is converted to ``.ipynb``, because papermill
   cannot read text notebooks;
2. papermill executes it with ``-p profile <profile>`` in the ``python3`` kernel, with the book
   root as working directory;
3. the visible parameters cell is rewritten to show the values the page was run with, a
   "Parameters of this run" box (wall time, hardware, the set-up of each figure in the
   profile's plan, the command that re-runs the page) is inserted after the title, and the
   result is written atomically to ``book/chapters/<stem>.ipynb`` (git-ignored).

Then ``jupyter-book build . --builder html -W -n --keep-going --all`` writes ``_build/html``;
Sphinx's ``-W`` turns any warning into a failed build. Wall times are printed and saved to
``_build/timings.json``.

The ``paper-dryrun`` profile first writes small stand-in datasets in each real format
(``book/standins.py``) and runs on them, with a run cache of its own.

``--refs-only`` executes every notebook in the smoke profile and writes the nbval references
``tests/notebooks/<NN>_<stem>.ipynb`` instead (no book build), numbered in book order so that
nbval runs them in that order.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

__all__ = [
    "PROFILES",
    "toc_files",
    "toc_chapters",
    "notebook_sources",
    "execute_chapter",
    "build_book",
    "main",
]

PROFILES = ("smoke", "laptop", "paper", "paper-dryrun")
REPO_ROOT = Path(__file__).resolve().parents[1]
CHAPTER_DIR = "book/chapters"  # executed notebooks the book renders (git-ignored)
REFS_DIR = "tests/notebooks"  # committed smoke-profile executions, the nbval references
SOURCE_DIR = "notebooks"  # jupytext MyST sources
KERNEL = "python3"


class BookError(RuntimeError):
    """A problem with the book's sources or configuration, reported without a traceback."""


# --------------------------------------------------------------------------- sources


def toc_files(root: Path) -> list[str]:
    """Every ``file:`` entry of ``<root>/_toc.yml`` (root first), in reading order."""
    import yaml

    toc_path = root / "_toc.yml"
    if not toc_path.is_file():
        raise BookError(f"{toc_path} not found")
    toc = yaml.safe_load(toc_path.read_text())
    files: list[str] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    files.append(node[key])
            for key in ("parts", "chapters", "sections"):
                for child in node.get(key) or []:
                    walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(toc)
    return [re.sub(r"\.(md|ipynb)$", "", f) for f in files]


def toc_chapters(root: Path) -> list[str]:
    """Stems of the executed chapters listed in ``_toc.yml`` (``book/chapters/<stem>``), in
    order."""
    prefix = CHAPTER_DIR + "/"
    return [f[len(prefix) :] for f in toc_files(root) if f.startswith(prefix)]


def notebook_sources(root: Path) -> dict[str, Path]:
    """``{stem: path}`` of the jupytext sources ``notebooks/*.md`` (README.md excluded)."""
    return {
        p.stem: p for p in sorted((root / SOURCE_DIR).glob("*.md")) if p.name.lower() != "readme.md"
    }


# --------------------------------------------------------------------------- kernel


def _is_this_python(argv0: str) -> bool:
    # jupyter_client swaps a bare "python"/"python3" for sys.executable when it launches a kernel.
    version = sys.version_info
    if argv0 in ("python", f"python{version.major}", f"python{version.major}.{version.minor}"):
        return True
    # Compare without resolving symlinks: a venv's python is a symlink to the base interpreter.
    return Path(os.path.abspath(argv0)).parent == Path(os.path.abspath(sys.executable)).parent


def ensure_kernel(name: str = KERNEL) -> str:
    """Make the ``python3`` kernel run this interpreter; returns the kernel's argv[0].

    Inside a virtual environment the kernelspec is installed into the environment
    (``ipykernel install --sys-prefix``) if the one Jupyter finds points elsewhere,
    and environment kernels are preferred over user-level ones.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    os.environ.setdefault("JUPYTER_PREFER_ENV_PATH", "1")

    def current() -> str | None:
        try:
            return KernelSpecManager().get_kernel_spec(name).argv[0]
        except NoSuchKernel:
            return None

    argv0 = current()
    if argv0 is not None and _is_this_python(argv0):
        return argv0
    if sys.prefix == sys.base_prefix:
        raise BookError(
            f"kernel {name!r} runs {argv0!r}, not {sys.executable}; run inside the project's venv "
            f"(make book) or install it: {sys.executable} -m ipykernel install --user --name {name}"
        )
    print(f"[book] installing kernel {name!r} for {sys.executable} into {sys.prefix}", flush=True)
    subprocess.run(
        [sys.executable, "-m", "ipykernel", "install", "--sys-prefix", "--name", name],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    argv0 = current()
    if argv0 is None or not _is_this_python(argv0):
        raise BookError(
            f"kernel {name!r} still runs {argv0!r} after installing it into {sys.prefix}"
        )
    return argv0


# --------------------------------------------------------------------------- execution


def _write_atomic(nb, path: Path) -> None:
    """Write a notebook to a temporary file beside ``path``, then rename it into place."""
    import nbformat

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".ipynb.tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            nbformat.write(nb, handle)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _after_title(nb) -> int:
    """Index just after the page's ``# Title`` line, splitting its cell if prose follows the title.

    Returns 0 when no markdown cell has a level-1 heading.
    """
    import nbformat

    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        lines = cell.source.splitlines()
        heading = next((i for i, line in enumerate(lines) if re.match(r"#\s+\S", line)), None)
        if heading is None:
            continue
        rest = "\n".join(lines[heading + 1 :]).strip("\n")
        if rest.strip():
            cell.source = "\n".join(lines[: heading + 1])
            nb.cells.insert(index + 1, nbformat.v4.new_markdown_cell(rest))
        return index + 1
    return 0


def _cell(value: str) -> str:
    return "`" + value.replace("|", "\\|").replace("`", "'") + "`"


def _format_seconds(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min"


def _hardware() -> str:
    cores = os.cpu_count() or 1
    text = f"{cores} CPU core{'s' if cores != 1 else ''}"
    torch = sys.modules.get("torch")
    try:
        if torch is not None and torch.cuda.is_available():
            text += f" and a {torch.cuda.get_device_name(0)} GPU"
    except Exception:  # a broken CUDA set-up must not break the book
        pass
    return text


def parameters_markdown(stem: str, profile: str, seconds: float, date: str) -> str:
    """The "Parameters of this run" box inserted after a chapter's title: how the page was made,
    the set-up of each of its figures in the profile's plan, and how to re-run it."""
    plan = ""
    try:
        from pdlib.profiles import CHAPTER_FIGURES, FIGURES, PROFILES

        if stem in CHAPTER_FIGURES and profile in PROFILES:
            rows = "\n".join(
                f"| {FIGURES[f]} | {PROFILES[profile].setup(f).describe(PROFILES[profile])} |"
                for f in CHAPTER_FIGURES[stem]
            )
            plan = f"\n\n| Figure | Networks in the {profile} profile |\n|:--|:--|\n{rows}"
    except ImportError:  # the runner also works on a book without pdlib
        pass
    return f"""\
````{{admonition}} Parameters of this run: profile {profile}
:class: note dropdown

This page was executed by papermill with profile **{profile}**, in {_format_seconds(seconds)}
on {_hardware()} ({date}). The code cell under "parameters" shows the values it ran with.{plan}

To re-run this chapter alone and rebuild the book:

```bash
python book/build.py --profile {profile} \\
    --only {stem}
```

or by hand, without the book (the executed notebook is `out.ipynb`):

```bash
jupytext --to ipynb notebooks/{stem}.md
papermill notebooks/{stem}.ipynb \\
    out.ipynb -p profile {profile}
```

The whole book: `make book PROFILE={profile}`.
````"""


def show_values_used(nb, injected: dict) -> None:
    """Rewrite the parameters cell so that it shows the values papermill injected, and hide
    papermill's own injected cell: the page shows each parameter once, with the value used."""
    from papermill.translators import PythonTranslator

    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "parameters" in tags:
            lines = []
            for line in cell.source.splitlines():
                match = re.match(r"^(\w+)\s*=\s*(.*?)(\s*#.*)?$", line)
                if match and match.group(1) in injected:
                    value = PythonTranslator.translate(injected[match.group(1)])
                    line = f"{match.group(1)} = {value}{match.group(3) or ''}"
                lines.append(line)
            cell.source = "\n".join(lines)
        elif "injected-parameters" in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]


def parameter_defaults(source: str) -> dict[str, str]:
    """``{name: default source text}`` of the assignments in a parameters cell, in order.

    >>> parameter_defaults('profile = "smoke"  # smoke | laptop; the preset\\nseed = 0')
    {'profile': '"smoke"', 'seed': '0'}
    """
    import ast

    defaults = {}
    for node in ast.parse(source).body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
        ):
            defaults[node.targets[0].id] = ast.get_source_segment(source, node.value)
        elif (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.value is not None
        ):
            defaults[node.target.id] = ast.get_source_segment(source, node.value)
    return defaults


def _strip_volatile_metadata(nb) -> None:
    """Drop per-run timestamps so re-generated nbval references diff cleanly."""
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
    papermill_meta = nb.metadata.get("papermill", {})
    for key in (
        "start_time",
        "end_time",
        "duration",
        "input_path",
        "output_path",
        "environment_variables",
    ):
        papermill_meta.pop(key, None)


# Appended to every chapter before it runs, removed after: the kernel's peak resident memory.
_MEMORY_PROBE = """import re
status = open("/proc/self/status").read()
print("pdlib-peak-rss-kb", re.search(r"VmHWM:\\s+(\\d+)", status).group(1))"""


def _pop_memory_probe(nb) -> float | None:
    """Remove the memory probe cell; returns the kernel's peak RSS in MB (None where unknown)."""
    for index, cell in enumerate(nb.cells):
        if "pdlib-memory" in cell.metadata.get("tags", []):
            del nb.cells[index]
            text = "".join(
                o.get("text", "")
                for o in cell.get("outputs", [])
                if o.get("output_type") == "stream"
            )
            match = re.search(r"pdlib-peak-rss-kb (\d+)", text)
            return round(int(match.group(1)) / 1024, 1) if match else None
    return None


def execute_chapter(
    source: Path,
    destination: Path,
    profile: str,
    root: Path,
    *,
    kind: str = "book",
    progress: bool = False,
    failed_dir: Path | None = None,
) -> tuple[float, float | None]:
    """Convert, execute and write one chapter; returns its wall time (s) and its kernel's peak
    memory (MB).

    Parameters
    ----------
    source : Path
        ``notebooks/<stem>.md``, a jupytext MyST notebook with a cell tagged ``parameters``.
    destination : Path
        Where the executed ``.ipynb`` goes (written atomically).
    profile : str
        Passed to the notebook as ``-p profile <profile>``.
    root : Path
        The book root; the kernel's working directory.
    kind : {"book", "refs"}
        ``"book"`` inserts the Parameters admonition; ``"refs"`` strips timestamps instead.
    progress : bool
        Show papermill's cell progress bar.
    failed_dir : Path, optional
        Where to keep the partly executed notebook when a cell raises.
    """
    import jupytext
    import nbformat
    import papermill

    stem = source.stem
    with tempfile.TemporaryDirectory(prefix=f"pdlib-book-{stem}-") as tmp:
        notebook = Path(tmp) / f"{stem}.ipynb"
        executed = Path(tmp) / f"{stem}.executed.ipynb"
        nb = jupytext.read(source)
        cells = [
            cell
            for cell in nb.cells
            if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", [])
        ]
        if not cells:
            raise BookError(
                f"{source}: no code cell is tagged 'parameters' (see notebooks/README.md)"
            )
        try:
            defaults = parameter_defaults(cells[0].source)
        except SyntaxError as error:
            raise BookError(f"{source}: the parameters cell is not plain Python: {error}") from None
        if kind == "book":
            nb.cells.append(
                nbformat.v4.new_code_cell(
                    _MEMORY_PROBE, metadata={"tags": ["remove-cell", "pdlib-memory"]}
                )
            )
        jupytext.write(nb, notebook)
        if "profile" not in defaults:
            raise BookError(f"{source}: the parameters cell must define `profile`")
        start = time.perf_counter()
        try:
            papermill.execute_notebook(
                str(notebook),
                str(executed),
                parameters={"profile": profile},
                kernel_name=KERNEL,
                cwd=str(root),
                progress_bar=progress,
                log_output=False,
            )
        except BaseException:
            if failed_dir is not None and executed.exists():
                failed_dir.mkdir(parents=True, exist_ok=True)
                shutil.move(
                    str(executed), failed_dir / f"{stem}.ipynb"
                )  # /tmp may be another filesystem
            raise
        seconds = time.perf_counter() - start
        result = nbformat.read(executed, as_version=4)
    peak = _pop_memory_probe(result)

    injected = result.metadata.get("papermill", {}).get("parameters", {})
    if kind == "book":
        show_values_used(result, injected)
        admonition = nbformat.v4.new_markdown_cell(
            parameters_markdown(stem, profile, seconds, datetime.date.today().isoformat()),
            metadata={"tags": ["pdlib-parameters"]},
        )
        result.cells.insert(_after_title(result), admonition)
    else:
        _strip_volatile_metadata(result)
    result.metadata.setdefault("pdlib", {}).update(profile=profile, peak_rss_mb=peak)
    _write_atomic(result, destination)
    return seconds, peak


# --------------------------------------------------------------------------- build


def build_book(root: Path) -> float:
    """Run ``jupyter-book build`` (HTML; ``-W``: any Sphinx warning fails it); returns its wall
    time."""
    command = [
        sys.executable,
        "-c",
        "from jupyter_book.cli.main import main; main()",
        "build",
        str(root),
        "--builder",
        "html",
        "-W",
        "-n",
        "--keep-going",
        "--all",
    ]
    print("[book] jupyter-book build", root, "--builder html -W -n --keep-going --all", flush=True)
    start = time.perf_counter()
    returncode = subprocess.run(command, cwd=root).returncode
    if returncode != 0:
        raise BookError(
            f"jupyter-book build failed (exit status {returncode}); its warnings are printed above"
        )
    print(f"[book] HTML in {root / '_build' / 'html'}", flush=True)
    return time.perf_counter() - start


def _save_timings(root: Path, records: list[dict]) -> Path:
    """Merge ``records`` into ``_build/timings.json``: a new run replaces the same (profile,
    chapter, stage)."""
    path = root / "_build" / "timings.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    old = []
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except (json.JSONDecodeError, OSError):
            old = []
    key = lambda r: (r.get("profile"), r.get("chapter"), r.get("stage"))  # noqa: E731
    replaced = {key(r) for r in records}
    merged = [r for r in old if isinstance(r, dict) and key(r) not in replaced] + records
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(merged, indent=1) + "\n")
    os.replace(tmp, path)
    return path


def _summary(records: list[dict], failures: dict[str, str]) -> str:
    width = max(
        [len("chapter")] + [len(r["chapter"]) for r in records] + [len(s) for s in failures]
    )
    lines = [
        f"{'chapter':<{width}}  {'stage':<8}  {'seconds':>8}  {'peak MB':>8}  status",
        "-" * (width + 40),
    ]
    for r in records:
        peak = f"{r['peak_rss_mb']:>8.0f}" if r.get("peak_rss_mb") else f"{'-':>8}"
        lines.append(f"{r['chapter']:<{width}}  {r['stage']:<8}  {r['seconds']:>8.1f}  {peak}  ok")
    for stem, error in failures.items():
        lines.append(f"{stem:<{width}}  {'execute':<8}  {'-':>8}  FAILED: {error}")
    total = sum(r["seconds"] for r in records)
    lines.append(f"{'total':<{width}}  {'':<8}  {total:>8.1f}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- CLI


def _parse(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python book/build.py",
        description="Execute the chapter notebooks with papermill and build the Jupyter Book.",
    )
    parser.add_argument(
        "--profile",
        choices=PROFILES,
        default="laptop",
        help="passed to every notebook as -p profile PROFILE (default: laptop)",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        default=None,
        help="execute only these chapters (notebook stems); the others must be executed already",
    )
    parser.add_argument(
        "--refs-only",
        action="store_true",
        help=f"write smoke-profile executions to {REFS_DIR}/ (nbval references); no book build",
    )
    parser.add_argument(
        "--no-build", action="store_true", help="execute the notebooks but do not build the HTML"
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=REPO_ROOT,
        help="book root holding _config.yml, _toc.yml, book/ and notebooks/ "
        "(default: the repository)",
    )
    return parser.parse_args(argv)


def _plan(args, root: Path) -> list[str]:
    sources = notebook_sources(root)
    if args.refs_only:
        # Every notebook gets a reference, the toc's chapters first.
        in_toc = [s for s in toc_chapters(root) if s in sources]
        planned = in_toc + [s for s in sources if s not in in_toc]
    else:
        planned = toc_chapters(root)
        missing = [s for s in planned if s not in sources]
        if missing:
            raise BookError(
                f"_toc.yml lists {', '.join(CHAPTER_DIR + '/' + s for s in missing)} but there is "
                f"no {', '.join(SOURCE_DIR + '/' + s + '.md' for s in missing)}"
            )
        unlisted = [s for s in sources if s not in planned]
        if unlisted:
            print(f"[book] not in _toc.yml, not executed: {', '.join(unlisted)}", flush=True)
    if args.only:
        unknown = [s for s in args.only if s not in planned]
        if unknown:
            raise BookError(
                f"--only: unknown chapter(s) {', '.join(unknown)}; known: "
                f"{', '.join(planned) or 'none'}"
            )
        planned = [s for s in planned if s in args.only]
    return planned


def _ref_stem(path: Path) -> str:
    """``01_section2_x.ipynb`` -> ``section2_x``: the chapter of an nbval reference."""
    head, _, rest = path.stem.partition("_")
    return rest if head.isdigit() and rest else path.stem


def _check_executed_chapters(root: Path, profile: str) -> None:
    """Every toc chapter must have an executed notebook; warn when the book mixes profiles."""
    import nbformat

    missing, other_profile = [], []
    for stem in toc_chapters(root):
        path = root / CHAPTER_DIR / f"{stem}.ipynb"
        if not path.exists():
            missing.append(stem)
            continue
        used = nbformat.read(path, as_version=4).metadata.get("pdlib", {}).get("profile")
        if used != profile:
            other_profile.append(f"{stem} ({used})")
    if missing:
        raise BookError(
            f"not executed yet: {', '.join(missing)}; run python book/build.py --profile {profile} "
            f"--only {' '.join(missing)}"
        )
    if other_profile:
        print(
            "[book] note: the book mixes profiles; executed with another profile: "
            f"{', '.join(other_profile)}",
            flush=True,
        )


def main(argv=None) -> int:
    args = _parse(argv)
    root = args.root.resolve()
    if args.refs_only and args.profile != "smoke":
        print(
            "error: --refs-only always uses the smoke profile (the nbval references)",
            file=sys.stderr,
        )
        return 2
    # pdlib's training and probing bars go to the terminal that runs the build, not into the
    # book (PDLIB_PROGRESS names the file relayed to it), unless the caller asked for quiet (CI sets
    # PDLIB_QUIET=1).
    quiet = os.environ.get("PDLIB_QUIET", "") not in ("", "0") or bool(os.environ.get("CI"))
    if quiet or not sys.stderr.isatty():
        os.environ["PDLIB_QUIET"] = "1"
        relay = contextlib.nullcontext()
    else:
        relay = _relay_progress(root / "_build" / "progress.log")
    os.environ.setdefault(
        "PYDEVD_DISABLE_FILE_VALIDATION", "1"
    )  # silences a debugger warning at kernel start
    if args.profile == "paper-dryrun":
        _use_standins(root)
    progress = not quiet and sys.stderr.isatty()
    with relay:
        return _run(args, root, progress)


def _use_standins(root: Path) -> None:
    """Point the kernels at freshly written stand-in datasets and at a run cache of their own."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from standins import write_standins

    folder = root / "_build" / "paper-dryrun"
    os.environ["PDLIB_DATA"] = str(write_standins(folder / "data"))
    base = Path(os.environ.get("PDLIB_CACHE") or REPO_ROOT / "data" / "cache")
    os.environ["PDLIB_CACHE"] = str(base / "paper-dryrun-standins")
    print(
        f"[book] paper-dryrun: stand-in datasets in {os.environ['PDLIB_DATA']}, run cache "
        f"{os.environ['PDLIB_CACHE']}",
        flush=True,
    )


@contextlib.contextmanager
def _relay_progress(path: Path):
    """Stream what the kernels' progress bars write to ``path`` onto this terminal."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    os.environ["PDLIB_PROGRESS"] = str(path)
    stop = threading.Event()

    def relay() -> None:
        with open(path, encoding="utf-8", errors="replace") as source:
            while not stop.is_set():
                chunk = source.read()
                if chunk:
                    sys.stderr.write(chunk)
                    sys.stderr.flush()
                else:
                    time.sleep(0.2)

    thread = threading.Thread(target=relay, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=2)
        del os.environ["PDLIB_PROGRESS"]


def _run(args, root: Path, progress: bool) -> int:
    """Execute the planned chapters, then build the book; returns the exit status."""
    try:
        planned = _plan(args, root)
        argv0 = ensure_kernel()
        kind = "refs" if args.refs_only else "book"
        target = root / (REFS_DIR if args.refs_only else CHAPTER_DIR)
        print(
            f"[book] profile {args.profile}: executing {len(planned)} notebook(s) with kernel "
            f"{KERNEL} ({argv0}) into {target}",
            flush=True,
        )
        host, cores = platform.node(), os.cpu_count()
        now = lambda: datetime.datetime.now().isoformat(timespec="seconds")  # noqa: E731
        records: list[dict] = []
        failures: dict[str, str] = {}
        if args.refs_only:
            for stale in target.glob("*.ipynb"):
                if _ref_stem(stale) in planned:
                    stale.unlink()
        # nbval runs the references in file-name order; numbering them in book order lets
        # later chapters (the discussion) read what earlier ones recorded.
        book_order = (
            _plan(argparse.Namespace(**{**vars(args), "only": None}), root)
            if args.refs_only
            else planned
        )
        for stem in planned:
            print(f"[book] {stem} ...", flush=True)
            name = (
                f"{book_order.index(stem) + 1:02d}_{stem}.ipynb"
                if args.refs_only
                else f"{stem}.ipynb"
            )
            try:
                seconds, peak = execute_chapter(
                    root / SOURCE_DIR / f"{stem}.md",
                    target / name,
                    args.profile,
                    root,
                    kind=kind,
                    progress=progress,
                    failed_dir=root / "_build" / "failed",
                )
            except BookError:
                raise
            except Exception as error:  # keep going: report every failing chapter at once
                if hasattr(error, "ename"):  # papermill's PapermillExecutionError: a cell raised
                    failures[stem] = f"{error.ename}: {error.evalue} (cell [{error.exec_count}])"[
                        :200
                    ]
                else:
                    first_line = (str(error).strip().splitlines() or [""])[0]
                    failures[stem] = f"{type(error).__name__}: {first_line}"[:200]
                print(
                    f"[book] {stem} FAILED; partial notebook in "
                    f"_build/failed/{stem}.ipynb\n{error}",
                    file=sys.stderr,
                    flush=True,
                )
                continue
            print(f"[book] {stem} done in {seconds:.1f} s", flush=True)
            records.append(
                {
                    "profile": args.profile,
                    "chapter": stem,
                    "stage": "execute" if kind == "book" else "refs",
                    "seconds": round(seconds, 2),
                    "peak_rss_mb": peak,
                    "hostname": host,
                    "cpu_count": cores,
                    "date": now(),
                }
            )
        build_error = None
        if not failures and not args.refs_only and not args.no_build:
            _check_executed_chapters(root, args.profile)
            try:
                seconds = build_book(root)
                records.append(
                    {
                        "profile": args.profile,
                        "chapter": "(jupyter-book build)",
                        "stage": "build",
                        "seconds": round(seconds, 2),
                        "hostname": host,
                        "cpu_count": cores,
                        "date": now(),
                    }
                )
            except BookError as error:
                build_error = error
        path = _save_timings(root, records)
        print(
            f"\n[book] wall times, profile {args.profile}, {host}, {cores} CPU cores (saved to "
            f"{path}):"
        )
        print(_summary(records, failures), flush=True)
        if build_error is not None:
            raise build_error
    except BookError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if failures:
        what = "" if args.refs_only or args.no_build else "; the book was not built"
        print(f"error: {len(failures)} notebook(s) failed{what}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
