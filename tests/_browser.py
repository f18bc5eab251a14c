"""Plumbing of the book's browser test (tests/test_book.py): a local HTTP server, headless
Chromium driven over the Chrome DevTools Protocol, and what the test asks each page.

No extra dependency: the DevTools client speaks over tornado's websocket, which Jupyter
installs anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import html.parser
import http.server
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

LOCAL_HOSTS = {"127.0.0.1", "localhost"}
LOCAL_SCHEMES = {"data", "blob", "about"}
WINDOW = (1280, 1000)  # the width at which code must fit its column


def find_chromium() -> str | None:
    for candidate in (
        os.environ.get("PDLIB_CHROMIUM"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
        shutil.which("google-chrome"),
    ):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def is_local(url: str) -> bool:
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme in LOCAL_SCHEMES:
        return True
    if parsed.scheme in ("", "file") and not parsed.netloc:
        return True
    return parsed.scheme in ("http", "https", "ws", "wss") and parsed.hostname in LOCAL_HOSTS


class ResourceLinks(html.parser.HTMLParser):
    """URLs a page loads by itself (not plain <a> links)."""

    LOADING_RELS = {
        "stylesheet",
        "preload",
        "modulepreload",
        "icon",
        "shortcut icon",
        "prefetch",
        "preconnect",
        "dns-prefetch",
        "manifest",
        "apple-touch-icon",
    }

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in (
            "script",
            "img",
            "iframe",
            "source",
            "video",
            "audio",
            "embed",
            "track",
        ) and attrs.get("src"):
            self.urls.append(attrs["src"])
        elif (
            tag == "link"
            and attrs.get("href")
            and (attrs.get("rel") or "").lower() in self.LOADING_RELS
        ):
            self.urls.append(attrs["href"])
        elif tag == "object" and attrs.get("data"):
            self.urls.append(attrs["data"])


# --------------------------------------------------------------------------- server


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve(directory: Path):
    """Serve ``directory`` on 127.0.0.1; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


# --------------------------------------------------------------------------- Chromium


class DevTools:
    """A minimal Chrome DevTools Protocol client over tornado's websocket."""

    def __init__(self, ws_url: str):
        from tornado.websocket import websocket_connect

        self.loop = asyncio.new_event_loop()
        self.events: list[dict] = []
        self._id = 0

        async def connect():  # inside the loop, so tornado binds the connection to it
            return await asyncio.wait_for(
                websocket_connect(ws_url, max_message_size=64 * 2**20), 30
            )

        self._ws = self.loop.run_until_complete(connect())

    async def _call(self, method: str, params: dict) -> dict:
        self._id += 1
        call_id = self._id
        await self._ws.write_message(
            json.dumps({"id": call_id, "method": method, "params": params})
        )
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
        result = self.call(
            "Runtime.evaluate",
            timeout=timeout,
            expression=expression,
            awaitPromise=True,
            returnByValue=True,
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"JavaScript failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def close(self):
        self._ws.close()
        self.loop.close()


class BrowserError(RuntimeError):
    pass


@contextlib.contextmanager
def chromium_session(chromium: str):
    """Start headless Chromium at a 1280 px wide window; yields a connected :class:`DevTools`."""
    profile = Path(tempfile.mkdtemp(prefix="pdlib-chromium-"))
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-default-apps",
        "--mute-audio",
        "--metrics-recording-only",
        "--disable-features=Translate,OptimizationHints,MediaRouter",
        # Any host but this machine fails to resolve: the test is hermetic even where there is
        # internet, and a remote request still shows up in the Network events.
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE localhost",
        f"--user-data-dir={profile}",
        "--remote-debugging-port=0",
        "--remote-debugging-address=127.0.0.1",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        "about:blank",
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    client = None
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if process.poll() is not None:
                raise BrowserError(
                    f"Chromium exited with status {process.returncode}:\n"
                    f"{process.stderr.read()[-3000:]}"
                )
            if time.monotonic() > deadline:
                raise BrowserError("Chromium did not open its DevTools port within 60 s")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as response:
            targets = json.load(response)
        page = next(t for t in targets if t.get("type") == "page")
        client = DevTools(page["webSocketDebuggerUrl"])
        for domain in ("Page", "Runtime", "Network", "Log"):
            client.call(f"{domain}.enable")
        client.call("Network.setCacheDisabled", cacheDisabled=True)
        client.call(
            "Emulation.setDeviceMetricsOverride",
            width=WINDOW[0],
            height=WINDOW[1],
            deviceScaleFactor=1,
            mobile=False,
        )
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
# and for web fonts, then report what the test checks, with the rendered DOM.
INSPECT_PAGE = r"""
(async () => {
  const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));
  const images = Array.from(document.images);
  images.forEach(img => { if (img.loading === 'lazy') img.loading = 'eager'; });
  await Promise.race([
    Promise.all(images.map(img => img.complete ? null :
      new Promise(resolve => {
        img.addEventListener('load', resolve);
        img.addEventListener('error', resolve);
      }))),
    sleep(20000)]);
  let mathjax = 'absent';
  if (document.querySelector('script[src*="mathjax"]')) {
    const ready = () => window.MathJax && MathJax.startup && MathJax.startup.promise;
    for (let i = 0; i < 200 && !ready(); i++) await sleep(100);
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
    untypeset: mathNodes.filter(n => !n.querySelector('mjx-container'))
      .map(n => n.textContent.slice(0, 80)),
    mjxContainers: document.querySelectorAll('mjx-container').length,
    mathErrors: document.querySelectorAll('mjx-merror').length,
    images: images.map(img => ({
      src: img.currentSrc || img.src, complete: img.complete, width: img.naturalWidth})),
    errorOutputs: document.querySelectorAll(
      '.output.traceback, .output.error, .cell_output .traceback').length,
    systemMessages: Array.from(document.querySelectorAll('.system-message, .problematic'))
      .map(n => n.textContent.trim().slice(0, 120)),
    parameters: !!Array.from(document.querySelectorAll('.admonition-title'))
      .find(n => n.textContent.includes('Parameters of this run')),
    html: document.documentElement.outerHTML,
  };
})()
"""

# Opens every toggle (dropdown boxes, hidden inputs: the reader can open them) and returns the
# code blocks (cell inputs and code listings, not cell outputs) whose lines do not fit their
# column: scrollWidth > clientWidth + 1.
WIDE_CODE = r"""
(async () => {
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  document.querySelectorAll('.toggle-hidden').forEach(e => e.classList.remove('toggle-hidden'));
  await new Promise(resolve => setTimeout(resolve, 400));
  const wide = [];
  for (const pre of new Set(document.querySelectorAll('div.cell_input pre, .highlight pre'))) {
    if (pre.closest('.cell_output')) continue;  // outputs may scroll; code may not
    if (!pre.getClientRects().length) continue;  // not displayed at all
    if (pre.scrollWidth > pre.clientWidth + 1) {
      const lines = pre.textContent.split('\n');
      const longest = lines.reduce((a, b) => (b.length > a.length ? b : a), '');
      wide.push({scrollWidth: pre.scrollWidth, clientWidth: pre.clientWidth, line: longest,
                 inCell: !!pre.closest('div.cell_input')});
    }
  }
  // A table wider than its output column hides its last columns behind a scroll bar.
  const tables = [];
  for (const table of document.querySelectorAll('.cell_output table')) {
    const column = table.closest('.cell_output');
    if (!table.getClientRects().length) continue;
    const width = table.getBoundingClientRect().width;
    if (width > column.clientWidth + 1) {
      const head = Array.from(table.querySelectorAll('th')).map(th => th.textContent.trim())
        .filter(Boolean);
      tables.push({width: Math.round(width), clientWidth: column.clientWidth,
                   header: head.slice(0, 4).join(' | ')});
    }
  }
  return {viewport: window.innerWidth, wide: wide, tables: tables};
})()
"""


def visit(client: DevTools, url: str) -> tuple[dict, list[dict]]:
    """Load ``url``, let it settle; returns INSPECT_PAGE's report and the DevTools events."""
    client.events.clear()
    client.call("Page.navigate", url=url)
    deadline = time.monotonic() + 60
    while client.evaluate("document.readyState") != "complete":
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not finish loading within 60 s")
        time.sleep(0.2)
    report = client.evaluate(INSPECT_PAGE, timeout=90)
    client.evaluate("1")  # collects the events that arrived while the page settled
    return report, list(client.events)


def wide_code(client: DevTools) -> dict:
    """Run WIDE_CODE in the current page (after :func:`visit`: it opens the page's toggles)."""
    return client.evaluate(WIDE_CODE, timeout=30)


def network_problems(events: list[dict]) -> tuple[list[str], list[str]]:
    """(requests that left 127.0.0.1, local requests that failed or returned an HTTP error)."""
    remote, failed = [], []
    urls = {}
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            urls[params["requestId"]] = url
            if not is_local(url):
                remote.append(url)
        elif method == "Network.responseReceived" and params["response"].get("status", 200) >= 400:
            failed.append(f"HTTP {params['response']['status']}: {params['response']['url']}")
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            url = urls.get(params["requestId"], "?")
            if is_local(url):
                failed.append(f"{params.get('errorText')}: {url}")
    return remote, failed


def console_errors(events: list[dict]) -> list[str]:
    errors = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            errors.append(
                details.get("exception", {}).get("description") or details.get("text", "exception")
            )
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            errors.append(f"{params['entry'].get('source')}: {params['entry'].get('text')}")
    return errors
