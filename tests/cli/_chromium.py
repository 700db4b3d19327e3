"""Headless Chromium: render a page, return its DOM after scripts ran, take a screenshot."""

from __future__ import annotations

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
    "--window-size=1400,900",
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


def _run(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [binary, *_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def dump_dom(page: Path, work: Path, fragment: str = "") -> str:
    """The page's DOM serialised after its scripts ran."""
    binary = find_chromium()
    done = _run(binary, work / "profile-dom", "--dump-dom", page.resolve().as_uri() + fragment)
    if done.returncode != 0 or "<html" not in done.stdout:
        raise AssertionError(f"chromium --dump-dom failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def screenshot(page: Path, png: Path, work: Path, fragment: str = "") -> Path:
    """A PNG screenshot of the rendered page."""
    binary = find_chromium()
    png.parent.mkdir(parents=True, exist_ok=True)
    done = _run(binary, work / "profile-shot", f"--screenshot={png}", page.resolve().as_uri() + fragment)
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
