"""A headless Chromium driven over WebDriver (Debian's `chromium` and `chromium-driver`) that
records every network request and every console message of the pages it opens, so each test can
check that a page asked nothing of another host and logged no error (a Content-Security-Policy
violation is logged as one). See docs/dashboard.md, "Browser tests"."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# Selenium's helper program must never look for (or download) a browser or driver, nor report
# usage statistics: the paths below are given, and the machine has no other network.
os.environ.setdefault("SE_OFFLINE", "true")
os.environ.setdefault("SE_AVOID_STATS", "true")

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import (  # noqa: E402
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = os.environ.get("CREDITGATE_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CREDITGATE_CHROMEDRIVER", "/usr/bin/chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking")
REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "docs" / "screenshots"
# Seconds a wait for something on a page may take (a debug build under a loaded CI machine).
WAIT = 10.0
# Hosts a page may reach: the gateway on loopback, nothing else.
LOCAL_HOSTS = {"127.0.0.1"}
DESKTOP = (1280, 900)
PHONE = (390, 844)


class Browser:
    """One Chromium session; `problems()` lists what a page must not do."""

    def __init__(self, size: tuple[int, int] = DESKTOP) -> None:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--window-size={size[0]},{size[1]}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        self.driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        self.driver.implicitly_wait(0)
        if size[0] < DESKTOP[0]:
            # A headless window is never narrower than 500 px: a phone is emulated instead.
            metrics = {"width": size[0], "height": size[1], "deviceScaleFactor": 1, "mobile": True}
            self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
        self.requested: list[str] = []
        self.console: list[dict[str, Any]] = []

    def close(self) -> None:
        self.driver.quit()

    # -- what happened

    def collect(self) -> None:
        """Moves the driver's buffered logs into `requested` and `console`."""
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method") == "Network.requestWillBeSent":
                self.requested.append(message["params"]["request"]["url"])
        self.console.extend(self.driver.get_log("browser"))

    def problems(self) -> list[str]:
        """Requests to another host and console errors (CSP violations included) so far."""
        self.collect()
        out = [f"request to another host: {u}" for u in self.requested if not local(u)]
        out += [f"console {e['level']}: {e['message']}" for e in self.console if e["level"] == "SEVERE"]
        return out

    def assert_clean(self) -> None:
        found = self.problems()
        assert not found, "\n".join(found)

    # -- acting on pages

    def open(self, url: str) -> None:
        self.driver.get(url)

    def find(self, css: str) -> WebElement:
        return self.wait_for(lambda: first(self.driver.find_elements(By.CSS_SELECTOR, css)), f"an element {css!r}")

    def all(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def overflowing(self) -> list[str]:
        """Elements wider than the viewport (what makes a page scroll sideways)."""
        return self.driver.execute_script(
            """const w = window.innerWidth; const out = [];
            for (const el of document.querySelectorAll('body *')) {
              const r = el.getBoundingClientRect();
              if (r.right > w + 1) out.push(el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
                + (el.className ? '.' + String(el.className).split(' ').join('.') : '') + ' ' + Math.round(r.right));
            }
            return out.slice(0, 8);"""
        )

    def text(self) -> str:
        try:
            return self.driver.find_element(By.TAG_NAME, "body").text
        except StaleElementReferenceException:
            raise
        except WebDriverException as err:
            if replaced(err):
                raise StaleElementReferenceException(str(err)) from err
            raise

    def wait_for(self, found: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
        """Polls `found` until it answers something truthy. A poll that lands while the page is
        being replaced (a form's answer loading) finds a stale or missing element: that poll
        counts as not yet, not as a failure."""
        ignored = (StaleElementReferenceException, NoSuchElementException)

        def poll(_: Any) -> Any:
            try:
                return found()
            except WebDriverException as err:
                if isinstance(err, ignored) or replaced(err):
                    return False
                raise

        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.05).until(poll)
        except TimeoutException:
            raise AssertionError(
                f"waited {timeout}s for {what}; at {self.driver.current_url}:\n{self.text()[:2000]}"
            ) from None

    def submit(self, action: Callable[[], Any]) -> None:
        """Runs `action` (a click or a key that submits a form) and waits until the answer has
        replaced the page, so that what is found next is not the page it left (which may hold
        the same elements, and goes stale while they are read)."""
        old = self.driver.find_element(By.TAG_NAME, "html")
        action()
        self.wait_for(lambda: gone(old), "the form's answer")

    def wait_text(self, text: str, timeout: float = WAIT) -> None:
        self.wait_for(lambda: text in self.text(), f"the text {text!r}", timeout)

    def screenshot(self, name: str) -> None:
        """Saves docs/screenshots/<name>.png when CREDITGATE_SCREENSHOTS=1 (so an ordinary run
        leaves the tree as it was)."""
        if os.environ.get("CREDITGATE_SCREENSHOTS") != "1":
            return
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        # Let a chart or a live value settle before the picture.
        time.sleep(0.3)
        size = self.driver.get_window_size()
        height = self.driver.execute_script("return document.documentElement.scrollHeight")
        # The whole page, within reason, then the window as it was.
        self.driver.set_window_size(size["width"], min(max(int(height) + 120, 600), 2400))
        self.driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))
        self.driver.set_window_size(size["width"], size["height"])


def replaced(err: WebDriverException) -> bool:
    """Chromium reports an element whose page was replaced while it was being read (a form's
    answer loading) as an inspector error rather than as a stale element."""
    return "does not belong to the document" in str(err)


def gone(element: WebElement) -> bool:
    """Whether `element`'s page has been replaced: reading it fails as stale (or as the
    inspector's version of stale)."""
    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as err:
        if replaced(err):
            return True
        raise
    return False


def local(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about"):
        return True
    return parts.hostname in LOCAL_HOSTS


def first(elements: list[WebElement]) -> WebElement | None:
    return elements[0] if elements else None
