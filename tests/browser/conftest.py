"""A real browser for the page tests: Debian's Chromium, headless, driven by Selenium
through Debian's chromedriver (no driver or browser download, ever).

`make test` installs both (scripts/ensure_debian.sh) when they are missing. If
the browser still cannot start, these tests fail and say why: they never skip quietly.
Chromium starts with the switches that stop its background network calls, and every
host name but 127.0.0.1 resolves to nothing, so a page that tried to load anything from
elsewhere would show a failed load in the console, which the tests read.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Selenium Manager (a driver downloader) is skipped when the driver's path is given;
# these make sure it never reaches the network even if it ran.
os.environ.setdefault("SE_OFFLINE", "true")
os.environ.setdefault("SE_AVOID_STATS", "true")

INSTALL_HINT = (
    "the browser tests need Debian's chromium and chromium-driver: `make test` installs "
    "them (scripts/ensure_debian.sh), or run `apt-get install -y "
    "--no-install-recommends chromium chromium-driver`"
)
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
    "--lang=en-US",
    # no background network traffic: updates, sync, field trials, safe browsing, ...
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-client-side-phishing-detection",
    "--disable-domain-reliability",
    "--disable-field-trial-config",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-quic",
    "--metrics-recording-only",
    "--no-pings",
    "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication,"
    "InterestFeedContentSuggestions,CertificateTransparencyComponentUpdater",
    # any host but the test server's resolves to nothing: a CDN load would fail loudly
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)


def _which(*names: str) -> str | None:
    return next((path for name in names if (path := shutil.which(name))), None)


@pytest.fixture(scope="session")
def browser() -> Iterator:
    chromium = _which("chromium", "chromium-browser")
    driver_path = _which("chromedriver")
    if not (chromium and driver_path):
        pytest.fail(f"Chromium or chromedriver not found on PATH: {INSTALL_HINT}")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as exc:
        pytest.fail(f"selenium is not installed ({exc}): pip install -e '.[dev]'")
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    except Exception as exc:  # the driver's own message says what failed
        shutil.rmtree(profile, ignore_errors=True)
        pytest.fail(f"headless Chromium did not start: {exc}\n{INSTALL_HINT}")
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def console_errors(driver) -> list[dict]:
    """The browser console's errors since the last call: script errors, failed loads,
    Content-Security-Policy violations."""
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


@pytest.fixture(scope="session")
def screenshots_dir() -> Path:
    path = Path(__file__).resolve().parents[2] / "docs" / "images"
    path.mkdir(parents=True, exist_ok=True)
    return path
