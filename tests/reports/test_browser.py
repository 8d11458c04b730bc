"""The comparison page in a real browser: headless Chromium driven over the DevTools protocol pipe.

Chromium runs with ``--remote-debugging-pipe`` (commands in on fd 3, replies and events out on fd 4, each a
NUL-terminated JSON message), so the test sees the page's console and log events exactly as DevTools does:
``console.error``/``console.assert`` calls, uncaught exceptions and failed resource loads all count as
errors. The detector is proven on tiny pages that do each of those, before it clears the real page.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import struct
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from helpers_reports import SECTION_IDS, build_page

from llmbt.reports.compare_page import write_comparison_page

CHROME = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome",
                                              "google-chrome-stable"))), None)
if CHROME is None:
    pytest.skip("chromium not found: apt-get install chromium (CI installs it in .ci/run)",
                allow_module_level=True)

# As root on a closed network Chromium needs all of these, or it hangs / phones home.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-quic", "--window-size=1280,4000",
         "--remote-debugging-pipe")
TIMEOUT = 60.0
OPAQUE_FRACTIONS = """[...document.images].map(img => {
    const canvas = document.createElement("canvas");
    [canvas.width, canvas.height] = [img.naturalWidth, img.naturalHeight];
    const context = canvas.getContext("2d");
    context.drawImage(img, 0, 0);
    const rgba = context.getImageData(0, 0, canvas.width, canvas.height).data;
    let opaque = 0;
    for (let k = 3; k < rgba.length; k += 4) opaque += rgba[k] === 255;
    return opaque / (canvas.width * canvas.height);
})"""


class DevTools:
    """A minimal Chrome DevTools Protocol client for one Chromium process and one page."""

    def __init__(self, user_data_dir: Path):
        to_chrome, self._out = os.pipe()
        self._in, from_chrome = os.pipe()

        def wire_fds() -> None:  # in the child: fd 3 = commands, fd 4 = replies (dup high first: no clash)
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_chrome, from_chrome)]
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        self.log = user_data_dir.with_suffix(".stderr.txt")
        with self.log.open("wb") as err:
            self.proc = subprocess.Popen([CHROME, *FLAGS, f"--user-data-dir={user_data_dir}", "about:blank"],
                                         stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                         preexec_fn=wire_fds, pass_fds=(3, 4))
        os.close(to_chrome)
        os.close(from_chrome)
        self._buffer, self._id, self.events = b"", 0, []
        target = next(t for t in self.call("Target.getTargets")["targetInfos"] if t["type"] == "page")
        self.session = self.call("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})[
            "sessionId"]
        for domain in ("Runtime", "Log", "Page", "Network"):
            self.call(f"{domain}.enable", session=True)
        self.call("Emulation.setDeviceMetricsOverride",  # the viewport is exactly --window-size
                  {"width": 1280, "height": 4000, "deviceScaleFactor": 1, "mobile": False}, session=True)

    def call(self, method: str, params: dict | None = None, session: bool = False) -> dict:
        """Send one command and return its result (events that arrive meanwhile go to ``events``)."""
        self._id += 1
        message = {"id": self._id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        reply = self._read_until(lambda m, i=self._id: m.get("id") == i, TIMEOUT)
        if "error" in reply:
            raise RuntimeError(f"{method} failed: {reply['error']}")
        return reply["result"]

    def _read_until(self, wanted, timeout: float) -> dict:
        """Read messages until ``wanted(message)``; raise TimeoutError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                message = json.loads(raw)
                if wanted(message):
                    return message
                self.events.append(message)
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._in], [], [], left)[0]:
                raise TimeoutError(f"Chromium did not answer in {timeout:.0f} s; its log: {self.log}")
            chunk = os.read(self._in, 1 << 20)
            if not chunk:
                raise EOFError(f"Chromium closed the DevTools pipe; its log: {self.log}")
            self._buffer += chunk

    def load(self, path: Path, settle: float = 0.5) -> list[str]:
        """Open ``path``, wait for its load event (plus ``settle`` s) and return its errors, if any."""
        self.events.clear()
        self.call("Page.navigate", {"url": path.resolve().as_uri()}, session=True)
        self._read_until(lambda m: m.get("method") == "Page.loadEventFired", TIMEOUT)
        try:
            self._read_until(lambda m: False, settle)
        except TimeoutError:
            pass
        return console_errors(self.events)

    def evaluate(self, expression: str) -> Any:
        """The JSON value of ``expression`` evaluated in the page."""
        params = {"expression": expression, "returnByValue": True}
        result = self.call("Runtime.evaluate", params, session=True)
        assert "exceptionDetails" not in result, result
        return result["result"]["value"]

    def screenshot(self, path: Path) -> Path:
        """Save a PNG of the 1280x4000 viewport to ``path``."""
        data = self.call("Page.captureScreenshot", {"format": "png"}, session=True)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        """Ask Chromium to quit; kill it if it does not within 10 s."""
        try:
            self.call("Browser.close")
        except (EOFError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        os.close(self._in)
        os.close(self._out)


def console_errors(events: list[dict]) -> list[str]:
    """The errors DevTools' console would show: console.error/assert, uncaught exceptions, log errors."""
    errors = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            args = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
            errors.append(f"console.{params['type']}: {args}")
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            errors.append(f"uncaught: {details.get('exception', {}).get('description', details['text'])}")
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            errors.append(f"log: {params['entry']['text']} {params['entry'].get('url', '')}".strip())
    return errors


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    devtools = DevTools(tmp_path_factory.mktemp("chromium") / "profile")
    yield devtools
    devtools.close()


@pytest.fixture(scope="module")
def page_file(goog, tmp_path_factory) -> Path:
    return write_comparison_page(tmp_path_factory.mktemp("page") / "compare.html", build_page(goog))


@pytest.mark.parametrize("body, expected", [
    ('<script>console.error("boom")</script>', "console.error: boom"),
    ('<script>console.assert(1 === 2, "one is not two")</script>', "console.assert: one is not two"),
    ('<script>throw new Error("kaboom")</script>', "uncaught: Error: kaboom"),
    ('<img src="missing.png" alt="">', "log: Failed to load resource: net::ERR_FILE_NOT_FOUND"),
])
def test_detector_flags_console_errors(browser, tmp_path, body, expected):
    bad = tmp_path / "bad.html"
    head = '<head><link rel="icon" href="data:,"></head>'
    bad.write_text(f"<!DOCTYPE html><html>{head}<body>{body}</body></html>")
    errors = browser.load(bad)
    assert len(errors) == 1 and errors[0].startswith(expected), errors


def test_detector_ignores_non_errors(browser, tmp_path):
    fine = tmp_path / "fine.html"
    fine.write_text('<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head>'
                    '<body><script>console.log("hello"); console.warn("careful")</script></body></html>')
    assert browser.load(fine) == []


def test_page_loads_without_console_errors_or_network(browser, page_file):
    assert browser.load(page_file) == []
    urls = [e["params"]["request"]["url"] for e in browser.events
            if e.get("method") == "Network.requestWillBeSent"]
    assert urls and all(url.split(":", 1)[0] in ("file", "data") for url in urls), urls


def test_rendered_dom_has_sections_and_decoded_images(browser, page_file):
    assert browser.load(page_file) == []
    assert browser.evaluate("[...document.querySelectorAll('section')].map(s => s.id)") == SECTION_IDS
    images = browser.evaluate("[...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight,"
                              " i.closest('section').id])")
    assert [img[3] for img in images] == ["equity", "drawdowns", "folds", "signals", "calibration"]
    assert all(complete and width >= 400 and height >= 300 for complete, width, height, _ in images), images
    # Decoded for real: redrawn on a canvas, every pixel of matplotlib's white-backed PNG is opaque.
    assert browser.evaluate(OPAQUE_FRACTIONS) == [1.0] * len(images)
    assert browser.evaluate("document.querySelectorAll('#metrics table tbody tr').length") == 3


def test_screenshot_is_saved(browser, page_file, tmp_path):
    assert browser.load(page_file) == []
    folder = Path(os.environ.get("LLMBT_TEST_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    shot = browser.screenshot(folder / "compare_page.png")
    print(f"screenshot: {shot}")
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 100_000
    assert struct.unpack(">II", png[16:24]) == (1280, 4000)
