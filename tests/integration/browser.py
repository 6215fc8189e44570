"""Debian's headless Chromium driven by selenium through Debian's chromedriver (browser
downloads do not work here), with its background networking off: the dashboard's browser
tests and its first-paint benchmark share it."""

from __future__ import annotations

import tempfile

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = "/usr/bin/chromium"
FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-first-run", "--disable-extensions", "--disable-default-apps",
)  # fmt: skip


def chromium(width: int = 1400, height: int = 1600) -> webdriver.Chrome:
    """A fresh headless Chromium with a profile of its own (removed when it quits)."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='dynosim-chromium-')}")
    options.add_argument(f"--window-size={width},{height}")
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
