"""Fixtures: one `creditgate demo` for the whole session (the SDK tests' `DemoProcess`), its
routes (`Gateway`), and a fresh headless Chromium per test, checked after the test for requests
to other hosts and console errors."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# The demo process and the gateway helpers are the SDK tests' own, shared rather than copied.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sdk"))

from browser_support import Browser  # noqa: E402
from creditgate_support import DemoProcess, Gateway  # noqa: E402


@pytest.fixture(scope="session")
def demo() -> Iterator[dict[str, Any]]:
    proc = DemoProcess()
    try:
        yield proc.info
    finally:
        code = proc.stop()
        if code not in (0, None):
            print(f"creditgate demo exited with {code}; stderr:\n{proc.stderr_text()}")
        proc.cleanup_log()


@pytest.fixture(scope="session")
def gw(demo: dict[str, Any]) -> Iterator[Gateway]:
    g = Gateway(demo)
    yield g
    g.close()


@pytest.fixture
def browser() -> Iterator[Browser]:
    """A desktop-sized Chromium; after the test, no request may have left loopback and no page
    may have logged an error."""
    b = Browser()
    try:
        yield b
        b.assert_clean()
    finally:
        b.close()
