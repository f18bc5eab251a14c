"""The smoke book builds without a warning and renders offline in a headless browser.

Two fast checks keep the prose honest: the profile table of ``book/reproduce.md`` matches
``pdlib.profiles``, and every chapter in ``_toc.yml`` has a notebook source.

The book is built once per session, with ``python -m pdlib.book --profile smoke``, into a
temporary copy of the book's sources (so a ``laptop`` build in ``book/chapters`` and
``_build`` is left alone). Set ``PDLIB_BOOK_ROOT`` to a book root whose ``_build/html`` is
already built to check that instead.

Every page listed in ``_toc.yml`` is then opened in headless Chromium, served from
``http.server`` on 127.0.0.1, and driven over the Chrome DevTools Protocol: it must render
(a title, no error output), every ``<img>`` must load, MathJax must typeset every formula,
and no request may leave 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import functools
import html.parser
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from pdlib.book import CHAPTER_DIR, toc_files


REPO = Path(__file__).resolve().parents[1]
BUILD_TIMEOUT_S = 1500  # the smoke book: ~90 s per notebook on 2 cores, plus the Sphinx build
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
LOCAL_SCHEMES = {"data", "blob", "about"}


def _chromium() -> str | None:
    for candidate in (os.environ.get("PDLIB_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser"), shutil.which("google-chrome")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


# --------------------------------------------------------------------------- fast checks


def _profile_table(text: str) -> dict[str, list[str]]:
    """Rows of the profile table in book/reproduce.md: field name -> [smoke, laptop, paper] cells."""
    rows = {}
    for line in text.splitlines():
        match = re.match(r"\|\s*`(\w+)`[^|]*\|(.*)\|\s*$", line)
        if match:
            rows[match.group(1)] = [cell.strip() for cell in match.group(2).split("|")]
    return rows


def test_reproduce_page_lists_the_profiles_as_defined():
    import dataclasses

    from pdlib.profiles import PROFILES

    table = _profile_table((REPO / "book" / "reproduce.md").read_text())
    order = ["smoke", "laptop", "paper"]
    assert set(PROFILES) == set(order), f"reproduce.md describes smoke, laptop and paper; pdlib has {sorted(PROFILES)}"
    for field in dataclasses.fields(PROFILES["smoke"]):
        if field.name == "name":
            continue
        assert field.name in table, f"book/reproduce.md: the profile table has no row for `{field.name}`"
        for profile, cell in zip(order, table[field.name]):
            value = getattr(PROFILES[profile], field.name)
            if isinstance(value, str):
                assert cell.strip("` ") == value, (
                    f"book/reproduce.md: `{field.name}` for {profile} reads {cell!r}, pdlib.profiles has {value!r}")
                continue
            if dataclasses.is_dataclass(value):  # a TrainConfig: "epochs / batch size / peak learning rate"
                expected = [value.epochs, value.batch_size, value.lr]
            else:
                expected = [value]
            written = [float(x) for x in re.findall(r"\d+(?:\.\d+)?(?:e-?\d+)?", cell)]
            assert written == [float(x) for x in expected], (
                f"book/reproduce.md: `{field.name}` for {profile} reads {cell!r}, pdlib.profiles has {expected}")
            if dataclasses.is_dataclass(value):  # the page's prose states the rest of the optimiser
                stated = {"momentum": 0.9, "weight_decay": 5e-4, "warmup_fraction": 0.1}
                actual = {key: getattr(value, key) for key in stated}
                assert actual == stated, f"book/reproduce.md states {stated} for every profile; {profile} has {actual}"


def test_toc_chapters_have_sources():
    from pdlib.book import notebook_sources, toc_chapters

    missing = [stem for stem in toc_chapters(REPO) if stem not in notebook_sources(REPO)]
    assert not missing, f"_toc.yml lists chapters without notebooks/<name>.md: {missing}"


# --------------------------------------------------------------------------- building


def _copy_book_sources(root: Path) -> None:
    """The book's sources without its executed chapters or build output."""
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(REPO / name, root / name)
    shutil.copytree(REPO / "book", root / "book",
                    ignore=lambda d, names: [n for n in names if n in ("chapters", "_build") or n.endswith(".ipynb")])
    shutil.copytree(REPO / "notebooks", root / "notebooks",
                    ignore=lambda d, names: [n for n in names if n.endswith(".ipynb") or n == ".ipynb_checkpoints"])
    if (REPO / "data").is_dir():  # notebooks run with the book root as working directory
        (root / "data").symlink_to(REPO / "data", target_is_directory=True)


@pytest.fixture(scope="module")
def book_root(tmp_path_factory) -> Path:
    prebuilt = os.environ.get("PDLIB_BOOK_ROOT")
    if prebuilt:
        root = Path(prebuilt).resolve()
        assert (root / "_build" / "html").is_dir(), f"PDLIB_BOOK_ROOT={root} has no _build/html"
        return root
    root = tmp_path_factory.mktemp("book")
    _copy_book_sources(root)
    env = {**os.environ, "PDLIB_QUIET": "1"}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pdlib.book", "--profile", "smoke", "--root", str(root)],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"the smoke book did not build within {BUILD_TIMEOUT_S} s:\n{(error.stdout or '')[-4000:]}")
    log = done.stdout + done.stderr
    assert done.returncode == 0, f"python -m pdlib.book --profile smoke failed:\n{log[-8000:]}"
    return root


@pytest.fixture(scope="module")
def toc_pages(book_root) -> list[str]:
    pages = toc_files(book_root)
    assert pages, "_toc.yml lists no pages"
    return pages


@pytest.mark.book
@pytest.mark.slow
def test_every_toc_page_is_built(book_root, toc_pages):
    html_dir = book_root / "_build" / "html"
    missing = [page for page in toc_pages if not (html_dir / f"{page}.html").is_file()]
    assert not missing, f"pages in _toc.yml without HTML: {missing}"
    timings = json.loads((book_root / "_build" / "timings.json").read_text())
    chapters = [p[len(CHAPTER_DIR) + 1:] for p in toc_pages if p.startswith(CHAPTER_DIR + "/")]
    timed = {r["chapter"] for r in timings if r.get("stage") == "execute" and r.get("profile") == "smoke"}
    assert set(chapters) <= timed, f"chapters without a smoke timing: {set(chapters) - timed}"


@pytest.mark.book
@pytest.mark.slow
def test_chapters_show_their_parameters(book_root, toc_pages):
    for page in toc_pages:
        if not page.startswith(CHAPTER_DIR + "/"):
            continue
        stem = page[len(CHAPTER_DIR) + 1:]
        text = re.sub(r"<[^>]+>", "", (book_root / "_build" / "html" / f"{page}.html").read_text())
        text = re.sub(r"\s+", " ", text)
        assert "Parameters of this run" in text, f"{page}: no Parameters admonition"
        assert "with profile smoke" in text and "Parameters of this run: profile smoke" in text, f"{page}: the admonition does not name the profile"
        rerun = f"papermill notebooks/{stem}.ipynb out.ipynb -p profile smoke"
        assert rerun in text, f"{page}: the admonition lacks the re-run command {rerun!r}"


# --------------------------------------------------------------------------- static check


class _ResourceLinks(html.parser.HTMLParser):
    """URLs a page loads by itself (not plain <a> links)."""

    LOADING_RELS = {"stylesheet", "preload", "modulepreload", "icon", "shortcut icon", "prefetch",
                    "preconnect", "dns-prefetch", "manifest", "apple-touch-icon"}

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("script", "img", "iframe", "source", "video", "audio", "embed", "track") and attrs.get("src"):
            self.urls.append(attrs["src"])
        elif tag == "link" and attrs.get("href") and (attrs.get("rel") or "").lower() in self.LOADING_RELS:
            self.urls.append(attrs["href"])
        elif tag == "object" and attrs.get("data"):
            self.urls.append(attrs["data"])


def _is_local(url: str) -> bool:
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme in LOCAL_SCHEMES:
        return True
    if parsed.scheme in ("", "file") and not parsed.netloc:
        return True
    return parsed.scheme in ("http", "https", "ws", "wss") and parsed.hostname in LOCAL_HOSTS


@pytest.mark.book
@pytest.mark.slow
def test_html_loads_only_local_resources(book_root):
    html_dir = book_root / "_build" / "html"
    remote = []
    for page in sorted(html_dir.rglob("*.html")):
        parser = _ResourceLinks()
        parser.feed(page.read_text(errors="replace"))
        remote += [f"{page.relative_to(html_dir)}: {url}" for url in parser.urls if not _is_local(url)]
    for css in sorted((html_dir / "_static").rglob("*.css")):
        for url in re.findall(r"url\(\s*['\"]?([^'\")]+)", css.read_text(errors="replace")):
            if not _is_local(url):
                remote.append(f"{css.relative_to(html_dir)}: {url}")
    assert not remote, "the built HTML loads remote resources:\n" + "\n".join(remote[:40])
    mathjax = html_dir / "_static" / "mathjax" / "tex-chtml.js"
    assert mathjax.is_file(), "MathJax is not served from _static/mathjax (sphinx-mathjax-offline)"


# --------------------------------------------------------------------------- browser


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server(book_root):
    handler = functools.partial(_QuietHandler, directory=str(book_root / "_build" / "html"))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class DevTools:
    """A minimal Chrome DevTools Protocol client over tornado's websocket (no extra dependency)."""

    def __init__(self, ws_url: str):
        from tornado.websocket import websocket_connect

        self.loop = asyncio.new_event_loop()
        self.events: list[dict] = []
        self._id = 0

        async def connect():  # inside the loop, so tornado binds the connection to it
            return await asyncio.wait_for(websocket_connect(ws_url, max_message_size=64 * 2**20), 30)

        self._ws = self.loop.run_until_complete(connect())

    async def _call(self, method: str, params: dict) -> dict:
        self._id += 1
        call_id = self._id
        await self._ws.write_message(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = await self._ws.read_message()
            if message is None:
                raise ConnectionError("the browser closed the DevTools connection")
            data = json.loads(message)
            if data.get("id") == call_id:
                if "error" in data:
                    raise RuntimeError(f"{method}: {data['error']}")
                return data.get("result", {})
            if "method" in data:
                self.events.append(data)

    def call(self, method: str, timeout: float = 60, **params) -> dict:
        return self.loop.run_until_complete(asyncio.wait_for(self._call(method, params), timeout))

    def evaluate(self, expression: str, timeout: float = 60):
        result = self.call("Runtime.evaluate", timeout=timeout, expression=expression, awaitPromise=True,
                           returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"JavaScript failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def close(self):
        self._ws.close()
        self.loop.close()


@pytest.fixture(scope="module")
def browser():
    chromium = _chromium()
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is not installed, and CI is set: the offline browser test must run in CI "
                        "(make browser installs Debian's chromium)")
        pytest.skip("Chromium is not installed (make browser installs it); the offline browser test is skipped")
    profile = Path(tempfile.mkdtemp(prefix="pdlib-chromium-"))
    command = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--no-default-browser-check", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-extensions", "--disable-default-apps", "--mute-audio",
        "--metrics-recording-only", "--disable-features=Translate,OptimizationHints,MediaRouter",
        # Any host but this machine fails to resolve: the test is hermetic even where there is internet,
        # and a remote request still shows up in the Network events below.
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE localhost",
        f"--user-data-dir={profile}", "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
        "--window-size=1280,1000", "about:blank",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    client = None
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if process.poll() is not None:
                pytest.fail(f"Chromium exited with status {process.returncode}:\n{process.stderr.read()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail("Chromium did not open its DevTools port within 60 s")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as response:
            targets = json.load(response)
        page = next(t for t in targets if t.get("type") == "page")
        client = DevTools(page["webSocketDebuggerUrl"])
        for domain in ("Page", "Runtime", "Network", "Log"):
            client.call(f"{domain}.enable")
        client.call("Network.setCacheDisabled", cacheDisabled=True)
        yield client
    finally:
        if client is not None:
            client.close()
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(profile, ignore_errors=True)


# Runs in the page once it has loaded: force lazy images to load, wait for them, for MathJax
# and for web fonts, then report what the test checks.
_INSPECT_PAGE = r"""
(async () => {
  const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));
  const images = Array.from(document.images);
  images.forEach(img => { if (img.loading === 'lazy') img.loading = 'eager'; });
  await Promise.race([
    Promise.all(images.map(img => img.complete ? null :
      new Promise(resolve => { img.addEventListener('load', resolve); img.addEventListener('error', resolve); }))),
    sleep(20000)]);
  let mathjax = 'absent';
  if (document.querySelector('script[src*="mathjax"]')) {
    for (let i = 0; i < 200 && !(window.MathJax && MathJax.startup && MathJax.startup.promise); i++) await sleep(100);
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
      await MathJax.startup.promise;
      mathjax = 'ready';
    } else {
      mathjax = 'not started';
    }
  }
  await document.fonts.ready;
  await sleep(500);
  const h1 = document.querySelector('main h1, article h1, h1');
  const mathNodes = Array.from(document.querySelectorAll('.math'));
  return {
    title: document.title,
    h1: h1 ? h1.textContent.trim() : '',
    mathjax: mathjax,
    mathNodes: mathNodes.length,
    untypeset: mathNodes.filter(n => !n.querySelector('mjx-container')).map(n => n.textContent.slice(0, 80)),
    mjxContainers: document.querySelectorAll('mjx-container').length,
    mathErrors: document.querySelectorAll('mjx-merror').length,
    images: images.map(img => ({src: img.currentSrc || img.src, complete: img.complete, width: img.naturalWidth})),
    errorOutputs: document.querySelectorAll('.output.traceback, .output.error, .cell_output .traceback').length,
    systemMessages: Array.from(document.querySelectorAll('.system-message, .problematic'))
      .map(n => n.textContent.trim().slice(0, 120)),
    parameters: !!Array.from(document.querySelectorAll('.admonition-title'))
      .find(n => n.textContent.includes('Parameters of this run')),
  };
})()
"""


def _visit(client: DevTools, url: str) -> tuple[dict, list[dict]]:
    client.events.clear()
    client.call("Page.navigate", url=url)
    deadline = time.monotonic() + 60
    while client.evaluate("document.readyState") != "complete":
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not finish loading within 60 s")
        time.sleep(0.2)
    report = client.evaluate(_INSPECT_PAGE, timeout=90)
    client.evaluate("1")  # collects the events that arrived while the page settled
    return report, list(client.events)


def _network_problems(events: list[dict]) -> tuple[list[str], list[str]]:
    """(requests that left 127.0.0.1, local requests that failed or returned an HTTP error)."""
    remote, failed = [], []
    urls = {}
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            urls[params["requestId"]] = url
            if not _is_local(url):
                remote.append(url)
        elif method == "Network.responseReceived" and params["response"].get("status", 200) >= 400:
            failed.append(f"HTTP {params['response']['status']}: {params['response']['url']}")
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            url = urls.get(params["requestId"], "?")
            if _is_local(url):
                failed.append(f"{params.get('errorText')}: {url}")
    return remote, failed


def _console_errors(events: list[dict]) -> list[str]:
    errors = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            errors.append(details.get("exception", {}).get("description") or details.get("text", "exception"))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            errors.append(f"{params['entry'].get('source')}: {params['entry'].get('text')}")
    return errors


@pytest.mark.book
@pytest.mark.slow
def test_pages_render_offline_in_chromium(browser, server, toc_pages):
    problems: dict[str, list[str]] = {}
    pages_with_math = images_on_chapters = 0
    for page in toc_pages:
        report, events = _visit(browser, f"{server}/{page}.html")
        remote, failed = _network_problems(events)
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
        if page.startswith(CHAPTER_DIR + "/"):
            images_on_chapters += len(report["images"])
            if not report["parameters"]:
                found.append("no 'Parameters of this run' admonition")
        found += [f"request left 127.0.0.1: {url}" for url in remote]
        found += [f"local request failed: {failure}" for failure in failed]
        found += [f"JavaScript error: {error}" for error in _console_errors(events)]
        if found:
            problems[page] = found
    assert not problems, "pages with problems:\n" + "\n".join(
        f"{page}:\n  " + "\n  ".join(items) for page, items in problems.items())
    assert pages_with_math, "no page has math: the MathJax check did not run"
    assert images_on_chapters, "no chapter has a figure: the image check did not run"
