"""Headless Chromium: render a page, return its DOM after scripts ran, take a screenshot."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
# Offline and quiet: no first-run UI, no background traffic, no updates, a throw-away profile.
_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--disable-default-apps",
    "--disable-extensions",
    "--hide-scrollbars",
    # Lets timers and animation frames run before the DOM is dumped or the shot is taken.
    "--virtual-time-budget=15000",
)


def find_chromium() -> str:
    """Path of a Chromium binary; skips the test (fails it in CI) when there is none."""
    override = os.environ.get("CHROMIUM")
    if override and shutil.which(override):
        return str(shutil.which(override))
    for name in _CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    message = "no Chromium found (install Debian's `chromium`, or set CHROMIUM=/path/to/chrome)"
    if IN_CI:
        pytest.fail(f"{message}; CI must render the lineage page (.ci/run installs chromium)")
    pytest.skip(message)


#: The window a page is rendered in unless a test asks for another width.
WIDTH, HEIGHT = 1400, 900


def _run(binary: str, profile: Path, *args: str, width: int = WIDTH) -> subprocess.CompletedProcess[str]:
    profile.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [binary, *_FLAGS, f"--window-size={width},{HEIGHT}", f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def dump_dom(page: Path, work: Path, fragment: str = "", width: int = WIDTH) -> str:
    """The page's DOM serialised after its scripts ran, in a window ``width`` pixels wide."""
    binary = find_chromium()
    done = _run(binary, work / "profile-dom", "--dump-dom", page.resolve().as_uri() + fragment, width=width)
    if done.returncode != 0 or "<html" not in done.stdout:
        raise AssertionError(f"chromium --dump-dom failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def screenshot(page: Path, png: Path, work: Path, fragment: str = "", width: int = WIDTH) -> Path:
    """A PNG screenshot of the rendered page in a window ``width`` pixels wide."""
    binary = find_chromium()
    png.parent.mkdir(parents=True, exist_ok=True)
    done = _run(binary, work / "profile-shot", f"--screenshot={png}", page.resolve().as_uri() + fragment, width=width)
    if done.returncode != 0 or not png.is_file():
        raise AssertionError(f"chromium --screenshot failed ({done.returncode}): {done.stderr[-2000:]}")
    return png


@dataclass(frozen=True)
class Element:
    """A start tag of the DOM: name and attributes, and its text when it is a leaf-ish element."""

    tag: str
    attrs: dict[str, str]
    text: str = ""


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self._open: list[tuple[str, dict[str, str], list[str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._open.append((tag, {k: v or "" for k, v in attrs}, []))

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            name, attrs, texts = self._open.pop()
            self.elements.append(Element(name, attrs, "".join(texts).strip()))
            if self._open:
                self._open[-1][2].extend(texts)
            if name == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._open:
            self._open[-1][2].append(data)


def elements(dom: str) -> list[Element]:
    """Every element of a serialised DOM (with text content)."""
    parser = _Collector()
    parser.feed(dom)
    parser.close()
    return parser.elements


class DevTools:
    """A page in headless Chromium driven through the DevTools protocol over a pipe.

    Just enough of the protocol to evaluate JavaScript and send real mouse events:
    messages are JSON objects separated by NUL bytes on file descriptors 3 (to the
    browser) and 4 (from it).
    """

    def __init__(self, page: Path, work: Path, width: int = WIDTH) -> None:
        binary = find_chromium()
        commands_read, commands_write = os.pipe()  # we write commands; Chromium reads them on fd 3
        replies_read, replies_write = os.pipe()  # Chromium writes replies on fd 4; we read them
        profile = work / "profile-cdp"
        profile.mkdir(parents=True, exist_ok=True)

        def wire() -> None:
            # Move both ends above 3 and 4 first, so that neither dup2 overwrites the other.
            import fcntl

            high_in = fcntl.fcntl(commands_read, fcntl.F_DUPFD, 10)
            high_out = fcntl.fcntl(replies_write, fcntl.F_DUPFD, 10)
            os.dup2(high_in, 3)
            os.dup2(high_out, 4)

        args = [a for a in _FLAGS if not a.startswith("--virtual-time-budget")]
        self._proc = subprocess.Popen(
            [
                binary,
                *args,
                f"--window-size={width},{HEIGHT}",
                f"--user-data-dir={profile}",
                "--remote-debugging-pipe",
                page.resolve().as_uri(),
            ],
            preexec_fn=wire,  # noqa: PLW1509 - only two dup2 calls between fork and exec
            pass_fds=(3, 4),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(commands_read)
        os.close(replies_write)
        self._to_browser, self._from_browser = commands_write, replies_read
        self._buffer = b""
        self._next_id = 0
        targets = self.call("Target.getTargets")["targetInfos"]
        page_target = next(t for t in targets if t["type"] == "page")
        self._session = self.call("Target.attachToTarget", targetId=page_target["targetId"], flatten=True)["sessionId"]

    def call(self, method: str, session: bool = False, **params: object) -> dict[str, object]:
        """Send one command and wait for its reply."""
        import json

        self._next_id += 1
        message: dict[str, object] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self._session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self._buffer:
                chunk = os.read(self._from_browser, 1 << 16)
                if not chunk:
                    raise AssertionError(f"Chromium closed the DevTools pipe while waiting for {method}")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise AssertionError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))

    def evaluate(self, expression: str) -> object:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.call(
            "Runtime.evaluate", session=True, expression=expression, returnByValue=True, awaitPromise=True
        )
        value = result.get("result", {})
        assert isinstance(value, dict)
        return value.get("value")

    def wait_for(self, expression: str, timeout: float = 30.0) -> object:
        """Poll an expression until it is truthy."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {expression}")

    def mouse(self, kind: str, x: float, y: float) -> None:
        """A real mouse event (mouseMoved, mousePressed, mouseReleased) at page coordinates."""
        extra: dict[str, object] = {"button": "left", "clickCount": 1} if kind != "mouseMoved" else {}
        self.call("Input.dispatchMouseEvent", session=True, type=kind, x=x, y=y, **extra)

    def close(self) -> None:
        """Stop the browser."""
        with contextlib.suppress(AssertionError):  # the browser may already be gone
            self.call("Browser.close")
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        for fd in (self._to_browser, self._from_browser):
            os.close(fd)
