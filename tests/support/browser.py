"""A real headless Chromium (Debian's ``chromium``, installed by ``make browser``) for the
status page's tests: the DOM after the page's scripts ran, and a screenshot."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from tests.support.tools import needed

# As the machine's notes give them: without the background-networking flags Chromium
# keeps trying hosts this closed network refuses.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1280,1100"]


def render(url: str, screenshot: Path, budget_ms: int = 4000) -> str:
    """The DOM of ``url`` once its scripts have run for ``budget_ms`` of virtual time,
    without the scripts' own text, and a PNG of it at ``screenshot``."""
    browser = needed("chromium", "`make browser` installs Debian's package (root and apt)")
    with tempfile.TemporaryDirectory() as profile:
        common = [browser, *FLAGS, f"--user-data-dir={profile}",
                  f"--virtual-time-budget={budget_ms}"]
        dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True,
                             timeout=90, check=True).stdout.split("<script")[0]
        subprocess.run([*common, f"--screenshot={screenshot}", url], capture_output=True,
                       timeout=90, check=True)
    return dom
