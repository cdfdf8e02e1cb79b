"""The distribution's Chromium for the browser tests, headless and offline: Selenium Manager is
kept from fetching anything, so a missing package fails with the fix instead of a download."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
IMG = ROOT / "docs" / "img"
CHROMEDRIVER = "/usr/bin/chromedriver"
SETUP_FIX = "install the Debian packages chromium and chromium-driver: sh scripts/setup.sh --test"


@contextlib.contextmanager
def headless_chromium(*, size: tuple[int, int], page_timeout: float, script_timeout: float,
                      args: Iterable[str] = (), needs: Iterable[Path] = ()) -> Iterator[Any]:
    """A WebDriver on headless Chromium with the console log kept; `needs`: files the test injects."""
    binary = shutil.which("chromium")
    missing = [name for name, path in (("chromium", binary), ("chromedriver", CHROMEDRIVER))
               if not path or not os.access(path, os.X_OK)]
    missing += [str(p.relative_to(ROOT)) for p in needs if not p.is_file()]
    if missing:
        pytest.fail(f"{' and '.join(missing)} not found: {SETUP_FIX}", pytrace=False)
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("selenium is not installed: sh scripts/setup.sh --test", pytrace=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SE_OFFLINE", "true")  # Selenium Manager must never fetch a browser or a driver
        options = webdriver.ChromeOptions()
        options.binary_location = binary
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", f"--window-size={size[0]},{size[1]}",
                    "--disable-dev-shm-usage", "--hide-scrollbars", *args):
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(page_timeout)
    driver.set_script_timeout(script_timeout)
    try:
        yield driver
    finally:
        driver.quit()


def shot_path(tmp_path: Path, name: str) -> Path:
    """docs/img/NAME only when asked (CERTLAB_SCREENSHOTS=1), so ordinary runs leave the tree clean."""
    if os.environ.get("CERTLAB_SCREENSHOTS") == "1":
        IMG.mkdir(parents=True, exist_ok=True)
        return IMG / name
    return tmp_path / name
